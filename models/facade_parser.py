"""The facade parser's network: photo -> 12 CMP class logits per pixel, a small U-Net.

The pix2pix U-Net (Isola et al. 2017) with a segmentation head: an encoder of ``C{w}-L, C{2w}-IN-L, ...`` blocks
(:func:`models.blocks.down_stack`, 4x4 convolutions of stride 2) halving the image to 4x4, with widths doubling up
to ``4 * width``; a decoder of ``CT-IN-R`` blocks (:func:`models.blocks.up`), each concatenated with the encoder
output of its size; then a 4x4 transposed convolution to ``classes`` logits (float32, softmax left to the loss).
No dropout: the parser is a fixed measuring instrument, and its prediction must be deterministic.
"""

import keras
from keras import layers

from models.blocks import conv_init, down_stack, halving_widths, up

MAX_WIDTH_FACTOR = 4


def parser_widths(image_size, width):
    """Encoder widths from ``image_size`` down to 4x4: ``width, 2 width, 4 width, 4 width, ...``."""
    return [min(w, MAX_WIDTH_FACTOR * width) for w in halving_widths(image_size, width)]


def facade_parser_network(image_size=128, width=32, classes=12, name="facade_parser"):
    """Photos in [-1, 1] (N, image_size, image_size, 3) -> class logits (N, image_size, image_size, classes)."""
    widths = parser_widths(image_size, width)
    photo = keras.Input((image_size, image_size, 3), name="photo")
    skips = down_stack(photo, widths, "down")
    x = skips[-1]
    for i, level in enumerate(reversed(range(len(widths) - 1))):
        x = up(x, widths[level], name=f"up{i + 1}")
        x = layers.Concatenate(name=f"skip{i + 1}")([x, skips[level]])
    logits = layers.Conv2DTranspose(classes, 4, strides=2, padding="same", kernel_initializer=conv_init(),
                                    dtype="float32", name="logits")(x)
    return keras.Model(photo, logits, name=name)
