"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, section 3.1 and appendix G), small.

Latent diffusion runs diffusion in the latent space of an autoencoder; this is that autoencoder, sized for a CPU.
Encoder: a 3x3 input convolution, per level ``block_depth`` residual blocks (group norm, swish, 3x3 convolutions)
and a stride-2 3x3 convolution between levels, a middle residual block, then group norm, swish and a 3x3 convolution
to the mean and log-variance of ``latent_channels`` latent channels; the decoder mirrors it with nearest up-sampling
and a 3x3 convolution between levels. ``len(widths) - 1`` levels halve the size: widths of 4 levels give 256 px ->
32x32 latents (factor 8).

Loss (LDM's ``LPIPSWithDiscriminator`` without its discriminator, divided by the number of pixel values, which
leaves Adam's steps unchanged): ``mean |x - x'| + lpips_weight * LPIPS(x, x') + kl_weight * KL / (H * W * 3)``,
KL summed over the latent elements of an image, as LDM's ``kl_weight`` = 1e-6 weighs it.

The latent scale factor (LDM's ``scale_factor``, 1 / std of the latents, so that the diffusion model sees latents of
unit variance) is kept as a non-trainable weight: a moving average, over training batches, of the posterior means'
variance; it is saved with the weights.
"""

import math

import keras
import tensorflow as tf
from keras import layers

from data.errors import I2IError
from losses import kl_to_standard_normal, l1_loss
from models.training import LossTracking, build_optimizers, minimize

LOG_VAR_RANGE = (-30.0, 20.0)  # LDM's DiagonalGaussianDistribution clamps the log-variance to this


def group_norm(width, name):
    """Group normalisation with up to 32 groups of at least 4 channels (LDM: 32 groups)."""
    groups = math.gcd(width, max(1, min(32, width // 4)))
    return layers.GroupNormalization(groups=groups, epsilon=1e-6, name=name)


def residual_block(x, width, name):
    """GN -> swish -> C3 -> GN -> swish -> C3, added to the input (through a 1x1 conv when the widths differ)."""
    skip = x if x.shape[-1] == width else layers.Conv2D(width, 1, name=f"{name}_skip")(x)
    for i in (1, 2):
        x = group_norm(x.shape[-1], f"{name}_norm{i}")(x)
        x = layers.Activation("swish", name=f"{name}_swish{i}")(x)
        x = layers.Conv2D(width, 3, padding="same", name=f"{name}_conv{i}")(x)
    return layers.Add(name=name)([x, skip])


def autoencoder_encoder(image_size, widths, latent_channels, block_depth=1, name="encoder"):
    """Photos (image_size, image_size, 3) in [-1, 1] -> the posterior's ``[mean, log_var]`` at the latent size."""
    photos = keras.Input((image_size, image_size, 3), name="photos")
    x = layers.Conv2D(widths[0], 3, padding="same", name="conv_in")(photos)
    for level, width in enumerate(widths):
        for i in range(block_depth):
            x = residual_block(x, width, f"down{level + 1}_res{i + 1}")
        if level < len(widths) - 1:
            x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"down{level + 1}_downsample")(x)
    x = residual_block(x, widths[-1], "mid_res")
    x = group_norm(widths[-1], "norm_out")(x)
    x = layers.Activation("swish", name="swish_out")(x)
    moments = layers.Conv2D(2 * latent_channels, 3, padding="same", dtype="float32", name="moments")(x)
    mean, log_var = layers.Lambda(lambda m: tf.split(m, 2, axis=-1), dtype="float32", name="split")(moments)
    return keras.Model(photos, [mean, log_var], name=name)


def autoencoder_decoder(latent_size, widths, latent_channels, block_depth=1, name="decoder"):
    """Latents (latent_size, latent_size, latent_channels) -> photos in [-1, 1] (unclipped)."""
    latents = keras.Input((latent_size, latent_size, latent_channels), name="latents")
    x = layers.Conv2D(widths[-1], 3, padding="same", name="conv_in")(latents)
    x = residual_block(x, widths[-1], "mid_res")
    for level, width in reversed(list(enumerate(widths))):
        for i in range(block_depth):
            x = residual_block(x, width, f"up{level + 1}_res{i + 1}")
        if level > 0:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level + 1}_upsample")(x)
            x = layers.Conv2D(widths[level - 1], 3, padding="same", name=f"up{level + 1}_conv")(x)
    x = group_norm(widths[0], "norm_out")(x)
    x = layers.Activation("swish", name="swish_out")(x)
    photos = layers.Conv2D(3, 3, padding="same", dtype="float32", name="conv_out")(x)
    return keras.Model(latents, photos, name=name)


class KLAutoencoder(LossTracking, keras.Model):
    """Photo -> latents -> photo, trained on L1 + LPIPS + a small KL (LDM's autoencoder, no discriminator).

    Args:
        image_size: photo size; must be divisible by ``2 ** (len(widths) - 1)``.
        widths: channels per level (one level per width; each level after the first halves the size).
        latent_channels: channels of the latents (LDM: 4).
        block_depth: residual blocks per level.
        kl_weight: LDM's beta (1e-6), on the KL summed over the latent elements.
        lpips: an ``LPIPSLoss`` (or None, with ``lpips_weight`` 0: the model is only used, not trained).
        lpips_weight: weight of the LPIPS term (LDM: 1).
        scale_momentum: momentum of the moving latent variance behind ``latent_scale``.
        seed: seed of the posterior sampling while training.
    """

    def __init__(self, image_size=256, widths=(16, 32, 64, 128), latent_channels=4, block_depth=1,
                 kl_weight=1e-6, lpips=None, lpips_weight=1.0, scale_momentum=0.99, seed=0, **kwargs):
        super().__init__(**kwargs)
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise I2IError(f"autoencoder widths must be positive integers, got {list(widths)}")
        factor = 2 ** (len(widths) - 1)
        if image_size % factor:
            raise I2IError(f"{len(widths)} autoencoder levels halve the size {len(widths) - 1} times: the image size "
                           f"must be a multiple of {factor}, got {image_size}")
        if lpips_weight and lpips is None:
            raise ValueError("an LPIPS weight needs the LPIPS loss (lpips=LPIPSLoss())")
        self.image_size, self.latent_channels, self.factor = int(image_size), int(latent_channels), factor
        self.latent_size = self.image_size // factor
        self.kl_weight, self.lpips, self.lpips_weight = float(kl_weight), lpips, float(lpips_weight)
        self.scale_momentum = float(scale_momentum)
        self.encoder = autoencoder_encoder(self.image_size, widths, self.latent_channels, block_depth)
        self.decoder = autoencoder_decoder(self.latent_size, widths, self.latent_channels, block_depth)
        self.latent_mean = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                          aggregation="mean", name="latent_mean")
        self.latent_variance = self.add_weight(shape=(), initializer="ones", trainable=False,
                                              aggregation="mean", name="latent_variance")
        self.seed_generator = keras.random.SeedGenerator(seed, name="posterior_seed")
        self.track_losses(("loss", "l1_loss", "lpips_loss", "kl_loss", "psnr", "ssim"))
        self.built = True  # the networks are built functional models

    @property
    def latent_scale(self):
        """LDM's scale factor: 1 / std of the latents (the moving estimate of training batches)."""
        return tf.math.rsqrt(tf.maximum(self.latent_variance, 1e-12))

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)
        (self.autoencoder_optimizer,) = build_optimizers([(optimizer, self.trainable_variables)])

    def call(self, photos, training=False):
        return self.translate(photos)

    def translating_weights(self):
        """The variables ``translate`` uses, by network (what ``export.py`` saves): encoder, decoder and the latent
        variance behind ``latent_scale`` (not the LPIPS network or the latent mean, which only training uses)."""
        return {"encoder": self.encoder.weights, "decoder": self.decoder.weights,
                "latent_variance": [self.latent_variance]}

    def encode(self, photos):
        """Photos in [-1, 1] -> the posterior means, multiplied by ``latent_scale`` (the diffusion model's input)."""
        mean, _ = self.encoder(tf.convert_to_tensor(photos, tf.float32), training=False)
        return mean * self.latent_scale

    def decode(self, latents):
        """Scaled latents (``encode``'s output) -> photos in [-1, 1], clipped."""
        photos = self.decoder(tf.convert_to_tensor(latents, tf.float32) / self.latent_scale, training=False)
        return tf.clip_by_value(photos, -1.0, 1.0)

    def translate(self, photos, seed=None):
        """Photos in [-1, 1] -> their reconstructions from the posterior means (what the runner scores and draws:
        an autoencoder's input is the photo, not the label map; ``ModelSpec.reconstructs``); deterministic, so
        ``seed`` changes nothing."""
        return self.decode(self.encode(photos))

    def loss_terms(self, photos, seed=None, training=False):
        """L1, LPIPS and KL of one batch, their weighted sum, and the PSNR / SSIM of the reconstructions."""
        photos = tf.convert_to_tensor(photos, tf.float32)
        mean, log_var = self.encoder(photos, training=training)
        log_var = tf.clip_by_value(log_var, *LOG_VAR_RANGE)
        latents = mean
        if training:
            latents = mean + tf.exp(0.5 * log_var) * keras.random.normal(tf.shape(mean), seed=seed)
        outputs = self.decoder(latents, training=training)
        batch = tf.shape(photos)[0]
        kl = kl_to_standard_normal(tf.reshape(mean, (batch, -1)), tf.reshape(log_var, (batch, -1)))
        l1 = l1_loss(photos, outputs)
        lpips = self.lpips(photos, outputs) if self.lpips_weight else tf.constant(0.0)
        pixel_values = tf.cast(tf.reduce_prod(tf.shape(photos)[1:]), tf.float32)
        clipped = tf.clip_by_value(outputs, -1.0, 1.0)
        return mean, {"loss": l1 + self.lpips_weight * lpips + self.kl_weight * kl / pixel_values,
                      "l1_loss": l1, "lpips_loss": lpips, "kl_loss": kl,
                      "psnr": tf.reduce_mean(tf.image.psnr(photos, clipped, max_val=2.0)),
                      "ssim": tf.reduce_mean(tf.image.ssim(photos, clipped, max_val=2.0))}

    def update_latent_statistics(self, means):
        """Moving mean and variance of the posterior means' elements (behind ``latent_scale``)."""
        batch_mean = tf.reduce_mean(means)
        batch_variance = tf.reduce_mean(tf.square(means - batch_mean))
        m = self.scale_momentum
        self.latent_mean.assign(m * self.latent_mean + (1.0 - m) * batch_mean)
        self.latent_variance.assign(m * self.latent_variance + (1.0 - m) * batch_variance)

    def train_step(self, data):
        """One step on L1 + LPIPS + beta KL of a reconstruction from a posterior sample (the label maps are unused)."""
        _, photos = data
        with tf.GradientTape() as tape:
            means, losses = self.loss_terms(photos, seed=self.seed_generator, training=True)
        minimize(tape, self.autoencoder_optimizer, losses["loss"],
                 self.encoder.trainable_variables + self.decoder.trainable_variables)
        self.update_latent_statistics(means)
        return self.track(losses)

    def test_step(self, data):
        """The same terms for the posterior means (no sampling)."""
        _, photos = data
        return self.track(self.loss_terms(photos, training=False)[1])
