"""The study's DDIM noise-prediction U-Net, exactly Table 4 (codes in Table 5), as in the keras.io DDIM example.

Inputs ``[noisy_images, noise_variances]`` (+ ``condition_images`` when ``condition_channels > 0``);
output: the predicted noise. Table 4 rows and the layer names that hold them:

====  ==========================================  =====================  ==================
row   layers                                      layer name             shape at 64 px
====  ==========================================  =====================  ==================
1-1   noisy image (+ condition, concatenated)     ``noisy_images``       (64, 64, 3)
1-1-2 C32k1                                       ``input_conv``         (64, 64, 32)
1-2   noise variance                              ``noise_variances``    (1, 1, 1)
1-2-1 sinusoidal embedding (eq. 12-13)            ``noise_embedding``    (1, 1, 32)
1-2-2 nearest up-sampling to the image size       ``embedding_upsample`` (64, 64, 32)
2     concat 1-1-2 & 1-2-2                        ``input_concat``       (64, 64, 64)
3-6   D64 D128 D256 D256                          ``down1`` .. ``down4`` (32..4, 64..256)
7-8   R512 R512                                   ``bottleneck_res1/2``  (4, 4, 512)
9-12  U256 U256 U128 U64                          ``up1_res2`` ..        (8..64, 256..64)
13    C3k1, zero-initialised                      ``output_conv``        (64, 64, 3)
====  ==========================================  =====================  ==================

Typos in Table 4, resolved so: row 2 concatenates 1-1-2 (there is no row 1-1-3); row 12
outputs 64 channels, not 3 (the 3 channels come from row 13); block D keeps each residual block's
output as a skip (no "concat input" inside D); block U concatenates one kept skip (popped in reverse
order) before each of its residual blocks; the 1x1 skip convolution of block R exists only when the
widths differ. The "diffusion time input" is the noise variance, as in the keras.io code.
"""

import keras
from keras import layers

from models.diffusion.embedding import (
    STUDY_MAX_FREQUENCY,
    SinusoidalEmbedding,
    check_image_size,
    condition_at_level,
    network_inputs,
)


def residual_block(x, width, name):
    """Block R (Table 4): BN (no centre/scale) -> C{width}k3, swish -> C{width}k3, added to the input
    (through a 1x1 conv when the widths differ). The BN statistics are those of the global batch under
    ``tf.distribute`` (``synchronized``), so that the replicas train what one device would."""
    residual = x if x.shape[-1] == width else layers.Conv2D(width, 1, name=f"{name}_skip_conv")(x)
    x = layers.BatchNormalization(center=False, scale=False, synchronized=True, name=f"{name}_bn")(x)
    x = layers.Conv2D(width, 3, padding="same", activation="swish", name=f"{name}_conv1")(x)
    x = layers.Conv2D(width, 3, padding="same", name=f"{name}_conv2")(x)
    return layers.Add(name=name)([x, residual])


def down_block(x, skips, width, depth, name):
    """Block D: ``depth`` residual blocks whose outputs are kept as skips, then 2x2 average pooling."""
    for i in range(depth):
        x = residual_block(x, width, f"{name}_res{i + 1}")
        skips.append(x)
    return layers.AveragePooling2D(pool_size=2, name=name)(x)


def up_block(x, skips, width, depth, name, after_upsampling=None):
    """Block U: bilinear 2x up-sampling, then per residual block a concat with one kept skip.

    ``after_upsampling(x)``, if given, transforms the up-sampled map first (e.g. concatenates the label map)."""
    x = layers.UpSampling2D(size=2, interpolation="bilinear", name=f"{name}_upsample")(x)
    if after_upsampling is not None:
        x = after_upsampling(x)
    for i in range(depth):
        x = layers.Concatenate(name=f"{name}_concat{i + 1}")([x, skips.pop()])
        x = residual_block(x, width, f"{name}_res{i + 1}")
    return x


def study_unet(image_size=64, condition_channels=0, input_width=32, down_widths=(64, 128, 256, 256),
               bottleneck_width=512, block_depth=2, embedding_dims=32,
               embedding_max_frequency=STUDY_MAX_FREQUENCY, image_channels=3, condition_every_level=False,
               name="study_unet"):
    """Table 4's U-Net (defaults) as a functional ``keras.Model`` predicting the noise of eq. (10).

    ``condition_channels=3`` adds a ``condition_images`` input (the label map) concatenated to the noisy
    image before row 1-1-2. With ``condition_every_level`` (not in Table 4) the label map, average-pooled to
    each resolution, is also concatenated to the input of every down block, the bottleneck and every up block
    (after its up-sampling). Up blocks mirror ``down_widths``. Smaller widths build tiny test networks.
    """
    image_size = check_image_size(image_size, len(down_widths), "study U-Net")
    inputs, images = network_inputs(image_size, condition_channels, image_channels)
    noise_variances = inputs[1]
    levels = len(down_widths)
    condition_levels = ([condition_at_level(inputs[2], level, f"condition_pool{level}")
                         for level in range(levels + 1)] if condition_channels and condition_every_level else None)

    def with_condition(x, level, name):
        if condition_levels is None:
            return x
        return layers.Concatenate(name=f"{name}_condition_concat")([x, condition_levels[level]])

    x = layers.Conv2D(input_width, 1, name="input_conv")(images)
    embedding = SinusoidalEmbedding(embedding_dims, 1.0, embedding_max_frequency, name="noise_embedding")
    e = embedding(noise_variances)
    e = layers.UpSampling2D(size=image_size, interpolation="nearest", name="embedding_upsample")(e)
    x = layers.Concatenate(name="input_concat")([x, e])

    skips = []
    for i, width in enumerate(down_widths):
        x = down_block(with_condition(x, i, f"down{i + 1}"), skips, width, block_depth, f"down{i + 1}")
    x = with_condition(x, levels, "bottleneck")
    for i in range(block_depth):
        x = residual_block(x, bottleneck_width, f"bottleneck_res{i + 1}")
    for i, width in enumerate(reversed(down_widths)):
        level = levels - 1 - i
        x = up_block(x, skips, width, block_depth, f"up{i + 1}",
                     lambda y, level=level, name=f"up{i + 1}": with_condition(y, level, name))
    x = layers.Conv2D(image_channels, 1, kernel_initializer="zeros", dtype="float32", name="output_conv")(x)
    return keras.Model(inputs, x, name=name)
