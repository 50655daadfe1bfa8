"""The CGAN (study section 3.3, eq. 1; hyperparameters from the study's poster):
its ``ModelSpec`` (presets, builder, flags), trained by ``train_scripts/cgan.py``."""

from train_scripts.training.config import PRESET_DEFAULTS, ModelSpec

COMMON = dict(PRESET_DEFAULTS, noise_dim=100, ngf=64, ndf=64, gan_loss="bce", d_steps=1, g_steps=1,
              lr=2e-4, beta_1=0.9, beta_2=0.999)

PRESETS = {
    # The study's poster: 30 000 iterations, batch 64, Adam lr 2e-4 for G and D, beta1 0.9, beta2 0.999; section 3.1
    # augmentation with the fixed 6x expansion (400 -> 2400 pairs). D:G 1:1 (the poster names no ratio).
    "paper": dict(COMMON, data="facades", image_size=256, expand=6, batch_size=64, steps=30000,
                  log_every=100, checkpoint_every=1000, sample_every=1000, val_images=0),
    # Synthetic facades at 64 px with half-width networks: a few minutes on 2 CPU cores. Adam beta1 0.5 (DCGAN,
    # pix2pix) instead of the poster's 0.9: with 0.9 the samples stop following their label maps (results/README.md,
    # "Design notes").
    "quick": dict(COMMON, data="synthetic", image_size=64, batch_size=16, steps=600, ngf=32, ndf=32, beta_1=0.5,
                  log_every=20, checkpoint_every=200, sample_every=200, val_images=32),
}


def build(config, noise_seed=None):
    """The model of ``config``; ``noise_seed``: the seed of its own test-time noise (None: Keras' default seeds, as
    training has them)."""
    import keras

    from models.cgan import CGAN

    model = CGAN(image_size=config["image_size"], noise_dim=config["noise_dim"], ngf=config["ngf"],
                 ndf=config["ndf"], gan_loss=config["gan_loss"], d_steps=config["d_steps"], g_steps=config["g_steps"],
                 noise_seed=noise_seed)

    def adam():
        return keras.optimizers.Adam(config["lr"], beta_1=config["beta_1"], beta_2=config["beta_2"])

    model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=config["jit_compile"],
                  steps_per_execution=config["steps_per_execution"])
    return model


SPEC = ModelSpec(
    name="cgan",
    description="CGAN: G(z | label) without skip connections + label-conditioned PatchGAN, eq. (1) "
                "(study section 3.3).",
    presets=PRESETS,
    build=build,
    arguments={
        "noise_dim": (int, "dimension of the generator's noise z"),
        "ngf": (int, "generator width of the first layer; all widths scale with it"),
        "ndf": (int, "discriminator width of the first layer (Table 1: 64)"),
        "gan_loss": (str, "bce (eq. 1) | lsgan (least squares)", ("bce", "lsgan")),
        "d_steps": (int, "discriminator updates per training step (D:G ratio d_steps:g_steps)"),
        "g_steps": (int, "generator updates per training step (D:G ratio d_steps:g_steps)"),
        "lr": (float, "Adam learning rate of G and D"),
        "beta_1": (float, "Adam beta_1"),
        "beta_2": (float, "Adam beta_2"),
    },
    noise_seed="seed",
)
