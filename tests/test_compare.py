"""compare.py end to end on a tiny setup: models trained a few steps on a small A|B folder of synthetic facades,
scored, reported; a rerun reuses the finished runs."""

import csv
import math
import os
import subprocess
import sys

import pytest
from PIL import Image

from run_helpers import needs_alexnet_weights
from train_scripts import compare
from train_scripts.training import registry, report

# compare.py runs every model through the same train and score commands; these three cover what differs between them:
# two variants of one script (kept apart in the table) and the latent DDIM, which trains its autoencoder first. A model
# without a discriminator (the CVAE) is compared in tests/test_compare_seeds.py. Each model's own train and score paths
# have their own tests.
MODELS = ["pix2pix-lsgan", "pix2pix-bce", "ddim-latent"]
N_SAMPLES = 3
N_VAL = 10


# The rerun of test_a_second_run_reuses_finished_runs: a variant (flags beyond the preset) and the model trained in
# two stages; the other models are reused by the same code (every relaunched train script costs a TensorFlow start).
RERUN_MODELS = ["pix2pix-lsgan", "ddim-latent"]


def _args(out, models=MODELS, results="results"):
    return ["--models", ",".join(models), "--data", str(out / "data"), "--image-size", "32", "--steps", "2",
            "--batch-size", "2", "--split", "val", "--backbone", "alexnet", "--samples", str(N_SAMPLES),
            "--out", str(out / results), "--runs", str(out / "runs")]


def _compare(repo, out, *args):
    return subprocess.run([sys.executable, "train_scripts/compare.py", *_args(out, *args)], cwd=repo,
                          capture_output=True, text=True, timeout=1200, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, repo_dir):
    from data.synthetic import write_ab_folder

    out = tmp_path_factory.mktemp("compare")
    write_ab_folder(out / "data", size=32, counts={"train": 8, "val": N_VAL})
    done = _compare(repo_dir, out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done


@pytest.mark.slow
@needs_alexnet_weights
def test_every_output_is_written_with_one_finite_row_per_model(first_run):
    out, done = first_run
    results = out / "results"
    for name in ("metrics.csv", "comparison.png", "loss_curves.png", "report.html"):
        assert (results / name).stat().st_size > 0, name
    with open(results / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    named = {"ddim-latent": "ddim-latent"}  # evaluate.py names the DDIM on latents apart from the pixel DDIM
    assert sorted(r["model"] for r in rows) == sorted(named.get(m, registry.COMPARISON_MODELS[m][0]) for m in MODELS)
    assert len({(r["model"], r["variant"]) for r in rows}) == len(MODELS)  # pix2pix bce and lsgan apart
    for row in rows:
        assert row["split"] == "val" and row["n_images"] == str(N_VAL) and row["resolution"] == "32x32"
        assert row["train_steps"] == "2" and row["backbone"] == "alexnet"
        for key in ("psnr", "ssim", "fid", "kid_mean", "kid_std", "lpips"):
            assert math.isfinite(float(row[key])), (row["model"], key)
    report = (results / "report.html").read_text()
    assert all(f"<h3>{name}</h3>" in report for name in MODELS) and "data:image/png;base64" in report
    assert Image.open(results / "comparison.png").size[0] > Image.open(results / "comparison.png").size[1]


@pytest.mark.slow
@needs_alexnet_weights
def test_comparison_grid_has_a_row_per_sample_and_a_column_per_model_plus_two(first_run):
    out, _ = first_run
    outputs = {n: str(out / "runs" / n / "outputs_val") for n in MODELS}
    columns, titles = report.comparison_columns(MODELS, outputs, str(out / "data"), "val", 32, N_SAMPLES)
    assert titles == ["label map", "ground truth", *MODELS]
    assert len(columns) == len(MODELS) + 2
    assert all(c.shape == (N_SAMPLES, 32, 32, 3) for c in columns)
    assert not all((columns[2] == c).all() for c in columns[3:])  # the models' columns are their own outputs


@pytest.mark.slow
@needs_alexnet_weights
def test_a_second_run_reuses_finished_runs(first_run, repo_dir):
    out, _ = first_run
    weights = {n: os.path.getmtime(out / "runs" / n / "model.weights.h5") for n in RERUN_MODELS}
    again = _compare(repo_dir, out, RERUN_MODELS, "results-again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already finished") == len(RERUN_MODELS) + 1  # + the latent DDIM's autoencoder
    assert "training ->" not in again.stdout  # no train script started again
    assert again.stdout.count("scores of this checkpoint already there") == len(RERUN_MODELS)
    assert weights == {n: os.path.getmtime(out / "runs" / n / "model.weights.h5") for n in RERUN_MODELS}
    scores = ("psnr", "ssim", "fid", "kid_mean", "lpips")
    tables = []
    for results in ("results", "results-again"):
        with open(out / results / "metrics.csv", newline="") as f:
            tables.append({(r["model"], r["variant"]): [r[k] for k in scores] for r in csv.DictReader(f)})
    assert len(tables[1]) == len(RERUN_MODELS) and all(tables[0][key] == row for key, row in tables[1].items())


@pytest.mark.slow
@needs_alexnet_weights
def test_the_latent_ddim_is_trained_on_its_own_autoencoder_and_counts_its_time(first_run):
    """Its row's wall time is its DDIM's plus its autoencoder's; folders of runs skip the autoencoder."""
    from train_scripts.demo.runs import runs_of
    from train_scripts.training.run_folder import RunFolder

    out, _ = first_run
    runs = out / "runs"
    config = RunFolder(str(runs / "ddim-latent")).read_config()["config"]
    assert config["latent"] == str(runs / "ddim-latent-autoencoder")
    assert RunFolder(str(runs / "ddim-latent-autoencoder")).read_config()["model"] == "autoencoder"
    trained = sum(float(s["wall_time_s"]) for name in ("ddim-latent", "ddim-latent-autoencoder")
                  for s in RunFolder(str(runs / name)).sessions())
    with open(out / "results" / "metrics.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["model"] == "ddim-latent")
    assert float(row["wall_time_s"]) == pytest.approx(trained, abs=0.2)
    assert "latent=ddim-latent-autoencoder" in row["variant"]
    assert "<h3>ddim-latent-autoencoder</h3>" in (out / "results" / "report.html").read_text()
    assert [os.path.basename(p) for p in runs_of(str(runs))] == MODELS


def test_the_latent_ddim_budget_is_split_between_its_autoencoder_and_its_ddim(tmp_path):
    args = compare.build_parser().parse_args(["--preset", "paper", "--data", "facades", "--budget-minutes", "240",
                                              "--runs", str(tmp_path)])
    (ae, ae_dir, ae_cmd), (ddim, ddim_dir, ddim_cmd) = compare.train_stages("ddim-latent", args)
    flag = lambda cmd, name: cmd[cmd.index(name) + 1]  # noqa: E731
    assert (ae, ddim) == ("ddim-latent-autoencoder", "ddim-latent")
    assert os.path.basename(ae_cmd[1]) == "autoencoder.py" and os.path.basename(ddim_cmd[1]) == "ddim.py"
    assert (flag(ae_cmd, "--budget-minutes"), flag(ddim_cmd, "--budget-minutes")) == ("60", "180")
    assert (flag(ae_cmd, "--preset"), flag(ddim_cmd, "--preset")) == ("paper", "latent")
    assert flag(ddim_cmd, "--latent") == ae_dir == flag(ae_cmd, "--out") and flag(ddim_cmd, "--out") == ddim_dir
    assert flag(ae_cmd, "--image-size") == flag(ddim_cmd, "--image-size") == "256"
    quick = compare.build_parser().parse_args(["--runs", str(tmp_path), "--latent-share", "0.5",
                                               "--budget-minutes", "10"])
    (_, _, ae_cmd), (_, _, ddim_cmd) = compare.train_stages("ddim-latent", quick)
    assert "--no-clip-denoised" in ddim_cmd and flag(ae_cmd, "--budget-minutes") == flag(ddim_cmd, "--budget-minutes")
    assert [stage for stage, _, _ in compare.train_stages("pix2pix-bce", args)] == ["pix2pix-bce"]


def test_unknown_model_and_missing_budget_are_refused(tmp_path, repo_dir):
    for extra, message in ((["--models", "pix2pix,vqgan"], "unknown model(s) pix2pix, vqgan"),
                           (["--preset", "budget"], "--preset budget needs --budget-minutes"),
                           (["--latent-share", "1"], "--latent-share 1: the autoencoder's share")):
        done = subprocess.run([sys.executable, "train_scripts/compare.py", *extra, "--out", str(tmp_path)],
                              cwd=repo_dir, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_the_default_runs_folder_is_named_by_every_flag_that_changes_the_training_config():
    """So that a comparison with another seed, batch size, ... trains anew instead of meeting runs of another config."""
    parse = compare.build_parser().parse_args
    base = ["--data", "../shared/data/facades", "--preset", "budget", "--budget-minutes", "20"]
    variants = [[], ["--seed", "1"], ["--batch-size", "2"], ["--image-size", "32"], ["--steps", "100"],
                ["--log-every", "50"], ["--budget-minutes", "8"], ["--latent-share", "0.5"]]
    folders = [compare.default_runs_dir(parse(base + extra)) for extra in variants]
    assert len(set(folders)) == len(variants)
    assert os.path.basename(folders[0]) == "compare-facades-budget-20min"
