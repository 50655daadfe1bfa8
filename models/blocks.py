"""Building blocks shared by the GAN and VAE networks (study Table 2 codes).

``C``: 4x4 convolution, stride 2 unless ``S1``; ``CT``: the transposed version; ``IN``: instance
normalisation, which is ``GroupNormalization(groups=-1)`` in Keras 3 (tensorflow-addons'
``InstanceNormalization`` is end of life); ``L``: LeakyReLU 0.2; ``R``: ReLU; ``D50``: dropout 0.5.
Weights start from N(0, 0.02) as in pix2pix. A convolution followed by a normalisation has no
bias (the normalisation's offset replaces it).
"""

import math

import keras
from keras import layers

INIT_STD = 0.02


def conv_init():
    return keras.initializers.RandomNormal(0.0, INIT_STD)


def instance_norm(name=None):
    """Instance normalisation (IN): per-sample, per-channel, with a learned scale and offset."""
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


def down(x, filters, norm=True, strides=2, padding="same", activation="leaky_relu", name=None):
    """``C{filters}[S1]-[IN]-L``: 4x4 conv, optional instance norm, LeakyReLU 0.2."""
    x = layers.Conv2D(filters, 4, strides=strides, padding=padding, use_bias=not norm,
                      kernel_initializer=conv_init(), name=f"{name}_conv" if name else None)(x)
    if norm:
        x = instance_norm(name=f"{name}_in" if name else None)(x)
    if activation == "leaky_relu":
        x = layers.LeakyReLU(0.2, name=f"{name}_lrelu" if name else None)(x)
    elif activation:
        x = layers.Activation(activation)(x)
    return x


def up(x, filters, dropout=0.0, norm=True, strides=2, activation="relu", dropout_seed=None, name=None):
    """``CT{filters}[S1]-IN-[D50]-R``: 4x4 transposed conv, instance norm, dropout (its masks drawn from
    ``dropout_seed``; None: Keras' default seed), ReLU."""
    x = layers.Conv2DTranspose(filters, 4, strides=strides, padding="same", use_bias=not norm,
                               kernel_initializer=conv_init(), name=f"{name}_convT" if name else None)(x)
    if norm:
        x = instance_norm(name=f"{name}_in" if name else None)(x)
    if dropout:
        x = layers.Dropout(dropout, seed=dropout_seed, name=f"{name}_drop" if name else None)(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}" if name else None)(x)
    return x


@keras.saving.register_keras_serializable(package="i2i")
class ReflectionPadding2D(layers.Layer):
    """Reflection padding (CycleGAN's ResNet generator); Keras has only zero padding."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        p = 2 * self.padding
        return (shape[0], None if shape[1] is None else shape[1] + p, None if shape[2] is None else shape[2] + p,
                shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def halving_widths(image_size, ngf=64, bottom=4):
    """Widths of the ``C64-C128-C256-C512-C512...`` stack that halves ``image_size`` down to ``bottom``.

    The pix2pix encoder's widths (Table 1, rows 2-9), capped at 8 * ``ngf`` and scaled by ``ngf / 64``.
    """
    levels = round(math.log2(image_size / bottom)) if image_size >= 2 * bottom else 0
    if levels < 1 or bottom * 2**levels != image_size:
        raise ValueError(f"image size must be {bottom} times a power of two (>= {2 * bottom}), got {image_size}")
    return [min(2**i, 8) * ngf for i in range(levels)]


def down_stack(x, widths, name):
    """``C{w1}-L, C{w2}-IN-L, ...`` (the first without norm, as in pix2pix); returns every level's output."""
    outputs = []
    for i, filters in enumerate(widths):
        x = down(x, filters, norm=i > 0, name=f"{name}{i + 1}")
        outputs.append(x)
    return outputs


def latent_decoder(image_size=256, latent_dim=128, ngf=64, label_skips=False, channels=3, name="decoder"):
    """``G(z | label)``: the CGAN generator and the CVAE decoder p(photo | z, label). Inputs ``[z, label]``.

    The label map is encoded by :func:`down_stack` to 4x4; ``z`` is projected to a 4x4 map (dense, IN, ReLU,
    as in DCGAN); both are concatenated (``bottleneck``) and decoded by ``CT-IN-R`` blocks mirroring the
    encoder widths, then ``CT3-Tanh``. ``label_skips=False`` (CGAN): the label map reaches the output only
    through the 4x4 bottleneck - no U-Net skip path, which is what separates it from Pix2Pix.
    ``label_skips=True``: each decoder level is concatenated with the label encoder's output of its size.
    """
    widths = halving_widths(image_size, ngf)
    z = keras.Input((latent_dim,), name="z")
    label = keras.Input((image_size, image_size, channels), name="label")
    features = down_stack(label, widths, "label_down")
    x = layers.Dense(4 * 4 * widths[-1], use_bias=False, kernel_initializer=conv_init(), name="z_project")(z)
    x = layers.Reshape((4, 4, widths[-1]), name="z_map")(x)
    x = instance_norm(name="z_in")(x)
    x = layers.ReLU(name="z_relu")(x)
    x = layers.Concatenate(name="bottleneck")([features[-1], x])
    for i, level in enumerate(reversed(range(len(widths) - 1))):
        x = up(x, widths[level], name=f"up{i + 1}")
        if label_skips:
            x = layers.Concatenate(name=f"skip{i + 1}")([x, features[level]])
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", kernel_initializer=conv_init(),
                               name="out_convT")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="out_tanh")(x)
    return keras.Model([z, label], outputs, name=name)
