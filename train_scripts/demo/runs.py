"""The demo's runs: the run folders and exported models that command-line arguments name, or every finished one
under a folder, newest first, and a short display name for each."""

import contextlib
import json
import os

from data.errors import I2IError
from train_scripts.training.export_folder import ExportFolder, is_export
from train_scripts.training.registry import COMPARISON_MODELS, spec_for
from train_scripts.training.run_folder import RunFolder


def is_run(path):
    return os.path.isfile(os.path.join(path, "config.json"))


def reconstructs_photos(path):
    """True for the run of a model that translates no label maps (the autoencoder): folders of runs skip it."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            return spec_for(json.load(f)["model"]).reconstructs
    except (OSError, ValueError, TypeError, KeyError, I2IError):  # a broken run: loading it reports the problem
        return False


def run_time(path):
    """When the run last changed: its weights' mtime (else its config's)."""
    for name in ("model.weights.h5", "config.json"):
        with contextlib.suppress(OSError):
            return os.path.getmtime(os.path.join(path, name))
    return 0.0


def finished_runs(root):
    """Every finished run folder (``RunFolder.progress()["finished"]``) and exported model under ``root``, newest
    first."""
    found = []
    for folder, subfolders, _ in os.walk(root):
        if is_run(folder):
            subfolders[:] = []  # a run's own folders (backup/, samples/, ...) hold no runs
            progress = ExportFolder(folder).progress if is_export(folder) else RunFolder(folder).progress
            if progress().get("finished") and not reconstructs_photos(folder):
                found.append(folder)
        else:
            subfolders.sort()
    return sorted(found, key=run_time, reverse=True)


def runs_of(path):
    """The run folders that a command-line argument names: itself if it is a run, else its subfolders that are runs
    (a ``compare.py`` folder; in compare.py's model order, then by name). ``[]``: neither."""
    if is_run(path):
        return [path]
    if not os.path.isdir(path):
        return []
    order = list(COMPARISON_MODELS)
    subfolders = [os.path.join(path, n) for n in sorted(os.listdir(path))
                  if is_run(os.path.join(path, n)) and not reconstructs_photos(os.path.join(path, n))]
    return sorted(subfolders, key=lambda p: (order.index(os.path.basename(p)) if os.path.basename(p) in order
                                             else len(order), os.path.basename(p)))


def resolve_runs(paths, default_root):
    """(run folders to load, [(argument, problem)] for arguments that name no run)."""
    if not paths:
        runs = finished_runs(default_root) if os.path.isdir(default_root) else []
        return runs, [] if runs else [(default_root, "no finished runs found (train one, or name run folders)")]
    runs, problems = [], []
    for path in paths:
        found = runs_of(path)
        if not found:
            problems.append((path, "no such folder" if not os.path.exists(path) else
                             "not a run folder (no config.json) and no run folders in it"))
        runs += [r for r in found if os.path.abspath(r) not in map(os.path.abspath, runs)]
    return runs, problems


def display_names(run_dirs):
    """A short unique name per run: its folder name, else parent/folder, else with a number."""
    names, taken = [], set()
    for path in run_dirs:
        parts = os.path.abspath(path).rstrip("/").split("/")
        name = parts[-1]
        if name in taken and len(parts) > 1:
            name = "/".join(parts[-2:])
        base, n = name, 2
        while name in taken:
            name, n = f"{base}#{n}", n + 1
        taken.add(name)
        names.append(name)
    return names
