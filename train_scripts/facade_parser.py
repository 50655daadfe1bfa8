"""Train the facade parser (photo -> 12 CMP classes), the segmenter of the segmentation score, and report its quality.

    python train_scripts/facade_parser.py --data ../shared/data/facades --out runs/facade-parser
    python train_scripts/facade_parser.py --data ../shared/data/facades --report [--weights DIR]

Training: the U-Net of :mod:`models.facade_parser` with a 12-way softmax, cross-entropy on the train photos, the
label maps converted to class indices with the JPEG seams ignored (:mod:`data.label_classes`); photos are area-resized
to ``--image-size * 286 / 256`` and class maps resampled at the pixel centres to the same size, then both get the same
random ``--image-size`` crop and horizontal flip (:func:`data.augment.random_jitter`; class maps are only cut and
mirrored, never blended), and a quarter of the photos are reduced to half size and enlarged back (bicubic), so that
photos of 64 px models, enlarged to the parser's size, are parsed too. Sample ``k`` is a pure function of
``(seed, k)``; Adam with a cosine-decayed learning rate over ``--epochs``. ``--budget-minutes M`` ends the run at the
end of the first epoch past M minutes of training (summed over sessions), with the weights it has then.

Run folder (``--out``): ``run_config.json`` (a folder of another config is refused), ``checkpoints/epoch-NNNN.keras``
(the model with its optimizer, written atomically at every epoch's end: the same command resumes an interrupted run
at its last epoch, on the same samples), ``log.csv`` (loss, validation mIoU and pixel accuracy every
``--val-every`` epochs, cumulative training seconds), and at the end ``facade_parser.npz`` + ``facade_parser.json``
(:func:`metrics.facade_parser.save_facade_parser`) and ``quality_val.json``. The val split is only watched, never used
to choose weights: the last epoch's are saved.

``--report``: the parser's quality on the ``--split`` photos (never trained on), per class and overall: the *ceiling*,
real photos scored against their own label maps (what a generated photo can reach), and the *floor*, real photos
scored against the label map of another image of the split (image ``i`` against ``(i + n // 2) mod n``).
"""

import argparse
import contextlib
import glob
import json
import logging
import os
import re
import sys
import time

import numpy as np

import train_scripts  # noqa: F401  (TensorFlow's environment defaults, before data.augment imports it)
from data.augment import load_size_for, random_jitter
from data.errors import I2IError
from data.label_classes import IGNORE, conversion_settings, label_map_to_classes, resize_classes
from data.sources import open_source, resize
from data.synthetic import CLASS_NAMES
from metrics.facade_parser import CONFIG_NAME, FacadeParser, load_facade_parser, save_facade_parser
from metrics.segmentation import segmentation_scores

LOW_RESOLUTION_SHARE = 0.25
TRAINING_KEYS = ("data", "read_size", "image_size", "width", "batch_size", "steps_per_epoch", "epochs",
                 "learning_rate", "seed")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (pix2pix A|B, two-folder or Kaggle layout), "
                   "'facades' or 'synthetic'")
    p.add_argument("--out", default="runs/facade-parser", help="run folder")
    p.add_argument("--read-size", type=int, default=256, help="size at which pairs are read (the facades' own)")
    p.add_argument("--image-size", type=int, default=128, help="the parser's resolution")
    p.add_argument("--width", type=int, default=24, help="width of the first layer (widths double up to 4x)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--learning-rate", type=float, default=2e-3, help="Adam's, cosine-decayed to 0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop at the end of the first epoch past this much training time (over all sessions); the "
                        "run then counts as finished, its learning rate not yet decayed to 0")
    p.add_argument("--val-every", type=int, default=5, help="epochs between validation scores (and at the end)")
    p.add_argument("--report", action="store_true", help="only score the parser of --weights (no training)")
    p.add_argument("--weights", default=None, help="--report: the parser's folder (default: --out's, else "
                   "metrics/weights/facade_parser/)")
    p.add_argument("--split", default="val", help="--report: the split scored")
    p.add_argument("--verbose", type=int, default=2)
    return p


# ------------------------------------------------------------------------------------------------ data

def load_split(data, split, read_size, size=None):
    """Photos (uint8, resized to ``size`` if given) and class maps (resampled to ``size``) of one split.

    Label maps are converted to classes at ``read_size``, before any resize, so that no resize blends classes.
    """
    pairs = open_source(data).load(split, read_size)
    classes = label_map_to_classes(pairs.labels)
    if size is None:
        return pairs.photos, classes, pairs.labels
    photos = np.stack([resize(p, size) for p in pairs.photos])
    return photos, resize_classes(classes, size), pairs.labels


def training_batches(photos, classes, image_size, batch_size, seed, start_step, steps):
    """``(photo in [-1, 1], class map)`` batches for steps ``start_step .. steps - 1``; sample k is a function of
    ``(seed, k)``."""
    import tensorflow as tf

    n = len(photos)
    photo_images, class_images = tf.constant(photos), tf.constant(np.repeat(classes[..., None], 3, axis=-1))
    seed = tf.constant(seed, tf.int64)

    def sample(k):
        epoch, pos = k // n, k % n
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))
        index = order[pos]
        crop_seed, low_seed = tf.unstack(tf.random.experimental.stateless_split(tf.stack([seed, k]), num=2))
        cls, photo = random_jitter(tf.gather(class_images, index), tf.gather(photo_images, index), image_size,
                                   crop_seed)
        photo = tf.cast(photo, tf.float32)
        reduced = tf.image.resize(tf.image.resize(photo, [image_size // 2] * 2, "area"), [image_size] * 2, "bicubic")
        photo = tf.where(tf.random.stateless_uniform([], low_seed) < LOW_RESOLUTION_SHARE, reduced, photo)
        return tf.clip_by_value(photo, 0.0, 255.0) / 127.5 - 1.0, cls[..., 0]

    ds = tf.data.Dataset.range(start_step * batch_size, steps * batch_size)
    ds = ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------------------------------------ quality

def parser_quality(parser, photos, label_maps):
    """Ceiling (photos against their own label maps) and floor (against the label map of image (i + n//2) mod n)."""
    n = len(photos)
    other = (np.arange(n) + n // 2) % n
    return {"ceiling": segmentation_scores(photos, label_maps, parser),
            "floor": segmentation_scores(photos, label_maps[other], parser),
            "n_images": n, "floor_pairing": "image i against the label map of image (i + n // 2) mod n"}


def format_quality(quality):
    def cell(v):
        return "   -  " if v is None else f"{v:6.3f}"

    ceiling, floor = quality["ceiling"], quality["floor"]
    lines = [f"{'class':<12} {'ceiling':>7} {'floor':>7}"]
    lines += [f"{name:<12} {cell(ceiling['per_class_iou'][name]):>7} {cell(floor['per_class_iou'][name]):>7}"
              for name in CLASS_NAMES]
    lines += [f"{'mIoU':<12} {cell(ceiling['seg_miou']):>7} {cell(floor['seg_miou']):>7}",
              f"{'pixel acc.':<12} {cell(ceiling['seg_acc']):>7} {cell(floor['seg_acc']):>7}"]
    return "\n".join(lines)


def report(args, folder=None):
    """Score the parser of ``folder`` on ``--split``; print the table; write ``quality_<split>.json`` beside it."""
    folder = folder or args.weights or (args.out if os.path.isfile(os.path.join(args.out, CONFIG_NAME)) else None)
    parser = load_facade_parser(folder)
    photos, _, label_maps = load_split(args.data, args.split, args.read_size)
    quality = parser_quality(parser, photos, label_maps)
    quality.update(split=args.split, data=args.data, parser=parser.config)
    print(f"facade parser on the {args.split} split ({len(photos)} images), IoU per class:")
    print(format_quality(quality))
    if folder is not None and os.access(folder, os.W_OK):
        path = os.path.join(folder, f"quality_{args.split}.json")
        with open(path, "w") as f:
            json.dump(quality, f, indent=2)
            f.write("\n")
        print(f"written {path}")
    return quality


# ------------------------------------------------------------------------------------------------ training

def checkpoints(out):
    """``{epoch: path}`` of the checkpoints in the run folder."""
    found = {}
    for path in glob.glob(os.path.join(out, "checkpoints", "epoch-*.keras")):
        match = re.fullmatch(r"epoch-(\d+)\.keras", os.path.basename(path))
        if match:
            found[int(match.group(1))] = path
    return found


def check_run_config(out, config):
    """Write ``run_config.json`` in a new folder; refuse a folder holding a run of another config."""
    path = os.path.join(out, "run_config.json")
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        if saved != config:
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            raise I2IError(f"{path}: this folder holds a parser run of another config ({', '.join(changed)} "
                           f"differ); use another --out")
        return
    os.makedirs(out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def seconds_before(out, epoch):
    """Training seconds of the previous sessions, from the last ``log.csv`` row before ``epoch``."""
    import pandas as pd

    path = os.path.join(out, "log.csv")
    if not epoch or not os.path.isfile(path):
        return 0.0
    log = pd.read_csv(path)
    rows = log[log["epoch"] < epoch]
    return float(rows["train_seconds"].iloc[-1]) if len(rows) else 0.0


def train(args):
    import keras

    from models.facade_parser import facade_parser_network
    from train_scripts.training.run_folder import environment

    config = {k: getattr(args, k) for k in TRAINING_KEYS}
    run_environment = environment()  # the commit of the code this session trains with
    out = args.out
    check_run_config(out, config)
    if os.path.isfile(os.path.join(out, CONFIG_NAME)):
        print(f"{out}: training finished; scoring its parser again")
        return report(args, out)
    photos, classes, _ = load_split(args.data, "train", args.read_size, load_size_for(args.image_size, "pix2pix"))
    val_photos, _, val_labels = load_split(args.data, "val", args.read_size)
    ignored = float(np.mean(classes == IGNORE))
    print(f"{len(photos)} train pairs, {len(val_photos)} val pairs; {ignored:.1%} of train label pixels ignored "
          f"(JPEG seams)")
    total_steps = args.epochs * args.steps_per_epoch

    found = checkpoints(out)
    start_epoch = max(found, default=0)
    if start_epoch:
        model = keras.saving.load_model(found[start_epoch])
        print(f"resuming {out} from its checkpoint at epoch {start_epoch}")
    else:
        keras.utils.set_random_seed(args.seed)
        model = facade_parser_network(args.image_size, args.width, len(CLASS_NAMES))
        schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, total_steps)
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE))
    print(f"facade parser: {model.count_params():,} parameters, {args.image_size} px, width {args.width}")
    data = training_batches(photos, classes, args.image_size, args.batch_size, args.seed,
                            start_epoch * args.steps_per_epoch, total_steps)
    parser = FacadeParser(model, args.image_size)
    previous_seconds, started = seconds_before(out, start_epoch), time.monotonic()

    def end_of_epoch(epoch, logs):
        done = epoch + 1
        logs["val_seg_miou"] = logs["val_seg_acc"] = float("nan")
        if done % args.val_every == 0 or done == args.epochs:
            scores = segmentation_scores(val_photos, val_labels, parser)
            logs["val_seg_miou"], logs["val_seg_acc"] = scores["seg_miou"], scores["seg_acc"]
            print(f"epoch {done}: loss {logs['loss']:.4f}, val mIoU {scores['seg_miou']:.4f}, "
                  f"pixel accuracy {scores['seg_acc']:.4f}", flush=True)
        logs["train_seconds"] = previous_seconds + time.monotonic() - started
        if args.budget_minutes is not None and logs["train_seconds"] >= 60 * args.budget_minutes:
            print(f"budget of {args.budget_minutes:g} minutes reached after epoch {done}", flush=True)
            model.stop_training = True
        folder = os.path.join(out, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        path, tmp = os.path.join(folder, f"epoch-{done:04d}.keras"), os.path.join(folder, ".tmp-checkpoint.keras")
        model.save(tmp)
        os.replace(tmp, path)
        for old, old_path in checkpoints(out).items():
            if old < done:
                os.remove(old_path)

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=end_of_epoch),
                 keras.callbacks.CSVLogger(os.path.join(out, "log.csv"), append=True)]
    if start_epoch < args.epochs and seconds_before(out, start_epoch) < 60 * (args.budget_minutes or np.inf):
        model.fit(data, epochs=args.epochs, initial_epoch=start_epoch, steps_per_epoch=args.steps_per_epoch,
                  callbacks=callbacks, verbose=args.verbose, shuffle=False)
    epochs_done = max(checkpoints(out), default=0)
    seconds = seconds_before(out, epochs_done)
    save_facade_parser(model, out, {
        "image_size": args.image_size, "width": args.width, "class_names": list(CLASS_NAMES),
        "label_conversion": conversion_settings(),
        "training": dict(config, train_images=len(photos), epochs_done=epochs_done,
                         steps=epochs_done * args.steps_per_epoch, budget_minutes=args.budget_minutes,
                         train_seconds=round(seconds, 1),
                         cpu=run_environment["device"]["cpu"],
                         **{k: v for k, v in run_environment.items() if k != "device"}),
    })
    print(f"training took {seconds / 60:.1f} minutes; parser written to {out}")
    return report(args, out)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        for name in ("image_size", "width", "batch_size", "steps_per_epoch", "epochs", "val_every", "read_size"):
            if getattr(args, name) < 1:
                raise I2IError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
        if args.report:
            report(args)
        else:
            train(args)
        return 0
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
