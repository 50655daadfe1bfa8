"""Translate a folder of your own label maps with a trained run: one PNG per label map.

    python train_scripts/translate.py RUN_DIR INPUT_DIR OUT_DIR [--keep-size] [--batch-size 16]
    python train_scripts/translate.py EXPORT_DIR labels/ photos/           # an exported model (export.py), the same
    python train_scripts/translate.py DDIM_RUN labels/ photos/ --seed 3 --set sampling_steps=50   # another draw
    python train_scripts/translate.py PIX2PIX_RUN labels/ photos/ --set dropout_at_test=true --seed 1

Every file of INPUT_DIR with an extension Pillow reads (png, jpg, bmp, webp, tif, ...; sorted by name; subfolders
are not read) is read as the training data is (EXIF orientation applied; grayscale, RGBA, palette and 16-bit
images converted to RGB with a warning), resized to the run's training resolution as the data loaders resize,
translated in batches as ``evaluate.py`` translates, and written to ``OUT_DIR/<stem>.png`` (``12.jpg`` ->
``12.png``; ``--keep-size``: resized back to the input's size). A file of that name in OUT_DIR is replaced
atomically; other files are left alone. ``--set KEY=VALUE`` changes a test-time setting as in ``evaluate.py``;
``--seed N`` draws another sample from a stochastic model (the diffusion sampler's seed, otherwise the
seed of CVAE/cGAN noise and test-time dropout).

Files that cannot be read (not an image, truncated, corrupt, larger than ``--max-pixels``) are named on stderr
and skipped. Exit code: 0 all translated, 1 some skipped, 2 error (nothing translated: bad folders, a run that
cannot be loaded, a refused setting).
"""

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import warnings

import cv2
from PIL import Image

from data.errors import I2IError, ImageError
from data.images import read_image
from data.sources import resize
from train_scripts.training.config import TRANSLATE_BATCH_SIZE

log = logging.getLogger("i2i")

DEFAULT_MAX_PIXELS = 50_000_000


# ------------------------------------------------------------------------------------------ input and output

def image_extensions():
    """Every file extension Pillow has a reader for (``.png``, ``.jpg``, ``.webp``, ...)."""
    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def list_inputs(input_dir):
    """The image files of ``input_dir`` sorted by name (hidden files, subfolders and other extensions left out).

    Refuses a missing or empty folder. A file with another extension is named in a warning, not read.
    """
    if not os.path.isdir(input_dir):
        raise I2IError(f"{input_dir}: {'not a folder' if os.path.exists(input_dir) else 'no such folder'}")
    extensions = image_extensions()
    names = sorted(n for n in os.listdir(input_dir)
                   if not n.startswith(".") and os.path.isfile(os.path.join(input_dir, n)))
    images = [n for n in names if os.path.splitext(n)[1].lower() in extensions]
    for name in sorted(set(names) - set(images)):
        log.warning("%s: ignored, not an image file (by its extension)", os.path.join(input_dir, name))
    if not images:
        raise I2IError(f"{input_dir}: no image files" + (f" ({len(names)} other files)" if names else ""))
    return [os.path.join(input_dir, n) for n in images]


def check_output_dir(input_dir, out_dir):
    """Refuse an OUT_DIR that is INPUT_DIR (outputs would replace inputs) or is a file."""
    if os.path.realpath(input_dir) == os.path.realpath(out_dir):
        raise I2IError(f"{out_dir}: is the input folder; choose another OUT_DIR (the outputs would replace inputs)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise I2IError(f"{out_dir}: exists and is not a folder")


def output_name(path):
    """``labels/12.jpg`` -> ``12.png``."""
    return os.path.splitext(os.path.basename(path))[0] + ".png"


def split_clashes(paths):
    """(paths with distinct output names, [(path, earlier path with its output name)]): ``12.jpg`` and ``12.png``
    would both become ``12.png``; the first by name is translated."""
    first, kept, clashes = {}, [], []
    for path in paths:
        name = output_name(path)
        if name in first:
            clashes.append((path, first[name]))
        else:
            first[name] = path
            kept.append(path)
    return kept, clashes


@contextlib.contextmanager
def pixel_limit(max_pixels):
    """While the block runs, Pillow refuses images of more than ``max_pixels`` pixels: its decompression-bomb
    check (``Image.MAX_IMAGE_PIXELS``), an error from the limit on instead of a warning up to twice it."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def read_label_map(path, size):
    """(label map resized to ``size`` x ``size`` as the data loaders resize, original (height, width)).

    Raises :class:`ImageError` naming the file if it cannot be read or is over the :func:`pixel_limit`.
    """
    try:
        image = read_image(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(path, f"too large ({e}); raise --max-pixels if it is intended") from None
    return resize(image, size), image.shape[:2]


def restore_size(image, shape):
    """Resize an output back to its input's (height, width), with the data loaders' filters (area when shrinking,
    bicubic otherwise)."""
    h, w = shape
    if image.shape[:2] == (h, w):
        return image
    shrink = h < image.shape[0] and w < image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def write_png(image, path):
    """Write ``image`` as a PNG through a temporary file in the same folder and ``os.replace`` (atomic)."""
    fd, tmp = tempfile.mkstemp(suffix=".png", prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(image).save(f, format="PNG")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise I2IError(f"{path}: cannot write ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------------------ the model

def write_outputs(batch, outputs, out_dir, keep_size):
    """``OUT_DIR/<stem>.png`` for each ``(path, label, shape)`` of ``batch``, at its input's size if ``keep_size``."""
    for (path, _, shape), output in zip(batch, outputs):
        write_png(restore_size(output, shape) if keep_size else output, os.path.join(out_dir, output_name(path)))


def translate_folder(model, translate, paths, out_dir, size, batch_size=TRANSLATE_BATCH_SIZE, keep_size=False):
    """Translate ``paths`` into ``out_dir`` batch by batch with a progress bar; returns (number written, skipped
    files as ``[(path, reason)]``), each skipped file also reported on stderr as it is met."""
    import keras

    from train_scripts.training.inference import translate_batch

    # Keras's bar redraws itself on every update even into a file; a log gets its closing line only
    progress = keras.utils.Progbar(len(paths), unit_name="image", verbose=1 if sys.stdout.isatty() else 2)
    written, skipped, batch = 0, [], []
    for i, path in enumerate(paths, 1):
        try:
            batch.append((path, *read_label_map(path, size)))
        except ImageError as e:
            print(f"\nskipped {e}", file=sys.stderr)
            skipped.append((path, e.problem))
        if batch and (len(batch) == batch_size or i == len(paths)):
            write_outputs(batch, translate_batch(model, translate, batch, batch_size), out_dir, keep_size)
            written, batch = written + len(batch), []
        progress.update(i)
    return written, skipped


def report(n_translated, skipped, out_dir):
    """The closing summary: count on stdout, skipped files on stderr; returns the exit code (1 if any skipped)."""
    print(f"translated {n_translated} of {n_translated + len(skipped)} images into {out_dir}")
    if skipped:
        print(f"skipped {len(skipped)}: {', '.join(os.path.basename(p) for p, _ in skipped)}", file=sys.stderr)
    return 1 if skipped else 0


# ------------------------------------------------------------------------------------------ command line

def build_parser():
    p = argparse.ArgumentParser(prog="python train_scripts/translate.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", help="run folder made by a train script, or an exported model (export.py)")
    p.add_argument("input_dir", help="folder of label maps (image files; subfolders are not read)")
    p.add_argument("out_dir", help="folder for the outputs, <stem>.png each (created if missing)")
    p.add_argument("--keep-size", action="store_true",
                   help="resize each output back to its input's size (else: the run's training resolution)")
    p.add_argument("--batch-size", type=int, default=TRANSLATE_BATCH_SIZE, help="label maps per translate call")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of a stochastic model's test-time noise: CVAE z, cGAN noise, test-time dropout, the "
                        "diffusion sampler (like --set sample_seed=N) (default: %(default)s, the run's own seed, as "
                        "evaluate.py uses)")
    p.add_argument("--set", dest="inference", action="append", metavar="KEY=VALUE",
                   help="change a test-time setting of the run, e.g. --set sampling_steps=50 --set eta=1.0 "
                        "(diffusion: sampler, sampling_steps, eta, guidance, clip_denoised, sample_seed; Pix2Pix: "
                        "dropout_at_test; CVAE: sample_at_test); repeatable")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse (skip) an input with more pixels than this (decompression-bomb guard)")
    return p


def check_arguments(args):
    """Everything that can be refused before the model is loaded; returns the input files."""
    if args.batch_size < 1:
        raise I2IError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_pixels < 1:
        raise I2IError(f"--max-pixels must be at least 1, got {args.max_pixels}")
    if args.seed is not None and not 0 <= args.seed < 2**31:
        raise I2IError(f"--seed must be from 0 to {2**31 - 1}, got {args.seed}")
    paths = list_inputs(args.input_dir)
    check_output_dir(args.input_dir, args.out_dir)
    return paths


def make_output_dir(out_dir):
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise I2IError(f"{out_dir}: cannot create ({e})") from None


def report_clashes(clashes):
    """Name each input skipped for the output name of an earlier one on stderr; returns them as skipped files."""
    skipped = [(path, f"same output name {output_name(path)} as {os.path.basename(first)}") for path, first in clashes]
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return skipped


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        paths, clashes = split_clashes(check_arguments(args))
        from train_scripts.training.inference import load_translator  # TensorFlow: when translating

        spec, config, model, run = load_translator(args.run_dir, args.inference, args.seed)
        make_output_dir(args.out_dir)
        skipped = report_clashes(clashes)
        print(f"{spec.model_name(config)}: translating {len(paths)} label maps at {config['image_size']} px "
              f"with {run.path}")
        with pixel_limit(args.max_pixels):
            written, unreadable = translate_folder(model, model.translate, paths, args.out_dir, config["image_size"],
                                                   args.batch_size, args.keep_size)
        return report(written, skipped + unreadable, args.out_dir)
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
