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
the figures show the first seed's runs. Every model is also compared with its best-scoring rival of the same seed,
image by image (``paired-comparisons.csv``, a row per seed, pair and metric).
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

from data.errors import I2IError
from train_scripts.training import config as train_config
from train_scripts.training.comparison import (
    format_paired,
    format_summary,
    paired_comparisons,
    seed_summary,
    write_references,
)
from train_scripts.training.config import REPO_ROOT, workspace_root
from train_scripts.training.registry import COMPARISON_MODELS, spec_for, train_script
from train_scripts.training.report import comparison_figure, loss_figure, write_report
from train_scripts.training.run_folder import RunFolder

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
    size = image_size(args)
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


def finished_earlier(cmd):
    """Has the run of ``cmd`` (a train script's command line) finished its training with this very config? Its train
    script would only reload it: a TensorFlow start and a model build saved per run of a repeated comparison."""
    spec = spec_for(os.path.splitext(os.path.basename(cmd[1]))[0])
    args = train_config.build_parser(spec).parse_args(cmd[2:])
    try:
        config, _ = train_config.resolve_config(spec, args)
    except I2IError:  # the train script says what is wrong
        return False
    return RunFolder(args.out).finished_with(spec.name, config)


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


def image_size(args):
    """The resolution every model of the comparison trains and is scored at."""
    return args.image_size or PRESETS[args.preset][1]


def outputs_dir(run_dir, args):
    """The folder of a run's outputs on the scored split, as evaluate.py writes them."""
    return os.path.join(run_dir, f"outputs_{args.split}")


def paired_tables(names, seeds, rows, run_dirs, args):
    """The paired comparisons (``training.comparison.paired_comparisons``) of every training seed, one table, with a
    ``seed`` column under ``--seeds``; None with fewer than two models."""
    import pandas as pd

    references, labels = write_references(args.runs, args.data, args.split, image_size(args))
    tables = [paired_comparisons({name: rows[name, seed] for name in names},
                                 {name: outputs_dir(run_dirs[name, seed], args) for name in names}, references, labels,
                                 args.metrics, backbone=args.backbone, seed=seed) for seed in seeds]
    tables = [table for table in tables if table is not None]
    return pd.concat(tables, ignore_index=True) if tables else None


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
                if finished_earlier(cmd):
                    print(f"[{i}/{len(runs)}] {stage}: already finished with this config, reused: {run_dir}",
                          flush=True)
                    continue
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
        size = image_size(args)
        figures = {"comparison": os.path.join(args.out, "comparison.png"),
                   "losses": os.path.join(args.out, "loss_curves.png")}
        first = {name: run_dirs[name, seeds[0]] for name in names}  # the figures show the first seed's runs
        trained = "" if seeds[0] is None else f", training seed {seeds[0]}"
        comparison_figure(figures["comparison"], names, {n: outputs_dir(d, args) for n, d in first.items()}, args.data,
                          args.split, size, args.samples,
                          title=f"{args.data} '{args.split}', {size} px, preset {args.preset}{trained}")
        loss_figure(figures["losses"], names, first)
        paired = paired_tables(names, seeds, rows, run_dirs, args)
        if paired is not None:
            paired.to_csv(os.path.join(args.out, "paired-comparisons.csv"), index=False, float_format="%.6g")
        sections = []  # every run trained, a latent model's autoencoder before it
        for name, seed in runs:
            if name == "ddim-latent":
                sections.append((run_name(f"{name}-autoencoder", seed), autoencoder_dir(args.runs, name, seed)))
            sections.append((run_name(name, seed), run_dirs[name, seed]))
        write_report(os.path.join(args.out, "report.html"), args, names, {run_name(*run): rows[run] for run in runs},
                     sections, figures, command, started, time.perf_counter() - t0, summary, paired, seeds)
        from train_scripts.training.results import format_results

        print("\n" + format_results([rows[run] for run in runs]))
        if paired is not None:
            print("\neach model against its best-scoring rival of the same training seed (paired over the same label "
                  "maps):")
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
