"""The results table (``results/metrics.csv``: one row per model, variant, data, split, resolution, backbone and
seed, with intervals) and what a row records of its run: the variant's name and the training record (steps, wall time,
commits); the generated images saved beside a run. Written by ``evaluate.py``, read by ``compare.py``."""

import math
import os

import pandas as pd

from data.errors import I2IError
from train_scripts.training.config import COMMON_DEFAULTS, workspace_root
from train_scripts.training.models.autoencoder import autoencoder_run
from train_scripts.training.run_folder import atomic_write_text, read_log

COLUMNS = ("model", "variant", "split", "resolution", "n_images", "psnr", "ssim", "fid", "kid_mean", "kid_std",
           "lpips", "backbone", "train_steps", "wall_time_s", "commit",
           # beyond the first columns: what else identifies the row and how to read it
           "data", "seed", "kid_subset_size", "run_dir",
           # 95 % percentile bootstrap intervals over the images (metrics.score.interval_scores); kid_*: of kid_mean
           "psnr_lo", "psnr_hi", "ssim_lo", "ssim_hi", "fid_lo", "fid_hi", "kid_lo", "kid_hi", "lpips_lo", "lpips_hi",
           "n_resamples",
           # the segmentation score of the outputs against their label maps (metrics.segmentation), with intervals
           "seg_miou", "seg_acc", "seg_miou_lo", "seg_miou_hi", "seg_acc_lo", "seg_acc_hi")
INTERVALS = {"psnr": "psnr", "ssim": "ssim", "fid": "fid", "kid_mean": "kid", "lpips": "lpips", "seg_miou": "seg_miou",
             "seg_acc": "seg_acc"}  # column: prefix of its interval columns
# The runs of one variant with other training seeds are rows side by side. A table written before the backbone or
# seed were recorded reads "" there; an empty seed (unknown) matches only an empty seed: such a row is kept.
KEY = ("model", "variant", "data", "split", "resolution", "backbone", "seed")
LATER_KEY = ("backbone", "seed")  # columns of KEY that an older table may lack
# settings that change how a run is logged or executed, not what it learns: left out of the variant name
BOOKKEEPING = {"data", "steps", "log_every", "checkpoint_every", "keep_every", "sample_every", "val_split",
               "val_images", "eval_split", "jit_compile", "steps_per_execution", "strategy", "fid_every", "fid_images",
               "fid_backbone"}
# the training seed has a column of its own (in KEY): out of the variant, the seeds of one variant share its name
NOT_IN_VARIANT = BOOKKEEPING | {"seed"}
DEFAULT_RESULTS = os.path.join(workspace_root(), "results", "metrics.csv")


def variant_of(spec, preset, config):
    """The run's preset plus the settings that differ from it, e.g. ``quick gan_loss=lsgan``.

    Steps, logging intervals and the seed are not part of it (``train_steps`` and ``seed`` are columns of their own).
    """
    base = {**COMMON_DEFAULTS, **spec.presets.get(preset, {})}
    shown = {"latent": lambda path: os.path.basename(os.path.normpath(path))}  # the autoencoder run, by name
    changed = [f"{k}={shown.get(k, str)(config[k])}" for k in sorted(config)
               if k not in NOT_IN_VARIANT and base.get(k) != config[k]]
    return " ".join([preset, *changed])


def training_record(run, step=None):
    """(steps trained, training wall time in s, commit that trained it) from the run's sessions; up to ``step`` (a
    snapshot's): its wall time from ``log.csv``, the commits of the sessions that trained before it."""
    sessions = run.sessions()
    if not sessions:
        return step or 0, 0.0, "unknown"
    if step is None:
        steps = max((s.get("end_step") or s.get("start_step") or 0) for s in sessions)
        wall = sum(float(s.get("wall_time_s") or 0.0) for s in sessions)
    else:
        sessions = [s for s in sessions if (s.get("start_step") or 0) < step] or sessions[:1]
        rows = [r for r in read_log(run.file("log.csv")) if r.get("step") == step]
        steps, wall = step, rows[-1]["wall_time_s"] if rows and not math.isnan(rows[-1]["wall_time_s"]) else math.nan
    commits = sorted({s.get("commit", "unknown") for s in sessions})
    return steps, round(wall, 1), ",".join(c[:12] + ("+dirty" if c.endswith("+dirty") else "") for c in commits)


def recorded_run_dir(path):
    """A run folder as the results table records it: relative to the workspace root (``runs/pix2pix``; see
    :func:`train_scripts.training.config.workspace_root`), or only its name when it lies outside, so that a table
    names no folder of the machine it was scored on."""
    path = os.path.abspath(path)
    root = os.path.abspath(workspace_root())
    if os.path.commonpath([path, root]) == root:
        return os.path.relpath(path, root)
    return os.path.basename(path)


def scores_file_name(split, suffix="", backbone=None):
    """The run's scores file of one results row: ``scores_<split>[<settings suffix>][_<backbone>]_full.json``; the
    FID/KID backbone (None when neither was scored) keeps the scores of the same outputs on two backbones apart, as
    the table's rows are."""
    return f"scores_{split}{suffix}{'_' + backbone if backbone else ''}_full.json"


def run_training_record(run, config, step=None):
    """:func:`training_record`, with a latent DDIM's autoencoder's wall time and commits added (its training is part
    of the model's)."""
    steps, wall, commit = training_record(run, step)
    if config.get("latent"):
        _, autoencoder_wall, autoencoder_commit = training_record(autoencoder_run(config["latent"]))
        wall = round(wall + autoencoder_wall, 1)
        commit = ",".join(sorted(set(commit.split(",")) | set(autoencoder_commit.split(","))))
    return steps, wall, commit


def save_outputs(folder, images, names):
    """Write generated images as PNGs named like their references (atomically per file)."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for image, name in zip(images, names):
        stem = os.path.splitext(os.path.basename(name))[0]
        path = os.path.join(folder, stem + ".png")
        Image.fromarray(image).save(path + ".tmp", format="PNG")
        os.replace(path + ".tmp", path)


def read_results(path):
    """A results CSV as a table of strings (empty if there is no file); a file that is not one raises I2IError and
    is left untouched."""
    if not os.path.exists(path):
        return pd.DataFrame(columns=list(COLUMNS), dtype=str)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise I2IError(f"{path}: cannot read the results table ({e}); move it away or pass --results") from None
    missing = [k for k in KEY if k not in table.columns and k not in LATER_KEY]
    if missing:
        raise I2IError(f"{path}: not a results table of this toolkit (no column {', '.join(missing)}); "
                       "move it away or pass --results")
    return table


def update_results(path, row):
    """Add ``row`` to the table at ``path``, replacing the row with the same model/variant/data/split/resolution/
    backbone/seed (so one run's FID/KID on several backbones, and the runs of several seeds, are rows side by side).

    Columns the file has beyond ours are kept. Written atomically: an interruption leaves the old table.
    """
    table = read_results(path)
    table = table.assign(**{k: "" for k in KEY if k not in table})
    new = pd.DataFrame([{**dict.fromkeys(KEY, ""), **{k: _cell(v) for k, v in row.items()}}])  # a key not given: ""
    same = (table[list(KEY)] == new.loc[0, list(KEY)]).all(axis=1)
    table = pd.concat([table[~same], new], ignore_index=True).fillna("")
    columns = list(COLUMNS) + sorted(set(table.columns) - set(COLUMNS))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, table.reindex(columns=columns, fill_value="").to_csv(index=False, lineterminator="\n"))
    return table


def _cell(value):
    """A value as the table writes it: floats with 6 significant digits, a missing value (None, NaN) empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def format_results(rows):
    """The results table (a table or a list of rows) as aligned text of the columns a reader compares; a score with
    an interval shows as ``value [lo, hi]`` (rows of older tables, without intervals: the value alone)."""
    shown = ["model", "variant", "seed", "data", "split", "resolution", "n_images", "psnr", "ssim", "fid", "kid_mean",
             "kid_std", "lpips", "seg_miou", "seg_acc", "backbone", "train_steps", "wall_time_s"]
    return with_intervals(pd.DataFrame(rows))[shown].to_string(index=False, justify="left")


def with_intervals(table):
    """A results table as text cells, each score with an interval as ``value [lo, hi]`` (compare.py's report too)."""
    table = table.reindex(columns=list(dict.fromkeys(list(table.columns) + list(COLUMNS)))).map(_cell)
    for column, prefix in INTERVALS.items():
        table[column] = [_with_interval(value, lo, hi) for value, lo, hi in
                         zip(table[column], table[f"{prefix}_lo"], table[f"{prefix}_hi"])]
    return table


def _with_interval(value, lo, hi):
    """``value [lo, hi]`` with 4 significant digits; the value alone (as written) without an interval."""
    if value == "" or lo == "" or hi == "":
        return value
    return f"{float(value):.4g} [{float(lo):.4g}, {float(hi):.4g}]"
