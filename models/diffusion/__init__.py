"""Diffusion family (study section 3.6): schedules and samplers apart from the networks.

Any network runs with any schedule and sampler: schedules speak continuous time t in [0, 1], samplers
call a ``predict_noise(noisy_images, noise_variances)`` callable, and networks embed the noise variance.
A ``DiffusionModel`` (``models.diffusion.model``) takes the three as objects: a network (``NetworkSettings`` or a
built ``keras.Model``), a schedule, and ``SamplerSettings``.
"""

from models.diffusion.embedding import SinusoidalEmbedding
from models.diffusion.networks import NETWORK_NAMES, NetworkSettings, build_network, get_network
from models.diffusion.samplers import (
    SAMPLERS,
    SamplerSettings,
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
    named_schedule,
    noise_from_images,
    sigmoid_schedule,
)
from models.diffusion.unet_attention import attention_unet
from models.diffusion.unet_study import study_unet

# the package's public names: re-exported from its modules
__all__ = ["NETWORK_NAMES", "SAMPLERS", "SCHEDULE_NAMES", "CosineAngleSchedule", "DiffusionConfigError",
           "DiscreteSchedule", "NetworkSettings", "SamplerSettings", "SinusoidalEmbedding", "Trajectory", "add_noise",
           "attention_unet", "build_network", "cosine_angle_schedule", "cosine_schedule", "ddim_sample", "ddim_step",
           "ddpm_sample", "ddpm_step", "get_network", "get_schedule", "images_from_noise", "linear_schedule",
           "named_schedule", "noise_from_images", "sampling_grid", "sigmoid_schedule", "study_unet",
           "transition_beta"]

