"""Where and in what precision a model is built: the dtype policy of ``--mixed-precision`` and the ``tf.distribute``
strategy of ``--strategy`` (``--batch-size`` is the global batch; ``models.training.minimize`` scales gradients)."""

import contextlib

import keras
import tensorflow as tf

from data.errors import I2IError
from train_scripts.config import COMMON_DEFAULTS, STRATEGIES

@contextlib.contextmanager
def precision_policy(config):
    """The Keras dtype policy of ``config['mixed_precision']`` while the block runs (the previous one after)."""
    name = config.get("mixed_precision", COMMON_DEFAULTS["mixed_precision"])
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def build_model(spec, config, strategy=None):
    """``spec.build(config)`` under the config's precision policy and inside ``strategy.scope()``."""
    with precision_policy(config), (strategy or tf.distribute.get_strategy()).scope():
        return spec.build(config)


def make_strategy(name):
    """The ``tf.distribute`` strategy of ``--strategy``; ``mirrored`` uses all GPUs, else all logical CPUs."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def check_multiworker(strategy):
    """Refuse a cluster of several workers: Keras 3's ``fit`` fails under it (keras-team/keras#20585)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    workers = sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
    if workers > 1:
        raise I2IError(f"--strategy multiworker: TF_CONFIG describes {workers} workers, but Keras 3's fit() cannot "
                       "train across several workers yet (keras-team/keras#20585, tensorflow/tensorflow#72388); "
                       "use --strategy mirrored for the devices of one machine")
