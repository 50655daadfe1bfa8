"""LPIPS as a training loss (eq. 33's distance, our ``metrics.lpips`` network, frozen), for the autoencoder.

A plain object, not a Keras layer: a model that holds it does not save the AlexNet in its weights, so a trained
model loads where the LPIPS weights are absent.
"""

import tensorflow as tf

from data.errors import I2IError
from metrics.lpips import build_lpips_model, load_lpips_arrays
from metrics.weights import WeightsError


class LPIPSLoss:
    """``LPIPSLoss()(target, output)``: the mean LPIPS distance of images in [-1, 1], differentiable in both."""

    def __init__(self, weights_path=None):
        try:
            arrays = load_lpips_arrays(weights_path)
        except WeightsError as e:
            raise I2IError(f"the LPIPS loss needs the LPIPS AlexNet weights: {e}") from None
        self.network = build_lpips_model(arrays)
        self.network.trainable = False

    def __call__(self, target, output):
        to_pixels = lambda x: (tf.cast(x, tf.float32) + 1.0) * 127.5  # noqa: E731 - the network's [0, 255] input
        distances = self.network((to_pixels(target), to_pixels(output)), training=False)
        return tf.reduce_mean(tf.cast(distances, tf.float32))  # computed in the policy's dtype, reported in float32
