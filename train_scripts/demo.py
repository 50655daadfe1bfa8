"""Draw a facade, watch every model translate it: a local web page serving trained runs (issue 22).

    python train_scripts/demo.py                                   # every finished run under runs/, newest first
    python train_scripts/demo.py runs/compare-synthetic-quick      # the runs of one compare.py folder
    python train_scripts/demo.py runs/pix2pix-quick runs/ddim-quick --port 8080
    python train_scripts/demo.py EXPORT_DIR                        # an exported model (export.py), as a run

Starts a web server on 127.0.0.1 only (``--port``, default 8000, or a free port when 8000 is taken; ``--port 0``:
always a free port) and prints its address. The page (``train_scripts/demo_page/``: plain HTML/JS/CSS served by this
server, nothing fetched from anywhere else) has a canvas at the largest resolution of the runs, the 12 facade classes
of :data:`data.synthetic.PALETTE` by name and colour, a rectangle tool, a brush, undo, clear, "load an example" (a
label map of the val split of a run's data when that data is a folder on this machine, else of the synthetic
generator) and upload of your own label map. "Translate" sends the canvas to every selected model; each output comes
back with the model's name and the milliseconds it took, and can be downloaded as PNG. The diffusion models' test-time
settings (sampler, sampling steps, eta, guidance; see ``ModelSpec.inference``) and the seed can be set per model;
"sample again" draws another photo of the same label map with a new seed (also for the CVAE and cGAN, whose test-time
noise is then drawn from that seed).

Models are loaded once, at start, with ``inference.load_trained`` (through ``inference.load_translator``); every label map is
read with ``data.images.read_image`` and resized to each model's own resolution with the data loaders' ``resize``,
then translated with ``inference.translate_batch`` (``inference.translate_split``), as ``translate.py`` does. A run that
cannot be loaded is reported on the page and on stderr; the others are served. Requests are served by threads;
translations run one at a time under one lock (concurrent requests are safe, and each output's milliseconds are its
model's own time); a model's stochastic test-time noise restarts from its seed on every request, so the same label map
and seed give the same output, equal to a freshly loaded run's ``model.translate``.

JSON API (all images PNG data URLs): ``GET /api/models``, ``GET /api/example?index=N``, ``POST /api/label``
``{"image"}`` (an upload, checked and resized to the canvas), ``POST /api/translate`` ``{"label", "models",
"settings": {name: {...}}}``. Bad input (not an image, over ``--max-pixels``, a channel count other than gray, RGB
or RGBA, an unknown model, a malformed body, a body over ``--max-body-mb``) gets a 4xx JSON ``{"error": ...}``.
"""

import argparse
import base64
import binascii
import contextlib
import dataclasses
import errno
import functools
import http.server
import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from data.errors import I2IError, ImageError  # noqa: E402
from data.images import read_image  # noqa: E402
from data.sources import resize  # noqa: E402
from data.synthetic import PALETTE  # noqa: E402

log = logging.getLogger("i2i.demo")

HOST = "127.0.0.1"  # never another interface
DEFAULT_PORT = 8000
DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_MAX_BODY_MB = 32.0
MAX_SAMPLING_STEPS = 1000
PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_page")
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/index.html": ("index.html", "text/html; charset=utf-8"),
                "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
                "/demo.css": ("demo.css", "text/css; charset=utf-8")}
# the page may load its own files and data: URLs only; nothing from another host
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; script-src 'self'; "
                           "style-src 'self'; font-src 'none'; object-src 'none'; frame-ancestors 'none'; "
                           "base-uri 'none'; form-action 'none'")
# Pillow modes read as the data loaders read them: gray (8/16/32-bit, 1-bit), palette, RGB, RGBA
ACCEPTED_MODES = {"1", "L", "P", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L"}
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


# ------------------------------------------------------------------------------------------ finding runs

def is_run(path):
    return os.path.isfile(os.path.join(path, "config.json"))


def reconstructs_photos(path):
    """True for the run of a model that translates no label maps (the autoencoder): folders of runs skip it."""
    from train_scripts.training.registry import spec_for

    try:
        with open(os.path.join(path, "config.json")) as f:
            return spec_for(json.load(f)["model"]).reconstructs
    except (OSError, ValueError, TypeError, KeyError, I2IError):  # a broken run: loading it reports the problem
        return False


def run_time(path):
    """When the run last changed: its weights' mtime (else its config's)."""
    for name in ("model.weights.h5", "config.json"):
        with contextlib.suppress(OSError):
            return os.path.getmtime(os.path.join(path, name))
    return 0.0


def finished_runs(root):
    """Every finished run folder (``RunFolder.progress()["finished"]``) and exported model under ``root``, newest
    first."""
    from train_scripts.training.export_folder import ExportFolder, is_export
    from train_scripts.training.run_folder import RunFolder

    found = []
    for folder, subfolders, _ in os.walk(root):
        if is_run(folder):
            subfolders[:] = []  # a run's own folders (backup/, samples/, ...) hold no runs
            progress = ExportFolder(folder).progress if is_export(folder) else RunFolder(folder).progress
            if progress().get("finished") and not reconstructs_photos(folder):
                found.append(folder)
        else:
            subfolders.sort()
    return sorted(found, key=run_time, reverse=True)


def runs_of(path):
    """The run folders that a command-line argument names: itself if it is a run, else its subfolders that are runs
    (a ``compare.py`` folder; in compare.py's model order, then by name). ``[]``: neither."""
    if is_run(path):
        return [path]
    if not os.path.isdir(path):
        return []
    from train_scripts.training.registry import COMPARISON_MODELS

    order = list(COMPARISON_MODELS)
    subfolders = [os.path.join(path, n) for n in sorted(os.listdir(path))
                  if is_run(os.path.join(path, n)) and not reconstructs_photos(os.path.join(path, n))]
    return sorted(subfolders, key=lambda p: (order.index(os.path.basename(p)) if os.path.basename(p) in order
                                             else len(order), os.path.basename(p)))


def resolve_runs(paths, default_root):
    """(run folders to load, [(argument, problem)] for arguments that name no run)."""
    if not paths:
        runs = finished_runs(default_root) if os.path.isdir(default_root) else []
        return runs, [] if runs else [(default_root, "no finished runs found (train one, or name run folders)")]
    runs, problems = [], []
    for path in paths:
        found = runs_of(path)
        if not found:
            problems.append((path, "no such folder" if not os.path.exists(path) else
                             "not a run folder (no config.json) and no run folders in it"))
        runs += [r for r in found if os.path.abspath(r) not in map(os.path.abspath, runs)]
    return runs, problems


def display_names(run_dirs):
    """A short unique name per run: its folder name, else parent/folder, else with a number."""
    names, taken = [], set()
    for path in run_dirs:
        parts = os.path.abspath(path).rstrip("/").split("/")
        name = parts[-1]
        if name in taken and len(parts) > 1:
            name = "/".join(parts[-2:])
        base, n = name, 2
        while name in taken:
            name, n = f"{base}#{n}", n + 1
        taken.add(name)
        names.append(name)
    return names


# ------------------------------------------------------------------------------------------ models

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
        from train_scripts.training.config import parse_inference_settings

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
        from train_scripts.training.inference import translate_batch

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
    from train_scripts.training.inference import load_translator

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


# ------------------------------------------------------------------------------------------ images

def decode_data_url(text, what="image"):
    """``data:image/png;base64,...`` (or bare base64) -> bytes."""
    if not isinstance(text, str) or not text:
        raise DemoError(f"{what}: expected a PNG/JPEG data URL (data:image/...;base64,...) as a string")
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise DemoError(f"{what}: a data URL must be base64-encoded (data:<type>;base64,<data>)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DemoError(f"{what}: not valid base64") from None


def png_data_url(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def read_upload(data, max_pixels, what="upload"):
    """An uploaded image's bytes -> (HxWx3 uint8 RGB, notes), read as the data loaders read files.

    Refuses bytes that are not an image, more than ``max_pixels`` pixels (checked from the header, before
    decoding) and channel layouts other than gray, palette, RGB and RGBA (e.g. gray + alpha, CMYK)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            (width, height), mode, bands = img.size, img.mode, img.getbands()
            has_transparency = "transparency" in img.info
    except UnidentifiedImageError:
        raise DemoError(f"{what}: not an image (or a format Pillow cannot read)", 415) from None
    except Image.DecompressionBombError as e:
        raise DemoError(f"{what}: too large ({e})", 413) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DemoError(f"{what}: corrupt image ({e})") from None
    if width * height > max_pixels:
        raise DemoError(f"{what}: {width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} "
                        "pixels; shrink the image", 413)
    if mode not in ACCEPTED_MODES:
        raise DemoError(f"{what}: a {len(bands)}-channel image ({mode}: {', '.join(bands)}) cannot be a label map; "
                        "use RGB (grayscale and RGBA are converted)", 415)
    fd, path = tempfile.mkstemp(prefix="i2i-demo-", suffix=".img")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        image = read_image(path)  # EXIF orientation, gray/palette/16-bit/RGBA -> 8-bit RGB, as the data loaders
    except ImageError as e:
        raise DemoError(f"{what}: {e.problem}") from None
    except Image.DecompressionBombError as e:  # only with a --max-pixels above Pillow's own limit
        raise DemoError(f"{what}: too large ({e})", 413) from None
    finally:
        os.remove(path)
    notes = []
    if mode in ("1", "L", "I", "I;16", "I;16B", "I;16L"):
        notes.append("grayscale image converted to RGB")
    if mode == "RGBA" or has_transparency:
        notes.append("alpha channel dropped")
    return image, notes


# ------------------------------------------------------------------------------------------ examples

class Examples:
    """Label maps for "load an example": the val split of the first run whose data is a folder on this machine
    (``--data PATH``, or the facades already in the cache), else the synthetic generator's val split."""

    def __init__(self, models, size):
        self.size = size
        self.pairs, self.description = None, "synthetic facades, val split"
        for m in models:
            root = self._folder(m.config.get("data"))
            if root is None:
                continue
            try:
                from data.layouts import find_pairs

                self.pairs = find_pairs(root, "val")
                self.description = f"{root}, val split"
                break
            except I2IError as e:
                log.warning("examples: %s has no usable val split (%s)", root, e)

    @staticmethod
    def _folder(data):
        if data in (None, "", "synthetic"):
            return None
        if data == "facades":
            from data.facades import facades_root

            try:
                return facades_root(download=False)  # never downloads: the demo fetches nothing
            except I2IError:
                return None
        return data if os.path.isdir(os.path.expanduser(str(data))) else None

    def __len__(self):
        from data.synthetic import SPLIT_SIZES

        return len(self.pairs) if self.pairs is not None else SPLIT_SIZES["val"]

    def get(self, index):
        """(label map at the canvas size, name) of example ``index`` (modulo the split size)."""
        index %= len(self)
        if self.pairs is not None:
            from data.sources import read_pair

            pair = self.pairs[index]
            label, _ = read_pair(pair)
            return resize(label, self.size), f"{self.description} #{index + 1} ({pair.name})"
        from data.synthetic import SPLIT_STARTS, make_pairs

        labels, _ = make_pairs(1, size=self.size, seed=0, start=SPLIT_STARTS["val"] + index)
        return labels[0], f"{self.description} #{index + 1}"


# ------------------------------------------------------------------------------------------ the application

class DemoApp:
    """The loaded models and what the API does, apart from HTTP."""

    def __init__(self, models, failures, max_pixels=DEFAULT_MAX_PIXELS, max_body_bytes=None, parser=None,
                 parser_note=None):
        self.models = {m.name: m for m in models}
        self.parser = parser  # the facade parser scoring each output against the drawn label map, or None
        self.parser_note = parser_note or ("" if parser else "the segmentation score is unavailable: no facade "
                                                              "parser")
        self._parser_lock = threading.Lock()
        self.failures = list(failures)
        self.max_pixels = max_pixels
        self.max_body_bytes = max_body_bytes or int(DEFAULT_MAX_BODY_MB * 2 ** 20)
        self.canvas_size = max((m.size for m in models), default=256)
        self.examples = Examples(models, self.canvas_size)
        self._examples_lock = threading.Lock()

    def describe(self):
        return {"canvas_size": self.canvas_size,
                "palette": [{"name": name, "color": list(colour)} for name, colour in PALETTE.items()],
                "models": [m.info() for m in self.models.values()],
                "failed": [{"run_dir": d, "error": e} for d, e in self.failures],
                "examples": {"source": self.examples.description, "count": len(self.examples)},
                "segmentation": self.segmentation_info(),
                "limits": {"max_pixels": self.max_pixels, "max_body_bytes": self.max_body_bytes,
                           "max_sampling_steps": MAX_SAMPLING_STEPS}}

    def segmentation_info(self):
        return {"available": self.parser is not None, "note": self.parser_note}

    def segmentation(self, output, label):
        """``{"seg_miou", "seg_acc"}`` of one output against the drawn label map (None without the parser)."""
        from metrics.segmentation import segmentation_scores

        if self.parser is None:
            return None
        with self._parser_lock:
            scores = segmentation_scores(output[None], label[None], self.parser)
        return {k: (None if np.isnan(scores[k]) else round(scores[k], 4)) for k in ("seg_miou", "seg_acc")}

    def example(self, query):
        text = (query.get("index") or ["0"])[0]
        try:
            index = int(text)
        except ValueError:
            raise DemoError(f"index must be an integer, not {text!r}") from None
        with self._examples_lock:
            label, name = self.examples.get(index)
        return {"image": png_data_url(label), "index": index % len(self.examples), "name": name}

    def label(self, body):
        """An uploaded label map, checked and resized to the canvas."""
        image, notes = read_upload(decode_data_url(body.get("image"), "upload"), self.max_pixels)
        h, w = image.shape[:2]
        if (h, w) != (self.canvas_size,) * 2:
            notes.append(f"resized from {w}x{h} to {self.canvas_size}x{self.canvas_size}")
        return {"image": png_data_url(resize(image, self.canvas_size)), "width": w, "height": h, "notes": notes}

    def select(self, names):
        if names is None:
            return list(self.models.values())
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DemoError("models must be a list of model names")
        failed = {os.path.basename(d.rstrip("/")): e for d, e in self.failures}
        for name in names:
            if name not in self.models:
                why = f"it failed to load ({failed[name]})" if name in failed else \
                    f"the models are: {', '.join(self.models) or 'none'}"
                raise DemoError(f"unknown model {name!r}: {why}", 404)
        if not names:
            raise DemoError("no model selected")
        return [self.models[n] for n in dict.fromkeys(names)]

    def translate(self, body):
        models = self.select(body.get("models"))
        settings = body.get("settings") or {}
        if not isinstance(settings, dict):
            raise DemoError("settings must be an object {model name: {setting: value}}")
        unknown = sorted(set(settings) - set(self.models))
        if unknown:
            raise DemoError(f"settings for unknown model(s) {', '.join(map(repr, unknown))}", 404)
        for m in models:  # refuse bad settings before translating anything
            m.parse_settings(settings.get(m.name))
        label, notes = read_upload(decode_data_url(body.get("label"), "label"), self.max_pixels, "label")
        label = resize(label, self.canvas_size)
        outputs = []
        for m in models:
            try:
                output, ms, used = m.translate(label, settings.get(m.name))
            except I2IError as e:
                raise DemoError(f"{m.name}: {e}") from None
            outputs.append({"model": m.name, "family": m.spec.name, "image": png_data_url(output),
                            "resolution": m.size, "ms": round(ms, 1), "settings": used,
                            "segmentation": self.segmentation(output, label)})
        return {"outputs": outputs, "canvas_size": self.canvas_size, "notes": notes,
                "segmentation": self.segmentation_info()}


class Handler(http.server.BaseHTTPRequestHandler):
    """Static page files and the JSON API; every refusal is a JSON ``{"error"}`` with a 4xx status."""

    server_version = "i2i-demo"
    protocol_version = "HTTP/1.1"
    app: DemoApp = None  # set by make_server
    timeout = 120  # seconds a connection may sit idle or stall mid-request before its thread lets it go

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)

    # ------------------------------------------------------------------ responses

    def _send(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status, message):
        log.warning("refused %s %s (HTTP %d): %s", self.command, self.path.split("?")[0], status, message)
        self._json(status, {"error": message, "status": status})

    # ------------------------------------------------------------------ requests

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path in STATIC_FILES:
                name, content_type = STATIC_FILES[url.path]
                with open(os.path.join(PAGE_DIR, name), "rb") as f:
                    return self._send(200, f.read(), content_type)
            if url.path == "/api/models":
                return self._json(200, self.app.describe())
            if url.path == "/api/example":
                return self._json(200, self.app.example(urllib.parse.parse_qs(url.query)))
            if url.path == "/favicon.ico":
                return self._send(204, b"", "image/x-icon")
            raise DemoError(f"no such page: {url.path}", 404)
        except DemoError as e:
            self._error(e.status, str(e))
        except Exception as e:  # a bug must not stop the server: report it
            log.error("GET %s failed:\n%s", url.path, traceback.format_exc())
            self._error(500, f"internal error: {type(e).__name__}: {e}")

    do_HEAD = do_GET

    def _body(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise DemoError("send the body with a Content-Length (no chunked transfer)", 411)
        text = self.headers.get("Content-Length")
        if text is None:
            raise DemoError("a Content-Length header is required", 411)
        try:
            length = int(text)
        except ValueError:
            self.close_connection = True
            raise DemoError(f"bad Content-Length {text!r}") from None
        if length > self.app.max_body_bytes:
            self.close_connection = True  # the body is not read
            raise DemoError(f"request body of {length:,} bytes is over the limit of {self.app.max_body_bytes:,} "
                            "bytes", 413)
        if length < 0:
            self.close_connection = True
            raise DemoError(f"bad Content-Length {text!r}")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise DemoError(f"malformed JSON body: {e}") from None
        if not isinstance(body, dict):
            raise DemoError(f"the JSON body must be an object, got {type(body).__name__}")
        return body

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            routes = {"/api/translate": self.app.translate, "/api/label": self.app.label}
            if url.path not in routes:
                self.close_connection = True
                raise DemoError(f"no such API: POST {url.path}", 404)
            body = self._body()
            self._json(200, routes[url.path](body))
        except DemoError as e:
            self._error(e.status, str(e))
        except Exception as e:
            log.error("POST %s failed:\n%s", url.path, traceback.format_exc())
            self._error(500, f"internal error: {type(e).__name__}: {e}")


def make_server(app, port=0):
    """A threading HTTP server for ``app`` on 127.0.0.1:``port`` (0: a free port); not yet serving."""
    handler = type("DemoHandler", (Handler,), {"app": app})
    server = http.server.ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def bind(app, port):
    """The server on ``port``; by default (None) 8000, or a free port when 8000 is taken."""
    if port is not None:
        try:
            return make_server(app, port)
        except OSError as e:
            raise I2IError(f"cannot listen on {HOST}:{port} ({e.strerror or e}); choose another --port "
                           "(0: any free port)") from None
    try:
        return make_server(app, DEFAULT_PORT)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        log.info("port %d is taken; using a free port", DEFAULT_PORT)
        return make_server(app, 0)


# ------------------------------------------------------------------------------------------ command line

def build_parser():
    from train_scripts.training.config import workspace_root

    p = argparse.ArgumentParser(prog="python train_scripts/demo.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="run folders or exported models (export.py), or compare.py folders whose subfolders are runs "
                        "(default: every finished run and exported model under --runs-root, newest first)")
    p.add_argument("--runs-root", default=os.path.join(workspace_root(), "runs"),
                   help="where runs are looked for when no RUN_DIR is given")
    p.add_argument("--port", type=int, default=None,
                   help=f"port on {HOST} (default: {DEFAULT_PORT}, or a free port if it is taken; 0: a free port)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse uploaded images with more pixels than this")
    p.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB,
                   help="refuse request bodies larger than this many MiB")
    p.add_argument("--parser", metavar="DIR",
                   help="facade parser folder for the segmentation score of each output (default: "
                        "$I2I_FACADE_PARSER, else metrics/weights/facade_parser/; without one the page says the "
                        "score is unavailable)")
    return p


def load_parser(path):
    """(the facade parser or None, a note for the page): a missing or broken parser leaves the score out."""
    from metrics.facade_parser import load_facade_parser
    from metrics.weights import WeightsError

    try:
        return load_facade_parser(path), ""
    except WeightsError as e:
        log.warning("no segmentation score: %s", e)
        return None, "the segmentation score is unavailable: the facade parser's weights are not installed"


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        if args.port is not None and not 0 <= args.port < 65536:
            raise I2IError(f"--port must be between 0 and 65535, got {args.port}")
        if args.max_pixels < 1 or args.max_body_mb <= 0:
            raise I2IError("--max-pixels and --max-body-mb must be positive")
        run_dirs, problems = resolve_runs(args.runs, os.path.normpath(args.runs_root))
        for path, problem in problems:
            log.error("%s: %s", path, problem)
        models, failures = load_models(run_dirs)
        parser, parser_note = load_parser(args.parser)
        app = DemoApp(models, problems + failures, args.max_pixels, int(args.max_body_mb * 2 ** 20), parser,
                      parser_note)
        server = bind(app, args.port)
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"serving {len(models)} model(s) ({', '.join(app.models) or 'none'}; {len(app.failures)} not loaded) "
          f"at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
