"""Training: :func:`main` of every train script, and one run from its data to its checkpoints and quick scores.

:func:`prepare_training` makes what a training loop needs - datasets from the resume point, the resume state and
the callbacks - apart from the loop that drives them (:func:`fit`, ``model.fit``), so that another loop (one
outside ``fit()``) can drive every model with the same callbacks.
"""

import contextlib
import datetime
import functools
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

import keras
import tensorflow as tf

from data.augment import load_size_for
from data.errors import I2IError, LayoutError
from data.pipeline import eval_dataset, to_model_range, training_dataset
from data.sources import open_source
from train_scripts.training import callbacks as cb
from train_scripts.training.cluster import read_tf_config
from train_scripts.training.config import build_parser, default_run_dir, print_config, recorded_command, resolve_config
from train_scripts.training.devices import build_model, describe_device, make_strategy, precision_policy
from train_scripts.training.inference import load_trained, print_quick_scores, quick_scores, saved_quick_scores
from train_scripts.training.run_folder import RunFolder, environment, read_log, truncate_log


def load_data(config):
    """(source, training pairs at the jitter's load size, validation pairs); validates on 'test' if 'val' is absent."""
    source = open_source(config["data"])
    train_pairs = source.load("train", load_size_for(config["image_size"], config["jitter"]))
    val_split = config["val_split"]
    try:
        val_pairs = source.load(val_split, config["image_size"])
    except LayoutError:
        if val_split != "val":
            raise
        print(f"note: no '{val_split}' split in {config['data']}; validating on 'test'")
        val_pairs = source.load("test", config["image_size"])
    return source, train_pairs, val_pairs


def train(spec, config, run, verbose=1, strategy=None, strategy_name="default", cluster=None):
    """Train (or resume) the run under ``strategy`` (default: one device); returns its data source.

    With a ``cluster`` (``--strategy multiworker``) every worker trains in
    :func:`train_scripts.training.loop.train_loop`; only the chief writes ``run``, the other workers checkpoint into a
    temporary folder that is removed after."""
    strategy = strategy or tf.distribute.get_strategy()
    chief = cluster is None or cluster.is_chief
    replicas = strategy.num_replicas_in_sync
    if config["batch_size"] % replicas:
        raise I2IError(f"--batch-size {config['batch_size']} is the global batch and must split evenly over the "
                       f"{replicas} replicas of --strategy {strategy_name}")
    keras.utils.set_random_seed(config["seed"])
    source, train_pairs, val_pairs = load_data(config)
    print(f"data: {len(train_pairs)} training pairs, {len(val_pairs)} validation pairs "
          f"({config['data']}, {config['image_size']} px)")
    precision = config.get("mixed_precision", "none")
    print(f"device: {describe_device()}, precision {'float32' if precision == 'none' else precision}")
    if replicas > 1:
        workers = f" on {cluster.size} workers" if cluster else ""
        print(f"strategy: {strategy_name}, {replicas} replicas{workers}, {config['batch_size'] // replicas} images "
              "per replica and step")
    with precision_policy(config), worker_scratch(chief) as scratch:  # train steps are traced under the policy
        model = build_model(spec, config, strategy)
        if chief:
            run.check_free_space(model)
        session = prepare_training(spec, config, run, model, train_pairs, val_pairs, replicas, scratch)
        drive = None
        if cluster is not None:
            from train_scripts.training.loop import train_loop
            drive = functools.partial(train_loop, strategy, config=config, verbose=verbose, chief=chief)
        fit(session, config, run, verbose, strategy_name, replicas, drive, chief, cluster)
    return source


@contextlib.contextmanager
def worker_scratch(chief):
    """``None`` for the chief; a temporary folder for another worker's checkpoints, removed afterwards."""
    if chief:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="i2i-worker-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class TrainingSession:
    """What one invocation trains with: the model, its datasets, the resume state and the callbacks."""

    model: keras.Model
    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset
    checkpoint: cb.RunCheckpoint
    budget: cb.TimeBudget
    callbacks: list
    val_batch: int  # images per validation batch (every batch full: it divides the validation images)
    start_epoch: int  # logging intervals already done (resume)
    epochs: int  # logging intervals of the whole run


def prepare_training(spec, config, run, model, train_pairs, val_pairs, replicas=1, scratch=None):
    """Datasets from the resume point on, the resume state and every callback of a run (one Keras epoch = one
    logging interval of ``log_every`` steps). With ``scratch`` (a worker other than the chief) nothing is written to
    ``run``: checkpoints go to ``scratch``, and only the callbacks that keep the workers in step are made."""
    log_every = config["log_every"]
    epochs = config["steps"] // log_every
    ckpt_epochs = config["checkpoint_every"] // log_every
    if scratch is None:
        checkpoint = cb.RunCheckpoint(run.file("backup"), save_every=ckpt_epochs, total_epochs=epochs,
                                      weights_path=run.file("model.weights.h5"))
    else:
        checkpoint = cb.RunCheckpoint(f"{scratch}/backup", save_every=ckpt_epochs, total_epochs=epochs,
                                      weights_path=f"{scratch}/model.weights.h5", restore_dir=run.file("backup"))
    start_epoch = checkpoint.saved_epoch()
    csv_path = run.file("log.csv")
    if scratch is None:
        if start_epoch:
            print(f"resuming {run.path} from its checkpoint at step {start_epoch * log_every} of {config['steps']}")
        truncate_log(csv_path, start_epoch)
    previous = read_log(csv_path)[:start_epoch]
    wall_offset = previous[-1].get("wall_time_s", 0.0) if previous else 0.0

    # a model with ``encode_pairs`` (the latent DDIM) trains on what it makes of each pair
    train_ds = training_dataset(train_pairs.labels, train_pairs.photos, config["image_size"], config["batch_size"],
                                config["steps"], config["seed"], start_step=start_epoch * log_every,
                                expand=config["expand"], augment=config["jitter"] != "none", paired=spec.paired,
                                encode=getattr(model, "encode_pairs", None))
    n_val = config["val_images"] or len(val_pairs)
    val_batch = min(config["batch_size"], n_val)
    if replicas > 1:  # a short batch would be split unevenly (or not at all) over the replicas, whose means then differ
        even = val_batch - val_batch % replicas
        if not even:
            raise I2IError(f"{n_val} validation image(s) cannot be split over {replicas} replicas: raise --val-images")
        if even != val_batch or n_val % even:
            val_batch, n_val = even, n_val - n_val % even
            print(f"note: validating on {n_val} images, in batches of {val_batch} split evenly over the replicas")
    val_ds = eval_dataset(val_pairs.labels[:n_val], val_pairs.photos[:n_val], val_batch)
    k = min(4, len(val_pairs))
    sample_labels, sample_photos = (to_model_range(x[:k]).numpy() for x in (val_pairs.labels, val_pairs.photos))
    budget = cb.TimeBudget(60.0 * config.get("budget_minutes", 0.0), checkpoint)
    budget.last_wall_time = wall_offset
    if budget.reached(wall_offset):
        start_epoch = epochs  # the budget ran out before the run was marked finished: nothing left to train
    if scratch is not None:
        callbacks = [cb.StepInfo(log_every, wall_time_offset=wall_offset),
                     cb.TerminateOnNonFinite(log_every, checkpoint), cb.GracefulInterrupt(checkpoint, log_every),
                     budget, checkpoint]
        return TrainingSession(model, train_ds, val_ds, checkpoint, budget, callbacks, val_batch, start_epoch, epochs)
    callbacks = [
        cb.StepInfo(log_every, wall_time_offset=wall_offset, val_keys=["val_" + m.name for m in model.metrics]),
        *(spec.callbacks(config, model, val_pairs, run) if spec.callbacks else []),
        # before the checkpoint, so that the states it saves include the grid's test-time noise (Pix2Pix's dropout at
        # test draws its masks from the generators training draws from): a resumed run draws as an uninterrupted one
        cb.SampleGrid(run.file("samples"), sample_labels, sample_photos, lambda x: model.translate(x),
                      every_epochs=config["sample_every"] // log_every, steps_per_epoch=log_every,
                      inputs=sample_photos if spec.reconstructs else None),
        cb.TerminateOnNonFinite(log_every, checkpoint),
        # the log row of an interval is written before its checkpoint is committed: a kill in between resumes
        # from the previous checkpoint and drops the extra rows, never leaves a gap in log.csv
        keras.callbacks.CSVLogger(csv_path, append=True),
        cb.GracefulInterrupt(checkpoint, log_every),
        budget,
        checkpoint,
        cb.KeepWeights(run.file("snapshots"), config.get("keep_every", 0) // log_every, log_every),
        keras.callbacks.TensorBoard(run.file("tensorboard"), write_graph=False, update_freq="epoch"),
        cb.LossPlot(csv_path, run.file("losses.png"), every_epochs=ckpt_epochs),
    ]
    return TrainingSession(model, train_ds, val_ds, checkpoint, budget, callbacks, val_batch, start_epoch, epochs)


def fit(session, config, run, verbose=1, strategy_name="default", replicas=1, drive=None, chief=True, cluster=None):
    """Drive ``session`` from its resume point with ``model.fit`` (or ``drive(session)``); record the
    session and mark the run finished (the chief only)."""
    log_every, epochs, checkpoint = config["log_every"], session.epochs, session.checkpoint
    if chief:
        workers = {"workers": cluster.size, "cluster": cluster.addresses} if cluster else {}
        run.append_session({"started": datetime.datetime.now().isoformat(timespec="seconds"),
                            "command": recorded_command(sys.argv), "start_step": session.start_epoch * log_every,
                            "status": "running", "strategy": strategy_name, "replicas": replicas,
                            "batch_per_replica": config["batch_size"] // replicas, **workers, **environment()})
    t0 = time.perf_counter()
    status = "interrupted"
    try:
        if session.start_epoch < epochs and drive is not None:
            drive(session)
        elif session.start_epoch < epochs:
            session.model.fit(session.train_ds, epochs=epochs, steps_per_epoch=log_every,
                              initial_epoch=session.start_epoch, callbacks=session.callbacks,
                              validation_data=session.val_ds, validation_freq=config["checkpoint_every"] // log_every,
                              shuffle=False, verbose=verbose)
        else:  # stopped after its last checkpoint but before it was marked finished: take the weights from there
            checkpoint.set_model(session.model)
            checkpoint.restore()
            checkpoint.publish_weights()
        budget_reached = session.budget.reached(session.budget.last_wall_time)
        status = "finished" if checkpoint.saved_epoch() == epochs or budget_reached else "stopped"
    except Exception as e:
        status = f"failed: {type(e).__name__}"
        raise
    finally:
        if chief:
            run.update_last_session(end_step=checkpoint.saved_epoch() * log_every, status=status,
                                    wall_time_s=round(time.perf_counter() - t0, 1))
    if status != "finished":
        raise KeyboardInterrupt
    if not chief:
        return
    steps_done = checkpoint.saved_epoch() * log_every
    run.set_progress(finished=True, steps=steps_done,
                     **({"budget_reached": True} if steps_done < config["steps"] else {}))
    if steps_done < config["steps"]:
        print(f"training budget of {config['budget_minutes']:g} min reached at step {steps_done}: run finished")


def score_saved_weights(spec, run, source, config):
    """The quick scores of the run's saved weights, as evaluate.py scores them: by a model built afresh, whose
    test-time noise starts from its seed (a model that has trained has drawn from its generators for validation)."""
    _, _, model, run = load_trained(run.path)
    quick_scores(model, source, config, run, spec.reconstructs)


def main(spec, argv=None):
    """Entry point of a train script: returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser(spec).parse_args(argv)
    try:
        config, overrides = resolve_config(spec, args)
        print_config(spec, args.preset, config, overrides)
        if args.print_config:
            return 0
        out = args.out or default_run_dir(spec, args.preset, overrides)
        cluster = read_tf_config() if args.strategy == "multiworker" else None
        # before any other TensorFlow op
        strategy = make_strategy(args.strategy, cluster, args.cluster_timeout) if args.strategy != "default" else None
        run = RunFolder(out)
        chief = cluster is None or cluster.is_chief  # only the chief checks and writes the run folder
        if chief:
            run.open(spec.name, args.preset, config)  # checks that an existing run folder is writable
            print(f"run folder: {run.path}")
        if run.progress().get("finished"):
            if chief:
                saved = saved_quick_scores(run, config)
                if saved is not None:
                    print(f"this run already finished its {config['steps']} steps; its scores:")
                    print_quick_scores(saved)
                else:
                    print(f"this run already finished its {config['steps']} steps; scoring it")
                    score_saved_weights(spec, run, open_source(config["data"]), config)
        else:
            source = train(spec, config, run, verbose=args.verbose if chief else 0, strategy=strategy,
                           strategy_name=args.strategy, cluster=cluster)
            if chief:
                score_saved_weights(spec, run, source, config)
                print(f"done: {run.path}")
        if cluster is not None:
            from train_scripts.training.loop import leave_together
            leave_together(strategy)
        return 0
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted. Run the same command again to resume from the last checkpoint.", file=sys.stderr)
        return 130
