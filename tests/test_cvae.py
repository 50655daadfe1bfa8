"""CVAE: network shapes and parameter counts, loss terms by hand, it learns, exact resume, run-folder checks."""

import os
import signal

import keras
import numpy as np
import pytest

import run_helpers as rh
from data.pipeline import to_model_range
from data.sources import open_source
from models.blocks import latent_decoder
from models.cvae import CVAE, cvae_encoder
from train_scripts.training.inference import load_trained
from train_scripts.training.models import cgan, cvae
from train_scripts.training.runner import main

# Layer output shapes (no batch axis). The study has no CVAE table (section 3.2 is empty): these are the
# pix2pix encoder rows of Table 1 down to 4x4 and their mirror, as models/cvae.py describes.
ENCODER_256 = [("concat", (256, 256, 6)), ("down1_lrelu", (128, 128, 64)), ("down2_lrelu", (64, 64, 128)),
               ("down3_lrelu", (32, 32, 256)), ("down4_lrelu", (16, 16, 512)), ("down5_lrelu", (8, 8, 512)),
               ("down6_lrelu", (4, 4, 512)), ("flatten", (8192,)), ("mean", (128,)), ("log_var", (128,))]
DECODER_256 = [("label_down1_lrelu", (128, 128, 64)), ("label_down6_lrelu", (4, 4, 512)), ("z_map", (4, 4, 512)),
               ("bottleneck", (4, 4, 1024)), ("skip1", (8, 8, 1024)), ("skip2", (16, 16, 1024)),
               ("skip3", (32, 32, 512)), ("skip4", (64, 64, 256)), ("skip5", (128, 128, 128)),
               ("out_tanh", (256, 256, 3))]
ENCODER_64 = [("concat", (64, 64, 6)), ("down1_lrelu", (32, 32, 64)), ("down2_lrelu", (16, 16, 128)),
              ("down3_lrelu", (8, 8, 256)), ("down4_lrelu", (4, 4, 512)), ("flatten", (8192,)), ("mean", (128,)),
              ("log_var", (128,))]
DECODER_64 = [("label_down4_lrelu", (4, 4, 512)), ("z_map", (4, 4, 512)), ("bottleneck", (4, 4, 1024)),
              ("skip1", (8, 8, 512)), ("skip2", (16, 16, 256)), ("skip3", (32, 32, 128)), ("out_tanh", (64, 64, 3))]

TINY = ["--image-size", "32", "--ngf", "8", "--latent-dim", "8", "--batch-size", "2", "--log-every", "10",
        "--checkpoint-every", "20", "--sample-every", "60", "--val-images", "4", "--verbose", "0"]
TINY_STEPS = 80


def conv(k, cin, cout, bias):
    return k * k * cin * cout + (cout if bias else 0)


def norm(c):
    return 2 * c  # instance norm: scale and offset per channel


def stack(cin, widths):
    """Parameters of C{w1}-L, C{w2}-IN-L, ... (first conv with bias, no norm)."""
    ins = [cin] + widths[:-1]
    return conv(4, cin, widths[0], True) + sum(conv(4, i, o, False) + norm(o) for i, o in zip(ins[1:], widths[1:]))


@pytest.mark.parametrize("size,encoder_rows,decoder_rows",
                         [(256, ENCODER_256, DECODER_256), (64, ENCODER_64, DECODER_64)])
def test_network_shapes(size, encoder_rows, decoder_rows):
    encoder, decoder = cvae_encoder(size, 128), latent_decoder(size, 128, label_skips=True)
    for net, rows in ((encoder, encoder_rows), (decoder, decoder_rows)):
        for name, shape in rows:
            assert tuple(net.get_layer(name).output.shape[1:]) == shape, (net.name, name)


def test_parameter_counts_by_hand_at_256():
    widths = [64, 128, 256, 512, 512, 512]
    encoder = stack(6, widths) + 2 * (8192 * 128 + 128)
    ups = [(1024, 512), (1024, 512), (1024, 256), (512, 128), (256, 64)]  # input = previous output + its skip
    decoder = (stack(3, widths) + 128 * 8192 + norm(512) + sum(conv(4, i, o, False) + norm(o) for i, o in ups)
               + conv(4, 128, 3, True))
    assert cvae_encoder(256, 128).count_params() == encoder == 13_248_576
    assert latent_decoder(256, 128, label_skips=True).count_params() == decoder == 34_489_027


def tiny_batch(size=32, n=2):
    rng = np.random.default_rng(0)
    return (rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
            rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"))


@pytest.mark.parametrize("reconstruction", ["l1", "l2"])
def test_loss_terms_by_hand(reconstruction):
    keras.utils.set_random_seed(1)
    model = CVAE(image_size=32, latent_dim=4, ngf=8, beta=0.25, reconstruction=reconstruction)
    label, photo = tiny_batch()
    eps = np.random.default_rng(1).standard_normal((2, 4)).astype("float32")
    got = {k: float(v) for k, v in model.loss_terms(label, photo, noise=eps).items()}

    mean, log_var = (np.asarray(t, np.float64) for t in model.encoder([label, photo]))
    assert np.abs(mean).max() > 1e-2 and np.abs(log_var).max() > 1e-2  # the KL below is not trivially 0
    z = mean + np.exp(0.5 * log_var) * eps
    out = np.asarray(model.decoder([z.astype("float32"), label]), np.float64)
    err = np.abs(photo - out) if reconstruction == "l1" else (photo - out) ** 2
    rec = err.reshape(2, -1).sum(axis=1).mean()  # per-image sum, batch mean
    kl = (-0.5 * (1 + log_var - mean**2 - np.exp(log_var)).sum(axis=1)).mean()
    np.testing.assert_allclose(got["reconstruction_loss"], rec, rtol=1e-5)
    np.testing.assert_allclose(got["kl_loss"], kl, rtol=1e-5)
    np.testing.assert_allclose(got["loss"], rec + 0.25 * kl, rtol=1e-5)


def test_translate_samples_z_by_default_and_decodes_zero_on_request():
    keras.utils.set_random_seed(2)
    model = CVAE(image_size=32, latent_dim=4, ngf=8)
    label, _ = tiny_batch()
    zero = model.translate(label, sample=False).numpy()
    np.testing.assert_array_equal(zero, model.decode(label, np.zeros((2, 4), "float32")).numpy())
    np.testing.assert_array_equal(zero, model.translate(label, sample=False).numpy())
    a, b = model.translate(label).numpy(), model.translate(label).numpy()  # default: z ~ N(0, I), fresh each call
    assert not np.allclose(a, b) and not np.allclose(a, zero)
    assert np.abs(a).max() <= 1.0
    deterministic = CVAE(image_size=32, latent_dim=4, ngf=8, sample_at_test=False)
    np.testing.assert_array_equal(deterministic.translate(label).numpy(), deterministic.translate(label).numpy())


def held_out_l1(model, labels, photos, sample):
    out = np.concatenate([model.translate(to_model_range(labels[i:i + 25]), sample=sample).numpy()
                          for i in range(0, len(labels), 25)])
    return float(np.mean(np.abs(out - to_model_range(photos).numpy())))


@pytest.mark.slow
def test_quick_preset_learns_the_translation(tmp_path):
    run_dir = tmp_path / "run"
    assert main(cvae.SPEC, ["--steps", "160", "--image-size", "32", "--sample-every", "160",
                            "--checkpoint-every", "160", "--out", str(run_dir), "--verbose", "0"]) == 0
    _, config, trained, _ = load_trained(str(run_dir))
    keras.utils.set_random_seed(config["seed"])
    untrained = cvae.build(config)
    val = open_source("synthetic").load("val", config["image_size"])
    shuffled = np.roll(val.labels, 1, axis=0)

    scores = {name: held_out_l1(m, val.labels, val.photos, sample)
              for name, m, sample in [("trained", trained, True), ("trained_z0", trained, False),
                                      ("untrained", untrained, True)]}
    gain = held_out_l1(trained, shuffled, val.photos, False) - scores["trained_z0"]
    print(f"held-out L1 {scores}; own-label gain {gain:.4f}")
    assert scores["trained"] < 0.85 * scores["untrained"]  # clearly better than where it started (0.82 measured)
    assert scores["trained_z0"] < 0.85 * scores["untrained"]
    assert gain > 0.02  # its photos fit their own label maps, not any facade
    rows = rh.log_rows(run_dir)
    assert rows[-1]["reconstruction_loss"] < 0.9 * rows[0]["reconstruction_loss"] and rows[-1]["kl_loss"] > 0
    assert os.path.exists(run_dir / "losses.png") and os.path.exists(run_dir / "samples" / "step_0000160.png")


@pytest.fixture(scope="module")
def tiny_args_on_folder(tiny_facades):
    """TINY on the 32 px facades folder (not the quick preset's synthetic set, rendered anew by every process; the
    data do not matter here, only that every run sees the same)."""
    return [*TINY, "--data", str(tiny_facades)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, repo_dir, tiny_args_on_folder):
    out = tmp_path_factory.mktemp("cvae_uninterrupted")
    done = rh.run("cvae", tiny_args_on_folder, out, TINY_STEPS, repo_dir)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_end(tmp_path, repo_dir, tiny_args_on_folder, reference):
    rh.assert_resumes_to_reference("cvae", tiny_args_on_folder, tmp_path / "run", TINY_STEPS, repo_dir, reference,
                                   signal.SIGKILL, 10, {"loss", "reconstruction_loss", "kl_loss", "val_kl_loss"})


@pytest.mark.slow
def test_run_folder_of_another_model_is_refused(reference, capsys):
    assert main(cgan.SPEC, ["--out", str(reference)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{reference} holds a cvae run, not cgan" in err
