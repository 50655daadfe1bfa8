"""Metrics: PSNR, SSIM, FID, KID, LPIPS, the segmentation score, feature backbones, weight lookup.

Images at this boundary are NHWC RGB, uint8 or float in [0, 255]. Importing ``metrics`` is cheap: the names
below are loaded from their modules on first use (PEP 562), and no network is built until asked for.

- ``psnr``, ``ssim``: per-pair image quality (eq. 20-25), ``metrics.image_quality``.
- ``LPIPS``: AlexNet v0.1 LPIPS (eq. 33), ``metrics.lpips``.
- ``get_backbone``, ``extract_features``, ``BACKBONES``, ``default_backbone``: FID/KID features,
  ``metrics.backbones``.
- ``fid_from_features``, ``kid_from_features``, ``frechet_distance``, ``feature_statistics``: eq. 26-32,
  ``metrics.distances``.
- ``score_pairs``, ``split_pairs``, ``ALL_METRICS``: everything in one streaming pass, ``metrics.score``.
- ``compare_folders``: two models' outputs of the same label maps, paired bootstrap and permutation test,
  ``metrics.comparison`` (bootstrap and permutation helpers: ``metrics.intervals``).
- ``SegmentationScore``, ``segmentation_scores``: does the photo follow the label map (mIoU, pixel accuracy of the
  facade parser's class maps), ``metrics.segmentation``; ``load_facade_parser``: the parser, ``metrics.facade_parser``.
- ``find_weights``, ``WeightsError``: pretrained weight lookup, ``metrics.weights``;
  ``load_torch_state_dict``: PyTorch .pth reader, ``metrics.torch_pickle``.
"""

import importlib

_EXPORTS = {
    "psnr": "metrics.image_quality",
    "ssim": "metrics.image_quality",
    "LPIPS": "metrics.lpips",
    "get_backbone": "metrics.backbones",
    "extract_features": "metrics.backbones",
    "default_backbone": "metrics.backbones",
    "BACKBONES": "metrics.backbones",
    "fid_from_features": "metrics.distances",
    "kid_from_features": "metrics.distances",
    "frechet_distance": "metrics.distances",
    "feature_statistics": "metrics.distances",
    "score_pairs": "metrics.score",
    "split_pairs": "metrics.score",
    "ALL_METRICS": "metrics.score",
    "compare_folders": "metrics.comparison",
    "SegmentationScore": "metrics.segmentation",
    "segmentation_scores": "metrics.segmentation",
    "load_facade_parser": "metrics.facade_parser",
    "find_weights": "metrics.weights",
    "WeightsError": "metrics.weights",
    "load_torch_state_dict": "metrics.torch_pickle",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metrics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
