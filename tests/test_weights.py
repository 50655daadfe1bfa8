"""Weight lookup (``metrics.weights.find_weights``) and the PyTorch ``.pth`` reader (``metrics.torch_pickle``).

``torch_small_{zip,legacy}.pth`` were written by ``torch.save`` (torch 2.14.1) in the scratch env
by tests/fixtures/inception/make_fixtures.py; ``torch_small_expected.npz`` holds the values torch
had. The LPIPS ``alex.pth`` test uses ``$I2I_SHARED_DIR/weights`` (default ``<repo>/../shared/weights``)
and skips with a reason if it is absent. Downloads are from ``file://`` URLs or disabled: no network.
"""

import hashlib
import importlib.util
import io
import logging
import os
import pickle
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from data.errors import I2IError
from metrics.torch_pickle import load_torch_state_dict
from metrics.weights import WeightsError, find_weights

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "inception"
SHARED = Path(os.environ.get("I2I_SHARED_DIR") or REPO.parent / "shared")
_spec = importlib.util.spec_from_file_location("inception_fixture_tools", FIXTURES / "fixture_tools.py")
tools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tools)

CONTENT = b"pretend weights " * 1000
SHA256 = hashlib.sha256(CONTENT).hexdigest()
MD5 = hashlib.md5(CONTENT).hexdigest()


@pytest.fixture
def dirs(monkeypatch, tmp_path):
    """Empty $I2I_WEIGHTS_DIR and Keras cache under tmp_path."""
    weights, keras_home = tmp_path / "weights", tmp_path / "keras_home"
    weights.mkdir()
    (keras_home / "models").mkdir(parents=True)
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    return weights, keras_home / "models"


# ------------------------------------------------------------------------------------------ find_weights
def test_weights_error_is_a_user_facing_error():
    assert issubclass(WeightsError, I2IError)


def test_search_order_explicit_then_env_then_keras_cache(dirs, tmp_path, caplog):
    weights, cache = dirs
    (cache / "w.bin").write_bytes(CONTENT)
    assert find_weights("w.bin", sha256=SHA256) == str(cache / "w.bin")
    (weights / "w.bin").write_bytes(CONTENT)
    assert find_weights("w.bin", sha256=SHA256, md5=MD5) == str(weights / "w.bin")
    own = tmp_path / "own_copy.bin"
    own.write_bytes(b"converted: not the official bytes")  # an explicit file is used as given, with a warning
    with caplog.at_level(logging.WARNING, logger="i2i"):
        assert find_weights("w.bin", sha256=SHA256, explicit_path=own) == str(own)
    assert f"{own}: not the official w.bin (its sha256 is" in caplog.text
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "w.bin").write_bytes(CONTENT)
    assert find_weights("w.bin", sha256=SHA256[:8], explicit_path=folder) == str(folder / "w.bin")


def test_missing_explicit_path_is_an_error_not_a_fallback(dirs, tmp_path):
    (dirs[0] / "w.bin").write_bytes(CONTENT)
    with pytest.raises(WeightsError, match=f"{tmp_path / 'nope.bin'}: weight file not found"):
        find_weights("w.bin", explicit_path=tmp_path / "nope.bin")


@pytest.mark.parametrize("checksum", [{"sha256": SHA256}, {"sha256": SHA256[:8]}, {"md5": MD5}])
def test_truncated_file_is_reported_with_what_to_do(dirs, checksum):
    weights, cache = dirs
    for folder in (weights, cache):
        (folder / "w.bin").write_bytes(CONTENT[:-10])
        with pytest.raises(WeightsError) as e:
            find_weights("w.bin", url="https://example.org/w.bin", **checksum)
        message = str(e.value)
        assert str(folder / "w.bin") in message and "truncated or corrupt" in message
        assert "https://example.org/w.bin" in message
        (folder / "w.bin").unlink()


def test_nothing_found_offline_is_one_clear_error(dirs, monkeypatch):
    weights, cache = dirs

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(WeightsError) as e:
        find_weights("w.bin", url="https://example.org/w.bin", sha256=SHA256)
    message = str(e.value)
    for part in ("w.bin", "https://example.org/w.bin", "network disabled", str(weights), str(cache)):
        assert part in message
    with pytest.raises(WeightsError, match=rf"w\.bin: weight file not found; put w\.bin in one of: {weights}"):
        find_weights("w.bin", sha256=SHA256)  # no URL: nothing to download


def test_download_goes_to_the_keras_cache_and_is_checked(dirs, tmp_path):
    _, cache = dirs
    source = tmp_path / "server" / "w.bin"
    source.parent.mkdir()
    source.write_bytes(CONTENT)
    url = source.as_uri()  # file:// URL: keras.utils.get_file without network
    assert find_weights("w.bin", url=url, sha256=SHA256[:8]) == str(cache / "w.bin")
    assert (cache / "w.bin").read_bytes() == CONTENT
    (cache / "w.bin").unlink()
    with pytest.raises(WeightsError, match="download.*failed"):
        find_weights("w.bin", url=url, sha256="0" * 64)  # Keras checks a full sha256 itself
    with pytest.raises(WeightsError, match="downloaded from .* was removed: its sha256 is"):
        find_weights("w.bin", url=url, sha256="00000000")  # a prefix is checked by us
    assert not (cache / "w.bin").exists()
    with pytest.raises(WeightsError, match=f"w.bin: .*download from {tmp_path.as_uri()}/missing.bin failed"):
        find_weights("w.bin", url=(tmp_path / "missing.bin").as_uri())


# ------------------------------------------------------------------------------------------ .pth reader
@pytest.mark.parametrize("name", ["torch_small_zip.pth", "torch_small_legacy.pth"])
def test_reads_files_written_by_torch_save(name):
    expected = np.load(FIXTURES / "torch_small_expected.npz")
    state = load_torch_state_dict(FIXTURES / name)
    assert sorted(state) == sorted(expected.files)
    for key in expected.files:
        assert state[key].dtype == expected[key].dtype, key
        assert state[key].shape == expected[key].shape, key
        assert np.array_equal(state[key], expected[key]), key
    assert state["transposed_view"].flags["C_CONTIGUOUS"]


def test_reads_the_legacy_lpips_file_bit_exactly():
    alex = SHARED / "weights" / "lpips_v0.1" / "alex.pth"
    npz = SHARED / "weights" / "lpips_alexnet_v0.1_hwio.npz"
    if not (alex.is_file() and npz.is_file()):
        pytest.skip(f"LPIPS weights not in {SHARED / 'weights'} (set I2I_SHARED_DIR)")
    state = load_torch_state_dict(alex)
    assert sorted(state) == [f"lin{i}.model.1.weight" for i in range(5)]
    with np.load(npz, allow_pickle=False) as arrays:
        for i in range(5):
            oihw = state[f"lin{i}.model.1.weight"]
            assert oihw.dtype == np.float32
            assert np.array_equal(oihw.transpose(2, 3, 1, 0), arrays[f"lin{i}/kernel"])


@pytest.mark.parametrize("legacy", [False, True])
def test_test_writer_round_trips(tmp_path, legacy):
    state = {"a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "a.n": np.array(7, np.int64),
             "b": np.array([0.5, -1], np.float16), "c": np.zeros((0,), np.float64)}
    tools.write_torch_pth(tmp_path / "w.pth", state, legacy=legacy)
    back = load_torch_state_dict(tmp_path / "w.pth")
    assert list(back) == list(state)
    for key, array in state.items():
        assert back[key].dtype == array.dtype and np.array_equal(back[key], array), key


class _RunsCode:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious_payload(marker):
    evil = _RunsCode()
    evil.marker = marker
    return pickle.dumps({"weight": evil}, protocol=2)


def test_refuses_pickles_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    as_zip = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(as_zip, "w") as z:
        z.writestr("evil_zip/data.pkl", _malicious_payload(marker))
    as_legacy = tmp_path / "evil_legacy.pth"
    header = b"".join(pickle.dumps(x, protocol=2)
                      for x in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    as_legacy.write_bytes(header + _malicious_payload(marker))
    for path in (as_zip, as_legacy):
        refused = rf"{path}: refused to load: the pickle uses (posix|os|nt)\.system"
        with pytest.raises(WeightsError, match=refused):
            load_torch_state_dict(path)
    assert not marker.exists()


def test_refuses_code_in_the_legacy_header(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_header.pth"
    path.write_bytes(_malicious_payload(marker))
    with pytest.raises(WeightsError, match="not a PyTorch .pth file"):
        load_torch_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["torch_small_zip.pth", "torch_small_legacy.pth"])
def test_truncated_files_are_clear_errors(tmp_path, name):
    data = (FIXTURES / name).read_bytes()
    for cut in (1, 10, 100, len(data) // 2, len(data) - 200, len(data) - 1):
        path = tmp_path / f"cut{cut}.pth"
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match=str(path)):
            load_torch_state_dict(path)


def test_not_a_state_dict_is_a_clear_error(tmp_path):
    cases = {
        "empty.pth": b"",
        "png.pth": (FIXTURES / "image_00_64x64.png").read_bytes(),
        "zip_without_pickle.pth": _zip_bytes({"x/other.txt": b"hello"}),
        "list.pth": _zip_bytes({"x/data.pkl": pickle.dumps([1, 2], protocol=2)}),
        "dict_of_ints.pth": _zip_bytes({"x/data.pkl": pickle.dumps({"a": 1}, protocol=2)}),
    }
    messages = {"list.pth": "holds a list, not a state_dict", "dict_of_ints.pth": "'a' is a int, not a tensor"}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(WeightsError, match=f"{path}: .*{messages.get(name, '')}"):
            load_torch_state_dict(path)
    with pytest.raises(WeightsError, match="cannot read weight file"):
        load_torch_state_dict(tmp_path / "missing.pth")


def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buffer.getvalue()
