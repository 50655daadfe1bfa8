"""Test-time noise drawn from a seed: the CVAE's z, the cGAN's noise and Pix2Pix's dropout at test.

A model's ``translate(label_maps, seed=None, **settings)`` draws its noise from the model's own
``keras.random.SeedGenerator`` objects when ``seed`` is None (their seeds: ``noise_seeds`` of the model's
``noise_seed``, or Keras' default seeds in training) and, for a ``seed``, from fresh ``keras.random.SeedGenerator``
objects made from it for that call only: the same seed gives the same output whatever the model drew before, and the
model's own generators (which training and validation also draw from) are left as they are. Both ways make their
generators from the same ``noise_seeds``, so a model built with ``noise_seed=S`` draws in its first call what any
call with ``seed=S`` draws.
"""

import keras
import numpy as np
from keras import layers

MAX_SEED = 2**31 - 1  # the seeds made are at most this (the int32 seeds TensorFlow's stateless ops take)


def noise_seeds(seed, count=1):
    """``count`` integer seeds for the generators of one source of test-time noise, made from ``seed`` (a
    non-negative integer; one stream each; None: ``count`` Nones, Keras' default seeds). The same seed gives the
    same seeds."""
    if seed is None:
        return [None] * count
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"a seed of test-time noise must be a non-negative integer, got {seed!r}")
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(count) % (MAX_SEED + 1)]


def noise_generator(seed, own):
    """The generator of one ``translate`` call's noise: ``own`` (the model's) for seed None, else a fresh
    ``keras.random.SeedGenerator`` made from ``seed``."""
    return own if seed is None else keras.random.SeedGenerator(noise_seeds(seed)[0])


def dropout_on(network, inputs, seed=None):
    """``network(inputs, training=True)``: the functional ``network`` with its dropout on. Seed None: the masks
    are drawn from the network's own Dropout layers; else from fresh generators made from ``seed`` (one per layer, in
    the order of ``network.layers``, as ``noise_seeds`` seeds a network built with ``dropout_seed``), which stand in
    for the layers' own for this call through a ``keras.StatelessScope``: the layers' generators are left as they
    were, and no layer or weight is made."""
    if seed is None:
        return network(inputs, training=True)
    dropouts = [layer for layer in network.layers if isinstance(layer, layers.Dropout)]
    fresh = [keras.random.SeedGenerator(s) for s in noise_seeds(seed, len(dropouts))]
    with keras.StatelessScope([(layer.seed_generator.state, generator.state)
                               for layer, generator in zip(dropouts, fresh)]):
        return network(inputs, training=True)
