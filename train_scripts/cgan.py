"""Train the CGAN (study section 3.3, eq. 1; hyperparameters from the study's poster).

    python train_scripts/cgan.py                       # quick preset, synthetic facades, 64 px
    python train_scripts/cgan.py --data PATH --preset paper [--g-steps 2]
"""

import sys

from train_scripts.training.models.cgan import SPEC
from train_scripts.training.runner import main

if __name__ == "__main__":
    sys.exit(main(SPEC))
