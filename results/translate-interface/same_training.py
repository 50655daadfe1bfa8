"""The one translate interface keeps training as it was: for each model a tiny run of the same seed at the commit
before the change (OLD) and after it (NEW) ends with bit-identical weights and the same log.csv (validation losses
included), with sample grids every 2 steps: they translate between training steps, and the CVAE's and cGAN's
validation noise and Pix2Pix's dropout (with --dropout-at-test) are drawn from the generators translate shares with
them. A run interrupted (Ctrl-C) under OLD resumes under NEW to the same weights. The run trained under NEW is
then loaded under OLD and under NEW (``inference.load_trained``, as evaluate.py loads it) and translates the
synthetic val split: deterministic translations (Pix2Pix without dropout, CycleGAN, the DDIM from its sample seed,
the autoencoder) must be bit-identical; test-time noise (CVAE z, cGAN noise, Pix2Pix dropout) is drawn from other
seeds under NEW and is reported as the mean absolute difference of the uint8 outputs.

    python results/translate-interface/same_training.py OLD_CHECKOUT NEW_CHECKOUT SCRATCH_DIR

OLD_CHECKOUT and NEW_CHECKOUT are copies of the two commits (``git archive COMMIT | tar -x -C DIR``); tiny runs
(``tests/conftest.py``'s ``tiny_args``: 32 px, narrow networks, synthetic facades, 6 steps, a checkpoint every step)
go to SCRATCH_DIR, which is emptied first."""
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
sys.path[:0] = [os.path.join(NEW, "tests"), NEW]
from conftest import tiny_args  # noqa: E402

STEPS = 6
env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
CASES = {"cvae": [], "cgan": [], "pix2pix": [], "pix2pix-dropout-at-test": ["--dropout-at-test"], "cyclegan": [],
         "ddim": [], "autoencoder": []}


def weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def same_weights(a, b):
    wa, wb = weights(os.path.join(a, "model.weights.h5")), weights(os.path.join(b, "model.weights.h5"))
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa), len(wa)


def log(run):
    """log.csv without its wall-clock columns."""
    with open(os.path.join(run, "log.csv")) as f:
        return [{k: v for k, v in row.items() if "time" not in k} for row in csv.DictReader(f)]


TRANSLATE = """
import sys
import numpy as np
from data.sources import open_source
from train_scripts.training.inference import load_trained, translate_split
spec, config, model, run = load_trained(sys.argv[1])
pairs = open_source(config["data"]).load("val", config["image_size"])
np.save(sys.argv[2], translate_split(model, pairs, reconstruct=spec.reconstructs))
"""


def translations(repo, run, path):
    done = subprocess.run([sys.executable, "-c", TRANSLATE, run, path], cwd=repo, env=dict(env, PYTHONPATH=repo),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(path)


def train(repo, model, out, args, stop_after=None):
    cmd = [sys.executable, os.path.join(repo, "train_scripts", model + ".py"), *args, "--out", out]
    if stop_after is None:
        done = subprocess.run(cmd, cwd=repo, env=dict(env, PYTHONPATH=repo), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return
    p = subprocess.Popen(cmd, cwd=repo, env=dict(env, PYTHONPATH=repo), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    log_path = os.path.join(out, "log.csv")
    while p.poll() is None:
        if os.path.exists(log_path) and sum(1 for _ in open(log_path)) > stop_after:
            p.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    p.wait()


shutil.rmtree(OUT, ignore_errors=True)
for case, extra in CASES.items():
    model = case.split("-")[0]
    args = [*tiny_args(model, "synthetic", steps=STEPS), "--sample-every", "2", *extra]
    t = time.time()
    runs = {k: os.path.join(OUT, k, case) for k in ("old", "new", "resumed")}
    train(OLD, model, runs["old"], args)
    train(NEW, model, runs["new"], args)
    train(OLD, model, runs["resumed"], args, stop_after=3)
    with open(os.path.join(runs["resumed"], "log.csv")) as f:
        stopped_at = len(list(csv.DictReader(f)))
    train(NEW, model, runs["resumed"], args)
    eq, n = same_weights(runs["old"], runs["new"])
    eq_log = log(runs["old"]) == log(runs["new"])
    eq_resumed, _ = same_weights(runs["new"], runs["resumed"])
    outputs = [translations(repo, runs["new"], os.path.join(OUT, f"{case}-{k}.npy")) for k, repo in
               (("old", OLD), ("new", NEW))]
    same_outputs = np.array_equal(*outputs)
    difference = np.abs(outputs[0].astype(int) - outputs[1]).mean()
    print(f"{case}: {STEPS} steps, {n} weight arrays; old == new: weights {eq}, log.csv {eq_log}; stopped under "
          f"old at step {stopped_at}, resumed under new == new: {eq_resumed}; {len(outputs[0])} val translations "
          f"loaded under old == new: {same_outputs}" + ("" if same_outputs else f" (mean |difference| "
                                                         f"{difference:.2f} of 255)") +
          f" ({time.time() - t:.0f} s)", flush=True)
