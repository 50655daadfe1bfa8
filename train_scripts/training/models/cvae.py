"""The CVAE (study section 3.2, appendix 3):
its settings (defaults and flags), presets and builder as a ``ModelSpec``, trained by ``train_scripts/cvae.py``."""

from dataclasses import dataclass

from train_scripts.training.config import ModelSpec, preset
from train_scripts.training.settings import arguments_for, from_config, setting


@dataclass
class CVAESettings:
    """The CVAE's own settings: defaults, and the help of their flags."""

    latent_dim: int = setting(128, "dimension of z")
    ngf: int = setting(64, "width of the first encoder/decoder layer (64 as in Table 1); all widths scale with it")
    beta: float = setting(1.0, "weight of the KL term (1 = the ELBO of appendix 3-2)")
    reconstruction: str = setting("l1", "per-image summed L1 (Laplace likelihood) or L2 (Gaussian)", ("l1", "l2"))
    label_skips: bool = setting(True, "decoder levels also see the label encoder's features of their size")
    sample_at_test: bool = setting(True, "translate with z ~ N(0, I) (default) or with z = 0 (--no-sample-at-test)")
    lr: float = setting(2e-4, "Adam learning rate")
    beta_1: float = setting(0.9, "Adam beta_1")
    beta_2: float = setting(0.999, "Adam beta_2")


PRESETS = {
    # The study gives no table for its CVAE (section 3.2 is empty). The schedule is the one its poster gives for
    # the CGAN, the other non-Pix2Pix model: batch 64, 30 000 iterations, Adam 2e-4 (0.9, 0.999); section 3.1
    # augmentation with the fixed 6x expansion; beta = 1 (the plain ELBO of appendix 3-2).
    "paper": preset(CVAESettings, data="facades", image_size=256, expand=6, batch_size=64, steps=30000,
                    log_every=100, checkpoint_every=1000, sample_every=1000, val_images=0),
    # Synthetic facades at 64 px with half-width networks: a few minutes on 2 CPU cores, enough to learn the
    # label -> photo mapping (see tests/test_cvae.py). A higher learning rate makes up for the few steps.
    "quick": preset(CVAESettings, data="synthetic", image_size=64, batch_size=16, steps=600, ngf=32, lr=1e-3,
                    log_every=20, checkpoint_every=200, sample_every=200, val_images=32),
}


def build(config, noise_seed=None):
    """The model of ``config``; ``noise_seed``: the seed of its own test-time noise (None: Keras' default seeds, as
    training has them)."""
    import keras

    from models.cvae import CVAE

    settings = from_config(CVAESettings, config)
    model = CVAE(**arguments_for(settings, CVAE, image_size=config["image_size"],
                                     noise_seed=noise_seed))
    optimizer = keras.optimizers.Adam(**arguments_for(settings, keras.optimizers.Adam, learning_rate=settings.lr))
    model.compile(optimizer=optimizer, jit_compile=config["jit_compile"],
                  steps_per_execution=config["steps_per_execution"])
    return model


SPEC = ModelSpec(
    name="cvae",
    description="CVAE: encoder q(z | photo, label), sampling layer, decoder p(photo | z, label); "
                "reconstruction + beta * KL (study appendix 3).",
    settings=CVAESettings,
    presets=PRESETS,
    build=build,
    inference=("sample_at_test",),
    noise_seed="seed",
    stochastic=lambda config: config.get("sample_at_test", True),
)
