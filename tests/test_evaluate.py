"""evaluate.py: a trained run scored with all five metrics, its row in the results table, and its bad input."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data.sources import open_source
from run_helpers import needs_alexnet_weights
from train_scripts import evaluate
from train_scripts.training import results as results_table
from train_scripts.training.models import pix2pix
from train_scripts.training.results import COLUMNS, format_results, read_results, update_results
from train_scripts.training.runner import main as train_main

TINY = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--steps", "20", "--log-every", "10",
        "--checkpoint-every", "20", "--sample-every", "20", "--verbose", "0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "run"
    assert train_main(pix2pix.SPEC, [*TINY, "--out", str(out)]) == 0
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@needs_alexnet_weights
def test_scores_a_run_and_writes_its_row(run_dir, tmp_path, capsys):
    results = tmp_path / "metrics.csv"
    assert evaluate.main([str(run_dir), "--results", str(results), "--backbone", "alexnet"]) == 0
    rows = _rows(results)
    assert len(rows) == 1
    row = rows[0]
    assert list(row)[:15] == list(COLUMNS[:15])  # the table's first columns, in their order
    assert (row["model"], row["split"], row["resolution"], row["n_images"]) == ("pix2pix", "test", "32x32", "106")
    assert row["variant"] == "quick batch_size=2 image_size=32 ndf=8 ngf=8" and row["backbone"] == "alexnet"
    assert row["train_steps"] == "20" and float(row["wall_time_s"]) > 0 and row["commit"]
    for key in ("psnr", "ssim", "fid", "kid_mean", "kid_std", "lpips"):
        assert np.isfinite(float(row[key])), key
    assert 5 < float(row["psnr"]) < 40 and 0 < float(row["lpips"]) < 1 and float(row["fid"]) > 0
    assert "pix2pix" in capsys.readouterr().out  # the table is printed

    # The same numbers come out of the run's own scores file, and PSNR/SSIM agree with the training glue's.
    full = json.load(open(run_dir / "scores_test_alexnet_full.json"))
    quick = json.load(open(run_dir / "scores_test.json"))
    assert full["psnr"] == pytest.approx(float(row["psnr"]), rel=1e-5)
    assert full["psnr"] == pytest.approx(quick["psnr"], rel=1e-6)
    assert full["ssim"] == pytest.approx(quick["ssim"], rel=1e-6)


@pytest.mark.slow
@needs_alexnet_weights
def test_saved_outputs_rescore_identically_with_the_folder_command(run_dir, tmp_path):
    """outputs_<split>/ holds the translations under the references' names: `python -m metrics` agrees."""
    results = tmp_path / "metrics.csv"
    assert evaluate.main([str(run_dir), "--results", str(results), "--metrics", "psnr,ssim,lpips"]) == 0
    row = _rows(results)[0]
    refs = tmp_path / "refs"
    refs.mkdir()
    pairs = open_source("synthetic").load("test", 32)
    for photo, name in zip(pairs.photos, pairs.names):
        Image.fromarray(photo).save(refs / f"{name}.png")
    assert sorted(os.listdir(run_dir / "outputs_test")) == sorted(os.listdir(refs))
    done = subprocess.run([sys.executable, "-m", "metrics", str(run_dir / "outputs_test"), str(refs), "--metrics",
                           "psnr,ssim,lpips", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    folder = json.loads(done.stdout)
    for key in ("psnr", "ssim", "lpips"):
        assert folder[key] == pytest.approx(float(row[key]), rel=1e-5), key


@pytest.mark.slow
def test_rows_are_replaced_per_model_variant_and_split_and_other_columns_kept(run_dir, tmp_path):
    results = tmp_path / "metrics.csv"
    with open(results, "w") as f:  # a table with a row of another model and a column of the user's own
        f.write("model,variant,split,resolution,n_images,psnr,data,note\n"
                "cvae,paper,test,256x256,106,12.5,facades,kept\n")
    args = [str(run_dir), "--results", str(results), "--metrics", "psnr,ssim"]
    assert evaluate.main(args) == 0
    assert evaluate.main(args) == 0  # scored again: replaced, not duplicated
    assert evaluate.main([*args, "--split", "val"]) == 0  # another split: a row of its own
    rows = _rows(results)
    assert [(r["model"], r["split"]) for r in rows] == [("cvae", "test"), ("pix2pix", "test"), ("pix2pix", "val")]
    assert rows[0]["note"] == "kept" and rows[0]["psnr"] == "12.5"
    assert rows[1]["fid"] == "" and rows[1]["lpips"] == ""  # metrics not asked for stay empty, not made up


def test_the_row_records_the_run_folder_relative_to_the_workspace(run_dir, tmp_path, monkeypatch):
    """metrics.csv names no folder of the machine: a run inside the workspace (the repository, or the current folder
    when installed) by its path from there, a run elsewhere by its name."""
    results = tmp_path / "metrics.csv"
    args = [str(run_dir), "--results", str(results), "--metrics", "psnr"]
    monkeypatch.setattr(results_table, "workspace_root", lambda: str(run_dir.parent.parent))
    assert evaluate.main(args) == 0
    assert _rows(results)[0]["run_dir"] == f"{run_dir.parent.name}/run"
    monkeypatch.setattr(results_table, "workspace_root", lambda: str(tmp_path))  # the run lies outside
    assert evaluate.main(args) == 0
    assert _rows(results)[0]["run_dir"] == "run"
    assert json.load(open(run_dir / "scores_test_full.json"))["run_dir"] == "run"


class ColourStatistics:
    """A stand-in FID/KID backbone without weights: each image's per-channel mean (or standard deviation)."""

    dim = 3

    def __init__(self, name, statistic):
        self.name, self.statistic = name, statistic

    def features(self, images):
        return self.statistic(np.asarray(images, np.float64), axis=(1, 2))


def test_two_backbones_keep_a_scores_file_each_and_compare_finds_its_own(run_dir, tmp_path):
    """The same outputs scored on two FID/KID backbones are two rows of the table and two scores files in the run
    (the second does not overwrite the first); compare.py reuses the file of the backbone it asks for."""
    from argparse import Namespace

    from train_scripts import compare

    results = tmp_path / "metrics.csv"
    for net in (ColourStatistics("colour-mean", np.mean), ColourStatistics("colour-std", np.std)):
        evaluate.update_results(str(results), evaluate.evaluate_run(str(run_dir), metrics="fid", backbone=net,
                                                                    save_images=False))
    rows = _rows(results)
    assert [r["backbone"] for r in rows] == ["colour-mean", "colour-std"] and rows[0]["fid"] != rows[1]["fid"]
    for row in rows:
        saved = json.load(open(run_dir / f"scores_test_{row['backbone']}_full.json"))
        assert saved["backbone"] == row["backbone"] and saved["fid"] == pytest.approx(float(row["fid"]), rel=1e-5)
    # an unknown backbone name would make compare.py's evaluate.py subprocess fail: the file is reused, not rescored
    args = Namespace(split="test", metrics="fid", backbone="colour-mean", out=str(tmp_path))
    reused = compare.score_run(str(run_dir), args, str(tmp_path / "score.log"), "pix2pix")
    assert reused["backbone"] == "colour-mean" and reused["fid"] == pytest.approx(float(rows[0]["fid"]), rel=1e-5)


def _cli(*args):
    done = subprocess.run([sys.executable, "train_scripts/evaluate.py", *map(str, args)],
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    done = _cli(tmp_path, "--results", tmp_path / "m.csv")
    assert done.returncode == 2 and f"{tmp_path}: not a run folder (no config.json)" in done.stderr


@pytest.mark.slow
def test_missing_and_corrupt_weights_are_named(run_dir, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken, ignore=shutil.ignore_patterns("backup", "tensorboard", "samples"))
    weights = broken / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    done = _cli(broken, "--results", tmp_path / "m.csv", "--metrics", "psnr")
    assert done.returncode == 2 and f"{weights}: cannot load" in done.stderr
    weights.unlink()
    done = _cli(broken, "--results", tmp_path / "m.csv", "--metrics", "psnr")
    assert done.returncode == 2 and f"{weights}: missing" in done.stderr
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.slow
def test_unknown_split_and_foreign_table_fail_before_scoring_and_lose_nothing(run_dir, tmp_path):
    done = _cli(run_dir, "--split", "holdout", "--results", tmp_path / "m.csv", "--metrics", "psnr")
    assert done.returncode == 2 and "holdout" in done.stderr

    foreign = tmp_path / "other.csv"
    foreign.write_text("name,score\nx,1\n")
    done = _cli(run_dir, "--results", foreign, "--metrics", "psnr")
    assert done.returncode == 2 and f"{foreign}: not a results table" in done.stderr
    assert foreign.read_text() == "name,score\nx,1\n"


@pytest.mark.slow
def test_a_run_of_another_resolution_is_scored_at_its_own(run_dir, tmp_path):
    """The config decides the resolution: weights trained at 32 px are never loaded into a 64 px network."""
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("backup", "tensorboard", "samples"))
    config = json.load(open(moved / "config.json"))
    config["config"]["image_size"] = 64  # a config edited by hand to another resolution
    (moved / "config.json").write_text(json.dumps(config))
    done = _cli(moved, "--results", tmp_path / "m.csv", "--metrics", "psnr")
    assert done.returncode == 2 and "model.weights.h5: cannot load" in done.stderr


@pytest.mark.slow
def test_test_time_settings_score_the_same_weights_under_a_variant_of_their_own(run_dir, tmp_path):
    """--set changes how the trained model translates (here Pix2Pix's dropout at test time), nothing it learnt:
    a row, outputs and scores of their own beside the run's."""
    results = tmp_path / "metrics.csv"
    base = [str(run_dir), "--results", str(results), "--metrics", "psnr,ssim"]
    assert evaluate.main(base) == 0
    assert evaluate.main([*base, "--set", "dropout_at_test=true"]) == 0
    plain, dropout = _rows(results)
    assert plain["variant"] == "quick batch_size=2 image_size=32 ndf=8 ngf=8"
    assert dropout["variant"] == "quick batch_size=2 dropout_at_test=True image_size=32 ndf=8 ngf=8"
    assert dropout["train_steps"] == plain["train_steps"] and dropout["psnr"] != plain["psnr"]
    tagged = run_dir / "outputs_test_dropout_at_test=True"
    assert sorted(os.listdir(tagged)) == sorted(os.listdir(run_dir / "outputs_test"))
    name = sorted(os.listdir(tagged))[0]
    assert not np.array_equal(np.asarray(Image.open(tagged / name)),
                              np.asarray(Image.open(run_dir / "outputs_test" / name)))
    saved = json.load(open(run_dir / "scores_test_dropout_at_test=True_full.json"))
    assert saved["psnr"] == pytest.approx(float(dropout["psnr"]), rel=1e-5)


@pytest.mark.slow
def test_test_time_noise_comes_from_the_runs_seed_whatever_ran_before(run_dir, tmp_path):
    """Scoring with dropout at test twice, the global random generators drawn and reseeded in between, writes the
    same outputs: the noise comes from the run's seed, and loading reseeds nothing."""
    import random

    import keras

    def outputs():
        row = evaluate.evaluate_run(str(run_dir), metrics="psnr", inference=["dropout_at_test=true"])
        folder = run_dir / "outputs_test_dropout_at_test=True"
        return row["psnr"], [np.asarray(Image.open(folder / name)) for name in sorted(os.listdir(folder))]

    psnr, images = outputs()
    keras.utils.set_random_seed(99)
    random.random(), np.random.rand()
    again_psnr, again = outputs()
    assert again_psnr == psnr and all(np.array_equal(a, b) for a, b in zip(images, again))


@pytest.mark.slow
def test_settings_that_need_retraining_or_bad_values_are_refused(run_dir, tmp_path):
    for setting, message in (("lr=1", "can change only these test-time settings: dropout_at_test"),
                             ("dropout_at_test=maybe", "must be true or false, not 'maybe'"),
                             ("ngf", "(as KEY=VALUE)")):
        done = _cli(run_dir, "--results", tmp_path / "m.csv", "--metrics", "psnr", "--set", setting)
        assert done.returncode == 2 and f"error: --set {setting}: " in done.stderr and message in done.stderr
    assert not (tmp_path / "m.csv").exists()


def test_diffusion_sampler_settings_are_typed_and_checked():
    from data.errors import I2IError
    from train_scripts.training.config import parse_inference_settings
    from train_scripts.training.models import ddim

    parsed = parse_inference_settings(ddim.SPEC, ["sampler=ddpm", "sampling-steps=50", "eta=0.5", "clip_denoised=0"])
    assert parsed == {"sampler": "ddpm", "sampling_steps": 50, "eta": 0.5, "clip_denoised": False}
    assert evaluate.settings_suffix(parsed) == "_clip_denoised=False_eta=0.5_sampler=ddpm_sampling_steps=50"
    for bad, message in (("sampler=euler", "choose sampler from ddim, ddpm"),
                         ("sampling_steps=5.5", "must be an integer"),
                         ("widths=8", "sampler, sampling_steps, eta, guidance, clip_denoised, sample_seed")):
        with pytest.raises(I2IError, match=message):
            parse_inference_settings(ddim.SPEC, [bad])


def test_an_old_table_without_interval_columns_loads_and_keeps_its_rows(tmp_path):
    """A metrics.csv written before the interval columns: its rows survive an update, with empty intervals."""
    results = tmp_path / "metrics.csv"
    old_columns = COLUMNS[:COLUMNS.index("run_dir") + 1]
    assert "psnr_lo" not in old_columns and "n_resamples" not in old_columns
    with open(results, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(old_columns)
        for model, psnr in (("cvae", "12.5"), ("cgan", "13.25")):
            values = {"model": model, "variant": "paper", "split": "test", "resolution": "256x256",
                      "n_images": "106", "psnr": psnr, "fid": "201.5", "backbone": "fid-inception", "data": "facades"}
            writer.writerow([values.get(c, "") for c in old_columns])
    assert len(read_results(results)) == 2
    new = {"model": "pix2pix", "variant": "paper", "split": "test", "resolution": "256x256", "n_images": 106,
           "psnr": 14.0, "psnr_lo": 13.5, "psnr_hi": 14.5, "fid": 190.0, "fid_lo": 180.25, "fid_hi": 199.5,
           "backbone": "fid-inception", "data": "facades", "n_resamples": 1000}
    table = update_results(results, new)
    rows = _rows(results)
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["model"], r["psnr"], r["fid"]) for r in rows] == [("cvae", "12.5", "201.5"), ("cgan", "13.25", "201.5"),
                                                                 ("pix2pix", "14", "190")]
    assert all(rows[i][c] == "" for i in (0, 1) for c in ("psnr_lo", "psnr_hi", "fid_lo", "n_resamples"))
    assert (rows[2]["psnr_lo"], rows[2]["psnr_hi"], rows[2]["fid_hi"], rows[2]["n_resamples"]) == (
        "13.5", "14.5", "199.5", "1000")
    printed = format_results(table).splitlines()
    assert "14 [13.5, 14.5]" in printed[3] and "190 [180.2, 199.5]" in printed[3]
    assert "12.5" in printed[1] and "[" not in printed[1]
