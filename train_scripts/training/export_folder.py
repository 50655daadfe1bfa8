"""An exported model (``train_scripts/export.py``): ``config.json`` as its run had it, one weights file per network that
``translate`` uses (``<network>.weights.npz``: the network's variables in order, float32 or float16), and the manifest
``export.json`` (model, source run, step, training record, precision, each file's size and sha256). Reading and
writing that folder, with every file checked against the manifest before it is used; no TensorFlow."""

import hashlib
import json
import os
import zipfile

import numpy as np

from data.errors import I2IError
from train_scripts.training.run_folder import EXPORT_MANIFEST

FORMAT = 1  # the layout of the folder; a later layout gets a new number
PRECISIONS = ("float32", "float16")
MANIFEST_KEYS = ("format", "model", "image_size", "precision", "source_run", "step", "snapshot", "run_finished",
                 "training", "files")


def is_export(path):
    """Whether ``path`` is an exported model (it holds ``export.json``)."""
    return os.path.isfile(os.path.join(path, EXPORT_MANIFEST))


def weights_file_name(network):
    return f"{network}.weights.npz"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stored_arrays(arrays, precision, network):
    """``arrays`` as an export of ``precision`` stores them: float16 halves floating-point weights (refused when a
    value lies beyond float16's range); other dtypes are kept."""
    if precision not in PRECISIONS:
        raise I2IError(f"--precision {precision}: choose {' or '.join(PRECISIONS)}")
    if precision == "float32":
        return [np.asarray(a) for a in arrays]
    out = []
    for array in map(np.asarray, arrays):
        if np.issubdtype(array.dtype, np.floating):
            if np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
                raise I2IError(f"{network}: holds values beyond float16's range ({np.finfo(np.float16).max:g}); "
                               "export it with --precision float32")
            array = array.astype(np.float16)
        out.append(array)
    return out


def write_weights(path, arrays):
    """Save ``arrays`` in order (``arr_0``, ``arr_1``, ...) as an uncompressed ``.npz``; returns its manifest entry
    (file name, size, sha256, number of arrays)."""
    with open(path, "wb") as f:
        np.savez(f, *arrays)
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": sha256_of(path),
            "arrays": len(arrays)}


class ExportFolder:
    """An exported model on disk, read like a run folder by ``inference.load_trained``, ``evaluate.py``,
    ``translate.py`` and the demo (``path``, ``file``, ``config_path``, ``read_config``, ``progress``)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self._manifest = None

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def config_path(self):
        return self.file("config.json")

    @property
    def manifest_path(self):
        return self.file(EXPORT_MANIFEST)

    def manifest(self):
        """The checked manifest: every key present, a known format and precision, a weights file per network."""
        if self._manifest is None:
            try:
                with open(self.manifest_path) as f:
                    manifest = json.load(f)
            except FileNotFoundError:
                raise I2IError(f"{self.path}: not an exported model (no {EXPORT_MANIFEST})") from None
            except (OSError, ValueError) as e:
                raise I2IError(f"{self.manifest_path}: unreadable ({e})") from None
            missing = [k for k in MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
            if missing:
                raise I2IError(f"{self.manifest_path}: not the manifest of an exported model (no {', '.join(missing)})")
            if manifest["format"] != FORMAT:
                raise I2IError(f"{self.manifest_path}: export format {manifest['format']!r}; this toolkit reads format "
                               f"{FORMAT} (export the run again with this version's export.py)")
            if manifest["precision"] not in PRECISIONS:
                raise I2IError(f"{self.manifest_path}: unknown precision {manifest['precision']!r}")
            files = manifest["files"]
            if not isinstance(files, dict) or not files or not all(
                    isinstance(e, dict) and {"file", "bytes", "sha256", "arrays"} <= set(e) for e in files.values()):
                raise I2IError(f"{self.manifest_path}: 'files' must name each network's file, size, sha256 and "
                               "number of arrays")
            self._manifest = manifest
        return self._manifest

    def read_config(self):
        """``config.json``, checked to be the config of the model and resolution the manifest names."""
        manifest = self.manifest()
        try:
            with open(self.config_path) as f:
                saved = json.load(f)
        except FileNotFoundError:
            raise I2IError(f"{self.config_path}: missing (an exported model needs the config it was trained "
                           "with)") from None
        except (OSError, ValueError) as e:
            raise I2IError(f"{self.config_path}: unreadable ({e})") from None
        if not isinstance(saved, dict) or "model" not in saved or not isinstance(saved.get("config"), dict):
            raise I2IError(f"{self.config_path}: not the config of a run (no 'model' and 'config' entries)")
        if saved["model"] != manifest["model"]:
            raise I2IError(f"{self.config_path} holds a {saved['model']} config, but {self.manifest_path} exports a "
                           f"{manifest['model']}: the weights belong to another config")
        if saved["config"].get("image_size") != manifest["image_size"]:
            raise I2IError(f"{self.config_path} is at {saved['config'].get('image_size')} px, but "
                           f"{self.manifest_path} exports weights trained at {manifest['image_size']} px")
        return saved

    def progress(self):
        """As a run's ``progress.json`` says it: finished when the run had finished or a snapshot was chosen."""
        manifest = self.manifest()
        return {"finished": bool(manifest["run_finished"] or manifest["snapshot"]),
                "steps": manifest["step"]}

    def training_record(self):
        """(steps trained, training wall time in s, commit(s)) as ``evaluate.training_record`` gave them at export."""
        training = self.manifest()["training"]
        return training["steps"], training["wall_time_s"], training["commit"]

    def networks(self):
        return sorted(self.manifest()["files"])

    def read_weights(self, network):
        """The arrays of ``network``'s weights file, after checking its size and sha256 against the manifest."""
        entry = self.manifest()["files"].get(network)
        if entry is None:
            raise I2IError(f"{self.manifest_path}: no weights for the network {network} (it lists "
                           f"{', '.join(self.networks())})")
        path = self.file(entry["file"])
        if not os.path.isfile(path):
            raise I2IError(f"{path}: missing ({EXPORT_MANIFEST} lists it)")
        size = os.path.getsize(path)
        if size != entry["bytes"]:
            raise I2IError(f"{path}: {size} bytes, {EXPORT_MANIFEST} says {entry['bytes']}: the file is truncated "
                           "or was replaced; copy the export again")
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise I2IError(f"{path}: sha256 {digest} differs from {EXPORT_MANIFEST}'s {entry['sha256']}: the file "
                           "is corrupt or was replaced; copy the export again")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = [f[f"arr_{i}"] for i in range(len(f.files))]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            raise I2IError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is corrupt") from None
        if len(arrays) != entry["arrays"]:
            raise I2IError(f"{path}: {len(arrays)} arrays, {EXPORT_MANIFEST} says {entry['arrays']}")
        return arrays
