"""The demo's models: each run loaded once, behind the lock that runs one translation at a time, with its test-time
settings and seeds checked per request."""

import dataclasses
import functools
import logging
import threading
import time
import traceback

import numpy as np

from data.errors import I2IError
from data.sources import resize
from data.synthetic import PALETTE
from train_scripts.demo.runs import display_names
from train_scripts.training.config import parse_inference_settings
from train_scripts.training.inference import load_translator, translate_batch

log = logging.getLogger("i2i.demo")

MAX_SAMPLING_STEPS = 1000
# One translation at a time, whichever the model: a model is never called from two threads at once, TensorFlow's own
# thread pools are not oversubscribed, and the milliseconds shown are each model's own time, not shared time.
COMPUTE_LOCK = threading.Lock()
# models whose translate draws test-time noise from a keras SeedGenerator when so configured
SEEDED_NOISE = {"cvae": lambda c: c.get("sample_at_test", True), "cgan": lambda c: True,
                "pix2pix": lambda c: c.get("dropout_at_test", False)}


class DemoError(I2IError):
    """A request the server refuses: HTTP ``status`` with a message for the page."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def seed_variables(model):
    """The state variables of the model's keras SeedGenerators (test-time noise of CVAE, cGAN, dropout)."""
    return [v for v in model.variables if "seed_generator" in getattr(v, "path", v.name)]


@dataclasses.dataclass
class DemoModel:
    """One loaded run: its model behind a lock, and how to translate a label map with it."""

    name: str
    run_dir: str
    spec: object
    config: dict
    model: object
    finished: bool
    lock: threading.Lock = None  # default: COMPUTE_LOCK, shared by all models
    seed_state: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.lock = self.lock or COMPUTE_LOCK
        # the state of every seed generator right after loading: restored before each request, so the same label map
        # gives the same output whatever came before (the output of a freshly loaded run)
        self.seed_state = [(v, np.array(v.numpy())) for v in seed_variables(self.model)]

    @property
    def size(self):
        return int(self.config["image_size"])

    @property
    def diffusion(self):
        return "sample_seed" in self.spec.inference

    @property
    def seeded(self):
        """Whether a seed changes the output (diffusion sampler, or CVAE/cGAN noise, test-time dropout)."""
        noisy = SEEDED_NOISE.get(self.spec.name, lambda config: False)
        return self.diffusion or (bool(self.seed_state) and noisy(self.config))

    def defaults(self):
        """The run's own test-time settings (what the page starts with)."""
        if self.diffusion:
            return {"sampler": self.config["sampler"], "sampling_steps": int(self.config["sampling_steps"]),
                    "eta": float(self.config["eta"]), "guidance": float(self.config["guidance"]),
                    "seed": int(self.config["sample_seed"])}
        return {"seed": None} if self.seeded else {}

    def info(self):
        sampler_choices = self.spec.arguments["sampler"][2] if self.diffusion else ()
        return {"name": self.name, "model": self.spec.name, "run_dir": self.run_dir, "resolution": self.size,
                "preset": self.config.get("preset"), "data": self.config.get("data"), "finished": self.finished,
                "diffusion": self.diffusion, "seeded": self.seeded, "defaults": self.defaults(),
                "samplers": list(sampler_choices),
                "guidance_allowed": bool(self.config.get("condition_dropout")) if self.diffusion else False}

    def parse_settings(self, settings):
        """Check a request's settings for this model: ``({translate kwargs}, seed or None, settings used)``.

        Types and choices are those of ``--set`` (``config.parse_inference_settings``)."""
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise DemoError(f"{self.name}: settings must be an object, got {type(settings).__name__}")
        allowed = ("sampler", "sampling_steps", "eta", "guidance", "seed") if self.diffusion else \
            ("seed",) if self.seeded else ()
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise DemoError(f"{self.name}: unknown setting(s) {', '.join(unknown)}; this model takes "
                            f"{', '.join(allowed) or 'none'}")
        seed = settings.get("seed")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) and not (isinstance(seed, str) and seed.isdigit()):
                raise DemoError(f"{self.name}: seed must be an integer, not {seed!r}")
            seed = int(seed)
            if not 0 <= seed < 2 ** 31:
                raise DemoError(f"{self.name}: seed must be between 0 and {2 ** 31 - 1}, got {seed}")
        items = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()
                 if k != "seed" and v is not None]
        try:
            parsed = parse_inference_settings(self.spec, items)
        except I2IError as e:
            raise DemoError(f"{self.name}: {str(e).replace('--set ', '')}") from None
        used = {**self.defaults(), **parsed, **({"seed": seed} if seed is not None else {})}
        if self.diffusion:
            if not 1 <= used["sampling_steps"] <= MAX_SAMPLING_STEPS:
                raise DemoError(f"{self.name}: sampling_steps must be between 1 and {MAX_SAMPLING_STEPS}")
            if used["eta"] < 0 or used["guidance"] < 0:
                raise DemoError(f"{self.name}: eta and guidance must be >= 0")
            if used["guidance"] and not self.config.get("condition_dropout"):
                raise DemoError(f"{self.name}: guidance needs a run trained with condition dropout; this one was "
                                "not (leave guidance at 0)")
            kwargs = {"sampler": used["sampler"], "steps": used["sampling_steps"], "eta": used["eta"],
                      "guidance": used["guidance"]}
            return kwargs, used["seed"], used
        return {}, seed, used

    def reset_noise(self, seed):
        """Seed generators back to their state after loading (``seed`` None), or started from ``seed``."""
        for i, (variable, value) in enumerate(self.seed_state):
            if seed is None:
                variable.assign(value)
            else:
                state = np.zeros_like(value)
                state.flat[0], state.flat[-1] = seed, i  # [seed, counter]; one stream per generator
                variable.assign(state)

    def translate(self, label, settings=None):
        """Translate one uint8 label map (any square size; resized to this model's resolution as the data loaders
        resize): ``(uint8 output at this model's resolution, milliseconds, settings used)``."""
        kwargs, seed, used = self.parse_settings(settings)
        label = resize(label, self.size)
        if self.diffusion:
            translate = functools.partial(self.model.translate, seed=seed, **kwargs)
        else:
            translate = self.model.translate
        with self.lock:
            if not self.diffusion:
                self.reset_noise(seed)
            start = time.perf_counter()
            output = translate_batch(self.model, translate, [(self.name, label, label.shape[:2])], 1)[0]
            ms = (time.perf_counter() - start) * 1000
        return output, ms, used


def load_models(run_dirs, warmup=True):
    """Load every run once: ``([DemoModel], [(run_dir, problem)])``; a run that cannot be loaded is logged and
    listed, the others are kept."""
    models, failures = [], []
    for name, run_dir in zip(display_names(run_dirs), run_dirs):
        try:
            spec, config, model, run = load_translator(run_dir, None)
        except I2IError as e:
            log.error("cannot load %s: %s", run_dir, e)
            failures.append((run_dir, str(e)))
            continue
        except Exception as e:  # a broken config (missing keys, wrong types): report it, keep serving the others
            log.error("cannot load %s: %s: %s\n%s", run_dir, type(e).__name__, e, traceback.format_exc())
            failures.append((run_dir, f"{type(e).__name__}: {e}"))
            continue
        demo_model = DemoModel(name, run.path, spec, config, model, bool(run.progress().get("finished")))
        if warmup:  # trace the translate graph now, not in the user's first request
            try:
                demo_model.translate(np.broadcast_to(np.uint8(PALETTE["background"]), (8, 8, 3)).copy())
            except Exception as e:
                log.error("cannot load %s: translating failed: %s: %s\n%s", run_dir, type(e).__name__, e,
                          traceback.format_exc())
                failures.append((run_dir, f"translating failed: {type(e).__name__}: {e}"))
                continue
        models.append(demo_model)
        log.info("loaded %s: %s at %d px from %s", name, spec.name, config["image_size"], run.path)
    return models, failures
