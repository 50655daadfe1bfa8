"""A run's configuration: the :class:`ModelSpec` a train script declares, the command line, presets and overrides.
The config is the preset overridden by the user's flags; it is printed, saved with the run and compared on resume.
"""

import argparse
import os
import re
from dataclasses import dataclass
from typing import Callable

from data.errors import I2IError
from train_scripts.training.settings import defaults, flags, setting

# the folder holding the packages: the repository in a source checkout, site-packages in an installed wheel
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def workspace_root():
    """Where ``runs/`` and ``results/`` go by default: the repository in a source checkout (``pip install -e``), else
    the current folder (an installed wheel must not write into site-packages)."""
    return REPO_ROOT if os.path.exists(os.path.join(REPO_ROOT, "setup.cfg")) else os.getcwd()


def recorded_command(argv, root=None):
    """A command line as a run's ``sessions.jsonl`` records it: every absolute path inside the workspace
    (``root``, default :func:`workspace_root`), alone or as ``--flag=PATH``, relative to it, so that a record names
    no folder of the machine it ran on (``compare.py`` launches the train scripts by their absolute paths)."""
    root = os.path.abspath(root or workspace_root())

    def relative(item):
        flag, sep, value = item.rpartition("=") if item.startswith("--") else ("", "", item)
        if os.path.isabs(value) and os.path.commonpath([os.path.abspath(value), root]) == root:
            value = os.path.relpath(value, root)
        return flag + sep + value

    return " ".join(relative(item) for item in argv)


# Label maps per translate call in evaluate.py, translate.py and a run's end-of-training scores. A stochastic model's
# outputs depend on how the label maps are batched (the DDIM draws each call's noise from the same seed), so all three
# batch alike and agree.
TRANSLATE_BATCH_SIZE = 16

PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")

STRATEGIES = ("default", "mirrored", "multiworker")


@dataclass
class CommonSettings:
    """The settings every train script has (data, schedule, logging, devices), declared like a model's own
    (``training.settings``): each preset starts from these defaults, and gives those without one."""

    data: str = setting(None, "synthetic | facades | PATH (pix2pix A|B, two-folder or Kaggle layout)")
    image_size: int = setting(None, "training resolution (256 = paper, 128, 64)")
    jitter: str = setting("study", "resize before the random crop: study (300 at 256 px) | pix2pix (286) | none")
    expand: int = setting(0, "fixed augmentation factor (study: 6 -> 2400 pairs); 0 = fresh augmentation every step")
    batch_size: int = setting(None, "images per step")
    steps: int = setting(None, "training iterations")
    seed: int = setting(0, "random seed (weights, data order, augmentation)")
    log_every: int = setting(None, "steps per logged row / Keras epoch")
    checkpoint_every: int = setting(None, "steps between checkpoints (multiple of log_every)")
    keep_every: int = setting(0, "steps between weight snapshots kept for good in snapshots/step_<N>.weights.h5 "
                                 "(multiple of log_every; 0 = none): the generator at chosen steps of a long run, "
                                 "e.g. for test outputs")
    sample_every: int = setting(None, "steps between sample grids (multiple of log_every)")
    val_split: str = setting("val", "split for validation losses and sample grids")
    val_images: int = setting(None, "validation images used for the per-interval losses (0 = all)")
    eval_split: str = setting("test", "split scored after training (falls back to val when absent)")
    jit_compile: bool = setting(False, "XLA-compile the train step")
    steps_per_execution: int = setting(1, "train steps per tf.function call")
    mixed_precision: str = setting("none", "Keras dtype policy: none (float32) | mixed_float16 (with loss scaling) | "
                                           "mixed_bfloat16", PRECISIONS)
    budget_minutes: float = setting(0.0, "wall-clock training budget: stop at the first logging interval past it "
                                         "and count the run as finished (0 = train all --steps; compare.py gives "
                                         "every model the same budget; a larger value on a finished run continues "
                                         "it)")


COMMON_KEYS = tuple(flags(CommonSettings))

# Common settings added after the first runs were saved: their values when the config.json of an older run does not
# name them (what those runs trained with).
COMMON_DEFAULTS = {key: defaults(CommonSettings)[key] for key in ("mixed_precision", "budget_minutes", "keep_every")}


def preset(settings, **values):
    """A preset's complete config: the defaults of :class:`CommonSettings`, those of the model's ``settings``
    dataclass (``training.settings``), then ``values``, the preset's own (common keys, and settings it overrides)."""
    return {**defaults(CommonSettings), **defaults(settings), **values}


@dataclass
class ModelSpec:
    """What a train script tells the glue about its model."""

    name: str
    description: str
    presets: dict  # preset name -> complete config (plain data)
    # (config, **build_args) -> compiled keras.Model with ``translate(label_maps, seed=None, **settings)``; with
    # ``noise_seed`` among build_args when ``noise_seed`` below is set (the seed of its own test-time noise)
    build: Callable
    # the model's settings dataclass (``training.settings``): its flags, its presets' defaults, its constructor
    settings: type | None = None
    paired: bool = True  # False: photos drawn independently of label maps (CycleGAN)
    # (config, model, val_pairs, run) -> extra Keras callbacks, run before the CSV logger so values they
    # add to ``logs`` at the end of an interval (e.g. a validation KID) become columns of log.csv
    callbacks: Callable | None = None
    # config keys that only change how a trained model translates (sampler, steps, test-time noise), not what it
    # learns: ``evaluate.py --set KEY=VALUE`` may change them when scoring a finished run
    inference: tuple = ()
    # True for a model that reproduces the photo (the autoencoder): sample grids and scores feed it the photos, and
    # translate.py and the demo refuse its runs
    reconstructs: bool = False
    # config -> None, raising I2IError for a config the model cannot train with (checked before the run folder is made)
    check: Callable | None = None
    # config -> the model's name in results tables, where a config makes it another model (the DDIM's ddim-latent)
    name_of: Callable | None = None
    # What ``translate(label_maps, seed=None, **settings)`` accepts. ``noise_seed``: the config key of the seed its
    # test-time noise starts from (the run's ``seed`` for CVAE z, cGAN noise and Pix2Pix dropout at test; the DDIM's
    # ``sample_seed``), None for a model that draws no noise; ``stochastic``: config -> whether a run of that config
    # draws noise, so that another seed gives another output (None: always, when ``noise_seed`` is set).
    noise_seed: str | None = None
    stochastic: Callable | None = None
    # config keys that translate also takes per call as keyword arguments, the run's values being the defaults (the
    # DDIM's sampler settings); each is also one of ``inference``
    sampler_settings: tuple = ()

    def seeded(self, config):
        """Whether a seed changes what a run of ``config`` translates (test-time noise)."""
        return self.noise_seed is not None and (self.stochastic is None or bool(self.stochastic(config)))

    @property
    def arguments(self):
        """The model's own flags, from its settings: config key -> (type, help[, choices])."""
        return flags(self.settings) if self.settings else {}

    def model_name(self, config):
        """The model's name in results tables and messages for a run of ``config``."""
        return self.name_of(config) if self.name_of else self.name


def build_parser(spec):
    p = argparse.ArgumentParser(prog=f"python train_scripts/{spec.name}.py", description=spec.description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="quick", choices=sorted(spec.presets), help="starting configuration")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity")
    p.add_argument("--out", default=None, help="run folder (default: runs/<model>-<preset>[-<overrides>])")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--strategy", default="default", choices=STRATEGIES,
                   help="tf.distribute strategy: default (one device) | mirrored (all local GPUs, else all logical "
                        "CPUs) | multiworker (MultiWorkerMirroredStrategy over the workers of TF_CONFIG; see "
                        "launch.py); --batch-size is the global batch, split over the replicas")
    p.add_argument("--cluster-timeout", type=float, default=300.0,
                   help="multiworker: seconds to wait for every worker of TF_CONFIG before giving up (0: no limit)")
    add_setting_flags(p, flags(CommonSettings), names={"jit_compile": "--jit"})
    add_setting_flags(p, spec.arguments)
    return p


def add_setting_flags(p, arguments, names=None):
    """A flag per setting (``{key: (type, help[, choices])}``, as ``training.settings.flags`` gives), default None
    (the preset's value); booleans as ``--x`` / ``--no-x``. ``names``: flags not spelled ``--<key with dashes>``."""
    for key, (typ, helptext, *choices) in arguments.items():
        flag = (names or {}).get(key) or "--" + key.replace("_", "-")
        if typ is bool:
            p.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            p.add_argument(flag, dest=key, type=typ, default=None, help=helptext,
                           choices=choices[0] if choices else None)


def resolve_config(spec, args):
    """The preset's config with the user's flags applied, plus the list of overridden keys."""
    config = {**COMMON_DEFAULTS, **spec.presets[args.preset]}  # a preset written without preset() may lack them
    overrides = {}
    for key in list(COMMON_KEYS) + list(spec.arguments):
        value = getattr(args, key, None)
        if value is not None and value != config.get(key):
            overrides[key] = value
    config.update(overrides)
    check_config(config)
    if spec.check is not None:
        spec.check(config)
    return config, overrides


def check_config(config):

    for key in ("checkpoint_every", "sample_every", "keep_every"):
        if config[key] % config["log_every"]:
            raise I2IError(f"--{key.replace('_', '-')} {config[key]} must be a multiple of "
                           f"--log-every {config['log_every']}")
    if config["steps"] % config["log_every"]:
        raise I2IError(f"--steps {config['steps']} must be a multiple of --log-every {config['log_every']}")
    if config["image_size"] not in (16, 32, 64, 128, 256, 512):
        raise I2IError(f"--image-size {config['image_size']}: use 256 (paper), 128 or 64")
    if config["mixed_precision"] not in PRECISIONS:
        raise I2IError(f"mixed_precision {config['mixed_precision']!r}: use one of {', '.join(PRECISIONS)}")


def default_run_dir(spec, preset, overrides):
    parts = [f"{spec.name}-{preset}"]
    for key in sorted(overrides):
        value = str(overrides[key])
        if key == "data":
            value = os.path.basename(os.path.normpath(value)) or "data"
        parts.append(f"{key}={re.sub(r'[^A-Za-z0-9.]+', '_', value)}")
    return os.path.join("runs", "-".join(parts))


def print_config(spec, preset, config, overrides):
    print(f"{spec.name} - preset '{preset}'" + (f", overridden: {', '.join(sorted(overrides))}" if overrides else ""))
    width = max(len(k) for k in config)
    for key in sorted(config):
        mark = "*" if key in overrides else " "
        print(f"  {mark} {key:<{width}} = {config[key]}")


def widths_list(text):
    """``"16,32,64,128"`` -> [16, 32, 64, 128] (the --widths flag)."""
    try:
        widths = [int(w) for w in str(text).split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--widths wants comma-separated integers, got {text!r}") from None
    if not widths:
        raise argparse.ArgumentTypeError("--widths is empty")
    return widths


def parse_inference_settings(spec, settings):
    """``["eta=1.0", "sampling_steps=50"]`` -> ``{"eta": 1.0, "sampling_steps": 50}``, typed and checked against
    the model's inference keys (``ModelSpec.inference``) and their choices."""
    allowed = ", ".join(spec.inference) or "none"
    parsed = {}
    for item in settings or ():
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in spec.inference:
            raise I2IError(f"--set {item}: a {spec.name} run can change only these test-time settings: {allowed} "
                           "(as KEY=VALUE); anything else would need retraining")
        typ, _, *choices = spec.arguments[key]
        try:
            if typ is bool:
                if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value = text.strip().lower() in ("true", "1", "yes")
            else:
                value = typ(text)
        except ValueError:
            kind = {bool: "true or false", int: "an integer", float: "a number"}.get(typ, typ.__name__)
            raise I2IError(f"--set {item}: {key} must be {kind}, not {text!r}") from None
        if choices and value not in choices[0]:
            raise I2IError(f"--set {item}: choose {key} from {', '.join(map(str, choices[0]))}")
        parsed[key] = value
    return parsed
