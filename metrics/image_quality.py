"""PSNR and SSIM on images in [0, 255] (study eq. 20-25).

Both return one value per image pair; split scores are their means.

PSNR: the study's eq. (25) writes ``10 log10(3 Max_y^2 / MSE)`` with MSE
averaged over all 3wh values (eq. 24). The factor 3 and the per-image maximum
are not what its code or any reference tool computes (they would add 4.77 dB
and make the score depend on image content), so we use the standard
definition with the peak fixed at 255, as scikit-image and ``tf.image.psnr``
do: ``10 log10(255^2 / MSE)``.

SSIM: ``tf.image.ssim`` with the study's constants (11x11 Gaussian window,
sigma 1.5, K1 0.01, K2 0.03), computed per channel and averaged.
"""

import numpy as np
import tensorflow as tf

MAX_VALUE = 255.0


def _as_float_batch(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W, C) or (H, W, C), got {x.shape}")
    return x


def psnr(x, y):
    """Per-image PSNR in dB of images ``x`` against references ``y`` in [0, 255]."""
    x, y = _as_float_batch(x), _as_float_batch(y)
    if x.shape != y.shape:
        raise ValueError(f"PSNR needs images of the same shape, got {x.shape} and {y.shape}")
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(MAX_VALUE**2 / mse)


def ssim(x, y, batch_size=64):
    """Per-image SSIM (eq. 23 with alpha = beta = gamma = 1) of images in [0, 255]."""
    x, y = _as_float_batch(x), _as_float_batch(y)
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs images of the same shape, got {x.shape} and {y.shape}")
    out = []
    for i in range(0, len(x), batch_size):
        a = tf.constant(x[i : i + batch_size], tf.float32)
        b = tf.constant(y[i : i + batch_size], tf.float32)
        out.append(tf.image.ssim(a, b, max_val=MAX_VALUE, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03).numpy())
    return np.concatenate(out).astype(np.float64)
