"""``python -m metrics compare GEN_A GEN_B REF_DIR`` and ``python -m metrics DIR_A DIR_B`` with intervals.

References: 24 facades val photos at 64 px (the synthetic facades when the shared data is not here). Model A:
slightly noisy copies; model B: the same outputs blurred, a clearly worse model.
"""

import glob
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from data.images import read_image
from metrics.__main__ import main
from metrics.comparison import compare_measurements
from metrics.intervals import bootstrap_indices, percentile_interval, resampled_means
from metrics.score import Measurements
from run_helpers import needs_alexnet_weights

N_IMAGES, SIZE = 24, 64


def reference_photos(shared_dir):
    files = sorted(glob.glob(os.path.join(shared_dir, "data", "facades", "val", "*.jpg")))[:N_IMAGES]
    if len(files) == N_IMAGES:
        return [cv2.resize(read_image(f)[:, :256], (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in files]
    from data.sources import open_source

    return list(open_source("synthetic").load("test", SIZE).photos[:N_IMAGES])


@pytest.fixture(scope="module")
def folders(tmp_path_factory, shared_dir):
    """ref/, a/ (noisy copies), b/ (a/ blurred), a_copy/ (a/ again): PNGs of the same names."""
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(0)
    for name in ("ref", "a", "b", "a_copy"):
        (root / name).mkdir()
    for i, photo in enumerate(reference_photos(shared_dir)):
        a = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
        b = cv2.GaussianBlur(a, (0, 0), 1.0)
        for name, image in (("ref", photo), ("a", a), ("b", b), ("a_copy", a)):
            Image.fromarray(image).save(root / name / f"{i:03d}.png")
    return root


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_clearly_worse_model_is_detected_and_a_copy_is_not(folders, capsys):
    code, out, err = run_cli(capsys, "compare", folders / "a", folders / "b", folders / "ref", "--metrics",
                             "psnr,ssim", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n_images"] == N_IMAGES and result["n_resamples"] == 1000 and "fid" not in result
    for metric in ("psnr", "ssim"):
        entry = result[metric]
        assert entry["diff"] == pytest.approx(entry["a"] - entry["b"])
        assert 0 < entry["lo"] < entry["diff"] < entry["hi"], metric
        assert entry["p"] < 0.001 and entry["a_better"] >= 0.9, metric
    # the A and B columns are the single-model scores of `python -m metrics`
    for model in ("a", "b"):
        code, out, err = run_cli(capsys, folders / model, folders / "ref", "--metrics", "psnr,ssim", "--json")
        single = json.loads(out)
        assert result["psnr"][model] == pytest.approx(single["psnr"], rel=1e-12)
        assert result["ssim"][model] == pytest.approx(single["ssim"], rel=1e-12)

    code, out, err = run_cli(capsys, "compare", folders / "a", folders / "a_copy", folders / "ref", "--metrics",
                             "psnr", "--json")
    same = json.loads(out)["psnr"]
    assert (same["diff"], same["lo"], same["hi"], same["p"], same["a_better"]) == (0.0, 0.0, 0.0, 1.0, 0.0)


def test_table_shows_values_intervals_and_p(folders, capsys):
    code, out, err = run_cli(capsys, "compare", folders / "a", folders / "b", folders / "ref", "--metrics", "psnr",
                             "--resamples", "200", "--interval-seed", "3", "--per-image")
    assert code == 0, err
    assert f"{N_IMAGES} images, {SIZE}x{SIZE} px; paired bootstrap over images: 200 resamples, seed 3" in out
    row = next(line for line in out.splitlines() if line.startswith("PSNR"))
    assert "[+" in row and "% of images" in row
    assert sum(line.startswith("0") for line in out.splitlines()) == N_IMAGES  # one per-image row per image


def test_paired_interval_uses_the_same_images_for_both_models():
    """Images vary a lot in difficulty, B is 0.1 worse on every image: the paired interval of A - B is tight
    around 0.1 (resampling A and B independently would make it about +-1.2 wide and include 0)."""
    rng = np.random.default_rng(4)
    difficulty = rng.normal(20, 3, 50)
    a = difficulty + rng.normal(0, 0.05, 50)
    b = a - 0.1 + rng.normal(0, 0.05, 50)
    result = compare_measurements(Measurements(50, "8x8", {"psnr": a}, None, None),
                                  Measurements(50, "8x8", {"psnr": b}, None, None), "psnr", n_resamples=500, seed=2)
    entry = result["psnr"]
    assert 0.07 < entry["lo"] < 0.1 < entry["hi"] < 0.13
    assert (entry["lo"], entry["hi"]) == percentile_interval(resampled_means(a - b, bootstrap_indices(50, 500, 2)))
    assert entry["p"] < 0.001 and entry["a_better"] > 0.9


@needs_alexnet_weights
def test_all_five_metrics_with_the_alexnet_backbone(folders, capsys):
    code, out, err = run_cli(capsys, "compare", folders / "a", folders / "b", folders / "ref", "--backbone",
                             "alexnet", "--resamples", "300", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["backbone"] == "alexnet" and result["n_resamples"] == 300
    lpips = result["lpips"]
    assert lpips["a"] < lpips["b"] and lpips["hi"] < 0 and lpips["p"] < 0.001 and lpips["a_better"] >= 0.9
    for metric in ("fid", "kid"):
        entry = result[metric]
        assert entry["a_better"] is None and entry["lo"] < entry["diff"] < entry["hi"] and 0 < entry["p"] <= 1
    assert result["fid"]["diff"] < 0 and result["fid"]["hi"] < 0  # blurring moves the features away
    # A's FID/KID are those of `python -m metrics` on A alone
    code, out, err = run_cli(capsys, folders / "a", folders / "ref", "--backbone", "alexnet", "--metrics",
                             "fid,kid,lpips", "--json")
    single = json.loads(out)
    assert result["fid"]["a"] == pytest.approx(single["fid"], rel=1e-12)
    assert result["kid"]["a"] == pytest.approx(single["kid_mean"], rel=1e-9)
    assert result["lpips"]["a"] == pytest.approx(single["lpips"], rel=1e-9)
    for metric, key in (("fid", "fid"), ("kid", "kid_mean"), ("lpips", "lpips")):
        assert single[f"{metric}_lo"] < single[key] < single[f"{metric}_hi"], metric


def test_folders_with_unmatched_names_are_refused(folders, tmp_path, capsys):
    b = tmp_path / "b"
    b.mkdir()
    for path in sorted((folders / "b").iterdir())[1:]:  # B lacks the first image and has one of its own
        (b / path.name).write_bytes(path.read_bytes())
    (b / "extra.png").write_bytes((folders / "b" / "001.png").read_bytes())
    code, out, err = run_cli(capsys, "compare", folders / "a", b, folders / "ref", "--metrics", "psnr")
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert str(b) in err and str(folders / "ref") in err and "000" in err and "extra" in err


def test_a_folder_named_compare_is_still_scored(folders, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compare").symlink_to(folders / "a")
    code, out, err = run_cli(capsys, "compare", folders / "ref", "--metrics", "psnr", "--json")
    assert code == 0, err
    assert json.loads(out)["dir_a"] == "compare" and json.loads(out)["n_images"] == N_IMAGES
    with pytest.raises(SystemExit) as exit_info:  # two folders after `compare`: neither command
        main(["compare", str(folders / "a"), str(folders / "ref")])
    assert exit_info.value.code == 2 and "three folders GEN_A GEN_B REF_DIR, got 2" in capsys.readouterr().err
    (tmp_path / "compare").unlink()
    code, out, err = run_cli(capsys, "compare", folders / "ref", "--metrics", "psnr")
    assert code == 2 and "compare: not a folder" in err and "GEN_A GEN_B REF_DIR" in err


def test_scoring_table_and_json_carry_the_intervals(folders, capsys):
    code, out, err = run_cli(capsys, folders / "b", folders / "ref", "--metrics", "psnr,ssim", "--json",
                             "--per-image", "--interval-seed", "5")
    result = json.loads(out)
    assert result["n_resamples"] == 1000 and result["interval_seed"] == 5 and len(result["per_image"]) == N_IMAGES
    psnr = [result["per_image"][f"{i:03d}"]["psnr"] for i in range(N_IMAGES)]
    assert (result["psnr_lo"], result["psnr_hi"]) == percentile_interval(
        resampled_means(psnr, bootstrap_indices(N_IMAGES, 1000, 5)))
    code, out, err = run_cli(capsys, folders / "b", folders / "ref", "--metrics", "psnr", "--resamples", "0",
                             "--json")
    assert json.loads(out)["psnr_lo"] is None and json.loads(out)["n_resamples"] == 0
    code, out, err = run_cli(capsys, folders / "b", folders / "ref", "--metrics", "psnr", "--interval-seed", "5")
    row = next(line for line in out.splitlines() if line.startswith("PSNR"))
    assert row.split()[1:] == [f"{result['psnr']:.4f}", f"[{result['psnr_lo']:.4f},", f"{result['psnr_hi']:.4f}]",
                               "dB"]
    code, out, err = run_cli(capsys, folders / "b", folders / "ref", "--resamples", "-1")
    assert code == 2 and "--resamples" in err
