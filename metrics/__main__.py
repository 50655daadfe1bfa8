"""``python -m metrics DIR_A DIR_B``: score two folders of same-named images; ``python -m metrics compare GEN_A
GEN_B REF_DIR``: compare two models' outputs of the same label maps.

DIR_A holds the generated images, DIR_B the references. Images are paired by file name without extension
(``001.png`` with ``001.jpg``); names found in only one folder are an error. Paired metrics (PSNR, SSIM, LPIPS)
are computed per pair and averaged; FID and KID over the two sets. Every score has a 95 % bootstrap interval over
the images (``--resamples``, default 1000; 0: none). Prints a table, or JSON with ``--json``.

``--labels LABEL_DIR`` adds the segmentation score (:mod:`metrics.segmentation`: does each photo follow the label
map it was generated from? mIoU and pixel accuracy of the facade parser's reading of the photo), the label maps
paired with the generated images by name. Without a reference folder, ``python -m metrics GEN --labels LABEL_DIR``
scores only that (the blind test split: label maps without photos).

``compare`` (:mod:`metrics.comparison`) reports per metric A, B, A - B with its paired-bootstrap interval, a p-value
and the share of images on which A is better; with ``--labels LABEL_DIR`` also the segmentation scores. A generated
folder literally named ``compare`` is still scored by ``python -m metrics compare REF_DIR`` (two folders: the
scoring command), or ``python -m metrics ./compare ...``.

Default backbone for FID/KID: ``fid-inception`` if its weights are on this machine (comparable with published
FID), else ``inception``, else ``alexnet`` (LPIPS AlexNet features: works offline, not comparable with published
values). The backbone used is always printed.
"""

import argparse
import contextlib
import json
import os
import sys

from data.errors import I2IError
from metrics.backbones import BACKBONES, DEFAULT_BATCH_SIZE
from metrics.folders import generated_only, label_map_paths, pair_batches, pair_images, reference_ids
from metrics.intervals import DEFAULT_PERMUTATIONS, DEFAULT_RESAMPLES, DEFAULT_SEED
from metrics.score import ALL_METRICS, KNOWN_METRICS, SEGMENTATION

COMMAND = "compare"
LABELS = {"psnr": ("PSNR", " dB", 4), "ssim": ("SSIM", "", 4), "lpips": ("LPIPS", "", 4), "fid": ("FID", "", 4),
          "kid": ("KID", "", 6)}
SEGMENTATION_LABELS = {"seg_miou": ("seg mIoU", "", 4), "seg_acc": ("seg acc", "", 4)}


def with_interval(value, lo, hi, digits=4, sign=""):
    """``value [lo, hi]`` (just the value when there is no interval)."""
    text = f"{value:{sign}.{digits}f}"
    return text if lo is None else f"{text} [{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"


def format_table(result, backbone, dir_a, dir_b):
    """The human-readable table of a score_pairs result: ``value [lo, hi]`` per metric."""
    from metrics.backbones import describe_backbone

    lines = [f"generated: {dir_a}", f"reference: {dir_b or '(none)'}"]
    if result.get("label_dir"):
        lines.append(f"label maps: {result['label_dir']}")
    lines += [f"{result['n_images']} {'image pairs' if dir_b else 'images'}, {result['resolution']} px", ""]
    resamples = result.get("n_resamples")
    lines.append(f"{'metric':<8} value" + (" [95 % interval]" if resamples else ""))

    def row(metric, value, note=""):
        name, unit, digits = {**LABELS, **SEGMENTATION_LABELS}[metric]
        text = with_interval(value, result.get(f"{metric}_lo"), result.get(f"{metric}_hi"), digits)
        lines.append(f"{name:<8} {text}{unit}{note}")

    if result["psnr"] is not None:
        row("psnr", result["psnr"])
    if result["ssim"] is not None:
        row("ssim", result["ssim"])
    if result["lpips"] is not None:
        row("lpips", result["lpips"], "   (AlexNet, v0.1)")
    if result["fid"] is not None:
        row("fid", result["fid"])
    if result["kid_mean"] is not None:
        row("kid", result["kid_mean"], f"   (std over subsets {result['kid_std']:.6f}, subsets of "
                                       f"{result['kid_subset_size']})")
    if result.get("seg_miou") is not None:
        row("seg_miou", result["seg_miou"], "   (facade parser; one confusion matrix over all images)")
        row("seg_acc", result["seg_acc"], "   (pixel accuracy)")
        lines.append("per-class IoU: " + ", ".join(f"{k} {'-' if v is None else f'{v:.3f}'}"
                                                   for k, v in result["per_class_iou"].items()))
    if backbone is not None:
        lines.append(f"FID/KID backbone: {describe_backbone(backbone)}")
    if resamples:
        lines.append(f"intervals: percentile bootstrap over the {result['n_images']} images, {resamples} resamples, "
                     f"seed {result['interval_seed']} (the choice of test images; not training or sampling noise)")
    return "\n".join(lines)


def format_comparison(result, backbone, gen_a, gen_b, ref_dir):
    """The human-readable table of a compare_folders result."""
    from metrics.backbones import describe_backbone

    lines = [f"A:         {gen_a}", f"B:         {gen_b}", f"reference: {ref_dir}",
             f"{result['n_images']} images, {result['resolution']} px; paired bootstrap over images: "
             f"{result['n_resamples']} resamples, seed {result['seed']}", "",
             f"{'metric':<11}{'A':>11}{'B':>11}{'A - B':>11}  {'95 % interval of A - B':<26}{'p':>8}  A better on"]
    for metric, (name, unit, digits) in {**LABELS, **SEGMENTATION_LABELS}.items():
        entry = result.get(metric)
        if entry is None:
            continue
        name = name + (f" ({unit.strip()})" if unit else "")
        interval = "" if entry["lo"] is None else f"[{entry['lo']:+.{digits}f}, {entry['hi']:+.{digits}f}]"
        p = "" if entry["p"] is None else f"{entry['p']:.4f}"
        better = "" if entry["a_better"] is None else f"{100 * entry['a_better']:.1f} % of images"
        lines.append(f"{name:<11}{entry['a']:>11.{digits}f}{entry['b']:>11.{digits}f}{entry['diff']:>+11.{digits}f}  "
                     f"{interval:<26}{p:>8}  {better}")
    lines.append("higher is better for PSNR, SSIM and the segmentation scores, lower for LPIPS, FID and KID; p is "
                 f"two-sided: a sign-flip permutation test ({result['n_permutations']} flips, or all when fewer) for "
                 "PSNR, SSIM, LPIPS, the paired bootstrap for FID, KID and the segmentation scores")
    if backbone is not None:
        lines.append(f"FID/KID backbone: {describe_backbone(backbone)}")
    return "\n".join(lines)


def add_common_options(p):
    """The options of both commands (the same set, so that ``compare REF_DIR`` parses as either)."""
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated subset of {','.join(KNOWN_METRICS)} (default: {','.join(ALL_METRICS)}, "
                        f"plus {SEGMENTATION} with --labels; without a reference folder: {SEGMENTATION})")
    p.add_argument("--labels", metavar="LABEL_DIR",
                   help="label maps the generated images were translated from, named like them: adds the "
                        f"{SEGMENTATION} score (seg mIoU, pixel accuracy of the facade parser)")
    p.add_argument("--parser", metavar="DIR",
                   help="facade parser folder for the segmentation score (default: $I2I_FACADE_PARSER, else "
                        "metrics/weights/facade_parser/)")
    p.add_argument("--backbone", choices=BACKBONES, default=None,
                   help="FID/KID features (default: fid-inception if its weights are here, else inception, "
                        "else alexnet)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--weights-dir", help="folder with pretrained weights (used as $I2I_WEIGHTS_DIR for this run)")
    p.add_argument("--weights", metavar="FILE",
                   help="the backbone's weight file (default backbone then: fid-inception), e.g. default_1.pt or "
                        "pt_inception-2015-12-05-6726825d.pth; a copy with another checksum is used with a warning")
    p.add_argument("--resize", choices=("pytorch-fid", "torch-fidelity"), default=None,
                   help="fid-inception: resize to 299 as pytorch-fid (bilinear, half-pixel centres; default) or as "
                        "torch-fidelity (TensorFlow 1.x bilinear)")
    p.add_argument("--cache-dir", help="cache the reference folder's backbone features here")
    p.add_argument("--per-image", action="store_true",
                   help="also report PSNR/SSIM/LPIPS (and seg mIoU/accuracy) of every image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                   help="bootstrap resamples of the images for the 95 %% intervals (0: no intervals)")
    p.add_argument("--interval-seed", type=int, default=DEFAULT_SEED,
                   help="seed of the resampling: the same images and seed give the same intervals")
    p.add_argument("--permutations", type=int, default=DEFAULT_PERMUTATIONS,
                   help="compare: random sign flips of the permutation test (exact when 2^n is no more)")
    return p


def build_parser():
    p = argparse.ArgumentParser(prog="python -m metrics",
                                description="Score the generated images in DIR_A against the same-named references "
                                            "in DIR_B: PSNR, SSIM, LPIPS per pair (averaged), FID and KID over "
                                            "the sets, each with a 95 % bootstrap interval over the images. Images "
                                            "are paired by file name without extension. With --labels LABEL_DIR "
                                            "also the segmentation score against the label maps; without DIR_B "
                                            "only that. To compare two models: "
                                            f"python -m metrics {COMMAND} GEN_A GEN_B REF_DIR.")
    p.add_argument("dir_a", help="folder of generated images")
    p.add_argument("dir_b", nargs="?", default=None,
                   help="folder of reference images (same file names); may be left out with --labels")
    return add_common_options(p)


def build_compare_parser():
    p = argparse.ArgumentParser(prog=f"python -m metrics {COMMAND}",
                                description="Compare two models' outputs of the same label maps: per metric A, B, "
                                            "A - B with its 95 % paired-bootstrap interval, a two-sided p-value and "
                                            "the share of images on which A is better. The three folders must hold "
                                            "the same file names.")
    p.add_argument("folders", nargs="+", metavar="GEN_A GEN_B REF_DIR",
                   help="folders of model A's and model B's generated images, and of the references")
    return add_common_options(p)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == [COMMAND]:
        parser = build_compare_parser()
        args = parser.parse_args(argv[1:])
        if len(args.folders) == 1:  # `python -m metrics compare REF_DIR`: a generated folder named "compare"
            args = build_parser().parse_args(argv)
        elif len(args.folders) != 3:
            parser.error(f"{COMMAND} takes three folders GEN_A GEN_B REF_DIR, got {len(args.folders)}; to score a "
                         f"folder named '{COMMAND}', give it with one reference folder or as ./{COMMAND}")
    else:
        args = build_parser().parse_args(argv)
    try:
        if getattr(args, "folders", None):
            return run_comparison(args)
        if args.dir_a == COMMAND and not os.path.isdir(COMMAND):
            raise I2IError(f"{COMMAND}: not a folder (to compare two models: python -m metrics {COMMAND} GEN_A "
                           "GEN_B REF_DIR)")
        return run(args)
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def check_common_options(args):
    """Refuse bad option values; ``--weights-dir`` becomes ``$I2I_WEIGHTS_DIR``."""
    if args.batch_size < 1:
        raise I2IError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.resamples < 0:
        raise I2IError(f"--resamples must be 0 (no intervals) or more, got {args.resamples}")
    if args.permutations < 1:
        raise I2IError(f"--permutations must be at least 1, got {args.permutations}")
    if args.parser:
        from metrics.facade_parser import ENV_VAR

        if not os.path.exists(args.parser):
            raise I2IError(f"{args.parser}: --parser is not a folder")
        os.environ[ENV_VAR] = args.parser
    if args.weights_dir:
        if not os.path.isdir(args.weights_dir):
            raise I2IError(f"{args.weights_dir}: --weights-dir is not a folder")
        os.environ["I2I_WEIGHTS_DIR"] = args.weights_dir


def build_backbone(args, metrics):
    """The FID/KID backbone the options ask for, or None without FID/KID."""
    from metrics.backbones import default_backbone, get_backbone
    from metrics.score import DISTRIBUTION_METRICS

    if not any(m in metrics for m in DISTRIBUTION_METRICS):
        return None
    name = args.backbone or ("fid-inception" if args.weights or args.resize else default_backbone())
    return get_backbone(name, weights_path=args.weights, batch_size=args.batch_size, resize=args.resize)


def score_folders(args):
    from metrics.score import score_pairs, split_pairs

    check_common_options(args)
    metrics = folder_metrics(args)
    pairs = pair_images(args.dir_a, args.dir_b) if args.dir_b else generated_only(args.dir_a)
    labels = label_map_paths(pairs, args.labels) if SEGMENTATION in metrics else None
    parser = None
    if labels is not None:
        from metrics.facade_parser import load_facade_parser

        parser = load_facade_parser(batch_size=args.batch_size)  # a missing parser: refused before any other network
    backbone = build_backbone(args, metrics)
    batches = pair_batches(pairs, args.batch_size, labels)
    if args.dir_b and labels is not None:
        fakes, reals, label_batches = split_pairs(batches, 3)
    elif args.dir_b:
        (fakes, reals), label_batches = split_pairs(batches), None
    else:
        (fakes, label_batches), reals = split_pairs(batches), None
    result = score_pairs(fakes, reals, metrics, backbone, batch_size=args.batch_size, cache_dir=args.cache_dir,
                         real_ids=reference_ids(pairs) if args.dir_b else None, per_image=args.per_image,
                         n_resamples=args.resamples, interval_seed=args.interval_seed, label_batches=label_batches,
                         parser=parser)
    result["label_dir"] = args.labels if labels is not None else None
    return result, backbone, pairs


def folder_metrics(args):
    """The metrics of ``python -m metrics``: ``--metrics``, else the defaults of the folders given; refuses a
    segmentation score without label maps and reference metrics without a reference folder."""
    from metrics.score import parse_metrics

    if args.metrics is None:
        metrics = (*ALL_METRICS, SEGMENTATION) if args.dir_b and args.labels else (ALL_METRICS if args.dir_b else
                                                                                   (SEGMENTATION,))
    else:
        metrics = parse_metrics(args.metrics)
    if not args.dir_b and not args.labels:
        raise I2IError("give a reference folder (python -m metrics GEN REF), or label maps to score the "
                       "segmentation alone (python -m metrics GEN --labels LABEL_DIR)")
    if SEGMENTATION in metrics and not args.labels:
        raise I2IError(f"{SEGMENTATION} scores the images against the label maps they were translated from: "
                       "give their folder with --labels LABEL_DIR")
    if not args.dir_b:
        others = [m for m in metrics if m != SEGMENTATION]
        if others:
            raise I2IError(f"{', '.join(others)} need a reference folder: python -m metrics GEN REF --labels "
                           f"LABEL_DIR; without one only {SEGMENTATION} is scored")
    if args.labels and SEGMENTATION not in metrics:
        raise I2IError(f"--labels is given but --metrics {','.join(metrics)} leaves out {SEGMENTATION}")
    return tuple(metrics)


@contextlib.contextmanager
def stdout_for(args):
    """With ``--json`` keep stdout pure JSON: download progress and other library output go to stderr."""
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    else:
        yield


def run(args):
    with stdout_for(args):
        result, backbone, pairs = score_folders(args)
    if args.json:
        out = {"dir_a": args.dir_a, "dir_b": args.dir_b, **result}
        if out.get("label_dir") is None:
            out.pop("label_dir", None)
        if backbone is not None:
            out["backbone_comparable_with_published"] = bool(backbone.comparable_with_published)
        if args.per_image:
            out["per_image"] = {stem: {m: v[i] for m, v in result["per_image"].items()}
                                for i, (stem, _, _) in enumerate(pairs)}
        print(json.dumps(out, indent=1))
    else:
        print(format_table(result, backbone, args.dir_a, args.dir_b))
        if args.per_image:
            names = list(result["per_image"])
            print("\n" + f"{'image':<24}" + "".join(f"{m.upper():>10}" for m in names))
            for i, (stem, _, _) in enumerate(pairs):
                print(f"{stem:<24}" + "".join(f"{result['per_image'][m][i]:>10.4f}" for m in names))
    return 0


def run_comparison(args):
    from metrics.comparison import compare_folders, pair_three_folders
    from metrics.score import parse_metrics

    gen_a, gen_b, ref_dir = args.folders
    with stdout_for(args):
        check_common_options(args)
        if args.metrics is None:
            metrics = (*ALL_METRICS, SEGMENTATION) if args.labels else ALL_METRICS
        else:
            metrics = parse_metrics(args.metrics)
        if SEGMENTATION in metrics and not args.labels:
            raise I2IError(f"{SEGMENTATION} scores the images against the label maps they were translated from: "
                           "give their folder with --labels LABEL_DIR")
        if args.labels and SEGMENTATION not in metrics:
            raise I2IError(f"--labels is given but --metrics {','.join(metrics)} leaves out {SEGMENTATION}")
        pairs = pair_three_folders(gen_a, gen_b, ref_dir)  # missing folders, unmatched names: before any network
        parser = None
        if args.labels:
            label_map_paths([(stem, a, ref) for stem, a, _, ref in pairs], args.labels)
            from metrics.facade_parser import load_facade_parser

            parser = load_facade_parser(batch_size=args.batch_size)
        backbone = build_backbone(args, metrics)
        result = compare_folders(gen_a, gen_b, ref_dir, metrics, backbone, n_resamples=args.resamples,
                                 seed=args.interval_seed, n_permutations=args.permutations,
                                 batch_size=args.batch_size, cache_dir=args.cache_dir, per_image=args.per_image,
                                 label_dir=args.labels, parser=parser)
    if args.json:
        out = {"gen_a": gen_a, "gen_b": gen_b, "ref_dir": ref_dir, **result}
        if backbone is not None:
            out["backbone_comparable_with_published"] = bool(backbone.comparable_with_published)
        if args.per_image:
            names = out.pop("names")
            out["per_image"] = {stem: {m: {"a": v["a"][i], "b": v["b"][i]} for m, v in result["per_image"].items()}
                                for i, stem in enumerate(names)}
        print(json.dumps(out, indent=1))
    else:
        print(format_comparison(result, backbone, gen_a, gen_b, ref_dir))
        if args.per_image:
            names = list(result["per_image"])
            print("\n" + f"{'image':<24}" + "".join(f"{m.upper() + ' ' + s:>12}" for m in names for s in "AB"))
            for i, stem in enumerate(result["names"]):
                print(f"{stem:<24}" + "".join(f"{result['per_image'][m][s][i]:>12.4f}" for m in names
                                              for s in ("a", "b")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
