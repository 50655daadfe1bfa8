"""What the diffusion networks share: the sinusoidal noise embedding (eq. 12-13) and their inputs.

Every network embeds the noise variance ``noise_rate(t)**2`` = 1 - alpha_bar(t) in [0, 1] (what the
keras.io DDIM example, which the study follows, feeds its network), never a schedule's own step
index, so any network runs with any schedule.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from models.diffusion.schedules import DiffusionConfigError

STUDY_MAX_FREQUENCY = math.e ** 3  # eq. (12): exponents a = 0, 0.2, ..., 3
KERAS_IO_MAX_FREQUENCY = 1000.0


@keras.saving.register_keras_serializable(package="i2i")
class SinusoidalEmbedding(layers.Layer):
    """[sin(2 pi f_j x), cos(2 pi f_j x)] for ``dims / 2`` frequencies f_j log-spaced in [min, max].

    The study's eq. (12)-(13): 16 frequencies e^a, a = 0, 0.2, ..., 3 (``min_frequency=1``,
    ``max_frequency=e**3``, ``dims=32``). The keras.io DDIM example spaces them from 1 to 1000 instead.
    Maps ``[..., 1]`` to ``[..., dims]`` (sines first, then cosines).
    """

    def __init__(self, dims=32, min_frequency=1.0, max_frequency=STUDY_MAX_FREQUENCY, **kwargs):
        super().__init__(**kwargs)
        if dims < 2 or dims % 2:
            raise DiffusionConfigError(f"the sinusoidal embedding needs an even number of dims, got {dims}")
        self.dims = int(dims)
        self.min_frequency = float(min_frequency)
        self.max_frequency = float(max_frequency)
        frequencies = np.geomspace(self.min_frequency, self.max_frequency, self.dims // 2)
        self.angular_speeds = (2.0 * math.pi * frequencies).astype("float32")

    def call(self, x):
        angles = ops.cast(self.angular_speeds, x.dtype) * x
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims, "min_frequency": self.min_frequency,
                "max_frequency": self.max_frequency}


def network_inputs(image_size, condition_channels, image_channels=3):
    """Keras inputs ``[noisy_images, noise_variances(, condition_images)]`` and the image stack the
    network starts from (the condition channels, e.g. the label map, concatenated to the noisy image)."""
    if isinstance(condition_channels, bool) or int(condition_channels) != condition_channels \
            or condition_channels < 0:
        raise DiffusionConfigError(f"condition_channels must be 0 (unconditional) or a channel count, "
                                   f"got {condition_channels!r}")
    noisy_images = keras.Input((image_size, image_size, image_channels), name="noisy_images")
    noise_variances = keras.Input((1, 1, 1), name="noise_variances")
    if not condition_channels:
        return [noisy_images, noise_variances], noisy_images
    condition_images = keras.Input((image_size, image_size, int(condition_channels)), name="condition_images")
    stacked = layers.Concatenate(name="condition_concat")([noisy_images, condition_images])
    return [noisy_images, noise_variances, condition_images], stacked


def condition_at_level(condition_images, level, name):
    """The condition (label map) average-pooled to level ``level`` (``image_size / 2**level``), to be concatenated
    to a block's input: the label reaches every resolution, not only the first layer (Table 4 feeds it only there)."""
    if level == 0:
        return condition_images
    return layers.AveragePooling2D(pool_size=2 ** level, name=name)(condition_images)


def check_image_size(image_size, levels, network):
    """``image_size`` must halve ``levels`` times without remainder."""
    if isinstance(image_size, bool) or int(image_size) != image_size or image_size < 2 ** levels \
            or image_size % (2 ** levels):
        raise DiffusionConfigError(f"{network}: image size {image_size!r} must be a positive multiple of "
                                   f"{2 ** levels} ({levels} halvings)")
    return int(image_size)
