"""Adversarial losses on discriminator logits, generator and discriminator forms.

``bce``: the GAN / pix2pix objective (study eq. 1-2) with the non-saturating generator loss
``-log D(G(x))``, computed from logits. ``lsgan``: least squares (Mao et al.), the study's
"L2" adversarial loss: D pushes real to 1 and fake to 0 in squared error, G pushes fake to 1.
Each function returns the mean over the batch and the patch positions. The discriminator forms
are the plain sum of the real and fake terms; models that halve it (pix2pix, CycleGAN) say so.
"""

import tensorflow as tf

GAN_LOSSES = ("bce", "lsgan")


def _bce_with_logits(target, logits):
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target), logits=logits))


def _check(kind):
    if kind not in GAN_LOSSES:
        raise ValueError(f"gan loss must be one of {GAN_LOSSES}, got {kind!r}")


def discriminator_loss(real_logits, fake_logits, kind="bce"):
    """D's loss: real -> 1, fake -> 0."""
    _check(kind)
    real_logits, fake_logits = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
    if kind == "bce":
        return _bce_with_logits(1.0, real_logits) + _bce_with_logits(0.0, fake_logits)
    return tf.reduce_mean(tf.square(real_logits - 1.0)) + tf.reduce_mean(tf.square(fake_logits))


def generator_loss(fake_logits, kind="bce"):
    """G's adversarial loss: make D call its output real."""
    _check(kind)
    fake_logits = tf.cast(fake_logits, tf.float32)
    if kind == "bce":
        return _bce_with_logits(1.0, fake_logits)
    return tf.reduce_mean(tf.square(fake_logits - 1.0))


def discriminator_accuracy(real_logits, fake_logits, kind="bce"):
    """Share of real patches scored real and fake patches scored fake (threshold 0 for bce, 0.5 for lsgan)."""
    threshold = 0.0 if kind == "bce" else 0.5
    real_ok = tf.cast(tf.cast(real_logits, tf.float32) > threshold, tf.float32)
    fake_ok = tf.cast(tf.cast(fake_logits, tf.float32) <= threshold, tf.float32)
    return 0.5 * (tf.reduce_mean(real_ok) + tf.reduce_mean(fake_ok))
