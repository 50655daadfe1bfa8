"""Noise schedules (study eq. 9-10; DDPM linear; Nichol & Dhariwal cosine; sigmoid) and eq. (10)-(11)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from data.errors import I2IError
from models.diffusion import (
    SCHEDULE_NAMES,
    DiffusionConfigError,
    add_noise,
    cosine_angle_schedule,
    cosine_schedule,
    get_schedule,
    images_from_noise,
    linear_schedule,
    noise_from_images,
    sigmoid_schedule,
)

FLOAT32_EPS = 2.0 ** -24


def rates(schedule, t):
    signal, noise = schedule.signal_and_noise_rates(tf.constant(t, tf.float32))
    return signal.numpy().astype(np.float64), noise.numpy().astype(np.float64)


def test_study_schedule_signal_rate_is_095_at_0_and_002_at_1_and_rates_are_on_the_unit_circle():
    schedule = cosine_angle_schedule()
    t = np.linspace(0.0, 1.0, 101)
    signal, noise = rates(schedule, t)
    assert signal[0] == pytest.approx(0.95, abs=1e-6)
    assert signal[-1] == pytest.approx(0.02, abs=1e-6)
    np.testing.assert_allclose(signal ** 2 + noise ** 2, 1.0, atol=1e-6)
    # eq. (9): the angle moves linearly from acos(0.95) to acos(0.02)
    angles = math.acos(0.95) + t * (math.acos(0.02) - math.acos(0.95))
    np.testing.assert_allclose(signal, np.cos(angles), atol=1e-6)
    np.testing.assert_allclose(noise, np.sin(angles), atol=1e-6)


def test_linear_schedule_has_ddpm_beta_endpoints_and_constant_increments():
    schedule = linear_schedule()
    assert schedule.timesteps == 1000
    assert schedule.betas[0] == pytest.approx(1e-4, rel=1e-12)
    assert schedule.betas[-1] == pytest.approx(0.02, rel=1e-12)
    np.testing.assert_allclose(np.diff(schedule.betas), (0.02 - 1e-4) / 999, rtol=1e-9)
    np.testing.assert_allclose(schedule.alphas_cumprod, np.cumprod(1 - schedule.betas))


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_alpha_bar_is_strictly_decreasing_in_time(name):
    schedule = get_schedule(name)
    t = schedule.sampling_times(1000).numpy()[::-1]  # every discrete step, increasing in time
    signal, noise = rates(schedule, t)
    assert np.all(np.diff(signal) < 0), "signal rate (sqrt alpha_bar) must fall at every step"
    assert np.all(np.diff(noise) > 0), "noise rate must rise at every step"
    np.testing.assert_allclose(signal ** 2 + noise ** 2, 1.0, atol=1e-6)
    if name != "cosine-angle":
        assert np.all(np.diff(schedule.alphas_cumprod) < 0)
        assert (signal[0], noise[0]) == (1.0, 0.0), "step 0 is the clean image"
        assert signal[-1] ** 2 < 1e-4, "step T is (almost) pure noise"


def test_cosine_schedule_follows_nichol_dhariwal_alpha_bar():
    s = 0.008
    schedule = cosine_schedule()

    def f(t):
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    for t in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        signal, _ = rates(schedule, t)
        assert signal ** 2 == pytest.approx(f(t) / f(0.0), rel=2e-6, abs=1e-9), f"alpha_bar({t})"
    assert schedule.betas[-1] == pytest.approx(0.999), "the last beta is clipped at 0.999"
    assert np.all(schedule.betas[:-1] < 0.999)
    assert cosine_schedule(max_beta=0.02).betas.max() == pytest.approx(0.02), "a cap at DDPM's top beta is available"


def test_sigmoid_schedule_betas_are_a_symmetric_s_curve():
    schedule = sigmoid_schedule()
    betas = schedule.betas
    assert np.all(np.diff(betas) > 0)
    assert 1e-4 < betas.min() and betas.max() < 0.02, "the cap of 0.02 holds by construction"
    np.testing.assert_allclose(betas + betas[::-1], 1e-4 + 0.02, rtol=1e-12)  # symmetric about the middle step
    increments = np.diff(betas)
    half = len(increments) // 2
    assert np.all(np.diff(increments[:half]) > 0) and np.all(np.diff(increments[half:]) < 0), \
        "the slope grows up to the midpoint and shrinks after it"
    x = np.linspace(-6, 6, 1000)
    np.testing.assert_allclose(betas, 1e-4 + (0.02 - 1e-4) / (1 + np.exp(-x)), rtol=1e-12)


@pytest.mark.parametrize("steps", [1, 7, 50, 999, 1000])
def test_discrete_sampling_grid_is_a_decreasing_subsequence_of_the_steps(steps):
    schedule = linear_schedule()
    times = schedule.sampling_times(steps).numpy().astype(np.float64)
    assert times.shape == (steps + 1,)
    k = times * 1000
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    assert k[0] == pytest.approx(1000) and k[-1] == 0
    assert np.all(np.diff(np.round(k)) <= -1)
    if steps == 1000:
        np.testing.assert_array_equal(np.round(k), np.arange(1000, -1, -1))


def test_continuous_sampling_grid_is_evenly_spaced_and_bad_step_counts_are_rejected():
    times = cosine_angle_schedule().sampling_times(4).numpy()
    np.testing.assert_allclose(times, [1.0, 0.75, 0.5, 0.25, 0.0], atol=1e-7)
    with pytest.raises(DiffusionConfigError, match="1000 steps"):
        linear_schedule().sampling_times(1001)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(DiffusionConfigError, match="positive integer"):
            cosine_angle_schedule().sampling_times(bad)


def test_training_times_are_uniform_continuous_or_uniform_over_the_discrete_steps():
    continuous = cosine_angle_schedule().sample_training_times((20000, 1, 1, 1), seed=1).numpy()
    assert continuous.shape == (20000, 1, 1, 1)
    assert continuous.min() >= 0 and continuous.max() < 1
    assert continuous.mean() == pytest.approx(0.5, abs=0.01)

    schedule = linear_schedule(timesteps=10)
    steps = schedule.sample_training_times((5000,), seed=2).numpy() * 10
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-5)
    counts = np.bincount(np.round(steps).astype(int), minlength=11)
    assert counts[0] == 0, "t = 0 (the clean image) is never a training time"
    assert np.all(np.abs(counts[1:] - 500) < 100), f"steps 1..T drawn uniformly, got {counts[1:]}"
    again = schedule.sample_training_times((5000,), seed=2).numpy() * 10
    np.testing.assert_array_equal(steps, again)


def test_get_schedule_knows_the_cli_names_and_rejects_others():
    assert get_schedule("cosine-angle").signal_and_noise_rates(0.0)[0].numpy() == pytest.approx(0.95)
    assert get_schedule("linear").betas[-1] == pytest.approx(0.02)
    assert get_schedule("cosine").name == "cosine" and get_schedule("sigmoid").name == "sigmoid"
    assert get_schedule("linear", timesteps=200).timesteps == 200
    with pytest.raises(I2IError, match="'quadratic'; choose one of cosine-angle, linear, cosine, sigmoid"):
        get_schedule("quadratic")


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_noising_then_eq11_recovers_the_images_given_the_true_noise(name):
    """eq. (10) then eq. (11) is the identity, to float32 rounding amplified by 1 / signal_rate."""
    schedule = get_schedule(name)
    images = tf.random.stateless_uniform([64, 8, 8, 3], seed=[0, 1], minval=-1, maxval=1)
    noises = tf.random.stateless_normal([64, 8, 8, 3], seed=[0, 2])
    t = tf.concat([schedule.sample_training_times((60, 1, 1, 1), seed=3), tf.constant([0.0, 1e-3, 0.5, 1.0],
                                                                                    shape=(4, 1, 1, 1))], 0)
    signal, noise = schedule.signal_and_noise_rates(t)
    noisy = add_noise(images, noises, signal, noise)
    np.testing.assert_allclose(noisy, signal * images + noise * noises, rtol=0, atol=0)

    bound = 8 * FLOAT32_EPS * (np.abs(noisy) + np.abs(noise * noises)) / signal
    recovered = images_from_noise(noisy, noises, signal, noise)
    assert np.all(np.abs(recovered - images) <= bound + 1e-7)
    away_from_zero = noise.numpy()[:, 0, 0, 0] > 0  # eps is undefined at the clean step of discrete schedules
    noise_bound = 8 * FLOAT32_EPS * (np.abs(noisy) + np.abs(signal * images)) / noise
    noise_error = np.abs(noise_from_images(noisy, images, signal, noise) - noises)
    assert np.all((noise_error <= noise_bound + 1e-7)[away_from_zero])
