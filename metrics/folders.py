"""Folders of same-named images: listing, pairing by file name, and reading them in batches.

Images are paired by file name without extension (``001.png`` with ``001.jpg``); names found in only one folder
are an error. Used by ``python -m metrics`` and :mod:`metrics.comparison`.
"""

import os

import numpy as np

from data.errors import I2IError
from data.images import is_image_file, read_image
from metrics.score import ImagePairError


def list_images(folder):
    """Image files of a folder (not recursive) as {stem: path}; duplicate stems are an error."""
    if not os.path.isdir(folder):
        raise I2IError(f"{folder}: not a folder")
    found = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not (is_image_file(name) and os.path.isfile(path)):
            continue
        stem = os.path.splitext(name)[0]
        if stem in found:
            raise I2IError(f"{folder}: two images named {stem!r} ({os.path.basename(found[stem])} and {name})")
        found[stem] = path
    if not found:
        raise I2IError(f"{folder}: no image files")
    return found


def pair_images(dir_a, dir_b):
    """[(stem, path_a, path_b)] sorted by name; names in only one folder raise I2IError listing them."""
    a, b = list_images(dir_a), list_images(dir_b)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        def show(names):
            return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        parts = [f"{len(only_a)} only in {dir_a}: {show(only_a)}" if only_a else "",
                 f"{len(only_b)} only in {dir_b}: {show(only_b)}" if only_b else ""]
        raise I2IError("images are paired by file name, and some names have no partner: "
                       + "; ".join(p for p in parts if p))
    return [(stem, a[stem], b[stem]) for stem in sorted(a)]


def pair_batches(pairs, batch_size):
    """Yield (generated, reference) uint8 batches of up to ``batch_size`` pairs of one image size."""
    batch_a, batch_b = [], []
    for _, path_a, path_b in pairs:
        img_a, img_b = read_image(path_a), read_image(path_b)
        if img_a.shape != img_b.shape:
            raise ImagePairError(f"{path_a} is {img_a.shape[1]}x{img_a.shape[0]} px but {path_b} is "
                                 f"{img_b.shape[1]}x{img_b.shape[0]} px; paired images must have the same size")
        if batch_a and (img_a.shape != batch_a[0].shape or len(batch_a) == batch_size):
            yield np.stack(batch_a), np.stack(batch_b)
            batch_a, batch_b = [], []
        batch_a.append(img_a)
        batch_b.append(img_b)
    if batch_a:
        yield np.stack(batch_a), np.stack(batch_b)


def reference_ids(pairs):
    """Cache keys of the reference files of ``pairs`` (name, size, modification time): a changed file is a miss."""
    return [f"{os.path.basename(b)}:{os.path.getsize(b)}:{os.stat(b).st_mtime_ns}" for _, _, b in pairs]
