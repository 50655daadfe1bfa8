"""Label maps (RGB, in the facades palette) to the 12 CMP class indices, robust to JPEG colour noise.

The facades label halves are JPEG files (quality about 95, 4:2:0 chroma subsampling): flat regions keep their
palette colour, but within one or two pixels of every class boundary the colours ring and bleed, sometimes to a
colour near a third class (the "seams", e.g. (0, 0, 128) between shop and blue regions). Each pixel gets the class
of the nearest :data:`data.synthetic.PALETTE` colour in RGB, and :data:`IGNORE` where that is unreliable:

* its distance to the nearest palette colour exceeds :data:`MAX_COLOUR_DISTANCE`, half the smallest distance
  between two palette colours (facade and background, 57.7): a pixel within that radius is closer to its colour
  than to any other by the triangle inequality, one outside it is a blend;
* or it is farther than :data:`FLAT_DISTANCE` (10, more than JPEG noise moves a flat region's colour) from its
  palette colour and its class is not the most frequent class of its 3x3 neighbourhood: an isolated seam pixel
  whose blend happens to land near a third class. (Pixels within 10 are always kept, so the one-pixel lines and
  corners of a clean label map survive.)

On synthetic label maps JPEG-encoded at quality 95 every kept pixel has its true class, every pixel two or more
pixels from a boundary is kept, and about 18 % of all pixels (all near boundaries) are ignored; on the real train
label maps about 20 % (tests/test_segmentation.py). A palette-exact label map (PNG) loses no pixel. Ignored pixels
are left out of the parser's training loss and of the segmentation score, as PASCAL VOC leaves its boundary band
out (Everingham et al. 2010).
"""

import cv2
import numpy as np

from data.errors import I2IError
from data.synthetic import CLASS_NAMES, PALETTE_ARRAY

IGNORE = 255
NUM_CLASSES = len(CLASS_NAMES)
_PALETTE = PALETTE_ARRAY.astype(np.float32)
_PAIR_DISTANCES = np.linalg.norm(_PALETTE[:, None] - _PALETTE[None], axis=-1)
MAX_COLOUR_DISTANCE = 0.5 * float(np.min(_PAIR_DISTANCES[~np.eye(NUM_CLASSES, dtype=bool)]))
FLAT_DISTANCE = 10.0


def nearest_palette_class(image):
    """Class index (uint8) of the nearest palette colour and the distance to it, per pixel of an HxWx3 image.

    Computed once per distinct colour of the image (a label map has a few thousand) and spread back.
    """
    image = np.asarray(image)
    packed = (image[..., 0].astype(np.int32) << 16) | (image[..., 1].astype(np.int32) << 8) | image[..., 2]
    colours, index = np.unique(packed, return_inverse=True)
    rgb = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=-1).astype(np.float32)
    distances = np.linalg.norm(rgb[:, None, :] - _PALETTE, axis=-1)
    index = index.reshape(packed.shape)
    return distances.argmin(-1).astype(np.uint8)[index], distances.min(-1)[index]


def _neighbourhood_mode(classes):
    """The most frequent class of each pixel's 3x3 neighbourhood (edges replicated; ties to the lower class)."""
    present = np.unique(classes)
    counts = np.stack([cv2.boxFilter((classes == k).astype(np.uint8), -1, (3, 3), normalize=False,
                                     borderType=cv2.BORDER_REPLICATE) for k in present])
    return present[counts.argmax(0)]


def label_map_to_classes(label_map):
    """An RGB label map (HxWx3, or NxHxWx3) -> class indices (HxW or NxHxW uint8), :data:`IGNORE` on seams."""
    label_map = np.asarray(label_map)
    if label_map.ndim == 4:
        return np.stack([label_map_to_classes(m) for m in label_map])
    if label_map.ndim != 3 or label_map.shape[-1] != 3:
        raise I2IError(f"label map: expected an RGB image of shape (H, W, 3), got {label_map.shape}")
    classes, distance = nearest_palette_class(label_map)
    unreliable = (distance > MAX_COLOUR_DISTANCE) | ((distance > FLAT_DISTANCE)
                                                     & (_neighbourhood_mode(classes) != classes))
    classes[unreliable] = IGNORE
    return classes


def conversion_settings():
    """The rule and its two distances, as recorded with a trained parser."""
    return {"rule": "nearest palette colour in RGB; ignored where farther than max_distance, or farther than "
                    "flat_distance and not the most frequent class of its 3x3 neighbourhood",
            "max_distance": MAX_COLOUR_DISTANCE, "flat_distance": FLAT_DISTANCE}


def resize_classes(classes, size):
    """Class maps (HxW or NxHxW) resampled to ``size`` x ``size`` at the pixel centres (nearest; no blending)."""
    classes = np.asarray(classes)
    h, w = classes.shape[-2:]
    if (h, w) == (size, size):
        return classes
    rows = ((np.arange(size) + 0.5) * h / size).astype(int)
    cols = ((np.arange(size) + 0.5) * w / size).astype(int)
    return classes[..., rows[:, None], cols[None, :]]


def classes_to_colours(classes):
    """Class indices -> palette colours (uint8 RGB); :data:`IGNORE` becomes black."""
    classes = np.asarray(classes)
    colours = np.concatenate([PALETTE_ARRAY, np.zeros((1, 3), np.uint8)])
    return colours[np.where(classes == IGNORE, NUM_CLASSES, classes)]
