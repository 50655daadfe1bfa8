"""The DDIM / DDPM diffusion model (study section 3.6, Tables 4-6), on photos or on an autoencoder's latents:
its ``ModelSpec`` (presets, builder, flags), trained by ``train_scripts/ddim.py``."""

from data.errors import I2IError
from train_scripts.training.config import PRESET_DEFAULTS, ModelSpec, widths_list
from train_scripts.training.models.autoencoder import autoencoder_config, autoencoder_run, load_autoencoder

COMMON = dict(PRESET_DEFAULTS, network="study", block_depth=2, conditional=True, schedule="cosine-angle",
              min_signal_rate=0.02, sampler="ddim", eta=0.0, guidance=0.0, condition_dropout=0.0, ema=0.999,
              beta_1=0.5, beta_2=0.999, sample_seed=0, kid_backbone="alexnet", prediction="noise",
              condition_every_level=False, loss_weighting="none", min_snr_gamma=5.0)

PRESETS = {
    # Study Tables 4-6: Table 4's U-Net at 64 px, cosine-angle schedule with signal rates 0.95 -> 0.02, batch 2,
    # 50 epochs of the 6x expanded facades (2400 pairs -> 1200 steps per epoch), AdamW lr 1e-4 (0.5, 0.999),
    # weight decay 5e-5, EMA 0.999 (the keras.io DDIM example's); one log row, validation and KID per epoch (Fig. 7).
    # Conditional by default (--unconditional for the study's exact setting).
    "paper": dict(COMMON, data="facades", image_size=64, expand=6, batch_size=2, steps=60000,
                  widths=[64, 128, 256, 256],
                  max_signal_rate=0.95, lr=1e-4, weight_decay=5e-5, ema_warmup=False, sampling_steps=20,
                  clip_denoised=False, log_every=1200, checkpoint_every=1200, sample_every=6000, val_images=0,
                  kid_every=1200, kid_images=0, kid_sampling_steps=10),
    # Synthetic facades at 64 px (the comparison's resolution), ~5 minutes on 2 idle CPU cores (1200 steps of
    # ~0.2 s), conditional: the network predicts the photo x_0; the label map enters every level of the U-Net;
    # max signal rate 0.999; x_0 estimates clipped to [-1, 1]; a narrow Table 4 U-Net (widths 16-128); batch 8;
    # AdamW 1e-3 (keras.io's rate); EMA 0.995 with warm-up; 20 DDIM steps with eta = 1. Each choice was measured:
    # results/README.md, "Design notes".
    "quick": dict(COMMON, data="synthetic", image_size=64, batch_size=8, steps=1200, widths=[16, 32, 64, 128],
                  max_signal_rate=0.999, prediction="image", condition_every_level=True, lr=1e-3, beta_1=0.9,
                  weight_decay=1e-4, ema=0.995, ema_warmup=True, sampling_steps=20, eta=1.0, clip_denoised=True,
                  log_every=100, checkpoint_every=300, sample_every=600, val_images=32, kid_every=600,
                  kid_images=32, kid_sampling_steps=10),
    # The DDIM on the 32x32x4 latents of a 256 px autoencoder (--latent RUN, train_scripts/autoencoder.py): the quick
    # preset's measured choices (x_0 prediction, the label map at every level, AdamW 1e-3, EMA 0.995 with warm-up,
    # eta = 1) at twice its widths, since a 32x32 latent costs a quarter of a 64 px photo per level; latents are not
    # clipped. The fixed 6x augmentation is encoded once. Validation KID on 20 val photos with the FID Inception.
    "latent": dict(COMMON, data="facades", image_size=256, expand=6, batch_size=8, steps=100000, latent="",
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

    from models.diffusion.latent import LatentDiffusionModel
    from models.diffusion.model import DiffusionModel

    if config.get("latent"):  # runs saved before --latent existed have no such key
        autoencoder = autoencoder or load_autoencoder(config["latent"])
        model_class, space = LatentDiffusionModel, {"autoencoder": autoencoder}
    else:
        model_class, space = DiffusionModel, {"image_size": config["image_size"]}
    model = model_class(
        **space, network=config["network"], widths=config["widths"],
        block_depth=config["block_depth"], conditional=config["conditional"], schedule=config["schedule"],
        max_signal_rate=config["max_signal_rate"], min_signal_rate=config["min_signal_rate"], ema=config["ema"],
        ema_warmup=config["ema_warmup"], condition_dropout=config["condition_dropout"], guidance=config["guidance"],
        sampler=config["sampler"], sampling_steps=config["sampling_steps"], eta=config["eta"],
        clip_denoised=config["clip_denoised"], prediction=config["prediction"],
        # .get: runs saved before these options existed trained without them
        loss_weighting=config.get("loss_weighting", "none"), min_snr_gamma=config.get("min_snr_gamma", 5.0),
        condition_every_level=config.get("condition_every_level", False),
        sample_seed=config["sample_seed"] if noise_seed is None else noise_seed,
        seed=config["seed"])
    optimizer = keras.optimizers.AdamW(config["lr"], weight_decay=config["weight_decay"], beta_1=config["beta_1"],
                                       beta_2=config["beta_2"])
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
    presets=PRESETS,
    build=build,
    callbacks=callbacks,
    check=check_latent,
    name_of=lambda config: "ddim-latent" if config.get("latent") else "ddim",
    arguments={
        "latent": (str, "run folder of a trained autoencoder (train_scripts/autoencoder.py): diffuse its latents, "
                        "conditioned on the label map area-resized to the latent size (the latent preset)"),
        "conditional": (bool, "concatenate the label map to the network input (--unconditional / --no-conditional: "
                              "the study's setting, which samples photos and ignores the label map)"),
        "condition_every_level": (bool, "also concatenate the label map, average-pooled, at every level of the "
                                        "study U-Net (not in Table 4, which feeds it to the first layer only)"),
        "network": (str, "study (Table 4 U-Net) | attention (Ho et al. 2020's: group norm, time MLP, attention at "
                         "16x16)",
                    ("study", "attention")),
        "widths": (widths_list, "level widths, e.g. 64,128,256,256 (Table 4); study: input C = first / 2, "
                                "bottleneck R = 2 x last"),
        "block_depth": (int, "residual blocks per level (Table 4: 2)"),
        "schedule": (str, "noise schedule", ("cosine-angle", "linear", "cosine", "sigmoid")),
        "max_signal_rate": (float, "cosine-angle: signal rate at t = 0 (study 0.95; noise rate sqrt(1 - s^2))"),
        "min_signal_rate": (float, "cosine-angle: signal rate at t = 1 (study 0.02)"),
        "prediction": (str, "what the network predicts: noise (eps, eq. 8, the study) | velocity (v = s eps - n x_0, "
                            "Salimans & Ho 2022; trained on the v error, noise loss still logged) | image (x_0)",
                       ("noise", "velocity", "image")),
        "loss_weighting": (str, "per-time weights of the trained error: none | min-snr (Hang et al. 2023: x_0 error "
                                "weighted by min(SNR, gamma)) | clipped-snr (x_0 error weighted by "
                                "clip(SNR, 1, gamma))",
                           ("none", "min-snr", "clipped-snr")),
        "min_snr_gamma": (float, "gamma of the min-SNR and clipped-SNR weightings"),
        "sampler": (str, "reverse process: ddim (eta) | ddpm (ancestral, Algorithm 2)", ("ddim", "ddpm")),
        "sampling_steps": (int, "sampling steps for sample grids and scores"),
        "eta": (float, "DDIM stochasticity: 0 deterministic, 1 = DDPM posterior variance"),
        "clip_denoised": (bool, "clip every x_0 estimate to [-1, 1] while sampling"),
        "guidance": (float, "classifier-free guidance weight w: eps = (1 + w) eps(x, label) - w eps(x, null)"),
        "condition_dropout": (float, "fraction of training label maps replaced by the null label (for guidance)"),
        "ema": (float, "EMA decay of the sampling weights (keras.io DDIM example: 0.999)"),
        "ema_warmup": (bool, "EMA decay min(ema, (1 + k) / (10 + k)) at update k"),
        "lr": (float, "AdamW learning rate (Table 6: 1e-4)"),
        "beta_1": (float, "AdamW beta_1 (Table 6: 0.5)"),
        "beta_2": (float, "AdamW beta_2 (Table 6: 0.999)"),
        "weight_decay": (float, "AdamW weight decay (Table 6: 5e-5)"),
        "sample_seed": (int, "seed of the sampler's noise (translations are reproducible)"),
        "kid_every": (int, "steps between validation KID scores (multiple of --log-every; 0 = off)"),
        "kid_images": (int, "validation images for the KID (0 = all)"),
        "kid_sampling_steps": (int, "sampling steps for the validation KID"),
        "kid_backbone": (str, "KID features: alexnet (offline; not comparable with published KID) | inception | "
                              "fid-inception", ("alexnet", "inception", "fid-inception")),
    },
    inference=("sampler", "sampling_steps", "eta", "guidance", "clip_denoised", "sample_seed"),
    noise_seed="sample_seed",
    sampler_settings=("sampler", "sampling_steps", "eta", "guidance"),
)


def cli_arguments(argv):
    """``--unconditional`` is ``--no-conditional``."""
    return ["--no-conditional" if a == "--unconditional" else a for a in argv]
