"""Train the CVAE (study section 3.2, appendix 3).

    python train_scripts/cvae.py                       # quick preset, synthetic facades, 64 px
    python train_scripts/cvae.py --data PATH --preset paper [--beta 0.5] [--no-sample-at-test]
"""

import sys

from train_scripts.training.models.cvae import SPEC
from train_scripts.training.runner import main

if __name__ == "__main__":
    sys.exit(main(SPEC))
