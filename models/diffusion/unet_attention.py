"""The attention noise-prediction U-Net: DDPM's (Ho et al. 2020) design at a size that trains on a CPU.

As in DDPM: residual blocks (two per level) with group normalisation, a sinusoidal
time embedding passed through an MLP and added in every residual block after its first convolution,
and self-attention at the 16x16 resolution; for 64x64 images three levels, 64 channels doubling per
level, so 16x16 is the deepest level. Choices made here (all arguments):

- The embedded quantity is the noise variance (as in the study's network), with the keras.io
  frequencies 1 ... 1000, so that the small variances of the last steps stay distinguishable;
  embedding width ``widths[0]``, MLP Dense(4 w, swish) -> Dense(4 w) as in DDPM.
- Residual block (DDPM): GN -> swish -> conv3 -> + Dense(swish(embedding)) -> GN -> swish -> dropout ->
  conv3 (zero-initialised, as in DDPM's code, so each block starts as its skip path); 1x1 skip conv
  when widths differ.
- Attention block: GN -> single-head ``keras.layers.MultiHeadAttention`` over the H*W positions ->
  add. Placed after every residual block whose resolution is in ``attention_resolutions`` (default
  16), and in the middle block if that resolution qualifies or ``bottleneck_attention`` is set.
- Skips as in the study network (one per residual block, popped in reverse order); down-sampling by a
  stride-2 3x3 conv, up-sampling by nearest 2x + 3x3 conv (DDPM); output GN -> swish -> conv3 to 3
  channels, zero-initialised.
"""

import keras
from keras import layers

from models.diffusion.embedding import KERAS_IO_MAX_FREQUENCY, SinusoidalEmbedding, check_image_size, network_inputs
from models.diffusion.schedules import DiffusionConfigError


def time_embedding(noise_variances, dims, max_frequency):
    """Sinusoidal embedding of the noise variance, then DDPM's MLP: [B, 1, 1, 1] -> [B, 1, 1, 4 * dims]."""
    e = SinusoidalEmbedding(dims, 1.0, max_frequency, name="noise_embedding")(noise_variances)
    e = layers.Dense(4 * dims, activation="swish", name="embedding_dense1")(e)
    return layers.Dense(4 * dims, name="embedding_dense2")(e)


def residual_block(x, embedding, width, groups, dropout, name):
    """DDPM residual block with the time embedding added after the first convolution."""
    residual = x if x.shape[-1] == width else layers.Conv2D(width, 1, name=f"{name}_skip_conv")(x)
    x = layers.GroupNormalization(groups, name=f"{name}_norm1")(x)
    x = layers.Activation("swish", name=f"{name}_swish1")(x)
    x = layers.Conv2D(width, 3, padding="same", name=f"{name}_conv1")(x)
    e = layers.Activation("swish", name=f"{name}_embedding_swish")(embedding)
    x = layers.Add(name=f"{name}_add_embedding")([x, layers.Dense(width, name=f"{name}_embedding_dense")(e)])
    x = layers.GroupNormalization(groups, name=f"{name}_norm2")(x)
    x = layers.Activation("swish", name=f"{name}_swish2")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros", name=f"{name}_conv2")(x)
    return layers.Add(name=name)([x, residual])


def attention_block(x, groups, heads, name):
    """Self-attention over all positions of a feature map (GN -> multi-head attention -> add)."""
    height, width, channels = x.shape[1:]
    h = layers.GroupNormalization(groups, name=f"{name}_norm")(x)
    h = layers.Reshape((height * width, channels), name=f"{name}_to_tokens")(h)
    h = layers.MultiHeadAttention(heads, channels // heads, name=f"{name}_mha")(h, h)
    h = layers.Reshape((height, width, channels), name=f"{name}_to_map")(h)
    return layers.Add(name=name)([x, h])


def attention_unet(image_size=64, condition_channels=0, widths=(64, 128, 256), block_depth=2,
                   attention_resolutions=(16,), bottleneck_attention=False, attention_heads=1, norm_groups=32,
                   dropout=0.0, embedding_max_frequency=KERAS_IO_MAX_FREQUENCY, image_channels=3,
                   name="attention_unet"):
    """The attention (DDPM) U-Net as a functional ``keras.Model`` (inputs as ``study_unet``).

    Level i works at ``image_size / 2**i`` with ``widths[i]`` channels; the middle block sits at the
    deepest level. Attention blocks are named ``<block>_attention`` (e.g. ``down3_res1_attention``).
    """
    image_size = check_image_size(image_size, len(widths) - 1, "attention U-Net")
    for width in widths:
        if width % norm_groups or width % attention_heads:
            raise DiffusionConfigError(f"attention U-Net: width {width} is not divisible by norm_groups "
                                       f"{norm_groups} and attention_heads {attention_heads}")
    inputs, images = network_inputs(image_size, condition_channels, image_channels)
    embedding = time_embedding(inputs[1], widths[0], embedding_max_frequency)

    def block(x, width, resolution, name, attention=None):
        """A residual block, followed by attention at the attention resolutions (or when told)."""
        x = residual_block(x, embedding, width, norm_groups, dropout, name)
        if attention is None:
            attention = resolution in attention_resolutions
        if attention:
            x = attention_block(x, norm_groups, attention_heads, f"{name}_attention")
        return x

    x = layers.Conv2D(widths[0], 3, padding="same", name="input_conv")(images)
    skips = []
    for level, width in enumerate(widths):
        resolution = image_size // 2 ** level
        for i in range(block_depth):
            x = block(x, width, resolution, f"down{level + 1}_res{i + 1}")
            skips.append(x)
        if level < len(widths) - 1:
            x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"down{level + 1}_downsample")(x)

    resolution = image_size // 2 ** (len(widths) - 1)
    x = block(x, widths[-1], resolution, "middle_res1",
              attention=bottleneck_attention or resolution in attention_resolutions)
    x = block(x, widths[-1], resolution, "middle_res2", attention=False)

    for level in reversed(range(len(widths))):
        resolution = image_size // 2 ** level
        for i in range(block_depth):
            x = layers.Concatenate(name=f"up{level + 1}_concat{i + 1}")([x, skips.pop()])
            x = block(x, widths[level], resolution, f"up{level + 1}_res{i + 1}")
        if level > 0:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level + 1}_upsample")(x)
            x = layers.Conv2D(widths[level - 1], 3, padding="same", name=f"up{level + 1}_upsample_conv")(x)

    x = layers.GroupNormalization(norm_groups, name="output_norm")(x)
    x = layers.Activation("swish", name="output_swish")(x)
    x = layers.Conv2D(image_channels, 3, padding="same", kernel_initializer="zeros", dtype="float32",
                      name="output_conv")(x)
    return keras.Model(inputs, x, name=name)
