"""The layout change keeps behaviour: for each model a tiny run of the same seed at the commit before the change
(OLD) and after it (NEW) ends with bit-identical weights, and a run interrupted (Ctrl-C) under OLD resumes under
NEW to the same weights.

    python results/layout-change/same_behaviour.py OLD_CHECKOUT NEW_CHECKOUT SCRATCH_DIR [CASE ...]

OLD_CHECKOUT and NEW_CHECKOUT are checkouts of the two commits (``git worktree add --detach DIR COMMIT``); tiny
runs (``tests/conftest.py``'s ``tiny_args``: 32 px, narrow networks, synthetic facades, 12 steps, a checkpoint every
step) go to SCRATCH_DIR, which is emptied first. A CASE is a model and flags added to its tiny run, e.g.
``"ddim --prediction noise"``; default: every model once."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

OLD, NEW, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
CASES = sys.argv[4:] or ["cvae", "cgan", "pix2pix", "cyclegan", "ddim", "autoencoder"]
sys.path[:0] = [os.path.join(NEW, "tests"), NEW]
from conftest import tiny_args  # noqa

STEPS = 12
env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def same(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa), len(wa)


def train(repo, model, out, args, stop_after=None):
    cmd = [sys.executable, os.path.join(repo, "train_scripts", model + ".py"), *args, "--out", out]
    if stop_after is None:
        done = subprocess.run(cmd, cwd=repo, env=dict(env, PYTHONPATH=repo), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return
    p = subprocess.Popen(cmd, cwd=repo, env=dict(env, PYTHONPATH=repo), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    log = os.path.join(out, "log.csv")
    while p.poll() is None:
        if os.path.exists(log) and sum(1 for _ in open(log)) > stop_after:
            p.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    p.wait()


shutil.rmtree(OUT, ignore_errors=True)
for case in CASES:
    model, *flags = case.split()
    args = tiny_args(model, "synthetic", steps=STEPS) + flags
    t = time.time()
    runs = {k: os.path.join(OUT, k, "_".join(case.replace("-", "").split())) for k in ("old", "new", "resumed")}
    train(OLD, model, runs["old"], args)
    train(NEW, model, runs["new"], args)
    train(OLD, model, runs["resumed"], args, stop_after=4)
    with open(os.path.join(runs["resumed"], "log.csv")) as f:
        stopped_at = len(list(csv.DictReader(f)))
    train(NEW, model, runs["resumed"], args)
    eq, n = same(os.path.join(runs["old"], "model.weights.h5"), os.path.join(runs["new"], "model.weights.h5"))
    eq2, _ = same(os.path.join(runs["new"], "model.weights.h5"), os.path.join(runs["resumed"], "model.weights.h5"))
    print(f"{case}: {STEPS} steps, {n} weight arrays; old == new: {eq}; stopped under old at step {stopped_at}, "
          f"resumed under new == new: {eq2} ({time.time() - t:.0f} s)", flush=True)
