"""DDIM and DDPM samplers with exact noise predictors (no network): they must land where theory says.

Two data sets have a closed-form optimal noise prediction eps*(x_t) = E[eps | x_t], with
x_t = a x_0 + b eps, a^2 = 1 - v, b^2 = v (v: the noise variance the sampler passes):
- a single point x*: eps* = (x_t - a x*) / b;
- 1-D Gaussian data N(m, s^2): (x_t, eps) are jointly Gaussian, Cov(eps, x_t) = b, Var(x_t) = a^2 s^2 + b^2,
  so eps* = b (x_t - a m) / (a^2 s^2 + b^2).
"""

import numpy as np
import pytest
import tensorflow as tf

from models.diffusion import (
    SCHEDULE_NAMES,
    DiffusionConfigError,
    add_noise,
    cosine_angle_schedule,
    ddim_sample,
    ddim_step,
    ddpm_sample,
    ddpm_step,
    get_schedule,
    linear_schedule,
    transition_beta,
)

MEAN, STD = 0.3, 0.25


def single_point_oracle(target):
    def predict_noise(noisy_images, noise_variances):
        return (noisy_images - tf.sqrt(1.0 - noise_variances) * target) / tf.sqrt(noise_variances)
    return predict_noise


def gaussian_oracle(mean=MEAN, std=STD):
    def predict_noise(noisy_images, noise_variances):
        signal_squared = 1.0 - noise_variances
        return tf.sqrt(noise_variances) * (noisy_images - tf.sqrt(signal_squared) * mean) / (
            signal_squared * std ** 2 + noise_variances)
    return predict_noise


def denoised_target_std(schedule, times, std=STD):
    """Std of what a sampler returns if it is exact: its output is the last step's x_0 estimate
    E[x_0 | x_{t_1}], whose std is s * sqrt(a^2 s^2 / (a^2 s^2 + b^2)) at the last prediction time t_1.
    For discrete schedules sampled on all T = 1000 steps (b^2 = 1e-4) that is 0.9992 s; the study's
    schedule never gets below noise rate 0.31, so its output is a posterior mean with a smaller std."""
    a, b = (float(r) for r in schedule.signal_and_noise_rates(times[-2]))
    return std * np.sqrt(a * a * std * std / (a * a * std * std + b * b))


def assert_moments(samples, schedule, times, label):
    """Mean within 0.01 of m (= 5.5 standard errors at 20 000 samples) and std within 3% of the target.
    The 3% covers the samplers' own discretisation bias on these grids (at most 1.4%, for sigma^2 =
    beta~ on 1000 steps, computed exactly by propagating the Gaussian through the linear steps) plus
    6 standard errors of the sample std (0.5% each)."""
    samples = np.asarray(samples, np.float64).ravel()
    target = denoised_target_std(schedule, times)
    assert abs(samples.mean() - MEAN) < 0.01, f"{label}: mean {samples.mean():.4f} != {MEAN}"
    assert abs(samples.std() / target - 1) < 0.03, f"{label}: std {samples.std():.4f}, target {target:.4f}"


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_beta_derived_between_grid_times_equals_the_schedule_beta_on_the_full_grid(name):
    schedule = get_schedule(name)
    k = np.arange(1, 1001)
    beta = transition_beta(*schedule.signal_and_noise_rates(k / 1000),
                           *schedule.signal_and_noise_rates((k - 1) / 1000))
    np.testing.assert_allclose(beta.numpy(), schedule.betas, rtol=1e-4)


@pytest.mark.parametrize("name,t,s", [("linear", 600, 400), ("linear", 1, 0), ("cosine", 1000, 999),
                                      ("cosine", 990, 950), ("sigmoid", 1000, 500), ("cosine-angle", 0.7, 0.3)])
def test_ddpm_step_samples_the_forward_process_posterior(name, t, s):
    """With the true noise, one step is q(x_s | x_t, x_0): mean sqrt(ab_s) beta / (1 - ab_t) x_0 +
    sqrt(alpha) (1 - ab_s) / (1 - ab_t) x_t, variance beta~ (DDPM eq. 6-7, from s to t in one jump)."""
    schedule = get_schedule(name)
    if name != "cosine-angle":
        t, s = t / schedule.timesteps, s / schedule.timesteps
    rates_t, rates_s = schedule.signal_and_noise_rates(t), schedule.signal_and_noise_rates(s)
    ab_t, ab_s = (float(r[0]) ** 2 for r in (rates_t, rates_s))
    beta = 1 - ab_t / ab_s
    images = tf.random.stateless_uniform([2, 4, 4, 3], seed=[1, 1], minval=-1, maxval=1)
    noises = tf.random.stateless_normal([2, 4, 4, 3], seed=[1, 2])
    z = tf.random.stateless_normal([2, 4, 4, 3], seed=[1, 3])
    noisy = add_noise(images, noises, *rates_t)
    mean = (np.sqrt(ab_s) * beta / (1 - ab_t) * images.numpy().astype(np.float64)
            + np.sqrt(1 - beta) * (1 - ab_s) / (1 - ab_t) * noisy.numpy().astype(np.float64))
    posterior_variance = (1 - ab_s) / (1 - ab_t) * beta

    step = ddpm_step(noisy, images, noises, rates_t, rates_s, "posterior", z)
    np.testing.assert_allclose(step, mean + np.sqrt(posterior_variance) * z.numpy(), atol=5e-5)
    step = ddpm_step(noisy, images, noises, rates_t, rates_s, "beta", z)
    np.testing.assert_allclose(step, mean + np.sqrt(beta) * z.numpy(), atol=5e-5)
    step = ddim_step(noisy, images, noises, rates_t, rates_s, 1.0, z)
    np.testing.assert_allclose(step, mean + np.sqrt(posterior_variance) * z.numpy(), atol=5e-5)


@pytest.mark.parametrize("steps", [3, 20, 100])
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_deterministic_ddim_with_a_single_point_oracle_returns_that_point(name, steps):
    """From any start noise, DDIM (eta = 0) returns x*; on the way every x_t = a_t x* + b_t eps for one
    fixed eps (eq. 12 with sigma = 0 keeps the implied noise). The first step is left out of the
    straight-line check: at the cosine schedule's t = 1 the noise variance rounds to 1.0 in float32,
    so the oracle cannot recover the signal rate 4.9e-5 there."""
    schedule = get_schedule(name)
    target = tf.random.stateless_uniform([1, 6, 6, 3], seed=[2, 1], minval=-1, maxval=1)
    start = tf.random.stateless_normal([4, 6, 6, 3], seed=[2, 2])
    images, trajectory = ddim_sample(single_point_oracle(target), start, schedule, steps=steps,
                                     return_trajectory=True)
    np.testing.assert_allclose(images, np.broadcast_to(target, images.shape), atol=2e-5)

    assert trajectory.noisy_images.shape == (steps + 1, 4, 6, 6, 3)
    assert trajectory.predicted_images.shape == (steps, 4, 6, 6, 3)
    np.testing.assert_array_equal(trajectory.times, schedule.sampling_times(steps))
    np.testing.assert_array_equal(trajectory.noisy_images[0], start)
    signal, noise = schedule.signal_and_noise_rates(trajectory.times[1:-1, None, None, None, None])
    implied_noises = (trajectory.noisy_images[1:-1] - signal * target) / noise
    np.testing.assert_allclose(implied_noises, np.broadcast_to(implied_noises[:1], implied_noises.shape),
                               atol=2e-4)
    if name != "cosine-angle":  # the discrete grid ends on the clean step: x_{t_0} is x* itself
        np.testing.assert_allclose(trajectory.noisy_images[-1], np.broadcast_to(target, images.shape),
                                   atol=2e-5)


def test_samplers_accept_any_decreasing_time_grid_and_reject_others():
    schedule = linear_schedule()
    target = tf.fill([1, 2, 2, 3], 0.4)
    start = tf.random.stateless_normal([3, 2, 2, 3], seed=[3, 1])
    images, trajectory = ddim_sample(single_point_oracle(target), start, schedule,
                                     times=[0.9, 0.61, 0.35, 0.1, 0.0], return_trajectory=True)
    np.testing.assert_allclose(images, np.full([3, 2, 2, 3], 0.4), atol=1e-5)
    np.testing.assert_allclose(trajectory.times, [0.9, 0.61, 0.35, 0.1, 0.0])
    for bad in ([0.5, 0.7, 0.0], [1.2, 0.5], [0.5]):
        with pytest.raises(DiffusionConfigError, match="strictly decreasing"):
            ddim_sample(single_point_oracle(target), start, schedule, times=bad)
    with pytest.raises(DiffusionConfigError, match="exactly one of"):
        ddpm_sample(single_point_oracle(target), start, schedule, steps=3, times=[1.0, 0.0])
    with pytest.raises(DiffusionConfigError, match="eta"):
        ddim_sample(single_point_oracle(target), start, schedule, steps=3, eta=-0.1)
    with pytest.raises(DiffusionConfigError, match="variance"):
        ddpm_sample(single_point_oracle(target), start, schedule, steps=3, variance="learned")


START_NOISE = tf.random.stateless_normal([20000, 1, 1, 1], seed=[4, 1])


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_ddpm_ancestral_sampling_with_the_exact_gaussian_noise_reaches_its_mean_and_std(name):
    """Algorithm 2 on all 1000 steps (the study's schedule: 1000 even steps), sigma^2 = beta."""
    schedule = get_schedule(name)
    times = schedule.sampling_times(1000)
    sample = tf.function(lambda: ddpm_sample(gaussian_oracle(), START_NOISE, schedule, steps=1000, seed=5))
    assert_moments(sample(), schedule, times, f"DDPM on {name}")


def test_ddpm_with_posterior_variance_reaches_the_same_moments():
    schedule = linear_schedule()
    sample = tf.function(lambda: ddpm_sample(gaussian_oracle(), START_NOISE, schedule, steps=1000, seed=6,
                                             variance="posterior"))
    assert_moments(sample(), schedule, schedule.sampling_times(1000), "DDPM, sigma^2 = beta~")


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("name,steps", [("linear", 1000), ("cosine-angle", 100)])
def test_ddim_with_the_exact_gaussian_noise_reaches_its_mean_and_std(name, steps, eta):
    schedule = get_schedule(name)
    sample = tf.function(lambda: ddim_sample(gaussian_oracle(), START_NOISE, schedule, steps=steps, eta=eta,
                                             seed=7))
    assert_moments(sample(), schedule, schedule.sampling_times(steps), f"DDIM eta={eta} on {name}")


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ddpm_adds_no_noise_on_its_last_step(variance):
    """Algorithm 2, line 3: z = 0 at t = 1, so on a discrete grid the final x_0 is the last x_0 estimate."""
    schedule = linear_schedule()
    images, trajectory = ddpm_sample(gaussian_oracle(), START_NOISE[:500], schedule, steps=10,
                                     variance=variance, seed=11, return_trajectory=True)
    np.testing.assert_allclose(trajectory.noisy_images[-1], images, atol=1e-5)
    np.testing.assert_array_equal(trajectory.predicted_images[-1], images)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_ddim_with_eta_1_takes_the_same_steps_as_ddpm_with_posterior_variance(name):
    schedule = get_schedule(name)
    start = START_NOISE[:500]
    ddim = ddim_sample(gaussian_oracle(), start, schedule, steps=25, eta=1.0, seed=8)
    ddpm = ddpm_sample(gaussian_oracle(), start, schedule, steps=25, variance="posterior", seed=8)
    np.testing.assert_allclose(ddim, ddpm, atol=1e-5)


def test_samplers_run_inside_tf_function_and_seeds_make_them_reproducible():
    schedule = cosine_angle_schedule()
    start = START_NOISE[:200]
    eager = ddpm_sample(gaussian_oracle(), start, schedule, steps=10, seed=9)
    graph = tf.function(lambda x: ddpm_sample(gaussian_oracle(), x, schedule, steps=10, seed=9))(start)
    np.testing.assert_allclose(eager, graph, atol=1e-6)
    other_seed = ddpm_sample(gaussian_oracle(), start, schedule, steps=10, seed=10)
    assert np.abs(other_seed - eager).max() > 0.05
    deterministic = tf.function(lambda x: ddim_sample(gaussian_oracle(), x, schedule, steps=10))(start)
    eager_deterministic = ddim_sample(gaussian_oracle(), start, schedule, steps=10)
    np.testing.assert_allclose(deterministic, eager_deterministic, atol=1e-6)


def test_clipping_the_x0_estimates_keeps_them_in_range_and_is_off_by_default():
    schedule = linear_schedule()
    target = tf.fill([1, 2, 2, 3], 1.5)  # a point outside [-1, 1]
    start = tf.random.stateless_normal([2, 2, 2, 3], seed=[5, 1])
    unclipped = ddim_sample(single_point_oracle(target), start, schedule, steps=10)
    np.testing.assert_allclose(unclipped, 1.5, atol=1e-5)
    for sampler in (ddim_sample, ddpm_sample):
        clipped, trajectory = sampler(single_point_oracle(target), start, schedule, steps=10, clip_images=True,
                                      return_trajectory=True)
        np.testing.assert_allclose(clipped, 1.0, atol=1e-6)
        assert np.all(np.abs(trajectory.predicted_images) <= 1.0)
