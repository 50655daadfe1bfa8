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


def pair_batches(pairs, batch_size, label_paths=None):
    """Yield (generated, reference) uint8 batches of up to ``batch_size`` pairs of one image size; with
    ``label_paths`` (one per pair) (generated, reference, label maps); a pair whose reference is None (no reference
    folder) gives (generated, label maps)."""
    columns = [[a for _, a, _ in pairs]]
    if any(b is not None for _, _, b in pairs):
        columns.append([b for _, _, b in pairs])
    if label_paths is not None:
        columns.append(list(label_paths))
    yield from column_batches(columns, batch_size, paired=len(columns) > 1 and any(b is not None for _, _, b in pairs))


def column_batches(columns, batch_size, paired=True):
    """Yield tuples of uint8 batches, one per column of image paths, up to ``batch_size`` rows each and of one image
    size per column; ``paired``: the first two columns' images must have the same size."""
    batches = [[] for _ in columns]
    for paths in zip(*columns):
        images = [read_image(path) for path in paths]
        if paired and images[0].shape != images[1].shape:
            raise ImagePairError(f"{paths[0]} is {images[0].shape[1]}x{images[0].shape[0]} px but {paths[1]} is "
                                 f"{images[1].shape[1]}x{images[1].shape[0]} px; paired images must have the same "
                                 "size")
        if batches[0] and (len(batches[0]) == batch_size
                           or any(image.shape != batch[0].shape for image, batch in zip(images, batches))):
            yield tuple(np.stack(batch) for batch in batches)
            batches = [[] for _ in columns]
        for batch, image in zip(batches, images):
            batch.append(image)
    if batches[0]:
        yield tuple(np.stack(batch) for batch in batches)


def label_map_paths(pairs, label_dir):
    """The label map of every pair's generated image in ``label_dir`` (same name without extension); names without
    a label map, or label maps without an image, raise I2IError listing them."""
    generated = {stem: a for stem, a, _ in pairs}
    labels = list_images(label_dir)
    only_gen, only_labels = sorted(set(generated) - set(labels)), sorted(set(labels) - set(generated))
    if only_gen or only_labels:
        def show(names):
            return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        parts = [f"{len(only_gen)} images without a label map in {label_dir}: {show(only_gen)}" if only_gen else "",
                 f"{len(only_labels)} label maps in {label_dir} without an image: {show(only_labels)}"
                 if only_labels else ""]
        raise I2IError("label maps are paired with the images by file name, and some names have no partner: "
                       + "; ".join(p for p in parts if p))
    return [labels[stem] for stem, _, _ in pairs]


def generated_only(folder):
    """[(stem, path, None)] of a folder's images: pairs without references, for the segmentation score alone."""
    return [(stem, path, None) for stem, path in sorted(list_images(folder).items())]


def reference_ids(pairs):
    """Cache keys of the reference files of ``pairs`` (name, size, modification time): a changed file is a miss."""
    return [f"{os.path.basename(b)}:{os.path.getsize(b)}:{os.stat(b).st_mtime_ns}" for _, _, b in pairs]
