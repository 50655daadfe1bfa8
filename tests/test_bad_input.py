"""Bad input: every case names the file and the problem; commands exit with 2 and no stack trace."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data.errors import I2IError, LayoutError
from data.images import read_image
from data.sources import FolderSource


def _ab(size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)


def _write_split(root, split="train", n=3):
    os.makedirs(os.path.join(root, split), exist_ok=True)
    for i in range(1, n + 1):
        Image.fromarray(_ab(seed=i)).save(os.path.join(root, split, f"{i}.png"))


def _truncated_jpeg(path):
    buf = Image.fromarray(_ab(64))
    buf.save(path, quality=95)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def test_corrupt_jpeg_names_the_file(tmp_path):
    _write_split(tmp_path)
    bad = tmp_path / "train" / "2.jpg"
    _truncated_jpeg(bad)
    with pytest.raises(I2IError) as e:
        FolderSource(tmp_path).load("train", 16)
    assert str(bad) in str(e.value) and "truncated" in str(e.value)


def test_every_bad_file_is_listed_at_once(tmp_path):
    _write_split(tmp_path)
    for name in ("7.jpg", "8.jpg"):
        (tmp_path / "train" / name).write_text("this is not a picture")
    with pytest.raises(I2IError) as e:
        FolderSource(tmp_path).load("train", 16)
    msg = str(e.value)
    assert "2 unusable" in msg and "7.jpg" in msg and "8.jpg" in msg and "not an image file" in msg


def test_non_image_files_are_skipped_with_a_warning(tmp_path, caplog):
    _write_split(tmp_path)
    (tmp_path / "train" / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING, logger="i2i"):
        pairs = FolderSource(tmp_path).load("train", 16)
    assert len(pairs) == 3
    assert any("notes.txt" in r.getMessage() and "not an image" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P"])
def test_grayscale_rgba_palette_become_rgb_with_a_warning(tmp_path, caplog, mode):
    path = str(tmp_path / f"x_{mode}.png")
    rgb = _ab(8)
    Image.fromarray(rgb).convert(mode).save(path)
    with caplog.at_level(logging.WARNING, logger="i2i"):
        out = read_image(path)
    assert out.shape == (8, 16, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(rgb).convert(mode).convert("RGB")))
    if mode != "P":
        assert any(path in r.getMessage() for r in caplog.records)


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    import cv2

    gray16 = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1000).astype(np.uint16)
    path = str(tmp_path / "deep.png")
    cv2.imwrite(path, gray16)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    np.testing.assert_allclose(out[..., 0], np.round(gray16 / 257.0), atol=1)
    rgb16 = (np.random.default_rng(0).integers(0, 65536, (8, 8, 3))).astype(np.uint16)
    cv2.imwrite(path, rgb16[..., ::-1])
    np.testing.assert_allclose(read_image(path).astype(int), (rgb16 >> 8).astype(int), atol=1)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.fromarray(_ab(8))  # 16 wide, 8 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = str(tmp_path / "rot.jpg")
    img.save(path, exif=exif.tobytes(), quality=100)
    assert read_image(path).shape == (16, 8, 3)


def test_ab_file_with_wrong_width_is_named(tmp_path):
    _write_split(tmp_path)
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(tmp_path / "train" / "3.png")
    with pytest.raises(I2IError) as e:
        FolderSource(tmp_path).load("train", 16)
    assert "3.png" in str(e.value) and "not twice the height" in str(e.value)


def test_empty_split(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(LayoutError, match="split 'train' has no images"):
        FolderSource(tmp_path).load("train", 16)


def test_unmatched_names_in_two_folder_layout(tmp_path):
    for folder, names in (("A", ["1.png", "2.png", "3.png"]), ("B", ["1.png", "2.png", "4.png"])):
        os.makedirs(tmp_path / "train" / folder)
        for n in names:
            Image.fromarray(_ab()[:, :16]).save(tmp_path / "train" / folder / n)
    with pytest.raises(LayoutError) as e:
        FolderSource(tmp_path).load("train", 16)
    msg = str(e.value)
    assert "unmatched" in msg and "3" in msg and "4" in msg


def test_pair_of_different_sizes_is_named(tmp_path):
    os.makedirs(tmp_path / "train" / "A")
    os.makedirs(tmp_path / "train" / "B")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "train" / "A" / "1.png")
    Image.fromarray(np.zeros((20, 16, 3), np.uint8)).save(tmp_path / "train" / "B" / "1.png")
    with pytest.raises(I2IError, match="same size"):
        FolderSource(tmp_path).load("train", 16)


def _run_script(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "train_scripts/pix2pix.py", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_command_reports_bad_data_without_traceback(tmp_path, repo_dir):
    _write_split(tmp_path, "train")
    _write_split(tmp_path, "val")
    _truncated_jpeg(tmp_path / "train" / "9.jpg")
    out = _run_script(["--data", str(tmp_path), "--out", str(tmp_path / "run")], repo_dir)
    assert out.returncode == 2
    assert "9.jpg" in out.stderr and "truncated" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_command_refuses_a_folder_that_is_not_a_run(tmp_path, repo_dir):
    (tmp_path / "something.txt").write_text("keep me")
    out = _run_script(["--out", str(tmp_path)], repo_dir)
    assert out.returncode == 2 and "not a run folder" in out.stderr
    assert (tmp_path / "something.txt").read_text() == "keep me"
    assert "Traceback" not in out.stderr


def test_exif_orientation_gives_the_upright_pixels(tmp_path):
    """Cameras store the sensor's pixels and an EXIF orientation; what a viewer shows (upright) is what we read."""
    upright = np.random.default_rng(3).integers(0, 256, (6, 10, 3), dtype=np.uint8)  # 10 wide, 6 high
    stored = {  # EXIF orientation -> the pixels a camera writes for that upright image
        1: upright,
        3: np.rot90(upright, 2),  # shown rotated by 180 degrees
        6: np.rot90(upright, 1),  # shown rotated 90 degrees clockwise (a phone held upright)
        8: np.rot90(upright, -1),  # shown rotated 90 degrees counter-clockwise
        2: upright[:, ::-1],  # shown mirrored
    }
    for orientation, pixels in stored.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"  # PNG: lossless, so the comparison is exact
        Image.fromarray(np.ascontiguousarray(pixels)).save(path, exif=exif.tobytes())
        np.testing.assert_array_equal(read_image(path), upright, err_msg=f"orientation {orientation}")


def test_pair_with_an_exif_rotated_photo_loads_upright(tmp_path):
    """A phone photo stored sideways (EXIF 6) pairs with its upright label map: same size once read upright."""
    from data.sources import resize

    rng = np.random.default_rng(4)
    label, photo = (rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(2))
    for folder in ("A", "B"):
        os.makedirs(tmp_path / "train" / folder)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(photo, 1))).save(tmp_path / "train" / "A" / "1.png",
                                                                    exif=exif.tobytes())
    Image.fromarray(label).save(tmp_path / "train" / "B" / "1.png")
    pairs = FolderSource(tmp_path).load("train", 16)
    np.testing.assert_array_equal(pairs.photos[0], resize(photo, 16))
    np.testing.assert_array_equal(pairs.labels[0], resize(label, 16))


# ------------------------------------------------------------------- every train script, through the glue

from run_helpers import tiny_args, train_script_names  # noqa: E402

SCRIPTS = train_script_names()


def _main(script, args):
    from train_scripts.training.registry import spec_for
    from train_scripts.training.runner import main

    return main(spec_for(script), args)


def _tiny_config(script, args):
    from train_scripts.training.config import build_parser, resolve_config
    from train_scripts.training.registry import spec_for

    spec = spec_for(script)
    return resolve_config(spec, build_parser(spec).parse_args(args))[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_foreign_or_unreadable_run_folder_is_refused(tmp_path, tiny_facades, capsys, script):
    import json

    other = "cyclegan" if script != "cyclegan" else "pix2pix"
    cases = {
        "foreign": (json.dumps({"model": other, "preset": "quick", "config": {}}),
                    f"holds a {other} run, not {script}"),
        "corrupt": ('{"model": "pix2p', "config.json: unreadable"),
    }
    for name, (text, message) in cases.items():
        out = tmp_path / name
        out.mkdir()
        (out / "config.json").write_text(text)
        assert _main(script, tiny_args(script, tiny_facades) + ["--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert str(out) in err and message in err and "Traceback" not in err, name
        assert sorted(os.listdir(out)) == ["config.json"] and (out / "config.json").read_text() == text
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    assert _main(script, tiny_args(script, tiny_facades) + ["--out", str(tmp_path / "mine")]) == 2
    assert "not a run folder" in capsys.readouterr().err and (tmp_path / "mine" / "thesis.tex").exists()


@pytest.mark.parametrize("script", SCRIPTS)
def test_resuming_at_another_resolution_is_refused(tmp_path, tiny_facades, capsys, script):
    from train_scripts.training.run_folder import RunFolder

    out = tmp_path / "run"
    args = tiny_args(script, tiny_facades, image_size=32) + ["--out", str(out)]
    RunFolder(out).open(script, "quick", _tiny_config(script, args))  # a run started at 32 px
    assert _main(script, tiny_args(script, tiny_facades, image_size=64) + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} holds a {script} run with a different config" in err and "image_size: 32 there, 64 now" in err
    assert "--out" in err and "Traceback" not in err


@pytest.mark.parametrize("script", SCRIPTS)
def test_label_map_and_photo_of_different_sizes(tmp_path, capsys, script):
    for split in ("train", "val", "test"):
        for folder, size in (("A", (32, 32)), ("B", (32, 32))):
            os.makedirs(tmp_path / "data" / split / folder)
            for i in (1, 2):
                path = tmp_path / "data" / split / folder / f"{i}.png"
                Image.fromarray(np.full((*size, 3), 40 * i, np.uint8)).save(path)
    bad = tmp_path / "data" / "train" / "B" / "2.png"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(bad)  # the label map of pair 2 is 32x24, its photo 32x32
    assert _main(script, tiny_args(script, tmp_path / "data") + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "label map is 32x24 but its photo" in err and "same size" in err
    assert "Traceback" not in err


_TRAINED = {}


@pytest.fixture
def trained_copy(tmp_path_factory, tiny_facades, tmp_path):
    """``copy(script)``: a fresh copy of a finished 2-step tiny run of ``script`` (trained once per module)."""
    import shutil

    def copy(script):
        if script not in _TRAINED:
            out = tmp_path_factory.mktemp(f"trained-{script}") / "run"
            assert _main(script, tiny_args(script, tiny_facades) + ["--out", str(out)]) == 0
            _TRAINED[script] = out
        dest = tmp_path / f"{script}-copy"
        shutil.copytree(_TRAINED[script], dest)
        return dest

    return copy


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_corrupt_backup_names_the_file_and_offers_a_new_out(trained_copy, tiny_facades, capsys, script):
    run = trained_copy(script)
    os.remove(run / "progress.json")  # as if killed after the last checkpoint: the next start restores the backup
    (ckpt,) = [n for n in os.listdir(run / "backup") if n.endswith(".weights.h5")]
    _truncate(run / "backup" / ckpt)
    assert _main(script, tiny_args(script, tiny_facades) + ["--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'backup' / ckpt}: cannot restore the checkpoint" in err and "truncated or corrupt" in err
    assert "run with a new --out" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_corrupt_or_foreign_weights_in_load_trained(trained_copy, script):
    import keras

    from train_scripts.training.devices import build_model
    from train_scripts.training.inference import load_trained
    from train_scripts.training.registry import spec_for

    run = trained_copy(script)
    weights = run / "model.weights.h5"
    _, config, model, _ = load_trained(run)  # the intact run loads
    spec = spec_for(script)

    other = build_model(spec, dict(config, image_size=64))  # the same model at another resolution
    other.save_weights(str(weights))
    if sorted(tuple(v.shape) for v in other.weights) != sorted(tuple(v.shape) for v in model.weights):
        with pytest.raises(I2IError, match="another model or resolution") as e:
            load_trained(run)
        assert str(weights) in str(e.value)
    else:  # this model's weights do not depend on the resolution: they load and translate at the run's size
        labels = keras.random.uniform((1, 32, 32, 3), -1, 1, seed=0)
        assert tuple(load_trained(run)[2].translate(labels).shape) == (1, 32, 32, 3)

    _truncate(weights)
    with pytest.raises(I2IError, match="truncated or corrupt") as e:
        load_trained(run)
    assert str(weights) in str(e.value)
    os.remove(weights)
    with pytest.raises(I2IError, match="missing") as e:
        load_trained(run)
    assert str(weights) in str(e.value)


@pytest.mark.slow
def test_backup_state_unreadable_or_pointing_at_a_missing_file(trained_copy, tiny_facades, capsys):
    run = trained_copy("pix2pix")
    os.remove(run / "progress.json")
    meta = run / "backup" / "training_metadata.json"
    text = meta.read_text()
    meta.write_text(text[: len(text) // 2])  # torn JSON
    assert _main("pix2pix", tiny_args("pix2pix", tiny_facades) + ["--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{meta}: unreadable backup state" in err and "run with a new --out" in err and "Traceback" not in err
    meta.write_text(text)
    for name in os.listdir(run / "backup"):
        if name.endswith(".weights.h5"):
            os.remove(run / "backup" / name)
    assert _main("pix2pix", tiny_args("pix2pix", tiny_facades) + ["--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "ckpt-0000002.weights.h5: missing" in err and "run with a new --out" in err and "Traceback" not in err


@pytest.mark.parametrize("value, problem", [("widths=24,48", "not JSON"), ("[24, 48]", "JSON object")])
def test_benchmark_set_that_is_not_a_json_object_is_refused_before_any_timing(value, problem, capsys):
    from train_scripts.bench import training as benchmark

    with pytest.raises(SystemExit) as e:
        benchmark.main(["--model", "ddim", "--set", value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--set" in err and problem in err and value in err and "Traceback" not in err
