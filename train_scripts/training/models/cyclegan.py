"""CycleGAN (study section 3.5; the CycleGAN paper's ResNet generators and 70x70 PatchGANs):
its settings (defaults and flags), presets and builder as a ``ModelSpec``, trained by ``train_scripts/cyclegan.py``."""

from dataclasses import dataclass

from train_scripts.training.config import ModelSpec, preset
from train_scripts.training.settings import arguments_for, from_config, setting


@dataclass
class CycleGANSettings:
    """CycleGAN's own settings: defaults (the CycleGAN paper's), and the help of their flags."""

    ngf: int = setting(64, "generator width of the first layer (paper: 64); all widths scale with it")
    ndf: int = setting(64, "discriminator width of the first layer (paper: 64)")
    res_blocks: int = setting(0, "residual blocks per generator (0 = the paper's: 9 at 256 px, 6 at 128 px and "
                                 "below)")
    cycle_weight: float = setting(10.0, "lambda of the cycle-consistency loss")
    identity_weight: float = setting(0.5, "identity loss weight as a multiple of lambda (paper: 0.5; 0 = off)")
    pool_size: int = setting(50, "past fakes kept for the discriminators (0 = no pool)")
    lr: float = setting(2e-4, "Adam learning rate of G and D before the decay")
    decay_start: int = setting(0, "step where the linear decay to 0 starts (0 = half of --steps)")
    beta_1: float = setting(0.5, "Adam beta_1")
    beta_2: float = setting(0.999, "Adam beta_2")


PRESETS = {
    # CycleGAN paper: batch 1, Adam 2e-4 (0.5, 0.999) constant for the first half then linearly to 0,
    # lambda 10, identity 0.5 * lambda, pool 50, 9 residual blocks at 256 px. 200 epochs of the 400 facades =
    # 80 000 iterations, the study's Pix2Pix budget too; section 3.1 augmentation with the fixed 6x expansion.
    "paper": preset(CycleGANSettings, data="facades", image_size=256, expand=6, batch_size=1, steps=80000,
                    log_every=100, checkpoint_every=2000, sample_every=2000, val_images=0),
    # Synthetic facades at 64 px with narrow networks (ngf = ndf = 24, 3 residual blocks), batch 2, no identity
    # term: a few minutes on 2 CPU cores. Tuned on held-out L1 (the paired val split; untrained 0.535): with
    # identity 0.5 it stayed at 0.43-0.46 from step 100 to 500 and each step took 40% longer; without, 0.425-0.433
    # from step 100 to 400. See tests/test_cyclegan.py.
    "quick": preset(CycleGANSettings, data="synthetic", image_size=64, batch_size=2, steps=400, ngf=24, ndf=24,
                    res_blocks=3, identity_weight=0.0, log_every=20, checkpoint_every=100, sample_every=100,
                    val_images=32),
}


def build(config):
    import keras

    from models.cyclegan import CycleGAN, LinearDecayAfter

    settings = from_config(CycleGANSettings, config)
    # 0 in a config (the paper's block count, decay from half the steps) is the constructors' None
    model = CycleGAN(**arguments_for(settings, CycleGAN, image_size=config["image_size"],
                                     res_blocks=settings.res_blocks or None))

    def adam():
        lr = LinearDecayAfter(settings.lr, config["steps"], decay_start=settings.decay_start or None)
        return keras.optimizers.Adam(**arguments_for(settings, keras.optimizers.Adam, learning_rate=lr))

    model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=config["jit_compile"],
                  steps_per_execution=config["steps_per_execution"])
    return model


SPEC = ModelSpec(
    name="cyclegan",
    description="CycleGAN: two ResNet generators + two PatchGANs, least squares + cycle + identity loss, "
                "trained on unpaired draws (study section 3.5).",
    settings=CycleGANSettings,
    presets=PRESETS,
    build=build,
    paired=False,
)
