"""The callbacks of a training run: Keras's own (CSVLogger, TensorBoard) plus ours where Keras has none or its own
is not atomic or not multi-loss: resume state (:class:`RunCheckpoint`), steps, NaN stop, Ctrl-C, budget, samples.

A Keras "epoch" in this toolkit is one logging interval of ``log_every`` training steps, so the
per-epoch machinery of Keras (metric means, CSV rows, checkpoints) works at step granularity.
"""

import json
import os
import signal
import time

import keras
import numpy as np

from data.errors import I2IError
from train_scripts.training.plots import image_grid, loss_curves
from train_scripts.training.run_folder import atomic_copy, atomic_save_weights, atomic_write_text


class StepInfo(keras.callbacks.Callback):
    """Adds ``step`` and cumulative ``wall_time_s`` to each epoch's logs (before CSVLogger writes them).

    Also fills the validation keys with NaN on epochs without validation, so the CSV keeps one
    fixed set of columns whether or not the first logged epoch validated.
    """

    def __init__(self, steps_per_epoch, wall_time_offset=0.0, val_keys=()):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.offset = wall_time_offset
        self.val_keys = list(val_keys)

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["step"] = (epoch + 1) * self.steps_per_epoch
        logs["wall_time_s"] = self.offset + time.perf_counter() - self._start
        for key in self.val_keys:
            logs.setdefault(key, float("nan"))


class TerminateOnNonFinite(keras.callbacks.TerminateOnNaN):
    """``TerminateOnNaN`` for models with several losses: stops on a NaN/Inf in any logged value.

    Raises at once (``raise_error`` behaviour), before any checkpoint of that step is written, with
    a message naming the step and the last good checkpoint.
    """

    def __init__(self, steps_per_epoch, checkpoint):
        super().__init__(raise_error=True)
        self.steps_per_epoch, self.checkpoint = steps_per_epoch, checkpoint
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not np.all(np.isfinite(np.asarray(v, dtype=np.float64)))}
        if bad:
            step = self._epoch * self.steps_per_epoch + batch + 1
            good = self.checkpoint.saved_epoch() * self.steps_per_epoch
            kept = (f"The last good checkpoint (step {good}) is kept in {self.checkpoint.backup_dir}; the same command "
                    f"resumes from it" if good else "No checkpoint had been written yet")
            raise I2IError(
                f"non-finite loss at step {step} ({', '.join(f'{k}={float(np.asarray(v))}' for k, v in bad.items())}); "
                f"training stopped. {kept}. Lower the learning rate (or try --mixed-precision none) or check the "
                "data, then run again."
            )


class GracefulInterrupt(keras.callbacks.Callback):
    """First Ctrl-C: finish the current logging interval, save a checkpoint, stop. Second Ctrl-C: stop now."""

    def __init__(self, checkpoint, steps_per_epoch):
        super().__init__()
        self.checkpoint, self.steps_per_epoch = checkpoint, steps_per_epoch
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this logging interval and saving a checkpoint (Ctrl-C again to stop now)",
              flush=True)

    def on_train_begin(self, logs=None):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            self._previous = None

    def on_epoch_end(self, epoch, logs=None):
        if self.requested:
            self.checkpoint.save(epoch + 1)
            self.model.stop_training = True
            print(f"checkpoint saved at step {(epoch + 1) * self.steps_per_epoch}. "
                  "Run the same command again to resume.", flush=True)

    def on_train_end(self, logs=None):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class TimeBudget(keras.callbacks.Callback):
    """Stop when the run's cumulative wall time (``logs['wall_time_s']`` from :class:`StepInfo`, all sessions)
    reaches ``budget_s``: checkpoint and weights are saved at that logging interval, and the run counts as finished.

    ``budget_s`` 0 means no budget. Used for equal-time comparisons of models on a CPU (compare.py).
    """

    def __init__(self, budget_s, checkpoint):
        super().__init__()
        self.budget_s, self.checkpoint = float(budget_s), checkpoint
        self.last_wall_time = 0.0

    def reached(self, wall_time_s):
        return self.budget_s > 0 and wall_time_s >= self.budget_s

    def on_epoch_end(self, epoch, logs=None):
        self.last_wall_time = (logs or {}).get("wall_time_s", 0.0)
        if self.reached(self.last_wall_time) and epoch + 1 > self.checkpoint.saved_epoch():
            self.checkpoint.save(epoch + 1)
            self.checkpoint.publish_weights()
            self.model.stop_training = True


class RunCheckpoint(keras.callbacks.Callback):
    """The resume state of a run: weights (every network and optimizer of the model), random-generator states and
    the number of finished logging intervals, saved every ``save_every`` epochs and at the last one; then, if
    ``weights_path`` is given, the latest weights there too (``model.weights.h5``, what evaluate.py loads).

    Public Keras API only (``save_weights`` / ``load_weights`` and the callback hooks); ``fit(initial_epoch=
    saved_epoch())`` resumes the epoch count. Each save writes a new ``ckpt-<epoch>.weights.h5`` (through a temporary
    file and ``os.replace``), then commits it by replacing ``training_metadata.json`` - epoch, weights file name and
    random-generator states in one atomic rename - and only then deletes the previous checkpoint. A kill at any
    point leaves either the old checkpoint or the new one, complete.
    """

    def __init__(self, backup_dir, save_every=1, total_epochs=None, weights_path=None, restore_dir=None):
        super().__init__()
        self.backup_dir, self.weights_path = backup_dir, weights_path
        self.restore_dir = restore_dir  # a non-chief worker (loop.py): resumes from the chief's backup, saves its own
        self.save_every = max(1, int(save_every))
        self.total_epochs = total_epochs

    @property
    def metadata_path(self):
        """The committed state: this backup's, or the chief's (``restore_dir``) until this worker saved its own."""
        own = os.path.join(self.backup_dir, "training_metadata.json")
        return own if self.restore_dir is None or os.path.exists(own) else os.path.join(self.restore_dir,
                                                                                       "training_metadata.json")

    def _metadata(self):
        """The committed backup state (``{}`` when there is none)."""
        try:
            with open(self.metadata_path) as f:
                meta = json.load(f)
            int(meta["epoch"])
            return meta
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise I2IError(f"{self.metadata_path}: unreadable backup state ({type(e).__name__}: {e}). "
                           f"{self._start_over}") from None

    @property
    def _start_over(self):
        return f"To start over, run with a new --out (or delete {self.backup_dir})."

    def saved_epoch(self):
        """Number of epochs completed in the backup (0 when there is none)."""
        return int(self._metadata().get("epoch", 0))

    def weights_file(self):
        """The weights file of the committed backup (``latest.weights.h5`` for backups of Keras' BackupAndRestore)."""
        return os.path.join(os.path.dirname(self.metadata_path), self._metadata().get("weights", "latest.weights.h5"))

    def _seed_states(self):
        """Random-generator states (dropout masks, sampling noise): Keras does not save them with the weights."""
        return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]

    def restore(self):
        """Load the committed checkpoint into the model (nothing when there is none)."""
        meta = self._metadata()
        if not meta:
            return
        weights = self.weights_file()
        if not os.path.exists(weights):
            raise I2IError(f"{weights}: missing, but {self.metadata_path} refers to it (step "
                           f"{meta['epoch']} checkpoint). {self._start_over}")
        try:
            self.model.load_weights(weights)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise I2IError(f"{weights}: cannot restore the checkpoint ({type(e).__name__}: {e}). The file is "
                           f"truncated or corrupt, or from another model configuration. {self._start_over}") from None
        states, variables = meta.get("seed_states"), self._seed_states()
        if states is not None and len(states) == len(variables):
            for v, state in zip(variables, states):
                v.assign(np.asarray(state, dtype=v.dtype))

    def save(self, epoch):
        """Commit a checkpoint of the model after ``epoch`` finished epochs."""
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"ckpt-{epoch:07d}.weights.h5"
        atomic_save_weights(self.model, os.path.join(self.backup_dir, name))
        seed_states = [np.asarray(v).tolist() for v in self._seed_states()]
        atomic_write_text(os.path.join(self.backup_dir, "training_metadata.json"), json.dumps(
            {"epoch": epoch, "batch": 0, "weights": name, "seed_states": seed_states}))
        self._remove_unreferenced(keep_temporary=True)

    def on_train_begin(self, logs=None):
        self._remove_unreferenced(keep_temporary=False)  # temporary files of a save that was killed
        folder = os.path.dirname(os.path.abspath(self.weights_path)) if self.weights_path else None
        for name in os.listdir(folder) if folder and os.path.isdir(folder) else []:
            if name.startswith(".tmp-") and name.endswith(".weights.h5"):
                os.remove(os.path.join(folder, name))
        self.restore()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.save_every == 0 or epoch + 1 == self.total_epochs:
            self.save(epoch + 1)
            self.publish_weights()

    def publish_weights(self):
        """The committed checkpoint's weights to ``weights_path``, if given: a copy of its file (the same weights,
        not serialised a second time)."""
        if self.weights_path:
            atomic_copy(self.weights_file(), self.weights_path)

    def _remove_unreferenced(self, keep_temporary):
        """Delete checkpoint files the committed metadata does not name (older ones, leftovers of a kill)."""
        if not os.path.isdir(self.backup_dir):
            return
        current = os.path.basename(self.weights_file())
        for name in os.listdir(self.backup_dir):
            temporary = name.startswith((".tmp-", "tmp"))
            if name != current and (name.endswith(".weights.h5") or temporary) and not (temporary and keep_temporary):
                try:
                    os.remove(os.path.join(self.backup_dir, name))
                except OSError:
                    pass

class KeepWeights(keras.callbacks.Callback):
    """Every ``every_epochs`` epochs, a snapshot of the weights kept for good: ``<folder>/step_<N>.weights.h5``.

    Keras's ``ModelCheckpoint`` counts batches from the start of each ``fit`` call, so after a resume its files
    would no longer fall on the run's own steps; this one numbers them by the run's step.
    """

    def __init__(self, folder, every_epochs, steps_per_epoch):
        super().__init__()
        self.folder, self.every_epochs, self.steps_per_epoch = folder, every_epochs, steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.every_epochs and (epoch + 1) % self.every_epochs == 0:
            step = (epoch + 1) * self.steps_per_epoch
            atomic_save_weights(self.model, os.path.join(self.folder, snapshot_name(step)))


def snapshot_name(step):
    """The file name of the weights kept at ``step`` (see :class:`KeepWeights`)."""
    return f"step_{step:07d}.weights.h5"


class SampleGrid(keras.callbacks.Callback):
    """Every ``every_epochs`` epochs, translate fixed label maps and save label | truth | output rows (study Fig. 4).

    ``inputs``: what ``translate`` is given instead of the label maps (an autoencoder's photos)."""

    def __init__(self, folder, labels, photos, translate, every_epochs, steps_per_epoch, inputs=None):
        super().__init__()
        self.folder, self.labels, self.photos = folder, labels, photos
        self.translate, self.every, self.steps_per_epoch = translate, max(1, every_epochs), steps_per_epoch
        self.inputs = labels if inputs is None else inputs

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            step = (epoch + 1) * self.steps_per_epoch
            outputs = np.asarray(self.translate(self.inputs))
            save_sample_grid(os.path.join(self.folder, f"step_{step:07d}.png"), self.labels, self.photos, outputs,
                             title=f"step {step}")


def save_sample_grid(path, labels, photos, outputs, title=None):
    """A labelled grid: one row per sample; columns label map, ground truth, output (images in [-1, 1])."""
    image_grid(path, [labels, photos, outputs], ["label map", "ground truth", "output"], title=title)


class LossPlot(keras.callbacks.Callback):
    """Redraws the loss curves from the CSV log every ``every_epochs`` epochs, at most once every
    ``min_interval_s`` seconds (a drawing costs about a second of CPU: short logging intervals would spend more time
    plotting than training), and always at the end."""

    def __init__(self, csv_path, png_path, every_epochs=1, min_interval_s=60.0):
        super().__init__()
        self.csv_path, self.png_path, self.every = csv_path, png_path, max(1, every_epochs)
        self.min_interval_s, self.drawn_at = min_interval_s, time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0 and time.monotonic() - self.drawn_at >= self.min_interval_s:
            self._draw()

    def on_train_end(self, logs=None):
        self._draw()

    def _draw(self):
        self.drawn_at = time.monotonic()
        if os.path.exists(self.csv_path):
            loss_curves(self.csv_path, self.png_path)
