"""Train the DDIM / DDPM diffusion model (study section 3.6, Tables 4-6).

    python train_scripts/ddim.py                                  # quick preset: synthetic facades, 64 px, conditional
    python train_scripts/ddim.py --data PATH --preset paper       # Table 6: 64 px, batch 2, 50 epochs, AdamW
    python train_scripts/ddim.py --unconditional --preset paper   # the study's own (unconditional) setting
    python train_scripts/ddim.py --condition-dropout 0.1 --guidance 1.0 --sampler ddpm --sampling-steps 50
    python train_scripts/ddim.py --preset latent --latent AUTOENCODER_RUN    # 256 px, in an autoencoder's latents

log.csv holds the study's Fig. 7 curves: noise_loss (trained on, eq. 8), image_loss (L1 of the eq. 11 estimate)
and val_kid (KID of the EMA model's translations of ``kid_images`` validation label maps every ``kid_every``
steps, ``kid_sampling_steps`` sampling steps, NaN in between; backbone ``alexnet`` by default, whose values are
not comparable with published KID).
"""

import sys

from train_scripts.training.models.ddim import SPEC, cli_arguments
from train_scripts.training.runner import main

if __name__ == "__main__":
    sys.exit(main(SPEC, cli_arguments(sys.argv[1:])))
