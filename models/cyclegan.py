"""CycleGAN (study section 3.5; Zhu et al. 2017): two ResNet generators, two PatchGANs, cycle consistency.

Domains: **A** = label maps, **B** = photos. ``g_ab`` translates label map -> photo (what ``translate``
and the evaluation use), ``g_ba`` photo -> label map; ``d_a`` judges label maps, ``d_b`` photos.

* Generator (CycleGAN paper, appendix 7.2): ``c7s1-64, d128, d256, R256 x 9 (6 at <= 128 px), u128, u64,
  c7s1-3`` - 7x7 convolutions after reflection padding, 3x3 stride-2 down/up convolutions, residual blocks
  of two reflection-padded 3x3 convolutions, instance norm and ReLU everywhere but the tanh output.
* Discriminators: the 70x70 PatchGAN of :mod:`models.discriminators` on the image alone.
* Loss: least squares; G minimises ``adv_ab + adv_ba + lambda * cycle + identity_weight * lambda * identity``
  with lambda = 10 and identity_weight = 0.5; each D minimises half its least-squares loss, on fakes drawn
  from a pool of 50 past fakes (:class:`ImagePool`).
* Adam 2e-4, beta_1 0.5, constant for the first half and linearly to 0 over the second
  (:class:`LinearDecayAfter`).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from losses import cycle_loss, discriminator_loss, generator_loss, identity_loss
from models.blocks import ReflectionPadding2D, conv_init, instance_norm
from models.discriminators import patch_discriminator
from models.training import LossTracking, build_optimizers, minimize


def default_res_blocks(image_size):
    """9 residual blocks at 256 px and above, 6 at 128 px and below (CycleGAN paper, appendix 7.2)."""
    return 9 if image_size >= 256 else 6


def _norm_relu(x, name, activation=True):
    x = instance_norm(name=f"{name}_in")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if activation else x


def c7s1(x, filters, name):
    """``c7s1-k``: reflection pad 3, 7x7 convolution stride 1, instance norm, ReLU."""
    x = ReflectionPadding2D(3, name=f"{name}_pad")(x)
    x = layers.Conv2D(filters, 7, use_bias=False, kernel_initializer=conv_init(), name=f"{name}_conv")(x)
    return _norm_relu(x, name)


def d(x, filters, name):
    """``dk``: 3x3 convolution stride 2, instance norm, ReLU."""
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, kernel_initializer=conv_init(),
                      name=f"{name}_conv")(x)
    return _norm_relu(x, name)


def residual(x, name):
    """``Rk``: two reflection-padded 3x3 convolutions (instance norm, ReLU between) added to the input."""
    filters = x.shape[-1]
    y = x
    for i in (1, 2):
        y = ReflectionPadding2D(1, name=f"{name}_pad{i}")(y)
        y = layers.Conv2D(filters, 3, use_bias=False, kernel_initializer=conv_init(), name=f"{name}_conv{i}")(y)
        y = _norm_relu(y, f"{name}_{i}", activation=i == 1)
    return layers.Add(name=name)([x, y])


def u(x, filters, name):
    """``uk``: 3x3 transposed convolution stride 2 (fractional stride 1/2), instance norm, ReLU."""
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False, kernel_initializer=conv_init(),
                               name=f"{name}_convT")(x)
    return _norm_relu(x, name)


def resnet_generator(image_size=256, channels=3, ngf=64, res_blocks=None, name="generator"):
    """The CycleGAN ResNet generator; every width scales with ``ngf`` (64 in the paper).

    Layer outputs: ``c7s1`` (H, W, ngf), ``down1`` (H/2, 2 ngf), ``down2`` (H/4, 4 ngf), ``res1..resN``
    (H/4, 4 ngf), ``up1`` (H/2, 2 ngf), ``up2`` (H, ngf), ``out`` (H, W, channels) in [-1, 1].
    """
    res_blocks = res_blocks or default_res_blocks(image_size)
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = c7s1(inputs, ngf, "c7s1")
    x = d(x, 2 * ngf, "down1")
    x = d(x, 4 * ngf, "down2")
    for i in range(res_blocks):
        x = residual(x, f"res{i + 1}")
    x = u(x, 2 * ngf, "up1")
    x = u(x, ngf, "up2")
    x = ReflectionPadding2D(3, name="out_pad")(x)
    x = layers.Conv2D(channels, 7, kernel_initializer=conv_init(), name="out_conv")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="out")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="i2i")
class LinearDecayAfter(keras.optimizers.schedules.LearningRateSchedule):
    """Constant ``initial_learning_rate`` until ``decay_start``, then linearly to 0 at ``total_steps``.

    The CycleGAN paper keeps Adam's rate for the first 100 epochs and decays it linearly to zero over the
    next 100; ``decay_start`` defaults to half of ``total_steps``. Step ``k`` (0-based, the optimizer's
    ``iterations``) uses ``lr * (1 - max(0, k - decay_start) / (total_steps - decay_start))``.
    """

    def __init__(self, initial_learning_rate, total_steps, decay_start=None):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.decay_start = self.total_steps // 2 if decay_start is None else int(decay_start)
        if not 0 <= self.decay_start < self.total_steps:
            raise ValueError(f"decay_start must be in [0, total_steps), got {self.decay_start} of {self.total_steps}")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        done = ops.clip((step - self.decay_start) / (self.total_steps - self.decay_start), 0.0, 1.0)
        return self.initial_learning_rate * (1.0 - done)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "decay_start": self.decay_start}


class ImagePool(layers.Layer):
    """The pool of past fakes that CycleGAN's discriminators train on (Shrivastava et al.; CycleGAN section 4).

    Each image of a batch, in order: while the pool holds fewer than ``size`` images it is stored and returned
    unchanged; once full, with probability 1/2 it is returned unchanged, otherwise it replaces a uniformly
    drawn pooled image, which is returned instead. ``size = 0`` disables the pool.

    The images and their count are non-trainable variables (saved with the weights) and the draws come
    from a ``SeedGenerator`` (restored by the run backup), so a resumed run queries the pool exactly as an
    uninterrupted one. The batch size must be static (training batches drop their remainder).
    """

    def __init__(self, size, image_shape, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.images = self.add_weight(shape=(max(self.size, 1), *image_shape), initializer="zeros",
                                      trainable=False, autocast=False, name="images")
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="count")
        self.seed_generator = keras.random.SeedGenerator(seed, name=f"{self.name}_seed")
        self.built = True

    def call(self, images):
        images = ops.stop_gradient(ops.cast(images, self.images.dtype))
        if self.size == 0:
            return images
        n = images.shape[0]
        if n is None:
            raise ValueError("ImagePool needs a static batch size (batch the dataset with drop_remainder=True)")
        pool, count, outputs = ops.convert_to_tensor(self.images), ops.convert_to_tensor(self.count), []
        for i in range(n):
            image = images[i]
            swap_draw = keras.random.uniform((), seed=self.seed_generator)
            random_slot = keras.random.randint((), 0, self.size, seed=self.seed_generator)
            filling = count < self.size
            swap = ops.logical_and(ops.logical_not(filling), swap_draw > 0.5)
            slot = ops.where(filling, count, random_slot)
            old = pool[slot]
            outputs.append(ops.where(swap, old, image))
            pool = tf.tensor_scatter_nd_update(pool, ops.reshape(slot, (1, 1)),
                                               ops.where(ops.logical_or(filling, swap), image, old)[None])
            count = ops.minimum(count + 1, self.size)
        self.images.assign(pool)
        self.count.assign(count)
        return ops.stack(outputs)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "image_shape": tuple(self.images.shape[1:])}


class CycleGAN(LossTracking, keras.Model):
    """Unpaired translation between label maps (A) and photos (B); batches are ``(label_maps, photos)``.

    ``cycle_weight`` is lambda (10); ``identity_weight`` multiplies lambda for the identity term (0.5, so
    5 in all; 0 turns it off). ``res_blocks=None`` picks 9 at 256 px, 6 below.
    """

    def __init__(self, image_size=256, ngf=64, ndf=64, res_blocks=None, cycle_weight=10.0, identity_weight=0.5,
                 pool_size=50, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        self.g_ab = resnet_generator(image_size, ngf=ngf, res_blocks=res_blocks, name="g_ab")  # label map -> photo
        self.g_ba = resnet_generator(image_size, ngf=ngf, res_blocks=res_blocks, name="g_ba")  # photo -> label map
        self.d_a = patch_discriminator(image_size, condition_channels=0, ndf=ndf, name="d_a")  # judges label maps
        self.d_b = patch_discriminator(image_size, condition_channels=0, ndf=ndf, name="d_b")  # judges photos
        shape = (image_size, image_size, 3)
        self.pool_a = ImagePool(pool_size, shape, name="pool_a")  # past fake label maps, for d_a
        self.pool_b = ImagePool(pool_size, shape, name="pool_b")  # past fake photos, for d_b
        self.track_losses(("g_loss", "g_adv_ab", "g_adv_ba", "cycle", "identity", "d_a", "d_b"))
        self.built = True

    @property
    def generators(self):
        return [self.g_ab, self.g_ba]

    @property
    def discriminators(self):
        return [self.d_a, self.d_b]

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """One optimizer for both generators, one for both discriminators (as the reference implementation)."""
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer, self.d_optimizer = build_optimizers([(g_optimizer, self._variables(self.generators)),
                                                               (d_optimizer, self._variables(self.discriminators))])

    def call(self, labels, training=False):
        return self.g_ab(labels, training=training)

    def translating_weights(self):
        """The variables ``translate`` uses, by network (what ``export.py`` saves): G: A -> B (G: B -> A and
        both discriminators are for training only)."""
        return {"g_ab": self.g_ab.weights}

    def translate(self, labels, seed=None):
        """Label maps in [-1, 1] -> photos in [-1, 1] (G: A -> B); deterministic, so ``seed`` changes nothing."""
        return self.g_ab(labels, training=False)

    def loss_terms(self, real_a, real_b, training, use_pool):
        """Every loss term of one batch by name (both generators' least-squares, cycle and identity terms, each
        discriminator's loss on fakes from the image pools when ``use_pool``); updates no weights."""
        fake_b, fake_a = self.g_ab(real_a, training=training), self.g_ba(real_b, training=training)
        cycled_a, cycled_b = self.g_ba(fake_b, training=training), self.g_ab(fake_a, training=training)
        g_adv_ab = generator_loss(self.d_b(fake_b, training=training), "lsgan")
        g_adv_ba = generator_loss(self.d_a(fake_a, training=training), "lsgan")
        cycle = cycle_loss(real_a, cycled_a) + cycle_loss(real_b, cycled_b)
        g_loss = g_adv_ab + g_adv_ba + self.cycle_weight * cycle
        losses = {"g_loss": g_loss, "g_adv_ab": g_adv_ab, "g_adv_ba": g_adv_ba, "cycle": cycle}
        if self.identity_weight:
            identity = (identity_loss(real_a, self.g_ba(real_a, training=training))
                        + identity_loss(real_b, self.g_ab(real_b, training=training)))
            losses["g_loss"] = g_loss + self.identity_weight * self.cycle_weight * identity
        else:
            identity = ops.zeros(())
        losses["identity"] = identity
        if use_pool:
            fake_a, fake_b = self.pool_a(fake_a), self.pool_b(fake_b)
        for name, d, real, fake in (("d_a", self.d_a, real_a, fake_a), ("d_b", self.d_b, real_b, fake_b)):
            fake_logits = d(ops.stop_gradient(fake), training=training)
            losses[name] = 0.5 * discriminator_loss(d(real, training=training), fake_logits, "lsgan")
        return losses

    def train_step(self, data):
        real_a, real_b = data
        with tf.GradientTape(persistent=True) as tape:
            losses = self.loss_terms(real_a, real_b, training=True, use_pool=True)
            d_loss = losses["d_a"] + losses["d_b"]  # disjoint variables: the same as two separate steps
        minimize(tape, self.g_optimizer, losses["g_loss"], self._variables(self.generators))
        minimize(tape, self.d_optimizer, d_loss, self._variables(self.discriminators))
        return self.track(losses)

    @staticmethod
    def _variables(networks):
        return [v for net in networks for v in net.trainable_variables]

    def test_step(self, data):
        real_a, real_b = data
        return self.track(self.loss_terms(real_a, real_b, training=False, use_pool=False))

