"""Diffusion family (study section 3.6): schedules and samplers apart from the networks.

Any network runs with any schedule and sampler: schedules speak continuous time t in [0, 1], samplers
call a ``predict_noise(noisy_images, noise_variances)`` callable, and networks embed the noise variance.
"""

from models.diffusion.embedding import SinusoidalEmbedding
from models.diffusion.samplers import (
    Trajectory,
    ddim_sample,
    ddim_step,
    ddpm_sample,
    ddpm_step,
    sampling_grid,
    transition_beta,
)
from models.diffusion.schedules import (
    SCHEDULE_NAMES,
    CosineAngleSchedule,
    DiffusionConfigError,
    DiscreteSchedule,
    add_noise,
    cosine_angle_schedule,
    cosine_schedule,
    get_schedule,
    images_from_noise,
    linear_schedule,
    noise_from_images,
    sigmoid_schedule,
)
from models.diffusion.unet_attention import attention_unet
from models.diffusion.unet_study import study_unet

NETWORK_NAMES = ("study", "attention")

# the package's public names: re-exported from its modules
__all__ = ["NETWORK_NAMES", "SCHEDULE_NAMES", "CosineAngleSchedule", "DiffusionConfigError", "DiscreteSchedule",
           "SinusoidalEmbedding", "Trajectory", "add_noise", "attention_unet", "cosine_angle_schedule",
           "cosine_schedule", "ddim_sample", "ddim_step", "ddpm_sample", "ddpm_step", "get_network", "get_schedule",
           "images_from_noise", "linear_schedule", "noise_from_images", "sampling_grid", "sigmoid_schedule",
           "study_unet", "transition_beta"]


def get_network(name, image_size=64, condition_channels=0, **kwargs):
    """The noise-prediction network for a CLI name: ``study`` (Table 4) or ``attention`` (DDPM's, Ho et al. 2020)."""
    builders = {"study": study_unet, "attention": attention_unet}
    if name not in builders:
        raise DiffusionConfigError(
            f"unknown diffusion network {name!r}; choose one of {', '.join(NETWORK_NAMES)}")
    return builders[name](image_size=image_size, condition_channels=condition_channels, **kwargs)
