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

MAX_SAMPLING_STEPS = 1000  # the most sampling steps a request may ask for (a sampler's cost grows with them)
# One translation at a time, whichever the model: a model is never called from two threads at once, TensorFlow's own
# thread pools are not oversubscribed, and the milliseconds shown are each model's own time, not shared time.
COMPUTE_LOCK = threading.Lock()


class DemoError(I2IError):
    """A request the server refuses: HTTP ``status`` with a message for the page."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class DemoModel:
    """One loaded run: its model behind a lock, and how to translate a label map with it, as its ``ModelSpec``
    declares: the sampler settings ``translate`` takes per request, and whether a seed changes its output."""

    name: str
    run_dir: str
    spec: object
    config: dict
    model: object
    finished: bool
    lock: threading.Lock = None  # default: COMPUTE_LOCK, shared by all models

    def __post_init__(self):
        self.lock = self.lock or COMPUTE_LOCK

    @property
    def size(self):
        return int(self.config["image_size"])

    @property
    def settings(self):
        """The sampler settings a request may change (``ModelSpec.sampler_settings``)."""
        return self.spec.sampler_settings

    @property
    def seeded(self):
        """Whether a seed changes the output (``ModelSpec.seeded``: test-time noise or a sampler)."""
        return self.spec.seeded(self.config)

    def defaults(self):
        """The run's own settings and seed (what the page starts with, and what a request leaves out)."""
        values = {key: self.spec.arguments[key][0](self.config[key]) for key in self.settings}
        return {**values, "seed": int(self.config[self.spec.noise_seed])} if self.seeded else values

    def info(self):
        choices = {key: list(self.spec.arguments[key][2]) for key in self.settings if len(self.spec.arguments[key]) > 2}
        return {"name": self.name, "model": self.spec.name, "run_dir": self.run_dir, "resolution": self.size,
                "preset": self.config.get("preset"), "data": self.config.get("data"), "finished": self.finished,
                "diffusion": bool(self.settings), "seeded": self.seeded, "settings": list(self.settings),
                "choices": choices, "defaults": self.defaults()}

    def parse_settings(self, settings):
        """Check a request's settings for this model: ``(seed or None, {sampler settings}, settings used)``.

        Types and choices are those of ``--set`` (``config.parse_inference_settings``); whether the values suit the
        run (e.g. guidance without condition dropout) is the model's to say when it translates."""
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise DemoError(f"{self.name}: settings must be an object, got {type(settings).__name__}")
        allowed = (*self.settings, "seed") if self.seeded else self.settings
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
        if used.get("sampling_steps", 0) > MAX_SAMPLING_STEPS:
            raise DemoError(f"{self.name}: sampling_steps must be at most {MAX_SAMPLING_STEPS} here")
        return used.get("seed"), {key: used[key] for key in self.settings}, used

    def translate(self, label, settings=None):
        """Translate one uint8 label map (any square size; resized to this model's resolution as the data loaders
        resize): ``(uint8 output at this model's resolution, milliseconds, settings used)``. The seed (the request's,
        else the run's) makes this call's noise, so the same request gives the same output whatever came before."""
        seed, sampler_settings, used = self.parse_settings(settings)
        label = resize(label, self.size)
        translate = functools.partial(self.model.translate, seed=seed, **sampler_settings)
        with self.lock:
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
