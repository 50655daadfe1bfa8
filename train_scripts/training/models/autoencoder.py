"""The KL autoencoder whose latents the latent DDIM diffuses (latent diffusion, Rombach et al. 2022):
its settings (defaults and flags), presets and builder as a ``ModelSpec``, trained by
``train_scripts/autoencoder.py``."""

import os
from dataclasses import dataclass

from data.errors import I2IError
from train_scripts.training.config import ModelSpec, preset, widths_list, workspace_root
from train_scripts.training.run_folder import EXPORT_MANIFEST, RunFolder
from train_scripts.training.settings import arguments_for, from_config, setting


@dataclass
class AutoencoderSettings:
    """The autoencoder's own settings: defaults (LDM's loss weights and Adam betas; the paper preset's widths and
    learning rate), and the help of their flags."""

    widths: list = setting([16, 32, 64, 128], "channels per level, e.g. 32,64,128,128 (each level after the first "
                                               "halves the size: 4 levels = factor 8)", parse=widths_list)
    latent_channels: int = setting(4, "latent channels (LDM: 4)")
    block_depth: int = setting(1, "residual blocks per level")
    kl_weight: float = setting(1e-6, "beta of the KL term, summed over latent elements (LDM: 1e-6)")
    lpips_weight: float = setting(1.0, "weight of the LPIPS term (LDM: 1; 0 = L1 only)")
    lr: float = setting(2e-4, "Adam learning rate")
    beta_1: float = setting(0.5, "Adam beta_1 (LDM: 0.5)")
    beta_2: float = setting(0.9, "Adam beta_2 (LDM: 0.9)")


PRESETS = {
    # 256 px facades photos (fresh crops and flips every step) -> 32x32x4 latents (factor 8, LDM's f8 with 4
    # channels), at a CPU's width (16 channels at 256 px: a training step 2.4x faster than 32, see results/README.md);
    # LDM's loss weights and Adam betas (0.5, 0.9).
    "paper": preset(AutoencoderSettings, data="facades", image_size=256, widths=[16, 32, 64, 128], batch_size=4,
                    steps=20000, lr=2e-4, log_every=100, checkpoint_every=500, sample_every=1000, val_images=20),
    # Synthetic facades at 64 px -> 16x16x4 latents (factor 4), narrow: a few minutes on 2 CPU cores.
    "quick": preset(AutoencoderSettings, data="synthetic", image_size=64, widths=[16, 32, 64], batch_size=8,
                    steps=600, lr=1e-3, log_every=50, checkpoint_every=200, sample_every=200, val_images=32),
}


def build(config):
    import keras

    from losses.perceptual import LPIPSLoss
    from models.autoencoder import KLAutoencoder

    settings = from_config(AutoencoderSettings, config)
    lpips = LPIPSLoss() if settings.lpips_weight else None
    model = KLAutoencoder(**arguments_for(settings, KLAutoencoder, image_size=config["image_size"], lpips=lpips,
                                          seed=config["seed"]))
    optimizer = keras.optimizers.Adam(**arguments_for(settings, keras.optimizers.Adam, learning_rate=settings.lr))
    model.compile(optimizer=optimizer, jit_compile=config["jit_compile"],
                  steps_per_execution=config["steps_per_execution"])
    return model


def untrained_autoencoder(config):
    """The autoencoder of ``config`` without the LPIPS network, which only training needs (to load weights into)."""
    from models.autoencoder import KLAutoencoder

    return KLAutoencoder(**arguments_for(from_config(AutoencoderSettings, config), KLAutoencoder,
                                         image_size=config["image_size"], lpips_weight=0.0))


def load_autoencoder(run_dir):
    """The trained autoencoder of ``run_dir`` (no LPIPS network, which only training needs), for the latent DDIM."""
    run = autoencoder_run(run_dir)
    config = autoencoder_config(run)
    weights = run.file("model.weights.h5")
    model = untrained_autoencoder(config)
    try:
        model.load_weights(weights)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise I2IError(f"{weights}: cannot load the autoencoder ({type(e).__name__}: {e}); the file is truncated "
                       f"or corrupt, or does not match {run.config_path}") from None
    return model


def autoencoder_run(path):
    """The RunFolder of the autoencoder a latent DDIM names (``--latent``): a relative path is taken from the current
    folder, else from the repository root (where compare.py and the README's commands run)."""
    root = workspace_root()
    if not os.path.isabs(path) and not os.path.isdir(path) and os.path.isdir(os.path.join(root, path)):
        path = os.path.join(root, path)
    return RunFolder(path)


def autoencoder_config(run):
    """The config of the autoencoder run ``run`` (a RunFolder), checked to be one with weights."""
    if not os.path.isdir(run.path):
        raise I2IError(f"{run.path}: no such autoencoder run folder")
    if not os.path.exists(run.config_path):
        raise I2IError(f"{run.path}: not a run folder (no config.json)")
    if os.path.exists(run.file(EXPORT_MANIFEST)):
        raise I2IError(f"{run.path} is an exported model ({EXPORT_MANIFEST}); --latent needs the autoencoder's run "
                       "folder (its config.json and model.weights.h5)")
    saved = run.read_config()
    if not isinstance(saved, dict) or saved.get("model") != SPEC.name or not isinstance(saved.get("config"), dict):
        model = saved.get("model", "unknown") if isinstance(saved, dict) else "unknown"
        raise I2IError(f"{run.path} holds a {model} run, not an autoencoder run (train_scripts/autoencoder.py)")
    if not os.path.exists(run.file("model.weights.h5")):
        raise I2IError(f"{run.file('model.weights.h5')}: missing (the autoencoder run has not reached its first "
                       "checkpoint)")
    if not run.progress().get("finished"):
        print(f"warning: the autoencoder run {run.path} has not finished training; using its latest checkpoint")
    return saved["config"]


SPEC = ModelSpec(
    name="autoencoder",
    description="KL autoencoder (latent diffusion's, small): photos -> latents -> photos, trained on L1 + LPIPS + "
                "a small KL; its latents are what ddim.py --latent diffuses.",
    settings=AutoencoderSettings,
    presets=PRESETS,
    build=build,
    reconstructs=True,
)
