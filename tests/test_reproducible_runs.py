"""A run is a function of its config: the same ``--seed`` gives the same weights, another seed other weights, and a
run folder written before the newest config keys existed resumes and ends where a run of today's code ends.

Tiny Pix2Pix runs (32 px, ngf = ndf = 8, 4 steps) through ``runner.main`` in this process, on a 32 px synthetic
facades folder. Training is deterministic on CPU (tests/test_resume.py), so equal means bit for bit.
"""

import dataclasses
import json

import keras
import numpy as np
import pytest

from run_helpers import steps_logged, tiny_args, weights
from train_scripts.training import runner
from train_scripts.training.config import COMMON_DEFAULTS
from train_scripts.training.models import pix2pix

STEPS = 4
_RUNS = {}  # seed -> folder of a finished run, trained once per module


def _args(data, out, seed):
    return tiny_args("pix2pix", data, steps=STEPS) + ["--seed", str(seed), "--out", str(out)]


def _finished_run(tmp_path_factory, data, seed):
    if seed not in _RUNS:
        out = tmp_path_factory.mktemp(f"seed{seed}") / "run"
        assert runner.main(pix2pix.SPEC, _args(data, out, seed)) == 0
        _RUNS[seed] = out
    return _RUNS[seed]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights_and_another_seed_other_weights(tmp_path_factory, tiny_facades):
    first = weights(_finished_run(tmp_path_factory, tiny_facades, 3) / "model.weights.h5")
    again_dir = tmp_path_factory.mktemp("seed3-again") / "run"
    assert runner.main(pix2pix.SPEC, _args(tiny_facades, again_dir, 3)) == 0
    again = weights(again_dir / "model.weights.h5")
    other = weights(_finished_run(tmp_path_factory, tiny_facades, 4) / "model.weights.h5")

    assert first.keys() == again.keys() == other.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
    # every convolution kernel of both networks starts elsewhere under another seed (not the optimizer's slots: the
    # innermost levels of a 32 px U-Net get no gradient, their moments stay 0 whatever the seed)
    kernels = [name for name in first if first[name].ndim == 4 and "optimizer" not in name]
    assert kernels and all(not np.array_equal(first[name], other[name]) for name in kernels)


def _stop_after(steps):
    """Pix2Pix's spec with a callback that stops training after ``steps`` steps, as a Ctrl-C does (tiny_args logs
    every step): the run is left with its checkpoint at that step and no ``progress.json``."""

    def callbacks(config, model, val_pairs, run):
        stop = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch + 1 == steps))
        return [stop, *pix2pix.SPEC.callbacks(config, model, val_pairs, run)]

    return dataclasses.replace(pix2pix.SPEC, callbacks=callbacks)


@pytest.mark.slow
def test_a_run_folder_without_the_newest_config_keys_resumes_and_trains_on(tmp_path_factory, tiny_facades, capsys):
    out = tmp_path_factory.mktemp("old") / "run"
    assert runner.main(_stop_after(2), _args(tiny_facades, out, 3)) == 130  # interrupted at step 2 of 4
    saved = json.loads((out / "config.json").read_text())
    for key in COMMON_DEFAULTS:  # keep_every, budget_minutes, mixed_precision: added after the first release
        del saved["config"][key]
    old_config = json.dumps(saved, indent=2)
    (out / "config.json").write_text(old_config)
    capsys.readouterr()

    assert runner.main(pix2pix.SPEC, _args(tiny_facades, out, 3)) == 0
    assert f"resuming {out} from its checkpoint at step 2 of {STEPS}" in capsys.readouterr().out
    assert steps_logged(out) == list(range(1, STEPS + 1))
    assert json.loads((out / "progress.json").read_text())["finished"] is True
    assert (out / "config.json").read_text() == old_config  # resuming does not rewrite the run's config
    resumed = weights(out / "model.weights.h5")
    reference = weights(_finished_run(tmp_path_factory, tiny_facades, 3) / "model.weights.h5")
    assert resumed.keys() == reference.keys()
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
