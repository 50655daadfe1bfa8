"""``python -m metrics DIR_A DIR_B``: score two folders of same-named images.

DIR_A holds the generated images, DIR_B the references. Images are paired by file name without extension
(``001.png`` with ``001.jpg``); names found in only one folder are an error. Paired metrics (PSNR, SSIM, LPIPS)
are computed per pair and averaged; FID and KID over the two sets. Prints a table, or JSON with ``--json``.

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
from data.images import is_image_file, read_image

from metrics.backbones import BACKBONES, DEFAULT_BATCH_SIZE
from metrics.score import ALL_METRICS, ImagePairError


def list_images(folder):
    """Image files of a folder (not recursive) as {stem: path}; duplicate stems are an error."""
    if not os.path.isdir(folder):
        raise I2IError(f"{folder}: not a folder")
    found = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not (is_image_file(name) and os.path.isfile(path)):
            continue
        stem = os.path.splitext(name)[0]
        if stem in found:
            raise I2IError(f"{folder}: two images named {stem!r} ({os.path.basename(found[stem])} and {name})")
        found[stem] = path
    if not found:
        raise I2IError(f"{folder}: no image files")
    return found


def pair_images(dir_a, dir_b):
    """[(stem, path_a, path_b)] sorted by name; names in only one folder raise I2IError listing them."""
    a, b = list_images(dir_a), list_images(dir_b)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        def show(names):
            return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        parts = [f"{len(only_a)} only in {dir_a}: {show(only_a)}" if only_a else "",
                 f"{len(only_b)} only in {dir_b}: {show(only_b)}" if only_b else ""]
        raise I2IError("images are paired by file name, and some names have no partner: "
                       + "; ".join(p for p in parts if p))
    return [(stem, a[stem], b[stem]) for stem in sorted(a)]


def pair_batches(pairs, batch_size):
    """Yield (generated, reference) uint8 batches of up to ``batch_size`` pairs of one image size."""
    import numpy as np

    batch_a, batch_b = [], []
    for _, path_a, path_b in pairs:
        img_a, img_b = read_image(path_a), read_image(path_b)
        if img_a.shape != img_b.shape:
            raise ImagePairError(f"{path_a} is {img_a.shape[1]}x{img_a.shape[0]} px but {path_b} is "
                                 f"{img_b.shape[1]}x{img_b.shape[0]} px; paired images must have the same size")
        if batch_a and (img_a.shape != batch_a[0].shape or len(batch_a) == batch_size):
            yield np.stack(batch_a), np.stack(batch_b)
            batch_a, batch_b = [], []
        batch_a.append(img_a)
        batch_b.append(img_b)
    if batch_a:
        yield np.stack(batch_a), np.stack(batch_b)


def format_table(result, backbone, dir_a, dir_b):
    """The human-readable table of a score_pairs result."""
    from metrics.backbones import describe_backbone

    lines = [f"generated: {dir_a}", f"reference: {dir_b}",
             f"{result['n_images']} image pairs, {result['resolution']} px", "", f"{'metric':<8} value"]
    if result["psnr"] is not None:
        lines.append(f"{'PSNR':<8} {result['psnr']:.4f} dB")
    if result["ssim"] is not None:
        lines.append(f"{'SSIM':<8} {result['ssim']:.4f}")
    if result["lpips"] is not None:
        lines.append(f"{'LPIPS':<8} {result['lpips']:.4f}   (AlexNet, v0.1)")
    if result["fid"] is not None:
        lines.append(f"{'FID':<8} {result['fid']:.4f}")
    if result["kid_mean"] is not None:
        lines.append(f"{'KID':<8} {result['kid_mean']:.6f} ± {result['kid_std']:.6f}   "
                     f"(subsets of {result['kid_subset_size']})")
    if backbone is not None:
        lines.append(f"FID/KID backbone: {describe_backbone(backbone)}")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(prog="python -m metrics",
                                description="Score the generated images in DIR_A against the same-named references "
                                            "in DIR_B: PSNR, SSIM, LPIPS per pair (averaged), FID and KID over "
                                            "the sets. Images are paired by file name without extension.")
    p.add_argument("dir_a", help="folder of generated images")
    p.add_argument("dir_b", help="folder of reference images (same file names)")
    p.add_argument("--metrics", default=",".join(ALL_METRICS), help="comma-separated subset of %(default)s")
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
    p.add_argument("--per-image", action="store_true", help="also report PSNR/SSIM/LPIPS of every pair")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def score_folders(args):
    from metrics.backbones import default_backbone, get_backbone
    from metrics.score import DISTRIBUTION_METRICS, parse_metrics, score_pairs, split_pairs

    if args.batch_size < 1:
        raise I2IError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.weights_dir:
        if not os.path.isdir(args.weights_dir):
            raise I2IError(f"{args.weights_dir}: --weights-dir is not a folder")
        os.environ["I2I_WEIGHTS_DIR"] = args.weights_dir
    metrics = parse_metrics(args.metrics)
    pairs = pair_images(args.dir_a, args.dir_b)
    backbone = None
    if any(m in metrics for m in DISTRIBUTION_METRICS):
        name = args.backbone or ("fid-inception" if args.weights or args.resize else default_backbone())
        backbone = get_backbone(name, weights_path=args.weights, batch_size=args.batch_size, resize=args.resize)
    fakes, reals = split_pairs(pair_batches(pairs, args.batch_size))
    result = score_pairs(fakes, reals, metrics, backbone, batch_size=args.batch_size, cache_dir=args.cache_dir,
                         real_ids=[f"{os.path.basename(b)}:{os.path.getsize(b)}:{os.stat(b).st_mtime_ns}"
                                   for _, _, b in pairs],
                         per_image=args.per_image)
    return result, backbone, pairs


def run(args):
    if args.json:  # keep stdout pure JSON: download progress and other library output go to stderr
        with contextlib.redirect_stdout(sys.stderr):
            result, backbone, pairs = score_folders(args)
    else:
        result, backbone, pairs = score_folders(args)
    if args.json:
        out = {"dir_a": args.dir_a, "dir_b": args.dir_b, **result}
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


if __name__ == "__main__":
    sys.exit(main())
