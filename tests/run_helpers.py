"""Helpers for tests that drive a train script as a user does: tiny runs' flags, run it, interrupt it, read its
run folder. The same steps as tests/test_resume.py (which checks Pix2Pix), for any ``train_scripts/<model>.py``.

Test files import it as ``run_helpers`` (``tests/`` is on the path: ``pythonpath`` in setup.cfg); a subprocess
started with :func:`env` imports it, and this checkout's packages, through ``PYTHONPATH``.
"""

import csv
import json
import os
import subprocess
import sys
import time

import h5py
import pytest


def alexnet_weights_present():
    """Are the LPIPS AlexNet weights (LPIPS, and the offline ``alexnet`` FID/KID backbone) where scoring looks?"""
    from metrics.lpips import NPZ_NAME
    from metrics.weights import WEIGHTS_DIR_ENV, keras_cache_dir

    folders = [os.environ.get(WEIGHTS_DIR_ENV), keras_cache_dir()]
    return any(folder and os.path.isfile(os.path.join(folder, NPZ_NAME)) for folder in folders)


# For tests that score with LPIPS or alexnet FID/KID: nothing may download, so without the weights they skip.
needs_alexnet_weights = pytest.mark.skipif(not alexnet_weights_present(),
                                           reason="LPIPS AlexNet weights not in $I2I_WEIGHTS_DIR or the Keras cache "
                                                  "(set I2I_SHARED_DIR to the folder holding weights/)")


TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)

# ------------------------------------------------------------------ tiny training runs (the glue's tests)

# Model flags that shrink a network or its side costs, used where a script has them.
TINY_FLAGS = {"ngf": "8", "ndf": "8", "widths": "8,16", "res_blocks": "1", "sampling_steps": "2", "kid_every": "0"}


def train_script_names():
    """Every model with a train script (``train_scripts/<name>.py``), from the model registry."""
    from train_scripts.training.registry import model_names

    return model_names()


def tiny_args(script, data, steps=2, batch_size=2, image_size=32):
    """Command-line flags for a tiny run of ``script``: its ``tiny`` preset if it has one, else ``quick``, at
    ``image_size`` px, with the flags of TINY_FLAGS it accepts; one step per logged row and checkpoint."""
    from train_scripts.training.registry import spec_for

    spec = spec_for(script)
    args = ["--preset", "tiny" if "tiny" in spec.presets else "quick", "--data", str(data),
            "--image-size", str(image_size), "--batch-size", str(batch_size), "--steps", str(steps),
            "--log-every", "1", "--checkpoint-every", "1", "--sample-every", str(steps), "--val-images", "2",
            "--verbose", "0"]
    for key, value in TINY_FLAGS.items():
        if key in spec.arguments:
            args += ["--" + key.replace("_", "-"), value]
    return args


# ------------------------------------------------------------------ train scripts in subprocesses

def command(script, args, out, steps):
    return [sys.executable, f"train_scripts/{script}.py", *args, "--steps", str(steps), "--out", str(out)]


def env(**extra):
    """The environment of a subprocess: quiet TensorFlow; this checkout (its packages, then ``tests/``, whose helper
    modules such as ``batch_invariant`` a child imports) first on the path, before an installed copy."""
    path = os.pathsep.join(p for p in (REPO, TESTS, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path, **extra)


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


def assert_resumes_to_reference(script, args, out, steps, repo, reference, sig, every, log_keys=()):
    """Interrupt a run with ``sig`` after its 4th logged interval, rerun it, and check it ends as ``reference``:
    the resume message, a log with every interval once, and weights equal to the uninterrupted run's."""
    import numpy as np

    code, stdout, stderr = start_and_stop(script, args, out, steps, repo, sig, after_epoch=4)
    assert code != 0 and not os.path.exists(os.path.join(out, "progress.json"))
    assert "Traceback" not in stderr
    interrupted_at = saved_epoch(out) * every
    assert 4 * every <= interrupted_at < steps
    resumed = run(script, args, out, steps, repo)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out} from its checkpoint at step {interrupted_at} of {steps}" in resumed.stdout
    assert steps_logged(out) == list(range(every, steps + 1, every))
    assert set(log_rows(out)[0]) >= set(log_keys)
    a, b = weights(os.path.join(out, "model.weights.h5")), weights(os.path.join(reference, "model.weights.h5"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    return stdout, stderr
