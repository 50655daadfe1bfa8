"""The statistics of a comparison of models (``compare.py``): each metric's mean and spread over training seeds,
and each model against its best-scoring rival, paired image by image on the same label maps."""

import os

import pandas as pd

SUMMARIZED = ("psnr", "ssim", "fid", "kid_mean", "lpips", "seg_miou", "seg_acc")  # the metrics averaged over seeds

# the metric that names each model's best-scoring rival: the first of these that was scored (lower is better first)
RIVAL_METRICS = (("fid", False), ("kid_mean", False), ("lpips", False), ("psnr", True), ("ssim", True))


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


def write_references(folder, data, split, size):
    """The split's photos at ``size`` px and its label maps as PNGs named like evaluate.py's outputs, in
    ``<folder>/references-<split>-<size>px/`` and ``<folder>/labels-<split>-<label size>px/``: the paired comparisons'
    references and, for the segmentation score, the label maps the outputs were translated from, at the size
    evaluate.py scores them (``metrics.segmentation.label_map_size``). Each written once; returns both folders."""
    from data.sources import open_source
    from metrics.segmentation import label_map_size
    from train_scripts.training.results import save_outputs

    sizes = size, label_map_size(size)
    folders = [os.path.join(folder, f"{kind}-{split}-{s}px") for kind, s in zip(("references", "labels"), sizes)]
    source = None
    for out, s, kind in zip(folders, sizes, ("photos", "labels")):
        if not os.path.isdir(out):
            source = source or open_source(data)
            pairs = source.load(split, s)
            save_outputs(out + ".tmp", getattr(pairs, kind), pairs.names)
            os.replace(out + ".tmp", out)
    return tuple(folders)


def paired_comparisons(rows, output_dirs, references, labels, metrics, backbone=None, seed=None):
    """Every model against its best-scoring rival on the same label maps (``metrics.comparison.compare_folders``:
    A - B, its paired-bootstrap interval, the p-value, the share of images on which A is better), as a table with
    one row per pair and metric; each unordered pair is compared once.

    ``rows``: ``{model: results row}`` of one training ``seed`` (a column of the table when given);
    ``output_dirs``: ``{model: folder of its outputs}``; ``references``, ``labels``: the photos and label maps
    (:func:`write_references`); ``metrics``: as ``python -m metrics`` takes them. None with fewer than two models."""
    from metrics.comparison import compare_folders
    from metrics.score import SEGMENTATION, SEGMENTATION_SCORES, parse_metrics
    from metrics.weights import keras_cache_dir

    metrics = parse_metrics(metrics)
    paired = [m for m in metrics if m != SEGMENTATION] + (list(SEGMENTATION_SCORES) if SEGMENTATION in metrics else [])
    rivals, metric = best_rivals(rows)
    if not rivals:
        return None
    table, done = [], set()
    for name, rival in rivals.items():
        if frozenset((name, rival)) in done:
            continue
        done.add(frozenset((name, rival)))
        trained = "" if seed is None else f", training seed {seed}"
        print(f"paired comparison: {name} against {rival} (best {metric} of the others{trained})", flush=True)
        result = compare_folders(output_dirs[name], output_dirs[rival], references, metrics=metrics,
                                 backbone=backbone, label_dir=labels,
                                 cache_dir=os.path.join(keras_cache_dir(), "i2i_features"))
        for m in paired:
            r = result[m]
            table.append({**({} if seed is None else {"seed": seed}), "model_a": name, "model_b": rival, "metric": m,
                          "score_a": r["a"], "score_b": r["b"], "diff": r["diff"], "lo": r["lo"], "hi": r["hi"],
                          "p": r["p"], "a_better": r["a_better"], "n_images": result["n_images"],
                          "n_resamples": result["n_resamples"]})
    return pd.DataFrame(table)


def format_paired(table):
    """:func:`paired_comparisons` as text cells: ``A - B [lo, hi]``, the p-value and the share of images A wins
    (and the training seed, where the table has one)."""
    def cell(v, digits=4):
        return "" if v is None or v != v else f"{v:.{digits}g}"

    seeds = {"seed": table["seed"]} if "seed" in table else {}
    return pd.DataFrame({
        **seeds, "A": table["model_a"], "B": table["model_b"], "metric": table["metric"],
        "score A": table["score_a"].map(cell), "score B": table["score_b"].map(cell),
        "A - B [95 % interval]": [f"{cell(d)} [{cell(lo)}, {cell(hi)}]" if cell(lo) else cell(d)
                                  for d, lo, hi in zip(table["diff"], table["lo"], table["hi"])],
        "p": table["p"].map(lambda v: cell(v, 2)),
        "A better on": table["a_better"].map(lambda v: "" if v is None or v != v else f"{100 * v:.0f} %"),
    })
