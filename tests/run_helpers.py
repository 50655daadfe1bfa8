"""Helpers for tests that drive a train script as a user does: run it, interrupt it, read its run folder.

The same steps as tests/test_resume.py (which checks Pix2Pix), for any ``train_scripts/<model>.py``.
"""

import csv
import json
import os
import subprocess
import sys
import time

import h5py


def command(script, args, out, steps):
    return [sys.executable, f"train_scripts/{script}.py", *args, "--steps", str(steps), "--out", str(out)]


def env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run(script, args, out, steps, repo):
    """Run a train script to its end; returns the ``CompletedProcess``."""
    return subprocess.run(command(script, args, out, steps), cwd=repo, env=env(), capture_output=True, text=True,
                          timeout=600)


def weights(path):
    """Every dataset of a ``.weights.h5`` file, by its path in the file."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def saved_epoch(out):
    """Logging intervals covered by the run's backup (0 before the first checkpoint)."""
    try:
        with open(os.path.join(out, "backup", "training_metadata.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def start_and_stop(script, args, out, steps, repo, sig, after_epoch):
    """Start a run, wait until its checkpoint reaches ``after_epoch``, send ``sig``; returns (code, stdout, stderr)."""
    proc = subprocess.Popen(command(script, args, out, steps), cwd=repo, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while saved_epoch(out) < after_epoch and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted; make it longer"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stdout, stderr


def log_rows(out):
    """Rows of the run's ``log.csv`` as dicts of floats."""
    with open(os.path.join(out, "log.csv")) as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()} for r in csv.DictReader(f)]


def steps_logged(out):
    return [int(r["step"]) for r in log_rows(out)]
