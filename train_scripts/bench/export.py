"""How close a float16 export translates to the float32 one: PSNR of their outputs on real label maps.

    python -m train_scripts.bench.export --data ../shared/data/facades                 # random weights, 256 px
    python -m train_scripts.bench.export --data ../shared/data/facades --run RUN       # a trained run's weights

Without ``--run``, a real-size Pix2Pix (the paper's U-Net, ngf = ndf = 64, 256 px) with its random initial weights is
saved as a run folder in a temporary folder. Both exports of it (``export.py --precision float32`` and ``float16``)
are loaded as translate.py loads them and translate the first ``--images`` label maps of the val split; the PSNR of
each float16 output against its float32 output is printed (the uint8 outputs, as written to PNG).
"""

import argparse
import os
import sys
import tempfile

import numpy as np

from data.sources import PairArrays, open_source
from metrics.image_quality import psnr
from train_scripts.training.exporting import export
from train_scripts.training.inference import load_trained, translate_split
from train_scripts.training.models import pix2pix
from train_scripts.training.run_folder import RunFolder


def random_pix2pix_run(folder, data):
    """A run folder holding a real-size Pix2Pix with its initial (random) weights."""
    import keras

    config = {**pix2pix.SPEC.presets["paper"], "generator": "pix2pix", "data": data, "keep_every": 0,
              "mixed_precision": "none", "budget_minutes": 0.0}
    run = RunFolder(folder)
    run.open("pix2pix", "paper", config)
    keras.utils.set_random_seed(0)
    pix2pix.SPEC.build(config).save_weights(run.file("model.weights.h5"))
    return run.path


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m train_scripts.bench.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset with a val split (the label maps translated)")
    p.add_argument("--run", default=None, help="a trained run to export (default: a random real-size Pix2Pix)")
    p.add_argument("--images", type=int, default=10, help="val label maps translated")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run or random_pix2pix_run(os.path.join(scratch, "run"), args.data)
        outputs = {}
        for precision in ("float32", "float16"):
            out = os.path.join(scratch, precision)
            export(run_dir, out, precision)
            size = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out) if n.endswith(".npz"))
            _, config, model, _ = load_trained(out)
            val = open_source(args.data).load("val", config["image_size"])
            pairs = PairArrays(val.labels[:args.images], val.photos[:args.images], val.names[:args.images])
            outputs[precision] = translate_split(model, pairs)
            print(f"{precision}: {size / 2**20:.1f} MiB of weights")
    values = psnr(outputs["float16"], outputs["float32"])  # inf where identical
    largest = np.abs(outputs["float16"].astype(int) - outputs["float32"]).max()
    print(f"PSNR of float16-export outputs against float32-export outputs, {len(values)} val label maps at "
          f"{outputs['float32'].shape[1]} px: median {np.median(values):.1f} dB, min {np.min(values):.1f} dB "
          f"({int(np.isinf(values).sum())} identical); largest pixel difference {largest} of 255")

if __name__ == "__main__":
    sys.exit(main())
