"""PSNR and SSIM (study eq. 20-25) equal scikit-image's on the same pairs.

scikit-image (a test dependency) is the reference, called with the study's SSIM settings: 11x11 Gaussian window
with sigma 1.5 (``gaussian_weights=True``, its default truncation gives 11 taps), K1 0.01, K2 0.03, population
covariances (``use_sample_covariance=False``, as in Wang et al. and tf.image.ssim), data range 255, per channel
and averaged. Pairs: the fixture images of tests/fixtures/metrics/ (64 px, 256 px, 100x150) and random ones.
"""

from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from data.images import read_image
from metrics.image_quality import psnr, ssim

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "metrics"
PAIRS = [
    ("syn_a64.png", "syn_a64_noise.png"),
    ("syn_a64.png", "syn_b64.png"),
    ("ex_ref.png", "ex_p0.png"),
    ("syn_a256.png", "syn_a256_noise.png"),
    ("syn_a256.png", "syn_a256_blur.png"),
    ("syn_a256.png", "syn_a256_jpeg.png"),
    ("syn_a256.png", "syn_b256.png"),
    ("syn_c100x150.png", "syn_c100x150_shift.png"),
]


def skimage_ssim(a, b):
    return structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, K1=0.01, K2=0.03)


def skimage_psnr(a, b):
    return peak_signal_noise_ratio(b, a, data_range=255)


@pytest.mark.parametrize("names", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_uint8_pairs_match_scikit_image(names):
    a, b = (read_image(FIXTURES / n) for n in names)
    assert abs(psnr(a, b)[0] - skimage_psnr(a, b)) < 1e-4
    assert abs(ssim(a, b)[0] - skimage_ssim(a, b)) < 1e-4


@pytest.mark.parametrize("size", [64, 256])
def test_float_batches_match_scikit_image(size):
    """Non-integer float images in [0, 255] (e.g. model outputs in [-1, 1] mapped to [0, 255] without rounding), a
    batch of 3."""
    rng = np.random.RandomState(size)
    fake_m11 = np.tanh(rng.standard_normal((3, size, size, 3)))
    fake = (np.clip(fake_m11, -1.0, 1.0) + 1.0) * 127.5
    real = np.clip(fake + rng.normal(0, 20, fake_m11.shape), 0, 255)
    ours_psnr, ours_ssim = psnr(fake, real), ssim(fake, real)
    assert ours_psnr.shape == ours_ssim.shape == (3,)
    for i in range(3):
        assert abs(ours_psnr[i] - skimage_psnr(fake[i], real[i])) < 1e-4
        assert abs(ours_ssim[i] - skimage_ssim(fake[i], real[i])) < 1e-4


def test_uint8_and_float_inputs_agree_and_identical_images_are_perfect():
    a, b = read_image(FIXTURES / "syn_a64.png"), read_image(FIXTURES / "syn_a64_noise.png")
    assert psnr(a, b)[0] == pytest.approx(psnr(a.astype(np.float32), b.astype(np.float64))[0], abs=1e-9)
    assert ssim(a, b)[0] == pytest.approx(ssim(a.astype(np.float32), b.astype(np.float64))[0], abs=1e-6)
    assert ssim(a, a)[0] == pytest.approx(1.0, abs=1e-6)
    assert psnr(a, a)[0] == np.inf
