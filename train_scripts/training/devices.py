"""Where and in what precision a model is built: the dtype policy of ``--mixed-precision`` and the ``tf.distribute``
strategy of ``--strategy`` (``--batch-size`` is the global batch; ``models.training.minimize`` scales gradients)."""

import contextlib
import os

import keras
import tensorflow as tf

from train_scripts.training.cluster import join_cluster, read_tf_config
from train_scripts.training.config import COMMON_DEFAULTS, STRATEGIES
from train_scripts.training.run_folder import cpu_name


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


def describe_device():
    """The device that trains, as the console says it at the start of a run: the GPUs TensorFlow sees, else the CPU.
    (``sessions.jsonl`` records the same with every session.)"""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({', '.join(names)})"
    return f"CPU ({cpu_name()}, {os.cpu_count()} logical cores; TensorFlow sees no GPU)"
