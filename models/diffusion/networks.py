"""The noise network of a diffusion model, as settings apart from its schedule and sampler (the way diffusers
configures a UNet apart from its scheduler): ``NetworkSettings`` names the U-Net, its widths and its inputs, and
builds it with ``build_network``.

A network takes ``[noisy_images, noise_variances]``, plus ``labels`` when conditional, and returns what it predicts
(noise, velocity or image: ``models.diffusion.predictions``).
"""

import dataclasses
import math

from models.diffusion.schedules import DiffusionConfigError
from models.diffusion.unet_attention import attention_unet
from models.diffusion.unet_study import study_unet

NETWORK_NAMES = ("study", "attention")
STUDY_WIDTHS = (64, 128, 256, 256)  # Table 4: D64 D128 D256 D256 (input C32 = widths[0] / 2, R512 = 2 * widths[-1])


def get_network(name, image_size=64, condition_channels=0, **kwargs):
    """The noise-prediction network for a CLI name: ``study`` (Table 4) or ``attention`` (DDPM's, Ho et al. 2020)."""
    builders = {"study": study_unet, "attention": attention_unet}
    if name not in builders:
        raise DiffusionConfigError(
            f"unknown diffusion network {name!r}; choose one of {', '.join(NETWORK_NAMES)}")
    return builders[name](image_size=image_size, condition_channels=condition_channels, **kwargs)


def build_network(name, image_size, widths, block_depth=2, condition_channels=0, condition_every_level=False,
                  image_channels=3):
    """The noise network ``name`` (``study``: Table 4; ``attention``: Ho et al. 2020's) at the level widths ``widths``.

    ``study``: input 1x1 conv of ``widths[0] / 2`` channels, down blocks ``widths``, bottleneck ``2 * widths[-1]``
    (``STUDY_WIDTHS`` gives Table 4 exactly). ``attention``: one level per width, attention at 16x16, group norm
    with ``min(32, gcd(widths) / 2)`` groups. ``condition_every_level`` (study network only): the label map also
    enters every level (see ``study_unet``). ``image_channels``: channels of what is diffused (3: photos; 4: the
    latent DDIM's latents).
    """
    widths = tuple(int(w) for w in widths)
    if not widths or min(widths) < 2:
        raise DiffusionConfigError(f"network widths must be a non-empty list of integers >= 2, got {list(widths)}")
    if condition_every_level and name != "study":
        raise DiffusionConfigError("the label map at every level (condition_every_level) exists only for the "
                                   "study network")
    if name == "study":
        return get_network("study", image_size, condition_channels, input_width=max(1, widths[0] // 2),
                           down_widths=widths, bottleneck_width=2 * widths[-1], block_depth=block_depth,
                           condition_every_level=condition_every_level, image_channels=image_channels)
    if name == "attention":
        groups = min(32, max(1, math.gcd(*widths) // 2))
        return get_network("attention", image_size, condition_channels, widths=widths, block_depth=block_depth,
                           norm_groups=groups, image_channels=image_channels)
    return get_network(name)  # raises the error naming the choices


@dataclasses.dataclass(frozen=True)
class NetworkSettings:
    """A noise network to build (``build_network``): ``name``, ``widths`` and ``block_depth`` (Table 4: the study
    U-Net, ``STUDY_WIDTHS``, 2 blocks), the size and channels of what is diffused, ``condition_channels`` of the
    label map concatenated to its input (0: unconditional, the study's setting) and ``condition_every_level`` (the
    label map, average-pooled, at every level of the study U-Net too; not in Table 4)."""

    name: str = "study"
    image_size: int = 64
    widths: tuple = STUDY_WIDTHS
    block_depth: int = 2
    condition_channels: int = 3
    condition_every_level: bool = False
    image_channels: int = 3

    def build(self):
        """The network, a functional ``keras.Model``."""
        if self.condition_every_level and not self.condition_channels:
            raise DiffusionConfigError("the label map at every level needs a conditional model (--conditional)")
        return build_network(self.name, int(self.image_size), self.widths, self.block_depth, self.condition_channels,
                             bool(self.condition_every_level), int(self.image_channels))
