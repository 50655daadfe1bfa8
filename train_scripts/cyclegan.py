"""Train CycleGAN (study section 3.5; the CycleGAN paper's ResNet generators and 70x70 PatchGANs).

Trained on unpaired draws of label maps and photos; scored like every model, label map -> photo on the
paired evaluation split.

    python train_scripts/cyclegan.py                      # quick preset, synthetic facades, 64 px
    python train_scripts/cyclegan.py --data PATH --preset paper
"""

import sys

from train_scripts.training.models.cyclegan import SPEC
from train_scripts.training.runner import main

if __name__ == "__main__":
    sys.exit(main(SPEC))
