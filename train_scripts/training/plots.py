"""Figures: labelled image grids (study Fig. 4-6 and the comparison figure) and loss curves (Fig. 7)."""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data.pipeline import to_uint8  # noqa: E402
from train_scripts.training.run_folder import read_log  # noqa: E402


def _to_display(images):
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else to_uint8(images)


def image_grid(path, columns, titles, title=None, cell_inches=1.6):
    """Save a grid with one row per sample and one titled column per entry of ``columns``.

    Each column is a batch of images (n, H, W, 3), in [-1, 1] (floats) or [0, 255] (uint8).
    """
    columns = [_to_display(c) for c in columns]
    rows = len(columns[0])
    fig, axes = plt.subplots(rows, len(columns), figsize=(cell_inches * len(columns), cell_inches * rows + 0.4),
                             squeeze=False)
    for j, (images, name) in enumerate(zip(columns, titles)):
        for i in range(rows):
            ax = axes[i, j]
            ax.imshow(images[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def loss_columns(rows):
    """The loss/metric columns of a CSV log (everything but bookkeeping)."""
    skip = {"epoch", "step", "wall_time_s", "learning_rate"}
    keys = [k for k in rows[0] if k not in skip] if rows else []
    return [k for k in keys if not k.startswith("val_")], [k for k in keys if k.startswith("val_")]


def plot_losses(ax_list, rows, title_prefix=""):
    """Draw each training loss (solid) with its validation value (dots) on its own axis."""
    train_keys, val_keys = loss_columns(rows)
    steps = [r.get("step", r["epoch"] + 1) for r in rows]
    for ax, key in zip(ax_list, train_keys):
        ax.plot(steps, [r[key] for r in rows], lw=1, label="train")
        vkey = "val_" + key
        if vkey in val_keys:
            pts = [(s, r[vkey]) for s, r in zip(steps, rows) if not math.isnan(r[vkey])]
            if pts:
                ax.plot(*zip(*pts), "o", ms=3, label="val")
                ax.legend(fontsize=6)
        ax.set_title(f"{title_prefix}{key}", fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax, vkey in zip(ax_list[len(train_keys):], validation_only(rows)):  # e.g. val_kid (study Fig. 7)
        pts = [(s, r[vkey]) for s, r in zip(steps, rows) if not math.isnan(r[vkey])]
        if pts:
            ax.plot(*zip(*pts), "o-", ms=3, lw=1)
        ax.set_title(f"{title_prefix}{vkey}", fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)


def validation_only(rows):
    """Validation columns without a training counterpart (measured only on held-out data, like val_kid)."""
    train_keys, val_keys = loss_columns(rows)
    return [k for k in val_keys if k[len("val_"):] not in train_keys]


def loss_curves(csv_path, png_path):
    """One panel per loss term of a run's CSV log, saved as a PNG."""
    rows = read_log(csv_path)
    if not rows:
        return
    train_keys, _ = loss_columns(rows)
    panels = len(train_keys) + len(validation_only(rows))
    cols = min(3, max(1, panels))
    nrows = math.ceil(panels / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows), squeeze=False)
    plot_losses(axes.ravel(), rows)
    for ax in axes.ravel()[panels:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
