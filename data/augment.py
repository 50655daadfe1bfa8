"""The study's augmentation (section 3.1): resize, the same random crop and flip for both images.

Both images are resized to ``load_size`` (the study: 300 for 256 crops; the pix2pix paper: 286)
before caching; :func:`random_jitter` then takes one random ``crop_size`` window and one random
horizontal flip and applies them to the label map and the photo together, by stacking the two
along the channel axis. All randomness is stateless, keyed by an explicit seed, so a sample is a
pure function of ``(seed, sample index)`` and an interrupted run resumes on the same data.
"""

import tensorflow as tf

STUDY_LOAD_RATIO = 300 / 256
PIX2PIX_LOAD_RATIO = 286 / 256


def load_size_for(image_size, jitter="study"):
    """Resize target before cropping: 300 at 256 px (study), 286 (pix2pix), or no jitter."""
    ratios = {"study": STUDY_LOAD_RATIO, "pix2pix": PIX2PIX_LOAD_RATIO, "none": 1.0}
    if jitter not in ratios:
        raise ValueError(f"jitter must be one of {sorted(ratios)}, got {jitter!r}")
    return int(round(image_size * ratios[jitter]))


def random_jitter(label, photo, crop_size, seed):
    """Same random crop and horizontal flip for ``label`` and ``photo`` (HxWxC each).

    ``seed`` is a shape-[2] int tensor; equal seeds give equal crops and flips.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    channels = tf.shape(label)[-1]
    both = tf.concat([label, photo], axis=-1)
    both = tf.image.stateless_random_crop(both, [crop_size, crop_size, 2 * channels], seed=seeds[0])
    both = tf.image.stateless_random_flip_left_right(both, seed=seeds[1])
    return both[..., :channels], both[..., channels:]
