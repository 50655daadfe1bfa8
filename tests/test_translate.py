"""translate.py: a user's folder of label maps through a trained run, its seeds and settings, and its bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data.images import read_image
from data.pipeline import to_model_range, to_uint8
from data.sources import resize
from data.synthetic import make_pairs
from run_helpers import tiny_args
from train_scripts import translate
from train_scripts.training.inference import load_trained
from train_scripts.training.models import ddim, pix2pix
from train_scripts.training.runner import main as train_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory, tiny_facades):
    out = tmp_path_factory.mktemp("translate") / "pix2pix"
    assert train_main(pix2pix.SPEC, [*tiny_args("pix2pix", tiny_facades, image_size=SIZE), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def ddim_run(tmp_path_factory, tiny_facades):
    out = tmp_path_factory.mktemp("translate") / "ddim"
    assert train_main(ddim.SPEC, [*tiny_args("ddim", tiny_facades, image_size=SIZE), "--out", str(out)]) == 0
    return out


def label_maps(n, size):
    return make_pairs(n, size=size, seed=0, start=0)[0]


@pytest.fixture
def mixed_folder(tmp_path):
    """Label maps as users have them: PNG, JPEG, RGBA PNG, grayscale, non-square BMP, WebP, larger than the model's."""
    folder = tmp_path / "labels"
    folder.mkdir()
    big = label_maps(6, 48)
    Image.fromarray(big[0]).save(folder / "01.png")
    Image.fromarray(big[1]).save(folder / "02.jpg", quality=95)
    Image.fromarray(np.dstack([big[2], np.full(big[2].shape[:2], 200, np.uint8)]), "RGBA").save(folder / "03.png")
    Image.fromarray(big[3]).convert("L").save(folder / "04.png")
    Image.fromarray(big[4][:24]).save(folder / "05.bmp")  # 48 x 24
    Image.fromarray(label_maps(1, SIZE)[0]).save(folder / "06.webp", lossless=True)  # already at the model's size
    return folder


def cli(*args):
    done = subprocess.run([sys.executable, "train_scripts/translate.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert "Traceback" not in done.stderr, done.stderr
    return done


def outputs(folder):
    """The PNGs of ``folder`` as arrays, by name."""
    return {name: np.asarray(Image.open(os.path.join(folder, name)))
            for name in sorted(os.listdir(folder)) if name.endswith(".png")}


def reference_translation(run_dir, folder):
    """What the run's model gives for the folder's files, read and resized by the data code, in one batch."""
    from data.pipeline import to_model_range, to_uint8

    names = sorted(os.listdir(folder))
    labels = np.stack([resize(read_image(os.path.join(folder, n)), SIZE) for n in names])
    _, _, model, _ = load_trained(run_dir)
    fakes = to_uint8(model.translate(to_model_range(labels)))
    return {os.path.splitext(n)[0] + ".png": fake for n, fake in zip(names, fakes)}


@pytest.mark.slow
def test_a_folder_of_mixed_formats_gives_what_the_model_gives(pix2pix_run, mixed_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "01.png").write_bytes(b"an older output, replaced")
    (out / "mine.txt").write_text("left alone")
    done = cli(pix2pix_run, mixed_folder, out)
    assert done.returncode == 0, done.stderr
    assert "translated 6 of 6 images" in done.stdout and "6/6" in done.stdout  # summary and progress bar
    assert f"{mixed_folder / '03.png'}: alpha channel dropped" in done.stderr
    assert f"{mixed_folder / '04.png'}: grayscale image converted to RGB" in done.stderr
    assert sorted(os.listdir(out)) == ["01.png", "02.png", "03.png", "04.png", "05.png", "06.png", "mine.txt"]
    got = outputs(out)
    assert (out / "mine.txt").read_text() == "left alone"
    expected = reference_translation(pix2pix_run, mixed_folder)
    for name, image in expected.items():
        assert got[name].shape == (SIZE, SIZE, 3) and got[name].dtype == np.uint8, name
        np.testing.assert_array_equal(got[name], image, err_msg=name)


@pytest.mark.slow
def test_keep_size_gives_each_output_its_inputs_size(pix2pix_run, mixed_folder, tmp_path):
    assert translate.main([str(pix2pix_run), str(mixed_folder), str(tmp_path / "plain"), "--batch-size", "4"]) == 0
    assert translate.main([str(pix2pix_run), str(mixed_folder), str(tmp_path / "kept"), "--keep-size",
                           "--batch-size", "4"]) == 0
    plain, kept = outputs(tmp_path / "plain"), outputs(tmp_path / "kept")
    for name in sorted(os.listdir(mixed_folder)):
        width, height = Image.open(mixed_folder / name).size
        png = os.path.splitext(name)[0] + ".png"
        assert kept[png].shape == (height, width, 3), name
        assert np.abs(resize(kept[png], SIZE).astype(int) - plain[png]).mean() < 8, name  # the same picture
    np.testing.assert_array_equal(kept["06.png"], plain["06.png"])  # input at the model's size: not resized


def _ddim(run, folder, out, *args, steps=2):
    assert translate.main([str(run), str(folder), str(out), "--set", f"sampling_steps={steps}", *map(str, args)]) == 0
    return outputs(out)


@pytest.mark.slow
def test_diffusion_seed_and_settings(ddim_run, mixed_folder, tmp_path):
    first = _ddim(ddim_run, mixed_folder, tmp_path / "a", "--seed", 1)
    again = _ddim(ddim_run, mixed_folder, tmp_path / "b", "--seed", 1)
    other = _ddim(ddim_run, mixed_folder, tmp_path / "c", "--seed", 2)
    assert sorted(first) == [f"0{i}.png" for i in range(1, 7)]
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
        assert not np.array_equal(first[name], other[name]), name
    # --seed N is the sampler's seed, as --set sample_seed=N (evaluate.py's way) ...
    as_setting = _ddim(ddim_run, mixed_folder, tmp_path / "d", "--set", "sample_seed=1")
    assert all(np.array_equal(first[n], as_setting[n]) for n in first)
    # ... and --set sampling_steps reaches the sampler
    one_step = _ddim(ddim_run, mixed_folder, tmp_path / "e", "--seed", 1, steps=1)
    assert sorted(one_step) == sorted(first) and not all(np.array_equal(first[n], one_step[n]) for n in first)


@pytest.mark.slow
def test_settings_that_need_retraining_are_refused(ddim_run, mixed_folder, tmp_path, capsys):
    for args, message in ((["--set", "widths=8"], "--set widths=8: a ddim run can change only these test-time"),
                          (["--seed", "1", "--set", "sample_seed=2"], "--seed and --set sample_seed")):
        assert translate.main([str(ddim_run), str(mixed_folder), str(tmp_path / "out"), *args]) == 2
        assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_pix2pix_dropout_follows_the_seed(pix2pix_run, mixed_folder, tmp_path):
    """A stochastic setting of another model (test-time dropout): --seed reproduces and varies its draws."""
    runs = {}
    for key, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert translate.main([str(pix2pix_run), str(mixed_folder), str(tmp_path / key), "--seed", str(seed),
                               "--set", "dropout_at_test=true"]) == 0
        runs[key] = outputs(tmp_path / key)
    assert all(np.array_equal(runs["a"][n], runs["b"][n]) for n in runs["a"])
    assert not all(np.array_equal(runs["a"][n], runs["c"][n]) for n in runs["a"])


@pytest.mark.slow
def test_the_runs_seed_is_the_default_and_seeds_reach_translate_py_as_load_trained(pix2pix_run, mixed_folder,
                                                                                  tmp_path):
    """--seed 0 (the tiny run's seed) writes what no --seed writes, and both are what the run's model loaded with
    that seed translates; another seed, other outputs."""
    written = {}
    for key, seed in (("default", ()), ("zero", ("--seed", "0")), ("five", ("--seed", "5"))):
        assert translate.main([str(pix2pix_run), str(mixed_folder), str(tmp_path / key), *seed,
                               "--set", "dropout_at_test=true"]) == 0
        written[key] = outputs(tmp_path / key)
    assert all(np.array_equal(written["default"][n], written["zero"][n]) for n in written["default"])
    assert not all(np.array_equal(written["default"][n], written["five"][n]) for n in written["default"])
    names = sorted(os.listdir(mixed_folder))
    labels = to_model_range(np.stack([resize(read_image(os.path.join(mixed_folder, n)), SIZE) for n in names]))
    model = load_trained(pix2pix_run, ["dropout_at_test=true"], seed=5)[2]
    for name, fake in zip(names, to_uint8(model.translate(labels))):
        np.testing.assert_array_equal(written["five"][os.path.splitext(name)[0] + ".png"], fake, err_msg=name)


@pytest.mark.slow
def test_loading_reseeds_nothing_and_the_noise_comes_from_the_runs_seed(pix2pix_run):
    """Python's, NumPy's, TensorFlow's and Keras' global draws after loading a run are those without the load; the
    run's test-time noise (dropout at test) is the same whatever the global state was when it was loaded."""
    import random

    import keras
    import tensorflow as tf

    def draws():
        return (random.random(), float(np.random.rand()), float(tf.random.uniform(())),
                float(keras.random.uniform(())))

    keras.utils.set_random_seed(11)
    draws()
    model = load_trained(pix2pix_run, ["dropout_at_test=true"])[2]
    after_load = draws()
    keras.utils.set_random_seed(11)
    draws()
    assert draws() == after_load
    labels = to_model_range(label_maps(2, SIZE))
    first = model.translate(labels).numpy()
    keras.utils.set_random_seed(12)
    draws()
    again = load_trained(pix2pix_run, ["dropout_at_test=true"])[2]
    np.testing.assert_array_equal(again.translate(labels).numpy(), first)
    assert not np.array_equal(model.translate(labels).numpy(), first)  # the run's own noise goes on, batch by batch


@pytest.mark.slow
def test_unreadable_files_are_named_and_skipped(pix2pix_run, mixed_folder, tmp_path):
    good = (mixed_folder / "01.png").read_bytes()
    (mixed_folder / "10_truncated.png").write_bytes(good[:len(good) // 2])
    (mixed_folder / "11_text.png").write_text("not an image at all\n")
    Image.fromarray(label_maps(1, 64)[0]).save(mixed_folder / "12_big.png")  # 4096 pixels, over --max-pixels 3000
    (mixed_folder / "06.png").write_bytes(good)  # same output name as 06.webp: translated once
    (mixed_folder / "notes.txt").write_text("ignored: not an image by its extension")
    out = tmp_path / "out"
    done = cli(pix2pix_run, mixed_folder, out, "--max-pixels", 3000)
    assert done.returncode == 1, done.stderr
    for name in ("10_truncated.png", "11_text.png", "12_big.png"):
        assert f"skipped {mixed_folder / name}: " in done.stderr, name
    assert "12_big.png: too large" in done.stderr
    assert f"skipped {mixed_folder / '06.webp'}: same output name 06.png as 06.png" in done.stderr
    assert "skipped 4: 06.webp, 10_truncated.png, 11_text.png, 12_big.png" in done.stderr
    assert "translated 6 of 10 images" in done.stdout
    assert sorted(os.listdir(out)) == [f"0{i}.png" for i in range(1, 7)]  # no temporary files left either


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["missing", "empty", "same", "not_a_run"])
def test_bad_folders_are_refused_before_anything_is_written(problem, pix2pix_run, mixed_folder, tmp_path):
    run, inputs, out = pix2pix_run, mixed_folder, tmp_path / "out"
    if problem == "missing":
        inputs = tmp_path / "nowhere"
    elif problem == "empty":
        inputs = tmp_path / "empty"
        inputs.mkdir()
    elif problem == "same":
        out = mixed_folder
    else:
        run = tmp_path / "not_a_run"
        run.mkdir()
    before = sorted(os.listdir(mixed_folder))
    done = cli(run, inputs, out)
    named = {"missing": f"error: {inputs}: no such folder", "empty": f"error: {inputs}: no image files",
             "same": f"error: {out}: is the input folder", "not_a_run": f"error: {run}: not a run folder"}[problem]
    assert done.returncode == 2 and named in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() and sorted(os.listdir(mixed_folder)) == before


def test_help_lists_every_flag_with_its_default():
    done = cli("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for flag, default in (("--keep-size", "False"), ("--batch-size", "16"), ("--seed", "None"),
                          ("--set", "None"), ("--max-pixels", "50000000")):
        assert flag in text and f"(default: {default}" in text, flag
