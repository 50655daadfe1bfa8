"""The training glue every train script shares: config, run folder, fit(), final scores.

A train script declares a :class:`ModelSpec` (its presets as plain data, how to build and
compile its model from a config, its extra flags) and calls :func:`main`. Everything else is
here, the same for every model:

* config = the preset, overridden by the flags the user gave; printed and saved;
* run folder (default ``runs/<model>-<preset>[-<overrides>]``): ``config.json``,
  ``sessions.jsonl`` (command, commit, versions, device, steps and wall time of every
  invocation), ``log.csv`` (losses per logging interval, by step), ``losses.png``,
  ``samples/step_*.png``, ``tensorboard/``, ``backup/`` (resume state, with optimizer state),
  ``model.weights.h5`` (latest weights), ``scores_<split>.json``;
* ``model.fit`` with Keras's callbacks - ``BackupAndRestore`` (made atomic), ``CSVLogger``,
  ``TensorBoard``, ``ModelCheckpoint``, ``TerminateOnNaN`` - plus ours for sample grids,
  loss plots and step bookkeeping;
* the same command run again resumes from the last checkpoint (and says so); a folder made
  by another model or with another config is refused;
* before training: the run folder must be writable and its disk must hold the checkpoints;
* ``--strategy`` (``tf.distribute``: the model is built in ``strategy.scope()``, Keras splits each
  global batch of ``--batch-size`` images over the replicas, ``models.training.minimize`` scales
  the gradients so losses are means over the global batch) and ``--mixed-precision`` (a Keras
  dtype policy set before the model is built) work for every model.
"""

import argparse
import contextlib
import datetime
import importlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMON_KEYS = {
    "data": "synthetic | facades | PATH (pix2pix A|B, two-folder or Kaggle layout)",
    "image_size": "training resolution (256 = paper, 128, 64)",
    "jitter": "resize before the random crop: study (300 at 256 px) | pix2pix (286) | none",
    "expand": "fixed augmentation factor (study: 6 -> 2400 pairs); 0 = fresh augmentation every step",
    "batch_size": "images per step",
    "steps": "training iterations",
    "seed": "random seed (weights, data order, augmentation)",
    "log_every": "steps per logged row / Keras epoch",
    "checkpoint_every": "steps between checkpoints (multiple of log_every)",
    "sample_every": "steps between sample grids (multiple of log_every)",
    "val_split": "split for validation losses and sample grids",
    "val_images": "validation images used for the per-interval losses (0 = all)",
    "eval_split": "split scored after training (falls back to val when absent)",
    "jit_compile": "XLA-compile the train step",
    "steps_per_execution": "train steps per tf.function call",
    "mixed_precision": "Keras dtype policy: none (float32) | mixed_float16 (with loss scaling) | mixed_bfloat16",
    "budget_minutes": "wall-clock training budget: stop at the first logging interval past it and count the run "
                      "as finished (0 = train all --steps; compare.py gives every model the same budget; a "
                      "larger value on a finished run continues it)",
}
# Common keys added after the first presets were written: their values when a preset (or the config.json of an
# older run) does not name them.
COMMON_DEFAULTS = {"mixed_precision": "none", "budget_minutes": 0.0}
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")


@dataclass
class ModelSpec:
    """What a train script tells the glue about its model."""

    name: str
    description: str
    presets: dict  # preset name -> complete config (plain data)
    build: Callable  # config -> compiled keras.Model with .translate(labels)
    arguments: dict = field(default_factory=dict)  # config key -> (type, help[, choices]) of model-specific flags
    paired: bool = True  # False: photos drawn independently of label maps (CycleGAN)
    # (config, model, val_pairs, run) -> extra Keras callbacks, run before the CSV logger so values they
    # add to ``logs`` at the end of an interval (e.g. a validation KID) become columns of log.csv
    callbacks: Callable | None = None
    # config keys that only change how a trained model translates (sampler, steps, test-time noise), not what it
    # learns: ``evaluate.py --set KEY=VALUE`` may change them when scoring a finished run
    inference: tuple = ()


log = logging.getLogger("i2i")


# ----------------------------------------------------------------------------------------- config

def build_parser(spec):
    p = argparse.ArgumentParser(prog=f"python train_scripts/{spec.name}.py", description=spec.description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="quick", choices=sorted(spec.presets), help="starting configuration")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity")
    p.add_argument("--out", default=None, help="run folder (default: runs/<model>-<preset>[-<overrides>])")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--strategy", default="default", choices=STRATEGIES,
                   help="tf.distribute strategy: default (one device) | mirrored (all local GPUs, else all logical "
                        "CPUs) | multiworker (MultiWorkerMirroredStrategy; one worker only until Keras 3's fit "
                        "supports more); --batch-size is the global batch, split over the replicas")
    types = {"image_size": int, "expand": int, "batch_size": int, "steps": int, "seed": int, "log_every": int,
             "checkpoint_every": int, "sample_every": int, "val_images": int, "steps_per_execution": int,
             "budget_minutes": float}
    for key, helptext in COMMON_KEYS.items():
        if key == "jit_compile":
            p.add_argument("--jit", dest="jit_compile", action=argparse.BooleanOptionalAction, default=None, help=helptext)
            continue
        if key == "mixed_precision":
            p.add_argument("--mixed-precision", dest=key, default=None, choices=PRECISIONS, help=helptext)
            continue
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=types.get(key, str), default=None, help=helptext)
    for key, (typ, helptext, *choices) in spec.arguments.items():
        flag = "--" + key.replace("_", "-")
        if typ is bool:
            p.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            p.add_argument(flag, dest=key, type=typ, default=None, help=helptext, choices=choices[0] if choices else None)
    return p


def resolve_config(spec, args):
    """The preset's config with the user's flags applied, plus the list of overridden keys."""
    config = {**COMMON_DEFAULTS, **spec.presets[args.preset]}
    overrides = {}
    for key in list(COMMON_KEYS) + list(spec.arguments):
        value = getattr(args, key, None)
        if value is not None and value != config.get(key):
            overrides[key] = value
    config.update(overrides)
    check_config(config)
    return config, overrides


def check_config(config):
    from data.errors import I2IError

    for key in ("checkpoint_every", "sample_every"):
        if config[key] % config["log_every"]:
            raise I2IError(f"--{key.replace('_', '-')} {config[key]} must be a multiple of --log-every {config['log_every']}")
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


# ------------------------------------------------------------------------------------- run folder

def environment():
    """Commit, library versions and device, recorded with every session of a run."""
    import keras
    import numpy
    import tensorflow as tf

    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
            cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "commit": commit,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "device": {
            "cpu": cpu,
            "cpu_count": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        },
        "platform": platform.platform(),
    }


class RunFolder:
    """One training run on disk."""

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def config_path(self):
        return self.file("config.json")

    def read_config(self):
        from data.errors import I2IError

        try:
            with open(self.config_path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise I2IError(f"{self.path}: not a run folder (no config.json)") from None
        except (OSError, ValueError) as e:
            raise I2IError(f"{self.config_path}: unreadable ({e})") from None

    def open(self, model, preset, config):
        """Create the folder, or check that it holds a run of this model with this config and can be written."""
        from data.errors import I2IError
        from train_scripts.callbacks import atomic_write_text

        if os.path.exists(self.config_path):
            saved = self.read_config()
            if saved.get("model") != model:
                raise I2IError(
                    f"{self.path} holds a {saved.get('model', 'unknown')} run, not {model}; "
                    f"use --out to choose another folder"
                )
            there = {**COMMON_DEFAULTS, **saved["config"]}
            diff = {k: (there.get(k), v) for k, v in config.items() if there.get(k) != v}
            diff.update({k: (v, None) for k, v in there.items() if k not in config})
            extend = set(diff) == {"budget_minutes"} and 0 < diff["budget_minutes"][0] < diff["budget_minutes"][1]
            if diff and not extend:
                lines = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in sorted(diff.items()))
                raise I2IError(f"{self.path} holds a {model} run with a different config ({lines}); "
                               f"use --out for a new run or repeat the original flags to resume it")
            self.check_writable()  # before anything is written: a read-only folder keeps its old budget
            if extend:
                self._extend_budget(saved, *diff["budget_minutes"])
            return False
        if os.path.exists(self.path) and os.listdir(self.path):
            raise I2IError(f"{self.path} exists and is not a run folder (no config.json); choose another --out")
        try:
            os.makedirs(self.path, exist_ok=True)
            atomic_write_text(self.config_path, json.dumps({"model": model, "preset": preset, "config": config}, indent=2))
        except OSError as e:
            raise I2IError(f"{self.path}: cannot write the run folder ({e.strerror or e}); "
                           "choose another --out") from None
        return True

    def _extend_budget(self, saved, before, after):
        """A larger ``--budget-minutes`` continues the run (weights, optimizer, EMA and log) up to the new budget."""
        from train_scripts.callbacks import atomic_write_text

        saved["config"]["budget_minutes"] = after
        atomic_write_text(self.config_path, json.dumps(saved, indent=2))
        if self.progress().get("budget_reached"):
            self.set_progress(finished=False, budget_reached=False)
        print(f"extending the training budget of {self.path} from {before:g} to {after:g} min")

    def check_writable(self):
        """Fail with a clear message if the folder (or a subfolder or file we add to) cannot be written."""
        from data.errors import I2IError

        folders = [self.path] + [self.file(d) for d in ("backup", "samples", "tensorboard")
                                 if os.path.isdir(self.file(d))]
        for folder in folders:
            try:
                fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
                os.close(fd)
                os.remove(probe)
            except OSError as e:
                raise I2IError(f"{folder}: the run folder is not writable ({e.strerror or e}); "
                               f"fix its permissions or choose another --out") from None
        for name in ("sessions.jsonl", "log.csv"):  # appended to in place
            path = self.file(name)
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise I2IError(f"{path}: not writable; fix its permissions or choose another --out")

    def check_free_space(self, model):
        """Fail before training if the disk cannot hold the checkpoints (see :func:`checkpoint_bytes`).

        A run keeps two checkpoints (``backup/`` and ``model.weights.h5``) and writes each through a
        temporary copy, so up to three exist at once; files already there are replaced.
        """
        from data.errors import I2IError

        size = checkpoint_bytes(model)
        existing = sum(os.path.getsize(p) for p in self.checkpoint_files())
        need = 3 * size + SMALL_FILES_BYTES - existing
        free = shutil.disk_usage(self.path).free
        if free < need:
            raise I2IError(
                f"{self.path}: not enough free disk space: {free / 2**20:.1f} MiB free, the checkpoints need about "
                f"{need / 2**20:.1f} MiB (one checkpoint = weights + optimizer state = {size / 2**20:.1f} MiB, kept in "
                f"backup/ and model.weights.h5, plus a temporary copy while saving); free some space or choose "
                f"another --out")

    def checkpoint_files(self):
        backup = self.file("backup")
        names = os.listdir(backup) if os.path.isdir(backup) else []
        files = [os.path.join(backup, n) for n in names if n.endswith(".h5")]
        return files + [p for p in [self.file("model.weights.h5")] if os.path.exists(p)]

    def progress(self):
        try:
            with open(self.file("progress.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def set_progress(self, **values):
        from train_scripts.callbacks import atomic_write_text

        state = {**self.progress(), **values}
        atomic_write_text(self.file("progress.json"), json.dumps(state, indent=2))

    def append_session(self, record):
        with open(self.file("sessions.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")

    def update_last_session(self, **values):
        """Complete the record written when this session started (a killed session keeps 'running')."""
        from train_scripts.callbacks import atomic_write_text

        records = self.sessions()
        records[-1].update(values)
        atomic_write_text(self.file("sessions.jsonl"), "".join(json.dumps(r) + "\n" for r in records))

    def sessions(self):
        try:
            with open(self.file("sessions.jsonl")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


SMALL_FILES_BYTES = 16 * 2**20  # logs, sample grids, plots, TensorBoard events of a run (generous)


def checkpoint_bytes(model):
    """Bytes of one checkpoint of ``model``: its weights plus the variables of every optimizer it holds."""
    import keras
    import numpy as np
    import tensorflow as tf

    optimizers = {id(o): o for o in [*vars(model).values(), getattr(model, "optimizer", None)]
                  if isinstance(o, keras.optimizers.Optimizer)}
    variables = list(model.weights)
    for optimizer in optimizers.values():
        variables += optimizer.variables
        if hasattr(optimizer, "inner_optimizer"):  # a LossScaleOptimizer's file repeats its inner optimizer's slots
            variables += optimizer.inner_optimizer.variables
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


@contextlib.contextmanager
def precision_policy(config):
    """The Keras dtype policy of ``config['mixed_precision']`` while the block runs (the previous one after)."""
    import keras

    name = config.get("mixed_precision", COMMON_DEFAULTS["mixed_precision"])
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def build_model(spec, config, strategy=None):
    """``spec.build(config)`` under the config's precision policy and inside ``strategy.scope()``."""
    import tensorflow as tf

    with precision_policy(config), (strategy or tf.distribute.get_strategy()).scope():
        return spec.build(config)


def make_strategy(name):
    """The ``tf.distribute`` strategy of ``--strategy``; ``mirrored`` uses all GPUs, else all logical CPUs."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def check_multiworker(strategy):
    """Refuse a cluster of several workers: Keras 3's ``fit`` fails under it (keras-team/keras#20585)."""
    from data.errors import I2IError

    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    workers = sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
    if workers > 1:
        raise I2IError(f"--strategy multiworker: TF_CONFIG describes {workers} workers, but Keras 3's fit() cannot "
                       "train across several workers yet (keras-team/keras#20585, tensorflow/tensorflow#72388); "
                       "use --strategy mirrored for the devices of one machine")


def spec_for(model_name):
    """The ModelSpec of a model name (imports ``train_scripts.<name>``)."""
    from data.errors import I2IError

    try:
        module = importlib.import_module(f"train_scripts.{model_name}")
    except ModuleNotFoundError:
        raise I2IError(f"unknown model '{model_name}'") from None
    return module.SPEC


def parse_inference_settings(spec, settings):
    """``["eta=1.0", "sampling_steps=50"]`` -> ``{"eta": 1.0, "sampling_steps": 50}``, typed and checked against
    the model's inference keys (``ModelSpec.inference``) and their choices."""
    from data.errors import I2IError

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


def load_trained(run_dir, inference=None, seed=None):
    """Rebuild a run's model from its config and load its latest weights: (spec, config, model, run).

    ``inference``: ``KEY=VALUE`` strings changing test-time settings only (see :func:`parse_inference_settings`).
    ``seed``: the random seed of test-time noise (CVAE z, cGAN noise, dropout at test); default the run's own.
    """
    from data.errors import I2IError

    run = RunFolder(run_dir)
    saved = run.read_config()
    if not isinstance(saved, dict) or "model" not in saved or not isinstance(saved.get("config"), dict):
        raise I2IError(f"{run.config_path}: not the config of a run (no 'model' and 'config' entries)")
    spec = spec_for(saved["model"])
    config = {**COMMON_DEFAULTS, **saved["config"], **parse_inference_settings(spec, inference)}
    weights = run.file("model.weights.h5")
    if not os.path.exists(weights):
        raise I2IError(f"{weights}: missing (the run has not reached its first checkpoint, or the file was removed)")
    import keras

    # stochastic translate (CVAE z, dropout) gives the same outputs each time: its seed generators start from this
    keras.utils.set_random_seed(config["seed"] if seed is None else seed)
    model = build_model(spec, config)
    try:
        model.load_weights(weights)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise I2IError(
            f"{weights}: cannot load ({type(e).__name__}: {e}). The file is truncated or corrupt, or holds the "
            f"weights of another model or resolution than {run.config_path} describes "
            f"({saved['model']} at {config.get('image_size')} px)") from None
    return spec, config, model, run


# ---------------------------------------------------------------------------------------- training

def _load_data(spec, config):
    from data.augment import load_size_for
    from data.sources import open_source

    source = open_source(config["data"])
    load_size = load_size_for(config["image_size"], config["jitter"])
    train = source.load("train", load_size)
    val_split = config["val_split"]
    try:
        val = source.load(val_split, config["image_size"])
    except Exception as e:  # a layout without this split: validate on the other held-out split
        from data.errors import LayoutError

        if not isinstance(e, LayoutError) or val_split != "val":
            raise
        print(f"note: no '{val_split}' split in {config['data']}; validating on 'test'")
        val = source.load("test", config["image_size"])
    return source, train, val


def train(spec, config, run, verbose=1, strategy=None, strategy_name="default"):
    """Train (or resume) the run under ``strategy`` (default: one device); returns ``(model, source)``."""
    import keras
    import tensorflow as tf

    from data.errors import I2IError

    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config["batch_size"] % replicas:
        raise I2IError(f"--batch-size {config['batch_size']} is the global batch and must split evenly over the "
                       f"{replicas} replicas of --strategy {strategy_name}")
    keras.utils.set_random_seed(config["seed"])
    source, train_pairs, val_pairs = _load_data(spec, config)
    print(f"data: {len(train_pairs)} training pairs, {len(val_pairs)} validation pairs "
          f"({config['data']}, {config['image_size']} px)")
    if replicas > 1:
        print(f"strategy: {strategy_name}, {replicas} replicas, {config['batch_size'] // replicas} images per replica "
              f"and step")
    with precision_policy(config):  # kept while training: train steps are traced under it
        model = build_model(spec, config, strategy)
        run.check_free_space(model)
        return _fit(spec, config, run, model, source, val_pairs, train_pairs, verbose, strategy, strategy_name)


def _fit(spec, config, run, model, source, val_pairs, train_pairs, verbose, strategy, strategy_name):
    import keras

    from data.pipeline import eval_dataset, to_model_range, training_dataset
    from train_scripts import callbacks as cb

    replicas = strategy.num_replicas_in_sync
    log_every = config["log_every"]
    epochs = config["steps"] // log_every
    backup = cb.AtomicBackupAndRestore(run.file("backup"), save_every=config["checkpoint_every"] // log_every,
                                       total_epochs=epochs)
    start_epoch = backup.saved_epoch()
    csv_path = run.file("log.csv")
    if start_epoch:
        print(f"resuming {run.path} from its checkpoint at step {start_epoch * log_every} of {config['steps']}")
    cb.truncate_log(csv_path, start_epoch)
    previous = cb.read_log(csv_path)
    wall_offset = previous[-1].get("wall_time_s", 0.0) if previous else 0.0

    ds = training_dataset(train_pairs.labels, train_pairs.photos, config["image_size"], config["batch_size"],
                          config["steps"], config["seed"], start_step=start_epoch * log_every,
                          expand=config["expand"], augment=config["jitter"] != "none", paired=spec.paired)
    n_val = config["val_images"] or len(val_pairs)
    if replicas > 1 and n_val % config["batch_size"] and n_val > config["batch_size"]:
        # a short last batch would be split unevenly (or not at all) over the replicas, whose means then differ
        n_val -= n_val % config["batch_size"]
        print(f"note: validating on {n_val} images, a multiple of the global batch")
    val_ds = eval_dataset(val_pairs.labels[:n_val], val_pairs.photos[:n_val], config["batch_size"])
    k = min(4, len(val_pairs))
    sample_labels, sample_photos = (to_model_range(x[:k]).numpy() for x in (val_pairs.labels, val_pairs.photos))
    ckpt_epochs = config["checkpoint_every"] // log_every
    weights_path = run.file("model.weights.h5")
    budget = cb.TimeBudget(60.0 * config.get("budget_minutes", 0.0), backup, weights_path, log_every)
    budget.last_wall_time = wall_offset
    if budget.reached(wall_offset):
        start_epoch = epochs  # the budget ran out before the run was marked finished: nothing left to train
    callbacks = [
        cb.StepInfo(log_every, wall_time_offset=wall_offset, val_keys=["val_" + m.name for m in model.metrics]),
        *(spec.callbacks(config, model, val_pairs, run) if spec.callbacks else []),
        cb.TerminateOnNonFinite(log_every, backup),
        # the log row of an interval is written before its checkpoint is committed: a kill in between resumes
        # from the previous checkpoint and drops the extra rows, never leaves a gap in log.csv
        keras.callbacks.CSVLogger(csv_path, append=True),
        cb.GracefulInterrupt(backup, log_every),
        budget,
        backup,
        keras.callbacks.TensorBoard(run.file("tensorboard"), write_graph=False, update_freq="epoch"),
        cb.IntervalModelCheckpoint(weights_path, every_epochs=ckpt_epochs, total_epochs=epochs),
        cb.SampleGrid(run.file("samples"), sample_labels, sample_photos, lambda x: model.translate(x),
                      every_epochs=config["sample_every"] // log_every, steps_per_epoch=log_every),
        cb.LossPlot(csv_path, run.file("losses.png"), every_epochs=ckpt_epochs),
    ]
    run.append_session({"started": datetime.datetime.now().isoformat(timespec="seconds"),
                        "command": " ".join(sys.argv), "start_step": start_epoch * log_every, "status": "running",
                        "strategy": strategy_name, "replicas": replicas,
                        "batch_per_replica": config["batch_size"] // replicas, **environment()})
    t0 = time.perf_counter()
    status = "interrupted"
    try:
        if start_epoch < epochs:
            model.fit(ds, epochs=epochs, steps_per_epoch=log_every, initial_epoch=start_epoch, callbacks=callbacks,
                      validation_data=val_ds, validation_freq=ckpt_epochs, shuffle=False, verbose=verbose)
        else:  # stopped after its last checkpoint but before it was marked finished: take the weights from there
            backup.set_model(model)
            backup.on_train_begin()
            cb.atomic_save_weights(model, weights_path)
        status = "finished" if backup.saved_epoch() == epochs or budget.reached(budget.last_wall_time) else "stopped"
    except Exception as e:
        status = f"failed: {type(e).__name__}"
        raise
    finally:
        run.update_last_session(end_step=backup.saved_epoch() * log_every, status=status,
                                wall_time_s=round(time.perf_counter() - t0, 1))
    if status != "finished":
        raise KeyboardInterrupt
    steps_done = backup.saved_epoch() * log_every
    run.set_progress(finished=True, steps=steps_done, **({"budget_reached": True} if steps_done < config["steps"] else {}))
    if steps_done < config["steps"]:
        print(f"training budget of {config['budget_minutes']:g} min reached at step {steps_done}: run finished")
    return model, source


# -------------------------------------------------------------------------------------- evaluation

def translate_split(model, pairs, batch_size=8, translate=None):
    """Translate every label map of ``pairs``; returns uint8 outputs (n, H, W, 3)."""
    import numpy as np

    from data.pipeline import eval_dataset, to_uint8

    translate = translate or model.translate
    outs = [to_uint8(translate(label)) for label, _ in eval_dataset(pairs.labels, pairs.photos, batch_size)]
    return np.concatenate(outs)


def quick_scores(model, source, config, run):
    """PSNR and SSIM on the eval split, saved to ``scores_<split>.json`` and printed."""
    from data.errors import LayoutError
    from metrics.image_quality import psnr, ssim

    split = config["eval_split"]
    try:
        pairs = source.load(split, config["image_size"])
    except LayoutError:
        split = "val"
        print(f"note: no '{config['eval_split']}' split in {config['data']}; scoring on 'val'")
        pairs = source.load(split, config["image_size"])
    fakes = translate_split(model, pairs)
    scores = {"split": split, "n_images": len(pairs), "psnr": float(psnr(fakes, pairs.photos).mean()),
              "ssim": float(ssim(fakes, pairs.photos).mean()), "steps": config["steps"]}
    with open(run.file(f"scores_{split}.json"), "w") as f:
        json.dump(scores, f, indent=2)
    print(f"{split}: PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f} on {scores['n_images']} images")
    return scores


# ------------------------------------------------------------------------------------------- main

def print_config(spec, preset, config, overrides):
    print(f"{spec.name} - preset '{preset}'" + (f", overridden: {', '.join(sorted(overrides))}" if overrides else ""))
    width = max(len(k) for k in config)
    for key in sorted(config):
        mark = "*" if key in overrides else " "
        print(f"  {mark} {key:<{width}} = {config[key]}")


def main(spec, argv=None):
    """Entry point of a train script: returns the process exit code."""
    from data.errors import I2IError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser(spec).parse_args(argv)
    try:
        config, overrides = resolve_config(spec, args)
        print_config(spec, args.preset, config, overrides)
        if args.print_config:
            return 0
        out = args.out or default_run_dir(spec, args.preset, overrides)
        strategy = make_strategy(args.strategy) if args.strategy != "default" else None  # before any other TF op
        if args.strategy == "multiworker":
            check_multiworker(strategy)
        run = RunFolder(out)
        run.open(spec.name, args.preset, config)  # checks that an existing run folder is writable
        print(f"run folder: {run.path}")
        if run.progress().get("finished"):
            print(f"this run already finished its {config['steps']} steps; scoring it again")
            spec_, config_, model, run = load_trained(run.path)
            from data.sources import open_source

            quick_scores(model, open_source(config["data"]), config, run)
            return 0
        model, source = train(spec, config, run, verbose=args.verbose, strategy=strategy, strategy_name=args.strategy)
        quick_scores(model, source, config, run)
        print(f"done: {run.path}")
        return 0
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted. Run the same command again to resume from the last checkpoint.", file=sys.stderr)
        return 130
