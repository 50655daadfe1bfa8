"""Exporting a trained run: the smallest folder that translates (``config.json``, one ``<network>.weights.npz`` per
network that ``translate`` uses, ``export.json`` with the training record and each file's sha256), written atomically;
``export_folder.py`` reads it back. ``export.py`` is its command."""

import json
import math
import os
import re
import shutil
import tempfile

import keras

from data.errors import I2IError
from train_scripts.training.callbacks import RunCheckpoint, snapshot_name
from train_scripts.training.export_folder import (
    FORMAT,
    PRECISIONS,
    is_export,
    stored_arrays,
    weights_file_name,
    write_weights,
)
from train_scripts.training.inference import load_trained
from train_scripts.training.models.autoencoder import autoencoder_config, autoencoder_run
from train_scripts.training.results import run_training_record
from train_scripts.training.run_folder import EXPORT_MANIFEST, RunFolder, atomic_write_text, environment

SNAPSHOTS = "snapshots"  # the folder of KeepWeights (--keep-every) in a run


def snapshot_steps(run):
    """The steps whose weights ``--keep-every`` kept in ``RUN/snapshots/``, ascending."""
    folder = run.file(SNAPSHOTS)
    names = os.listdir(folder) if os.path.isdir(folder) else []
    steps = [int(m.group(1)) for m in map(re.compile(r"step_(\d+)\.weights\.h5$").match, names) if m]
    return sorted(s for s in steps if snapshot_name(s) in names)


def check_source(run_dir):
    """The run folder to export: a folder with ``config.json`` that is not itself an export."""
    if not os.path.isdir(run_dir):
        raise I2IError(f"{run_dir}: {'not a folder' if os.path.exists(run_dir) else 'no such folder'}")
    if is_export(run_dir):
        raise I2IError(f"{run_dir} is already an exported model ({EXPORT_MANIFEST}); export its run instead")
    run = RunFolder(run_dir)
    run.read_config()  # "not a run folder (no config.json)"
    return run


def check_out_dir(run, out_dir):
    """Refuse an OUT_DIR that is the run itself, a file, or a folder with files in it."""
    if os.path.realpath(out_dir) == os.path.realpath(run.path):
        raise I2IError(f"{out_dir}: is the run itself; choose a new folder for the export")
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise I2IError(f"{out_dir}: exists and is not a folder")
        if os.listdir(out_dir):
            raise I2IError(f"{out_dir}: exists and is not empty; choose a new folder for the export")


def snapshot_file(run, step):
    """``RUN/snapshots/step_<N>.weights.h5``, refused with the list of kept steps when there is none at ``step``."""
    path = run.file(SNAPSHOTS, snapshot_name(step))
    if not os.path.isfile(path):
        kept = snapshot_steps(run)
        listed = (f"it kept steps {', '.join(map(str, kept))}" if kept else
                  "it kept none (train with --keep-every N to keep the weights every N steps)")
        raise I2IError(f"{run.file(SNAPSHOTS)}: no snapshot at step {step} ({snapshot_name(step)}); {listed}")
    return path


def latest_step(run, config):
    """The step of ``model.weights.h5``: the last checkpoint's (the resume backup's), else the sessions' last step."""
    saved = RunCheckpoint(run.file("backup")).saved_epoch() * config["log_every"]
    return saved or run.progress().get("steps") or run_training_record(run, config)[0]


def no_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def manifest_of(run, spec, config, saved, files, precision, step):
    """``export.json``: what was exported from where, how long it trained, and each file's size and sha256."""
    steps, wall, commit = run_training_record(run, config, step)
    manifest = {
        "format": FORMAT, "model": saved["model"], "model_name": spec.model_name(config),
        "preset": saved.get("preset"), "image_size": config["image_size"], "precision": precision,
        "source_run": os.path.basename(run.path), "step": step if step is not None else latest_step(run, config),
        "snapshot": step is not None, "run_finished": bool(run.progress().get("finished")),
        "training": {"steps": steps, "wall_time_s": no_nan(wall), "commit": commit},
        "exported_with": {k: v for k, v in environment().items() if k in ("commit", "tensorflow", "keras", "numpy")},
        "files": files,
    }
    if config.get("latent"):  # rebuilt from the export when loaded, without the autoencoder's run folder
        autoencoder = autoencoder_run(config["latent"])
        manifest["autoencoder"] = {"source_run": os.path.basename(autoencoder.path),
                                   "config": autoencoder_config(autoencoder)}
    return manifest


def export(run_dir, out_dir, precision="float32", step=None):
    """Write the export of ``run_dir`` (its latest weights, or its snapshot at ``step``) to ``out_dir``; returns the
    manifest. Written into a temporary folder beside ``out_dir`` and renamed: an interrupted export leaves nothing."""
    if precision not in PRECISIONS:
        raise I2IError(f"--precision {precision}: choose {' or '.join(PRECISIONS)}")
    run = check_source(run_dir)
    check_out_dir(run, out_dir)
    spec, config, model, run = load_trained(run.path, weights=snapshot_file(run, step) if step is not None else None)
    if not run.progress().get("finished") and step is None:
        print(f"warning: {run.path} has not finished training; exporting its latest checkpoint")
    parent = os.path.dirname(os.path.abspath(out_dir))
    try:
        os.makedirs(parent, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=".export-", dir=parent)
    except OSError as e:
        raise I2IError(f"{out_dir}: cannot create ({e.strerror or e})") from None
    try:
        files = {}
        for network, variables in model.translating_weights().items():
            arrays = stored_arrays([keras.ops.convert_to_numpy(v) for v in variables], precision, network)
            files[network] = write_weights(os.path.join(scratch, weights_file_name(network)), arrays)
        shutil.copyfile(run.config_path, os.path.join(scratch, "config.json"))
        manifest = manifest_of(run, spec, config, run.read_config(), files, precision, step)
        atomic_write_text(os.path.join(scratch, EXPORT_MANIFEST), json.dumps(manifest, indent=2) + "\n")
        os.chmod(scratch, 0o755)
        os.rename(scratch, out_dir)  # replaces an empty OUT_DIR
    except OSError as e:
        raise I2IError(f"{out_dir}: cannot write the export ({e.strerror or e})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest
