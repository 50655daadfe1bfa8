"""Building blocks shared by the GAN and VAE networks (study Table 2 codes).

``C``: 4x4 convolution, stride 2 unless ``S1``; ``CT``: the transposed version; ``IN``: instance
normalisation, which is ``GroupNormalization(groups=-1)`` in Keras 3 (tensorflow-addons'
``InstanceNormalization`` is end of life); ``L``: LeakyReLU 0.2; ``R``: ReLU; ``D50``: dropout 0.5.
Weights start from N(0, 0.02) as in pix2pix. A convolution followed by a normalisation has no
bias (the normalisation's offset replaces it).
"""

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


def up(x, filters, dropout=0.0, norm=True, strides=2, activation="relu", name=None):
    """``CT{filters}[S1]-IN-[D50]-R``: 4x4 transposed conv, instance norm, dropout, ReLU."""
    x = layers.Conv2DTranspose(filters, 4, strides=strides, padding="same", use_bias=not norm,
                               kernel_initializer=conv_init(), name=f"{name}_convT" if name else None)(x)
    if norm:
        x = instance_norm(name=f"{name}_in" if name else None)(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop" if name else None)(x)
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
        return (shape[0], None if shape[1] is None else shape[1] + p, None if shape[2] is None else shape[2] + p, shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
