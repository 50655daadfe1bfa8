"""Distribution of the DDIM, the autoencoder and the latent DDIM (the other models: tests/test_distribute.py): the
same tiny run trained on one device and on two replicas, and for the latent DDIM (EMA weights, a frozen autoencoder,
sampling noise, a data pipeline that encodes the training pairs) also on two workers, logs the same losses and ends
with the same weights (tests/distribution_check.py)."""

import subprocess
import sys

import pytest

import distribution_check as dc
import run_helpers as rh


@pytest.fixture(scope="module")
def tiny_autoencoder(tmp_path_factory, tiny_facades, repo_dir):
    """An autoencoder run of one step on the tiny facades (16x16x4 latents): what a latent DDIM needs."""
    out = tmp_path_factory.mktemp("autoencoder") / "run"
    done = subprocess.run([sys.executable, "train_scripts/autoencoder.py",
                           *rh.tiny_args("autoencoder", tiny_facades, steps=1), "--out", str(out)], cwd=repo_dir,
                          env=rh.env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["ddim", "autoencoder", "ddim-latent"])
def test_two_replicas_and_two_workers_match_one_device(tmp_path, tiny_facades, repo_dir, variant, request):
    latent = variant == "ddim-latent"
    autoencoder = request.getfixturevalue("tiny_autoencoder") if latent else None
    runs = dc.train_on_strategies(variant, tmp_path, tiny_facades, repo_dir, workers=latent, autoencoder=autoencoder)
    dc.assert_strategies_match_one_device(variant, runs)
    if latent:
        dc.assert_workers_left_no_temporary_files(tmp_path)
