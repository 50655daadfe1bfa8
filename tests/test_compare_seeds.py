"""compare.py --seeds: every model trained once per training seed in a run folder of its own, a metrics.csv row per
model and seed, each metric's mean ± std over seeds; a rerun reuses the runs; tables written before the seed column
keep their rows; bad --seeds values are refused."""

import csv
import json
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from train_scripts import compare
from train_scripts.training import comparison, results

MODELS = ["cvae", "pix2pix-bce"]  # the two smallest quick networks
SEEDS = [0, 1]
RUNS = [(name, seed) for seed in SEEDS for name in MODELS]
# a table of an older release: no seed column, one row of a run trained elsewhere
OLD_TABLE = ("model,variant,split,resolution,n_images,psnr,ssim,fid,kid_mean,kid_std,lpips,backbone,train_steps,"
             "wall_time_s,commit,data,kid_subset_size,run_dir\n"
             "pix2pix,quick budget_minutes=20.0 seed=1,val,64x64,100,13.2554,0.297617,113.848,3.18711,0,0.26632,"
             "alexnet,8280,1202.2,a4aa66234128,facades,100,runs/pix2pix-bce\n")


def _args(out, models=MODELS):
    return ["--models", ",".join(models), "--seeds", ",".join(map(str, SEEDS)), "--data", str(out / "data"),
            "--image-size", "32", "--steps", "2", "--batch-size", "2", "--split", "val", "--metrics", "psnr,ssim",
            "--samples", "2", "--out", str(out / "results"), "--runs", str(out / "runs")]


def _compare(repo, out, models=MODELS):
    return subprocess.run([sys.executable, "train_scripts/compare.py", *_args(out, models)], cwd=repo,
                          capture_output=True, text=True, timeout=1200, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, repo_dir):
    from data.synthetic import write_ab_folder

    out = tmp_path_factory.mktemp("compare_seeds")
    write_ab_folder(out / "data", size=32, counts={"train": 8, "val": 4})
    (out / "results").mkdir()
    (out / "results" / "metrics.csv").write_text(OLD_TABLE)
    done = _compare(repo_dir, out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done


def _weights(path):
    """Every array of a Keras weights file, by its path in the file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow
def test_every_model_is_trained_once_per_seed_in_a_folder_of_its_own(first_run):
    out, _ = first_run
    runs = out / "runs"
    folders = [p.name for p in runs.iterdir() if p.is_dir()]
    # + the paired comparisons' reference photos and label maps
    assert sorted(folders) == sorted([f"{n}-seed{s}" for n, s in RUNS] + ["references-val-32px", "labels-val-256px"])
    for name in MODELS:
        configs = [json.load(open(runs / f"{name}-seed{s}" / "config.json"))["config"] for s in SEEDS]
        assert [c["seed"] for c in configs] == SEEDS
        assert configs[0] == {**configs[1], "seed": configs[0]["seed"]}  # nothing else differs
        first, second = (_weights(runs / f"{name}-seed{s}" / "model.weights.h5") for s in SEEDS)
        assert first.keys() == second.keys() and first
        assert any(not np.array_equal(first[k], second[k]) for k in first), f"{name}: both seeds trained alike"


@pytest.mark.slow
def test_one_row_per_model_and_seed_and_the_old_row_kept(first_run):
    out, _ = first_run
    rows = _rows(out / "results" / "metrics.csv")
    assert rows[0]["variant"] == "quick budget_minutes=20.0 seed=1" and rows[0]["seed"] == ""  # the old table's
    assert rows[0]["psnr"] == "13.2554" and rows[0]["run_dir"] == "runs/pix2pix-bce"
    new = rows[1:]
    named = {"cvae": "cvae", "pix2pix-bce": "pix2pix"}
    assert [(r["model"], r["seed"]) for r in new] == [(named[n], str(s)) for n, s in RUNS]
    assert [os.path.basename(r["run_dir"]) for r in new] == [f"{n}-seed{s}" for n, s in RUNS]
    for name in MODELS:  # the seeds of one model: one variant, without the seed in it
        variants = {r["variant"] for r in new if r["model"] == named[name]}
        assert len(variants) == 1 and "seed" not in variants.pop()
    assert all(math.isfinite(float(r["psnr"])) and math.isfinite(float(r["ssim"])) for r in new)


def _summary_cells(text):
    """{model: {"n": ..., "psnr": (mean, std), "ssim": (mean, std)}} from compare.py's printed summary."""
    lines = text.split("mean ± std over seeds", 1)[1].splitlines()
    cells = {}
    for line in lines:
        parts = line.split()
        if parts and parts[0] in MODELS:  # model n mean ± std mean ± std
            cells[parts[0]] = {"n": int(parts[1]), "psnr": (float(parts[2]), float(parts[4])),
                               "ssim": (float(parts[5]), float(parts[7]))}
    return cells


@pytest.mark.slow
def test_the_summary_is_the_mean_and_sample_std_of_the_rows_over_seeds(first_run):
    out, done = first_run
    rows = _rows(out / "results" / "metrics.csv")[1:]
    printed = _summary_cells(done.stdout)
    report = (out / "results" / "report.html").read_text()
    assert sorted(printed) == sorted(MODELS) and "<h2>Over seeds</h2>" in report
    for name, model in (("cvae", "cvae"), ("pix2pix-bce", "pix2pix")):
        assert printed[name]["n"] == 2
        for metric in ("psnr", "ssim"):
            a, b = (float(r[metric]) for r in rows if r["model"] == model)
            mean, std = (a + b) / 2, abs(a - b) / math.sqrt(2)  # n = 2: sqrt(((a-m)^2 + (b-m)^2) / (2 - 1))
            shown_mean, shown_std = printed[name][metric]
            assert shown_mean == pytest.approx(mean, rel=1e-3)
            assert shown_std == pytest.approx(std, rel=1e-3, abs=1e-5 * abs(mean))  # the CSV's 6 digits
            assert std > 0
            assert f"{shown_mean:.4g} ± {shown_std:.4g}" in report
    assert "Samples (training seed 0)" in report
    assert all(f"<h3>{name}-seed{seed}</h3>" in report for name, seed in RUNS)


@pytest.mark.slow
def test_each_model_is_compared_with_its_best_rival_on_the_same_outputs(first_run):
    """paired-comparisons.csv: each seed's two models, paired image by image; its scores are the ones evaluate.py
    put in metrics.csv for that seed, A - B is their difference and lies in its interval; the report shows it and
    every score with its interval."""
    out, _ = first_run
    paired = pd.read_csv(out / "results" / "paired-comparisons.csv")
    assert sorted(zip(paired["seed"], paired["metric"])) == [(s, m) for s in SEEDS for m in ("psnr", "ssim")]
    assert {frozenset(pair) for pair in zip(paired["model_a"], paired["model_b"])} == {frozenset(MODELS)}
    rows = {(r["model"], r["seed"]): r for r in _rows(out / "results" / "metrics.csv")[1:]}
    names = {"cvae": "cvae", "pix2pix-bce": "pix2pix"}
    for p in paired.itertuples():
        a, b = (float(rows[names[m], str(p.seed)][p.metric]) for m in (p.model_a, p.model_b))
        assert (p.score_a, p.score_b) == (pytest.approx(a, rel=1e-5), pytest.approx(b, rel=1e-5))
        # a and b as metrics.csv has them, 6 significant digits each: their difference is known to 1e-5 of their size
        assert p.diff == pytest.approx(a - b, abs=1e-5 * (abs(a) + abs(b))) and p.lo <= p.diff <= p.hi
        assert 0 < p.p <= 1 and 0 <= p.a_better <= 1 and p.n_images == 4
    report = (out / "results" / "report.html").read_text()
    assert "Each model against its best-scoring rival" in report
    psnr = rows["cvae", "0"]
    assert f"{float(psnr['psnr']):.4g} [{float(psnr['psnr_lo']):.4g}, {float(psnr['psnr_hi']):.4g}]" in report


def test_best_rivals_by_the_first_metric_every_model_has():
    rows = {"a": {"fid": 50.0, "psnr": 12.0}, "b": {"fid": 40.0, "psnr": 11.0}, "c": {"fid": 45.0, "psnr": 13.0}}
    assert comparison.best_rivals(rows) == ({"a": "b", "b": "c", "c": "b"}, "fid")
    rows["c"]["fid"] = None  # FID missing for one model: PSNR (higher is better) decides
    assert comparison.best_rivals(rows) == ({"a": "c", "b": "c", "c": "a"}, "psnr")
    assert comparison.best_rivals({"a": {"fid": 1.0}}) == ({}, None)


def test_paired_references_are_the_photos_at_the_run_size_and_the_label_maps_at_the_scored_size(tmp_path):
    """The paired segmentation score uses the label maps evaluate.py scores against (256 px for a smaller run), so a
    paired seg_miou equals the run's own."""
    from PIL import Image

    from data.sources import open_source
    from data.synthetic import write_ab_folder

    write_ab_folder(tmp_path / "data", size=32, counts={"train": 1, "val": 3})
    references, labels = comparison.write_references(str(tmp_path / "runs"), str(tmp_path / "data"), "val", 32)
    assert (os.path.basename(references), os.path.basename(labels)) == ("references-val-32px", "labels-val-256px")
    source = open_source(str(tmp_path / "data"))
    for folder, size, kind in ((references, 32, "photos"), (labels, 256, "labels")):
        pairs = source.load("val", size)
        stems = [os.path.splitext(os.path.basename(n))[0] for n in pairs.names]
        written = np.stack([np.asarray(Image.open(os.path.join(folder, f"{s}.png"))) for s in stems])
        np.testing.assert_array_equal(written, getattr(pairs, kind))


@pytest.mark.slow
def test_a_second_invocation_reuses_every_finished_run(first_run, repo_dir):
    """The rerun asks for one model (each relaunched train script costs a TensorFlow start): its runs of every seed
    are reused, its rows replaced, the other model's rows kept."""
    out, _ = first_run
    runs = out / "runs"
    weights = {(n, s): os.path.getmtime(runs / f"{n}-seed{s}" / "model.weights.h5") for n, s in RUNS}
    before = _rows(out / "results" / "metrics.csv")
    again = _compare(repo_dir, out, MODELS[:1])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("already finished") == len(SEEDS)
    assert "training ->" not in again.stdout  # no train script started again
    assert again.stdout.count("scores of this checkpoint already there") == len(SEEDS)
    for name, seed in RUNS:
        with open(runs / f"{name}-seed{seed}" / "sessions.jsonl") as f:
            assert len(f.readlines()) == 1, (name, seed)
    assert weights == {(n, s): os.path.getmtime(runs / f"{n}-seed{s}" / "model.weights.h5") for n, s in RUNS}
    after = _rows(out / "results" / "metrics.csv")
    assert len(after) == 1 + len(RUNS)  # replaced, not added
    scores = ("model", "seed", "psnr", "ssim")
    assert sorted([r[k] for k in scores] for r in after) == sorted([r[k] for k in scores] for r in before)


# ------------------------------------------------------------------------------------------ no training

def test_seed_summary_by_hand():
    rows = {("cvae", 0): {"psnr": 10.0, "ssim": 0.5}, ("pix2pix-bce", 0): {"psnr": 11.0, "ssim": 0.2},
            ("cvae", 1): {"psnr": 12.0, "ssim": 0.7}, ("pix2pix-bce", 1): {"psnr": 14.0, "ssim": None},
            ("cvae", 2): {"psnr": 17.0, "ssim": 0.6}}
    summary = comparison.seed_summary(rows)
    assert list(summary.index) == ["cvae", "pix2pix-bce"]
    # cvae psnr: mean 13, squared deviations 9 + 1 + 16 = 26 over n - 1 = 2
    assert summary.loc["cvae", ("psnr", "mean")] == pytest.approx(13.0)
    assert summary.loc["cvae", ("psnr", "std")] == pytest.approx(math.sqrt(13.0))
    assert summary.loc["cvae", ("ssim", "std")] == pytest.approx(0.1)
    assert summary.loc["pix2pix-bce", ("psnr", "std")] == pytest.approx(3 / math.sqrt(2))
    assert summary.loc["pix2pix-bce", ("ssim", "n")] == 1 and math.isnan(summary.loc["pix2pix-bce", ("ssim", "std")])
    text = comparison.format_summary(summary)
    assert list(text.columns) == ["n", "psnr", "ssim"]  # metrics scored for no model left out
    assert text.loc["cvae"].tolist() == [3, "13 ± 3.606", "0.6 ± 0.1"]
    assert text.loc["pix2pix-bce"].tolist() == [2, "12.5 ± 2.121", "0.2 (n=1)"]
    one = comparison.format_summary(comparison.seed_summary({("ddim", 4): {"psnr": 12.34567}}))
    assert one.loc["ddim"].tolist() == [1, "12.35"]  # one seed: no std


def test_stages_and_folders_of_a_seed(tmp_path):
    parse = compare.build_parser().parse_args
    args = parse(["--preset", "paper", "--budget-minutes", "240", "--runs", str(tmp_path), "--seeds", "0,3"])
    flag = lambda cmd, name: cmd[cmd.index(name) + 1]  # noqa: E731
    (ae, ae_dir, ae_cmd), (ddim, ddim_dir, ddim_cmd) = compare.train_stages("ddim-latent", args, 3)
    assert (ae, ddim) == ("ddim-latent-autoencoder-seed3", "ddim-latent-seed3")
    assert (ae_dir, ddim_dir) == (str(tmp_path / ae), str(tmp_path / ddim))
    assert flag(ae_cmd, "--seed") == flag(ddim_cmd, "--seed") == "3" and flag(ddim_cmd, "--latent") == ae_dir
    # without --seeds: today's folder, and --seed as given (or none: the preset's)
    old = parse(["--runs", str(tmp_path), "--seed", "5"])
    [(stage, folder, cmd)] = compare.train_stages("pix2pix-bce", old)
    assert (stage, folder, flag(cmd, "--seed")) == ("pix2pix-bce", str(tmp_path / "pix2pix-bce"), "5")
    [(_, _, cmd)] = compare.train_stages("cvae", parse(["--runs", str(tmp_path)]))
    assert "--seed" not in cmd
    # the default runs folder holds every seed's runs: adding a seed later reuses the others
    base = ["--data", "facades", "--preset", "budget", "--budget-minutes", "20"]
    assert (compare.default_runs_dir(parse(base + ["--seeds", "0,1"]))
            == compare.default_runs_dir(parse(base + ["--seeds", "0,1,2"])) == compare.default_runs_dir(parse(base)))


@pytest.mark.parametrize("extra, message", [
    (["--seeds", ""], "--seeds '': no seed given"),
    (["--seeds", "0,x"], "--seeds '0,x': 'x' is not a non-negative integer"),
    (["--seeds", "0,,1"], "--seeds '0,,1': an empty entry is not a non-negative integer"),
    (["--seeds", "1.5"], "'1.5' is not a non-negative integer"),
    (["--seeds", "0,1,0"], "--seeds '0,1,0': seed 0 given more than once"),
    (["--seed", "1", "--seeds", "0,1"], "--seed and --seeds together"),
])
def test_bad_seeds_are_refused_before_anything_is_trained(tmp_path, capsys, extra, message):
    # a missing data folder: if the seeds got through, the training would stop at once, not train the quick preset
    code = compare.main([*extra, "--models", "cvae", "--data", str(tmp_path / "no-data"), "--runs",
                         str(tmp_path / "runs"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------- results tables and seeds

def _row(seed, psnr):
    return {"model": "pix2pix", "variant": "quick budget_minutes=20.0 seed=1", "split": "val", "resolution": "64x64",
            "backbone": "alexnet", "data": "facades", "psnr": psnr, "seed": seed}


def test_an_old_table_without_seed_column_is_updated_without_losing_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(OLD_TABLE)
    assert results.read_results(str(path)).shape[0] == 1  # it loads
    # same model, variant, data, split, resolution and backbone as the old row: seeded rows come beside it
    results.update_results(str(path), _row(0, 10.0))
    results.update_results(str(path), _row(1, 11.0))
    results.update_results(str(path), _row(0, 12.0))  # seed 0 scored again: replaced
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert table[["seed", "psnr"]].values.tolist() == [["", "13.2554"], ["1", "11"], ["0", "12"]]
    assert table.loc[0, "fid"] == "113.848" and list(table.columns) == list(results.COLUMNS)
    # an empty seed matches an empty seed only: a row of no known seed replaces the old row
    results.update_results(str(path), _row(None, 9.0))
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert table[["seed", "psnr"]].values.tolist() == [["1", "11"], ["0", "12"], ["", "9"]]


def test_the_seed_is_a_column_not_part_of_the_variant():
    from train_scripts.training.config import COMMON_DEFAULTS
    from train_scripts.training.models import pix2pix

    config = {**COMMON_DEFAULTS, **pix2pix.SPEC.presets["quick"], "seed": 5}
    assert results.variant_of(pix2pix.SPEC, "quick", config) == "quick"
    assert results.variant_of(pix2pix.SPEC, "quick", {**config, "ngf": 8}) == "quick ngf=8"
