"""The training loop of ``--strategy multiworker``: each model's own ``train_step`` / ``test_step`` under
``strategy.run``, driving the same callbacks as ``model.fit`` (Keras 3's ``fit`` fails under
``MultiWorkerMirroredStrategy``, keras-team/keras#20585).

Every worker runs this loop in lock step. Worker *i* of *N* takes the *i*-th slice of every global batch, so the
sequence of global batches is the one-device sequence whatever *N* (each worker reads and augments every global
batch, then keeps its slice). Logged values are means over all replicas. Decisions that end a run - the time budget,
Ctrl-C on any worker - are agreed across workers at the end of each logging interval, so that every worker saves the
same checkpoint and stops after the same step. Every worker has the same number of devices (as the strategy needs).
"""

import contextlib
import logging

import keras
import numpy as np
import tensorflow as tf

from data.errors import I2IError
from train_scripts.training import callbacks as cb


def distribute(strategy, dataset, global_batch):
    """``dataset`` (batches of ``global_batch`` pairs) split over the replicas of all workers: worker *i* of *N* takes
    the *i*-th slice of every global batch and hands it to its replicas in turn, with static batch shapes (CycleGAN's
    image pool needs them)."""
    def worker_share(context):
        per_worker = global_batch // context.num_input_pipelines
        first = context.input_pipeline_id * per_worker
        share = dataset.map(lambda *batch: tuple(x[first:first + per_worker] for x in batch))
        return share.unbatch().batch(context.get_per_replica_batch_size(global_batch), drop_remainder=True)

    return strategy.distribute_datasets_from_function(worker_share)


class Agreement:
    """Values every worker must share: the chief's (``chief_value``) or whether any worker's is set (``any_worker``)."""

    def __init__(self, strategy, chief):
        self.chief = chief

        @tf.function
        def sum_over_replicas(value):
            return strategy.reduce("SUM", strategy.run(lambda v: v, args=(value,)), axis=None)

        self._sum = sum_over_replicas
        self._local_replicas = len(strategy.extended.worker_devices)

    def _sum_over_workers(self, value):
        # strategy.run hands the value to each replica of this worker: the sum counts it once per local replica
        return float(self._sum(tf.constant(value, tf.float64))) / self._local_replicas

    def chief_value(self, value):
        return self._sum_over_workers(float(value) if self.chief else 0.0)

    def any_worker(self, flag):
        return self._sum_over_workers(1.0 if flag else 0.0) > 0


class AgreeAcrossWorkers(keras.callbacks.Callback):
    """Runs right after :class:`~train_scripts.training.callbacks.StepInfo`: the chief's wall time becomes every
    worker's (the budget ends all at once) and a Ctrl-C on any worker stops all of them after this interval."""

    def __init__(self, agreement, interrupt):
        super().__init__()
        self.agreement, self.interrupt = agreement, interrupt

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "wall_time_s" in logs:
            logs["wall_time_s"] = self.agreement.chief_value(logs["wall_time_s"])
        if self.interrupt is not None:
            self.interrupt.requested = self.agreement.any_worker(self.interrupt.requested)


def _floats(logs):
    return {k: float(np.asarray(v)) for k, v in logs.items()}


def compiled_steps(strategy, model, batch_size, val_batch):
    """``(train_step, test_step)``: one step of the model on every replica, taking a distributed iterator and
    returning the logged values as means over all replicas."""
    def with_batch_size(step, global_batch):
        # multi-worker iterators leave the batch dimension unknown (a worker may run out first); every batch here is
        # full, and CycleGAN's image pool needs the static size
        size = global_batch // strategy.num_replicas_in_sync
        return lambda batch: step(tuple(tf.ensure_shape(x, [size, *x.shape[1:]]) for x in batch))

    def mean_over_replicas(logs):  # one collective for all logged values, not one each
        names = sorted(logs)
        stacked = strategy.run(lambda *v: tf.stack([tf.cast(x, tf.float32) for x in v]),
                               args=tuple(logs[k] for k in names))
        return dict(zip(names, tf.unstack(strategy.reduce("MEAN", stacked, axis=None))))

    replica_train_step = with_batch_size(model.train_step, batch_size)
    replica_test_step = with_batch_size(model.test_step, val_batch)

    @tf.function
    def train_step(iterator):
        return mean_over_replicas(strategy.run(replica_train_step, args=(next(iterator),)))

    @tf.function
    def test_step(iterator):
        return mean_over_replicas(strategy.run(replica_test_step, args=(next(iterator),)))

    return train_step, test_step


@contextlib.contextmanager
def lost_workers_reported(checkpoint, log_every):
    """A worker that died or cannot be reached ends the run with one clear error (TensorFlow's heartbeats and
    collectives notice it) instead of a gRPC trace."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError) as e:
        step = checkpoint.saved_epoch() * log_every
        message = str(e.message).strip().splitlines()[0][:300]
        kept = (f"The checkpoint at step {step} is kept; start every worker again with the same command to resume "
                "from it" if step else "No checkpoint had been written yet; the same command starts over")
        raise I2IError(f"lost contact with another worker ({type(e).__name__}: {message}). {kept}") from None


def train_loop(strategy, session, config, verbose=2, chief=True):
    """Train ``session`` (see ``runner.prepare_training``) from its resume point with ``strategy``: the multi-worker
    counterpart of ``model.fit(train_ds, epochs, steps_per_epoch=log_every, initial_epoch, callbacks,
    validation_data, validation_freq)``."""
    model, log_every = session.model, config["log_every"]
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # not a line per collective call
    validation_freq = max(1, config["checkpoint_every"] // log_every)
    agreement = Agreement(strategy, chief)
    chief_start = agreement.chief_value(session.start_epoch)
    if chief_start != session.start_epoch:
        raise I2IError(f"this worker would resume at step {session.start_epoch * log_every} but the chief at step "
                       f"{int(chief_start) * log_every}: every worker must see the chief's run folder (--out on a "
                       "file system that all machines share)")
    train_step, test_step = compiled_steps(strategy, model, config["batch_size"], session.val_batch)
    interrupt = next((c for c in session.callbacks if isinstance(c, cb.GracefulInterrupt)), None)
    callbacks = list(session.callbacks)
    at = next((i + 1 for i, c in enumerate(callbacks) if isinstance(c, cb.StepInfo)), 0)
    callbacks.insert(at, AgreeAcrossWorkers(agreement, interrupt))
    callbacks = keras.callbacks.CallbackList(callbacks, add_progbar=chief and verbose != 0, model=model,
                                             verbose=verbose, epochs=session.epochs, steps=log_every)
    train_batches = iter(distribute(strategy, session.train_ds, config["batch_size"]))
    val_batches = distribute(strategy, session.val_ds, session.val_batch)
    n_val_batches = int(session.val_ds.cardinality())
    model.stop_training = False
    with lost_workers_reported(session.checkpoint, log_every):
        callbacks.on_train_begin()
        logs = {}
        for epoch in range(session.start_epoch, session.epochs):
            model.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            for batch in range(log_every):
                callbacks.on_train_batch_begin(batch)
                logs = _floats(train_step(train_batches))
                callbacks.on_train_batch_end(batch, logs)
            logs = dict(logs)
            if (epoch + 1) % validation_freq == 0:
                model.reset_metrics()
                val_logs, batches = {}, iter(val_batches)
                for _ in range(n_val_batches):
                    val_logs = test_step(batches)
                logs.update({"val_" + k: v for k, v in _floats(val_logs).items()})
            callbacks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        callbacks.on_train_end(logs)


def leave_together(strategy):
    """A last collective: every worker waits until the chief has scored the run, so that none leaves early (to the
    others, a worker that left looks like one that crashed)."""
    Agreement(strategy, chief=False).any_worker(False)
