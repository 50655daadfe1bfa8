"""The CGAN (study section 3.3, eq. 1; hyperparameters from the study's poster):
its settings (defaults and flags), presets and builder as a ``ModelSpec``, trained by ``train_scripts/cgan.py``."""

from dataclasses import dataclass

from train_scripts.training.config import ModelSpec, preset
from train_scripts.training.settings import arguments_for, from_config, setting


@dataclass
class CGANSettings:
    """The CGAN's own settings: defaults (the study's poster), and the help of their flags."""

    noise_dim: int = setting(100, "dimension of the generator's noise z")
    ngf: int = setting(64, "generator width of the first layer; all widths scale with it")
    ndf: int = setting(64, "discriminator width of the first layer (Table 1: 64)")
    gan_loss: str = setting("bce", "bce (eq. 1) | lsgan (least squares)", ("bce", "lsgan"))
    d_steps: int = setting(1, "discriminator updates per training step (D:G ratio d_steps:g_steps)")
    g_steps: int = setting(1, "generator updates per training step (D:G ratio d_steps:g_steps)")
    lr: float = setting(2e-4, "Adam learning rate of G and D")
    beta_1: float = setting(0.9, "Adam beta_1")
    beta_2: float = setting(0.999, "Adam beta_2")


PRESETS = {
    # The study's poster: 30 000 iterations, batch 64, Adam lr 2e-4 for G and D, beta1 0.9, beta2 0.999; section 3.1
    # augmentation with the fixed 6x expansion (400 -> 2400 pairs). D:G 1:1 (the poster names no ratio).
    "paper": preset(CGANSettings, data="facades", image_size=256, expand=6, batch_size=64, steps=30000,
                    log_every=100, checkpoint_every=1000, sample_every=1000, val_images=0),
    # Synthetic facades at 64 px with half-width networks: a few minutes on 2 CPU cores. Adam beta1 0.5 (DCGAN,
    # pix2pix) instead of the poster's 0.9: with 0.9 the samples stop following their label maps (results/README.md,
    # "Design notes").
    "quick": preset(CGANSettings, data="synthetic", image_size=64, batch_size=16, steps=600, ngf=32, ndf=32,
                    beta_1=0.5, log_every=20, checkpoint_every=200, sample_every=200, val_images=32),
}


def build(config, noise_seed=None):
    """The model of ``config``; ``noise_seed``: the seed of its own test-time noise (None: Keras' default seeds, as
    training has them)."""
    import keras

    from models.cgan import CGAN

    settings = from_config(CGANSettings, config)
    model = CGAN(**arguments_for(settings, CGAN, image_size=config["image_size"],
                                   noise_seed=noise_seed))

    def adam():
        return keras.optimizers.Adam(**arguments_for(settings, keras.optimizers.Adam, learning_rate=settings.lr))

    model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=config["jit_compile"],
                  steps_per_execution=config["steps_per_execution"])
    return model


SPEC = ModelSpec(
    name="cgan",
    description="CGAN: G(z | label) without skip connections + label-conditioned PatchGAN, eq. (1) "
                "(study section 3.3).",
    settings=CGANSettings,
    presets=PRESETS,
    build=build,
    noise_seed="seed",
)
