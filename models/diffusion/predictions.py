"""What the network predicts, and how its loss is weighted over time (beside the schedule, as diffusers keeps them
in its scheduler): conversions between noise, velocity and image predictions (study eq. 9-11), and per-time loss
weights.

With signal rate s, noise rate n (s^2 + n^2 = 1) and x_t = s x_0 + n eps (eq. 9), a network predicts one of
- ``noise``: eps (the study, eq. 8);
- ``velocity``: v = s eps - n x_0 (Salimans & Ho 2022);
- ``image``: x_0.
Samplers always receive eps (:func:`noise_from_prediction`).
"""

import tensorflow as tf

PREDICTIONS = ("noise", "velocity", "image")
LOSS_WEIGHTINGS = ("none", "min-snr", "clipped-snr")


def prediction_target(prediction, noises, images, signal_rates, noise_rates):
    """What the network should output for clean ``images`` noised with ``noises``."""
    if prediction == "noise":
        return noises
    if prediction == "velocity":
        return signal_rates * noises - noise_rates * images
    return images


def noise_from_prediction(prediction, outputs, noisy_images, noise_rates):
    """The noise the network's output implies: itself; from a velocity v: eps = n x_t + s v; from an image x_0:
    eps = (x_t - s x_0) / n (eq. 10). The signal rate is ``sqrt(1 - n^2)``."""
    if prediction == "noise":
        return outputs
    signal_rates = tf.sqrt(tf.maximum(1.0 - tf.square(noise_rates), 0.0))
    if prediction == "image":
        return (noisy_images - signal_rates * outputs) / noise_rates
    return noise_rates * noisy_images + signal_rates * outputs


def snr_loss_weight(weighting, prediction, signal_rates, noise_rates, gamma=5.0):
    """Per-image weight of the trained error, given as a weight w on the x_0 error and converted to the error the
    network predicts (w / SNR on the eps error, w / (SNR + 1) on the v error; SNR = s^2 / n^2).

    ``min-snr`` (Hang et al. 2023): w = min(SNR, gamma); it stops the nearly clean times (SNR up to 500 at signal
    rate 0.999) from dominating, and also down-weights the high-noise times, where the layout is decided.
    ``clipped-snr``: w = clip(SNR, 1, gamma), the x_0 error's weight 1 at high noise (SNR < 1) kept and the
    low-noise times, where texture is decided, weighted up to gamma (the eps loss weights them by SNR).
    ``none``: 1 (the unweighted error of what the network predicts).
    """
    if weighting == "none":
        return tf.ones_like(signal_rates)
    snr = tf.square(signal_rates) / tf.square(noise_rates)
    weight = tf.minimum(snr, gamma)
    if weighting == "clipped-snr":
        weight = tf.maximum(weight, 1.0)
    return {"noise": weight / snr, "velocity": weight / (snr + 1.0), "image": weight}[prediction]
