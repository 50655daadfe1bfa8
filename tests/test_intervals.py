"""metrics.intervals: the bootstrap and permutation statistics hold their nominal rates, and the resampled FID/KID
equal the metric functions of metrics.distances."""

import numpy as np
import pytest

from metrics.distances import fid_from_features, kid_from_features, mmd2_unbiased, polynomial_kernel
from metrics.intervals import (
    ResampledDistances,
    bootstrap_indices,
    bootstrap_p_value,
    image_counts,
    percentile_interval,
    resampled_means,
    sign_flip_p_value,
)
from metrics.score import Measurements, interval_scores, score_pairs

REPEATS = 400  # binomial sd of an observed rate: sqrt(p (1 - p) / 400) = 0.011 at p = 0.95 and at p = 0.05


def coverage(draw, true_mean, n=100, resamples=1000):
    """Share of REPEATS synthetic samples whose 95 % percentile interval of the mean covers ``true_mean``."""
    rng = np.random.default_rng(123)
    hits = 0
    for repeat in range(REPEATS):
        sample = draw(rng, n)
        lo, hi = percentile_interval(resampled_means(sample, bootstrap_indices(n, resamples, seed=repeat)))
        hits += lo <= true_mean <= hi
    return hits / REPEATS


def test_percentile_bootstrap_covers_a_known_mean_at_its_nominal_rate():
    """Normal and skewed (exponential) samples of 100. The percentile interval of a mean is known to cover a
    little less than 95 % at n = 100 (about 94 % for normal, 93 % for exponential data: it has z, not t,
    quantiles and the sample's, not the population's, skew), so the band is 95 % - 3.5 sd - that shortfall to
    95 % + 3 sd. A 90 % interval (coverage ~0.89) or a wrong quantile falls outside it."""
    normal = coverage(lambda rng, n: rng.normal(3.0, 2.0, n), 3.0)
    skewed = coverage(lambda rng, n: rng.exponential(1.0, n), 1.0)
    assert 0.95 - 0.04 - 0.01 <= normal <= 0.95 + 0.033, normal
    assert 0.95 - 0.04 - 0.02 <= skewed <= 0.95 + 0.033, skewed


def test_sign_flip_test_rejects_at_its_nominal_rate_and_detects_a_shift():
    """A and B from the same distribution (exchangeable per image): p < 0.05 in 5 % of the repeats, within
    3 binomial sd (0.017 to 0.083); B worse by 0.7 sd of the differences: p < 0.05 nearly always (power 0.999)."""
    rng = np.random.default_rng(7)
    null_rejections, shifted_rejections = 0, 0
    for repeat in range(REPEATS):
        base = rng.normal(20.0, 3.0, 40)  # per-image difficulty, shared by A and B
        a, b = base + rng.normal(0, 1.0, 40), base + rng.normal(0, 1.0, 40)
        null_rejections += sign_flip_p_value(a - b, n_permutations=2000, seed=repeat) < 0.05
        if repeat < 50:
            shifted_rejections += sign_flip_p_value(a - (b - 1.0), n_permutations=2000, seed=repeat) < 0.05
    assert 0.017 <= null_rejections / REPEATS <= 0.083, null_rejections
    assert shifted_rejections >= 45


def test_sign_flip_test_is_exact_for_few_images():
    """Five differences: all 32 sign patterns, of which 4 have |mean| >= the observed mean (hand count)."""
    d = np.array([1.0, 2.0, -0.5, 3.0, 1.2])
    assert sign_flip_p_value(d, n_permutations=10000, seed=0) == pytest.approx(4 / 32)
    assert sign_flip_p_value(d, n_permutations=10000, seed=1) == pytest.approx(4 / 32)  # exact: no randomness
    assert sign_flip_p_value(np.zeros(6)) == 1.0


def test_bootstrap_p_value_counts_both_sides():
    assert bootstrap_p_value([-1.0, 1.0, 2.0, 3.0]) == pytest.approx(2 * (1 + 1) / 5)
    assert bootstrap_p_value(np.linspace(1, 2, 999)) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(np.linspace(-1, 1, 1001)) == 1.0


def test_resampling_is_reproducible_with_a_seed_and_changes_with_another():
    values = np.random.default_rng(0).gamma(2.0, size=50)
    first = percentile_interval(resampled_means(values, bootstrap_indices(50, 500, seed=3)))
    again = percentile_interval(resampled_means(values, bootstrap_indices(50, 500, seed=3)))
    other = percentile_interval(resampled_means(values, bootstrap_indices(50, 500, seed=4)))
    assert first == again and first != other
    counts = image_counts(np.array([[0, 0, 2], [1, 2, 2]]), 3)
    np.testing.assert_array_equal(counts, [[2, 0, 1], [0, 1, 2]])


@pytest.fixture(scope="module")
def inception_sized_features():
    """106 generated and reference feature vectors of 2048 (non-negative, like pool features), correlated."""
    rng = np.random.default_rng(0)
    real = np.maximum(rng.standard_normal((106, 2048)), 0)
    fake = 0.4 * real + np.maximum(rng.standard_normal((106, 2048)) + 0.1, 0)
    return fake, real


@pytest.mark.slow  # a 2048 x 2048 eigenproblem (15 s here); the same equality at 24 and 300 dimensions is quick
def test_low_rank_fid_equals_fid_from_features(inception_sized_features):
    fake, real = inception_sized_features
    distances = ResampledDistances(fake, real)
    expected = fid_from_features(fake, real)  # eigenvalues of a 2048 x 2048 product
    assert distances.fid(np.arange(106)) == pytest.approx(expected, rel=1e-6)
    assert distances.fid(np.arange(106)[::-1]) == pytest.approx(expected, rel=1e-6)  # order does not matter


@pytest.mark.parametrize("dim", [24, 300])  # fewer and more dimensions than images
def test_fid_of_a_resample_with_repeats_equals_fid_of_the_repeated_features(dim):
    rng = np.random.default_rng(dim)
    real = rng.gamma(2.0, size=(60, dim))
    fake = real + rng.normal(0.3, 1.0, size=(60, dim))
    indices = bootstrap_indices(60, 3, seed=1)
    got = ResampledDistances(fake, real).fid(indices)
    expected = [fid_from_features(fake[i], real[i]) for i in indices]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_kid_with_identity_indices_equals_kid_from_features(inception_sized_features):
    fake, real = inception_sized_features
    expected = kid_from_features(fake, real)  # subsets of 1000 shrink to the 106 images
    assert ResampledDistances(fake, real).kid(np.arange(106)) == pytest.approx(expected["kid_mean"], rel=1e-10)


def test_kid_of_a_resample_leaves_out_pairs_of_copies_of_one_image():
    """Reference: the resampled sets materialised, MMD^2 with the within-set pairs of the same source image
    masked (the diagonal among them), the cross term over all pairs."""
    rng = np.random.default_rng(5)
    fake, real = rng.gamma(2.0, size=(30, 16)), rng.gamma(2.2, size=(30, 16))
    indices = bootstrap_indices(30, 4, seed=2)
    got = ResampledDistances(fake, real).kid(indices)
    for value, idx in zip(got, indices):
        x, y = fake[idx], real[idx]
        other = idx[:, None] != idx[None, :]
        k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
        expected = (k_xx[other].mean() + k_yy[other].mean() - 2 * polynomial_kernel(x, y).mean())
        assert value == pytest.approx(expected, rel=1e-10)
    # without repeats it is the unbiased MMD^2 itself
    perm = rng.permutation(30)
    x, y = fake[perm], real[perm]
    assert ResampledDistances(fake, real).kid(perm) == pytest.approx(
        mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y)), rel=1e-10)


def test_interval_scores_per_metric_and_without_resamples():
    rng = np.random.default_rng(1)
    measured = Measurements(40, "8x8", {"psnr": rng.normal(20, 2, 40), "ssim": rng.uniform(0.3, 0.9, 40)},
                            rng.gamma(2.0, size=(40, 50)), rng.gamma(2.1, size=(40, 50)))
    out = interval_scores(measured, "psnr,ssim,fid,kid", n_resamples=300, seed=9)
    indices = bootstrap_indices(40, 300, seed=9)
    assert (out["psnr_lo"], out["psnr_hi"]) == percentile_interval(resampled_means(measured.per_image["psnr"],
                                                                                    indices))
    distances = ResampledDistances(measured.fake_features, measured.real_features)
    fid = fid_from_features(measured.fake_features, measured.real_features)
    kid = kid_from_features(measured.fake_features, measured.real_features)["kid_mean"]
    fid_replicates, kid_replicates = distances.fid(indices), distances.kid(indices)
    # FID replicates lie above the estimate (repeated images); shifted by their mean bias, they centre on it
    assert np.mean(fid_replicates > fid) > 0.9
    assert (out["fid_lo"], out["fid_hi"]) == pytest.approx(
        percentile_interval(fid_replicates - fid_replicates.mean() + fid), rel=1e-6)
    assert (out["kid_lo"], out["kid_hi"]) == pytest.approx(
        percentile_interval(kid_replicates - kid_replicates.mean() + kid), rel=1e-9)
    assert out["fid_lo"] < fid < out["fid_hi"] and out["kid_lo"] < kid < out["kid_hi"]
    assert out["lpips_lo"] is None and out["n_resamples"] == 300 and out["interval_seed"] == 9
    none = interval_scores(measured, "psnr,ssim,fid,kid", n_resamples=0)
    assert none["n_resamples"] == 0 and all(none[k] is None for k in none if k != "n_resamples")


def test_score_pairs_reports_reproducible_intervals_around_its_scores():
    rng = np.random.default_rng(2)
    real = rng.integers(0, 256, (12, 16, 16, 3)).astype(np.uint8)
    fake = np.clip(real + rng.normal(0, rng.uniform(5, 30, (12, 1, 1, 1)), real.shape), 0, 255).astype(np.uint8)
    first = score_pairs([fake], [real], "psnr,ssim", per_image=True)
    again = score_pairs([fake[:5], fake[5:]], [real[:5], real[5:]], "psnr,ssim")
    other = score_pairs([fake], [real], "psnr,ssim", interval_seed=1)
    assert first["n_resamples"] == 1000 and first["interval_seed"] == 0
    assert first["psnr_lo"] < first["psnr"] < first["psnr_hi"] and first["ssim_lo"] < first["ssim"] < first["ssim_hi"]
    assert (first["psnr_lo"], first["psnr_hi"]) == (again["psnr_lo"], again["psnr_hi"])
    assert (first["psnr_lo"], first["psnr_hi"]) != (other["psnr_lo"], other["psnr_hi"])
    assert first["fid_lo"] is None and first["kid_hi"] is None and first["lpips_lo"] is None
    psnr = np.array(first["per_image"]["psnr"])
    assert (first["psnr_lo"], first["psnr_hi"]) == percentile_interval(
        resampled_means(psnr, bootstrap_indices(12, 1000, seed=0)))
