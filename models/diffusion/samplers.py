"""Reverse-diffusion samplers, independent of the network and of the schedule.

A sampler walks a time grid t_N = 1 > ... > t_0 (``schedule.sampling_times(steps)``, or any decreasing
``times``), calling ``predict_noise(noisy_images, noise_variances)`` once per step; ``noise_variances``
is ``noise_rate(t)**2`` shaped ``[batch, 1, 1, 1]`` (one per image). The caller's ``predict_noise``
wraps conditioning, classifier-free guidance and EMA weights. Each sampler returns the last step's
x_0 estimate (eq. 11), as the keras.io DDIM example does; for discrete schedules, whose grid ends at
the clean step t_0 = 0, that is also the last x_{t_0}.

- ``ddim_sample``: DDIM (Song et al. 2021, eq. 12), deterministic for eta = 0; eta = 1 gives DDPM's
  posterior variance.
- ``ddpm_sample``: DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) on any grid, with the per-step
  beta derived from the alpha_bar ratio of two grid times; sigma^2 = beta or the posterior beta~.

Both use TF ops only and a ``tf.range`` loop, so they run eagerly or inside ``tf.function`` (where
the loop becomes one ``tf.while_loop``). Stochastic draws come from ``seed`` (stateless, per step),
so DDIM with eta = 1 and DDPM with ``variance="posterior"`` take identical steps for the same seed.
"""

import collections
import dataclasses

import numpy as np
import tensorflow as tf

from models.diffusion.schedules import DiffusionConfigError, images_from_noise, noise_from_images

Trajectory = collections.namedtuple("Trajectory", ["times", "noisy_images", "predicted_images"])
Trajectory.__doc__ = """Intermediate states: ``times`` [N + 1]; ``noisy_images`` [N + 1, ...] (x at each grid
time, starting with the initial noise); ``predicted_images`` [N, ...] (the x_0 estimate of each step)."""

DDPM_VARIANCES = ("beta", "posterior")

SAMPLERS = ("ddim", "ddpm")


def check_sampling(sampler, steps, eta, guidance):
    """Raise ``DiffusionConfigError`` for a sampler name, step count, eta or guidance weight that cannot sample."""
    if sampler not in SAMPLERS:
        raise DiffusionConfigError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise DiffusionConfigError(f"the number of sampling steps must be a positive integer, got {steps!r}")
    if eta < 0:
        raise DiffusionConfigError(f"DDIM eta must be >= 0, got {eta}")
    if guidance < 0:
        raise DiffusionConfigError(f"guidance weight must be >= 0, got {guidance}")


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """How a diffusion model samples, apart from its network and schedule: ``sampler`` ``ddim`` (``ddim_sample``,
    with ``eta``) or ``ddpm`` (``ddpm_sample``), ``sampling_steps``, classifier-free ``guidance`` weight w (Ho &
    Salimans 2022: eps = (1 + w) eps(x, label) - w eps(x, null)), ``clip_denoised`` (every x_0 estimate clipped to
    [-1, 1]) and ``sample_seed``, the seed of the initial noise and of the stochastic steps."""

    sampler: str = "ddim"
    sampling_steps: int = 20
    eta: float = 0.0
    guidance: float = 0.0
    clip_denoised: bool = False
    sample_seed: int = 0

    def __post_init__(self):
        for name, kind in (("sampling_steps", int), ("eta", float), ("guidance", float), ("clip_denoised", bool),
                           ("sample_seed", int)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        check_sampling(self.sampler, self.sampling_steps, self.eta, self.guidance)


def transition_beta(signal_t, noise_t, signal_s, noise_s):
    """beta_{t|s} = 1 - alpha_bar_t / alpha_bar_s: the beta of one step from time s to a later time t.

    Equal to the schedule's beta_t when s is the step before t. Two algebraically equal forms are
    used, each where float32 keeps it accurate: (n_t^2 - n_s^2) / s_s^2 while the noise is small,
    1 - (s_t / s_s)^2 once the signal is small (relative error < 1e-4 on the T = 1000 grids).
    """
    low_noise_form = (noise_t - noise_s) * (noise_t + noise_s) / tf.square(signal_s)
    low_signal_form = 1.0 - tf.square(signal_t / signal_s)
    return tf.where(tf.square(noise_t) < 0.5, low_noise_form, low_signal_form)


def ddim_step(noisy_images, predicted_images, predicted_noises, rates_t, rates_s, eta, random_noises):
    """One DDIM step from time t to an earlier time s (DDIM paper eq. 12 and 16).

    x_s = sqrt(alpha_bar_s) x0 + sqrt(1 - alpha_bar_s - sigma^2) eps + sigma z, with
    sigma = eta * sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_s).
    ``rates_t`` and ``rates_s`` are (signal_rate, noise_rate) pairs. ``noisy_images`` is unused (kept
    for the same signature as ``ddpm_step``): DDIM moves along the predicted x_0 and eps.
    """
    del noisy_images
    (signal_t, noise_t), (signal_s, noise_s) = rates_t, rates_s
    sigma = eta * noise_s / noise_t * tf.sqrt(transition_beta(signal_t, noise_t, signal_s, noise_s))
    direction_rate = tf.sqrt(tf.maximum(tf.square(noise_s) - tf.square(sigma), 0.0))
    return signal_s * predicted_images + direction_rate * predicted_noises + sigma * random_noises


def ddpm_step(noisy_images, predicted_images, predicted_noises, rates_t, rates_s, variance, random_noises):
    """One ancestral step from time t to an earlier time s (Ho et al. 2020, Algorithm 2, line 4).

    x_s = (x_t - beta / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha) + sigma z, with alpha = 1 - beta =
    alpha_bar_t / alpha_bar_s, and sigma^2 = beta (``variance="beta"``) or the posterior variance
    beta~ = (1 - alpha_bar_s) / (1 - alpha_bar_t) * beta (``"posterior"``). ``predicted_images`` is
    unused: the mean is written in eps as in Algorithm 2. Like Algorithm 2 it divides by sqrt(alpha),
    which is tiny only for a long jump out of the cosine schedule's last step (alpha_bar_T = 2.4e-9):
    there float32 rounding reaches ~1e-3 (1000 -> 950), far below any network's noise error.
    """
    del predicted_images
    (signal_t, noise_t), (signal_s, noise_s) = rates_t, rates_s
    beta = transition_beta(signal_t, noise_t, signal_s, noise_s)
    mean = (noisy_images - beta / noise_t * predicted_noises) / tf.sqrt(1.0 - beta)
    sigma_squared = beta if variance == "beta" else tf.square(noise_s / noise_t) * beta
    return mean + tf.sqrt(sigma_squared) * random_noises


def ddim_sample(predict_noise, initial_noise, schedule, steps=None, times=None, eta=0.0, seed=0,
                clip_images=False, return_trajectory=False):
    """Generate images by DDIM from ``initial_noise`` (x at t = 1) in ``steps`` steps or along ``times``.

    Returns the x_0 estimate of the last step, and with ``return_trajectory`` also a ``Trajectory``.
    ``clip_images`` clips every x_0 estimate to [-1, 1] (and re-derives eps from it).
    """
    eta = float(eta)
    if eta < 0:
        raise DiffusionConfigError(f"DDIM eta must be >= 0, got {eta}")

    def update(noisy_images, predicted_images, predicted_noises, rates_t, rates_s, random_noises):
        return ddim_step(noisy_images, predicted_images, predicted_noises, rates_t, rates_s, eta, random_noises)

    return _reverse_diffusion(update, eta > 0, predict_noise, initial_noise, schedule, steps, times, seed,
                              clip_images, return_trajectory)


def ddpm_sample(predict_noise, initial_noise, schedule, steps=None, times=None, variance="beta", seed=0,
                clip_images=False, return_trajectory=False):
    """Generate images by DDPM ancestral sampling (Algorithm 2) on ``steps`` steps or along ``times``.

    With a discrete schedule and ``steps = T`` this is Algorithm 2 exactly; fewer steps use a
    sub-sequence of the steps with the betas derived between its times. ``variance``: ``"beta"``
    (sigma^2 = beta_t) or ``"posterior"`` (sigma^2 = beta~_t). No noise is added on the last step
    (Algorithm 2, line 3). Returns as ``ddim_sample``.
    """
    if variance not in DDPM_VARIANCES:
        raise DiffusionConfigError(
            f"DDPM variance must be one of {', '.join(DDPM_VARIANCES)}, got {variance!r}")

    def update(noisy_images, predicted_images, predicted_noises, rates_t, rates_s, random_noises):
        return ddpm_step(noisy_images, predicted_images, predicted_noises, rates_t, rates_s, variance,
                         random_noises)

    return _reverse_diffusion(update, True, predict_noise, initial_noise, schedule, steps, times, seed,
                              clip_images, return_trajectory)


def sampling_grid(schedule, steps=None, times=None):
    """The decreasing time grid of a sampler: ``schedule.sampling_times(steps)`` or the given ``times``."""
    if (steps is None) == (times is None):
        raise DiffusionConfigError("give the sampler exactly one of: a number of steps, a time grid")
    if steps is not None:
        return schedule.sampling_times(steps)
    if not tf.is_tensor(times):
        values = np.asarray(times, dtype=np.float64)
        if values.ndim != 1 or values.size < 2 or np.any(np.diff(values) >= 0) \
                or values.min() < 0 or values.max() > 1:
            raise DiffusionConfigError(
                f"a sampling time grid must be a strictly decreasing sequence of at least 2 times in [0, 1], "
                f"got {values.tolist()}")
    return tf.reshape(tf.cast(times, tf.float32), [-1])


def _reverse_diffusion(update, stochastic, predict_noise, initial_noise, schedule, steps, times, seed,
                       clip_images, return_trajectory):
    """The loop both samplers share: predict eps, estimate x_0 (eq. 11), take one step."""
    times = sampling_grid(schedule, steps, times)
    num_steps = tf.shape(times)[0] - 1
    noisy_images = tf.convert_to_tensor(initial_noise, tf.float32)
    image_shape = tf.shape(noisy_images)
    variance_shape = tf.concat([image_shape[:1], tf.ones([tf.rank(noisy_images) - 1], tf.int32)], axis=0)
    seed = tf.cast(seed, tf.int32)

    predicted_images = tf.zeros_like(noisy_images)
    noisy_trajectory = tf.TensorArray(tf.float32, size=num_steps + 1)  # written only if requested
    predicted_trajectory = tf.TensorArray(tf.float32, size=num_steps)
    if return_trajectory:
        noisy_trajectory = noisy_trajectory.write(0, noisy_images)
    for step in tf.range(num_steps):
        rates_t = schedule.signal_and_noise_rates(times[step])
        rates_s = schedule.signal_and_noise_rates(times[step + 1])
        signal_t, noise_t = rates_t
        predicted_noises = predict_noise(noisy_images, tf.fill(variance_shape, tf.square(noise_t)))
        predicted_images = images_from_noise(noisy_images, predicted_noises, signal_t, noise_t)
        if clip_images:
            predicted_images = tf.clip_by_value(predicted_images, -1.0, 1.0)
            predicted_noises = noise_from_images(noisy_images, predicted_images, signal_t, noise_t)
        if stochastic:  # fresh z per step; none on the last step (Algorithm 2, line 3)
            random_noises = tf.random.stateless_normal(image_shape, seed=tf.stack([seed, step]))
            random_noises *= tf.cast(step < num_steps - 1, tf.float32)
        else:
            random_noises = tf.zeros_like(noisy_images)
        noisy_images = update(noisy_images, predicted_images, predicted_noises, rates_t, rates_s, random_noises)
        if return_trajectory:
            noisy_trajectory = noisy_trajectory.write(step + 1, noisy_images)
            predicted_trajectory = predicted_trajectory.write(step, predicted_images)
    if return_trajectory:
        return predicted_images, Trajectory(times, noisy_trajectory.stack(), predicted_trajectory.stack())
    return predicted_images
