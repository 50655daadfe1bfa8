"""Noise schedules in continuous time t in [0, 1], and the forward process (study eq. 9-11).

Every schedule answers the same three questions, so any network runs with any schedule and sampler:

- ``signal_and_noise_rates(t)`` -> ``(sqrt(alpha_bar(t)), sqrt(1 - alpha_bar(t)))``, float32 tensors
  shaped like ``t`` (pass ``t`` shaped ``[batch, 1, 1, 1]`` to broadcast over images);
- ``sampling_times(steps)`` -> the grid ``1 = t_N > ... > t_0 = 0`` a sampler walks (``steps + 1`` times);
- ``sample_training_times(shape, seed)`` -> random training times (DDPM Algorithm 1, line 3).

The continuous schedule is the study's cosine-by-angle one (``cosine_angle_schedule``). The discrete
ones (``linear_schedule``, ``cosine_schedule``, ``sigmoid_schedule``) have T steps (default 1000);
step k sits at time t = k / T, k = 0 is the clean image (alpha_bar = 1). Times between grid points
are rounded to the nearest step. What a network sees is the noise variance ``noise_rate**2`` =
``1 - alpha_bar``, the same quantity for every schedule.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from data.errors import I2IError

SCHEDULE_NAMES = ("cosine-angle", "linear", "cosine", "sigmoid")


class DiffusionConfigError(I2IError, ValueError):
    """A diffusion setting (schedule name, step count, width, image size) cannot be used."""


class CosineAngleSchedule:
    """The study's continuous schedule (eq. 9-10, Table 6; the keras.io DDIM example).

    angle(t) = acos(max_signal_rate) + t * (acos(min_signal_rate) - acos(max_signal_rate)),
    signal rate = cos(angle), noise rate = sin(angle). The study's eq. (9) and Table 6 swap the names
    angle_min / angle_max; the angle grows with t, so the signal rate is 0.95 at t = 0, 0.02 at t = 1.
    The schedule never reaches a clean image: at t = 0 the noise rate is still sin(acos(0.95)) = 0.31.
    Training times are uniform on [0, 1]; sampling grids are evenly spaced.
    """

    name = "cosine-angle"

    def __init__(self, max_signal_rate=0.95, min_signal_rate=0.02):
        if not 0.0 < min_signal_rate < max_signal_rate < 1.0 + 1e-12:
            raise DiffusionConfigError(
                f"cosine-angle schedule needs 0 < min_signal_rate < max_signal_rate <= 1, "
                f"got {min_signal_rate} and {max_signal_rate}")
        self.max_signal_rate = float(max_signal_rate)
        self.min_signal_rate = float(min_signal_rate)
        self.start_angle = math.acos(self.max_signal_rate)
        self.end_angle = math.acos(self.min_signal_rate)

    def signal_and_noise_rates(self, t):
        t = tf.convert_to_tensor(t, tf.float32)
        angles = self.start_angle + t * (self.end_angle - self.start_angle)  # eq. (9)
        return tf.cos(angles), tf.sin(angles)

    def sampling_times(self, steps):
        steps = _check_steps(steps)
        return tf.linspace(1.0, 0.0, steps + 1)

    def sample_training_times(self, shape, seed=None):
        return keras.random.uniform(shape, 0.0, 1.0, dtype="float32", seed=seed)

    def __repr__(self):
        return (f"CosineAngleSchedule(max_signal_rate={self.max_signal_rate}, "
                f"min_signal_rate={self.min_signal_rate})")


class DiscreteSchedule:
    """A schedule of T discrete steps given by its betas (DDPM, Ho et al. 2020: q(x_t | x_{t-1})).

    alpha_bar_k = prod_{i <= k} (1 - beta_i), computed in float64; step k is time k / T and
    alpha_bar_0 = 1. Training times are uniform over the steps {1, ..., T} (Algorithm 1); a sampling
    grid of ``steps`` steps is the sub-sequence round(linspace(T, 0, steps + 1)) of the steps.
    """

    def __init__(self, betas, name):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 1 or not np.all((betas > 0) & (betas < 1)):
            raise DiffusionConfigError(f"{name} schedule: betas must be a 1-D array in (0, 1)")
        self.name = name
        self.betas = betas
        self.timesteps = betas.size
        self.alphas_cumprod = np.cumprod(1.0 - betas)
        alpha_bar = np.concatenate([[1.0], self.alphas_cumprod])  # index k = step k
        self._signal_rates = tf.constant(np.sqrt(alpha_bar), tf.float32)
        self._noise_rates = tf.constant(np.sqrt(1.0 - alpha_bar), tf.float32)

    def steps_of(self, t):
        """The step index k = round(t * T) of time ``t`` (int32, clipped to [0, T])."""
        t = tf.convert_to_tensor(t, tf.float32)
        return tf.cast(tf.clip_by_value(tf.floor(t * self.timesteps + 0.5), 0, self.timesteps), tf.int32)

    def signal_and_noise_rates(self, t):
        steps = self.steps_of(t)
        return tf.gather(self._signal_rates, steps), tf.gather(self._noise_rates, steps)

    def sampling_times(self, steps):
        steps = _check_steps(steps)
        if steps > self.timesteps:
            raise DiffusionConfigError(
                f"{self.name} schedule has {self.timesteps} steps; cannot sample with {steps} steps")
        grid = np.floor(np.linspace(self.timesteps, 0, steps + 1) + 0.5)  # strictly decreasing integers
        return tf.constant(grid / self.timesteps, tf.float32)

    def sample_training_times(self, shape, seed=None):
        steps = keras.random.randint(shape, 1, self.timesteps + 1, dtype="int32", seed=seed)
        return tf.cast(steps, tf.float32) / self.timesteps

    def __repr__(self):
        return f"DiscreteSchedule(name={self.name!r}, timesteps={self.timesteps})"


def cosine_angle_schedule(max_signal_rate=0.95, min_signal_rate=0.02):
    """The study's continuous cosine-by-angle schedule (eq. 9-10, Table 6)."""
    return CosineAngleSchedule(max_signal_rate, min_signal_rate)


def linear_schedule(timesteps=1000, beta_start=1e-4, beta_end=0.02):
    """DDPM's linear betas, beta_1 = 1e-4 ... beta_T = 0.02, T = 1000 (Ho et al. 2020, seeds 002-003)."""
    return DiscreteSchedule(np.linspace(beta_start, beta_end, timesteps), "linear")


def cosine_schedule(timesteps=1000, s=0.008, max_beta=0.999):
    """Nichol & Dhariwal (2021) eq. (17): alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t + s) / (1 + s) * pi / 2).

    beta_k = 1 - alpha_bar(k / T) / alpha_bar((k - 1) / T), clipped at ``max_beta`` = 0.999 as in their
    paper (at T = 1000 only the last step reaches the clip). DDPM's largest beta, 0.02 (Ho et al. 2020), is
    not a cap here by default (a 0.02 cap flattens the last 98 steps of the cosine shape and leaves
    alpha_bar_T = 3.2e-3 instead of 2.4e-9); ``max_beta=0.02`` gives the capped schedule.
    """
    def f(t):
        return np.cos((t + s) / (1 + s) * np.pi / 2) ** 2

    t = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    alpha_bar = f(t) / f(0.0)
    betas = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)
    return DiscreteSchedule(betas, "cosine")


def sigmoid_schedule(timesteps=1000, beta_start=1e-4, beta_end=0.02, sigmoid_range=6.0):
    """Sigmoid betas: beta_k = beta_start + (beta_end - beta_start) * sigmoid(x_k), x = linspace(-6, 6, T).

    The formula of "The Annotated Diffusion Model" (Rogge & Rasul 2022, ``sigmoid_beta_schedule``; it
    comes from GeoDiff, Xu et al. 2022). Its betas stay within [beta_start, beta_end], so DDPM's largest
    beta, 0.02, is a cap by construction. The betas form an
    S-curve symmetric about the middle step: beta_k + beta_{T+1-k} = beta_start + beta_end.
    """
    x = np.linspace(-sigmoid_range, sigmoid_range, timesteps)
    return DiscreteSchedule(beta_start + (beta_end - beta_start) / (1.0 + np.exp(-x)), "sigmoid")


_FACTORIES = {
    "cosine-angle": cosine_angle_schedule,
    "linear": linear_schedule,
    "cosine": cosine_schedule,
    "sigmoid": sigmoid_schedule,
}


def get_schedule(name, **kwargs):
    """The schedule for a CLI name: ``cosine-angle`` (the study's), ``linear``, ``cosine``, ``sigmoid``."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in _FACTORIES:
        raise DiffusionConfigError(
            f"unknown noise schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
    return _FACTORIES[key](**kwargs)


def named_schedule(schedule, max_signal_rate=0.95, min_signal_rate=0.02):
    """The schedule ``schedule`` of a config, which names the cosine-angle schedule's signal rates (Table 6: 0.95 and
    0.02) whatever the schedule; the discrete schedules ignore them."""
    rates = ({"max_signal_rate": max_signal_rate, "min_signal_rate": min_signal_rate}
             if str(schedule).strip().lower().replace("_", "-") == "cosine-angle" else {})
    return get_schedule(schedule, **rates)


def add_noise(images, noises, signal_rates, noise_rates):
    """Forward noising, eq. (10): x_t = signal_rate * x_0 + noise_rate * eps."""
    return signal_rates * images + noise_rates * noises


def images_from_noise(noisy_images, noises, signal_rates, noise_rates):
    """The x_0 that ``noises`` imply, eq. (11): x_0 = (x_t - noise_rate * eps) / signal_rate."""
    return (noisy_images - noise_rates * noises) / signal_rates


def noise_from_images(noisy_images, images, signal_rates, noise_rates):
    """The eps that ``images`` imply (eq. 10 solved for eps): eps = (x_t - signal_rate * x_0) / noise_rate."""
    return (noisy_images - signal_rates * images) / noise_rates


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DiffusionConfigError(f"the number of sampling steps must be a positive integer, got {steps!r}")
    return int(steps)
