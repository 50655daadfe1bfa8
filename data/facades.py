"""The CMP facades set in the pix2pix split, fetched once into the Keras cache.

The official archive (``facades.tar.gz`` from the pix2pix authors) is downloaded with
``keras.utils.get_file`` and extracted to ``~/.keras/datasets/facades`` (or ``$I2I_DATA_DIR/facades``).
The archive itself has no published checksum, so the *extracted files* are checked against the
per-split content hashes in the dataset's SOURCE note (``ls | sort -n | xargs sha256sum | sha256sum``
inside each split folder). Without network, the error says where to put the files.
"""

import hashlib
import os
import re

from data.errors import I2IError

URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
SPLIT_COUNTS = {"train": 400, "val": 100, "test": 106}
SPLIT_HASHES = {
    "train": "3932016609555ef461c525d4d247d2c7e4ac1952805a3e738781bba777e7d61f",
    "val": "ea05baa36c01d3d84b3b5d762dfdf979a59b1111ab5cb3af1387f1879ed1c8c4",
    "test": "26b03597e2e23d9db5895c2d39258e2d8bda3f5c4a74317c1a2d24f8405cc3c2",
}


def cache_dir():
    """Folder that holds ``facades/``: ``$I2I_DATA_DIR`` or the Keras datasets cache."""
    if os.environ.get("I2I_DATA_DIR"):
        return os.path.expanduser(os.environ["I2I_DATA_DIR"])
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(keras_home, "datasets")


def split_hash(folder):
    """``ls | sort -n | xargs sha256sum | sha256sum`` of a split folder, in Python."""
    names = sorted(os.listdir(folder), key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])
    listing = hashlib.sha256()
    for n in names:
        with open(os.path.join(folder, n), "rb") as f:
            listing.update(f"{hashlib.sha256(f.read()).hexdigest()}  {n}\n".encode())
    return listing.hexdigest()


def verify(root):
    """Check every split present under ``root`` against the published content hashes."""
    bad = [s for s in SPLIT_HASHES
           if os.path.isdir(os.path.join(root, s)) and split_hash(os.path.join(root, s)) != SPLIT_HASHES[s]]
    if bad:
        raise I2IError(
            f"{root}: the files of split(s) {', '.join(bad)} differ from the official facades set "
            "(checksum mismatch: partial download or modified files). Delete the folder and run again."
        )


def facades_root(download=True):
    """Path of the verified facades folder, downloading the archive once if needed."""
    root = os.path.join(cache_dir(), "facades")
    marker = os.path.join(root, ".verified")
    if os.path.exists(marker):
        return root
    missing = [s for s in SPLIT_COUNTS if not os.path.isdir(os.path.join(root, s))]
    if missing and os.path.isdir(root):
        raise I2IError(
            f"{root} is incomplete (no {', '.join(missing)}/). Remove it to download again, "
            f"or pass the folder itself as --data {root} to use the splits it has."
        )
    if missing:
        if not download:
            raise I2IError(f"facades not found at {root}")
        _download(root)
    verify(root)
    open(marker, "w").close()
    return root


def _download(root):
    import keras

    try:
        extracted = keras.utils.get_file(
            "facades.tar.gz", origin=URL, extract=True,
            cache_dir=os.path.dirname(cache_dir()), cache_subdir=os.path.basename(cache_dir()),
        )
    except Exception as e:  # network errors come in many types (URLError, socket errors, HTTP errors)
        raise I2IError(
            f"could not download the facades archive from {URL} ({type(e).__name__}: {e}).\n"
            f"Offline? Put the pix2pix facades folders train/ val/ test/ (512x256 JPEGs, photo left, label map right) "
            f"in {root}/ (or set I2I_DATA_DIR to a folder holding facades/), or pass --data /path/to/facades."
        ) from None
    inner = os.path.join(extracted, "facades")
    if not all(os.path.isdir(os.path.join(inner, s)) for s in SPLIT_COUNTS):
        raise I2IError(f"the facades archive from {URL} did not contain facades/train, val and test ({extracted})")
    os.replace(inner, root)
