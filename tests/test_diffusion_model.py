"""The diffusion keras.Model and its train script: EMA, condition dropout, guidance, sampling, presets, resume.

Tiny networks (32 px, widths 4-16) keep every test cheap; the learning test is tests/test_ddim_learns.py.
"""

import csv
import json
import math
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from data.errors import I2IError
from models.diffusion import CosineAngleSchedule, NetworkSettings, SamplerSettings, named_schedule, study_unet
from models.diffusion.model import DiffusionModel
from models.diffusion.predictions import noise_from_prediction
from run_helpers import needs_alexnet_weights, run, saved_epoch, start_and_stop, steps_logged, weights
from train_scripts.evaluate import evaluate_run
from train_scripts.training.models import ddim
from train_scripts.training.run_folder import RunFolder
from train_scripts.training.runner import main

SIZE = 32
TINY_NET = dict(image_size=SIZE, widths=(4, 8))


def tiny_model(network=(), schedule=(), sampling=(), **kwargs):
    """A DiffusionModel of a tiny conditional study U-Net at 32 px, the cosine-angle schedule and 3 DDIM steps;
    ``network``, ``schedule`` and ``sampling`` change settings of these parts, ``kwargs`` the model's own."""
    keras.utils.set_random_seed(0)
    model = DiffusionModel(network=NetworkSettings(**{**TINY_NET, **dict(network)}),
                           schedule=CosineAngleSchedule(**dict(schedule)),
                           sampling=SamplerSettings(**{"sampling_steps": 3, **dict(sampling)}), **kwargs)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    return model


def randomize(network, seed=0, scale=0.05):
    """Random weights everywhere (the output conv starts at zero, which would predict no noise at all)."""
    rng = np.random.default_rng(seed)
    for w in network.weights:
        w.assign(rng.uniform(0.5, 2.0, w.shape) if "moving_variance" in w.path else rng.normal(0, scale, w.shape))


def label_batch(n=2, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)), tf.float32)


# ------------------------------------------------------------------------------------------------ EMA

def set_all(network, value):
    for w in network.weights:
        w.assign(np.full(w.shape, value, np.float32))


@pytest.mark.parametrize("warmup, decays", [
    (False, [0.9, 0.9, 0.9]),
    (True, [2 / 11, 3 / 12, 4 / 13]),  # min(0.9, (1 + k) / (10 + k)) at updates k = 1, 2, 3
])
def test_ema_after_k_updates_has_the_exact_average(warmup, decays):
    model = tiny_model(ema=0.9, ema_warmup=warmup)
    set_all(model.ema_network, 0.0)
    for k, value in enumerate([1.0, 2.0, 4.0], start=1):  # the network's weights at updates 1, 2, 3
        set_all(model.network, value)
        model.network_optimizer.iterations.assign(k)  # what minimize() has counted before update_ema()
        model.update_ema()
    d1, d2, d3 = decays
    expected = ((0.0 * d1 + (1 - d1) * 1.0) * d2 + (1 - d2) * 2.0) * d3 + (1 - d3) * 4.0
    if not warmup:
        assert expected == pytest.approx(0.9 * 0.9 * 0.1 + 0.9 * 0.1 * 2 + 0.1 * 4)  # 0.081 + 0.18 + 0.4
    for w in model.ema_network.weights:
        np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-6, err_msg=w.path)


def test_train_step_moves_every_ema_weight_including_batch_norm_statistics():
    model = tiny_model(ema=0.75)
    before = [np.asarray(w) for w in model.network.weights]
    np.testing.assert_array_equal(before[0], np.asarray(model.ema_network.weights[0]))  # starts as a copy
    model.train_step((label_batch(4), label_batch(4, seed=1)))
    changed = 0
    for w, ema_w, old in zip(model.network.weights, model.ema_network.weights, before):
        np.testing.assert_allclose(np.asarray(ema_w), 0.75 * old + 0.25 * np.asarray(w), rtol=1e-5, atol=1e-7,
                                   err_msg=w.path)
        changed += not np.array_equal(old, np.asarray(w))
    assert changed > len(before) // 2
    assert any("moving_mean" in w.path for w in model.ema_network.weights)


def test_ema_weights_are_saved_with_the_model(tmp_path):
    model = tiny_model()
    randomize(model.ema_network, seed=3)
    model.save_weights(tmp_path / "m.weights.h5")
    again = tiny_model()
    again.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(model.ema_network.weights, again.ema_network.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------------- condition dropout

def test_condition_dropout_replaces_the_configured_fraction_of_label_maps_by_the_null_label():
    model = tiny_model(condition_dropout=0.3)
    seen = []

    def recording_network(inputs, training):
        seen.append(inputs[2])
        return tf.zeros_like(inputs[0])

    labels = tf.ones((4000, 2, 2, 3))
    model.loss_terms(labels, tf.zeros_like(labels), recording_network, model.seed_generator, training=True)
    per_image = seen[0].numpy().reshape(4000, -1)
    dropped = np.all(per_image == 0, axis=1)
    assert np.all(dropped | np.all(per_image == 1, axis=1))  # a label map is dropped whole or kept whole
    assert abs(dropped.mean() - 0.3) < 0.025  # 3.5 standard errors at n = 4000

    model.loss_terms(labels, tf.zeros_like(labels), recording_network, model.seed_generator, training=False)
    assert np.all(seen[1].numpy() == 1)  # validation never drops


def test_velocity_prediction_implies_the_true_noise_and_is_trained_on_the_velocity():
    model = tiny_model(prediction="velocity")
    assert [m.name for m in model.metrics] == ["noise_loss", "image_loss", "velocity_loss"]
    rng = np.random.default_rng(0)
    photos, noises = (tf.constant(rng.uniform(-1, 1, (3, 4, 4, 3)), tf.float32) for _ in range(2))
    signal_rates, noise_rates = model.schedule.signal_and_noise_rates(tf.constant([0.0, 0.5, 1.0])[:, None, None, None])
    noisy = signal_rates * photos + noise_rates * noises
    velocity = signal_rates * noises - noise_rates * photos  # v of Salimans & Ho (2022)
    np.testing.assert_allclose(noise_from_prediction("velocity", velocity, noisy, noise_rates), noises, atol=1e-5)


def test_image_prediction_implies_the_true_noise():
    model = tiny_model(prediction="image", schedule=dict(max_signal_rate=0.999))
    rng = np.random.default_rng(1)
    photos, noises = (tf.constant(rng.uniform(-1, 1, (3, 4, 4, 3)), tf.float32) for _ in range(2))
    times = tf.constant([0.0, 0.5, 1.0])[:, None, None, None]
    signal_rates, noise_rates = model.schedule.signal_and_noise_rates(times)
    noisy = signal_rates * photos + noise_rates * noises
    np.testing.assert_allclose(noise_from_prediction("image", photos, noisy, noise_rates), noises, atol=1e-4)


@pytest.mark.parametrize("weighting, floor", [("min-snr", 0.0), ("clipped-snr", 1.0)])
@pytest.mark.parametrize("prediction", ["noise", "velocity", "image"])
def test_snr_weightings_weight_the_x0_error(prediction, weighting, floor):
    """Whatever the network predicts, the trained loss is the mean of w(SNR) |x0 error|^2: min-SNR (Hang et al.
    2023) w = min(SNR, gamma); clipped-SNR w = clip(SNR, 1, gamma)."""
    model = tiny_model(prediction=prediction, loss_weighting=weighting, min_snr_gamma=5.0,
                       schedule=dict(max_signal_rate=0.999))
    assert model.trained_loss_name == "weighted_loss" and "weighted_loss" in [m.name for m in model.metrics]
    rng = np.random.default_rng(2)
    photos = tf.constant(rng.uniform(-1, 1, (64, 4, 4, 3)), tf.float32)
    fixed = rng.normal(0, 0.3, (64, 4, 4, 3)).astype("float32")  # the same network output for every time

    def constant_network(inputs, training):
        return tf.constant(fixed)

    losses = model.loss_terms(tf.zeros_like(photos), photos, constant_network, keras.random.SeedGenerator(3),
                               training=True)
    # redraw the same noises and times to compute the x_0 errors by hand
    generator = keras.random.SeedGenerator(3)
    noises = keras.random.normal(tf.shape(photos), seed=generator)
    times = model.schedule.sample_training_times((64, 1, 1, 1), seed=generator)
    s, n = (r.numpy() for r in model.schedule.signal_and_noise_rates(times))
    x = s * photos.numpy() + n * noises.numpy()
    eps = noise_from_prediction(prediction, tf.constant(fixed), tf.constant(x), tf.constant(n)).numpy()
    x0_errors = np.mean(np.square((x - n * eps) / s - photos.numpy()), axis=(1, 2, 3))
    snr = (s / n).ravel() ** 2
    assert snr.max() > 5.0 > 1.0 > snr.min()  # both sides of both clips are exercised
    expected = np.mean(np.maximum(np.minimum(snr, 5.0), floor) * x0_errors)
    assert float(losses["weighted_loss"]) == pytest.approx(expected, rel=2e-3)


# ---------------------------------------------------------------------------------------- sampling

@pytest.fixture(scope="module")
def guided_model():
    """Random weights predict a small noise, so the output is mostly x_1 / min_signal_rate: a min signal rate of
    0.6 keeps it inside [-1, 1] often enough for the predictions' effect to show (exact 0 when nothing changes)."""
    model = tiny_model(condition_dropout=0.1, schedule=dict(max_signal_rate=0.999, min_signal_rate=0.6))
    randomize(model.ema_network, scale=0.1)
    return model


def test_translation_is_reproducible_and_follows_the_seed(guided_model):
    labels = label_batch()
    a, b = guided_model.translate(labels).numpy(), guided_model.translate(labels).numpy()
    assert a.shape == (2, SIZE, SIZE, 3) and a.min() >= -1 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - guided_model.translate(labels, seed=1).numpy()).mean() > 1e-2
    assert np.abs(a - guided_model.translate(label_batch(seed=5)).numpy()).mean() > 1e-4  # it reads its labels


def test_guidance_extrapolates_from_the_null_label_prediction_and_changes_the_output(guided_model):
    labels, x = label_batch(), label_batch(seed=2)
    v = tf.fill((2, 1, 1, 1), 0.3)
    conditional = guided_model.ema_network([x, v, labels]).numpy()
    unconditional = guided_model.ema_network([x, v, tf.zeros_like(labels)]).numpy()
    guided = guided_model.predict_noise_fn(labels, guidance=2.0)(x, v).numpy()
    np.testing.assert_allclose(guided, 3.0 * conditional - 2.0 * unconditional, rtol=1e-4, atol=1e-5)
    plain, with_guidance = guided_model.translate(labels).numpy(), guided_model.translate(labels, guidance=2.0).numpy()
    assert np.abs(plain - with_guidance).mean() > 1e-4


@pytest.mark.parametrize("sampler, eta", [("ddim", 1.0), ("ddpm", 0.0)])
def test_stochastic_samplers_run_and_differ_from_deterministic_ddim(guided_model, sampler, eta):
    labels = label_batch()
    out = guided_model.translate(labels, sampler=sampler, eta=eta).numpy()
    assert np.all(np.isfinite(out)) and np.abs(out - guided_model.translate(labels).numpy()).mean() > 1e-4


def test_unconditional_model_ignores_the_label_maps():
    model = tiny_model(network=dict(condition_channels=0))
    randomize(model.ema_network)
    assert len(model.network.inputs) == 2
    a, b = model.translate(label_batch(3)).numpy(), model.translate(label_batch(3, seed=9)).numpy()
    assert a.shape == (3, SIZE, SIZE, 3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("parts, message", [
    (dict(sampling=dict(guidance=1.0)), "condition dropout"),
    (dict(network=dict(condition_channels=0), condition_dropout=0.1), "conditional model"),
    (dict(sampling=dict(sampler="euler")), "unknown sampler"),
    (dict(sampling=dict(sampling_steps=0)), "positive integer"),
    (dict(schedule=dict(max_signal_rate=0.5, min_signal_rate=0.6)), "min_signal_rate < max_signal_rate"),
    (dict(network=dict(widths=(4, 8, 8, 8, 8, 8))), "image size 32"),
    (dict(network=dict(name="transformer")), "unknown diffusion network"),
    (dict(loss_weighting="p2"), "unknown loss weighting"),
    (dict(network=dict(condition_channels=0, condition_every_level=True)), "needs a conditional model"),
    (dict(network=dict(name="attention", widths=(8, 16), condition_every_level=True)), "only for the study network"),
])
def test_bad_settings_raise_clear_errors(parts, message):
    with pytest.raises(I2IError, match=message):
        tiny_model(**parts)


def test_a_config_names_its_schedule_and_the_signal_rates_apply_to_the_cosine_angle_one_only():
    assert repr(named_schedule("cosine-angle", 0.999, 0.6)) == repr(CosineAngleSchedule(0.999, 0.6))
    assert named_schedule("linear", 0.999, 0.6).name == "linear"
    with pytest.raises(I2IError, match="unknown noise schedule"):
        named_schedule("quadratic")


def test_a_built_network_is_used_as_given_and_says_what_is_diffused():
    network = study_unet(image_size=SIZE, condition_channels=0, input_width=4, down_widths=(4, 8),
                         bottleneck_width=16, image_channels=4)
    model = DiffusionModel(network=network, sampling=SamplerSettings(sampling_steps=2))
    assert model.network is network and (model.image_size, model.image_channels, model.conditional) == (SIZE, 4, False)
    assert model.translate(label_batch(2)).shape == (2, SIZE, SIZE, 4)
    with pytest.raises(I2IError, match="NetworkSettings or a keras.Model"):
        DiffusionModel(network="study")


def test_the_ddim_config_gives_the_model_its_network_schedule_and_sampler():
    config = {**ddim.PRESETS["quick"], "image_size": SIZE, "widths": [4, 8], "schedule": "linear", "eta": 0.5,
              "sampling_steps": 7, "sample_seed": 3}
    model = ddim.build(config)
    assert model.sampling == SamplerSettings(sampler="ddim", sampling_steps=7, eta=0.5, guidance=0.0,
                                             clip_denoised=True, sample_seed=3)
    assert model.schedule.name == "linear" and (model.prediction, model.ema) == ("image", 0.995)
    assert model.network.name == "study_unet" and model.conditional and model.image_size == SIZE


# ---------------------------------------------------------------------------------- train script

def test_paper_preset_is_table_6_with_the_table_4_network():
    paper = ddim.PRESETS["paper"]
    assert (paper["image_size"], paper["batch_size"], paper["lr"], paper["beta_1"], paper["beta_2"],
            paper["weight_decay"], paper["ema"], paper["max_signal_rate"], paper["min_signal_rate"]) == \
        (64, 2, 1e-4, 0.5, 0.999, 5e-5, 0.999, 0.95, 0.02)
    assert paper["steps"] * paper["batch_size"] == 50 * 400 * paper["expand"]  # 50 epochs of the 2400 pairs
    model = ddim.build(paper)
    optimizer = model.network_optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == pytest.approx(5e-5)
    reference = study_unet(image_size=64, condition_channels=3)
    assert [tuple(w.shape) for w in model.network.weights] == [tuple(w.shape) for w in reference.weights]
    assert model.ema_network.count_params() == reference.count_params()


def test_a_run_saved_before_newer_settings_builds_with_what_it_trained_with():
    """Older DDIM configs have no loss_weighting, min_snr_gamma, condition_every_level or latent: eq. 8 unweighted,
    the label map at the first layer only, on photos."""
    newer = ("loss_weighting", "min_snr_gamma", "condition_every_level", "latent")
    config = {key: value for key, value in {**ddim.PRESETS["paper"], "image_size": SIZE, "widths": [4, 8]}.items()
              if key not in newer}
    model = ddim.build(config)
    assert (model.loss_weighting, model.min_snr_gamma, model.trained_loss_name) == ("none", 5.0, "noise_loss")
    assert model.conditional and not any(layer.name.startswith("condition_pool") for layer in model.network.layers)


def test_unconditional_flag(tmp_path):
    args = ddim.cli_arguments(["--unconditional", "--print-config"])
    assert main(ddim.SPEC, args) == 0
    from train_scripts.training.config import build_parser, resolve_config

    config, _ = resolve_config(ddim.SPEC, build_parser(ddim.SPEC).parse_args(args))
    assert config["conditional"] is False


def test_run_folder_of_another_model_is_refused(tmp_path, capsys):
    RunFolder(tmp_path / "run").open("pix2pix", "quick", {"steps": 600})
    assert main(ddim.SPEC, ["--out", str(tmp_path / "run")]) == 2
    assert "holds a pix2pix run, not ddim" in capsys.readouterr().err


def test_bad_network_widths_are_an_error_not_a_traceback(tmp_path, capsys):
    code = main(ddim.SPEC, ["--image-size", "32", "--widths", "4,8,8,8,8,8", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "image size 32" in err and "Traceback" not in err


# ------------------------------------------------------------------------- resume with EMA weights

STEPS = 80
TINY_RUN = ["--image-size", "32", "--widths", "8,16", "--batch-size", "2", "--log-every", "10",
            "--checkpoint-every", "20", "--sample-every", "40", "--val-images", "4", "--kid-every", "20",
            "--kid-images", "8", "--sampling-steps", "3", "--kid-sampling-steps", "2", "--condition-dropout", "0.2",
            "--verbose", "0"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, repo_dir):
    out = tmp_path_factory.mktemp("ddim_uninterrupted")
    done = run("ddim", TINY_RUN, out, STEPS, repo_dir)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
@needs_alexnet_weights  # the validation KID uses the alexnet backbone
def test_log_has_the_fig7_columns_with_kid_at_its_intervals(uninterrupted):
    with open(uninterrupted / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"noise_loss", "image_loss", "val_noise_loss", "val_image_loss", "val_kid"} <= set(rows[0])
    kid = [float(r["val_kid"]) for r in rows]
    assert steps_logged(uninterrupted) == list(range(10, STEPS + 1, 10))
    assert all(math.isnan(k) for k in kid[0::2]) and all(np.isfinite(k) and k > 0 for k in kid[1::2])
    assert sorted(os.listdir(uninterrupted / "samples")) == ["step_0000040.png", "step_0000080.png"]


@pytest.mark.slow
def test_scores_saved_at_the_end_of_training_are_evaluate_pys(uninterrupted):
    """The DDIM draws each translate call's noise from its sample seed, so an output depends on how the label maps
    are batched: the scores a run saves when it finishes batch as evaluate.py does, and equal its (106 test images,
    more than one batch)."""
    saved = json.load(open(uninterrupted / "scores_test.json"))
    row = evaluate_run(str(uninterrupted), metrics="psnr,ssim", save_images=False)
    assert saved["n_images"] == 106
    assert (saved["psnr"], saved["ssim"]) == pytest.approx((row["psnr"], row["ssim"]), rel=1e-6)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights_ema_included(tmp_path, repo_dir, uninterrupted):
    """kill -9 (no chance to save): the EMA weights, optimizer and random-generator states come from the backup."""
    out = tmp_path / "run"
    code, _, _ = start_and_stop("ddim", TINY_RUN, out, STEPS, repo_dir, signal.SIGKILL, after_epoch=2)
    assert code != 0
    interrupted_at = saved_epoch(out) * 10
    assert 20 <= interrupted_at < STEPS

    resumed = run("ddim", TINY_RUN, out, STEPS, repo_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from its checkpoint at step {interrupted_at} of {STEPS}" in resumed.stdout
    assert steps_logged(out) == list(range(10, STEPS + 1, 10))
    a, b = weights(out / "model.weights.h5"), weights(uninterrupted / "model.weights.h5")
    assert a.keys() == b.keys() and any("ema_network" in k for k in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
