"""Pix2Pix (study section 3.4, Tables 1-3):
its settings (defaults and flags), presets and builder as a ``ModelSpec``, trained by ``train_scripts/pix2pix.py``."""

from dataclasses import dataclass

from train_scripts.training.config import ModelSpec, preset
from train_scripts.training.settings import arguments_for, from_config, setting


@dataclass
class Pix2PixSettings:
    """Pix2Pix's own settings: defaults (study Table 3), and the help of their flags."""

    gan_loss: str = setting("bce", "bce (pix2pix paper) | lsgan (least squares: the study's 'L2+L1')",
                            ("bce", "lsgan"))
    generator: str = setting("study", "study (Table 1) | pix2pix (original U-Net of the paper / TF tutorial)",
                             ("study", "pix2pix"))
    l1_weight: float = setting(100.0, "lambda of eq. (2)")
    ngf: int = setting(64, "generator width of the first layer (Table 1: 64); all widths scale with it")
    ndf: int = setting(64, "discriminator width of the first layer (Table 1: 64)")
    lr: float = setting(2e-4, "Adam learning rate of G and D")
    beta_1: float = setting(0.5, "Adam beta_1")
    beta_2: float = setting(0.999, "Adam beta_2")
    dropout_at_test: bool = setting(False, "keep dropout on when translating (as the pix2pix paper and its FID "
                                           "anchors do)")
    fid_every: int = setting(0, "steps between validation FID scores, column val_fid of log.csv (multiple of "
                                "--log-every; 0 = off)")
    fid_images: int = setting(0, "validation images for the FID (0 = all)")
    fid_backbone: str = setting("fid-inception", "FID features: fid-inception (published scale) | inception | alexnet",
                                ("fid-inception", "inception", "alexnet"))


PRESETS = {
    # Study Table 3: batch 1, 80 000 iterations, Adam 2e-4 (0.5, 0.999) for G and D, lambda 100; section 3.1
    # augmentation with the fixed 6x expansion (400 -> 2400 pairs).
    "paper": preset(Pix2PixSettings, data="facades", image_size=256, expand=6, batch_size=1, steps=80000,
                    gan_loss="bce", log_every=100, checkpoint_every=2000, sample_every=2000, val_images=0,
                    fid_every=2000),
    # Synthetic facades at 64 px with half-width networks (ngf = ndf = 32): a few minutes on 2 CPU cores,
    # enough to learn the label -> photo mapping (see tests/test_pix2pix_learns.py).
    "quick": preset(Pix2PixSettings, data="synthetic", image_size=64, batch_size=4, steps=600, gan_loss="bce",
                    ngf=32, ndf=32, log_every=20, checkpoint_every=200, sample_every=200, val_images=32),
}


def build(config, noise_seed=None):
    """The model of ``config``; ``noise_seed``: the seed of its own test-time noise (None: Keras' default seeds, as
    training has them)."""
    import keras

    from models.pix2pix import Pix2Pix

    settings = from_config(Pix2PixSettings, config)
    model = Pix2Pix(**arguments_for(settings, Pix2Pix, image_size=config["image_size"],
                                         noise_seed=noise_seed))

    def adam():
        return keras.optimizers.Adam(**arguments_for(settings, keras.optimizers.Adam, learning_rate=settings.lr))

    model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=config["jit_compile"],
                  steps_per_execution=config["steps_per_execution"])
    return model


def callbacks(config, model, val_pairs, run):
    """Validation FID every ``fid_every`` steps (0 = off), to show how far from convergence a run stops."""
    from train_scripts.training.validation import fid_callbacks

    return fid_callbacks(config, val_pairs, model.translate)


SPEC = ModelSpec(
    name="pix2pix",
    description="Pix2Pix: U-Net generator + PatchGAN, adversarial + lambda * L1 loss (study Tables 1-3).",
    settings=Pix2PixSettings,
    presets=PRESETS,
    build=build,
    callbacks=callbacks,
    inference=("dropout_at_test",),
    noise_seed="seed",
    stochastic=lambda config: config.get("dropout_at_test", False),
)
