"""Using a trained run: rebuild its model from ``config.json`` and its latest weights, translate a split, and the
quick PSNR/SSIM a train script prints when it ends (``evaluate.py`` scores the full metric suite)."""

import json
import os

import keras
import numpy as np

from data.errors import I2IError, LayoutError
from data.pipeline import eval_dataset, to_uint8
from metrics.image_quality import psnr, ssim
from train_scripts.config import COMMON_DEFAULTS, parse_inference_settings, spec_for
from train_scripts.devices import build_model
from train_scripts.run_folder import RunFolder

def load_trained(run_dir, inference=None, seed=None):
    """Rebuild a run's model from its config and load its latest weights: (spec, config, model, run).

    ``inference``: ``KEY=VALUE`` strings changing test-time settings only (see :func:`parse_inference_settings`).
    ``seed``: the random seed of test-time noise (CVAE z, cGAN noise, dropout at test); default the run's own.
    """
    run = RunFolder(run_dir)
    saved = run.read_config()
    if not isinstance(saved, dict) or "model" not in saved or not isinstance(saved.get("config"), dict):
        raise I2IError(f"{run.config_path}: not the config of a run (no 'model' and 'config' entries)")
    spec = spec_for(saved["model"])
    config = {**COMMON_DEFAULTS, **saved["config"], **parse_inference_settings(spec, inference)}
    weights = run.file("model.weights.h5")
    if not os.path.exists(weights):
        raise I2IError(f"{weights}: missing (the run has not reached its first checkpoint, or the file was removed)")
    # stochastic translate (CVAE z, dropout) gives the same outputs each time: its seed generators start from this
    keras.utils.set_random_seed(config["seed"] if seed is None else seed)
    model = build_model(spec, config)
    try:
        model.load_weights(weights)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise I2IError(
            f"{weights}: cannot load ({type(e).__name__}: {e}). The file is truncated or corrupt, or holds the "
            f"weights of another model or resolution than {run.config_path} describes "
            f"({saved['model']} at {config.get('image_size')} px)") from None
    return spec, config, model, run


def translate_split(model, pairs, batch_size=8, translate=None, reconstruct=False):
    """Translate every label map of ``pairs`` (``reconstruct``: every photo, for an autoencoder); returns uint8
    outputs (n, H, W, 3)."""
    translate = translate or model.translate
    outs = [to_uint8(translate(photo if reconstruct else label))
            for label, photo in eval_dataset(pairs.labels, pairs.photos, batch_size)]
    return np.concatenate(outs)


def quick_scores(model, source, config, run, reconstruct=False):
    """PSNR and SSIM on the eval split (of the reconstructions, for an autoencoder), saved to
    ``scores_<split>.json`` and printed."""
    split = config["eval_split"]
    try:
        pairs = source.load(split, config["image_size"])
    except LayoutError:
        split = "val"
        print(f"note: no '{config['eval_split']}' split in {config['data']}; scoring on 'val'")
        pairs = source.load(split, config["image_size"])
    fakes = translate_split(model, pairs, reconstruct=reconstruct)
    scores = {"split": split, "n_images": len(pairs), "psnr": float(psnr(fakes, pairs.photos).mean()),
              "ssim": float(ssim(fakes, pairs.photos).mean()), "steps": config["steps"]}
    with open(run.file(f"scores_{split}.json"), "w") as f:
        json.dump(scores, f, indent=2)
    print(f"{split}: PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f} on {scores['n_images']} images")
    return scores
