"""One tiny run trained on one device, on two replicas and on two workers, and the check that they agree
(tests/test_distribute.py and tests/test_distribute_diffusion.py, which split the models between them so that
``--dist loadfile`` runs them on two pytest workers).

The same run - global batch 4, three steps, one step per logged row - is trained on one device
(``--strategy default``), on two replicas of one process (``--strategy mirrored``; on CPU, two logical devices stand
in for two GPUs, configured before TensorFlow initialises, hence a subprocess: ``python -m two_replicas``) and,
for some models, on two worker processes (``launch.py --workers 2``, ``--strategy multiworker``, two images each).
The logged losses of every step must agree, and the weights after the last step. Step 1 checks that the losses are
means over the global batch, steps 2-3 that the gradients were combined as one device computes them (summed over
replicas, each scaled by 1/replicas in ``models.training.minimize``). Randomness inside a step is made
batch-invariant (tests/batch_invariant.py).
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np

import run_helpers as rh

# Per-variant tolerance (relative, on every logged loss of steps 1-3). Float32 sums in a different order differ
# by ~1e-6; Adam's first steps amplify that for gradients near zero. A model with batch-dependent layers (batch
# norm: each replica normalises over its own 2 images) needs a looser, stated tolerance.
RTOL = {"default": 2e-3}
# Weights and optimizer moments after three Adam steps, on the same scale as the losses' tolerance: float32 sums in
# another order, amplified by Adam's normalisation where a gradient is near zero (measured: 1e-5 to 1e-3 relative).
WEIGHTS_RTOL, WEIGHTS_ATOL = 2e-3, 1e-4
# State kept per replica by design, not compared: CycleGAN's image pools (each replica keeps a history of its own
# share of the fakes; while the pools fill, as in these three steps, they return the current fakes on every replica).
PER_REPLICA_STATE = ("image_pool",)


def _losses(out):
    with open(os.path.join(out, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k not in ("epoch", "step", "wall_time_s")
            and not k.startswith("val_")}


def train_on_strategies(variant, tmp_path, data, repo, workers=False, autoencoder=None):
    """Train ``variant`` (a train script's name, or ``ddim-latent`` with ``autoencoder``'s run) on one device and
    two replicas (and two workers if ``workers``) into ``tmp_path/<strategy>``; returns those folders by strategy."""
    script = "ddim" if variant == "ddim-latent" else variant
    args = rh.tiny_args(script, data, steps=3, batch_size=4) + ["--checkpoint-every", "3"]
    if variant == "ddim-latent":
        args += ["--latent", str(autoencoder), "--no-clip-denoised"]
    (tmp_path / "tmp").mkdir()
    env = rh.env(TMPDIR=str(tmp_path / "tmp"))
    if workers:
        launched = subprocess.Popen([sys.executable, "train_scripts/launch.py", "--workers", "2", "--log-dir",
                                     str(tmp_path / "logs"), "--", "tests/batch_invariant.py", script, *args, "--out",
                                     str(tmp_path / "multiworker")], cwd=repo, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
    done = subprocess.run([sys.executable, "-m", "two_replicas", script, str(tmp_path), *args], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if workers:
        output = launched.communicate(timeout=600)[0]
        assert launched.returncode == 0, output[-3000:]
    strategies = ("default", "mirrored", "multiworker") if workers else ("default", "mirrored")
    return {strategy: tmp_path / strategy for strategy in strategies}


def assert_strategies_match_one_device(variant, runs):
    """Every strategy's run of ``runs`` (by strategy, ``default`` the one device) logged the same losses at every
    step and ended with the same weights as the one device, within RTOL and WEIGHTS_RTOL/ATOL."""
    strategies = [s for s in runs if s != "default"]
    for strategy in strategies:
        with open(runs[strategy] / "sessions.jsonl") as f:
            session = json.loads(f.readline())
        assert (session["strategy"], session["replicas"], session["batch_per_replica"]) == (strategy, 2, 2)
        if strategy == "multiworker":
            assert session["workers"] == 2 and all(a.startswith("127.0.0.1:") for a in session["cluster"])
    one = _losses(runs["default"])
    assert all(len(v) == 3 and np.all(np.isfinite(v)) for v in one.values())
    rtol = RTOL.get(variant, RTOL["default"])
    for strategy in strategies:
        two = _losses(runs[strategy])
        assert one.keys() == two.keys()
        worst = max(float(np.max(np.abs(two[k] - one[k]) / np.maximum(np.abs(one[k]), 1.0))) for k in one)
        print(f"{variant}: largest difference between 1 device and {strategy} over steps 1-3: {worst:.2e} "
              f"(tolerance {rtol})")
        for name in one:
            np.testing.assert_allclose(two[name], one[name], rtol=rtol, atol=rtol,
                                       err_msg=f"{variant} {strategy}: {name}")
    ref = rh.weights(runs["default"] / "model.weights.h5")
    compared = [k for k in ref if not any(part in k for part in PER_REPLICA_STATE)]
    for strategy in strategies:
        other = rh.weights(runs[strategy] / "model.weights.h5")
        assert ref.keys() == other.keys()
        excess = sorted(((float(np.max(np.abs(other[k] - ref[k]) - WEIGHTS_RTOL * np.abs(ref[k]))), k)
                         for k in compared), reverse=True)
        print(f"{variant}: weights of {strategy} vs 1 device after 3 steps, largest |difference| - rtol * |value|: "
              f"{excess[:3]}")
        assert excess[0][0] <= WEIGHTS_ATOL, f"{variant}: weights of {strategy} differ from 1 device's: {excess[:5]}"


def assert_workers_left_no_temporary_files(tmp_path):
    """The chief's backup holds no temporary checkpoint, the other worker removed its own folder."""
    assert not list((tmp_path / "multiworker" / "backup").glob("*tmp*"))
    assert not list((tmp_path / "tmp").iterdir()), "the other worker's temporary checkpoint folder was not removed"
