"""Train Pix2Pix (study section 3.4, Tables 1-3).

    python train_scripts/pix2pix.py                       # quick preset, synthetic facades, 64 px
    python train_scripts/pix2pix.py --data PATH --preset paper [--gan-loss lsgan]
"""

import sys

from train_scripts.training.models.pix2pix import SPEC
from train_scripts.training.runner import main

if __name__ == "__main__":
    sys.exit(main(SPEC))
