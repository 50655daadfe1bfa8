"""Pixel losses: L1 (study eq. 3), L2, CycleGAN's cycle and identity terms, the diffusion noise loss (eq. 8)."""

import tensorflow as tf


def l1_loss(target, output):
    """Mean absolute error over all pixels and channels (eq. 3)."""
    return tf.reduce_mean(tf.abs(tf.cast(target, tf.float32) - tf.cast(output, tf.float32)))


def l2_loss(target, output):
    """Mean squared error over all pixels and channels."""
    return tf.reduce_mean(tf.square(tf.cast(target, tf.float32) - tf.cast(output, tf.float32)))


def cycle_loss(real, cycled):
    """CycleGAN cycle consistency ||F(G(x)) - x||_1 (unweighted; the model applies lambda)."""
    return l1_loss(real, cycled)


def identity_loss(real, same):
    """CycleGAN identity term ||G(y) - y||_1 (unweighted; the model applies 0.5 * lambda)."""
    return l1_loss(real, same)


def noise_loss(noise, predicted_noise):
    """L_simple of eq. (8): mean squared error between the true and the predicted noise."""
    return l2_loss(noise, predicted_noise)
