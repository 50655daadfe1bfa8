"""Train, score and report every model: one command for the study's comparison.

    python train_scripts/compare.py                                   # quick presets, synthetic facades
    python train_scripts/compare.py --data facades --preset budget --budget-minutes 10 --split val
    python train_scripts/compare.py --seeds 0,1,2                     # every model once per training seed

Each model is trained by its own train script in a subprocess (a finished run of the same config is
reused, an interrupted one resumed), scored by ``evaluate.py`` on the split, and then ``--out`` gets
``metrics.csv``, ``comparison.png`` (label map | ground truth | one column per model),
``loss_curves.png`` (one panel per model) and ``report.html`` (all of it on one offline page).
With ``--seeds``, each model is trained once per seed in ``<runs>/<model>-seed<k>/``, ``metrics.csv`` gets a row
per model and seed, and the printed table and the report add each metric's mean ± standard deviation over seeds;
the figures show the first seed's runs.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pandas as pd

from data.errors import I2IError
from train_scripts.training.config import REPO_ROOT, workspace_root
from train_scripts.training.registry import COMPARISON_MODELS, train_script

PRESETS = {
    # preset -> (train scripts' preset, default image size)
    "quick": ("quick", 64),
    "budget": ("quick", 64),  # the quick networks, trained on --data for --budget-minutes each
    "paper": ("paper", 256),
}
# ddim-latent: comparison preset -> (autoencoder preset, DDIM preset, DDIM flags). The quick autoencoder's latents
# are a quarter of the photo's size (16x16 at 64 px): the quick DDIM gets three levels at twice its widths, as the
# latent preset does, and no clipping of its x_0 estimates to the photos' [-1, 1], which latents exceed.
LATENT_PRESETS = {
    "quick": ("quick", "quick", ["--widths", "32,64,128", "--no-clip-denoised"]),
    "budget": ("quick", "quick", ["--widths", "32,64,128", "--no-clip-denoised"]),
    "paper": ("paper", "latent", []),
}
BUDGET_STEP_CAP = 1_000_000  # budget runs stop on time, long before this
SUMMARIZED = ("psnr", "ssim", "fid", "kid_mean", "lpips", "seg_miou", "seg_acc")  # the metrics averaged over seeds
IMAGE_METRICS = "psnr,ssim,fid,kid,lpips"


class CompareError(I2IError):
    """A comparison cannot run: bad flags, or a training or scoring subprocess failed (names its log)."""


def parse_models(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPARISON_MODELS]
    if unknown or not names:
        raise CompareError(f"unknown model(s) {', '.join(unknown) or '(none)'}; "
                           f"choose from {','.join(COMPARISON_MODELS)}")
    return names


def parse_seeds(text):
    """``--seeds 0,1,2``: distinct non-negative integers, in the order given."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise CompareError(f"--seeds {text!r}: no seed given; give training seeds separated by commas, e.g. 0,1,2")
    bad = [repr(p) if p else "an empty entry" for p in parts if not re.fullmatch(r"[0-9]+", p)]
    if bad:
        raise CompareError(f"--seeds {text!r}: {', '.join(bad)} is not a non-negative integer")
    seeds = [int(p) for p in parts]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise CompareError(f"--seeds {text!r}: seed {', '.join(map(str, repeated))} given more than once")
    return seeds


def run_name(name, seed):
    """The run folder of ``name`` (a model, or the autoencoder stage of one) trained with seed ``seed`` of
    ``--seeds``: ``<name>-seed<k>``; without ``--seeds`` (``seed`` None) just ``<name>``, as before seeds."""
    return name if seed is None else f"{name}-seed{seed}"


def autoencoder_dir(runs, name, seed=None):
    """The autoencoder run of the latent model ``name`` (for ``--seeds`` seed ``seed``) in the runs folder ``runs``."""
    return os.path.join(runs, run_name(f"{name}-autoencoder", seed))


def train_stages(name, args, seed=None):
    """The trainings of one model of the comparison, in order: ``[(stage name, run folder, command line)]`` -- one,
    or for ``ddim-latent`` its autoencoder on ``--latent-share`` of the budget, then the DDIM on the rest.
    ``seed``: a seed of ``--seeds`` (run folders of its own); None: ``--seed``, if given, in ``<runs>/<name>/``."""
    script, variant = COMPARISON_MODELS[name]
    preset, default_size = PRESETS[args.preset]
    out = os.path.join(args.runs, run_name(name, seed))
    train_seed = args.seed if seed is None else seed
    if name != "ddim-latent":
        return [(run_name(name, seed), out,
                 script_command(script, preset, variant, out, args, args.budget_minutes, train_seed))]
    ae_preset, ddim_preset, flags = LATENT_PRESETS[args.preset]
    ae_out = autoencoder_dir(args.runs, name, seed)
    share = args.budget_minutes * args.latent_share
    return [(run_name(f"{name}-autoencoder", seed), ae_out,
             script_command("autoencoder", ae_preset, [], ae_out, args, share, train_seed)),
            (run_name(name, seed), out, script_command(script, ddim_preset, [*variant, *flags, "--latent", ae_out],
                                                       out, args, args.budget_minutes - share, train_seed))]


def script_command(script, preset, variant, out, args, budget_minutes, seed=None):
    """The command line of one train script at the comparison's data, size, split, steps and ``seed`` (None: the
    script's preset's)."""
    size = args.image_size or PRESETS[args.preset][1]
    cmd = [sys.executable, train_script(script), "--preset", preset, *variant,
           "--data", args.data, "--image-size", str(size), "--eval-split", args.split, "--out", out, "--verbose", "2"]
    if budget_minutes:
        cmd += ["--budget-minutes", f"{budget_minutes:g}"]
    steps = args.steps or (BUDGET_STEP_CAP if args.preset == "budget" else None)
    if steps:
        cmd += ["--steps", str(steps)]
    interval = args.log_every or args.steps  # else the script's preset intervals
    if interval:
        cmd += ["--log-every", str(interval), "--checkpoint-every", str(interval), "--sample-every", str(interval)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return cmd


def run_streaming(cmd, log_path, prefix):
    """Run ``cmd``, copying its output to ``log_path`` and, prefixed, to our stdout. Returns the exit code."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"), PYTHONUNBUFFERED="1")
    with open(log_path, "a") as log:
        log.write(f"\n$ {shlex.join(cmd)}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=workspace_root())
        try:
            for line in proc.stdout:
                log.write(line)
                if _worth_showing(line):
                    print(f"  [{prefix}] {line.rstrip()}", flush=True)
            return proc.wait()
        except KeyboardInterrupt:  # the child got the same SIGINT: let it save its checkpoint
            proc.wait()
            raise


def _worth_showing(line):
    text = line.strip()
    if not text or text.startswith(("I0000", "W0000", "E0000", "WARNING: All log")):
        return False
    return not text.startswith(("*", " ")) or text.startswith("* ")


def score_run(run_dir, args, log_path, prefix):
    """Score a run with evaluate.py unless its saved scores are newer than its weights and cover the request."""
    from metrics.backbones import default_backbone
    from train_scripts.training.results import COLUMNS, scores_file_name
    from train_scripts.training.run_folder import RunFolder

    wanted = set(args.metrics.split(","))
    backbone = (args.backbone or default_backbone()) if wanted & {"fid", "kid"} else None  # evaluate.py's choice
    scores = os.path.join(run_dir, scores_file_name(args.split, backbone=backbone))
    weights = os.path.join(run_dir, "model.weights.h5")
    if os.path.exists(scores) and os.path.getmtime(scores) >= os.path.getmtime(weights):
        with open(scores) as f:
            saved = json.load(f)
        if wanted <= set(saved.get("metrics", [])) and (args.backbone in (None, saved.get("backbone"))
                                                        or "fid" not in wanted and "kid" not in wanted):
            print(f"  [{prefix}] scores of this checkpoint already there ({scores})")
            if saved.get("seed") is None:  # scored before evaluate.py recorded the seed: the run's config has it
                saved["seed"] = RunFolder(run_dir).read_config()["config"].get("seed")
            return {k: saved.get(k) for k in COLUMNS}
    cmd = [sys.executable, os.path.join(REPO_ROOT, "train_scripts", "evaluate.py"), run_dir, "--split", args.split,
           "--metrics", args.metrics, "--results", os.path.join(args.out, "metrics.csv")]
    if args.backbone:
        cmd += ["--backbone", args.backbone]
    if run_streaming(cmd, log_path, prefix) != 0:
        raise CompareError(f"scoring {run_dir} failed; see {log_path}")
    with open(scores) as f:
        saved = json.load(f)
    return {k: saved.get(k) for k in COLUMNS}


# ------------------------------------------------------------------------------------------ over seeds

def seed_summary(rows):
    """Each metric's mean, sample standard deviation (ddof=1) and number of scores over the seeds of each model.

    ``rows``: ``{(model, seed): results row}``. Returns a table indexed by model (in the order of ``rows``) with
    columns ``(metric, "mean" | "std" | "n")`` for the metrics of SUMMARIZED; the std of one score is NaN.
    """
    names = [name for name, _ in rows]
    scores = pd.DataFrame([{m: row.get(m) for m in SUMMARIZED} for row in rows.values()], columns=list(SUMMARIZED))
    scores = scores.apply(pd.to_numeric, errors="coerce")
    summary = scores.groupby(pd.Series(names, name="model"), sort=False).agg(["mean", "std", "count"])
    return summary.rename(columns={"count": "n"}, level=1)


def format_summary(summary):
    """:func:`seed_summary` as text cells: ``n`` (seeds per model) and ``mean ± std`` per metric (4 significant
    digits; the mean alone for one score; ``(n=k)`` added where a metric has fewer scores than the model has seeds).
    Metrics scored for no model are left out."""
    seeds = summary.xs("n", axis=1, level=1).max(axis=1).astype(int)
    table = pd.DataFrame({"n": seeds})
    for metric in SUMMARIZED:
        mean, std, n = (summary[metric, stat] for stat in ("mean", "std", "n"))
        if not n.any():
            continue
        table[metric] = [
            "" if k == 0 else f"{m:.4g}" + (f" ± {sd:.4g}" if k > 1 else "") + (f" (n={k})" if k < total else "")
            for m, sd, k, total in zip(mean, std, n.astype(int), seeds)]
    return table


# ------------------------------------------------------------------------------------------ paired comparisons

# the metric that names each model's best-scoring rival: the first of these that was scored (lower is better first)
RIVAL_METRICS = (("fid", False), ("kid_mean", False), ("lpips", False), ("psnr", True), ("ssim", True))


def best_rivals(rows):
    """``{model: its best-scoring rival}`` by the first metric of RIVAL_METRICS that every model has, and that metric;
    ``rows``: ``{model: results row}`` (one seed). Empty with fewer than two models."""
    names = list(rows)
    for metric, higher_is_better in RIVAL_METRICS:
        values = {n: rows[n].get(metric) for n in names}
        if len(names) > 1 and all(v is not None and v == v for v in values.values()):
            ranked = sorted(names, key=lambda n: -values[n] if higher_is_better else values[n])
            return {n: next(r for r in ranked if r != n) for n in names}, metric
    return {}, None


def write_references(runs, args):
    """The split's photos and label maps at the comparison's size as PNGs named like evaluate.py's outputs, in
    ``<runs>/references-<split>/`` and ``<runs>/labels-<split>/`` (the paired comparisons' references and, for the
    segmentation score, the label maps the outputs were translated from); each written once. Returns both folders."""
    from data.sources import open_source
    from train_scripts.training.results import save_outputs

    size = args.image_size or PRESETS[args.preset][1]
    folders = os.path.join(runs, f"references-{args.split}"), os.path.join(runs, f"labels-{args.split}")
    if not all(os.path.isdir(folder) for folder in folders):
        pairs = open_source(args.data).load(args.split, size)
        for folder, images in zip(folders, (pairs.photos, pairs.labels)):
            if not os.path.isdir(folder):
                save_outputs(folder + ".tmp", images, pairs.names)
                os.replace(folder + ".tmp", folder)
    return folders


def paired_comparisons(rows, run_dirs, args):
    """Every model against its best-scoring rival on the same label maps (``metrics.comparison.compare_folders``:
    A - B, its paired-bootstrap interval, the p-value, the share of images on which A is better), as a table with
    one row per pair and metric; each unordered pair is compared once."""
    from metrics.comparison import compare_folders
    from metrics.score import SEGMENTATION, SEGMENTATION_SCORES, parse_metrics
    from metrics.weights import keras_cache_dir

    metrics = parse_metrics(args.metrics)
    paired = [m for m in metrics if m != SEGMENTATION] + (list(SEGMENTATION_SCORES) if SEGMENTATION in metrics else [])
    rivals, metric = best_rivals(rows)
    if not rivals:
        return None
    references, labels = write_references(args.runs, args)
    table, done = [], set()
    for name, rival in rivals.items():
        if frozenset((name, rival)) in done:
            continue
        done.add(frozenset((name, rival)))
        print(f"paired comparison: {name} against {rival} (best {metric} of the others)", flush=True)
        result = compare_folders(os.path.join(run_dirs[name], f"outputs_{args.split}"),
                                 os.path.join(run_dirs[rival], f"outputs_{args.split}"), references,
                                 metrics=metrics, backbone=args.backbone, label_dir=labels,
                                 cache_dir=os.path.join(keras_cache_dir(), "i2i_features"))
        for m in paired:
            r = result[m]
            table.append({"model_a": name, "model_b": rival, "metric": m, "score_a": r["a"], "score_b": r["b"],
                          "diff": r["diff"], "lo": r["lo"], "hi": r["hi"], "p": r["p"], "a_better": r["a_better"],
                          "n_images": result["n_images"], "n_resamples": result["n_resamples"]})
    return pd.DataFrame(table)


def format_paired(table):
    """:func:`paired_comparisons` as text cells: ``A - B [lo, hi]``, the p-value and the share of images A wins."""
    def cell(v, digits=4):
        return "" if v is None or v != v else f"{v:.{digits}g}"

    return pd.DataFrame({
        "A": table["model_a"], "B": table["model_b"], "metric": table["metric"],
        "score A": table["score_a"].map(cell), "score B": table["score_b"].map(cell),
        "A - B [95 % interval]": [f"{cell(d)} [{cell(lo)}, {cell(hi)}]" if cell(lo) else cell(d)
                                  for d, lo, hi in zip(table["diff"], table["lo"], table["hi"])],
        "p": table["p"].map(lambda v: cell(v, 2)),
        "A better on": table["a_better"].map(lambda v: "" if v is None or v != v else f"{100 * v:.0f} %"),
    })


# ---------------------------------------------------------------------------------------------- figures

def comparison_columns(names, run_dirs, args, n_samples):
    """Columns of the study's comparison figure: label map, ground truth, then each model's outputs.

    Rows are ``n_samples`` images spread evenly over the split, read back from each run's
    ``outputs_<split>/`` (written by evaluate.py) so the figure shows exactly what was scored.
    """
    import numpy as np

    from data.images import read_image
    from data.sources import open_source, resize

    size = args.image_size or PRESETS[args.preset][1]
    pairs = open_source(args.data).load(args.split, size)
    picks = np.linspace(0, len(pairs) - 1, min(n_samples, len(pairs))).round().astype(int)
    stems = [os.path.splitext(os.path.basename(pairs.names[i]))[0] for i in picks]
    columns = [pairs.labels[picks], pairs.photos[picks]]
    for name in names:
        folder = os.path.join(run_dirs[name], f"outputs_{args.split}")
        columns.append(np.stack([resize(read_image(os.path.join(folder, s + ".png")), size) for s in stems]))
    return columns, ["label map", "ground truth", *names]


def comparison_figure(path, names, run_dirs, args, n_samples, seed=None):
    from train_scripts.training.plots import image_grid

    columns, titles = comparison_columns(names, run_dirs, args, n_samples)
    size = columns[0].shape[1]
    trained = "" if seed is None else f", training seed {seed}"
    image_grid(path, columns, titles, title=f"{args.data} '{args.split}', {size} px, preset {args.preset}{trained}")


def loss_figure(path, names, run_dirs):
    """One panel per model with every training loss term of its log.csv."""
    import math

    import matplotlib.pyplot as plt

    from train_scripts.training.plots import loss_columns
    from train_scripts.training.run_folder import read_log

    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        log = read_log(os.path.join(run_dirs[name], "log.csv"))
        keys, _ = loss_columns(log)
        steps = [r["step"] for r in log]
        for key in keys:
            values = [r[key] for r in log]
            ax.plot(steps, values, lw=1, label=key)
        positive = all(r[k] > 0 for r in log for k in keys if not math.isnan(r[k]))
        if positive and keys:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, ncol=2)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- report

def write_report(path, args, runs, run_dirs, rows, summary, figures, command, started, wall, paired=None):
    """The offline report page: ``runs`` are the ``(model, seed)`` trained, ``rows`` their results rows by run,
    ``summary`` the :func:`format_summary` table over seeds (None without ``--seeds``), ``paired`` the
    :func:`paired_comparisons` of the first seed (None: none made)."""
    import base64
    import html

    from train_scripts.training.run_folder import RunFolder, environment

    def img(file):
        with open(file, "rb") as f:
            return f'<img src="data:image/png;base64,{base64.b64encode(f.read()).decode()}" style="max-width:100%">'

    shown = ("seed", "psnr", "ssim", "fid", "kid_mean", "kid_std", "lpips", "seg_miou", "seg_acc", "backbone",
             "resolution", "n_images", "train_steps", "wall_time_s")
    names = list(dict.fromkeys(name for name, _ in runs))
    seeds = list(dict.fromkeys(seed for _, seed in runs))
    env = environment()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>i2i-compare report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}pre{background:#f6f6f6;padding:6px;font-size:12px;overflow:auto}</style>",
        "</head><body>",
        f"<h1>i2i-compare: {html.escape(args.data)}, preset {args.preset}, scored on '{args.split}'</h1>",
        f"<p>Command: <code>{html.escape(command)}</code><br>Generated {started} in {wall / 60:.1f} min on "
        f"{html.escape(env['device']['cpu'])} ({env['device']['cpu_count']} cores, GPUs: "
        f"{html.escape(', '.join(env['device']['gpus']) or 'none')}); commit {html.escape(env['commit'])}; "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}.</p>",
    ]
    if args.preset == "budget" or args.budget_minutes:
        latent = (f" ddim-latent's budget is its autoencoder's {args.budget_minutes * args.latent_share:g} minutes "
                  f"plus its DDIM's {args.budget_minutes * (1 - args.latent_share):g}." if "ddim-latent" in names
                  else "")
        parts.append(f"<p>Every model trained for the same wall-clock budget of {args.budget_minutes:g} minutes "
                     f"(training steps, periodic validation and sample grids included; scoring not).{latent}</p>")
    from train_scripts.training.results import recorded_run_dir, with_intervals

    table = with_intervals(pd.DataFrame([rows[run] for run in runs], index=[run_name(*run) for run in runs]))
    table = table.reindex(columns=list(shown))
    parts.append("<h2>Metrics</h2>" + table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="", border=0))
    n_resamples = next((rows[run].get("n_resamples") for run in runs if rows[run].get("n_resamples")), None)
    parts.append("<p>PSNR, SSIM, seg mIoU and seg acc (the facade parser's reading of each output against its label "
                 "map): higher is better; FID, KID, LPIPS: lower is better. FID/KID with the "
                 "<code>alexnet</code> backbone are not on the scale of published (Inception) values."
                 + (f" [lo, hi]: 95 % percentile bootstrap interval over the scored images ({n_resamples} resamples):"
                    " it covers the choice of test images, not the training seed." if n_resamples else "")
                 + "</p>")
    if paired is not None and len(paired):
        parts.append("<h2>Each model against its best-scoring rival</h2>" + format_paired(paired).to_html(
            border=0, index=False))
        parts.append("<p>The two models' outputs of the same label maps, paired image by image "
                     "(<code>python -m metrics compare</code>): A - B with its paired-bootstrap 95 % interval; p: "
                     "sign-flip permutation test (PSNR, SSIM, LPIPS) or paired bootstrap (FID, KID) of no "
                     "difference; the share of images on which A scores better. The rival is the other model with "
                     "the best FID (else KID, LPIPS, PSNR, SSIM)" + ("" if seeds[0] is None else
                                                                       f", training seed {seeds[0]}") + ".</p>")
    if summary is not None:
        parts.append("<h2>Over seeds</h2>" + summary.to_html(border=0))
        parts.append(f"<p>Mean ± sample standard deviation (ddof=1) over the n training seeds "
                     f"{', '.join(map(str, seeds))}; one seed: the mean alone. The spread covers training "
                     "randomness only (initial weights, data order, augmentation, noise), not the choice of test "
                     "images.</p>")
    first = "" if seeds[0] is None else f" (training seed {seeds[0]})"
    parts += [f"<h2>Samples{first}</h2>", img(figures["comparison"]), f"<h2>Training losses{first}</h2>",
              img(figures["losses"]), "<h2>Runs</h2>"]
    sections = []  # (title, run folder): every run, a latent model's autoencoder before it
    for name, seed in runs:
        if name == "ddim-latent":
            sections.append((run_name(f"{name}-autoencoder", seed), autoencoder_dir(args.runs, name, seed)))
        sections.append((run_name(name, seed), run_dirs[name, seed]))
    for name, run_dir in sections:
        run = RunFolder(run_dir)
        saved = run.read_config()
        sessions = run.sessions()
        trained = sum(float(s.get("wall_time_s") or 0) for s in sessions)
        last = max((s.get("end_step") or s.get("start_step") or 0 for s in sessions), default=0)
        parts.append(f"<h3>{name}</h3><p>{html.escape(recorded_run_dir(run.path))}: {len(sessions)} session(s), "
                     f"{trained / 60:.1f} min of training, last step {last}.</p>")
        parts.append("<details><summary>sessions</summary><pre>" + html.escape(
            "\n".join(f"{s.get('started')} {s.get('status')} steps {s.get('start_step')}->{s.get('end_step')} "
                      f"{s.get('wall_time_s')} s  commit {s.get('commit')}\n  $ {s.get('command')}" for s in sessions))
            + "</pre></details>")
        parts.append("<details><summary>config</summary><pre>" + html.escape(json.dumps(saved, indent=1))
                     + "</pre></details>")
    parts.append("</body></html>")
    from train_scripts.training.run_folder import atomic_write_text

    atomic_write_text(path, "\n".join(parts))


# ------------------------------------------------------------------------------------------ command line

def build_parser():
    from metrics.backbones import BACKBONES

    p = argparse.ArgumentParser(prog="python train_scripts/compare.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="synthetic", help="synthetic | facades | PATH")
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                   help="quick: each script's quick preset; budget: the quick networks for --budget-minutes each; "
                        "paper: the study's settings")
    p.add_argument("--budget-minutes", type=float, default=0.0,
                   help="wall-clock training budget per model (required by --preset budget)")
    p.add_argument("--models", default=",".join(COMPARISON_MODELS), help="comma-separated subset of %(default)s")
    p.add_argument("--latent-share", type=float, default=0.25,
                   help="ddim-latent: the share of its --budget-minutes that trains its autoencoder (the rest trains "
                        "the DDIM)")
    p.add_argument("--split", default="test", help="split scored (the shared facades have val only: use val)")
    p.add_argument("--image-size", type=int, default=None, help="resolution of every model (default: 64, paper 256)")
    p.add_argument("--steps", type=int, default=None, help="override every model's training steps")
    p.add_argument("--log-every", type=int, default=None, help="with --steps or budget: logging/checkpoint interval")
    p.add_argument("--batch-size", type=int, default=None, help="override every model's batch size")
    p.add_argument("--seed", type=int, default=None,
                   help="one training seed for every model, in run folders <runs>/<model>/ (default: the presets', 0)")
    p.add_argument("--seeds", default=None, metavar="K,K,...",
                   help="train every model once per seed, in <runs>/<model>-seed<k>/; a metrics.csv row per seed and "
                        "each metric's mean ± std over seeds (not with --seed)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated metrics (default: {IMAGE_METRICS}, and segmentation when the facade parser "
                        "is in metrics/weights/facade_parser/); the paired comparisons leave segmentation out")
    p.add_argument("--backbone", choices=BACKBONES, default=None, help="FID/KID backbone (default: best available)")
    p.add_argument("--samples", type=int, default=6, help="rows of the comparison figure")
    p.add_argument("--runs", default=None, help="folder of the runs (default runs/compare-<data>-<preset>[-...])")
    p.add_argument("--out", default=os.path.join(workspace_root(), "results"), help="folder of the tables and figures")
    return p


def default_runs_dir(args):
    data = os.path.basename(os.path.normpath(args.data)) or "data"
    parts = [f"compare-{data}-{args.preset}"]
    if args.image_size:
        parts.append(f"{args.image_size}px")
    if args.budget_minutes:
        parts.append(f"{args.budget_minutes:g}min")
    if args.latent_share != build_parser().get_default("latent_share") and "ddim-latent" in args.models:
        parts.append(f"latent{args.latent_share:g}")
    if args.steps:
        parts.append(f"{args.steps}steps")
    if args.log_every:
        parts.append(f"log{args.log_every}")
    if args.batch_size:
        parts.append(f"batch{args.batch_size}")
    if args.seed is not None:
        parts.append(f"seed{args.seed}")
    return os.path.join(workspace_root(), "runs", "-".join(parts))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.metrics is None:
        from metrics.facade_parser import parser_available

        args.metrics = IMAGE_METRICS + (",segmentation" if parser_available() else "")
    command = shlex.join(["python", "train_scripts/compare.py", *(sys.argv[1:] if argv is None else argv)])
    started = datetime.datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    try:
        names = parse_models(args.models)
        if args.seeds is not None and args.seed is not None:
            raise CompareError("--seed and --seeds together: give the seeds with --seeds only (--seeds N for one)")
        seeds = parse_seeds(args.seeds) if args.seeds is not None else [None]  # None: --seed, in <runs>/<model>/
        if args.preset == "budget" and not args.budget_minutes:
            raise CompareError("--preset budget needs --budget-minutes M (the same training time for every model)")
        if not 0 < args.latent_share < 1:
            raise CompareError(f"--latent-share {args.latent_share:g}: the autoencoder's share of a latent model's "
                               "budget must be between 0 and 1")
        args.runs = os.path.abspath(args.runs or default_runs_dir(args))
        args.out = os.path.abspath(args.out)
        os.makedirs(args.runs, exist_ok=True)
        os.makedirs(args.out, exist_ok=True)
        from train_scripts.training.results import read_results, update_results

        read_results(os.path.join(args.out, "metrics.csv"))  # refuse a foreign table before hours of training
        runs = [(name, seed) for seed in seeds for name in names]  # a whole comparison per seed, one after another
        run_dirs = {(name, seed): os.path.join(args.runs, run_name(name, seed)) for name, seed in runs}
        rows = {}
        for i, (name, seed) in enumerate(runs, 1):
            label = run_name(name, seed)
            log_path = os.path.join(args.runs, f"{label}.log")
            t = time.perf_counter()
            for stage, run_dir, cmd in train_stages(name, args, seed):
                print(f"[{i}/{len(runs)}] {stage}: training -> {run_dir}", flush=True)
                code = run_streaming(cmd, log_path, stage)
                if code == 130:
                    raise KeyboardInterrupt
                if code != 0:
                    raise CompareError(f"training {stage} failed (exit {code}); its output is in {log_path}")
            print(f"[{i}/{len(runs)}] {label}: trained ({time.perf_counter() - t:.0f} s this session); scoring "
                  f"on '{args.split}'", flush=True)
            rows[name, seed] = score_run(run_dirs[name, seed], args, log_path, label)
            update_results(os.path.join(args.out, "metrics.csv"), rows[name, seed])
        summary = format_summary(seed_summary(rows)) if args.seeds is not None else None
        figures = {"comparison": os.path.join(args.out, "comparison.png"),
                   "losses": os.path.join(args.out, "loss_curves.png")}
        first = {name: run_dirs[name, seeds[0]] for name in names}  # the figures show the first seed's runs
        comparison_figure(figures["comparison"], names, first, args, args.samples, seeds[0])
        loss_figure(figures["losses"], names, first)
        paired = paired_comparisons({name: rows[name, seeds[0]] for name in names}, first, args)
        if paired is not None:
            paired.to_csv(os.path.join(args.out, "paired-comparisons.csv"), index=False, float_format="%.6g")
        write_report(os.path.join(args.out, "report.html"), args, runs, run_dirs, rows, summary, figures, command,
                     started, time.perf_counter() - t0, paired)
        from train_scripts.training.results import format_results

        print("\n" + format_results([rows[run] for run in runs]))
        if paired is not None:
            print("\neach model against its best-scoring rival (paired over the same label maps):")
            print(format_paired(paired).to_string(index=False))
        if summary is not None:
            print(f"\nmean ± std over seeds {','.join(map(str, seeds))} (sample std, ddof=1; training randomness "
                  "only):")
            print(summary.to_string())
        print(f"\nwrote {args.out}/metrics.csv, comparison.png, loss_curves.png, report.html"
              + (", paired-comparisons.csv" if paired is not None else ""))
        return 0
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted. Run the same command again: finished runs are reused, the others resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
