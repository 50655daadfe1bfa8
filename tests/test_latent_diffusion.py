"""The KL autoencoder and the DDIM on its latents (latent diffusion): shapes, learning, resume, refusals.

One tiny autoencoder (32 px synthetic facades -> 16x16x4 latents) is trained once for the module; the latent DDIM
trains on it as the pixel DDIM's learning test does (tests/test_ddim_learns.py), with the same baselines: a
sampler that ignored the label map could do no better than a random training photo, and would fit shuffled label
maps as well as its own.
"""

import os
import signal

import numpy as np
import pytest

import run_helpers as rh
from data.errors import I2IError
from data.pipeline import to_model_range
from data.sources import open_source
from run_helpers import needs_alexnet_weights
from train_scripts.training.inference import load_trained
from train_scripts.training.models import autoencoder, ddim
from train_scripts.training.runner import main

pytestmark = needs_alexnet_weights  # the autoencoder trains on the LPIPS network

AE_ARGS = ["--image-size", "32", "--widths", "16,32", "--steps", "400", "--log-every", "50",
           "--checkpoint-every", "400", "--sample-every", "400", "--val-images", "16", "--verbose", "0"]
LDM_STEPS = 800
LDM_ARGS = ["--image-size", "32", "--widths", "16,32,64", "--steps", str(LDM_STEPS), "--log-every", "100",
            "--checkpoint-every", "800", "--sample-every", "800", "--kid-every", "0", "--val-images", "16",
            "--verbose", "0"]
N_VAL = 48


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("autoencoder") / "run"
    assert main(autoencoder.SPEC, [*AE_ARGS, "--out", str(run_dir)]) == 0
    return run_dir


def batched(fn, images, size=16):
    return np.concatenate([np.asarray(fn(to_model_range(images[i:i + size]))) for i in range(0, len(images), size)])


def l1(images, photos):
    return float(np.mean(np.abs(images - to_model_range(photos).numpy())))


def test_autoencoder_shapes_at_256_px():
    """LDM's f8 with 4 channels: 256 px photos -> 32x32x4 posterior means and log-variances -> 256 px photos."""
    from models.autoencoder import KLAutoencoder

    model = KLAutoencoder(image_size=256, lpips_weight=0.0)
    assert (model.factor, model.latent_size) == (8, 32)
    mean, log_var = model.encoder(np.zeros((2, 256, 256, 3), np.float32))
    assert mean.shape == log_var.shape == (2, 32, 32, 4)
    assert model.decoder(mean).shape == (2, 256, 256, 3)
    assert model.translate(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 256, 256, 3)
    with pytest.raises(I2IError, match="multiple of 8"):
        KLAutoencoder(image_size=100, lpips_weight=0.0)


def test_latent_ddim_builds_its_network_at_the_latent_size_and_refuses_a_network_of_photos():
    from models.autoencoder import KLAutoencoder
    from models.diffusion import NetworkSettings
    from models.diffusion.latent import LatentDiffusionModel

    autoencoder = KLAutoencoder(image_size=32, widths=(4, 8), lpips_weight=0.0)  # 32 px -> 16x16x4 latents
    network = NetworkSettings(image_size=32, widths=(4, 8))  # the config's image size: the photos'
    model = LatentDiffusionModel(autoencoder, network=network)
    assert (model.image_size, model.image_channels, model.photo_size) == (16, 4, 32)
    assert model.network.inputs[0].shape[1:] == (16, 16, 4)
    with pytest.raises(I2IError, match="the autoencoder's latents are 16 px with 4 channels"):
        LatentDiffusionModel(autoencoder, network=network.build())


def test_lpips_loss_is_the_metric_and_has_a_gradient():
    import tensorflow as tf

    from losses.perceptual import LPIPSLoss
    from metrics.lpips import LPIPS

    rng = np.random.default_rng(0)
    x, y = (rng.uniform(-1, 1, (3, 48, 48, 3)).astype(np.float32) for _ in range(2))
    loss = LPIPSLoss()
    expected = LPIPS()((x + 1) * 127.5, (y + 1) * 127.5).mean()
    y_var = tf.Variable(y)
    with tf.GradientTape() as tape:
        value = loss(x, y_var)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    assert float(tf.reduce_max(tf.abs(tape.gradient(value, y_var)))) > 0


@pytest.mark.slow
def test_autoencoder_learns_to_reconstruct_and_scales_its_latents(autoencoder_run):
    _, config, trained, _ = load_trained(str(autoencoder_run))
    val = open_source("synthetic").load("val", config["image_size"])
    train_photos = to_model_range(open_source("synthetic").load("train", config["image_size"]).photos).numpy()
    photos = val.photos[:N_VAL]
    reconstructions = batched(trained.translate, photos)
    l1_trained, l1_mean_photo = l1(reconstructions, photos), l1(train_photos.mean(axis=0), photos)
    latents = batched(trained.encode, photos)
    rows = rh.log_rows(autoencoder_run)
    print(f"L1 reconstruction {l1_trained:.4f}, mean photo {l1_mean_photo:.4f}; latent std {latents.std():.3f}; "
          f"PSNR {rows[0]['psnr']:.2f} -> {rows[-1]['psnr']:.2f}, LPIPS {rows[0]['lpips_loss']:.3f} "
          f"-> {rows[-1]['lpips_loss']:.3f}; val PSNR {rows[-1]['val_psnr']:.2f}")
    assert l1_trained < 0.5 * l1_mean_photo
    assert rows[-1]["lpips_loss"] < 0.5 * rows[0]["lpips_loss"] and rows[-1]["psnr"] > rows[0]["psnr"] + 3
    assert abs(rows[-1]["val_psnr"] - rows[-1]["psnr"]) < 3  # validated on held-out photos at the checkpoint
    assert 0.7 < latents.std() < 1.4  # the stored scale factor gives the diffusion model unit-variance latents

    # the latent DDIM's copy: built without the LPIPS network, the same reconstructions
    np.testing.assert_allclose(batched(autoencoder.load_autoencoder(str(autoencoder_run)).translate, photos),
                               reconstructions, atol=1e-5)


@pytest.mark.slow
def test_latent_ddim_learns_the_translation(autoencoder_run, tmp_path):
    run_dir = tmp_path / "latent"
    assert main(ddim.SPEC, [*LDM_ARGS, "--latent", str(autoencoder_run), "--out", str(run_dir)]) == 0
    _, config, trained, _ = load_trained(str(run_dir))
    assert trained.image_size == 16 and trained.image_channels == 4 and trained.photo_size == 32

    source = open_source("synthetic")
    val = source.load("val", config["image_size"])
    labels, photos = val.labels[:N_VAL], val.photos[:N_VAL]
    train_photos = to_model_range(source.load("train", config["image_size"]).photos).numpy()
    outputs = batched(trained.translate, labels)
    assert outputs.shape == (N_VAL, 32, 32, 3)
    l1_trained = l1(outputs, photos)
    l1_random_photo = float(np.mean([l1(train_photos, photos[i:i + 1]) for i in range(N_VAL)]))
    gain = l1(batched(trained.translate, np.roll(labels, 1, axis=0)), photos) - l1_trained
    print(f"L1 trained {l1_trained:.4f}, random photo {l1_random_photo:.4f}; own-label gain {gain:.4f}")
    assert l1_trained < l1_random_photo - 0.05  # better than any sampler that ignores its label map (0.092 measured)
    assert gain > 0.02  # it follows the label map it is given (0.031 measured; area-resized to 16x16, it is coarse)
    np.testing.assert_array_equal(batched(trained.translate, labels), outputs)  # the same seed, the same photos


@pytest.mark.slow
def test_latent_ddim_killed_run_resumes_to_the_same_end(autoencoder_run, tmp_path, repo_dir, tiny_facades):
    # the 32 px facades folder, not the synthetic set every process would render anew, and 2 sampling steps for
    # the sample grid and the scores at the end: neither is part of the training that must resume exactly
    args = [*LDM_ARGS[:4], "--latent", str(autoencoder_run), "--data", str(tiny_facades), "--log-every", "2",
            "--checkpoint-every", "2", "--sample-every", "12", "--kid-every", "0", "--val-images", "4",
            "--sampling-steps", "2", "--verbose", "0"]
    reference = tmp_path / "uninterrupted"
    done = rh.run("ddim", args, reference, 12, repo_dir)
    assert done.returncode == 0, done.stderr
    rh.assert_resumes_to_reference("ddim", args, tmp_path / "run", 12, repo_dir, reference, signal.SIGKILL, 2,
                                   {"noise_loss", "image_loss", "val_noise_loss"})


@pytest.mark.slow
def test_bad_autoencoder_runs_are_refused_before_a_run_folder_is_made(autoencoder_run, tmp_path, tiny_facades,
                                                                       capsys):
    other = tmp_path / "pix2pix"
    from train_scripts.training.models import pix2pix

    assert main(pix2pix.SPEC, ["--data", str(tiny_facades), "--image-size", "32", "--ngf", "8", "--ndf", "8",
                               "--steps", "1", "--log-every", "1", "--checkpoint-every", "1", "--sample-every", "1",
                               "--val-images", "2", "--verbose", "0", "--out", str(other)]) == 0
    capsys.readouterr()
    cases = {
        "missing": (["--latent", str(tmp_path / "nowhere")], "no such autoencoder run folder"),
        "another model": (["--latent", str(other)], "holds a pix2pix run, not an autoencoder run"),
        "other size": (["--latent", str(autoencoder_run), "--image-size", "64"],
                       "trained at 32 px, this run is at --image-size 64"),
        "no latent": (["--preset", "latent"], "give its run folder with --latent RUN"),
    }
    for name, (args, message) in cases.items():
        out = tmp_path / f"refused-{name.replace(' ', '-')}"
        assert main(ddim.SPEC, [*args, "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, (name, err)
        assert not os.path.exists(out), name


def test_translate_refuses_an_autoencoder_run(tmp_path, capsys):
    """An autoencoder reconstructs photos: translating label maps with it is refused, naming the run and what to do."""
    from models.autoencoder import KLAutoencoder
    from train_scripts import translate
    from train_scripts.training.run_folder import RunFolder

    config = {**autoencoder.PRESETS["quick"], "image_size": 32, "widths": [8, 16]}
    run = RunFolder(str(tmp_path / "ae"))
    run.open(autoencoder.SPEC.name, "quick", config)
    KLAutoencoder(image_size=32, widths=[8, 16], lpips_weight=0.0).save_weights(run.file("model.weights.h5"))
    labels = tmp_path / "labels"
    labels.mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32), (0, 0, 255)).save(labels / "1.png")
    assert translate.main([run.path, str(labels), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{run.path} is a run of the autoencoder" in err and "ddim.py --latent" in err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")  # nothing written
