"""Train the KL autoencoder whose latents the latent DDIM diffuses (latent diffusion, Rombach et al. 2022).

    python train_scripts/autoencoder.py                                    # quick preset: synthetic facades, 64 px
    python train_scripts/autoencoder.py --data facades --preset paper      # 256 px photos -> 32x32x4 latents
    python train_scripts/ddim.py --preset latent --latent RUN_DIR          # then the DDIM on its latents

The label maps are not used: the autoencoder learns the photos. log.csv holds its L1, LPIPS and KL terms and the
PSNR / SSIM of its reconstructions, on training batches and (``val_*``) on ``val_images`` validation photos at every
checkpoint; sample grids show photo | photo | reconstruction; ``evaluate.py`` scores its reconstructions.
"""

import sys

from train_scripts.training.models.autoencoder import SPEC
from train_scripts.training.runner import main

if __name__ == "__main__":
    sys.exit(main(SPEC))
