"""LPIPS (AlexNet, v0.1) against the official ``lpips`` package, and the weight-file errors.

Reference values: tests/fixtures/metrics/lpips_reference.json and alexnet_features.npz, made by
tests/fixtures/metrics/make_fixtures.py with lpips 0.1.4 / torch in the scratch env (see the README there).
Tests that need the LPIPS weights use ``$I2I_SHARED_DIR/weights`` (default ``<repo>/../shared/weights``) and
skip with a reason if it is absent.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from data.errors import I2IError
from data.images import read_image
from metrics import lpips as lp
from metrics.weights import WeightsError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "metrics"
SHARED = Path(os.environ.get("I2I_SHARED_DIR") or REPO.parent / "shared")
WEIGHTS_DIR = SHARED / "weights"
needs_weights = pytest.mark.skipif(not (WEIGHTS_DIR / lp.NPZ_NAME).is_file(),
                                   reason=f"LPIPS weights {lp.NPZ_NAME} not in {WEIGHTS_DIR} (set I2I_SHARED_DIR)")
REFERENCE = json.loads((FIXTURES / "lpips_reference.json").read_text())


def image(name):
    return read_image(FIXTURES / name)


@pytest.fixture(scope="module")
def model():
    if not (WEIGHTS_DIR / lp.NPZ_NAME).is_file():
        pytest.skip(f"LPIPS weights {lp.NPZ_NAME} not in {WEIGHTS_DIR}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("I2I_WEIGHTS_DIR", str(WEIGHTS_DIR))
        return lp.LPIPS(batch_size=4)


@needs_weights
def test_published_example_distances(model):
    """The official repository's test_network.py prints (0.722, 0.138) for these images."""
    ref, p0, p1 = image("ex_ref.png"), image("ex_p0.png"), image("ex_p1.png")
    assert round(float(model(ref, p0)[0]), 3) == 0.722
    assert round(float(model(ref, p1)[0]), 3) == 0.138


@needs_weights
@pytest.mark.parametrize("pair", REFERENCE["pairs"], ids=lambda p: f"{p['a']}-{p['b']}")
def test_matches_official_lpips_package(model, pair):
    """64 px, 256 px and 100x150 pairs (noise, blur, JPEG, shift, other image) within 1e-4 of lpips 0.1.4."""
    value = model(image(pair["a"]), image(pair["b"]))
    assert value.shape == (1,) and value.dtype == np.float64
    assert abs(value[0] - pair["lpips"]) < 1e-4


@needs_weights
def test_batches_symmetry_identity_and_input_types(model):
    names = [("syn_a64.png", "syn_a64_noise.png"), ("syn_a64.png", "syn_b64.png"), ("ex_ref.png", "ex_p1.png"),
             ("ex_p0.png", "ex_p1.png"), ("ex_ref.png", "ex_p0.png")]
    x = np.stack([image(a) for a, _ in names])
    y = np.stack([image(b) for _, b in names])
    batched = model(x, y)  # 5 pairs with batch_size 4: two batches, the last partial
    single = np.array([model(a, b)[0] for a, b in zip(x, y)])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    np.testing.assert_allclose(model(y, x), batched, atol=1e-6)
    np.testing.assert_allclose(model(x.astype(np.float32), y.astype(np.float64)), batched, atol=1e-6)
    np.testing.assert_array_equal(model(x, x), np.zeros(len(x)))


@needs_weights
def test_alexnet_features_match_torchvision():
    """The 'alexnet' FID/KID backbone: relu5 of torchvision AlexNet, averaged over space (from the lpips run)."""
    from metrics.backbones import get_backbone

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("I2I_WEIGHTS_DIR", str(WEIGHTS_DIR))
        backbone = get_backbone("alexnet", batch_size=2)
    assert (backbone.name, backbone.dim, backbone.comparable_with_published) == ("alexnet", 256, False)
    expected = np.load(FIXTURES / "alexnet_features.npz")
    for name in ("ex_ref.png", "syn_a256.png", "syn_c100x150.png"):
        features = backbone.features(image(name))
        assert features.shape == (1, 256) and features.dtype == np.float64
        np.testing.assert_allclose(features[0], expected[name], rtol=1e-4, atol=1e-4)


@needs_weights
def test_bad_image_shapes_are_clear_errors(model):
    a = image("syn_a64.png")
    with pytest.raises(I2IError, match="same size"):
        model(a, image("syn_a256.png"))
    with pytest.raises(I2IError, match="too small"):
        model(a[:16, :16], a[:16, :16])
    with pytest.raises(I2IError, match="RGB"):
        model(a[..., 0], a[..., 0])


def test_missing_weights_error_names_the_files(offline):
    with pytest.raises(WeightsError) as e:
        lp.LPIPS()
    message = str(e.value)
    for needed in (lp.NPZ_NAME, lp.LIN_NAME, lp.ALEXNET_NAME, "I2I_WEIGHTS_DIR"):
        assert needed in message


@needs_weights
def test_truncated_npz_in_weights_dir_is_reported(offline):
    data = (WEIGHTS_DIR / lp.NPZ_NAME).read_bytes()
    (offline / "weights" / lp.NPZ_NAME).write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="truncated or corrupt") as e:
        lp.LPIPS()
    assert lp.NPZ_NAME in str(e.value)


@needs_weights
def test_corrupt_explicit_npz_is_reported(tmp_path):
    data = (WEIGHTS_DIR / lp.NPZ_NAME).read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt") as e:
        lp.LPIPS(weights_path=truncated)
    assert str(truncated) in str(e.value)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(WeightsError, match="garbage.npz"):
        lp.LPIPS(weights_path=garbage)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"alexnet/conv1/kernel": np.zeros((3, 3, 3, 64), np.float32)})
    with pytest.raises(WeightsError, match="wrong.npz"):
        lp.LPIPS(weights_path=wrong)


def _official_files(folder):
    """lpips's real alex.pth and a torchvision-layout AlexNet .pth written from the npz arrays (OIHW)."""
    from fixture_tools import write_torch_pth  # tests/fixtures/inception, on the path by setup.cfg's pythonpath
    arrays = lp.read_lpips_npz(WEIGHTS_DIR / lp.NPZ_NAME)
    state = {}
    for i, index in enumerate(lp.TORCHVISION_CONV_INDEX, start=1):
        state[f"features.{index}.weight"] = arrays[f"alexnet/conv{i}/kernel"].transpose(3, 2, 0, 1)
        state[f"features.{index}.bias"] = arrays[f"alexnet/conv{i}/bias"]
    write_torch_pth(folder / lp.ALEXNET_NAME, state)
    shutil.copyfile(WEIGHTS_DIR / "lpips_v0.1" / "alex.pth", folder / lp.LIN_NAME)
    return arrays


@needs_weights
@pytest.mark.skipif(not (WEIGHTS_DIR / "lpips_v0.1" / "alex.pth").is_file(), reason="lpips_v0.1/alex.pth absent")
def test_official_pth_files_are_used_without_the_npz(offline, monkeypatch):
    """Without the npz, lpips's alex.pth + torchvision's AlexNet .pth give the same arrays and distances."""
    from metrics.weights import file_digest

    arrays = _official_files(offline / "weights")
    # the real torchvision file's sha256 starts with 7be5be79; ours is a re-serialisation of the same arrays
    with pytest.raises(WeightsError, match=lp.ALEXNET_NAME):
        lp.LPIPS()
    ours = file_digest(offline / "weights" / lp.ALEXNET_NAME, "sha256")
    monkeypatch.setattr(lp, "ALEXNET_SHA256_PREFIX", ours[:8])
    model = lp.LPIPS()
    for name in arrays:
        np.testing.assert_array_equal(model.arrays[name], arrays[name])
    assert round(float(model(image("ex_ref.png"), image("ex_p0.png"))[0]), 3) == 0.722
