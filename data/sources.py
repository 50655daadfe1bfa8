"""Where pairs come from: the built-in synthetic facades, the facades download, or a folder.

``open_source(spec)`` takes what a user passes as ``--data``:

* ``synthetic`` - the procedural facades of :mod:`data.synthetic` (offline, deterministic);
* ``facades`` - the official pix2pix archive, downloaded once into the Keras cache
  (:mod:`data.facades`);
* a path - a folder in one of the layouts of :mod:`data.layouts`.

Every source returns :class:`PairArrays` - uint8 label maps and photos resized to a square
``size``, decoded once. Bad files are all reported together in one :class:`I2IError`.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from data.errors import I2IError, ImageError
from data.images import read_image
from data.layouts import Pair, find_pairs


@dataclass
class PairArrays:
    """Decoded pairs: ``labels`` and ``photos`` are uint8 arrays of shape (n, size, size, 3)."""

    labels: np.ndarray
    photos: np.ndarray
    names: list

    def __len__(self):
        return len(self.names)


def resize(image, size):
    """Resize an HxWx3 uint8 image to size x size (area filter when shrinking, bicubic when growing)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    shrink = size < h and size < w
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def read_pair(pair: Pair, direction="BtoA"):
    """Decode one pair as ``(label, photo)`` uint8 arrays (not yet resized)."""
    if pair.combined is not None:
        image = read_image(pair.combined)
        h, w = image.shape[:2]
        if w != 2 * h:
            raise ImageError(
                pair.combined,
                f"width {w} is not twice the height {h}: not a side-by-side A|B pair (photo left, label map right)",
            )
        a, b = image[:, :h], image[:, h:]
    else:
        a, b = read_image(pair.photo), read_image(pair.label)
        if a.shape != b.shape:
            raise ImageError(
                pair.label,
                f"label map is {b.shape[1]}x{b.shape[0]} but its photo {pair.photo} is {a.shape[1]}x{a.shape[0]}: "
                "a pair must have the same size",
            )
    return (b, a) if direction == "BtoA" else (a, b)


def _decode_all(jobs, workers=4):
    """Run decode jobs in threads (Pillow and OpenCV release the GIL); collect every failure."""
    results, errors = [None] * len(jobs), []

    def run(i):
        try:
            results[i] = jobs[i]()
        except ImageError as e:
            errors.append(e)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(len(jobs))))
    if errors:
        errors.sort(key=lambda e: e.path)
        shown = "\n  ".join(str(e) for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise I2IError(f"{len(errors)} unusable image file(s):\n  {shown}{more}")
    return results


class FolderSource:
    """Pairs read from a folder in the pix2pix A|B, two-folder or Kaggle layout."""

    def __init__(self, root, direction="BtoA"):
        self.root = os.path.abspath(os.path.expanduser(str(root)))
        self.direction = direction
        self.name = os.path.basename(self.root.rstrip("/")) or self.root

    def load(self, split, size):
        pairs = find_pairs(self.root, split)

        def job(p):
            return lambda: tuple(resize(x, size) for x in read_pair(p, self.direction))

        decoded = _decode_all([job(p) for p in pairs])
        labels = np.stack([d[0] for d in decoded])
        photos = np.stack([d[1] for d in decoded])
        return PairArrays(labels, photos, [p.name for p in pairs])

    def describe(self):
        return {"kind": "folder", "root": self.root, "direction": self.direction}


class SyntheticSource:
    """The procedural facades of :mod:`data.synthetic` (400 / 100 / 106 pairs)."""

    name = "synthetic"

    def __init__(self, seed=0):
        self.seed = seed

    def load(self, split, size):
        from data import synthetic

        if split not in synthetic.SPLIT_SIZES:
            raise I2IError(f"synthetic data has no split '{split}' (splits: {', '.join(synthetic.SPLIT_SIZES)})")
        labels, photos = synthetic.make_split(split, size=size, seed=self.seed)
        return PairArrays(labels, photos, [str(i + 1) for i in range(len(labels))])

    def describe(self):
        return {"kind": "synthetic", "seed": self.seed}


def open_source(spec, seed=0, direction="BtoA"):
    """Turn a ``--data`` value into a source object with ``load(split, size)``."""
    if spec in (None, "", "synthetic"):
        return SyntheticSource(seed=seed)
    if spec == "facades":
        from data.facades import facades_root

        return FolderSource(facades_root(), direction=direction)
    if not os.path.exists(os.path.expanduser(str(spec))):
        raise I2IError(f"--data {spec}: no such folder (use 'synthetic', 'facades' or a path to a dataset folder)")
    return FolderSource(spec, direction=direction)
