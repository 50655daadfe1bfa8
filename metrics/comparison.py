"""Paired comparison of two models that translated the same label maps: A - B per metric, its interval, a p-value.

The two models' outputs and the references are paired by file name: image i of A, of B and of the references
come from the same test label map, so the comparison resamples (and permutes) images, not models' outputs
independently. For each metric :func:`compare_measurements` reports

- ``a``, ``b``: the scores of A and of B; ``diff`` = a - b;
- ``lo``, ``hi``: the 95 % percentile interval of a - b from a paired bootstrap (Efron & Tibshirani 1993,
  ch. 13): every resample draws n image indices with replacement, the same for A, B and the references;
- ``p``: two-sided p-value of "A and B score the same". PSNR, SSIM, LPIPS: the paired permutation (sign-flip)
  test of the mean per-image difference (Fisher 1935; Efron & Tibshirani 1993, ch. 15). FID, KID (no per-image
  values): the bootstrap test of the difference (Efron & Tibshirani 1993, ch. 16), twice the smaller share of
  resampled differences on either side of 0 (:func:`metrics.intervals.bootstrap_p_value`). FID/KID replicates of
  the difference are first shifted by their bootstrap bias (:func:`metrics.intervals.bias_corrected`), as for
  the single-model intervals;
- ``a_better``: the fraction of images on which A scores better than B (higher PSNR/SSIM, lower LPIPS; ties
  count as not better); None for FID and KID.

With ``segmentation`` and the label maps the images were translated from, ``seg_miou`` and ``seg_acc`` are compared
like FID: each score is computed from the confusion matrix summed over the images (SPADE's evaluation), its
replicates from the summed matrices of the drawn images, and ``p`` is the paired bootstrap test; ``a_better`` is
the share of images whose own mIoU (or accuracy) is higher under A.
"""

import numpy as np

from data.errors import I2IError
from metrics.distances import fid_from_features, kid_from_features
from metrics.folders import label_map_paths, pair_batches, pair_images, reference_ids
from metrics.intervals import (
    DEFAULT_PERMUTATIONS,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    ResampledDistances,
    bias_corrected,
    bootstrap_indices,
    bootstrap_p_value,
    percentile_interval,
    resampled_means,
    sign_flip_p_value,
)
from metrics.score import (
    ALL_METRICS,
    DISTRIBUTION_METRICS,
    SEGMENTATION,
    SEGMENTATION_SCORES,
    ImagePairError,
    check_resamples,
    measure_pairs,
    parse_metrics,
    resampled_segmentation,
    resolve_backbone,
    split_pairs,
)
from metrics.segmentation import scores_from_confusion

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "kid": False, "seg_miou": True,
                    "seg_acc": True}


def pair_three_folders(gen_a, gen_b, ref_dir):
    """[(stem, path_a, path_b, path_ref)] sorted by name; the three folders must hold the same names (else
    I2IError naming the folders and the unmatched names, from :func:`metrics.folders.pair_images`)."""
    pairs_a, pairs_b = pair_images(gen_a, ref_dir), pair_images(gen_b, ref_dir)
    return [(stem, a, b, ref) for (stem, a, ref), (_, b, _) in zip(pairs_a, pairs_b)]


def compare_folders(gen_a, gen_b, ref_dir, metrics=ALL_METRICS, backbone=None, *, n_resamples=DEFAULT_RESAMPLES,
                    seed=DEFAULT_SEED, n_permutations=DEFAULT_PERMUTATIONS, batch_size=32, weights_path=None,
                    lpips_model=None, cache_dir=None, per_image=False, label_dir=None, parser=None):
    """Compare the generated images of folder ``gen_a`` with those of ``gen_b``, both against ``ref_dir``.

    ``backbone``: as for :func:`metrics.score.score_pairs` (a name, a built backbone, or None for the default);
    the references' features are computed once. ``label_dir``: the label maps the images were translated from
    (same names), needed for ``segmentation``; ``parser``: a built facade parser (default: the shipped one).
    Returns :func:`compare_measurements`' dict, plus ``names`` (the image stems in order) when ``per_image``.
    """
    metrics = parse_metrics(metrics)
    check_resamples(n_resamples)
    pairs = pair_three_folders(gen_a, gen_b, ref_dir)
    labels = None
    if SEGMENTATION in metrics:
        if label_dir is None:
            raise I2IError(f"{SEGMENTATION} compares each image with the label map it was translated from: give the "
                           "folder of the label maps")
        labels = label_map_paths([(stem, a, ref) for stem, a, _, ref in pairs], label_dir)
        if parser is None:
            from metrics.facade_parser import load_facade_parser

            parser = load_facade_parser(batch_size=batch_size)
    net = resolve_backbone(backbone, weights_path, batch_size) if set(metrics) & set(DISTRIBUTION_METRICS) else None
    if "lpips" in metrics and lpips_model is None:
        from metrics.lpips import LPIPS

        lpips_model = LPIPS(batch_size=batch_size)

    def measure(model, real_features=None):
        model_pairs = [(stem, paths[model], paths[2]) for stem, *paths in pairs]
        batches = split_pairs(pair_batches(model_pairs, batch_size, labels), 2 if labels is None else 3)
        fakes, reals, label_batches = (*batches, None)[:3]
        return measure_pairs(fakes, reals, metrics, net, lpips_model, cache_dir=cache_dir,
                             real_ids=reference_ids(model_pairs), real_features=real_features,
                             label_batches=label_batches, parser=parser)

    measured_a = measure(0)
    measured_b = measure(1, measured_a.real_features)
    result = compare_measurements(measured_a, measured_b, metrics, n_resamples=n_resamples, seed=seed,
                                  n_permutations=n_permutations, per_image=per_image)
    result["backbone"] = net.name if net is not None else None
    if per_image:
        result["names"] = [stem for stem, *_ in pairs]
    return result


def compare_measurements(measured_a, measured_b, metrics=ALL_METRICS, *, n_resamples=DEFAULT_RESAMPLES,
                         seed=DEFAULT_SEED, n_permutations=DEFAULT_PERMUTATIONS, per_image=False):
    """Paired comparison of two :class:`metrics.score.Measurements` of the same n references (see the module).

    Returns ``{metric: {"a", "b", "diff", "lo", "hi", "p", "a_better"}}`` for each metric asked for, and
    ``n_images``, ``resolution``, ``n_resamples``, ``seed``, ``n_permutations``; with ``per_image`` also
    ``"per_image": {metric: {"a": [...], "b": [...]}}`` (PSNR/SSIM/LPIPS, seg_miou/seg_acc). ``n_resamples`` 0:
    ``lo``, ``hi`` and the FID/KID/segmentation p-values are None. ``a`` and ``b`` are the scores of
    :func:`metrics.score.score_pairs` (:func:`metrics.distances.fid_from_features`,
    :func:`metrics.distances.kid_from_features`' mean).
    """
    metrics = parse_metrics(metrics)
    n = measured_a.n
    if measured_b.n != n:
        raise ImagePairError(f"model A has {n} scored images, model B {measured_b.n}: a paired comparison needs "
                             "the same images")
    if measured_a.real_features is not None and measured_b.real_features is not None and not np.array_equal(
            measured_a.real_features, measured_b.real_features):
        raise ImagePairError("models A and B were scored against different reference features")
    indices = bootstrap_indices(n, n_resamples, seed) if n_resamples else None
    out = {"n_images": n, "resolution": measured_a.resolution, "n_resamples": int(n_resamples),
           "seed": int(seed), "n_permutations": int(n_permutations)}
    for m in metrics:
        if m in measured_a.per_image:
            out[m] = _compare_per_image(m, measured_a.per_image[m], measured_b.per_image[m], indices, seed,
                                        n_permutations)
    distribution = [m for m in metrics if m in DISTRIBUTION_METRICS]
    if distribution:
        if measured_a.fake_features is None or measured_b.fake_features is None:
            raise I2IError(f"{', '.join(distribution).upper()} asked for, but no backbone features were measured")
        if n < 2:
            raise ImagePairError("FID and KID need at least 2 images per set")
        distances = [ResampledDistances(m.fake_features, m.real_features) for m in (measured_a, measured_b)]
        identity = np.arange(n)
        for m in distribution:
            if m == "fid":
                a, b = (fid_from_features(x.fake_features, x.real_features) for x in (measured_a, measured_b))
            else:
                a, b = (kid_from_features(x.fake_features, x.real_features)["kid_mean"]
                        for x in (measured_a, measured_b))
            entry = {"a": float(a), "b": float(b), "diff": float(a - b), "lo": None, "hi": None, "p": None,
                     "a_better": None}
            if indices is not None:
                replicates = getattr(distances[0], m)(indices) - getattr(distances[1], m)(indices)
                replicates = bias_corrected(replicates, getattr(distances[0], m)(identity)
                                            - getattr(distances[1], m)(identity))
                entry["lo"], entry["hi"] = percentile_interval(replicates)
                entry["p"] = bootstrap_p_value(replicates[~np.isnan(replicates)])
            out[m] = entry
    if SEGMENTATION in metrics:
        out.update(_compare_segmentation(measured_a, measured_b, indices))
    if per_image:
        keys = [m for m in metrics if m in measured_a.per_image]
        keys += list(SEGMENTATION_SCORES) if SEGMENTATION in metrics else []
        out["per_image"] = {m: {"a": measured_a.per_image[m].tolist(), "b": measured_b.per_image[m].tolist()}
                            for m in keys}
    return out


def _compare_segmentation(measured_a, measured_b, indices):
    """seg_miou and seg_acc of A and B from their summed confusion matrices, the paired bootstrap of A - B."""
    if measured_a.confusion is None or measured_b.confusion is None:
        raise I2IError(f"{SEGMENTATION} asked for, but no confusion matrices were measured")
    scores = [scores_from_confusion(m.confusion.sum(axis=0)) for m in (measured_a, measured_b)]
    replicates = None
    if indices is not None:
        replicates = [resampled_segmentation(m.confusion, indices) for m in (measured_a, measured_b)]
    out = {}
    for key in SEGMENTATION_SCORES:
        a, b = scores[0][key], scores[1][key]
        entry = {"a": float(a), "b": float(b), "diff": float(a - b), "lo": None, "hi": None, "p": None}
        if replicates is not None:
            differences = replicates[0][key] - replicates[1][key]
            entry["lo"], entry["hi"] = percentile_interval(differences)
            entry["p"] = bootstrap_p_value(differences[~np.isnan(differences)])
        entry["a_better"] = share_better(key, measured_a.per_image[key], measured_b.per_image[key])
        out[key] = entry
    return out


def _compare_per_image(metric, values_a, values_b, indices, seed, n_permutations):
    values_a, values_b = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    differences = values_a - values_b
    entry = {"a": float(values_a.mean()), "b": float(values_b.mean()), "diff": float(differences.mean()),
             "lo": None, "hi": None, "p": sign_flip_p_value(differences, n_permutations, seed)}
    if indices is not None:
        entry["lo"], entry["hi"] = percentile_interval(resampled_means(differences, indices))
    entry["a_better"] = share_better(metric, values_a, values_b)
    return {k: entry[k] for k in ("a", "b", "diff", "lo", "hi", "p", "a_better")}


def share_better(metric, values_a, values_b):
    """The share of images on which A scores better than B on ``metric`` (ties count as not better)."""
    better = values_a > values_b if HIGHER_IS_BETTER[metric] else values_a < values_b
    return float(np.mean(better))
