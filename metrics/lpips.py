"""LPIPS (eq. 33) with the AlexNet trunk and the official v0.1 linear layers, in Keras.

The recipe of the official ``lpips`` package (``lpips.LPIPS(net='alex', version='0.1')``):

1. Inputs: our public API takes RGB images in [0, 255] (like every other metric here) and maps them to [-1, 1]
   with ``x / 127.5 - 1`` -- what the official package expects -- then applies the LPIPS scaling layer
   ``(x - shift) / scale``.
2. torchvision's AlexNet ``features[:12]``: conv1 (11x11, stride 4, pad 2) -> ReLU -> max-pool 3/2 -> conv2 (5x5,
   pad 2) -> ReLU -> max-pool 3/2 -> conv3, conv4, conv5 (3x3, pad 1) each followed by ReLU. The five ReLU
   outputs are the features.
3. Each feature map is normalised to unit length over channels (eps 1e-10 added to the norm), the squared
   difference of the two images' maps goes through a 1x1 linear layer (no bias; dropout is off at test time), is
   averaged over space, and the five layer values are summed.

Everything is computed in float32, as lpips does. Both images of a pair must have the same size, at least
31x31 px (the smallest size at which AlexNet's second max-pool has an input); 64 px works, as in the official
example images.

Weights: ``lpips_alexnet_v0.1_hwio.npz`` (the AlexNet trunk and linear layers in Keras' HWIO layout, no pickle;
see shared/weights/WEIGHTS.md) found with :func:`metrics.weights.find_weights`. If it is not found, the two official
files are used instead (downloaded with a checksum if allowed): lpips's ``alex.pth`` (v0.1 linear layers) and
torchvision's ``alexnet-owt-7be5be79.pth`` (the trunk), read without PyTorch.
"""

import hashlib
import zipfile

import keras
import numpy as np
from keras import layers, ops

from data.errors import I2IError
from metrics.weights import WeightsError, find_weights

NPZ_NAME = "lpips_alexnet_v0.1_hwio.npz"
NPZ_SHA256 = "0bb49b8426d3cdef59d3c0a2b98cd0dd5c8af69daa7fa3358c74ddc7305523b4"
LIN_NAME = "alex.pth"
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
LIN_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
ALEXNET_NAME = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEXNET_SHA256_PREFIX = "7be5be79"  # torchvision checks the first 8 hex digits of the file's sha256

SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
CHANNELS = (64, 192, 384, 256, 256)
KERNEL_SIZES = (11, 5, 3, 3, 3)
TORCHVISION_CONV_INDEX = (0, 3, 6, 8, 10)  # positions of conv1..conv5 in torchvision's alexnet.features
MIN_SIZE = 31
EPS = 1e-10


def expected_shapes():
    """Name -> shape of the arrays in the npz layout (Keras HWIO kernels)."""
    shapes, c_in = {}, 3
    for i, (c, k) in enumerate(zip(CHANNELS, KERNEL_SIZES), start=1):
        shapes[f"alexnet/conv{i}/kernel"] = (k, k, c_in, c)
        shapes[f"alexnet/conv{i}/bias"] = (c,)
        shapes[f"lin{i - 1}/kernel"] = (1, 1, c, 1)
        c_in = c
    return shapes


def _check_arrays(arrays, source):
    for name, shape in expected_shapes().items():
        if name not in arrays:
            raise WeightsError(f"{source}: not LPIPS AlexNet v0.1 weights (array {name!r} missing)")
        if arrays[name].shape != shape:
            raise WeightsError(f"{source}: array {name!r} has shape {arrays[name].shape}, expected {shape}")
        if not np.all(np.isfinite(arrays[name])):
            raise WeightsError(f"{source}: array {name!r} has non-finite values (corrupt file?)")
    return {name: np.asarray(arrays[name], np.float32) for name in expected_shapes()}


def read_lpips_npz(path):
    """Read and check ``lpips_alexnet_v0.1_hwio.npz``; any problem is a :class:`WeightsError` naming the file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise WeightsError(f"{path}: cannot read LPIPS weights ({type(e).__name__}: {e}); the file is truncated or "
                           f"corrupt -- replace it with {NPZ_NAME} (sha256 {NPZ_SHA256})") from None
    return _check_arrays(arrays, path)


def arrays_from_official_files(lin_path, alexnet_path):
    """Convert lpips's ``alex.pth`` and torchvision's ``alexnet-owt-7be5be79.pth`` to the npz layout."""
    from metrics.torch_pickle import load_torch_state_dict

    lin, trunk = load_torch_state_dict(lin_path), load_torch_state_dict(alexnet_path)
    arrays = {}
    for i, index in enumerate(TORCHVISION_CONV_INDEX, start=1):
        for key, name in ((f"features.{index}.weight", f"alexnet/conv{i}/kernel"),
                          (f"features.{index}.bias", f"alexnet/conv{i}/bias")):
            if key not in trunk:
                raise WeightsError(f"{alexnet_path}: not torchvision AlexNet weights ({key!r} missing)")
            arrays[name] = trunk[key].transpose(2, 3, 1, 0) if trunk[key].ndim == 4 else trunk[key]
        key = f"lin{i - 1}.model.1.weight"
        if key not in lin:
            raise WeightsError(f"{lin_path}: not the LPIPS v0.1 linear layers ({key!r} missing)")
        arrays[f"lin{i - 1}/kernel"] = lin[key].transpose(2, 3, 1, 0)
    return _check_arrays(arrays, f"{lin_path} + {alexnet_path}")


def _not_found(error):
    return "weight file not found" in str(error)


def load_lpips_arrays(weights_path=None):
    """The 15 LPIPS AlexNet arrays (npz layout), from ``weights_path`` or the weight search path.

    Order: an explicit ``weights_path`` (an npz file, or a folder holding it); else ``lpips_alexnet_v0.1_hwio.npz``
    via ``find_weights`` ($I2I_WEIGHTS_DIR, the Keras cache; checksum checked); else the two official files via
    ``find_weights`` (which downloads them if it can, checking their checksums). A file that is found but bad is
    reported, not skipped. If nothing is found the error names all three files and where to put them.
    """
    if weights_path is not None:
        return read_lpips_npz(find_weights(NPZ_NAME, sha256=NPZ_SHA256, explicit_path=weights_path))
    try:
        return read_lpips_npz(find_weights(NPZ_NAME, sha256=NPZ_SHA256))
    except WeightsError as npz_error:
        if not _not_found(npz_error):
            raise
        try:
            lin_path = find_weights(LIN_NAME, url=LIN_URL, sha256=LIN_SHA256)
            alexnet_path = find_weights(ALEXNET_NAME, url=ALEXNET_URL, sha256=ALEXNET_SHA256_PREFIX)
        except WeightsError as official_error:
            if not _not_found(official_error):
                raise
            raise WeightsError(
                f"LPIPS AlexNet weights not found. Put {NPZ_NAME} (sha256 {NPZ_SHA256}; see shared/weights/"
                f"WEIGHTS.md) in the folder named by $I2I_WEIGHTS_DIR or in the Keras cache, or the two official "
                f"files {LIN_NAME} (lpips v0.1, {LIN_URL}) and {ALEXNET_NAME} ({ALEXNET_URL}).\n"
                f"  {npz_error}\n  {official_error}") from None
    return arrays_from_official_files(lin_path, alexnet_path)


def weights_fingerprint(arrays):
    """sha256 over the arrays (sorted names, raw float32 bytes): the same for the npz and the official files."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name], np.float32).tobytes())
    return h.hexdigest()


def check_image_batch(images, what="images"):
    """(N, H, W, 3) float32 in [0, 255] from one image or a batch; raises I2IError if unusable."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise I2IError(f"{what}: expected RGB images of shape (N, H, W, 3), got {images.shape}")
    if min(images.shape[1:3]) < MIN_SIZE:
        raise I2IError(f"{what}: images of {images.shape[1]}x{images.shape[2]} px are too small for the AlexNet "
                       f"backbone (at least {MIN_SIZE}x{MIN_SIZE} px)")
    return images.astype(np.float32)


class AlexNetFeatures(keras.Model):
    """torchvision AlexNet ``features[:12]`` with the LPIPS input scaling; returns the 5 ReLU outputs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pad1 = layers.ZeroPadding2D(2)
        self.convs = [
            layers.Conv2D(c, k, strides=4 if i == 0 else 1, padding="valid" if i == 0 else "same",
                          activation="relu", name=f"conv{i + 1}")
            for i, (c, k) in enumerate(zip(CHANNELS, KERNEL_SIZES))
        ]
        self.pool1 = layers.MaxPooling2D(3, 2)
        self.pool2 = layers.MaxPooling2D(3, 2)

    def call(self, images):
        """images: (N, H, W, 3) RGB in [0, 255]."""
        x = (images / 127.5 - 1.0 - SHIFT) / SCALE
        relu1 = self.convs[0](self.pad1(x))
        relu2 = self.convs[1](self.pool1(relu1))
        relu3 = self.convs[2](self.pool2(relu2))
        relu4 = self.convs[3](relu3)
        relu5 = self.convs[4](relu4)
        return [relu1, relu2, relu3, relu4, relu5]


class LPIPSModel(keras.Model):
    """LPIPS distance (eq. 33) between two image batches in [0, 255]; returns (N,) distances."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.alexnet = AlexNetFeatures(name="alexnet")
        self.lins = [layers.Conv2D(1, 1, use_bias=False, name=f"lin{i}") for i in range(len(CHANNELS))]

    def call(self, inputs):
        x, y = inputs
        total = 0.0
        for lin, fx, fy in zip(self.lins, self.alexnet(x), self.alexnet(y)):
            fx = fx / (ops.sqrt(ops.sum(fx**2, axis=-1, keepdims=True)) + EPS)
            fy = fy / (ops.sqrt(ops.sum(fy**2, axis=-1, keepdims=True)) + EPS)
            total = total + ops.mean(lin((fx - fy) ** 2), axis=(1, 2, 3))
        return total


def load_alexnet_features(arrays):
    """An AlexNetFeatures model with the trunk arrays loaded."""
    model = AlexNetFeatures(name="alexnet")
    model(np.zeros((1, 64, 64, 3), np.float32))
    for i, conv in enumerate(model.convs, start=1):
        conv.set_weights([arrays[f"alexnet/conv{i}/kernel"], arrays[f"alexnet/conv{i}/bias"]])
    return model


def build_lpips_model(arrays):
    """An LPIPSModel (keras.Model) with the given arrays loaded."""
    model = LPIPSModel(name="lpips_alex_v0_1")
    dummy = np.zeros((1, 64, 64, 3), np.float32)
    model((dummy, dummy))
    for i, conv in enumerate(model.alexnet.convs, start=1):
        conv.set_weights([arrays[f"alexnet/conv{i}/kernel"], arrays[f"alexnet/conv{i}/bias"]])
    for i, lin in enumerate(model.lins):
        lin.set_weights([arrays[f"lin{i}/kernel"]])
    return model


class LPIPS:
    """LPIPS AlexNet v0.1 on images in [0, 255] (mapped to [-1, 1] internally, as the official package expects).

    ``LPIPS()(x, y)`` returns one float64 distance per pair of (N, H, W, 3) or (H, W, 3) images, computed in
    float32 batches of ``batch_size``.
    """

    def __init__(self, weights_path=None, batch_size=32):
        import tensorflow as tf

        self.arrays = load_lpips_arrays(weights_path)
        self.weights_sha256 = weights_fingerprint(self.arrays)
        self.model = build_lpips_model(self.arrays)
        self.batch_size = int(batch_size)
        self._distance = tf.function(lambda x, y: self.model((x, y)), reduce_retracing=True)

    def __call__(self, x, y):
        x, y = check_image_batch(x, "LPIPS first images"), check_image_batch(y, "LPIPS second images")
        if x.shape != y.shape:
            raise I2IError(f"LPIPS needs pairs of images of the same size, got {x.shape} and {y.shape}")
        out = [self._distance(x[i : i + self.batch_size], y[i : i + self.batch_size]).numpy()
               for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out).astype(np.float64)
