"""What a comparison of models (``compare.py``) shows: the study's comparison figure (label map | ground truth | a
column per model), the models' loss curves, and the offline report page that holds them with the tables."""

import base64
import html
import json
import math
import os

import pandas as pd

from train_scripts.training.comparison import format_paired

# ---------------------------------------------------------------------------------------------- figures

def comparison_columns(names, output_dirs, data, split, size, n_samples):
    """Columns of the study's comparison figure: label map, ground truth, then each model's outputs.

    Rows are ``n_samples`` images spread evenly over the split, read back from each model's folder of outputs
    (``output_dirs``: ``{model: outputs_<split>/ written by evaluate.py}``) so the figure shows exactly what was
    scored.
    """
    import numpy as np

    from data.images import read_image
    from data.sources import open_source, resize

    pairs = open_source(data).load(split, size)
    picks = np.linspace(0, len(pairs) - 1, min(n_samples, len(pairs))).round().astype(int)
    stems = [os.path.splitext(os.path.basename(pairs.names[i]))[0] for i in picks]
    columns = [pairs.labels[picks], pairs.photos[picks]]
    for name in names:
        columns.append(np.stack([resize(read_image(os.path.join(output_dirs[name], s + ".png")), size)
                                 for s in stems]))
    return columns, ["label map", "ground truth", *names]


def comparison_figure(path, names, output_dirs, data, split, size, n_samples, title):
    """:func:`comparison_columns` as one image grid, written to ``path``."""
    from train_scripts.training.plots import image_grid

    columns, titles = comparison_columns(names, output_dirs, data, split, size, n_samples)
    image_grid(path, columns, titles, title=title)


def loss_figure(path, names, run_dirs):
    """One panel per model with every training loss term of its log.csv."""
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


# ----------------------------------------------------------------------------------------------- report page

SHOWN = ("seed", "psnr", "ssim", "fid", "kid_mean", "kid_std", "lpips", "seg_miou", "seg_acc", "backbone",
         "resolution", "n_images", "train_steps", "wall_time_s")


def write_report(path, args, names, rows, sections, figures, command, started, wall, summary=None, paired=None,
                 seeds=(None,)):
    """The offline report page of a comparison.

    ``args``: compare.py's flags (data, preset, split, budget); ``names``: the models compared; ``rows``:
    ``{run label: results row}`` in the table's order; ``sections``: ``[(title, run folder)]``, every run trained (a
    latent model's autoencoder first); ``figures``: ``{"comparison": png, "losses": png}`` of the first seed;
    ``summary``: the ``format_summary`` table over ``seeds`` (None without seeds); ``paired``: the
    ``paired_comparisons`` of every seed (None: none).
    """
    from train_scripts.training.results import recorded_run_dir, with_intervals
    from train_scripts.training.run_folder import RunFolder, atomic_write_text, environment

    def img(file):
        with open(file, "rb") as f:
            return f'<img src="data:image/png;base64,{base64.b64encode(f.read()).decode()}" style="max-width:100%">'

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
                  f"plus its DDIM's {args.budget_minutes * (1 - args.latent_share):g}."
                  if "ddim-latent" in names else "")
        parts.append(f"<p>Every model trained for the same wall-clock budget of {args.budget_minutes:g} minutes "
                     f"(training steps, periodic validation and sample grids included; scoring not).{latent}</p>")
    table = with_intervals(pd.DataFrame(list(rows.values()), index=list(rows))).reindex(columns=list(SHOWN))
    parts.append("<h2>Metrics</h2>" + table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="", border=0))
    n_resamples = next((row.get("n_resamples") for row in rows.values() if row.get("n_resamples")), None)
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
                                                                       " of the same training seed") + ".</p>")
    if summary is not None:
        parts.append("<h2>Over seeds</h2>" + summary.to_html(border=0))
        parts.append(f"<p>Mean ± sample standard deviation (ddof=1) over the n training seeds "
                     f"{', '.join(map(str, seeds))}; one seed: the mean alone. The spread covers training "
                     "randomness only (initial weights, data order, augmentation, noise), not the choice of test "
                     "images.</p>")
    first = "" if seeds[0] is None else f" (training seed {seeds[0]})"
    parts += [f"<h2>Samples{first}</h2>", img(figures["comparison"]), f"<h2>Training losses{first}</h2>",
              img(figures["losses"]), "<h2>Runs</h2>"]
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
    atomic_write_text(path, "\n".join(parts))
