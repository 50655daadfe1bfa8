"""Distribution distances between two sets of image features: FID (eq. 32) and KID (eq. 26-31).

Both take (N, D) feature arrays from a backbone (``metrics.backbones``) and work in float64.

FID: ``||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))`` with float64 means and (N - 1)-normalised
covariances. The trace of the matrix square root is computed from eigenvalues, as torch-fidelity does:
``Tr((S_1 S_2)^(1/2)) = sum_i sqrt(lambda_i(S_1 S_2))``, taking the real part of the complex square root (the
eigenvalues of a product of two PSD matrices are real and >= 0; round-off makes the tiny ones slightly negative
or complex, and those contribute ~0). ``scipy.linalg.sqrtm`` is not used: SciPy 1.11-1.12 returned large
imaginary parts for the rank-deficient covariances of small sets (106 images, 2048-d features).

KID: the unbiased MMD^2 estimate with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3`` (eq. 26-31; the
study's eq. 31 has a sign typo: the cross term is *subtracted*), averaged over random subsets and reported as
mean and (population) standard deviation. Defaults and subset sampling are torch-fidelity's, so the same seed draws
the same subsets and gives the same numbers. Unlike torch-fidelity (which refuses), a subset size larger than either
set is shrunk to the smaller set size; the size used is returned.
"""

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_COEF0 = 1.0
KID_SEED = 2020


def _as_features(features, what="features"):
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{what} must be an (N, D) array, got shape {features.shape}")
    return features


def feature_statistics(features):
    """Mean and covariance (float64, ``np.cov`` with N - 1) of (N, D) features; needs N >= 2."""
    features = _as_features(features)
    if len(features) < 2:
        raise ValueError(f"feature statistics need at least 2 feature vectors, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def sqrtm_trace(sigma1, sigma2):
    """``Tr((sigma1 sigma2)^(1/2))`` from the eigenvalues of the product (torch-fidelity's stable method)."""
    eigenvalues = np.linalg.eigvals(np.asarray(sigma1, np.float64) @ np.asarray(sigma2, np.float64))
    return float(np.sum(np.sqrt(eigenvalues.astype(np.complex128)).real))


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (eq. 32)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics of different dimensions: {mu1.shape}/{sigma1.shape} vs "
                         f"{mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * sqrtm_trace(sigma1, sigma2))


def fid_from_features(features1, features2):
    """FID between two (N, D) feature sets (eq. 32)."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def polynomial_kernel(x, y, degree=KID_DEGREE, gamma=None, coef0=KID_COEF0):
    """``(gamma x.y + coef0)^degree`` for all rows of x and y; gamma defaults to 1 / D (eq. 30)."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx, k_xy, k_yy):
    """Unbiased MMD^2 from kernel matrices of two equal-size samples (eq. 31, cross term subtracted)."""
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)


def kid_from_features(features1, features2, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE,
                      degree=KID_DEGREE, gamma=None, coef0=KID_COEF0, seed=KID_SEED):
    """KID mean and std over random subsets, as torch-fidelity computes it (eq. 26-31).

    Returns ``{"kid_mean", "kid_std", "kid_subset_size"}``; ``kid_subset_size`` is the size actually used, which is
    ``min(subset_size, N1, N2)``. When it equals both set sizes every subset is the whole set (in another order),
    so the std is exactly 0, not the ~1e-16 that the subsets' summation order leaves; so is a spread of equal values.
    """
    f1, f2 = _as_features(features1, "features1"), _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} vs {f2.shape[1]}")
    n1, n2 = len(f1), len(f2)
    size = min(int(subset_size), n1, n2)
    if size < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {n1} and {n2}")
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        x = f1[rng.choice(n1, size, replace=False)]
        y = f2[rng.choice(n2, size, replace=False)]
        kernel = dict(degree=degree, gamma=gamma, coef0=coef0)
        mmds[i] = mmd2_unbiased(polynomial_kernel(x, x, **kernel), polynomial_kernel(x, y, **kernel),
                                polynomial_kernel(y, y, **kernel))
    whole_sets = size == n1 == n2
    std = 0.0 if whole_sets or np.ptp(mmds) == 0 else float(np.std(mmds))
    return {"kid_mean": float(np.mean(mmds)), "kid_std": std, "kid_subset_size": size}
