"""The Keras ImageNet InceptionV3 feature extractor for FID and KID (study eq. 26-32).

``InceptionBackbone`` is ``keras.applications.InceptionV3(include_top=False, pooling="avg")``
with the official ImageNet weights, fed as Keras documents: images resized to 299x299
(bilinear, no antialiasing: ``keras.layers.Resizing``' default) and scaled by
``keras.applications.inception_v3.preprocess_input`` (``x / 127.5 - 1``). This is the
network the study's code used. The FID Inception of published FID numbers is in
:mod:`metrics.fid_inception`.

``ImageBackbone`` is the batching shared by both: NHWC RGB in [0, 255] (uint8 or float, any
size) in, float64 ``(n, 2048)`` out, ``batch_size`` images through the network at a time.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from data.errors import I2IError
from metrics.weights import WeightsError, find_weights

# keras/src/applications/inception_v3.py (Keras 3.15): WEIGHTS_PATH_NO_TOP and its file_hash.
KERAS_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + KERAS_WEIGHTS_FILE
)
KERAS_WEIGHTS_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"

INPUT_SIZE = 299


@contextlib.contextmanager
def float32_policy():
    """Build layers in float32 even if a training script set a mixed-precision policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _same_size_batches(images, batch_size, what):
    """Yield ``(indices, float32 NHWC batch)``; images of different sizes go in different batches."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        groups = {images.shape[1:]: list(range(len(images)))}
    else:
        images = [np.asarray(image) for image in images]
        groups = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
    for shape, indices in groups.items():
        if len(shape) != 3 or shape[-1] != 3 or min(shape) < 1:
            raise I2IError(f"{what}: expected RGB images of shape (H, W, 3), got {shape}")
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            yield chunk, np.stack([np.asarray(images[i], dtype=np.float32) for i in chunk])


class ImageBackbone:
    """Feature extractor: ``features(images)`` -> float64 ``(n, dim)``, ``batch_size`` at a time."""

    name = None
    dim = 2048
    comparable_with_published = True

    def __init__(self, batch_size=32):
        self.batch_size = int(batch_size)
        self._forward = tf.function(
            self._features_float32,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
        )

    def _features_float32(self, images):
        raise NotImplementedError

    def features(self, images):
        """Pool features of NHWC RGB images in [0, 255]: an array ``(n, H, W, 3)`` or ``(H, W, 3)``,
        or a list of ``(H, W, 3)`` arrays of any sizes. Returns float64 ``(n, dim)`` in input order.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
        out = np.zeros((len(images), self.dim), np.float64)
        for indices, batch in _same_size_batches(images, self.batch_size, f"{self.name} backbone"):
            out[indices] = self._forward(tf.constant(batch)).numpy().astype(np.float64)
        return out


class InceptionBackbone(ImageBackbone):
    """``keras.applications.InceptionV3`` ImageNet pool features (2048-d), Keras' preprocessing."""

    name = "inception"

    def __init__(self, weights_path=None, batch_size=32):
        super().__init__(batch_size)
        path = find_weights(KERAS_WEIGHTS_FILE, url=KERAS_WEIGHTS_URL, md5=KERAS_WEIGHTS_MD5,
                            explicit_path=weights_path)
        if not str(path).endswith((".h5", ".hdf5")):
            raise WeightsError(
                f"{path}: Keras InceptionV3 weights must be a .h5 file like {KERAS_WEIGHTS_FILE}"
            )
        self.weights_path = path
        try:
            with float32_policy():
                self.resize = keras.layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear")
                self.model = keras.applications.InceptionV3(
                    include_top=False, weights=path, pooling="avg", input_shape=(INPUT_SIZE, INPUT_SIZE, 3)
                )
        except (ValueError, OSError, KeyError, TypeError) as e:
            raise WeightsError(
                f"{path}: not usable as Keras InceptionV3 no-top ImageNet weights: {e}"
            ) from None

    def _features_float32(self, images):
        x = keras.applications.inception_v3.preprocess_input(self.resize(images))
        return self.model(x, training=False)
