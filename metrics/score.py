"""Scoring generated images against references: every metric in one streaming pass.

:func:`score_pairs` is shared by ``python -m metrics``, ``train_scripts/evaluate.py`` and the compare command.
It takes two iterables of image batches (NHWC RGB, uint8 or float in [0, 255]; the i-th fake batch is paired with
the i-th real batch) and never holds more than one batch of images: paired metrics (PSNR, SSIM, LPIPS) are computed
per pair and averaged; distribution metrics (FID, KID) use the backbone features of all images (N x D floats).
Every score comes with a 95 % percentile bootstrap interval over the images (:func:`interval_scores`);
:func:`measure_pairs` is the streaming pass alone (per-image values and features), which
:mod:`metrics.comparison` reuses for two models.
"""

import collections
import logging

import numpy as np

from data.errors import I2IError
from metrics.intervals import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    ResampledDistances,
    bias_corrected,
    bootstrap_indices,
    percentile_interval,
    resampled_means,
)

log = logging.getLogger("i2i")

ALL_METRICS = ("psnr", "ssim", "fid", "kid", "lpips")  # the metrics of a generated and a reference set
PAIRED_METRICS = ("psnr", "ssim", "lpips")
DISTRIBUTION_METRICS = ("fid", "kid")
SEGMENTATION = "segmentation"  # generated photos against their label maps (metrics.segmentation): two scores
SEGMENTATION_SCORES = ("seg_miou", "seg_acc")
KNOWN_METRICS = (*ALL_METRICS, SEGMENTATION)
INTERVAL_KEYS = tuple(f"{m}_{end}" for m in (*ALL_METRICS, *SEGMENTATION_SCORES)
                      for end in ("lo", "hi"))  # kid_lo/hi: of kid_mean
RESULT_KEYS = ("n_images", "resolution", "psnr", "ssim", "fid", "kid_mean", "kid_std", "kid_subset_size",
               "lpips", "backbone", "seg_miou", "seg_acc", "per_class_iou", *INTERVAL_KEYS, "n_resamples",
               "interval_seed")
MAX_FEATURE_BOOTSTRAP_IMAGES = 1000


class ImagePairError(I2IError):
    """Two image sets cannot be scored together (sizes differ, counts differ, values out of range)."""


def parse_metrics(metrics):
    """Tuple of metric names from ``"psnr,ssim"`` or a sequence (None: :data:`ALL_METRICS`); unknown names raise
    I2IError. ``segmentation`` is one of them, never a default: it needs label maps and the facade parser."""
    if metrics is None:
        return ALL_METRICS
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in KNOWN_METRICS]
    if unknown or not names:
        raise I2IError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                       f"choose from {','.join(KNOWN_METRICS)}")
    return tuple(n for n in KNOWN_METRICS if n in names)


def split_pairs(pairs, width=2):
    """(generated, reference[, label maps]) iterables over one iterator of (generated, reference, ...) batch tuples
    of ``width`` batches each.

    For :func:`score_pairs`, which takes one generated batch, then the others: a tuple is read only when its
    generated batch is asked for, so nothing is held beyond the current tuple.
    """
    pending = [collections.deque() for _ in range(width - 1)]

    def generated():
        for fake, *others in pairs:
            if len(others) != width - 1:
                raise ValueError(f"split_pairs: a tuple of {len(others) + 1} batches, expected {width}")
            for queue, batch in zip(pending, others):
                queue.append(batch)
            yield fake

    class Followers:
        def __init__(self, queue):
            self.queue = queue

        def __iter__(self):
            return self

        def __next__(self):
            if not self.queue:
                raise StopIteration
            return self.queue.popleft()

    return (generated(), *(Followers(q) for q in pending))


def check_resamples(n_resamples):
    """``n_resamples`` as an int; negative or non-integer counts raise I2IError."""
    if int(n_resamples) != n_resamples or n_resamples < 0:
        raise I2IError(f"the number of resamples must be 0 (no intervals) or a positive integer, got {n_resamples}")
    return int(n_resamples)


def check_batch(batch, what):
    """(n, H, W, 3) float32 array in [0, 255] from a batch; values outside the range raise ImagePairError."""
    batch = np.asarray(batch)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ImagePairError(f"{what}: expected RGB images of shape (n, H, W, 3), got {batch.shape}")
    if batch.dtype != np.uint8:
        lo, hi = float(np.min(batch)), float(np.max(batch))
        if lo < -1e-3 or hi > 255.001 or not np.isfinite(lo + hi):
            raise ImagePairError(f"{what}: values in [{lo:.3g}, {hi:.3g}]; metrics take images in [0, 255] "
                                 "(map model outputs in [-1, 1] with data.pipeline.to_uint8)")
        if hi <= 1.0 and batch.size > 1000:
            log.warning("%s: all values <= 1; metrics take images in [0, 255], not [0, 1]", what)
    return batch


def resolve_backbone(backbone, weights_path, batch_size):
    """A built FID/KID backbone from a name, a built one, or None (the default; fid-inception with weights_path)."""
    from metrics.backbones import default_backbone, get_backbone

    if backbone is None:
        backbone = default_backbone() if weights_path is None else "fid-inception"
    if isinstance(backbone, str):
        return get_backbone(backbone, weights_path=weights_path, batch_size=batch_size)
    return backbone


def measure_pairs(fake_batches, real_batches, metrics=ALL_METRICS, net=None, lpips_model=None, *, cache_dir=None,
                  real_ids=None, real_features=None, label_batches=None, parser=None):
    """The per-image values and backbone features behind the scores, in one streaming pass.

    ``net``: a built backbone (FID/KID features are collected only if it is given and FID or KID is asked for);
    ``lpips_model``: a built :class:`metrics.lpips.LPIPS` (required if LPIPS is asked for).
    ``real_features``: the references' features when already known (then the backbone sees only the generated
    images); else they are computed, or read from / written to the cache as in :func:`score_pairs`.
    ``label_batches``, ``parser``: for ``segmentation``, the label maps the generated batches were translated from
    (uint8 RGB, batch by batch, any size) and a :class:`metrics.facade_parser.FacadeParser`. ``real_batches`` may
    be None when segmentation is the only metric (label maps without reference photos).

    Returns :class:`Measurements`: ``n``, ``resolution``, ``per_image`` ({metric: (n,) array} of PSNR/SSIM/LPIPS
    and seg_miou/seg_acc, in image order), ``fake_features`` and ``real_features`` ((n, D) arrays, None without
    FID/KID), ``confusion`` ((n, 12, 12) int64 confusion matrices of the images, None without segmentation).
    """
    from metrics import backbones as bb
    from metrics.image_quality import psnr, ssim
    from metrics.segmentation import SegmentationScore

    metrics = parse_metrics(metrics)
    if not any(m in metrics for m in DISTRIBUTION_METRICS):
        net = None
    if "lpips" in metrics and lpips_model is None:
        raise ValueError("LPIPS asked for but no lpips_model given")
    needs_reference = [m for m in metrics if m != SEGMENTATION]
    if real_batches is None and needs_reference:
        raise ImagePairError(f"{', '.join(needs_reference)} need reference images; without them only "
                             f"{SEGMENTATION} (against label maps) can be scored")
    segmentation = SEGMENTATION in metrics
    if segmentation and (label_batches is None or parser is None):
        raise ImagePairError(f"{SEGMENTATION} needs the label maps the images were generated from and the facade "
                             "parser")
    seg = SegmentationScore(parser) if segmentation else None
    values = {m: [] for m in PAIRED_METRICS if m in metrics}
    fake_features, real_batches_features = [], []
    cached_real, cache_path, sizes = real_features, None, set()
    real_iter = iter(real_batches) if real_batches is not None else None
    label_iter = iter(label_batches) if segmentation else None
    n = 0
    for index, fake in enumerate(fake_batches):
        fake = check_batch(fake, f"generated batch {index}")
        sizes.add(fake.shape[1:3])
        if segmentation:
            labels = next(label_iter, None)
            if labels is None:
                raise ImagePairError(f"more generated than label-map batches (no label-map batch {index})")
            labels = check_batch(labels, f"label-map batch {index}")
            if len(labels) != len(fake):
                raise ImagePairError(f"batch {index}: {len(fake)} generated images but {len(labels)} label maps")
            seg.update(np.clip(np.rint(fake), 0, 255).astype(np.uint8), np.clip(np.rint(labels), 0, 255)
                       .astype(np.uint8))
        n += len(fake)
        if real_iter is None:
            continue
        try:
            real = next(real_iter)
        except StopIteration:
            raise ImagePairError(f"more generated than reference batches (no reference batch {index})") from None
        real = check_batch(real, f"reference batch {index}")
        if fake.shape != real.shape:
            raise ImagePairError(f"batch {index}: generated images {fake.shape} and references {real.shape} "
                                 "differ in number or size")
        if index == 0 and net is not None and cached_real is None and cache_dir and real_ids is not None:
            cache_path = bb.reference_cache_path(cache_dir, net, real_ids, fake.shape[1:3])
            cached_real = bb.load_cached_features(cache_path, net)
            if cached_real is not None:
                log.info("reference features from cache %s", cache_path)
        if "psnr" in values:
            values["psnr"].append(psnr(fake, real))
        if "ssim" in values:
            values["ssim"].append(ssim(fake, real))
        if "lpips" in values:
            values["lpips"].append(lpips_model(fake, real))
        if net is not None:
            fake_features.append(net.features(fake))
            if cached_real is None:
                real_batches_features.append(net.features(real))
    if real_iter is not None and next(real_iter, None) is not None:
        raise ImagePairError(f"more reference than generated batches (after {n} images)")
    if segmentation and next(label_iter, None) is not None:
        raise ImagePairError(f"more label-map than generated batches (after {n} images)")
    if n == 0:
        raise ImagePairError("no images to score")
    if cache_path is not None and len(real_ids) != n:
        raise ImagePairError(f"{len(real_ids)} reference ids for {n} reference images: the feature cache needs one "
                             "id per image")
    fake, real = None, None
    if net is not None:
        fake = np.concatenate(fake_features)
        real = np.asarray(cached_real) if cached_real is not None else np.concatenate(real_batches_features)
        if len(real) != n:
            raise ImagePairError(f"cached reference features hold {len(real)} images, but {n} were scored")
        if cache_path is not None and cached_real is None:
            bb.save_cached_features(cache_path, net, real)
    resolution = "x".join(map(str, next(iter(sizes)))) if len(sizes) == 1 else "mixed"
    per_image = {m: np.concatenate(v) for m, v in values.items()}
    confusion = None
    if segmentation:
        confusion = np.stack(seg.image_matrices)
        per_image.update({m: np.asarray(v, np.float64) for m, v in seg.result()["per_image"].items()})
    return Measurements(n, resolution, per_image, fake, real, confusion)


Measurements = collections.namedtuple("Measurements", "n resolution per_image fake_features real_features confusion",
                                      defaults=(None,))


def score_pairs(fake_batches, real_batches, metrics=ALL_METRICS, backbone=None, *, weights_path=None,
                lpips_model=None, batch_size=32, kid_subsets=100, kid_subset_size=1000, kid_seed=2020,
                cache_dir=None, real_ids=None, per_image=False, n_resamples=DEFAULT_RESAMPLES,
                interval_seed=DEFAULT_SEED, label_batches=None, parser=None):
    """Score generated images against their references, each score with a 95 % bootstrap interval.

    Args:
        fake_batches, real_batches: iterables of (n, H, W, 3) arrays in [0, 255], paired batch by batch.
        metrics: names from :data:`ALL_METRICS` (or ``"psnr,ssim"``).
        backbone: ``"inception"``, ``"fid-inception"``, ``"alexnet"``, a built backbone object, or None for
            :func:`metrics.backbones.default_backbone` (``fid-inception`` when ``weights_path`` is given).
            Only built if FID or KID is asked for.
        weights_path: explicit weights file of the backbone (else the weight search path).
        lpips_model: a built :class:`metrics.lpips.LPIPS` to reuse (else one is built if LPIPS is asked for).
        kid_*: torch-fidelity's KID defaults; the subset size is shrunk to the number of images if larger.
        cache_dir, real_ids: if both are given, the reference images' features are cached in ``cache_dir``
            keyed by backbone, weights, ``real_ids`` (e.g. file names), image size and code version.
        per_image: also return ``"per_image"``: the PSNR/SSIM/LPIPS of every pair, in order.
        n_resamples, interval_seed: the bootstrap over images behind ``<metric>_lo``/``<metric>_hi``
            (:func:`interval_scores`); 0 resamples: no intervals.
        label_batches: for ``segmentation``: the label maps (uint8 RGB, any size) the generated batches were
            translated from, batch by batch; ``real_batches`` may then be None if segmentation is the only metric.
        parser: a built :class:`metrics.facade_parser.FacadeParser`, or its folder (None: the shipped one, or
            ``$I2I_FACADE_PARSER``; :func:`metrics.facade_parser.load_facade_parser`).

    Returns:
        dict with :data:`RESULT_KEYS` (metrics not asked for are None; ``resolution`` is ``"HxW"`` or
        ``"mixed"``; ``backbone`` names the FID/KID backbone, None without FID/KID). Segmentation gives
        ``seg_miou`` and ``seg_acc`` of the confusion matrix summed over all images (SPADE's evaluation) and
        ``per_class_iou``; ``per_image`` then holds each image's own seg_miou and seg_acc.
    """
    metrics = parse_metrics(metrics)
    check_resamples(n_resamples)
    wants_features = any(m in metrics for m in DISTRIBUTION_METRICS)
    net = resolve_backbone(backbone, weights_path, batch_size) if wants_features else None
    if "lpips" in metrics and lpips_model is None:
        from metrics.lpips import LPIPS

        lpips_model = LPIPS(batch_size=batch_size)
    if SEGMENTATION in metrics and (parser is None or isinstance(parser, (str, bytes)) or hasattr(parser,
                                                                                              "__fspath__")):
        from metrics.facade_parser import load_facade_parser

        parser = load_facade_parser(parser, batch_size=batch_size)
    measured = measure_pairs(fake_batches, real_batches, metrics, net, lpips_model, cache_dir=cache_dir,
                             real_ids=real_ids, label_batches=label_batches, parser=parser)

    result = dict.fromkeys(RESULT_KEYS)
    result["n_images"] = measured.n
    result["resolution"] = measured.resolution
    for m, v in measured.per_image.items():
        if m in PAIRED_METRICS:
            result[m] = float(np.mean(v))
    if measured.confusion is not None:
        from metrics.segmentation import scores_from_confusion

        whole = scores_from_confusion(measured.confusion.sum(axis=0))
        result.update({k: whole[k] for k in (*SEGMENTATION_SCORES, "per_class_iou")})
    if net is not None:
        result.update(_distribution_metrics(net, metrics, measured, kid_subsets, kid_subset_size, kid_seed))
    result.update(interval_scores(measured, metrics, n_resamples, interval_seed))
    if per_image:
        result["per_image"] = {m: v.tolist() for m, v in measured.per_image.items()}
    return result


def interval_scores(measured, metrics, n_resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """``<metric>_lo``/``<metric>_hi`` (95 % percentile bootstrap over images), ``n_resamples``, ``interval_seed``.

    Each resample draws n image indices with replacement (:func:`metrics.intervals.bootstrap_indices`); PSNR,
    SSIM and LPIPS are the mean of the drawn images' values; seg_miou and seg_acc are recomputed from the sum of the
    drawn images' confusion matrices (:func:`resampled_segmentation`), FID and KID are recomputed from the drawn images'
    generated and reference features (:class:`metrics.intervals.ResampledDistances`), their replicates shifted by
    the bootstrap bias (:func:`metrics.intervals.bias_corrected`: repeated images bias FID). Metrics not computed, and
    all with ``n_resamples`` 0, get None; FID/KID also when there are more than
    :data:`MAX_FEATURE_BOOTSTRAP_IMAGES` images (the resampling holds n x n matrices; a warning says so).
    """
    check_resamples(n_resamples)
    out = dict.fromkeys(INTERVAL_KEYS)
    out.update(n_resamples=int(n_resamples), interval_seed=int(seed) if n_resamples else None)
    if not n_resamples:
        return out
    indices = bootstrap_indices(measured.n, n_resamples, seed)
    replicates = {m: resampled_means(v, indices) for m, v in measured.per_image.items() if m in PAIRED_METRICS}
    if measured.confusion is not None:
        replicates.update(resampled_segmentation(measured.confusion, indices))
    wanted = [m for m in DISTRIBUTION_METRICS if m in parse_metrics(metrics)]
    if wanted and measured.fake_features is not None:
        if measured.n > MAX_FEATURE_BOOTSTRAP_IMAGES:
            log.warning("%d images: no FID/KID intervals above %d images (their resampling holds n x n matrices)",
                        measured.n, MAX_FEATURE_BOOTSTRAP_IMAGES)
        else:
            distances = ResampledDistances(measured.fake_features, measured.real_features)
            identity = np.arange(measured.n)
            replicates.update({m: bias_corrected(getattr(distances, m)(indices), getattr(distances, m)(identity))
                               for m in wanted})
    for m, values in replicates.items():
        out[f"{m}_lo"], out[f"{m}_hi"] = percentile_interval(values)
    return out


def resampled_segmentation(confusion, indices):
    """{"seg_miou": (B,), "seg_acc": (B,)}: the set-level scores of each resample (rows of image ``indices``), from
    the sum of its images' (n, C, C) ``confusion`` matrices, an image drawn k times counted k times."""
    from metrics.intervals import image_counts

    confusion = np.asarray(confusion, np.float64)
    n, classes = len(confusion), confusion.shape[-1]
    summed = (image_counts(indices, n).astype(np.float64) @ confusion.reshape(n, -1)).reshape(-1, classes, classes)
    tp = np.diagonal(summed, axis1=1, axis2=2)
    union = summed.sum(axis=1) + summed.sum(axis=2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, 0.0)
        present = (union > 0).sum(axis=1)
        total = summed.sum(axis=(1, 2))
        return {"seg_miou": np.where(present > 0, iou.sum(axis=1) / present, np.nan),
                "seg_acc": np.where(total > 0, tp.sum(axis=1) / total, np.nan)}


def _distribution_metrics(net, metrics, measured, kid_subsets, kid_subset_size, kid_seed):
    from metrics.distances import fid_from_features, kid_from_features

    if measured.n < 2:
        raise ImagePairError("FID and KID need at least 2 images per set; "
                             "score a single pair with --metrics psnr,ssim,lpips")
    fake, real = measured.fake_features, measured.real_features
    out = {"backbone": net.name}
    if "fid" in metrics:
        out["fid"] = fid_from_features(fake, real)
    if "kid" in metrics:
        kid = kid_from_features(fake, real, subsets=kid_subsets, subset_size=kid_subset_size, seed=kid_seed)
        out.update(kid)
    return out
