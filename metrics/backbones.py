"""Feature backbones for FID/KID, batched extraction and cached reference features.

Three backbones, each with ``name``, ``dim``, ``comparable_with_published`` and ``features(images)`` (NHWC RGB
in [0, 255] -> float64 (n, dim)):

- ``inception``: keras.applications InceptionV3, 2048-d pool features (what the study's code used);
- ``fid-inception``: the FID Inception of the original TF FID as ported by pytorch-fid, 2048-d -- the one whose
  numbers are comparable with published FID;
- ``alexnet``: the LPIPS AlexNet (torchvision weights) conv5 ReLU output, global-average-pooled, 256-d. It works
  offline with the LPIPS weights, but its Fréchet/kernel distances are **not** comparable with published FID/KID;
  every result names the backbone. Images are not resized (AlexNet is fully convolutional and the pooling is
  global), so only compare its values at one resolution.

Reference features (e.g. of a test split) can be cached in an npz keyed by the backbone name, a fingerprint of its
weights, the image ids and size, and :data:`FEATURES_VERSION`.
"""

import hashlib
import json
import logging
import os

import numpy as np

from data.errors import I2IError
from metrics.weights import WeightsError

log = logging.getLogger("i2i")

BACKBONES = ("inception", "fid-inception", "alexnet")
DEFAULT_BATCH_SIZE = 32
FEATURES_VERSION = 1  # bump when any backbone's preprocessing or features change: invalidates cached features


class AlexNetBackbone:
    """LPIPS AlexNet conv5 ReLU features, global-average-pooled (256-d). Not comparable with published FID."""

    name = "alexnet"
    dim = 256
    comparable_with_published = False

    def __init__(self, weights_path=None, batch_size=DEFAULT_BATCH_SIZE):
        import tensorflow as tf
        from keras import ops

        from metrics.lpips import load_alexnet_features, load_lpips_arrays, weights_fingerprint

        arrays = load_lpips_arrays(weights_path)
        self.weights_sha256 = weights_fingerprint(arrays)
        self.model = load_alexnet_features(arrays)
        self.batch_size = int(batch_size)
        self._pooled = tf.function(lambda x: ops.mean(self.model(x)[-1], axis=(1, 2)), reduce_retracing=True)

    def features(self, images):
        from metrics.lpips import check_image_batch

        images = check_image_batch(images, "alexnet backbone")
        step = self.batch_size
        out = [self._pooled(images[i : i + step]).numpy() for i in range(0, len(images), step)]
        return np.concatenate(out).astype(np.float64)


def _inception_class(name):
    if name == "inception":
        from metrics.inception import InceptionBackbone

        return InceptionBackbone
    from metrics.fid_inception import FIDInceptionBackbone

    return FIDInceptionBackbone


def _weights_file(name):
    """(file name, checksum keyword arguments for find_weights) of the inception and alexnet backbones' weights."""
    if name == "inception":
        from metrics import inception

        return inception.KERAS_WEIGHTS_FILE, {"md5": inception.KERAS_WEIGHTS_MD5}
    from metrics.lpips import NPZ_NAME, NPZ_SHA256

    return NPZ_NAME, {"sha256": NPZ_SHA256}


def get_backbone(name, weights_path=None, batch_size=DEFAULT_BATCH_SIZE, resize=None):
    """Build the backbone ``name`` (one of :data:`BACKBONES`); missing weights raise WeightsError.

    ``resize`` (fid-inception only): ``pytorch-fid`` (default) or ``torch-fidelity``, whose input resizing it follows.
    """
    if resize not in (None, "pytorch-fid") and name != "fid-inception":
        raise I2IError(f"--resize {resize} applies to the fid-inception backbone only, not {name}")
    if name == "alexnet":
        return AlexNetBackbone(weights_path=weights_path, batch_size=batch_size)
    if name == "inception":
        return _inception_class(name)(weights_path=weights_path, batch_size=batch_size)
    if name == "fid-inception":
        return _inception_class(name)(weights_path=weights_path, batch_size=batch_size, resize=resize or "pytorch-fid")
    raise I2IError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def backbone_available(name):
    """True if ``name``'s weights are on this machine with the right checksum (no download is tried)."""
    from metrics.weights import find_weights

    try:
        if name == "fid-inception":
            from metrics.fid_inception import find_fid_inception_weights

            find_fid_inception_weights()
        else:
            filename, checksum = _weights_file(name)
            find_weights(filename, **checksum)
        return True
    except WeightsError:
        return False


def default_backbone():
    """``fid-inception`` if its weights are here (comparable with published FID), else ``inception``, else
    ``alexnet`` (works offline with the LPIPS weights; labelled as not comparable)."""
    for name in ("fid-inception", "inception"):
        if backbone_available(name):
            return name
    return "alexnet"


def describe_backbone(backbone):
    """One line naming the backbone and whether its FID/KID are on the published scale."""
    if backbone.comparable_with_published:
        resize = getattr(backbone, "resize", None)
        how = f", {resize} resize" if resize else ""
        return f"{backbone.name} ({backbone.dim}-d{how}, comparable with published FID/KID)"
    return f"{backbone.name} ({backbone.dim}-d, NOT comparable with published FID/KID)"


def extract_features(backbone, batches):
    """(N, dim) float64 features of every image in an iterable of (n, H, W, 3) batches in [0, 255].

    Only one batch of images is held at a time; every image is scored (no dropped last batch).
    """
    chunks = [backbone.features(np.asarray(batch)) for batch in batches]
    if not chunks:
        raise I2IError("no images to compute features of")
    return np.concatenate(chunks, axis=0)


# ------------------------------------------------------------------------------------------ cached features
def weights_id(backbone):
    """A fingerprint of the backbone's weights, or None if it has none we can name (then nothing is cached)."""
    digest = getattr(backbone, "weights_sha256", None)
    if digest:
        return digest
    path = getattr(backbone, "weights_path", None)
    if path and os.path.isfile(path):
        from metrics.weights import file_digest

        return file_digest(path, "sha256")
    return None


def reference_cache_key(backbone, image_ids, image_size):
    """sha256 of everything that determines the features: backbone, weights, images, size, code version."""
    wid = weights_id(backbone)
    if wid is None:
        return None
    spec = {"backbone": backbone.name, "weights": wid, "images": [str(i) for i in image_ids],
            "size": [int(s) for s in image_size], "features_version": FEATURES_VERSION}
    if getattr(backbone, "resize", "pytorch-fid") != "pytorch-fid":
        spec["resize"] = backbone.resize
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def reference_cache_path(cache_dir, backbone, image_ids, image_size):
    key = reference_cache_key(backbone, image_ids, image_size)
    if key is None:
        return None
    return os.path.join(cache_dir, f"features-{backbone.name}-{key[:24]}.npz")


def load_cached_features(path, backbone):
    """Features from a cache file, or None if it is missing or unreadable (it is then recomputed)."""
    if path is None or not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            features = npz["features"]
            meta = json.loads(str(npz["meta"]))
    except Exception as e:  # a broken cache is never fatal: recompute
        log.warning("%s: ignoring unreadable feature cache (%s)", path, e)
        return None
    if features.ndim != 2 or features.shape[1] != backbone.dim or meta.get("backbone") != backbone.name:
        log.warning("%s: ignoring feature cache of the wrong shape or backbone", path)
        return None
    return features.astype(np.float64)


def save_cached_features(path, backbone, features):
    """Write features (float64) with their mean and covariance; atomic via a temporary file."""
    from metrics.distances import feature_statistics

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    mu, sigma = feature_statistics(features) if len(features) >= 2 else (features.mean(0), None)
    arrays = {"features": np.asarray(features, np.float64), "mu": mu,
              "meta": np.array(json.dumps({"backbone": backbone.name, "weights": weights_id(backbone),
                                           "features_version": FEATURES_VERSION, "n_images": len(features)}))}
    if sigma is not None:
        arrays["sigma"] = sigma
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
