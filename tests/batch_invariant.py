"""Training randomness that does not depend on how a batch is split, for comparing 1 device with several.

Randomness inside a train step (dropout masks, noise, diffusion times) cannot match sample by sample across
replicas: each replica draws its own numbers for its share of the batch. For these comparisons only, every draw of
``keras.random.normal/uniform/randint/truncated_normal`` (what the models call) and every dropout mask is made for one
sample and broadcast to the batch, so any split of the batch sees the same numbers. Initial weights are drawn
normally (the patch is applied after the model is built). Public Keras API only.

As a script, ``python tests/batch_invariant.py SCRIPT ARGS...`` trains ``SCRIPT`` (a train script's name) with
``ARGS`` this way; ``launch.py`` can start it as a worker. It imports the toolkit from the path: the tests start it
with ``run_helpers.env()``, whose ``PYTHONPATH`` puts this checkout first.
"""

import sys

import keras
import tensorflow as tf

ORIGINAL = {name: getattr(keras.random, name) for name in ("normal", "uniform", "truncated_normal", "randint")}
ORIGINAL_DROPOUT_CALL = keras.layers.Dropout.call


def _one_sample_for_all(draw):
    def patched(shape, *args, **kwargs):
        if hasattr(shape, "dtype"):
            shape = tf.convert_to_tensor(shape, tf.int32)
            if shape.shape[0] == 0:
                return draw(shape, *args, **kwargs)
            return tf.broadcast_to(draw(tf.concat([[1], shape[1:]], 0), *args, **kwargs), shape)
        shape = tuple(shape)
        if not shape:
            return draw(shape, *args, **kwargs)
        return tf.broadcast_to(draw((1, *shape[1:]), *args, **kwargs), shape)
    return patched


def _dropout_call(self, inputs, training=False):
    if training and self.rate > 0:
        return inputs * keras.random.dropout(tf.ones_like(inputs[:1]), self.rate, seed=self.seed_generator)
    return inputs


def batch_invariant(on):
    """Switch the one-sample-for-all draws on or off."""
    for name, draw in ORIGINAL.items():
        setattr(keras.random, name, _one_sample_for_all(draw) if on else draw)
    keras.layers.Dropout.call = _dropout_call if on else ORIGINAL_DROPOUT_CALL


def patch_spec(spec):
    """Make ``spec.build`` build with the usual initial weights, then switch the batch-invariant draws on."""
    build = spec.build

    def build_then_patch(config, **build_args):
        batch_invariant(False)
        model = build(config, **build_args)
        batch_invariant(True)
        return model

    spec.build = build_then_patch
    return spec


if __name__ == "__main__":
    from train_scripts.training import registry, runner

    sys.exit(runner.main(patch_spec(registry.spec_for(sys.argv[1])), sys.argv[2:]))
