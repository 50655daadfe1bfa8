"""CVAE (study section 3.2 and appendix 3): encoder q(z | photo, label), sampling layer, decoder p(photo | z, label).

The study leaves section 3.2 empty (no architecture table), so the networks reuse the study's own pieces:

* encoder: ``concat(label, photo) -> C64-L, C128-IN-L, C256-IN-L, C512-IN-L ...`` down to 4x4 (the pix2pix
  encoder, Table 1), flatten, two dense heads: the mean and the log-variance of q(z | photo, label);
* :class:`Sampling`: the reparameterisation z = mean + exp(log_var / 2) * eps, eps ~ N(0, I) (the custom last
  layer of the encoder the study's poster describes);
* decoder: :func:`models.blocks.latent_decoder` - the label map encoded to 4x4, z projected to 4x4, decoded by
  ``CT-IN-R`` blocks; by default each level also sees the label encoder's features of its size
  (``label_skips``), so z only has to carry what the label map cannot tell (wall colour, texture, light).

Loss (appendix 3-2, the negative ELBO, written like the keras.io VAE example): the reconstruction term is the
per-image *sum* of |photo - output| (``l1``, a unit Laplace likelihood) or of squared errors (``l2``), averaged
over the batch; the KL term is appendix 3-1's closed form summed over latent dimensions, averaged over the
batch; loss = reconstruction + beta * KL (beta = 1: the ELBO; beta != 1: a beta-VAE).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from losses import kl_to_standard_normal, l1_loss, l2_loss
from models.blocks import down_stack, halving_widths, latent_decoder
from models.noise import noise_generator, noise_seeds
from models.training import LossTracking, build_optimizers, minimize

RECONSTRUCTION_LOSSES = {"l1": l1_loss, "l2": l2_loss}


class Sampling(layers.Layer):
    """Reparameterisation trick: ``z = mean + exp(log_var / 2) * noise``, noise ~ N(0, I) drawn with ``seed``.

    ``noise`` may be given explicitly (tests, fixed latent walks).
    """

    def call(self, mean, log_var, noise=None, seed=None):
        if noise is None:
            noise = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=seed)
        return mean + ops.exp(0.5 * log_var) * noise


def cvae_encoder(image_size=256, latent_dim=128, ngf=64, channels=3, name="encoder"):
    """q(z | photo, label): inputs ``[label, photo]``, outputs ``[mean, log_var]`` of shape (latent_dim,)."""
    label = keras.Input((image_size, image_size, channels), name="label")
    photo = keras.Input((image_size, image_size, channels), name="photo")
    x = layers.Concatenate(name="concat")([label, photo])
    x = down_stack(x, halving_widths(image_size, ngf), "down")[-1]
    x = layers.Flatten(name="flatten")(x)
    mean = layers.Dense(latent_dim, dtype="float32", name="mean")(x)
    log_var = layers.Dense(latent_dim, dtype="float32", name="log_var")(x)
    return keras.Model([label, photo], [mean, log_var], name=name)


class CVAE(LossTracking, keras.Model):
    """Conditional VAE trained on reconstruction + beta * KL (study appendix 3).

    ``translate(labels)`` decodes the label maps with z ~ N(0, I) by default (``sample_at_test=True``): that is
    the model's generative distribution p(photo | label) = E_z p(photo | z, label), so scores
    measure what the CVAE actually generates. ``sample=False`` decodes the prior's mean z = 0 instead - one
    deterministic, usually smoother output per label map, often with a higher PSNR/SSIM.

    ``noise_seed``: the seed of the model's own generator of z at test (``models.noise``; None: Keras' default seed,
    as in training, where validation draws from it too).
    """

    def __init__(self, image_size=256, latent_dim=128, ngf=64, beta=1.0, reconstruction="l1", label_skips=True,
                 sample_at_test=True, noise_seed=None, **kwargs):
        super().__init__(**kwargs)
        if reconstruction not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"reconstruction must be one of {tuple(RECONSTRUCTION_LOSSES)}, got {reconstruction!r}")
        self.image_size, self.latent_dim, self.beta = image_size, latent_dim, float(beta)
        self.reconstruction, self.sample_at_test = reconstruction, sample_at_test
        self.encoder = cvae_encoder(image_size, latent_dim, ngf)
        self.decoder = latent_decoder(image_size, latent_dim, ngf, label_skips=label_skips, name="decoder")
        self.sampling = Sampling(name="sampling")
        self.seed_generator = keras.random.SeedGenerator(name="train_seed")  # train_step's eps (checkpointed)
        # test_step and translate
        self.eval_seed_generator = keras.random.SeedGenerator(noise_seeds(noise_seed)[0], name="eval_seed")
        self.track_losses(("loss", "reconstruction_loss", "kl_loss"))
        self.built = True  # the networks are built functional models

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)  # the optimizer is prepared (loss scaling, slots) below
        variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        (self.vae_optimizer,) = build_optimizers([(optimizer, variables)])

    def call(self, labels, training=False):
        return self.translate(labels)

    def decode(self, labels, z):
        """p(photo | z, label): label maps in [-1, 1] and latents (batch, latent_dim) -> photos in [-1, 1]."""
        return self.decoder([ops.convert_to_tensor(z, "float32"), ops.convert_to_tensor(labels, "float32")],
                            training=False)

    def translating_weights(self):
        """The variables ``translate`` uses, by network (what ``export.py`` saves): the decoder p(photo |
        z, label) (the encoder q(z | photo, label) is for training only)."""
        return {"decoder": self.decoder.weights}

    def translate(self, labels, seed=None, sample=None):
        """Label maps in [-1, 1] -> photos in [-1, 1]; z ~ N(0, I) if ``sample`` (default: the configured
        ``sample_at_test``, True), else z = 0. z is drawn from ``seed`` for this call, else from the model's own
        generator (``models.noise``)."""
        sample = self.sample_at_test if sample is None else sample
        shape = (ops.shape(labels)[0], self.latent_dim)
        z = keras.random.normal(shape, seed=noise_generator(seed, self.eval_seed_generator)) if sample else \
            ops.zeros(shape)
        return self.decode(labels, z)

    def loss_terms(self, label, photo, noise=None, seed=None, training=False):
        """Reconstruction (per-image sum, batch mean), KL (appendix 3-1) and their total for one batch."""
        label, photo = ops.convert_to_tensor(label, "float32"), ops.convert_to_tensor(photo, "float32")
        mean, log_var = self.encoder([label, photo], training=training)
        z = self.sampling(mean, log_var, noise=noise, seed=seed)
        output = self.decoder([z, label], training=training)
        values_per_image = ops.prod(ops.shape(photo)[1:])
        reconstruction = (RECONSTRUCTION_LOSSES[self.reconstruction](photo, output)
                          * ops.cast(values_per_image, "float32"))
        kl = kl_to_standard_normal(mean, log_var)
        return {"loss": reconstruction + self.beta * kl, "reconstruction_loss": reconstruction, "kl_loss": kl}

    def train_step(self, data):
        label, photo = data
        with tf.GradientTape() as tape:
            losses = self.loss_terms(label, photo, seed=self.seed_generator, training=True)
        minimize(tape, self.vae_optimizer, losses["loss"],
                 self.encoder.trainable_variables + self.decoder.trainable_variables)
        return self.track(losses)

    def test_step(self, data):
        label, photo = data
        return self.track(self.loss_terms(label, photo, seed=self.eval_seed_generator, training=False))

