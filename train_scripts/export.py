"""Export a trained run as the smallest folder that translates: its config and the weights of the networks that
``translate`` uses, loaded like a run by translate.py, evaluate.py and the demo.

    python train_scripts/export.py RUN_DIR OUT_DIR                        # the latest weights, float32
    python train_scripts/export.py RUN_DIR OUT_DIR --precision float16    # half the size
    python train_scripts/export.py RUN_DIR OUT_DIR --step 20000           # the snapshot of --keep-every at a step

OUT_DIR gets ``config.json`` (the run's, as it is), one ``<network>.weights.npz`` per network that translates (Pix2Pix
and the cGAN: the generator; the CVAE: its decoder; CycleGAN: G: A -> B; the DDIM: its EMA network, plus, on latents,
the autoencoder's decoder and latent variance; an autoencoder run: encoder, decoder and latent variance) and
``export.json``: the model, the source run's folder name, the step, the training steps, wall time and commit(s), the
precision, and each file's size and sha256, checked whenever the export is loaded. No discriminator, optimizer state
or resume backup. ``--precision float16`` stores the weights in half precision; they are loaded back into float32
networks (a real-size Pix2Pix at 256 px: outputs 65.9 dB PSNR from the float32 export's at worst, no pixel off by more
than 1 of 255, on 10 facades val label maps; ``python -m train_scripts.bench.export``).
"""

import argparse
import contextlib
import os
import sys

from data.errors import I2IError
from train_scripts.training.export_folder import PRECISIONS
from train_scripts.training.exporting import export


def summary(manifest, run_dir, out_dir):
    """What was written, and how it compares with the run's ``model.weights.h5``."""
    size = sum(entry["bytes"] for entry in manifest["files"].values())
    lines = [f"exported {manifest['model_name']} ({manifest['source_run']}, step {manifest['step']}, "
             f"{manifest['precision']}) to {out_dir}:"]
    lines += [f"  {entry['file']}: {entry['bytes'] / 2**20:.1f} MiB" for entry in manifest["files"].values()]
    full = os.path.join(run_dir, "model.weights.h5")
    if os.path.exists(full):
        lines.append(f"  {size / 2**20:.1f} MiB of weights; the run's model.weights.h5 (every network) has "
                     f"{os.path.getsize(full) / 2**20:.1f} MiB")
    lines.append(f"translate with: python train_scripts/translate.py {out_dir} LABELS/ OUT/")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(prog="python train_scripts/export.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", help="run folder made by a train script")
    p.add_argument("out_dir", help="new (or empty) folder for the export")
    p.add_argument("--precision", default="float32", choices=PRECISIONS,
                   help="storage of the weights; float16 halves the size and is loaded back into float32 networks "
                        "(a real-size Pix2Pix at 256 px: outputs 65.9 dB PSNR from float32's at worst, no pixel off by "
                        "more than 1 of 255, on 10 facades val label maps; python -m train_scripts.bench.export)")
    p.add_argument("--step", type=int, default=None,
                   help="export the weights kept at this step (RUN_DIR/snapshots/, see --keep-every) instead of the "
                        "latest")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        manifest = export(args.run_dir, args.out_dir, args.precision, args.step)
        print(summary(manifest, args.run_dir, args.out_dir))
        return 0
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
