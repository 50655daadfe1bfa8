"""The facade parser as a metric network: its files, their checks, and class maps of photos.

The parser (:mod:`models.facade_parser`, trained by ``train_scripts/facade_parser.py`` on the facades train photos)
ships like the FID Inception weights: two files in one folder, by default ``metrics/weights/facade_parser/`` of this
repository,

* ``facade_parser.json``: the network's configuration (``image_size``, ``width``, ``class_names``), how it was
  trained, and ``weights_sha256``, the checksum of the weights file it belongs to;
* ``facade_parser.npz``: the weights, one float16 array per Keras variable path (numpy npz, no pickle).

:func:`load_facade_parser` refuses, with a :class:`metrics.weights.WeightsError` naming the file, a missing folder or
file, a weights file whose sha256 differs from its config's (truncated, corrupt or swapped), and a file of another
network (arrays missing or of other shapes). Photos of any size are resized to the parser's ``image_size`` with
:func:`data.sources.resize` (area filter when shrinking, bicubic when growing), the resize that made its training
photos from the 256 px facades, so that a 64 px and a 256 px model are judged on the same 128 px grid.
"""

import json
import os
import zipfile

import numpy as np

from data.errors import I2IError
from data.label_classes import NUM_CLASSES
from data.sources import resize
from data.synthetic import CLASS_NAMES
from metrics.weights import REPO_ROOT, WeightsError, file_digest

DEFAULT_DIR = os.path.join(REPO_ROOT, "metrics", "weights", "facade_parser")
WEIGHTS_NAME = "facade_parser.npz"
CONFIG_NAME = "facade_parser.json"
NETWORK_NAME = "facade-parser"
ENV_VAR = "I2I_FACADE_PARSER"  # another parser folder for every scoring command (``--parser`` sets it too)


def save_facade_parser(model, folder, config):
    """Write ``model``'s weights (float16) and ``config`` plus the weights' sha256 into ``folder``; returns paths."""
    os.makedirs(folder, exist_ok=True)
    weights_path, config_path = os.path.join(folder, WEIGHTS_NAME), os.path.join(folder, CONFIG_NAME)
    arrays = {v.path: np.asarray(v.numpy(), np.float16) for v in model.weights}
    tmp = weights_path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, weights_path)
    config = dict(config, network=NETWORK_NAME, weights_file=WEIGHTS_NAME,
                  weights_sha256=file_digest(weights_path, "sha256"))
    with open(config_path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(config_path + ".tmp", config_path)
    return weights_path, config_path


def _folder_of(path):
    """The parser folder named by ``path``: the folder itself, or the folder of its weights or config file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    if os.path.basename(path) in (WEIGHTS_NAME, CONFIG_NAME) and os.path.isdir(os.path.dirname(path) or "."):
        return os.path.dirname(path) or "."
    raise WeightsError(f"{path}: facade parser not found (expected a folder holding {WEIGHTS_NAME} and "
                       f"{CONFIG_NAME}, or the path of one of them)")


def read_parser_config(folder):
    """The checked config of the parser in ``folder``."""
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: facade parser config not found (train one with train_scripts/facade_parser.py "
                           f"and copy its {CONFIG_NAME} and {WEIGHTS_NAME} here, or pass their folder)")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable facade parser config ({e})") from None
    if not isinstance(config, dict) or config.get("network") != NETWORK_NAME:
        raise WeightsError(f"{path}: not a facade parser config (no \"network\": \"{NETWORK_NAME}\")")
    missing = [k for k in ("image_size", "width", "class_names", "weights_sha256") if k not in config]
    if missing:
        raise WeightsError(f"{path}: facade parser config lacks {', '.join(missing)}")
    if list(config["class_names"]) != list(CLASS_NAMES):
        raise WeightsError(f"{path}: the parser's classes {config['class_names']} are not the 12 CMP classes "
                           f"{list(CLASS_NAMES)} in this order")
    return config


def read_parser_arrays(folder, config):
    """The weight arrays (float32) of the parser in ``folder``, after checking the file's sha256."""
    path = os.path.join(folder, WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: facade parser weights not found (its config {CONFIG_NAME} is there)")
    actual = file_digest(path, "sha256")
    if actual != config["weights_sha256"]:
        raise WeightsError(f"{path}: its sha256 is {actual}, but {CONFIG_NAME} says {config['weights_sha256']} "
                           f"({os.path.getsize(path):,} bytes): the file is truncated, corrupt or another file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: np.asarray(npz[name], np.float32) for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise WeightsError(f"{path}: cannot read facade parser weights ({type(e).__name__}: {e})") from None


def build_parser_model(config, arrays, source):
    """The parser network of ``config`` with ``arrays`` loaded; refuses arrays of another network."""
    from models.facade_parser import facade_parser_network

    model = facade_parser_network(int(config["image_size"]), int(config["width"]), NUM_CLASSES)
    expected = {v.path: tuple(v.shape) for v in model.weights}
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise WeightsError(f"{source}: not the weights of this facade parser ({len(missing)} arrays missing, e.g. "
                           f"{missing[:3]}; {len(extra)} unexpected, e.g. {extra[:3]})")
    for v in model.weights:
        if arrays[v.path].shape != expected[v.path]:
            raise WeightsError(f"{source}: array {v.path!r} has shape {arrays[v.path].shape}, expected "
                               f"{expected[v.path]}")
        if not np.all(np.isfinite(arrays[v.path])):
            raise WeightsError(f"{source}: array {v.path!r} has non-finite values")
        v.assign(arrays[v.path])
    return model


class FacadeParser:
    """Photos (uint8 RGB, NHWC, any size) -> class maps (N, image_size, image_size) of the 12 CMP classes."""

    def __init__(self, model, image_size, config=None, batch_size=32):
        import tensorflow as tf

        self.model = model
        self.image_size = int(image_size)
        self.config = dict(config or {})
        self.batch_size = int(batch_size)
        self._logits = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def prepare(self, photos):
        """uint8 RGB photos (N, H, W, 3) -> float32 (N, S, S, 3) in [-1, 1] at the parser's size ``S``."""
        photos = np.asarray(photos)
        if photos.ndim != 4 or photos.shape[-1] != 3:
            raise I2IError(f"facade parser: expected RGB images of shape (N, H, W, 3), got {photos.shape}")
        resized = np.stack([resize(np.asarray(p, np.uint8), self.image_size) for p in photos])
        return resized.astype(np.float32) / 127.5 - 1.0

    def logits(self, photos):
        x = self.prepare(photos)
        return np.concatenate([self._logits(x[i:i + self.batch_size]).numpy()
                               for i in range(0, len(x), self.batch_size)])

    def classes(self, photos):
        """The most likely class of every pixel, uint8 (N, S, S)."""
        return self.logits(photos).argmax(-1).astype(np.uint8)


def parser_available(path=None):
    """Whether a parser config is where :func:`load_facade_parser` would look (its checks are not run here)."""
    path = path if path is not None else os.environ.get(ENV_VAR) or DEFAULT_DIR
    path = os.fspath(path)
    return os.path.isfile(path) or os.path.isfile(os.path.join(path, CONFIG_NAME))


def load_facade_parser(path=None, batch_size=32):
    """The parser in ``path`` (its folder or one of its two files; default ``$I2I_FACADE_PARSER`` if set, else the
    shipped one in :data:`DEFAULT_DIR`), checked."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None and not os.path.isdir(DEFAULT_DIR):
        raise WeightsError(f"{DEFAULT_DIR}: the shipped facade parser is not there; train one with "
                           f"train_scripts/facade_parser.py and copy its {WEIGHTS_NAME} and {CONFIG_NAME} there, "
                           "or pass their folder")
    folder = _folder_of(DEFAULT_DIR if path is None else path)
    config = read_parser_config(folder)
    arrays = read_parser_arrays(folder, config)
    model = build_parser_model(config, arrays, os.path.join(folder, WEIGHTS_NAME))
    return FacadeParser(model, config["image_size"], config, batch_size)
