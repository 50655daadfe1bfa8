"""Seconds per translated image on this machine: Pix2Pix's one forward pass against the DDIM's sampler (printed,
never asserted).

    python -m train_scripts.bench.sampling        # 256 px: Pix2Pix vs latent DDIM, 20/50/100 steps
    python -m train_scripts.bench.sampling --models pix2pix,ddim --image-size 64 --steps 20,100

Each model is built from its train script's preset (``paper`` for Pix2Pix with the classic U-Net; ``latent`` for
the latent DDIM, on an untrained autoencoder of the ``paper`` preset; ``quick`` for the pixel DDIM), so no trained
run is needed: the time does not depend on the weights. ``translate`` runs on a batch of label maps ``--repeats``
times after one untimed call that traces it; the figure is the median time per image.
"""

import argparse
import os
import sys
import time

MODELS = ("pix2pix", "ddim-latent", "ddim")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="pix2pix,ddim-latent", help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--image-size", type=int, default=256, help="photo size (the pixel DDIM: 64)")
    p.add_argument("--steps", default="20,50,100", help="DDIM sampling steps, comma-separated")
    p.add_argument("--batch-size", type=int, default=8, help="label maps per translate call")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    args.steps = [int(s) for s in args.steps.split(",")]
    return args


def build(name, image_size):
    """The model ``name`` from its preset at ``image_size`` (untrained)."""
    import keras

    from models.autoencoder import KLAutoencoder
    from train_scripts.training.models import autoencoder, ddim, pix2pix

    keras.utils.set_random_seed(0)
    if name == "pix2pix":
        return pix2pix.build({**pix2pix.PRESETS["paper"], "generator": "pix2pix", "image_size": image_size})
    if name == "ddim":
        return ddim.build({**ddim.PRESETS["quick"], "image_size": image_size})
    ae_config = autoencoder.PRESETS["paper"]
    ae = KLAutoencoder(image_size=image_size, widths=ae_config["widths"], latent_channels=ae_config["latent_channels"],
                       block_depth=ae_config["block_depth"], lpips_weight=0.0)
    return ddim.build({**ddim.PRESETS["latent"], "image_size": image_size, "latent": "(untrained)"}, autoencoder=ae)


def seconds_per_image(translate, labels, repeats):
    import numpy as np

    np.asarray(translate(labels))  # traces
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(translate(labels))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / len(labels)


def main(argv=None):
    import numpy as np
    import tensorflow as tf

    args = parse_args(sys.argv[1:] if argv is None else argv)
    labels = np.random.default_rng(0).uniform(-1, 1, (args.batch_size, args.image_size, args.image_size, 3))
    labels = labels.astype(np.float32)
    print(f"{args.image_size} px, batch {args.batch_size}, median of {args.repeats}; "
          f"TensorFlow {tf.__version__}, {len(os.sched_getaffinity(0))} core(s)")
    print(f"{'model':<12} {'sampling steps':>14} {'s / image':>10}")
    for name in args.models:
        model = build(name, args.image_size)
        if name == "pix2pix":
            print(f"{name:<12} {'1 (forward)':>14} {seconds_per_image(model.translate, labels, args.repeats):>10.3f}")
            continue
        for steps in args.steps:
            translate = lambda x, steps=steps: model.translate(x, sampling_steps=steps)  # noqa: E731
            print(f"{name:<12} {steps:>14} {seconds_per_image(translate, labels, args.repeats):>10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
