"""The model registry: every model the toolkit trains, by name, with its :class:`ModelSpec` (presets, builder,
flags and capabilities: ``paired``, ``reconstructs``, ``inference``, ``check``, and what ``translate`` accepts:
``noise_seed``, ``stochastic``, ``sampler_settings``) and its train script; and the models
of the comparison (``compare.py``), each a trained model plus flags.

Tools find a model here, never by importing its train script. Importing this module does not load TensorFlow.
"""

import os

from data.errors import I2IError
from train_scripts.training.models import autoencoder, cgan, cvae, cyclegan, ddim, pix2pix

# model name -> ModelSpec; the name is also the train script's: train_scripts/<name>.py
SPECS = {module.SPEC.name: module.SPEC for module in (cvae, cgan, pix2pix, cyclegan, ddim, autoencoder)}

# comparison name -> (model, flags that make the variant), in the order of the comparison's tables and figures
COMPARISON_MODELS = {
    "cvae": ("cvae", []),
    "cgan": ("cgan", []),
    "pix2pix-lsgan": ("pix2pix", ["--gan-loss", "lsgan"]),
    "pix2pix-bce": ("pix2pix", ["--gan-loss", "bce"]),
    "cyclegan": ("cyclegan", []),
    "ddim": ("ddim", []),
    # the x_0 error weighted by clip(SNR, 1, 5): the DDIM of results/facades-64px-1core-budget150-200
    "ddim-clipped-snr": ("ddim", ["--loss-weighting", "clipped-snr"]),
    # the DDIM on the latents of an autoencoder that is trained first, as part of its budget (compare.LATENT_PRESETS)
    "ddim-latent": ("ddim", []),
}


def model_names():
    """The names of every model with a train script."""
    return list(SPECS)


def spec_for(model_name):
    """The ModelSpec of a model name (an I2IError for an unknown one, e.g. in a run's ``config.json``)."""
    try:
        return SPECS[model_name]
    except (KeyError, TypeError):
        raise I2IError(f"unknown model '{model_name}'") from None


def train_script(model_name):
    """The path of the model's train script, ``train_scripts/<name>.py`` (to run it in a subprocess)."""
    spec_for(model_name)
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), f"{model_name}.py")
