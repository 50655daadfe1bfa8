"""The PatchGAN discriminator (study Table 1, rows 1-1 to 9; the 70x70 PatchGAN of pix2pix/CycleGAN).

``concat(label, image) -> C64-L -> C128-IN-L -> C256-IN-L -> pad -> C512S1-IN-L -> pad -> C1S1``:
30x30 logits at 256 px, each judging a 70x70 patch. Pix2Pix conditions on the label map
(``condition_channels=3``); CycleGAN's discriminators see the image alone (``condition_channels=0``).
"""

import keras
from keras import layers

from models.blocks import conv_init, down


def patch_discriminator(image_size=256, image_channels=3, condition_channels=3, ndf=64, name="discriminator"):
    """Functional PatchGAN; inputs ``[condition, image]`` (or ``image``), output logits (H', W', 1).

    ``ndf`` is the first layer's width (64 in Table 1); the others are 2, 4 and 8 times it.
    """
    image = keras.Input((image_size, image_size, image_channels), name="image")
    if condition_channels:
        condition = keras.Input((image_size, image_size, condition_channels), name="condition")
        inputs = [condition, image]
        x = layers.Concatenate(name="concat")(inputs)
    else:
        inputs, x = image, image
    x = down(x, ndf, norm=False, name="c64")
    x = down(x, 2 * ndf, name="c128")
    x = down(x, 4 * ndf, name="c256")
    x = layers.ZeroPadding2D(name="pad1")(x)
    x = down(x, 8 * ndf, strides=1, padding="valid", name="c512s1")
    x = layers.ZeroPadding2D(name="pad2")(x)
    x = layers.Conv2D(1, 4, strides=1, padding="valid", kernel_initializer=conv_init(), name="c1s1")(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)
