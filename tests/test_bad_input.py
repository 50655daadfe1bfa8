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
