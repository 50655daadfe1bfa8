"""``python -m metrics DIR_A DIR_B`` and ``score_pairs``: the same numbers as the metric functions, clear errors.

Tests that compute LPIPS or the alexnet backbone need the LPIPS weights in ``$I2I_SHARED_DIR/weights`` (default
``<repo>/../shared/weights``) and skip otherwise. Downloads are disabled (``keras.utils.get_file`` raises) and
the Keras cache is an empty folder, so the outcome does not depend on this machine's caches or network.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics.__main__ import main, pair_batches, pair_images
from metrics.score import ImagePairError, score_pairs, split_pairs
from run_helpers import needs_alexnet_weights

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("I2I_SHARED_DIR") or REPO.parent / "shared")
WEIGHTS_DIR = SHARED / "weights"


def make_images(n, size, seed):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.zeros((n, size, size, 3))
    for i in range(n):
        for c in range(3):
            a = rng.uniform(0.5, 3.0, size=3)
            out[i, ..., c] = 128 + 80 * np.sin(2 * np.pi * (a[0] * xx + a[1] * yy) + a[2])
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.fixture
def env(offline, monkeypatch):
    """The LPIPS weights of the shared folder only (no FID Inception); no Keras cache; no network."""
    lpips_only = offline / "lpips_weights"
    lpips_only.mkdir()
    for name in ("lpips_alexnet_v0.1_hwio.npz", "lpips_v0.1"):
        if (WEIGHTS_DIR / name).exists():
            (lpips_only / name).symlink_to(WEIGHTS_DIR / name)
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(lpips_only))
    return offline


@pytest.fixture
def folders(tmp_path):
    """7 pairs of 64 px images: references (PNG) and noisy 'generated' versions (PNG, one JPEG-named stem)."""
    real = make_images(7, 64, seed=1)
    fake = np.clip(real + np.random.RandomState(2).normal(0, 12, real.shape), 0, 255).astype(np.uint8)
    dir_a, dir_b = tmp_path / "generated", tmp_path / "reference"
    dir_a.mkdir()
    dir_b.mkdir()
    for i in range(7):
        Image.fromarray(fake[i]).save(dir_a / f"{i:03d}.png")
        Image.fromarray(real[i]).save(dir_b / (f"{i:03d}.png" if i else f"{i:03d}.bmp"))  # paired by stem
    (dir_b / "notes.txt").write_text("not an image: ignored")
    return dir_a, dir_b, fake, real


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@needs_alexnet_weights
def test_json_equals_the_metric_functions(env, folders, capsys):
    from metrics.backbones import get_backbone
    from metrics.distances import fid_from_features, kid_from_features
    from metrics.image_quality import psnr, ssim
    from metrics.lpips import LPIPS

    dir_a, dir_b, fake, real = folders
    code, out, err = run_cli(capsys, dir_a, dir_b, "--backbone", "alexnet", "--batch-size", "3", "--json",
                             "--per-image")
    assert code == 0, err
    result = json.loads(out)
    backbone = get_backbone("alexnet")
    ff, fr = backbone.features(fake), backbone.features(real)
    lpips = LPIPS()(fake, real)
    assert result["n_images"] == 7 and result["resolution"] == "64x64"
    assert result["backbone"] == "alexnet" and result["backbone_comparable_with_published"] is False
    assert result["psnr"] == pytest.approx(np.mean(psnr(fake, real)), abs=1e-9)
    assert result["ssim"] == pytest.approx(np.mean(ssim(fake, real)), abs=1e-6)
    assert result["lpips"] == pytest.approx(np.mean(lpips), abs=1e-6)
    assert result["fid"] == pytest.approx(fid_from_features(ff, fr), rel=1e-6, abs=1e-6)
    kid = kid_from_features(ff, fr)
    assert result["kid_subset_size"] == 7  # 1000 shrunk to the 7 images there are
    assert result["kid_mean"] == pytest.approx(kid["kid_mean"], rel=1e-6, abs=1e-9)
    assert result["per_image"]["000"]["lpips"] == pytest.approx(lpips[0], abs=1e-6)
    assert sorted(result["per_image"]) == [f"{i:03d}" for i in range(7)]


@needs_alexnet_weights
def test_table_names_the_default_backbone(env, folders, capsys):
    """No Inception weights here: the default is alexnet, and the table says it is not comparable."""
    dir_a, dir_b, _, _ = folders
    code, out, err = run_cli(capsys, dir_a, dir_b, "--metrics", "fid,kid")
    assert code == 0, err
    assert "FID/KID backbone: alexnet" in out and "NOT comparable" in out
    assert "7 image pairs, 64x64 px" in out
    assert "PSNR" not in out and "LPIPS" not in out


def test_paired_metrics_need_no_weights(monkeypatch, folders, capsys, tmp_path):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path / "nothing"))
    dir_a, dir_b, fake, real = folders
    code, out, err = run_cli(capsys, dir_a, dir_b, "--metrics", "psnr,ssim", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["backbone"] is None and result["fid"] is None and result["lpips"] is None
    assert result["n_images"] == 7 and result["psnr"] > 20


@pytest.mark.parametrize("backbone,filename", [
    ("fid-inception", "pt_inception-2015-12-05-6726825d.pth"),
    ("inception", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_missing_inception_weights_print_the_weights_error(env, folders, capsys, backbone, filename):
    dir_a, dir_b, _, _ = folders
    code, out, err = run_cli(capsys, dir_a, dir_b, "--backbone", backbone)
    assert code == 2
    assert err.startswith("error: ") and filename in err and "Traceback" not in err
    assert "I2I_WEIGHTS_DIR" in err


def test_missing_lpips_weights_print_the_weights_error(env, folders, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    dir_a, dir_b, _, _ = folders
    code, out, err = run_cli(capsys, dir_a, dir_b, "--metrics", "lpips")
    assert code == 2 and "lpips_alexnet_v0.1_hwio.npz" in err and "Traceback" not in err


def test_unmatched_names_are_listed(folders, capsys):
    dir_a, dir_b, _, _ = folders
    (dir_a / "extra_1.png").write_bytes((dir_a / "001.png").read_bytes())
    (dir_b / "extra_2.jpg").write_bytes(b"")
    code, out, err = run_cli(capsys, dir_a, dir_b)
    assert code == 2 and "extra_1" in err and "extra_2" in err and str(dir_a) in err and str(dir_b) in err


def test_size_mismatch_names_both_files(folders, capsys):
    dir_a, dir_b, fake, _ = folders
    Image.fromarray(fake[3][:48]).save(dir_a / "003.png")
    code, out, err = run_cli(capsys, dir_a, dir_b, "--metrics", "psnr")
    assert code == 2 and "003.png" in err and str(dir_a) in err and str(dir_b) in err and "same size" in err


def test_corrupt_image_and_bad_arguments_are_errors(folders, capsys, tmp_path):
    dir_a, dir_b, _, _ = folders
    data = (dir_a / "002.png").read_bytes()
    (dir_a / "002.png").write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(capsys, dir_a, dir_b, "--metrics", "psnr")
    assert code == 2 and "002.png" in err
    code, _, err = run_cli(capsys, dir_a, dir_b, "--metrics", "psnr,fidd")
    assert code == 2 and "fidd" in err
    code, _, err = run_cli(capsys, dir_a, tmp_path / "missing", "--metrics", "psnr")
    assert code == 2 and "missing" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, empty, dir_b, "--metrics", "psnr")
    assert code == 2 and "no image files" in err


def test_python_dash_m_entry_point(folders):
    dir_a, dir_b, _, _ = folders
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "metrics", str(dir_a), str(dir_b), "--metrics", "psnr", "--json"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_images"] == 7


def test_pair_batches_split_on_size_and_batch_size(folders):
    dir_a, dir_b, fake, real = folders
    Image.fromarray(make_images(1, 40, 5)[0]).save(dir_a / "zz.png")
    Image.fromarray(make_images(1, 40, 6)[0]).save(dir_b / "zz.png")
    shapes = [(a.shape, b.shape) for a, b in pair_batches(pair_images(dir_a, dir_b), 3)]
    assert [s[0] for s in shapes] == [(3, 64, 64, 3), (3, 64, 64, 3), (1, 64, 64, 3), (1, 40, 40, 3)]
    assert all(a == b for a, b in shapes)


def test_split_pairs_reads_one_pair_at_a_time():
    read = []

    def pairs():
        for i in range(3):
            read.append(i)
            yield np.full((1, 4, 4, 3), i, np.uint8), np.full((1, 4, 4, 3), 10 + i, np.uint8)

    fakes, reals = split_pairs(pairs())
    fakes, reals = iter(fakes), iter(reals)
    assert next(fakes)[0, 0, 0, 0] == 0 and read == [0]
    assert next(reals)[0, 0, 0, 0] == 10 and next(reals, None) is None
    assert next(fakes)[0, 0, 0, 0] == 1 and read == [0, 1]


def test_score_pairs_is_independent_of_batching_and_checks_input():
    real = make_images(10, 32, seed=7)
    fake = np.clip(real.astype(int) + 9, 0, 255).astype(np.uint8)

    def batches(x, size):
        return (x[i : i + size] for i in range(0, len(x), size))

    a = score_pairs(batches(fake, 4), batches(real, 4), "psnr,ssim")
    b = score_pairs(batches(fake, 10), batches(real, 10), ["ssim", "psnr"])
    assert a["n_images"] == b["n_images"] == 10
    assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-12) and a["ssim"] == pytest.approx(b["ssim"], abs=1e-7)
    with pytest.raises(ImagePairError, match=r"\[0, 255\]"):
        score_pairs([fake / 127.5 - 1.0], [real], "psnr")
    with pytest.raises(ImagePairError, match="more reference"):
        score_pairs(batches(fake, 5), [*batches(real, 5), real[:1]], "psnr")
    with pytest.raises(ImagePairError, match="more generated"):
        score_pairs(batches(fake, 5), batches(real[:5], 5), "psnr")
    with pytest.raises(ImagePairError, match="differ"):
        score_pairs([fake[:3]], [real[:4]], "psnr")


@needs_alexnet_weights
def test_reference_features_are_cached_by_backbone_weights_and_images(env, tmp_path):
    from metrics.backbones import get_backbone, reference_cache_path

    real = make_images(6, 48, seed=8)
    fake = make_images(6, 48, seed=9)
    backbone = get_backbone("alexnet")
    ids = [f"{i}.png" for i in range(6)]
    cache = tmp_path / "cache"
    first = score_pairs([fake], [real], "fid,kid", backbone, cache_dir=cache, real_ids=ids)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and files[0] == Path(reference_cache_path(cache, backbone, ids, (48, 48)))
    with np.load(files[0]) as npz:
        np.testing.assert_allclose(npz["features"], backbone.features(real), atol=1e-6)
    # a second run with garbage reference images still gives the cached answer: the cache was used
    again = score_pairs([fake], [np.zeros_like(real)], "fid,kid", backbone, cache_dir=cache, real_ids=ids)
    assert again["fid"] == first["fid"] and again["kid_mean"] == first["kid_mean"]
    assert reference_cache_path(cache, backbone, ids[:5] + ["other.png"], (48, 48)) != str(files[0])
    assert reference_cache_path(cache, backbone, ids, (64, 64)) != str(files[0])
    backbone.weights_sha256 = "0" * 64
    assert reference_cache_path(cache, backbone, ids, (48, 48)) != str(files[0])


def test_default_backbone_prefers_published_scale(monkeypatch):
    """fid-inception (comparable with published FID) if its weights are here, then inception, then alexnet."""
    from metrics import backbones

    for present, expected in (({"fid-inception", "inception"}, "fid-inception"), ({"inception"}, "inception"),
                              (set(), "alexnet")):
        monkeypatch.setattr(backbones, "backbone_available", lambda name, present=present: name in present)
        assert backbones.default_backbone() == expected
