"""Finding image pairs on disk in the layouts users have.

Three paired layouts are read (photo = ``A``, label map = ``B``; the task is B -> A):

* **pix2pix A|B**: ``ROOT/<split>/*.jpg``, each file the photo (left half) and the label map
  (right half) side by side, width = 2 x height (the official facades archive).
* **two folders**: ``ROOT/<split>/A/`` and ``ROOT/<split>/B/`` (or ``ROOT/A/<split>/`` and
  ``ROOT/B/<split>/``, pix2pix's layout before ``combine_A_and_B``) with matching file names.
* **Kaggle / CycleGAN**: ``ROOT/<split>A/`` and ``ROOT/<split>B/`` (``trainA``, ``trainB``,
  ``testA``, ``testB``); names match after dropping an ``_A`` / ``_B`` suffix.

:func:`find_pairs` returns :class:`Pair` records; nothing is decoded here.
"""

import logging
import os
import re
from dataclasses import dataclass

from data.errors import LayoutError
from data.images import is_image_file

log = logging.getLogger("i2i")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Pair:
    """One training pair on disk. ``combined`` is set for the A|B layout (photo | label)."""

    name: str
    photo: str = None
    label: str = None
    combined: str = None


def _natural_key(name):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _list_images(folder):
    """Image files of a folder in natural order; other files are reported, not silently used."""
    names = sorted(os.listdir(folder), key=_natural_key)
    images, others = [], []
    for n in names:
        p = os.path.join(folder, n)
        if os.path.isdir(p) or n.startswith("."):
            continue
        (images if is_image_file(n) else others).append(n)
    for n in others:
        log.warning("%s: ignored, not an image file (by its extension)", os.path.join(folder, n))
    return images, others


def _stem(name, suffix_letter=None):
    stem = os.path.splitext(name)[0]
    if suffix_letter and stem.endswith("_" + suffix_letter):
        stem = stem[: -len(suffix_letter) - 1]
    return stem


def _match(folder_a, folder_b, suffixes=(None, None)):
    names_a, _ = _list_images(folder_a)
    names_b, _ = _list_images(folder_b)
    by_stem_a = {_stem(n, suffixes[0]): n for n in names_a}
    by_stem_b = {_stem(n, suffixes[1]): n for n in names_b}
    only_a = sorted(set(by_stem_a) - set(by_stem_b), key=_natural_key)
    only_b = sorted(set(by_stem_b) - set(by_stem_a), key=_natural_key)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} in {folder_a} have no match in {folder_b} (e.g. {', '.join(only_a[:5])})")
        if only_b:
            parts.append(f"{len(only_b)} in {folder_b} have no match in {folder_a} (e.g. {', '.join(only_b[:5])})")
        raise LayoutError("unmatched file names in the two-folder layout: " + "; ".join(parts))
    stems = sorted(by_stem_a, key=_natural_key)
    return [
        Pair(name=s, photo=os.path.join(folder_a, by_stem_a[s]), label=os.path.join(folder_b, by_stem_b[s]))
        for s in stems
    ]


def detect_layout(root):
    """Name the layout of ``root``: ``"ab"``, ``"two-folder"``, ``"two-folder-outer"`` or ``"kaggle"``."""
    if not os.path.isdir(root):
        raise LayoutError(f"{root}: data folder not found")
    entries = set(os.listdir(root))
    if any(f"{s}A" in entries for s in SPLITS):
        return "kaggle"
    if {"A", "B"} <= entries:
        return "two-folder-outer"
    for s in SPLITS:
        if s in entries and {"A", "B"} <= set(os.listdir(os.path.join(root, s))):
            return "two-folder"
    if any(s in entries for s in SPLITS):
        return "ab"
    raise LayoutError(
        f"{root}: no known layout. Expected train/ val/ test/ folders of A|B images (pix2pix), "
        f"<split>/A + <split>/B folders, A/<split> + B/<split> folders, or trainA/ trainB/ testA/ testB/ (Kaggle)."
    )


def find_pairs(root, split):
    """List the pairs of ``split`` under ``root`` in natural file-name order."""
    root = os.path.expanduser(str(root))
    layout = detect_layout(root)
    if layout == "kaggle":
        a, b = os.path.join(root, f"{split}A"), os.path.join(root, f"{split}B")
        _require_dirs(root, split, a, b)
        pairs = _match(a, b, suffixes=("A", "B"))
    elif layout == "two-folder":
        a, b = os.path.join(root, split, "A"), os.path.join(root, split, "B")
        _require_dirs(root, split, a, b)
        pairs = _match(a, b)
    elif layout == "two-folder-outer":
        a, b = os.path.join(root, "A", split), os.path.join(root, "B", split)
        _require_dirs(root, split, a, b)
        pairs = _match(a, b)
    else:
        folder = os.path.join(root, split)
        _require_dirs(root, split, folder)
        names, _ = _list_images(folder)
        pairs = [Pair(name=_stem(n), combined=os.path.join(folder, n)) for n in names]
    if not pairs:
        raise LayoutError(f"{root}: split '{split}' has no images ({layout} layout)")
    return pairs


def _require_dirs(root, split, *folders):
    missing = [f for f in folders if not os.path.isdir(f)]
    if missing:
        have = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
        raise LayoutError(
            f"{root}: split '{split}' not found (missing {', '.join(missing)}; "
            f"folders present: {', '.join(have) or 'none'})"
        )


def list_images(folder):
    """Image files of one folder (for unpaired data and folder scoring), with a clear error if empty."""
    if not os.path.isdir(folder):
        raise LayoutError(f"{folder}: folder not found")
    names, _ = _list_images(folder)
    if not names:
        raise LayoutError(f"{folder}: no image files")
    return [os.path.join(folder, n) for n in names]
