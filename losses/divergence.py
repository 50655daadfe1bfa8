"""KL divergence of a diagonal Gaussian to N(0, I) (study appendix 3-1)."""

import tensorflow as tf


def kl_to_standard_normal(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over latent dimensions, averaged over the batch.

    Closed form: -1/2 * sum(1 + log_var - mean^2 - exp(log_var)).
    """
    mean, log_var = tf.cast(mean, tf.float32), tf.cast(log_var, tf.float32)
    per_sample = -0.5 * tf.reduce_sum(1.0 + log_var - tf.square(mean) - tf.exp(log_var), axis=-1)
    return tf.reduce_mean(per_sample)
