"""Pix2Pix (study section 3.4, Tables 1-3, eq. 2-3): a U-Net generator and a PatchGAN.

Two generators:

* ``study`` - Table 1 exactly: encoder C64-L, C128-IN-L, C256-IN-L, C512-IN-L x 6 (the last one
  at 1x1), decoder CT512S1-IN-D50-R, CT1024-IN-D50-R x 2, CT1024-IN-R x 2, CT512, CT256, CT128
  (each followed by a concat with the mirrored encoder output), CT3-Tanh. Note that instance
  norm over a 1x1 map outputs its offset alone (rows 9-11): the bottleneck carries no
  information and everything flows through the skips - as in the study.
* ``pix2pix`` - the original U-Net of the pix2pix paper, the TF tutorial and the reference
  repository: encoder C64 C128 C256 C512 x 5 (innermost without norm, as in the reference
  repository), decoder CT512-D50 x 3, CT512, CT256, CT128, CT64, each with its skip, CT3-Tanh.

Smaller inputs drop levels: ``log2(size)`` downsamplings reach 1x1; the study generator drops
its C512 and CT1024 rows, the original drops C512/CT512 rows. Dropout stays in the first three
decoder blocks.
"""

import math

import keras
import tensorflow as tf
from keras import layers

from losses import GAN_LOSSES, discriminator_accuracy, discriminator_loss, generator_loss, l1_loss
from models.blocks import conv_init, down, up
from models.discriminators import patch_discriminator
from models.noise import dropout_on, noise_seeds
from models.training import LossTracking, build_optimizers, minimize

GENERATORS = ("study", "pix2pix")


def _levels(image_size, minimum=16):
    levels = int(round(math.log2(image_size)))
    if 2**levels != image_size or image_size < minimum:
        raise ValueError(f"image size must be a power of two >= {minimum}, got {image_size}")
    return levels


def study_generator_widths(image_size=256):
    """Encoder and decoder widths of Table 1 (rows 2-10 and 11-18) at ``image_size``."""
    levels = _levels(image_size)
    encoder = [64, 128, 256] + [512] * (levels - 3) + [512]
    decoder = [512] + [1024] * (levels - 4) + [512, 256, 128]
    return encoder, decoder


def pix2pix_generator_widths(image_size=256):
    """Encoder and decoder widths of the original pix2pix U-Net."""
    levels = _levels(image_size)
    encoder = [64, 128, 256] + [512] * (levels - 3)
    return encoder, encoder[-2::-1]


DROPOUT_BLOCKS = 3  # decoder blocks with dropout (D50)


def unet_generator(image_size=256, kind="study", channels=3, ngf=64, dropout_seed=None, name="generator"):
    """The U-Net generator, label map in, photo in [-1, 1] out.

    ``ngf`` is the width of the first layer (64 in Table 1); every width scales with it, like the
    reference repository's ``--ngf``. ``dropout_seed``: the seed of the dropout layers' masks (``models.noise``;
    None: Keras' default seeds).
    """
    if kind not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {kind!r}")
    widths = study_generator_widths if kind == "study" else pix2pix_generator_widths
    encoder, decoder = ([w * ngf // 64 for w in ws] for ws in widths(image_size))
    inputs = keras.Input((image_size, image_size, channels), name="label")
    x, skips = inputs, []
    for i, filters in enumerate(encoder):
        innermost = i == len(encoder) - 1
        norm = i > 0 and not (kind == "pix2pix" and innermost)
        x = down(x, filters, norm=norm, name=f"down{i + 1}")
        skips.append(x)
    dropout_seeds = noise_seeds(dropout_seed, min(DROPOUT_BLOCKS, len(decoder)))
    for i, filters in enumerate(decoder):
        stride = 1 if (kind == "study" and i == 0) else 2
        dropout = i < DROPOUT_BLOCKS
        x = up(x, filters, dropout=0.5 if dropout else 0.0, strides=stride,
               dropout_seed=dropout_seeds[i] if dropout else None, name=f"up{i + 1}")
        x = layers.Concatenate(name=f"skip{i + 1}")([x, skips[len(encoder) - 2 - i]])
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", kernel_initializer=conv_init(),
                               name="out_convT")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="out_tanh")(x)
    return keras.Model(inputs, outputs, name=name)


class Pix2Pix(LossTracking, keras.Model):
    """Conditional GAN with L1 (eq. 2): G minimises adv + lambda * L1, D the adversarial loss / 2.

    ``gan_loss``: ``bce`` (the pix2pix paper) or ``lsgan`` (least squares, the study's "L2+L1").
    ``noise_seed``: the seed of the generator's dropout masks (``models.noise``; None: Keras' default seeds, as in
    training, which draws its masks from them too).
    """

    def __init__(self, image_size=256, generator="study", gan_loss="bce", l1_weight=100.0, dropout_at_test=False,
                 ngf=64, ndf=64, noise_seed=None, **kwargs):
        super().__init__(**kwargs)
        if gan_loss not in GAN_LOSSES:
            raise ValueError(f"gan_loss must be one of {GAN_LOSSES}, got {gan_loss!r}")
        self.image_size, self.gan_loss, self.l1_weight = image_size, gan_loss, float(l1_weight)
        self.dropout_at_test = dropout_at_test
        self.generator = unet_generator(image_size, kind=generator, ngf=ngf, dropout_seed=noise_seed)
        self.discriminator = patch_discriminator(image_size, ndf=ndf)
        self.track_losses(("g_loss", "g_gan", "g_l1", "d_loss", "d_acc"))
        self.built = True  # the two networks are built functional models

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)  # no model-level optimizer: G and D have their own
        self.g_optimizer, self.d_optimizer = build_optimizers([(g_optimizer, self.generator.trainable_variables),
                                                               (d_optimizer, self.discriminator.trainable_variables)])

    def call(self, labels, training=False):
        return self.generator(labels, training=training)

    def translating_weights(self):
        """The variables ``translate`` uses, by network (what ``export.py`` saves): the generator (the
        discriminator is for training only)."""
        return {"generator": self.generator.weights}

    def translate(self, labels, seed=None, dropout=None):
        """Label maps in [-1, 1] -> photos in [-1, 1]; dropout on (as in the pix2pix paper) if asked or configured,
        its masks drawn from ``seed`` for this call, else from the generator's own dropout layers (``models.noise``)."""
        dropout = self.dropout_at_test if dropout is None else dropout
        if not dropout:
            return self.generator(labels, training=False)
        return dropout_on(self.generator, labels, seed)

    def loss_terms(self, label, photo, training):
        """Every loss term of one batch by name (G: adversarial + lambda * L1, Table 3; D: its adversarial loss
        halved), and D's accuracy; updates nothing."""
        fake = self.generator(label, training=training)
        real_logits = self.discriminator([label, photo], training=training)
        fake_logits = self.discriminator([label, fake], training=training)
        g_gan = generator_loss(fake_logits, self.gan_loss)
        g_l1 = l1_loss(photo, fake)
        return {
            "g_loss": g_gan + self.l1_weight * g_l1,
            "g_gan": g_gan,
            "g_l1": g_l1,
            "d_loss": 0.5 * discriminator_loss(real_logits, fake_logits, self.gan_loss),
            "d_acc": discriminator_accuracy(real_logits, fake_logits, self.gan_loss),
        }

    def train_step(self, data):
        label, photo = data
        with tf.GradientTape(persistent=True) as tape:
            losses = self.loss_terms(label, photo, training=True)
        minimize(tape, self.g_optimizer, losses["g_loss"], self.generator.trainable_variables)
        minimize(tape, self.d_optimizer, losses["d_loss"], self.discriminator.trainable_variables)
        return self.track(losses)

    def test_step(self, data):
        label, photo = data
        return self.track(self.loss_terms(label, photo, training=False))
