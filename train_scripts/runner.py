"""Training: :func:`main` of every train script, and one run from its data to its checkpoints and quick scores.

:func:`prepare_training` makes what a training loop needs - datasets from the resume point, the resume state and
the callbacks - apart from the loop that drives them (:func:`fit`, ``model.fit``), so that another loop (one
outside ``fit()``) can drive every model with the same callbacks.
"""

import datetime
import logging
import sys
import time
from dataclasses import dataclass

import keras
import tensorflow as tf

from data.augment import load_size_for
from data.errors import I2IError, LayoutError
from data.pipeline import eval_dataset, to_model_range, training_dataset
from data.sources import open_source
from train_scripts import callbacks as cb
from train_scripts.config import build_parser, default_run_dir, print_config, resolve_config
from train_scripts.devices import build_model, check_multiworker, make_strategy, precision_policy
from train_scripts.inference import load_trained, quick_scores
from train_scripts.run_folder import RunFolder, atomic_save_weights, environment, read_log, truncate_log

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


def train(spec, config, run, verbose=1, strategy=None, strategy_name="default"):
    """Train (or resume) the run under ``strategy`` (default: one device); returns ``(model, source)``."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config["batch_size"] % replicas:
        raise I2IError(f"--batch-size {config['batch_size']} is the global batch and must split evenly over the "
                       f"{replicas} replicas of --strategy {strategy_name}")
    keras.utils.set_random_seed(config["seed"])
    source, train_pairs, val_pairs = load_data(config)
    print(f"data: {len(train_pairs)} training pairs, {len(val_pairs)} validation pairs "
          f"({config['data']}, {config['image_size']} px)")
    if replicas > 1:
        print(f"strategy: {strategy_name}, {replicas} replicas, {config['batch_size'] // replicas} images per replica "
              f"and step")
    with precision_policy(config):  # kept while training: train steps are traced under it
        model = build_model(spec, config, strategy)
        run.check_free_space(model)
        session = prepare_training(spec, config, run, model, train_pairs, val_pairs, replicas)
        fit(session, config, run, verbose, strategy_name, replicas)
    return model, source


@dataclass
class TrainingSession:
    """What one invocation trains with: the model, its datasets, the resume state and the callbacks."""

    model: keras.Model
    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset
    checkpoint: cb.RunCheckpoint
    budget: cb.TimeBudget
    callbacks: list
    start_epoch: int  # logging intervals already done (resume)
    epochs: int  # logging intervals of the whole run


def prepare_training(spec, config, run, model, train_pairs, val_pairs, replicas=1):
    """Datasets from the resume point on, the resume state and every callback of a run (one Keras epoch = one
    logging interval of ``log_every`` steps)."""
    log_every = config["log_every"]
    epochs = config["steps"] // log_every
    ckpt_epochs = config["checkpoint_every"] // log_every
    checkpoint = cb.RunCheckpoint(run.file("backup"), save_every=ckpt_epochs, total_epochs=epochs,
                                  weights_path=run.file("model.weights.h5"))
    start_epoch = checkpoint.saved_epoch()
    csv_path = run.file("log.csv")
    if start_epoch:
        print(f"resuming {run.path} from its checkpoint at step {start_epoch * log_every} of {config['steps']}")
    truncate_log(csv_path, start_epoch)
    previous = read_log(csv_path)
    wall_offset = previous[-1].get("wall_time_s", 0.0) if previous else 0.0

    train_ds = training_dataset(train_pairs.labels, train_pairs.photos, config["image_size"], config["batch_size"],
                                config["steps"], config["seed"], start_step=start_epoch * log_every,
                                expand=config["expand"], augment=config["jitter"] != "none", paired=spec.paired)
    n_val = config["val_images"] or len(val_pairs)
    if replicas > 1 and n_val % config["batch_size"] and n_val > config["batch_size"]:
        # a short last batch would be split unevenly (or not at all) over the replicas, whose means then differ
        n_val -= n_val % config["batch_size"]
        print(f"note: validating on {n_val} images, a multiple of the global batch")
    val_ds = eval_dataset(val_pairs.labels[:n_val], val_pairs.photos[:n_val], config["batch_size"])
    k = min(4, len(val_pairs))
    sample_labels, sample_photos = (to_model_range(x[:k]).numpy() for x in (val_pairs.labels, val_pairs.photos))
    budget = cb.TimeBudget(60.0 * config.get("budget_minutes", 0.0), checkpoint)
    budget.last_wall_time = wall_offset
    if budget.reached(wall_offset):
        start_epoch = epochs  # the budget ran out before the run was marked finished: nothing left to train
    callbacks = [
        cb.StepInfo(log_every, wall_time_offset=wall_offset, val_keys=["val_" + m.name for m in model.metrics]),
        *(spec.callbacks(config, model, val_pairs, run) if spec.callbacks else []),
        cb.TerminateOnNonFinite(log_every, checkpoint),
        # the log row of an interval is written before its checkpoint is committed: a kill in between resumes
        # from the previous checkpoint and drops the extra rows, never leaves a gap in log.csv
        keras.callbacks.CSVLogger(csv_path, append=True),
        cb.GracefulInterrupt(checkpoint, log_every),
        budget,
        checkpoint,
        keras.callbacks.TensorBoard(run.file("tensorboard"), write_graph=False, update_freq="epoch"),
        cb.SampleGrid(run.file("samples"), sample_labels, sample_photos, lambda x: model.translate(x),
                      every_epochs=config["sample_every"] // log_every, steps_per_epoch=log_every),
        cb.LossPlot(csv_path, run.file("losses.png"), every_epochs=ckpt_epochs),
    ]
    return TrainingSession(model, train_ds, val_ds, checkpoint, budget, callbacks, start_epoch, epochs)


def fit(session, config, run, verbose=1, strategy_name="default", replicas=1):
    """Drive ``session`` with ``model.fit`` from its resume point; record the session; mark the run finished."""
    log_every, epochs, checkpoint = config["log_every"], session.epochs, session.checkpoint
    run.append_session({"started": datetime.datetime.now().isoformat(timespec="seconds"),
                        "command": " ".join(sys.argv), "start_step": session.start_epoch * log_every,
                        "status": "running", "strategy": strategy_name, "replicas": replicas,
                        "batch_per_replica": config["batch_size"] // replicas, **environment()})
    t0 = time.perf_counter()
    status = "interrupted"
    try:
        if session.start_epoch < epochs:
            session.model.fit(session.train_ds, epochs=epochs, steps_per_epoch=log_every,
                              initial_epoch=session.start_epoch, callbacks=session.callbacks,
                              validation_data=session.val_ds, validation_freq=config["checkpoint_every"] // log_every,
                              shuffle=False, verbose=verbose)
        else:  # stopped after its last checkpoint but before it was marked finished: take the weights from there
            checkpoint.set_model(session.model)
            checkpoint.restore()
            atomic_save_weights(session.model, checkpoint.weights_path)
        budget_reached = session.budget.reached(session.budget.last_wall_time)
        status = "finished" if checkpoint.saved_epoch() == epochs or budget_reached else "stopped"
    except Exception as e:
        status = f"failed: {type(e).__name__}"
        raise
    finally:
        run.update_last_session(end_step=checkpoint.saved_epoch() * log_every, status=status,
                                wall_time_s=round(time.perf_counter() - t0, 1))
    if status != "finished":
        raise KeyboardInterrupt
    steps_done = checkpoint.saved_epoch() * log_every
    run.set_progress(finished=True, steps=steps_done, **({"budget_reached": True} if steps_done < config["steps"] else {}))
    if steps_done < config["steps"]:
        print(f"training budget of {config['budget_minutes']:g} min reached at step {steps_done}: run finished")


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
        strategy = make_strategy(args.strategy) if args.strategy != "default" else None  # before any other TF op
        if args.strategy == "multiworker":
            check_multiworker(strategy)
        run = RunFolder(out)
        run.open(spec.name, args.preset, config)  # checks that an existing run folder is writable
        print(f"run folder: {run.path}")
        if run.progress().get("finished"):
            print(f"this run already finished its {config['steps']} steps; scoring it again")
            _, _, model, run = load_trained(run.path)
            quick_scores(model, open_source(config["data"]), config, run)
            return 0
        model, source = train(spec, config, run, verbose=args.verbose, strategy=strategy, strategy_name=args.strategy)
        quick_scores(model, source, config, run)
        print(f"done: {run.path}")
        return 0
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted. Run the same command again to resume from the last checkpoint.", file=sys.stderr)
        return 130
