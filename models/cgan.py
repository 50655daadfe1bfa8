"""CGAN (study section 3.3, eq. 1; poster: 30 000 iterations, batch 64, Adam 2e-4, beta1 0.9, beta2 0.999).

* generator G(z | label): :func:`models.blocks.latent_decoder` without label skips - the label map is encoded
  to 4x4 (``C64-L, C128-IN-L, ...``), the noise z ~ N(0, I) (100-d, as in the CGAN and DCGAN papers) is
  projected to 4x4, both are concatenated and decoded by ``CT-IN-R`` blocks to ``CT3-Tanh``. There is no skip
  path from the label map to the output: that is what separates it from Pix2Pix's U-Net.
* discriminator D(image | label): the PatchGAN of :mod:`models.discriminators` on ``concat(label, image)``.
* loss, eq. (1): D maximises log D(x | y) + log(1 - D(G(z | y) | y)) - it minimises the plain sum of the
  real and fake BCE terms; G minimises the non-saturating -log D(G(z | y) | y). ``lsgan`` swaps in least
  squares.
* update ratio: each training step makes ``d_steps`` D updates then ``g_steps`` G updates on its batch, each
  with fresh noise (D:G = 1:2 is ``g_steps`` 2).
"""

import keras
import tensorflow as tf
from keras import ops

from losses import GAN_LOSSES, discriminator_accuracy, discriminator_loss, generator_loss
from models.blocks import latent_decoder
from models.discriminators import patch_discriminator
from models.noise import noise_generator, noise_seeds
from models.training import LossTracking, build_optimizers, minimize


def cgan_generator(image_size=256, noise_dim=100, ngf=64, name="generator"):
    """G(z | label): inputs ``[z, label]``, photo in [-1, 1] out; no skip path from the label map."""
    return latent_decoder(image_size, noise_dim, ngf, label_skips=False, name=name)


class CGAN(LossTracking, keras.Model):
    """Conditional GAN of eq. (1) with a noise-driven generator and a label-conditioned PatchGAN.

    ``noise_seed``: the seed of the model's own generator of the noise at test (``models.noise``; None: Keras'
    default seed, as in training, where validation draws from it too).
    """

    def __init__(self, image_size=256, noise_dim=100, ngf=64, ndf=64, gan_loss="bce", d_steps=1, g_steps=1,
                 noise_seed=None, **kwargs):
        super().__init__(**kwargs)
        if gan_loss not in GAN_LOSSES:
            raise ValueError(f"gan_loss must be one of {GAN_LOSSES}, got {gan_loss!r}")
        if d_steps < 1 or g_steps < 1:
            raise ValueError(f"d_steps and g_steps must be >= 1, got {d_steps} and {g_steps}")
        self.image_size, self.noise_dim, self.gan_loss = image_size, noise_dim, gan_loss
        self.d_steps, self.g_steps = int(d_steps), int(g_steps)
        self.generator = cgan_generator(image_size, noise_dim, ngf)
        self.discriminator = patch_discriminator(image_size, condition_channels=3, ndf=ndf)
        self.seed_generator = keras.random.SeedGenerator(name="train_seed")  # train_step's noise (checkpointed)
        # test_step and translate
        self.eval_seed_generator = keras.random.SeedGenerator(noise_seeds(noise_seed)[0], name="eval_seed")
        self.track_losses(("g_loss", "d_loss", "d_acc"))
        self.built = True  # the two networks are built functional models

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)  # no model-level optimizer: G and D have their own
        self.g_optimizer, self.d_optimizer = build_optimizers([(g_optimizer, self.generator.trainable_variables),
                                                               (d_optimizer, self.discriminator.trainable_variables)])

    def call(self, labels, training=False):
        return self.translate(labels)

    def noise(self, labels, seed):
        """z ~ N(0, I), one ``noise_dim`` vector per label map."""
        return keras.random.normal((ops.shape(labels)[0], self.noise_dim), seed=seed)

    def translating_weights(self):
        """The variables ``translate`` uses, by network (what ``export.py`` saves): the generator (its
        noise comes from ``eval_seed_generator``, whose state is not a weight)."""
        return {"generator": self.generator.weights}

    def translate(self, labels, seed=None, noise=None):
        """Label maps in [-1, 1] -> photos in [-1, 1], with fresh noise unless ``noise`` is given: drawn from ``seed``
        for this call, else from the model's own generator (``models.noise``)."""
        labels = ops.convert_to_tensor(labels, "float32")
        if noise is None:
            noise = self.noise(labels, noise_generator(seed, self.eval_seed_generator))
        else:
            noise = ops.convert_to_tensor(noise, "float32")
        return self.generator([noise, labels], training=False)

    def d_loss_terms(self, label, photo, noise, training=False):
        """D's loss (eq. 1, real and fake terms summed) and accuracy on one batch."""
        label, photo, noise = (ops.convert_to_tensor(x, "float32") for x in (label, photo, noise))
        fake = self.generator([noise, label], training=training)
        real_logits = self.discriminator([label, photo], training=training)
        fake_logits = self.discriminator([label, fake], training=training)
        return {"d_loss": discriminator_loss(real_logits, fake_logits, self.gan_loss),
                "d_acc": discriminator_accuracy(real_logits, fake_logits, self.gan_loss)}

    def g_loss_terms(self, label, noise, training=False):
        """G's adversarial loss (non-saturating form of eq. 1) on one batch."""
        label, noise = ops.convert_to_tensor(label, "float32"), ops.convert_to_tensor(noise, "float32")
        fake = self.generator([noise, label], training=training)
        return {"g_loss": generator_loss(self.discriminator([label, fake], training=training), self.gan_loss)}

    def train_step(self, data):
        label, photo = data
        for _ in range(self.d_steps):
            noise = self.noise(label, self.seed_generator)
            with tf.GradientTape() as tape:
                losses = self.d_loss_terms(label, photo, noise, training=True)
            minimize(tape, self.d_optimizer, losses["d_loss"], self.discriminator.trainable_variables)
            self.track(losses)
        for _ in range(self.g_steps):
            noise = self.noise(label, self.seed_generator)
            with tf.GradientTape() as tape:
                losses = self.g_loss_terms(label, noise, training=True)
            minimize(tape, self.g_optimizer, losses["g_loss"], self.generator.trainable_variables)
            results = self.track(losses)
        return results

    def test_step(self, data):
        label, photo = data
        noise = self.noise(label, self.eval_seed_generator)
        return self.track({**self.d_loss_terms(label, photo, noise), **self.g_loss_terms(label, noise)})

