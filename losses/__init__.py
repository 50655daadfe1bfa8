"""Loss functions shared by every model (see each module's docstring for the equations)."""

from losses.adversarial import GAN_LOSSES, discriminator_accuracy, discriminator_loss, generator_loss
from losses.divergence import kl_to_standard_normal
from losses.reconstruction import cycle_loss, identity_loss, l1_loss, l2_loss, noise_loss

__all__ = [
    "GAN_LOSSES", "discriminator_accuracy", "discriminator_loss", "generator_loss", "kl_to_standard_normal",
    "cycle_loss", "identity_loss", "l1_loss", "l2_loss", "noise_loss",
]
