"""Resampling statistics of image sets: bootstrap intervals, paired tests, and FID/KID recomputed per resample.

The unit resampled is the test image: resample ``i`` draws ``n`` image indices with replacement, and every
per-image value or feature of those images (generated, reference, a second model's) goes with its index. One
index matrix serves all metrics, so their intervals come from the same resamples.

- Percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13): the 2.5 and 97.5 % quantiles of a statistic
  over the resamples.
- Bias-corrected replicates (Efron & Tibshirani 1993, ch. 10) for FID and KID, whose resamples with repeated
  images are biased (:func:`bias_corrected`).
- Bootstrap p-value of a difference (Efron & Tibshirani 1993, ch. 16): the test that inverts the percentile
  interval, i.e. twice the smaller share of resampled differences on either side of 0.
- Paired sign-flip permutation test (Fisher 1935; Efron & Tibshirani 1993, ch. 15): under "A and B are
  exchangeable" each per-image difference is as likely negated; ``scipy.stats.permutation_test``.
- :class:`ResampledDistances`: FID and KID of resampled feature sets from n x n Gram matrices, never the d x d
  covariances; the backbone is never run again.
"""

import numpy as np
from scipy import stats

from metrics.distances import KID_COEF0, KID_DEGREE, polynomial_kernel

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_PERMUTATIONS = 10000
CONFIDENCE = 0.95


def bootstrap_indices(n, n_resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """(n_resamples, n) image indices drawn with replacement by ``numpy.random.default_rng(seed)``."""
    if n < 1:
        raise ValueError(f"bootstrap needs at least one image, got {n}")
    return np.random.default_rng(seed).integers(0, n, size=(int(n_resamples), int(n)))


def percentile_interval(samples, confidence=CONFIDENCE):
    """(lo, hi): the percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13) of resampled statistics.

    NaN replicates (a statistic undefined on a resample, e.g. KID of a resample of one image drawn n times, which
    only tiny sets produce) are left out.
    """
    samples = np.asarray(samples, np.float64)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        raise ValueError("no defined resampled values")
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples, [tail, 1.0 - tail])
    return float(lo), float(hi)


def resampled_means(values, indices):
    """Mean of ``values`` (one per image) over each row of image ``indices``: the bootstrap replicates of the mean.

    ``scipy.stats.bootstrap`` draws its own indices; here the replicates of every metric share one index matrix.
    """
    return np.asarray(values, np.float64)[np.asarray(indices)].mean(axis=-1)


def bias_corrected(replicates, estimate):
    """Bootstrap replicates shifted by the bootstrap estimate of bias, ``mean(replicates) - estimate`` (Efron &
    Tibshirani 1993, ch. 10), so that they centre on the estimate.

    For FID: a resample of n images holds only about 0.63 n distinct ones, and FID's small-sample bias grows as
    the number of images falls, so raw FID replicates lie above the n-image FID (on 100 facades photos with the
    FID Inception: FID 73.5, replicates 86 to 100); the percentile interval of the shifted replicates is the
    interval of the n-image FID. NaN replicates stay NaN.
    """
    replicates = np.asarray(replicates, np.float64)
    return replicates - (np.nanmean(replicates) - float(estimate))


def bootstrap_p_value(differences):
    """Two-sided p-value of "no difference" from bootstrap replicates of a difference (Efron & Tibshirani 1993,
    ch. 16): ``min(1, 2 min(#{d* <= 0} + 1, #{d* >= 0} + 1) / (B + 1))``, the smallest level at which the
    percentile interval excludes 0 (the observed difference counts as one replicate, so p > 0)."""
    d = np.asarray(differences, np.float64)
    if d.size == 0:
        raise ValueError("no resampled differences")
    below, above = np.count_nonzero(d <= 0), np.count_nonzero(d >= 0)
    return float(min(1.0, 2.0 * (min(below, above) + 1) / (d.size + 1)))


def sign_flip_p_value(differences, n_permutations=DEFAULT_PERMUTATIONS, seed=DEFAULT_SEED):
    """Two-sided p-value of the paired permutation (sign-flip) test of the mean per-image difference (Fisher
    1935; Efron & Tibshirani 1993, ch. 15), by ``scipy.stats.permutation_test``: exact over all 2^n sign
    patterns when ``2^n <= n_permutations``, else ``n_permutations`` random flips (p = (k + 1) / (N + 1))."""
    d = np.asarray(differences, np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"sign-flip test needs a vector of per-image differences, got shape {d.shape}")
    if not np.any(d):
        return 1.0
    result = stats.permutation_test((d,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=int(n_permutations), alternative="two-sided",
                                    rng=np.random.default_rng(seed))
    return float(result.pvalue)


def image_counts(indices, n):
    """(B, n) number of times each image is drawn in each resample of (B, n) ``indices``."""
    indices = np.atleast_2d(indices)
    offsets = n * np.arange(len(indices))[:, None]
    return np.bincount((indices + offsets).ravel(), minlength=len(indices) * n).reshape(len(indices), n)


class ResampledDistances:
    """FID and KID between generated and reference features, recomputed on resamples of the images.

    Built once from (n, d) generated and reference features of the same n images (row i of each is image i);
    ``fid(indices)`` and ``kid(indices)`` then cost O(n^2) to O(n^3) per resample, independent of d:

    - FID (eq. 32) in its exact low-rank form: with centred features X1, X2 (n x d) of a set,
      ``Tr S = ||X||_F^2 / (n - 1)`` and ``Tr (S1 S2)^(1/2)`` = the nuclear norm of ``X1 X2^T / (n - 1)``
      (the non-zero eigenvalues of ``S1 S2`` are the squared singular values of that n x n matrix). A resample
      holding image a ``c_a`` times has the same singular values as ``W X1u X2u^T W`` over its k distinct
      images, ``W = diag(sqrt(c))``, so the SVD is k x k (k ~ 0.63 n).
    - KID (eq. 26-31): the unbiased MMD^2 of :func:`metrics.distances.kid_from_features` on one subset of the whole
      set (what it computes whenever the set is no larger than its subset size; for larger sets, what its subset
      mean estimates), from the polynomial-kernel matrices computed once. In a resample, pairs of copies of the
      same image are left out of the within-set sums, as the diagonal is (else a duplicated image would count
      as two images at kernel value k(x, x)); the cross term sums all pairs. With every count 1 this is exactly
      ``kid_from_features``'s value.
    """

    def __init__(self, generated, reference, kernel_degree=KID_DEGREE, kernel_coef0=KID_COEF0):
        x, y = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
        if x.ndim != 2 or x.shape != y.shape or len(x) < 2:
            raise ValueError(f"need (n, d) features of the same n >= 2 images, got {x.shape} and {y.shape}")
        self.n, self.dim = x.shape
        # FID is invariant to a common shift: centre on the reference mean to keep the Grams well conditioned
        shift = y.mean(axis=0)
        xs, ys = x - shift, y - shift
        self.g_xx, self.g_yy, self.g_xy = xs @ xs.T, ys @ ys.T, xs @ ys.T
        kernel = dict(degree=kernel_degree, coef0=kernel_coef0)
        self.k_xx, self.k_yy, self.k_xy = (polynomial_kernel(a, b, **kernel) for a, b in ((x, x), (y, y), (x, y)))

    def _counts(self, indices):
        return image_counts(indices, self.n).astype(np.float64)

    def fid(self, indices):
        """FID of each resample (rows of ``indices``; a 1-D index vector gives one value)."""
        single = np.ndim(indices) == 1
        counts = self._counts(indices)
        n = self.n
        out = np.empty(len(counts))
        for r, c in enumerate(counts):
            u = np.flatnonzero(c)
            c = c[u]
            g_xx, g_yy, g_xy = (g[np.ix_(u, u)] for g in (self.g_xx, self.g_yy, self.g_xy))
            mean_xx, mean_yy, mean_xy = c @ g_xx @ c / n**2, c @ g_yy @ c / n**2, c @ g_xy @ c / n**2
            # trace of each covariance: sum_a c_a |x_a - mu|^2 / (n - 1)
            trace_x = (c @ np.diag(g_xx) - n * mean_xx) / (n - 1)
            trace_y = (c @ np.diag(g_yy) - n * mean_yy) / (n - 1)
            # centred cross Gram (x_a - mu_x).(y_b - mu_y), weighted by sqrt(c_a c_b)
            centred = g_xy - (g_xy @ c)[:, None] / n - (c @ g_xy)[None, :] / n + mean_xy
            w = np.sqrt(c)
            nuclear = np.linalg.svd(centred * w[:, None] * w[None, :], compute_uv=False).sum() / (n - 1)
            out[r] = mean_xx + mean_yy - 2.0 * mean_xy + trace_x + trace_y - 2.0 * nuclear
        return float(out[0]) if single else out

    def kid(self, indices):
        """KID (unbiased MMD^2) of each resample (rows of ``indices``; a 1-D index vector gives one value)."""
        single = np.ndim(indices) == 1
        c = self._counts(indices)
        n = self.n

        def quadratic(k):
            return np.einsum("bi,ij,bj->b", c, k, c)

        pairs_within = n * n - (c**2).sum(axis=1)  # 0 when a resample is one image n times: KID undefined (NaN)
        pairs_within[pairs_within == 0] = np.nan
        within_x = (quadratic(self.k_xx) - c**2 @ np.diag(self.k_xx)) / pairs_within
        within_y = (quadratic(self.k_yy) - c**2 @ np.diag(self.k_yy)) / pairs_within
        out = within_x + within_y - 2.0 * quadratic(self.k_xy) / n**2
        return float(out[0]) if single else out
