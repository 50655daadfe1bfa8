"""Metric speed on this machine (figures printed, never asserted).

    python -m train_scripts.bench.metrics                            # all backbones; 106 and 1000 images
    python -m train_scripts.bench.metrics --backbones alexnet --counts 106 --threads 2
    python -m train_scripts.bench.metrics --intervals-only           # the 95 % intervals' added time

1. Feature extraction: images/s of each FID/KID backbone on 256 px RGB images (Inception ones resize to 299).
2. All five metrics (PSNR, SSIM, LPIPS, FID, KID) with ``metrics.score.score_pairs`` on N generated/reference
   pairs at 256 px, streamed in batches like ``python -m metrics`` does (images are synthesised per batch, so the
   time is the metrics alone, not image decoding). Networks are built once, before the clock starts; their build
   time is printed separately.

3. The 95 % bootstrap intervals (``metrics.score.interval_scores``, ``--resamples`` resamples): the time they add
   to scoring N images, from per-image values and random 2048-d features (the features' cost is not part of it).

Inception backbones whose official weight files are not on this machine run with **random weights** (same graph,
same cost); the output says so. Speed does not depend on the weights.
"""

import argparse
import os
import sys
import time


def build_backbone(name, batch_size):
    """(backbone, note): the real one if its weights are here, else the same network with random weights."""
    from metrics.backbones import backbone_available, get_backbone

    if name == "alexnet" or backbone_available(name):
        return get_backbone(name, batch_size=batch_size), "pretrained weights"
    import keras

    from metrics.inception import INPUT_SIZE, ImageBackbone, InceptionBackbone, float32_policy

    if name == "inception":
        backbone = InceptionBackbone.__new__(InceptionBackbone)
        ImageBackbone.__init__(backbone, batch_size)
        backbone.resize = keras.layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear")
        with float32_policy():
            backbone.model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                                            input_shape=(INPUT_SIZE, INPUT_SIZE, 3))
    else:
        from metrics.fid_inception import FIDInceptionBackbone, fid_inception_network

        backbone = FIDInceptionBackbone.__new__(FIDInceptionBackbone)
        ImageBackbone.__init__(backbone, batch_size)
        with float32_policy():
            backbone.model = fid_inception_network()
    return backbone, "RANDOM weights (official file not found; same network and cost)"


def synthetic_batches(count, size, batch_size, seed, noise=0.0):
    """Smooth random 256 px RGB uint8 batches (upsampled noise), made one batch at a time."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng(seed + 1000)
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        small = rng.uniform(0, 255, (n, 8, 8, 3)).astype(np.float32)
        batch = np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])
        if noise:
            batch = batch + noise_rng.normal(0, noise, batch.shape)
        yield np.clip(batch, 0, 255).astype(np.uint8)


def time_features(backbone, size, batch_size, images=64):
    import numpy as np

    batch = next(synthetic_batches(batch_size, size, batch_size, seed=0))
    backbone.features(batch)  # trace + warm-up
    data = np.concatenate(list(synthetic_batches(images, size, batch_size, seed=1)))
    t0 = time.perf_counter()
    backbone.features(data)
    return images / (time.perf_counter() - t0)


def time_distances(count, dim):
    """Seconds for FID and for KID (100 subsets) from (count, dim) features alone."""
    import numpy as np

    from metrics.distances import fid_from_features, kid_from_features

    rng = np.random.default_rng(0)
    a = np.maximum(rng.standard_normal((count, dim)), 0)
    b = np.maximum(rng.standard_normal((count, dim)) + 0.1, 0)
    t0 = time.perf_counter()
    fid_from_features(a, b)
    t1 = time.perf_counter()
    kid_from_features(a, b)
    return t1 - t0, time.perf_counter() - t1


def time_intervals(count, dim, resamples):
    """Seconds that the intervals of all five metrics add to scoring ``count`` images with ``dim``-d features."""
    import numpy as np

    from metrics.score import ALL_METRICS, Measurements, interval_scores

    rng = np.random.default_rng(0)
    real = np.maximum(rng.standard_normal((count, dim)), 0)
    fake = np.maximum(0.5 * real + rng.standard_normal((count, dim)), 0)
    per_image = {m: rng.normal(size=count) for m in ("psnr", "ssim", "lpips")}
    t0 = time.perf_counter()
    interval_scores(Measurements(count, "256x256", per_image, fake, real), ALL_METRICS, resamples)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbones", default="alexnet,fid-inception,inception")
    p.add_argument("--counts", default="106,1000", help="numbers of image pairs for the all-metrics timing")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--feature-images", type=int, default=64, help="images timed for the images/s figure")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: TensorFlow's default)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the intervals")
    p.add_argument("--intervals-only", action="store_true", help="time only the intervals (no network is built)")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c]
    print(f"intervals ({args.resamples} resamples, all five metrics, 2048-d features): " + ", ".join(
        f"{time_intervals(c, 2048, args.resamples):.1f} s for {c} images" for c in counts), flush=True)
    if args.intervals_only:
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from metrics.lpips import LPIPS
    from metrics.score import ALL_METRICS, score_pairs

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    print(f"CPU cores: {os.cpu_count()}, TensorFlow {tf.__version__}, intra-op threads: "
          f"{args.threads or 'default'}, images {args.size}x{args.size}, batch {args.batch_size}")

    t0 = time.perf_counter()
    lpips = LPIPS(batch_size=args.batch_size)
    lpips_build = time.perf_counter() - t0
    rows = []
    for name in [b for b in args.backbones.split(",") if b]:
        t0 = time.perf_counter()
        backbone, note = build_backbone(name, args.batch_size)
        build = time.perf_counter() - t0
        rate = time_features(backbone, args.size, args.batch_size, args.feature_images)
        totals = {}
        for count in counts:
            t0 = time.perf_counter()
            result = score_pairs(synthetic_batches(count, args.size, args.batch_size, seed=2, noise=10.0),
                                 synthetic_batches(count, args.size, args.batch_size, seed=2),
                                 ALL_METRICS, backbone, lpips_model=lpips, batch_size=args.batch_size,
                                 n_resamples=args.resamples)
            totals[count] = time.perf_counter() - t0
            assert result["n_images"] == count
        rows.append((name, note, build, rate, totals))
        print(f"  {name}: done ({note})", flush=True)

    print(f"\nLPIPS network build: {lpips_build:.1f} s")
    header = f"{'backbone':<14} {'build s':>8} {'features img/s':>15} " + " ".join(
        f"{f'all 5 on {c} s':>15}" for c in counts) + "  weights"
    print(header)
    print("-" * len(header))
    for name, note, build, rate, totals in rows:
        print(f"{name:<14} {build:>8.1f} {rate:>15.1f} " + " ".join(f"{totals[c]:>15.1f}" for c in counts)
              + f"  {note}")
    dims = (256, 2048)  # the alexnet and the Inception feature sizes
    print(f"\n{'distances only':<16}" + "".join(f"{f'N={c}':>20}" for c in counts))
    for dim in dims:
        cells = [time_distances(c, dim) for c in counts]
        print(f"{f'{dim}-d FID / KID s':<16}" + "".join(f"{f'{fid:.1f} / {kid:.1f}':>20}" for fid, kid in cells))
    print("\n'all 5' = PSNR + SSIM + LPIPS + FID + KID (100 subsets), with their intervals, on N generated/reference "
          "pairs, networks already built;\nfeatures img/s counts one image through the backbone (FID/KID need both "
          "sets: 2N).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
