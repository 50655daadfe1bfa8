"""tf.data pipelines: training batches addressed by step, evaluation batches in file order.

The training stream is a pure function of ``(seed, sample index)``: sample ``k`` of a run
(``k = step * batch_size + j``) is pair ``perm_e[k mod n]`` of data epoch ``e = k div n``, where
``perm_e`` is a stateless shuffle keyed by ``(seed, e)``, augmented with a crop and flip keyed by
``(seed, k)``. So a run resumed at step ``s`` sees exactly the batches an uninterrupted run sees
from step ``s`` on, without replaying the stream. Images are decoded once (by
:mod:`data.sources`) and held as one uint8 tensor; the map runs in parallel and batches are
prefetched, so the training step does not wait on input (see ``train_scripts/bench/training.py``).
"""

import numpy as np
import tensorflow as tf

from data.augment import random_jitter

AUTOTUNE = tf.data.AUTOTUNE
_EXPAND_SALT = 7919  # keeps the fixed expansion's crops independent of the per-step stream


def to_model_range(x):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(x, tf.float32) / 127.5 - 1.0


def to_uint8(x):
    """float [-1, 1] -> uint8 [0, 255] (rounded, clipped)."""
    return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def expand_pairs(labels, photos, image_size, factor, seed):
    """Fixed augmentation (study section 3.1: 400 pairs -> 2400): ``factor`` random crops/flips of each pair."""
    n = len(labels)
    images = tf.constant(np.concatenate([labels, photos], axis=-1))

    def crop(k):
        pair = tf.gather(images, k % n)
        return random_jitter(pair[..., :3], pair[..., 3:], image_size,
                             tf.stack([tf.cast(seed + _EXPAND_SALT, tf.int64), k]))

    ds = tf.data.Dataset.range(n * factor).map(crop, num_parallel_calls=AUTOTUNE).batch(256)
    out_l, out_p = zip(*[(a.numpy(), b.numpy()) for a, b in ds])
    return np.concatenate(out_l), np.concatenate(out_p)


def training_dataset(labels, photos, image_size, batch_size, steps, seed, start_step=0,
                     augment=True, expand=0, paired=True, encode=None):
    """Batches ``(label, photo)`` in [-1, 1] for training steps ``start_step .. steps - 1``.

    ``labels``/``photos`` are uint8 (n, H, W, 3) at the load size (H > image_size when augmenting).
    ``expand > 0`` replaces per-sample augmentation by a fixed set of ``expand * n`` augmented pairs.
    ``paired=False`` draws photos with their own permutation (unpaired training, CycleGAN).
    ``encode(labels, photos)``: what the model trains on instead of a batch of pairs in [-1, 1] (the latent DDIM's
    conditions and latents); a fixed set (``expand`` or no augmentation) is encoded once, up front, otherwise every
    batch is.
    """
    if expand:
        labels, photos = expand_pairs(labels, photos, image_size, expand, seed)
        augment = False
    n = len(labels)
    if not augment and labels.shape[1] != image_size:
        raise ValueError(f"images are {labels.shape[1]} px but no augmentation crops them to {image_size}")
    to_model = to_model_range
    if encode is not None and not augment:
        labels, photos = encode_all(encode, labels, photos, paired)
        to_model = tf.identity
    label_images, photo_images = tf.constant(labels), tf.constant(photos)
    seed = tf.constant(seed, tf.int64)

    def index(k, salt):
        epoch, pos = k // n, k % n
        perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                        seed=tf.stack([seed + salt, epoch]))
        return perm[pos]

    def sample(k):
        label = tf.gather(label_images, index(k, 0))
        photo = tf.gather(photo_images, index(k, 0) if paired else index(k, 1))
        if augment:
            label, photo = random_jitter(label, photo, image_size, tf.stack([seed, k]))
        return to_model(label), to_model(photo)

    ds = tf.data.Dataset.range(start_step * batch_size, steps * batch_size)
    ds = ds.map(sample, num_parallel_calls=AUTOTUNE).batch(batch_size, drop_remainder=True)
    if encode is not None and augment:
        ds = ds.map(encode)
    return ds.prefetch(AUTOTUNE)


def encode_all(encode, labels, photos, paired=True, batch_size=32):
    """``encode`` every pair of uint8 ``labels`` / ``photos`` once, in batches: two float32 arrays."""
    if not paired:
        raise ValueError("a fixed set can be encoded only for paired training")
    out = [encode(to_model_range(labels[i:i + batch_size]), to_model_range(photos[i:i + batch_size]))
           for i in range(0, len(labels), batch_size)]
    return tuple(np.concatenate([np.asarray(part[j]) for part in out]).astype(np.float32) for j in (0, 1))


def eval_dataset(labels, photos, batch_size):
    """Every pair once, in order, as ``(label, photo)`` batches in [-1, 1] (the last batch may be short)."""
    ds = tf.data.Dataset.from_tensor_slices((labels, photos))
    return (ds.batch(batch_size)
            .map(lambda a, b: (to_model_range(a), to_model_range(b)), num_parallel_calls=AUTOTUNE)
            .prefetch(AUTOTUNE))
