"""The conditional diffusion model really translates (what the study's DDIM, PSNR 2.3, did not).

The quick preset's settings with fewer steps, on synthetic facades. A sampler that ignored the label map could at
best draw photos from the photo distribution: its L1 to the ground truth would be that of a random training
photo, and it would fit shuffled label maps as well as its own. The trained model must beat its untrained self
clearly, beat the random-photo sampler, and fit its own label maps better than shuffled ones. Classifier-free
guidance (the model is trained with condition dropout) must change the samples. The per-pixel median photo (what
pix2pix's L1 regresses to, not a sample) is printed for reference: at this budget a sampler does not beat it.
"""

import keras
import numpy as np

from data.pipeline import to_model_range
from data.sources import open_source
from train_scripts import ddim
from train_scripts.runner import load_trained, main

STEPS = 800
ARGS = ["--steps", str(STEPS), "--log-every", "100", "--checkpoint-every", "800", "--sample-every", "800",
        "--kid-every", "0", "--val-images", "16",
        "--condition-dropout", "0.1", "--verbose", "0"]
N_VAL = 48


def translations(model, labels, **kwargs):
    return np.concatenate([model.translate(to_model_range(labels[i:i + 16]), **kwargs).numpy()
                           for i in range(0, len(labels), 16)])


def l1(images, photos):
    return float(np.mean(np.abs(images - to_model_range(photos).numpy())))


def test_conditional_model_learns_the_translation(tmp_path):
    run_dir = tmp_path / "run"
    assert main(ddim.SPEC, [*ARGS, "--out", str(run_dir)]) == 0
    _, config, trained, _ = load_trained(str(run_dir))
    keras.utils.set_random_seed(config["seed"])
    untrained = ddim.build(config)

    source = open_source("synthetic")
    val = source.load("val", config["image_size"])
    labels, photos = val.labels[:N_VAL], val.photos[:N_VAL]
    train = source.load("train", config["image_size"])
    shuffled = np.roll(labels, 1, axis=0)

    outputs = translations(trained, labels)
    l1_trained, l1_untrained = l1(outputs, photos), l1(translations(untrained, labels), photos)
    train_photos = to_model_range(train.photos).numpy()
    l1_random_photo = float(np.mean([l1(train_photos, photos[i:i + 1]) for i in range(N_VAL)]))
    l1_median = l1(np.median(train_photos, axis=0), photos)
    gain = l1(translations(trained, shuffled), photos) - l1_trained
    guided = translations(trained, labels[:16], guidance=1.0)
    guidance_change = float(np.mean(np.abs(guided - outputs[:16])))
    print(f"L1 trained {l1_trained:.4f} untrained {l1_untrained:.4f} random-photo {l1_random_photo:.4f} "
          f"median-photo {l1_median:.4f}; own-label gain {gain:.4f}; guidance (w = 1) change {guidance_change:.4f}")

    assert l1_trained < 0.75 * l1_untrained  # clearly better than where it started
    assert l1_trained < l1_random_photo - 0.03  # better than any sampler that ignores its label map
    assert gain > 0.015  # it uses the label map it is given
    assert guidance_change > 0.01 and l1(guided, photos[:16]) < l1_random_photo  # a changed, working translation
