"""Where and in what precision a model is built: the dtype policy of ``--mixed-precision`` and the ``tf.distribute``
strategy of ``--strategy`` (``--batch-size`` is the global batch; ``models.training.minimize`` scales gradients)."""

import contextlib

import keras
import tensorflow as tf

from train_scripts.cluster import join_cluster, read_tf_config
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


def build_model(spec, config, strategy=None, **build_args):
    """``spec.build(config, **build_args)`` under the config's precision policy and inside ``strategy.scope()``."""
    with precision_policy(config), (strategy or tf.distribute.get_strategy()).scope():
        return spec.build(config, **build_args)


def make_strategy(name, cluster=None, cluster_timeout_s=300.0):
    """The ``tf.distribute`` strategy of ``--strategy``; ``mirrored`` uses all GPUs, else all logical CPUs;
    ``multiworker`` joins the workers of ``cluster`` (``cluster.read_tf_config()``), failing after ``cluster_timeout_s``
    seconds if some do not answer."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multiworker":
        cluster = cluster or read_tf_config()
        join_cluster(cluster, cluster_timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
