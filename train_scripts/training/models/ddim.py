"""The DDIM / DDPM diffusion model (study section 3.6, Tables 4-6), on photos or on an autoencoder's latents:
its settings (defaults and flags), presets and builder as a ``ModelSpec``, trained by ``train_scripts/ddim.py``."""

from dataclasses import dataclass

from data.errors import I2IError
from train_scripts.training.config import ModelSpec, preset, widths_list
from train_scripts.training.models.autoencoder import autoencoder_config, autoencoder_run, load_autoencoder
from train_scripts.training.settings import arguments_for, from_config, setting


@dataclass
class DDIMSettings:
    """The DDIM's own settings: defaults (study Tables 4-6, conditional), and the help of their flags."""

    latent: str = setting(None, "run folder of a trained autoencoder (train_scripts/autoencoder.py): diffuse its "
                                "latents, conditioned on the label map area-resized to the latent size (the latent "
                                "preset)")
    conditional: bool = setting(True, "concatenate the label map to the network input (--unconditional / "
                                      "--no-conditional: the study's setting, which samples photos and ignores the "
                                      "label map)")
    condition_every_level: bool = setting(False, "also concatenate the label map, average-pooled, at every level of "
                                                 "the study U-Net (not in Table 4, which feeds it to the first layer "
                                                 "only)")
    network: str = setting("study", "study (Table 4 U-Net) | attention (Ho et al. 2020's: group norm, time MLP, "
                                    "attention at 16x16)", ("study", "attention"))
    widths: list = setting([64, 128, 256, 256], "level widths, e.g. 64,128,256,256 (Table 4); study: input C = first "
                                                "/ 2, bottleneck R = 2 x last", parse=widths_list)
    block_depth: int = setting(2, "residual blocks per level (Table 4: 2)")
    schedule: str = setting("cosine-angle", "noise schedule", ("cosine-angle", "linear", "cosine", "sigmoid"))
    max_signal_rate: float = setting(0.95, "cosine-angle: signal rate at t = 0 (study 0.95; noise rate "
                                           "sqrt(1 - s^2))")
    min_signal_rate: float = setting(0.02, "cosine-angle: signal rate at t = 1 (study 0.02)")
    prediction: str = setting("noise", "what the network predicts: noise (eps, eq. 8, the study) | velocity (v = s eps "
                                       "- n x_0, Salimans & Ho 2022; trained on the v error, noise loss still logged) "
                                       "| image (x_0)", ("noise", "velocity", "image"))
    loss_weighting: str = setting("none", "per-time weights of the trained error: none | min-snr (Hang et al. 2023: "
                                          "x_0 error weighted by min(SNR, gamma)) | clipped-snr (x_0 error weighted "
                                          "by clip(SNR, 1, gamma))", ("none", "min-snr", "clipped-snr"))
    min_snr_gamma: float = setting(5.0, "gamma of the min-SNR and clipped-SNR weightings")
    sampler: str = setting("ddim", "reverse process: ddim (eta) | ddpm (ancestral, Algorithm 2)", ("ddim", "ddpm"))
    sampling_steps: int = setting(20, "sampling steps for sample grids and scores")
    eta: float = setting(0.0, "DDIM stochasticity: 0 deterministic, 1 = DDPM posterior variance")
    clip_denoised: bool = setting(False, "clip every x_0 estimate to [-1, 1] while sampling")
    guidance: float = setting(0.0, "classifier-free guidance weight w: eps = (1 + w) eps(x, label) - w eps(x, null)")
    condition_dropout: float = setting(0.0, "fraction of training label maps replaced by the null label (for "
                                            "guidance)")
    ema: float = setting(0.999, "EMA decay of the sampling weights (keras.io DDIM example: 0.999)")
    ema_warmup: bool = setting(False, "EMA decay min(ema, (1 + k) / (10 + k)) at update k")
    lr: float = setting(1e-4, "AdamW learning rate (Table 6: 1e-4)")
    beta_1: float = setting(0.5, "AdamW beta_1 (Table 6: 0.5)")
    beta_2: float = setting(0.999, "AdamW beta_2 (Table 6: 0.999)")
    weight_decay: float = setting(5e-5, "AdamW weight decay (Table 6: 5e-5)")
    sample_seed: int = setting(0, "seed of the sampler's noise (translations are reproducible)")
    kid_every: int = setting(0, "steps between validation KID scores (multiple of --log-every; 0 = off)")
    kid_images: int = setting(0, "validation images for the KID (0 = all)")
    kid_sampling_steps: int = setting(10, "sampling steps for the validation KID")
    kid_backbone: str = setting("alexnet", "KID features: alexnet (offline; not comparable with published KID) | "
                                           "inception | fid-inception", ("alexnet", "inception", "fid-inception"))


PRESETS = {
    # Study Tables 4-6: Table 4's U-Net at 64 px, cosine-angle schedule with signal rates 0.95 -> 0.02, batch 2,
    # 50 epochs of the 6x expanded facades (2400 pairs -> 1200 steps per epoch), AdamW lr 1e-4 (0.5, 0.999),
    # weight decay 5e-5, EMA 0.999 (the keras.io DDIM example's); one log row, validation and KID per epoch (Fig. 7).
    # Conditional by default (--unconditional for the study's exact setting).
    "paper": preset(DDIMSettings, data="facades", image_size=64, expand=6, batch_size=2, steps=60000,
                    widths=[64, 128, 256, 256], max_signal_rate=0.95, lr=1e-4, weight_decay=5e-5, ema_warmup=False,
                    sampling_steps=20, clip_denoised=False, log_every=1200, checkpoint_every=1200, sample_every=6000,
                    val_images=0, kid_every=1200, kid_images=0, kid_sampling_steps=10),
    # Synthetic facades at 64 px (the comparison's resolution), ~5 minutes on 2 idle CPU cores (1200 steps of
    # ~0.2 s), conditional: the network predicts the photo x_0; the label map enters every level of the U-Net;
    # max signal rate 0.999; x_0 estimates clipped to [-1, 1]; a narrow Table 4 U-Net (widths 16-128); batch 8;
    # AdamW 1e-3 (keras.io's rate); EMA 0.995 with warm-up; 20 DDIM steps with eta = 1. Each choice was measured:
    # results/README.md, "Design notes".
    "quick": preset(DDIMSettings, data="synthetic", image_size=64, batch_size=8, steps=1200,
                    widths=[16, 32, 64, 128], max_signal_rate=0.999, prediction="image", condition_every_level=True,
                    lr=1e-3, beta_1=0.9, weight_decay=1e-4, ema=0.995, ema_warmup=True, sampling_steps=20, eta=1.0,
                    clip_denoised=True, log_every=100, checkpoint_every=300, sample_every=600, val_images=32,
                    kid_every=600, kid_images=32, kid_sampling_steps=10),
    # The DDIM on the 32x32x4 latents of a 256 px autoencoder (--latent RUN, train_scripts/autoencoder.py): the quick
    # preset's measured choices (x_0 prediction, the label map at every level, AdamW 1e-3, EMA 0.995 with warm-up,
    # eta = 1) at twice its widths, since a 32x32 latent costs a quarter of a 64 px photo per level; latents are not
    # clipped. The fixed 6x augmentation is encoded once. Validation KID on 20 val photos with the FID Inception.
    "latent": preset(DDIMSettings, data="facades", image_size=256, expand=6, batch_size=8, steps=100000, latent="",
                     widths=[32, 64, 128, 256], max_signal_rate=0.999, prediction="image", condition_every_level=True,
                     lr=1e-3, beta_1=0.9, weight_decay=1e-4, ema=0.995, ema_warmup=True, sampling_steps=20, eta=1.0,
                     clip_denoised=False, log_every=200, checkpoint_every=1000, sample_every=5000, val_images=32,
                     kid_every=5000, kid_images=20, kid_sampling_steps=10, kid_backbone="fid-inception"),
}


def build(config, autoencoder=None, noise_seed=None):
    """The DDIM of ``config``: on photos, or with ``latent`` (an autoencoder run) on that autoencoder's latents
    (``autoencoder``: that autoencoder, already built); ``noise_seed``: its sampler's seed (default:
    ``sample_seed``)."""
    import keras

    from models.diffusion import NetworkSettings, SamplerSettings, named_schedule
    from models.diffusion.latent import LatentDiffusionModel
    from models.diffusion.model import DiffusionModel

    settings = from_config(DDIMSettings, config)
    if settings.latent:  # runs saved before --latent existed have no such key: None
        autoencoder = autoencoder or load_autoencoder(settings.latent)
        model_class, space = LatentDiffusionModel, {"autoencoder": autoencoder}
    else:
        model_class, space = DiffusionModel, {}
    # the model's three parts: its network (LatentDiffusionModel builds it at the latents' size), schedule, sampler
    network = NetworkSettings(**arguments_for(settings, NetworkSettings, name=settings.network,
                                              image_size=config["image_size"], widths=tuple(settings.widths),
                                              condition_channels=3 if settings.conditional else 0))
    schedule = named_schedule(**arguments_for(settings, named_schedule))
    # a seed given when loading (translate.py --seed) replaces the run's sample_seed
    seeds = {} if noise_seed is None else {"sample_seed": noise_seed}
    sampling = SamplerSettings(**arguments_for(settings, SamplerSettings, **seeds))
    model = model_class(**space, **arguments_for(settings, DiffusionModel, network=network, schedule=schedule,
                                                 sampling=sampling, seed=config["seed"]))
    optimizer = keras.optimizers.AdamW(**arguments_for(settings, keras.optimizers.AdamW, learning_rate=settings.lr))
    model.compile(optimizer=optimizer, jit_compile=config["jit_compile"],
                  steps_per_execution=config["steps_per_execution"])
    return model


def check_latent(config):
    """With ``latent``: an autoencoder run with weights, trained at this run's image size."""
    if "latent" not in config:
        return
    if not config["latent"]:
        raise I2IError("the latent preset diffuses an autoencoder's latents: give its run folder with --latent RUN "
                       "(train one with train_scripts/autoencoder.py)")
    autoencoder = autoencoder_config(autoencoder_run(config["latent"]))
    if autoencoder["image_size"] != config["image_size"]:
        raise I2IError(f"the autoencoder of {config['latent']} was trained at {autoencoder['image_size']} px, this "
                       f"run is at --image-size {config['image_size']}")


def callbacks(config, model, val_pairs, run):
    """Validation KID per interval (study Fig. 7), sampled with ``kid_sampling_steps`` steps to stay cheap."""
    from train_scripts.training.validation import kid_callbacks

    return kid_callbacks(config, val_pairs,
                         lambda labels: model.translate(labels, sampling_steps=config["kid_sampling_steps"]))


SPEC = ModelSpec(
    name="ddim",
    description="DDIM/DDPM: noise-prediction U-Net (Table 4), EMA sampling weights, conditional on the label map "
                "by default (study section 3.6, Tables 4-6).",
    settings=DDIMSettings,
    presets=PRESETS,
    build=build,
    callbacks=callbacks,
    check=check_latent,
    name_of=lambda config: "ddim-latent" if config.get("latent") else "ddim",
    inference=("sampler", "sampling_steps", "eta", "guidance", "clip_denoised", "sample_seed"),
    noise_seed="sample_seed",
    sampler_settings=("sampler", "sampling_steps", "eta", "guidance"),
)


def cli_arguments(argv):
    """``--unconditional`` is ``--no-conditional``."""
    return ["--no-conditional" if a == "--unconditional" else a for a in argv]
