"""What the demo's JSON API does, apart from HTTP: uploaded label maps checked and read as the data loaders read
files, examples to start from, and translations by every selected model with their segmentation scores."""

import base64
import binascii
import io
import logging
import os
import tempfile
import threading

import numpy as np
from PIL import Image, UnidentifiedImageError

from data.errors import I2IError, ImageError
from data.images import read_image
from data.sources import resize
from data.synthetic import PALETTE
from train_scripts.demo.translators import MAX_SAMPLING_STEPS, DemoError

log = logging.getLogger("i2i.demo")

DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_MAX_BODY_MB = 32.0
# Pillow modes read as the data loaders read them: gray (8/16/32-bit, 1-bit), palette, RGB, RGBA
ACCEPTED_MODES = {"1", "L", "P", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L"}


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
