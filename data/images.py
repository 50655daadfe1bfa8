"""Reading image files robustly: every failure names the file.

Grayscale, palette, RGBA and 16-bit images are converted to 8-bit RGB (the
obvious right thing for a photo or a label map); EXIF orientation is applied.
Each conversion is logged once per file on the ``i2i`` logger.
"""

import logging
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from data.errors import ImageError

log = logging.getLogger("i2i")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def is_image_file(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def _to_rgb8(img, path):
    """Convert any PIL mode to an HxWx3 uint8 array, logging conversions."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        arr = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        log.warning("%s: %s grayscale image converted to 8-bit RGB", path, "16-bit" if top > 255 else "integer")
        return np.repeat(arr[..., None], 3, axis=-1)
    if mode == "F":
        raise ImageError(path, "floating-point image (mode F) has no defined 8-bit range; save it as 8-bit RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        log.warning("%s: alpha channel dropped (image composited on black is not used; RGB kept)", path)
    elif mode in ("L", "1"):
        log.warning("%s: grayscale image converted to RGB", path)
    elif mode != "P":
        log.warning("%s: %s image converted to RGB", path, mode)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_image(path):
    """Read an image file as an HxWx3 uint8 RGB array.

    Raises :class:`ImageError` naming the file if it is missing, not an image,
    truncated or corrupt, or has an unusable pixel format.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ImageError(path, "file not found")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_rgb8(img, path)
    except UnidentifiedImageError:
        raise ImageError(path, "not an image file (or a format Pillow cannot read)") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(path, f"corrupt or truncated image ({e})") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(path, f"empty image of shape {arr.shape}")
    return arr
