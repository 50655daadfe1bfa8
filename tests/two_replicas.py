"""``python -m two_replicas SCRIPT OUT ARGS...``: train SCRIPT's run (a train script's name, its flags) on one device
into OUT/default, then on two replicas of this process's CPU into OUT/mirrored, with batch-invariant randomness
(tests/batch_invariant.py). Started by tests/distribution_check.py with ``run_helpers.env()``, whose ``PYTHONPATH``
holds this checkout and ``tests/``."""

import os
import sys


def main(argv):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]  # two logical devices, before TensorFlow initialises them
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from batch_invariant import patch_spec
    from train_scripts.training import registry, runner

    script, out, *args = argv
    spec = patch_spec(registry.spec_for(script))
    for strategy in ("default", "mirrored"):  # in one process: the second run builds its model afresh, same seed
        code = runner.main(spec, [*args, "--strategy", strategy, "--out", os.path.join(out, strategy)])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
