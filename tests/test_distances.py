"""FID and KID against pytorch-fid / torch-fidelity on the same features, and FID's behaviour on images.

Reference values: tests/fixtures/metrics/distances_reference.json, made by make_fixtures.py in the scratch env
with pytorch-fid 0.3.0 (``calculate_frechet_distance``) and torch-fidelity 0.4.0 (``fid_statistics_to_metric``,
``kid_features_to_metric``) on float64 features from ``recipe_features`` below (numpy's legacy RandomState, whose
streams numpy keeps stable; the sums recorded in the fixture check the regenerated arrays).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from metrics.distances import feature_statistics, fid_from_features, frechet_distance, kid_from_features, sqrtm_trace
from run_helpers import needs_alexnet_weights

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "metrics"
REFERENCE = json.loads((FIXTURES / "distances_reference.json").read_text())
SHARED = Path(os.environ.get("I2I_SHARED_DIR") or REPO.parent / "shared")
WEIGHTS_DIR = SHARED / "weights"


def recipe_features(seed, n, d, shift=0.0):
    """The same function as in make_fixtures.py: ReLU of correlated Gaussians, like pooled CNN features."""
    rng = np.random.RandomState(seed)
    z = rng.standard_normal((n, d))
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(z @ mix + shift, 0.0)


def case_features(case):
    (sa, na, d, _), (sb, nb, _, shift) = case["a"], case["b"]
    fa, fb = recipe_features(sa, na, d), recipe_features(sb, nb, d, shift)
    np.testing.assert_allclose([fa.sum(), fb.sum()], [case["sum_a"], case["sum_b"]], rtol=1e-12)
    return fa, fb


@pytest.mark.parametrize("name", sorted(REFERENCE["fid"]))
def test_fid_matches_torch_fidelity_and_pytorch_fid(name):
    """Full-rank (600 x 32-d) and rank-deficient (106 x 512-d, like 106 test images) feature sets."""
    case = REFERENCE["fid"][name]
    fid = fid_from_features(*case_features(case))
    assert fid == pytest.approx(case["torch_fidelity"], rel=1e-9)
    assert fid == pytest.approx(case["pytorch_fid"], rel=1e-6)


def test_eigenvalue_sqrt_trace_matches_scipy_sqrtm():
    rng = np.random.RandomState(0)
    for n, d in ((400, 16), (300, 64), (50, 40)):  # the last one rank-deficient
        s1 = np.cov(rng.standard_normal((n, d)) @ rng.standard_normal((d, d)), rowvar=False)
        s2 = np.cov(rng.standard_normal((n, d)) @ rng.standard_normal((d, d)), rowvar=False)
        expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
        assert sqrtm_trace(s1, s2) == pytest.approx(expected, rel=1e-7)


def test_fid_statistics_are_float64_and_fid_of_a_set_with_itself_is_zero():
    features = recipe_features(11, 106, 256).astype(np.float32)
    mu, sigma = feature_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (256, 256)
    # ~0: the eigenvalue square root leaves ~1e-5 from the ~150 null eigenvalues (torch-fidelity's does too)
    assert abs(fid_from_features(features, features)) < 1e-4
    assert frechet_distance(mu, sigma, mu + 1.0, sigma) == pytest.approx(256.0, abs=1e-4)


# torch-fidelity's defaults draw 100 subsets of 1000 features (15 s here): in the slow tier, the other cases in both
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name == "defaults" else name
                                  for name in sorted(REFERENCE["kid"])])
def test_kid_matches_torch_fidelity(name):
    """torch-fidelity defaults (100 subsets of 1000, seed 2020), a 106-image case, and custom subsets."""
    case = REFERENCE["kid"][name]
    theirs = case["kwargs"]
    ours = {"subsets": theirs.get("kid_subsets", 100)}
    if name != "shrunk_to_106":  # there torch-fidelity needed kid_subset_size=106; we shrink 1000 to 106
        ours["subset_size"] = theirs.get("kid_subset_size", 1000)
    result = kid_from_features(*case_features(case), **ours)
    assert abs(result["kid_mean"] - case["kid_mean"]) < 1e-5
    assert abs(result["kid_std"] - case["kid_std"]) < 1e-5
    assert result["kid_mean"] == pytest.approx(case["kid_mean"], rel=1e-9)
    assert result["kid_subset_size"] == theirs.get("kid_subset_size", 1000)


def test_kid_subset_size_is_shrunk_and_recorded():
    """torch-fidelity refuses subset size 1000 for 106 images; we use 106 and say so."""
    fa, fb = recipe_features(1, 106, 32), recipe_features(2, 80, 32, 0.1)
    result = kid_from_features(fa, fb)
    assert result["kid_subset_size"] == 80
    assert result == kid_from_features(fa, fb, subset_size=80)
    whole = kid_from_features(fa, recipe_features(3, 106, 32))  # every subset is the whole set: std 0
    assert whole["kid_subset_size"] == 106 and whole["kid_std"] == 0.0  # exactly: tables print 0, not 1e-16


def test_kid_cross_term_is_subtracted():
    """Eq. (31) of the study adds the cross term (a typo; it would give ~6 here for identical sets, where the mean
    kernel value is ~1.55). Subtracted, KID of a set against itself is ~0 and grows with a shift."""
    f = recipe_features(1, 300, 16)
    same, near, far = (kid_from_features(f, f + s, subset_size=100)["kid_mean"] for s in (0.0, 0.05, 0.5))
    assert abs(same) < 0.05
    assert same < near < far and far > 1.0


def _smooth_images(n, size, seed):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.zeros((n, size, size, 3))
    for i in range(n):
        for c in range(3):
            a = rng.uniform(0.5, 3.0, size=3)
            images[i, ..., c] = 128 + 80 * np.sin(2 * np.pi * (a[0] * xx + a[1] * yy) + a[2])
        y0, x0 = rng.randint(0, size // 2, size=2)
        images[i, y0 : y0 + size // 3, x0 : x0 + size // 3] = rng.uniform(0, 255, size=3)
    return images


def _blur(images, sigma):
    import scipy.ndimage

    return scipy.ndimage.gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect")


@needs_alexnet_weights
def test_fid_on_images_is_zero_for_same_set_and_grows_with_noise_and_blur(monkeypatch):
    """With the offline 'alexnet' backbone on 40 images of 64 px."""
    from metrics.backbones import extract_features, get_backbone

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(WEIGHTS_DIR))
    backbone = get_backbone("alexnet", batch_size=16)
    images = _smooth_images(40, 64, seed=3)
    real = extract_features(backbone, (images[i : i + 16] for i in range(0, 40, 16)))
    assert real.shape == (40, 256)  # 16 + 16 + 8: the last partial batch is scored too
    assert abs(fid_from_features(real, real)) < 1e-4

    rng = np.random.RandomState(4)
    noise = rng.standard_normal(images.shape)
    noisy = [fid_from_features(backbone.features(np.clip(images + s * noise, 0, 255)), real) for s in (5, 15, 40)]
    blurred = [fid_from_features(backbone.features(_blur(images, s)), real) for s in (0.7, 1.5, 3.0)]
    assert 0 < noisy[0] < noisy[1] < noisy[2]
    assert 0 < blurred[0] < blurred[1] < blurred[2]
