"""A run folder and its files (README, "Run folders"): config, sessions with their environment, progress, the CSV
log, and atomic writes of text and weights (a kill during a write leaves the previous file intact)."""

import csv
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile

from data.errors import I2IError
from train_scripts.training.config import COMMON_DEFAULTS, REPO_ROOT

# The manifest that marks a folder as an exported model (``train_scripts/export.py``), not a run to train.
EXPORT_MANIFEST = "export.json"

def environment():
    """Commit, library versions and device, recorded with every session of a run."""
    import keras
    import numpy
    import tensorflow as tf

    def git(*cmd):
        try:
            done = subprocess.run(["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    return {
        "commit": commit,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "device": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        },
        "platform": platform.platform(),
    }


def cpu_name():
    """The processor's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            return names[0]
    except OSError:
        pass
    return platform.processor() or platform.machine()


class RunFolder:
    """One training run on disk."""

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def config_path(self):
        return self.file("config.json")

    def read_config(self):

        try:
            with open(self.config_path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise I2IError(f"{self.path}: not a run folder (no config.json)") from None
        except (OSError, ValueError) as e:
            raise I2IError(f"{self.config_path}: unreadable ({e})") from None

    def open(self, model, preset, config):
        """Create the folder, or check that it holds a run of this model with this config and can be written."""
        if os.path.exists(self.file(EXPORT_MANIFEST)):
            raise I2IError(f"{self.path} is an exported model ({EXPORT_MANIFEST}: the weights that translate, without "
                           f"the optimizer state or resume backup), not a run folder: it cannot be trained or "
                           f"resumed; train into another folder with --out")
        if os.path.exists(self.config_path):
            saved = self.read_config()
            if saved.get("model") != model:
                raise I2IError(
                    f"{self.path} holds a {saved.get('model', 'unknown')} run, not {model}; "
                    f"use --out to choose another folder"
                )
            diff = self.config_differences(config, saved)
            extend = set(diff) == {"budget_minutes"} and 0 < diff["budget_minutes"][0] < diff["budget_minutes"][1]
            if diff and not extend:
                lines = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in sorted(diff.items()))
                raise I2IError(f"{self.path} holds a {model} run with a different config ({lines}); "
                               f"use --out for a new run or repeat the original flags to resume it")
            self.check_writable()  # before anything is written: a read-only folder keeps its old budget
            if extend:
                self._extend_budget(saved, *diff["budget_minutes"])
            return False
        if os.path.exists(self.path) and os.listdir(self.path):
            raise I2IError(f"{self.path} exists and is not a run folder (no config.json); choose another --out")
        try:
            os.makedirs(self.path, exist_ok=True)
            atomic_write_text(self.config_path,
                              json.dumps({"model": model, "preset": preset, "config": config}, indent=2))
        except OSError as e:
            raise I2IError(f"{self.path}: cannot write the run folder ({e.strerror or e}); "
                           "choose another --out") from None
        return True

    def config_differences(self, config, saved=None):
        """``{setting: (value there, value now)}`` for every setting where the saved config (``saved``: the folder's
        ``config.json``, read if not given) differs from ``config`` (a setting added to the toolkit after the run was
        made counts with its default)."""
        there = {**COMMON_DEFAULTS, **(saved or self.read_config())["config"]}
        diff = {k: (there.get(k), v) for k, v in config.items() if there.get(k) != v}
        diff.update({k: (v, None) for k, v in there.items() if k not in config})
        return diff

    def finished_with(self, model, config):
        """Did this folder's run of ``model`` finish its training with exactly ``config``? (Launching its train script
        again would then only reload it.)"""
        if not (os.path.exists(self.config_path) and self.progress().get("finished")):
            return False
        try:
            saved = self.read_config()
            return saved.get("model") == model and not self.config_differences(config, saved)
        except (I2IError, KeyError):  # unreadable or foreign: the train script says what is wrong with it
            return False

    def _extend_budget(self, saved, before, after):
        """A larger ``--budget-minutes`` continues the run (weights, optimizer, EMA and log) up to the new budget."""
        saved["config"]["budget_minutes"] = after
        atomic_write_text(self.config_path, json.dumps(saved, indent=2))
        if self.progress().get("budget_reached"):
            self.set_progress(finished=False, budget_reached=False)
        print(f"extending the training budget of {self.path} from {before:g} to {after:g} min")

    def check_writable(self):
        """Fail with a clear message if the folder (or a subfolder or file we add to) cannot be written."""
        folders = [self.path] + [self.file(d) for d in ("backup", "samples", "tensorboard")
                                 if os.path.isdir(self.file(d))]
        for folder in folders:
            try:
                fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
                os.close(fd)
                os.remove(probe)
            except OSError as e:
                raise I2IError(f"{folder}: the run folder is not writable ({e.strerror or e}); "
                               f"fix its permissions or choose another --out") from None
        for name in ("sessions.jsonl", "log.csv"):  # appended to in place
            path = self.file(name)
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise I2IError(f"{path}: not writable; fix its permissions or choose another --out")

    def check_free_space(self, model):
        """Fail before training if the disk cannot hold the checkpoints (see :func:`checkpoint_bytes`).

        A run keeps two checkpoints (``backup/`` and ``model.weights.h5``) and writes each through a
        temporary copy, so up to three exist at once; files already there are replaced.
        """
        size = checkpoint_bytes(model)
        existing = sum(os.path.getsize(p) for p in self.checkpoint_files())
        need = 3 * size + SMALL_FILES_BYTES - existing
        free = shutil.disk_usage(self.path).free
        if free < need:
            raise I2IError(
                f"{self.path}: not enough free disk space: {free / 2**20:.1f} MiB free, the checkpoints need about "
                f"{need / 2**20:.1f} MiB (one checkpoint = weights + optimizer state = {size / 2**20:.1f} MiB, kept in "
                f"backup/ and model.weights.h5, plus a temporary copy while saving); free some space or choose "
                f"another --out")

    def checkpoint_files(self):
        backup = self.file("backup")
        names = os.listdir(backup) if os.path.isdir(backup) else []
        files = [os.path.join(backup, n) for n in names if n.endswith(".h5")]
        return files + [p for p in [self.file("model.weights.h5")] if os.path.exists(p)]

    def progress(self):
        try:
            with open(self.file("progress.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def set_progress(self, **values):

        state = {**self.progress(), **values}
        atomic_write_text(self.file("progress.json"), json.dumps(state, indent=2))

    def append_session(self, record):
        with open(self.file("sessions.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")

    def update_last_session(self, **values):
        """Complete the record written when this session started (a killed session keeps 'running')."""
        records = self.sessions()
        records[-1].update(values)
        atomic_write_text(self.file("sessions.jsonl"), "".join(json.dumps(r) + "\n" for r in records))

    def sessions(self):
        try:
            with open(self.file("sessions.jsonl")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


SMALL_FILES_BYTES = 16 * 2**20  # logs, sample grids, plots, TensorBoard events of a run (generous)


def checkpoint_bytes(model):
    """Bytes of one checkpoint of ``model``: its weights plus the variables of every optimizer it holds."""
    import keras
    import numpy as np
    import tensorflow as tf

    optimizers = {id(o): o for o in [*vars(model).values(), getattr(model, "optimizer", None)]
                  if isinstance(o, keras.optimizers.Optimizer)}
    variables = list(model.weights)
    for optimizer in optimizers.values():
        variables += optimizer.variables
        if hasattr(optimizer, "inner_optimizer"):  # a LossScaleOptimizer's file repeats its inner optimizer's slots
            variables += optimizer.inner_optimizer.variables
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


# ------------------------------------------------------------------------------------------ files

def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _write_weights_atomically(path, write):
    """``write(tmp)`` a temporary weights file in ``path``'s folder, then ``os.replace`` it onto ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".weights.h5", prefix=".tmp-", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_save_weights(model, path):
    """``model.save_weights(path)`` through a temporary file in the same folder and ``os.replace``."""
    _write_weights_atomically(path, lambda tmp: model.save_weights(tmp, overwrite=True))


def atomic_copy(source, path):
    """Copy the weights file ``source`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    _write_weights_atomically(path, lambda tmp: shutil.copyfile(source, tmp))


def read_log(csv_path):
    """Rows of a CSVLogger file as dicts of floats (missing -> NaN)."""
    if not os.path.exists(csv_path):
        return []
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        parsed = {}
        for k, v in row.items():
            try:
                parsed[k] = float(v)
            except (TypeError, ValueError):
                parsed[k] = math.nan
        out.append(parsed)
    return out


def truncate_log(csv_path, epochs_kept):
    """Drop CSV rows of epochs at or after ``epochs_kept`` (written after the checkpoint a resume starts from)."""
    if not os.path.exists(csv_path):
        return
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    epoch_col = header.index("epoch") if "epoch" in header else None
    if epoch_col is None:
        return
    kept = [r for r in body if r and int(float(r[epoch_col])) < epochs_kept]
    directory = os.path.dirname(os.path.abspath(csv_path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w", newline="") as f:
        csv.writer(f).writerows([header] + kept)
    os.replace(tmp, csv_path)
