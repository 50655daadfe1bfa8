"""Pix2Pix really learns: the quick preset on synthetic 64 px facades, at half its widths (ngf = ndf = 16).

A generator that ignored its input could at best learn the per-pixel median photo; one that uses its
input produces photos that fit *their own* label maps better than shuffled ones. Both are checked.
"""

import keras
import numpy as np
import pytest

from data.pipeline import to_model_range
from data.sources import open_source
from train_scripts.training.inference import load_trained
from train_scripts.training.models import pix2pix
from train_scripts.training.runner import main

STEPS = 200  # the quick preset's config; its validation L1 has flattened out by this step
NARROW = ["--ngf", "16", "--ndf", "16"]


def l1(model, labels, photos):
    out = np.concatenate([model.translate(to_model_range(labels[i:i + 25])).numpy() for i in range(0, len(labels), 25)])
    return float(np.mean(np.abs(out - to_model_range(photos).numpy())))


@pytest.mark.slow
def test_quick_preset_learns_the_translation(tmp_path):
    run_dir = tmp_path / "run"
    assert main(pix2pix.SPEC, ["--steps", str(STEPS), *NARROW, "--out", str(run_dir), "--verbose", "0"]) == 0
    _, config, trained, _ = load_trained(str(run_dir))
    keras.utils.set_random_seed(config["seed"])
    untrained = pix2pix.build(config)

    source = open_source("synthetic")
    val = source.load("val", config["image_size"])
    train = source.load("train", config["image_size"])
    shuffled = np.roll(val.labels, 1, axis=0)

    l1_trained, l1_untrained = l1(trained, val.labels, val.photos), l1(untrained, val.labels, val.photos)
    median_photo = np.median(to_model_range(train.photos).numpy(), axis=0)
    l1_median = float(np.mean(np.abs(median_photo - to_model_range(val.photos).numpy())))
    gain_trained = l1(trained, shuffled, val.photos) - l1_trained
    gain_untrained = l1(untrained, shuffled, val.photos) - l1_untrained
    print(f"L1 trained {l1_trained:.4f} untrained {l1_untrained:.4f} median-photo {l1_median:.4f}; "
          f"own-label gain trained {gain_trained:.4f} untrained {gain_untrained:.4f}")

    assert l1_trained < 0.85 * l1_untrained  # clearly better than where it started
    assert l1_trained < l1_median - 0.015  # better than any generator that ignores its input can be
    assert gain_trained > 0.02 and gain_trained > 5 * abs(gain_untrained)  # it uses the label map it is given
