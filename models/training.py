"""What every custom ``train_step`` shares: one optimizer step on one loss, and one tracker per loss term.

Losses are means over the replica's batch. Under ``tf.distribute`` the optimizer *sums*
gradients across replicas, so the gradient is scaled by ``1 / num_replicas`` (the same scaling
Keras applies to its built-in losses); under mixed precision a ``LossScaleOptimizer`` multiplies
by its dynamic loss scale here and divides it out when applying. The scale is passed to
``tape.gradient`` as the output gradient, so the loss tensor itself stays as the model logs it.
"""

import keras
import tensorflow as tf


class LossTracking:
    """Mixin of the five models: a ``keras.metrics.Mean`` per named loss term (the columns of ``log.csv``).

    ``track_losses(names)`` in ``__init__``; ``train_step`` / ``test_step`` return ``self.track(losses)``, the means
    so far, which is what ``fit`` logs. ``metrics`` lists the trackers, so Keras resets them every epoch.
    """

    def track_losses(self, names):
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def track(self, losses):
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def minimize(tape, optimizer, loss, variables):
    """Apply ``optimizer`` to ``variables`` on the gradient of ``loss`` recorded by ``tape``."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    scale = tf.cast(optimizer.scale_loss(tf.constant(1.0 / replicas)), loss.dtype)
    grads = tape.gradient(loss, variables, output_gradients=scale)
    optimizer.apply_gradients(zip(grads, variables))
    return grads


def build_optimizers(pairs):
    """Prepare each optimizer of ``pairs`` (optimizer, variables); returns the optimizers to use.

    Under the ``mixed_float16`` policy each is wrapped in a ``LossScaleOptimizer`` (dynamic loss
    scaling; ``minimize`` applies it). Slots are created up front so checkpoints restore them.
    """
    prepared = []
    for optimizer, variables in pairs:
        if keras.mixed_precision.dtype_policy().name == "mixed_float16" and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        if not optimizer.built:
            optimizer.build(variables)
        prepared.append(optimizer)
    return prepared
