"""Using a trained run or an exported model: rebuild its model from ``config.json`` and load its latest (or exported)
weights, translate a split or a batch of label maps, and the quick PSNR/SSIM a train script prints when it ends
(``evaluate.py`` scores the full metric suite)."""

import json
import os
import random

import numpy as np

from data.errors import I2IError, LayoutError
from data.pipeline import eval_dataset, to_uint8
from data.sources import PairArrays
from metrics.image_quality import psnr, ssim
from train_scripts.training.config import COMMON_DEFAULTS, TRANSLATE_BATCH_SIZE, parse_inference_settings
from train_scripts.training.devices import build_model, precision_policy
from train_scripts.training.export_folder import ExportFolder, is_export
from train_scripts.training.models.autoencoder import untrained_autoencoder
from train_scripts.training.registry import spec_for
from train_scripts.training.run_folder import RunFolder


def translating_config(spec, saved_config, inference, seed):
    """The config a run of ``spec`` translates with: its saved config and the ``--set`` settings ``inference``.
    Refuses a ``seed`` given together with a ``--set`` of the seed it replaces (the DDIM's ``sample_seed``)."""
    settings = parse_inference_settings(spec, inference)
    if seed is not None and spec.noise_seed in settings:
        raise I2IError(f"--seed and --set {spec.noise_seed} both set the seed of the {spec.name}'s test-time noise; "
                       "give one of them")
    return {**COMMON_DEFAULTS, **saved_config, **settings}


def build_translator(spec, config, seed=None, **build_args):
    """``build_model`` for translating: the model's own test-time noise (``ModelSpec.noise_seed``) starts from
    ``seed`` (default: the run's, ``config[spec.noise_seed]``), so its outputs do not depend on what ran before.

    Nothing is reseeded: Keras draws the default seeds of a model's initializers and dropout layers from Python's
    ``random`` while building it, and its state is given back after, so loading leaves the caller's draws alone."""
    if spec.noise_seed is not None:
        build_args["noise_seed"] = int(config[spec.noise_seed] if seed is None else seed)
    state = random.getstate()
    try:
        return build_model(spec, config, **build_args)
    finally:
        random.setstate(state)


def load_trained(run_dir, inference=None, seed=None, weights=None):
    """Rebuild a run's model from its config and load its latest weights: (spec, config, model, run).

    ``run_dir`` may also be an exported model (``export.py``; ``run`` is then its :class:`ExportFolder`).
    ``inference``: ``KEY=VALUE`` strings changing test-time settings only (see :func:`parse_inference_settings`).
    ``seed``: the seed of the model's own test-time noise (CVAE z, cGAN noise, dropout at test, the DDIM's sampler;
    see :func:`build_translator`); default the run's own. ``translate(labels, seed=S)`` draws from ``S`` instead.
    ``weights``: a weights file of the run to load instead of ``model.weights.h5`` (a snapshot of ``--keep-every``).
    """
    if is_export(run_dir):
        return load_export(run_dir, inference, seed)
    run = RunFolder(run_dir)
    saved = run.read_config()
    if not isinstance(saved, dict) or "model" not in saved or not isinstance(saved.get("config"), dict):
        raise I2IError(f"{run.config_path}: not the config of a run (no 'model' and 'config' entries)")
    spec = spec_for(saved["model"])
    config = translating_config(spec, saved["config"], inference, seed)
    weights = weights or run.file("model.weights.h5")
    if not os.path.exists(weights):
        raise I2IError(f"{weights}: missing (the run has not reached its first checkpoint, or the file was removed)")
    model = build_translator(spec, config, seed)
    try:
        model.load_weights(weights)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise I2IError(
            f"{weights}: cannot load ({type(e).__name__}: {e}). The file is truncated or corrupt, or holds the "
            f"weights of another model or resolution than {run.config_path} describes "
            f"({saved['model']} at {config.get('image_size')} px)") from None
    return spec, config, model, run


def load_export(path, inference=None, seed=None):
    """:func:`load_trained` of an exported model: the model rebuilt from its ``config.json`` as its run's is, and
    the exported weights (each file checked against ``export.json``) loaded into the networks that translate."""
    folder = ExportFolder(path)
    manifest, saved = folder.manifest(), folder.read_config()
    spec = spec_for(saved["model"])
    config = translating_config(spec, saved["config"], inference, seed)
    state = random.getstate()  # as build_translator: building draws default seeds from Python's random
    try:
        if spec.name == "autoencoder":  # its LPIPS network is for training only
            with precision_policy(config):
                model = untrained_autoencoder(config)
        elif config.get("latent"):  # the latent DDIM's autoencoder comes from the export, not from its run folder
            if "autoencoder" not in manifest:
                raise I2IError(f"{folder.manifest_path}: a latent DDIM's export must hold its autoencoder's config")
            with precision_policy(config):
                autoencoder = untrained_autoencoder(manifest["autoencoder"]["config"])
            model = build_translator(spec, config, seed, autoencoder=autoencoder)
        else:
            model = build_translator(spec, config, seed)
    finally:
        random.setstate(state)
    networks = model.translating_weights()
    if sorted(networks) != folder.networks():
        raise I2IError(f"{folder.manifest_path} holds the networks {', '.join(folder.networks())}, but a "
                       f"{spec.model_name(config)} of {folder.config_path} translates with "
                       f"{', '.join(sorted(networks))}")
    for network, variables in networks.items():
        arrays = folder.read_weights(network)
        path = folder.file(manifest["files"][network]["file"])
        shapes = [tuple(v.shape) for v in variables]
        if len(arrays) != len(variables) or any(a.shape != shape for a, shape in zip(arrays, shapes)):
            raise I2IError(f"{path}: its arrays do not fit the {network} of {folder.config_path} "
                           f"({len(arrays)} arrays, the network has {len(variables)} variables"
                           f"{'' if len(arrays) != len(variables) else ' of other shapes'}): the weights belong to "
                           f"another config")
        for variable, array in zip(variables, arrays):
            variable.assign(array.astype(variable.dtype))
    return spec, config, model, folder


def translate_split(model, pairs, batch_size=TRANSLATE_BATCH_SIZE, translate=None, reconstruct=False):
    """Translate every label map of ``pairs`` (``reconstruct``: every photo, for an autoencoder); returns uint8
    outputs (n, H, W, 3)."""
    translate = translate or model.translate
    outs = [to_uint8(translate(photo if reconstruct else label))
            for label, photo in eval_dataset(pairs.labels, pairs.photos, batch_size)]
    return np.concatenate(outs)


def load_translator(run_dir, settings, seed=None):
    """:func:`load_trained` of a run or export that translates label maps (translate.py, the demo): refuses the
    autoencoder, which reconstructs photos, and warns of a run that has not finished training. ``seed``: the seed
    of the model's own test-time noise (default: the run's)."""
    spec, config, model, run = load_trained(run_dir, settings, seed=seed)
    if spec.reconstructs:
        what = "an export" if isinstance(run, ExportFolder) else "a run"
        how = ("" if isinstance(run, ExportFolder) else
               f"; train a latent DDIM on it: python train_scripts/ddim.py --latent {run.path} ...")
        raise I2IError(f"{run.path} is {what} of the {spec.name}, which reconstructs photos and translates no label "
                       f"maps{how}")
    if not run.progress().get("finished"):
        print(f"warning: {run.path} has not finished training; translating with its latest checkpoint")
    return spec, config, model, run


def translate_batch(model, translate, batch, batch_size):
    """Translate ``[(name, label, shape), ...]`` (uint8 label maps of the model's size) with :func:`translate_split`
    (evaluate.py's batching); returns uint8 outputs."""
    labels = np.stack([label for _, label, _ in batch])
    pairs = PairArrays(labels, labels, [name for name, _, _ in batch])  # no photos: the labels stand in, unused
    return translate_split(model, pairs, batch_size=batch_size, translate=translate)


def saved_quick_scores(run, config):
    """The scores :func:`quick_scores` saved for the run's current weights, or None (none saved, or older)."""
    weights = run.file("model.weights.h5")
    for split in dict.fromkeys((config["eval_split"], "val")):  # quick_scores falls back to val
        path = run.file(f"scores_{split}.json")
        if os.path.exists(path) and os.path.exists(weights) and os.path.getmtime(path) >= os.path.getmtime(weights):
            try:
                with open(path) as f:
                    scores = json.load(f)
            except ValueError:
                return None
            if {"split", "n_images", "psnr", "ssim"} <= set(scores):
                return scores
    return None


def print_quick_scores(scores):
    print(f"{scores['split']}: PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f} on {scores['n_images']} images")


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
    print_quick_scores(scores)
    return scores
