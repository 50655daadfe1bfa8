"""Score a trained run (or an exported model, ``export.py``) on a split with the full metric suite and record it in
results/metrics.csv.

    python train_scripts/evaluate.py RUN_DIR [--split test] [--metrics psnr,ssim,fid,kid,lpips]
                                             [--backbone inception|fid-inception|alexnet]
    python train_scripts/evaluate.py DDIM_RUN --set sampler=ddpm --set sampling_steps=100  # same weights, other sampler

The run's model translates every label map of the split (at the run's training resolution);
the outputs are saved as PNGs in ``RUN_DIR/outputs_<split>/`` (same names as the references, so
``python -m metrics`` can score them again), the scores in ``RUN_DIR/scores_<split>_<backbone>_full.json``
(``scores_<split>_full.json`` without FID/KID), and the row of this model/variant/data/split/backbone in the results
table is added or replaced.
``--set KEY=VALUE`` changes a test-time setting of the run (e.g. a diffusion model's sampler, steps, eta,
guidance): the variant names it, and outputs and scores go to ``outputs_<split>_<settings>/`` and
``scores_<split>_<settings>_<backbone>_full.json`` beside the run's own.

The segmentation score (``seg_miou``, ``seg_acc``: does each output follow its label map?) is part of the default
metrics when the facade parser's files are in ``metrics/weights/facade_parser/`` (or ``--parser DIR``), and left out
with a note when they are not; the outputs are scored against the split's 256 px label maps (the run's size if that
is larger). An autoencoder run (reconstructed photos, no label maps in) gets no segmentation score.
"""

import argparse
import contextlib
import json
import os
import re
import sys

from data.errors import I2IError
from train_scripts.training.config import TRANSLATE_BATCH_SIZE, parse_inference_settings
from train_scripts.training.results import (
    COLUMNS,
    DEFAULT_RESULTS,
    format_results,
    read_results,
    recorded_run_dir,
    run_training_record,
    save_outputs,
    scores_file_name,
    update_results,
    variant_of,
)


def settings_suffix(settings):
    """File-name suffix of test-time settings: ``{"eta": 1.0, "sampler": "ddpm"}`` -> ``_eta=1.0_sampler=ddpm``."""
    return "".join(f"_{k}={re.sub(r'[^A-Za-z0-9.-]+', '_', str(v))}" for k, v in sorted(settings.items()))


def evaluation_metrics(metrics, reconstructs=False):
    """The metrics to score: ``metrics`` (a string or names), else the five image metrics plus ``segmentation`` when
    the facade parser's files are present (a printed note when not). An autoencoder (``reconstructs``) gets no
    segmentation score; asking for one is refused, as is asking for it without the parser."""
    from metrics.facade_parser import load_facade_parser, parser_available
    from metrics.score import ALL_METRICS, SEGMENTATION, parse_metrics

    if metrics is None:
        if reconstructs:
            return ALL_METRICS
        if parser_available():
            return (*ALL_METRICS, SEGMENTATION)
        print(f"note: no {SEGMENTATION} score: the facade parser is not in metrics/weights/facade_parser/ (or "
              "--parser DIR)")
        return ALL_METRICS
    metrics = parse_metrics(metrics)
    if SEGMENTATION in metrics:
        if reconstructs:
            raise I2IError(f"{SEGMENTATION}: an autoencoder reconstructs photos, not label maps; score its "
                           "reconstructions without it")
        load_facade_parser()  # refuse missing or broken weights before translating
    return metrics


def evaluate_run(run_dir, split="test", metrics=None, backbone=None, batch_size=TRANSLATE_BATCH_SIZE, save_images=True,
                 cache_dir=None, inference=None, weights_path=None, n_resamples=None, interval_seed=None):
    """Translate ``split`` with the run's model and score it; returns the results row (a dict of COLUMNS).

    ``inference``: ``KEY=VALUE`` test-time settings (``--set``) applied to the run's config before translating.
    ``n_resamples``, ``interval_seed``: the bootstrap of the intervals (None: ``metrics.intervals``' defaults).
    """
    import numpy as np

    from data.errors import LayoutError
    from data.sources import open_source
    from metrics.intervals import DEFAULT_RESAMPLES, DEFAULT_SEED
    from metrics.score import SEGMENTATION, check_resamples, score_pairs
    from metrics.weights import keras_cache_dir
    from train_scripts.training.export_folder import ExportFolder
    from train_scripts.training.inference import load_trained, translate_split  # TensorFlow: imported when scoring

    n_resamples = check_resamples(DEFAULT_RESAMPLES if n_resamples is None else n_resamples)
    interval_seed = DEFAULT_SEED if interval_seed is None else interval_seed
    spec, config, model, run = load_trained(run_dir, inference)
    metrics = evaluation_metrics(metrics, spec.reconstructs)
    suffix = settings_suffix(parse_inference_settings(spec, inference))
    saved = run.read_config()
    source = open_source(config["data"])
    try:
        pairs = source.load(split, config["image_size"])
    except LayoutError as e:
        raise I2IError(f"{run.path}: cannot score split '{split}' of {config['data']}: {e}") from None
    if not run.progress().get("finished"):
        print(f"warning: {run.path} has not finished training; scoring its latest checkpoint")
    what = "reconstructing" if spec.reconstructs else "translating"
    inputs = "photos" if spec.reconstructs else "label maps"
    print(f"{spec.name}: {what} {len(pairs)} '{split}' {inputs} at {config['image_size']} px")
    fakes = translate_split(model, pairs, batch_size=batch_size, reconstruct=spec.reconstructs)
    if save_images:
        save_outputs(run.file(f"outputs_{split}{suffix}"), fakes, pairs.names)

    def batches(images):
        return (images[i:i + batch_size] for i in range(0, len(images), batch_size))

    label_maps = None
    if SEGMENTATION in metrics:
        from metrics.segmentation import label_map_size

        size = label_map_size(config["image_size"])
        label_maps = pairs.labels if size == config["image_size"] else source.load(split, size).labels
    cache_dir = cache_dir or os.path.join(keras_cache_dir(), "i2i_features")
    real_ids = [f"{config['data']}:{split}:{name}" for name in pairs.names]
    scores = score_pairs(batches(fakes), batches(pairs.photos), metrics, backbone, weights_path=weights_path,
                         batch_size=batch_size,
                         cache_dir=cache_dir if config["data"] != "synthetic" else None, real_ids=real_ids,
                         n_resamples=n_resamples, interval_seed=interval_seed,
                         label_batches=None if label_maps is None else batches(label_maps), per_image=True)
    # an exported model: the record its export took from its run (a latent DDIM's with its autoencoder's)
    steps, wall, commit = run.training_record() if isinstance(run, ExportFolder) else run_training_record(run, config)
    row = {
        "model": spec.model_name(config),
        "variant": variant_of(spec, saved.get("preset", ""), config), "split": split,
        "train_steps": steps, "wall_time_s": wall, "commit": commit, "data": config["data"],
        "run_dir": recorded_run_dir(run.path),
        "seed": config.get("seed"),
        **{k: scores.get(k) for k in COLUMNS if k in scores},
    }
    row["resolution"] = scores["resolution"]
    with open(run.file(scores_file_name(split, suffix, scores.get("backbone"))), "w") as f:
        extra = {}
        if SEGMENTATION in metrics:
            extra["segmentation"] = {"per_class_iou": scores["per_class_iou"],
                                     "per_image": {"names": list(pairs.names),
                                                   **{m: scores["per_image"][m] for m in ("seg_miou", "seg_acc")}}}
        json.dump({**row, "metrics": list(metrics), "interval_seed": scores["interval_seed"], **extra}, f, indent=2,
                  default=lambda x: float(np.asarray(x)))
    return row


# ------------------------------------------------------------------------------------------ command line

def build_parser():
    from metrics.backbones import BACKBONES
    from metrics.intervals import DEFAULT_RESAMPLES, DEFAULT_SEED
    from metrics.score import ALL_METRICS, KNOWN_METRICS

    p = argparse.ArgumentParser(prog="python train_scripts/evaluate.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", help="run folder made by a train script, or an exported model (export.py)")
    p.add_argument("--split", default="test", help="split to score (the facades have train/val/test)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated subset of {','.join(KNOWN_METRICS)} (default: {','.join(ALL_METRICS)}, "
                        "and segmentation when the facade parser is present)")
    p.add_argument("--parser", metavar="DIR",
                   help="facade parser folder for the segmentation score (default: $I2I_FACADE_PARSER, else "
                        "metrics/weights/facade_parser/)")
    p.add_argument("--backbone", choices=BACKBONES, default=None,
                   help="FID/KID features (default: fid-inception if its weights are here, else inception, "
                        "else alexnet; alexnet FID/KID are not comparable with published values)")
    p.add_argument("--weights", metavar="FILE",
                   help="the backbone's weight file (default backbone then: fid-inception); a copy with another "
                        "checksum is used with a warning that its scores are not comparable")
    p.add_argument("--batch-size", type=int, default=TRANSLATE_BATCH_SIZE)
    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                   help="bootstrap resamples of the images for the 95 %% intervals (0: no intervals)")
    p.add_argument("--interval-seed", type=int, default=DEFAULT_SEED, help="seed of the resampling")
    p.add_argument("--results", default=DEFAULT_RESULTS, help="results table to update")
    p.add_argument("--no-save-images", dest="save_images", action="store_false",
                   help="do not write the translated images to RUN_DIR/outputs_<split>/")
    p.add_argument("--set", dest="inference", action="append", metavar="KEY=VALUE",
                   help="change a test-time setting of the run, e.g. --set sampling_steps=50 --set eta=1.0 "
                        "(diffusion: sampler, sampling_steps, eta, guidance, clip_denoised, sample_seed; Pix2Pix: "
                        "dropout_at_test; CVAE: sample_at_test); repeatable")
    return p


def main(argv=None):
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.batch_size < 1:
            raise I2IError(f"--batch-size must be at least 1, got {args.batch_size}")
        read_results(args.results)  # refuse a foreign table before spending minutes on scoring
        if args.parser:
            from metrics.facade_parser import ENV_VAR

            os.environ[ENV_VAR] = args.parser
        row = evaluate_run(args.run_dir, args.split, args.metrics, args.backbone, args.batch_size, args.save_images,
                           inference=args.inference, weights_path=args.weights, n_resamples=args.resamples,
                           interval_seed=args.interval_seed)
        rows = update_results(args.results, row)
        print(f"\n{args.results}:")
        print(format_results(rows))
        return 0
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
