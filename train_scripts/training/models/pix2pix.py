"""Pix2Pix (study section 3.4, Tables 1-3):
its ``ModelSpec`` (presets, builder, flags), trained by ``train_scripts/pix2pix.py``."""

from train_scripts.training.config import PRESET_DEFAULTS, ModelSpec

COMMON = dict(PRESET_DEFAULTS, generator="study", l1_weight=100.0, lr=2e-4, beta_1=0.5, beta_2=0.999,
              dropout_at_test=False, ngf=64, ndf=64, fid_every=0, fid_images=0, fid_backbone="fid-inception")

PRESETS = {
    # Study Table 3: batch 1, 80 000 iterations, Adam 2e-4 (0.5, 0.999) for G and D, lambda 100; section 3.1
    # augmentation with the fixed 6x expansion (400 -> 2400 pairs).
    "paper": dict(COMMON, data="facades", image_size=256, expand=6, batch_size=1, steps=80000, gan_loss="bce",
                  log_every=100, checkpoint_every=2000, sample_every=2000, val_images=0, fid_every=2000),
    # Synthetic facades at 64 px with half-width networks (ngf = ndf = 32): a few minutes on 2 CPU cores,
    # enough to learn the label -> photo mapping (see tests/test_pix2pix_learns.py).
    "quick": dict(COMMON, data="synthetic", image_size=64, batch_size=4, steps=600, gan_loss="bce", ngf=32, ndf=32,
                  log_every=20, checkpoint_every=200, sample_every=200, val_images=32),
}


def build(config, noise_seed=None):
    """The model of ``config``; ``noise_seed``: the seed of its own test-time noise (None: Keras' default seeds, as
    training has them)."""
    import keras

    from models.pix2pix import Pix2Pix

    model = Pix2Pix(image_size=config["image_size"], generator=config["generator"], gan_loss=config["gan_loss"],
                    l1_weight=config["l1_weight"], dropout_at_test=config["dropout_at_test"],
                    ngf=config["ngf"], ndf=config["ndf"], noise_seed=noise_seed)

    def adam():
        return keras.optimizers.Adam(config["lr"], beta_1=config["beta_1"], beta_2=config["beta_2"])

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
    presets=PRESETS,
    build=build,
    callbacks=callbacks,
    arguments={
        "gan_loss": (str, "bce (pix2pix paper) | lsgan (least squares: the study's 'L2+L1')", ("bce", "lsgan")),
        "generator": (str, "study (Table 1) | pix2pix (original U-Net of the paper / TF tutorial)",
                      ("study", "pix2pix")),
        "l1_weight": (float, "lambda of eq. (2)"),
        "ngf": (int, "generator width of the first layer (Table 1: 64); all widths scale with it"),
        "ndf": (int, "discriminator width of the first layer (Table 1: 64)"),
        "lr": (float, "Adam learning rate of G and D"),
        "beta_1": (float, "Adam beta_1"),
        "beta_2": (float, "Adam beta_2"),
        "dropout_at_test": (bool, "keep dropout on when translating (as the pix2pix paper and its FID anchors do)"),
        "fid_every": (int, "steps between validation FID scores, column val_fid of log.csv (multiple of --log-every; "
                           "0 = off)"),
        "fid_images": (int, "validation images for the FID (0 = all)"),
        "fid_backbone": (str, "FID features: fid-inception (published scale) | inception | alexnet",
                         ("fid-inception", "inception", "alexnet")),
    },
    inference=("dropout_at_test",),
    noise_seed="seed",
    stochastic=lambda config: config.get("dropout_at_test", False),
)
