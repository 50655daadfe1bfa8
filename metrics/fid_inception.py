"""The FID Inception of published FID numbers, rebuilt in Keras (SPEC "Metrics", study eq. 32).

This is the graph of the original TensorFlow FID code (``inception-2015-12-05``) as ported by
pytorch-fid 0.3.0 (``pytorch_fid/inception.py``: ``InceptionV3(output_blocks=[3],
resize_input=True, normalize_input=True)`` on ``fid_inception_v3()``), loaded from
pytorch-fid's own weight file ``pt_inception-2015-12-05-6726825d.pth``. Its quirks, kept:

- input: ``x / 255`` (``ToTensor``), bilinear resize to 299x299 with ``align_corners=False``
  and no antialiasing (= ``tf.image.resize`` bilinear, half-pixel centres), then ``2x - 1``;
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
from keras import layers

from metrics.inception import INPUT_SIZE, ImageBackbone, float32_policy
from metrics.torch_pickle import load_torch_state_dict
from metrics.weights import WeightsError, find_weights

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
FID_WEIGHTS_SHA256 = "6726825d"  # the prefix torch hub checks (file name suffix)
FID_NUM_CLASSES = 1008


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


def fid_inception_network():
    """The FID Inception as a Keras model: RGB in [0, 255], any size -> 2048-d pool features."""
    inputs = keras.Input((None, None, 3), name="rgb_0_255")
    x = layers.Rescaling(1.0 / 255.0, name="to_0_1")(inputs)
    x = layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear", name="resize_299")(x)
    x = layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)
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


def load_fid_inception_weights(model, state_dict, path):
    """Copy a pytorch-fid state_dict into ``fid_inception_network()``, checking names and shapes first."""
    targets = [(layer, _state_dict_keys(layer)) for layer in model.layers
               if isinstance(layer, (layers.Conv2D, layers.BatchNormalization))]
    expected = {key for _, keys in targets for key in keys}
    missing = [key for _, keys in targets for key in keys if key not in state_dict]
    if missing:
        raise WeightsError(f"{path}: tensor {missing[0]!r} missing ({len(missing)} in all): "
                           "not pytorch-fid's FID Inception weights")
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

    def __init__(self, weights_path=None, batch_size=32):
        super().__init__(batch_size)
        path = find_weights(FID_WEIGHTS_FILE, url=FID_WEIGHTS_URL, sha256=FID_WEIGHTS_SHA256,
                            explicit_path=weights_path)
        self.weights_path = path
        state_dict = load_torch_state_dict(path)
        with float32_policy():
            self.model = fid_inception_network()
        load_fid_inception_weights(self.model, state_dict, path)

    def _features_float32(self, images):
        return self.model(images, training=False)
