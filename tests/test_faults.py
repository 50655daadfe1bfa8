"""Faults a long unattended run meets: a loss that blows up, a kill during a save, no room or no permission.

Every case must leave a run that the same command resumes (or a clear message before anything is trained).
Tiny Pix2Pix runs (32 px, ngf = ndf = 8) on a 32 px synthetic facades folder; training is deterministic on
CPU, so a resumed run must end with exactly the weights of an uninterrupted one.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import types

import h5py
import numpy as np
import pytest
import tensorflow as tf

from run_helpers import tiny_args
from train_scripts.training import config as cfg
from train_scripts.training import devices, run_folder, runner
from train_scripts.training.models import pix2pix

STEPS = 6


def _args(data, out, **flags):
    args = tiny_args("pix2pix", data, steps=STEPS) + ["--checkpoint-every", "2", "--out", str(out)]
    for key, value in flags.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


def _weights(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _assert_same_weights(a_path, b_path):
    a, b = _weights(a_path), _weights(b_path)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _steps_logged(out):
    import csv

    with open(os.path.join(out, "log.csv")) as f:
        return [int(float(r["step"])) for r in csv.DictReader(f)]


def _sessions(out):
    with open(os.path.join(out, "sessions.jsonl")) as f:
        return [json.loads(line) for line in f]


def _backup_epoch(out):
    with open(os.path.join(out, "backup", "training_metadata.json")) as f:
        return json.load(f)["epoch"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_facades):
    """An uninterrupted tiny run of STEPS steps."""
    out = tmp_path_factory.mktemp("faults") / "uninterrupted"
    assert runner.main(pix2pix.SPEC, _args(tiny_facades, out)) == 0
    return out


# ------------------------------------------------------------------------------------- non-finite loss

POISON = {"at_step": None}  # set by the test: from this step on the generator's weights and losses become NaN


def _poisoned_build(config):
    """Pix2Pix whose train step blows up (weights and logged losses NaN) from step POISON['at_step'] on."""
    model = pix2pix.build(config)
    original, at_step = model.train_step, POISON["at_step"]
    if at_step is None:
        return model

    def train_step(data):
        logs = original(data)
        factor = tf.where(model.g_optimizer.iterations >= at_step, float("nan"), 1.0)
        for v in model.generator.trainable_variables:
            v.assign(v * factor)
        return {k: v * factor for k, v in logs.items()}

    model.train_step = train_step
    return model


POISONED_SPEC = cfg.ModelSpec(name="pix2pix", description="test-only", presets=pix2pix.PRESETS,
                                 build=_poisoned_build, settings=pix2pix.SPEC.settings)


@pytest.mark.slow
def test_non_finite_loss_stops_at_its_step_and_the_last_good_checkpoint_resumes(tmp_path, tiny_facades, reference,
                                                                                capsys):
    out = tmp_path / "run"
    POISON["at_step"] = 5  # checkpoints at steps 2 and 4; step 5 blows up
    try:
        assert runner.main(POISONED_SPEC, _args(tiny_facades, out)) == 2
    finally:
        POISON["at_step"] = None
    err = capsys.readouterr().err
    assert "non-finite loss at step 5" in err and "g_loss=nan" in err
    assert "last good checkpoint (step 4)" in err and str(out / "backup") in err
    assert "Traceback" not in err
    assert _backup_epoch(out) == 4 and _steps_logged(out) == [1, 2, 3, 4]  # nothing of step 5 was saved or logged
    assert all(np.all(np.isfinite(w)) for w in _weights(out / "model.weights.h5").values())
    assert _sessions(out)[-1]["status"] == "failed: I2IError" and _sessions(out)[-1]["end_step"] == 4

    assert runner.main(POISONED_SPEC, _args(tiny_facades, out)) == 0  # the same command, the fault gone
    assert f"resuming {out} from its checkpoint at step 4 of {STEPS}" in capsys.readouterr().out
    assert _steps_logged(out) == list(range(1, STEPS + 1))
    _assert_same_weights(out / "model.weights.h5", reference / "model.weights.h5")


# --------------------------------------------------------------------------------- kill -9 during a save

# Runs the train script with os.replace wrapped: the n-th time a file named TARGET is about to be moved into
# place, the process kills itself with SIGKILL - after the new file has been written in full to its temporary
# name, before the rename that would publish it. That is the moment a non-atomic save would be caught half done.
KILL_DURING_SAVE = r"""
import os, runpy, signal, sys
target, nth = sys.argv[1], int(sys.argv[2])
real_replace, seen = os.replace, [0]
def replace(src, dst, *args, **kwargs):
    name = os.path.basename(dst)
    if name == target or (target == "ckpt" and name.startswith("ckpt-")):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
sys.argv = ["train_scripts/pix2pix.py"] + sys.argv[3:]
runpy.run_path("train_scripts/pix2pix.py", run_name="__main__")
"""


@pytest.mark.parametrize("target, nth, resumes_from", [
    ("training_metadata.json", 2, 2),  # backup at step 4: new weights file complete, not yet committed
    ("model.weights.h5", 3, STEPS),  # the final model.weights.h5, after the final backup was committed
], ids=["backup-commit", "final-weights"])
@pytest.mark.slow
def test_kill_during_a_save_leaves_a_run_that_resumes(tmp_path, tiny_facades, reference, repo_dir, capsys,
                                                      target, nth, resumes_from):
    out = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, target, str(nth), *_args(tiny_facades, out)],
                           cwd=repo_dir, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True,
                           text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _backup_epoch(out) == resumes_from and not (out / "progress.json").exists()

    assert runner.main(pix2pix.SPEC, _args(tiny_facades, out)) == 0
    if resumes_from < STEPS:
        assert f"checkpoint at step {resumes_from} of {STEPS}" in capsys.readouterr().out
    assert sorted(os.listdir(out / "backup")) == [f"ckpt-{STEPS:07d}.weights.h5", "training_metadata.json"]
    assert _steps_logged(out) == list(range(1, STEPS + 1))
    _assert_same_weights(out / "model.weights.h5", reference / "model.weights.h5")


# ------------------------------------------------------------------------------ no permission, no room

@contextlib.contextmanager
def _unprivileged():
    """Permission checks as an ordinary user: root ignores a folder's write bits, so drop to 'nobody' for a moment."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_unwritable_run_folder_fails_before_training(tiny_facades, capsys):
    parent = tempfile.mkdtemp(prefix="i2i-readonly-")  # outside pytest's 0700 tmp folder, so 'nobody' can enter
    try:
        os.chmod(parent, 0o755)
        existing = os.path.join(parent, "existing")
        args = _args(tiny_facades, existing)
        config, _ = cfg.resolve_config(pix2pix.SPEC, cfg.build_parser(pix2pix.SPEC).parse_args(args))
        run_folder.RunFolder(existing).open("pix2pix", "quick", config)  # a run folder made earlier...
        budgeted = os.path.join(parent, "budgeted")  # ...and one whose run stopped on a 1-minute budget
        budget_args = _args(tiny_facades, budgeted, budget_minutes=1)
        config, _ = cfg.resolve_config(pix2pix.SPEC, cfg.build_parser(pix2pix.SPEC).parse_args(budget_args))
        run_folder.RunFolder(budgeted).open("pix2pix", "quick", config)
        budgeted_config = open(os.path.join(budgeted, "config.json")).read()
        for folder in (existing, budgeted, parent):  # ...then all made read-only
            os.chmod(folder, 0o555)
        with _unprivileged():
            resumed = runner.main(pix2pix.SPEC, args)
            new = runner.main(pix2pix.SPEC, _args(tiny_facades, os.path.join(parent, "new")))
            extended = runner.main(pix2pix.SPEC, _args(tiny_facades, budgeted, budget_minutes=2))
        err = capsys.readouterr().err
        assert resumed == 2 and f"{existing}: the run folder is not writable (Permission denied)" in err
        assert new == 2 and f"{parent}/new: cannot write the run folder (Permission denied)" in err
        assert extended == 2 and f"{budgeted}: the run folder is not writable (Permission denied)" in err
        assert "choose another --out" in err and "Traceback" not in err
        assert os.listdir(existing) == ["config.json"]  # nothing was started
        assert open(os.path.join(budgeted, "config.json")).read() == budgeted_config  # still the 1-minute budget
    finally:
        for folder in ("existing", "budgeted"):
            os.chmod(os.path.join(parent, folder), 0o755)
        os.chmod(parent, 0o755)
        shutil.rmtree(parent)


def test_full_disk_fails_before_training(tmp_path, tiny_facades, monkeypatch, capsys):
    out = tmp_path / "run"
    free = 20 * 2**20  # 20 MiB: less than two tiny checkpoints (~9.7 MiB each) and their temporary copy
    usage = types.SimpleNamespace(total=10**12, used=10**12 - free, free=free)  # the fields of shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    assert runner.main(pix2pix.SPEC, _args(tiny_facades, out)) == 2
    err = capsys.readouterr().err
    assert f"{out}: not enough free disk space: 20.0 MiB free" in err and "choose another --out" in err
    assert sorted(os.listdir(out)) == ["config.json"]  # no session, log or checkpoint: training never started


@pytest.mark.slow
def test_checkpoint_size_estimate_matches_the_files(reference):
    """The free-space check's estimate (weights + optimizer slots) is what a checkpoint file really takes."""
    with open(reference / "config.json") as f:
        config = json.load(f)["config"]
    for precision in ("none", "mixed_float16"):  # mixed_float16: Keras saves a LossScaleOptimizer's slots twice
        model = devices.build_model(pix2pix.SPEC, dict(config, mixed_precision=precision))
        estimate = run_folder.checkpoint_bytes(model)
        path = str(reference / f"estimate-{precision}.weights.h5")
        run_folder.atomic_save_weights(model, path)
        assert 0.9 < estimate / os.path.getsize(path) <= 1.0, precision
    actual = os.path.getsize(reference / "model.weights.h5")
    assert 0.9 < run_folder.checkpoint_bytes(devices.build_model(pix2pix.SPEC, config)) / actual <= 1.0
