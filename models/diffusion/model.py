"""The DDIM / DDPM model (study section 3.6, Tables 4-6), after the keras.io DDIM example.

``DiffusionModel`` is made of three parts, as diffusers separates a UNet from its scheduler: a noise network
(``NetworkSettings`` or a built ``keras.Model``), a noise schedule (``models.diffusion.schedules``) and the sampler's
settings (``SamplerSettings``). It trains the network with the noise loss of eq. (8) (the image loss, the L1 error of
the x_0 estimate of eq. (11), is tracked as in the study's Fig. 7 but not trained on) and keeps an exponential moving
average of the network's weights in a second copy, ``ema_network``, as keras.io does. The EMA copy is an attribute
of the model, so it is part of ``model.weights.h5`` and of the resume backup; it averages *all* weights, batch-norm
statistics included (Keras optimizers' own ``use_ema`` covers only trainable variables and swaps the average into
the model at the end of ``fit``).

Conditional mode (a network with a label input; the study's DDIM was unconditional and failed): the label map is
concatenated to the network input (and with ``condition_every_level``, pooled, to the input of every level of the
study U-Net). With ``condition_dropout = p`` a fraction p of the training label maps is replaced by the "null" label
map (all zeros, mid-grey, which no real label map is), so that the same network also predicts the unconditional
noise and classifier-free guidance (Ho & Salimans 2022) can sample with eps = (1 + w) eps(x, label) - w eps(x, null).

``prediction="velocity"`` makes the network predict v = s eps - n x_0 (Salimans & Ho 2022) instead of eps: its
loss is eq. (8) weighted by 1 / s^2, and its x_0 estimates are not amplified by n / s (= 50 at the study's
t = 1). ``prediction="image"`` predicts x_0 itself, trained on its squared error with the same weight at every
noise level. Samplers still receive eps. Why the quick preset predicts x_0: results/README.md, "Design notes".

``translate(labels)`` samples photos for a batch of label maps with the EMA weights, the configured sampler
(DDIM with ``eta``, or DDPM ancestral), step count and guidance, from a fixed seed: the same labels give the
same photos. Unconditional models ignore the labels and sample as many photos.
"""

import keras
import numpy as np
import tensorflow as tf

from losses import l1_loss, l2_loss, noise_loss
from models.diffusion.networks import NetworkSettings
from models.diffusion.predictions import (
    LOSS_WEIGHTINGS,
    PREDICTIONS,
    noise_from_prediction,
    prediction_target,
    snr_loss_weight,
)
from models.diffusion.samplers import SamplerSettings, check_sampling, ddim_sample, ddpm_sample
from models.diffusion.schedules import CosineAngleSchedule, DiffusionConfigError, add_noise, images_from_noise
from models.training import LossTracking, build_optimizers, minimize


class DiffusionModel(LossTracking, keras.Model):
    """DDIM (study Tables 4-6) with EMA weights for sampling, optionally conditioned on the label map.

    Args:
        network: the noise network: a ``NetworkSettings`` to build (default: Table 4's U-Net at 64 px, conditional)
            or a built ``keras.Model`` of ``[noisy_images, noise_variances(, labels)]``. Its inputs say the size and
            channels of what is diffused, and whether the model is conditional (a label input).
        schedule: the noise schedule (``models.diffusion.schedules``; default the study's cosine-angle schedule with
            Table 6's signal rates 0.95 and 0.02).
        sampling: ``SamplerSettings``: sampler (``ddim`` with eta, or ``ddpm``), steps, guidance weight w (0 = plain
            conditional sampling), clipping of the x_0 estimates, seed.
        prediction: ``noise`` (eps, eq. 8, the study), ``velocity`` (v, trained on the v error) or ``image`` (x_0).
        loss_weighting, min_snr_gamma: ``none``, ``min-snr`` or ``clipped-snr`` (per-time weights, see
            ``models.diffusion.predictions.snr_loss_weight``).
        ema, ema_warmup: EMA decay of the sampling weights (keras.io: 0.999); with ``ema_warmup`` update k uses
            ``min(ema, (1 + k) / (10 + k))`` (``tf.train.ExponentialMovingAverage``'s ``num_updates`` rule), so a
            short run does not keep its random initial weights in the average.
        condition_dropout: fraction of training label maps replaced by the null label (classifier-free guidance).
        seed: seed of the training randomness (noise, times, condition dropout).

    Two hooks let a subclass diffuse something else than photos (``LatentDiffusionModel``): ``conditions(labels)``
    turns label maps into the network's condition, ``decode_samples(x)`` turns samples into photos.
    """

    def __init__(self, network=None, schedule=None, sampling=None, prediction="noise", loss_weighting="none",
                 min_snr_gamma=5.0, ema=0.999, ema_warmup=False, condition_dropout=0.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.schedule = CosineAngleSchedule() if schedule is None else schedule
        self.sampling = SamplerSettings() if sampling is None else sampling
        self.prediction, self.loss_weighting, self.min_snr_gamma = prediction, loss_weighting, float(min_snr_gamma)
        self.ema, self.ema_warmup = float(ema), bool(ema_warmup)
        self.condition_dropout = float(condition_dropout)
        network = NetworkSettings() if network is None else network
        if not isinstance(network, (NetworkSettings, keras.Model)):
            raise DiffusionConfigError(f"the network must be a NetworkSettings or a keras.Model, got {network!r}")
        self.network = network.build() if isinstance(network, NetworkSettings) else network
        images = self.network.inputs[0].shape  # (batch, size, size, channels)
        self.image_size, self.image_channels = int(images[1]), int(images[-1])
        self.conditional = len(self.network.inputs) > 2
        self._check_settings()
        self.ema_network = keras.models.clone_model(self.network)
        self.ema_network.set_weights(self.network.get_weights())
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.validation_seed = int(seed) + 1
        self.validation_seed_generator = keras.random.SeedGenerator(self.validation_seed)
        names = ("noise_loss", "image_loss") + (("velocity_loss",) if prediction == "velocity" else ())
        if self.trained_loss_name not in names:
            names += (self.trained_loss_name,)
        self.track_losses(names)
        self._samplers = {}
        self.built = True  # the networks are built functional models

    # the sampler's settings, as translate() and the samplers read them
    sampler = property(lambda self: self.sampling.sampler)
    sampling_steps = property(lambda self: self.sampling.sampling_steps)
    eta = property(lambda self: self.sampling.eta)
    guidance = property(lambda self: self.sampling.guidance)
    clip_denoised = property(lambda self: self.sampling.clip_denoised)
    sample_seed = property(lambda self: self.sampling.sample_seed)

    @property
    def trained_loss_name(self):
        """The tracked loss the optimizer minimises: eq. 8's ``noise_loss`` (the study), the unweighted v error
        ``velocity_loss``, or ``weighted_loss`` (a min-SNR or clipped-SNR weighting, or the x_0 error of
        ``prediction="image"``)."""
        if self.loss_weighting == "none" and self.prediction != "image":
            return "velocity_loss" if self.prediction == "velocity" else "noise_loss"
        return "weighted_loss"

    def _check_settings(self):
        if self.prediction not in PREDICTIONS:
            raise DiffusionConfigError(
                f"unknown prediction {self.prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise DiffusionConfigError(f"unknown loss weighting {self.loss_weighting!r}; choose one of "
                                       f"{', '.join(LOSS_WEIGHTINGS)}")
        if not self.min_snr_gamma > 0:
            raise DiffusionConfigError(f"the min-SNR gamma must be > 0, got {self.min_snr_gamma}")
        if not 0.0 <= self.ema < 1.0:
            raise DiffusionConfigError(f"EMA decay must be in [0, 1), got {self.ema}")
        if not 0.0 <= self.condition_dropout < 1.0:
            raise DiffusionConfigError(f"condition dropout must be in [0, 1), got {self.condition_dropout}")
        if not self.conditional and (self.condition_dropout or self.guidance):
            raise DiffusionConfigError("condition dropout and guidance need a conditional model (--conditional)")
        self._check_sampling(self.sampler, self.sampling_steps, self.eta, self.guidance)

    def _check_sampling(self, sampler, steps, eta, guidance):
        check_sampling(sampler, steps, eta, guidance)
        if guidance and not self.condition_dropout:
            raise DiffusionConfigError("guidance needs a model trained with condition dropout "
                                       "(--condition-dropout p > 0): without it the unconditional prediction "
                                       "it extrapolates from is never learned")

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)  # the network's optimizer is our own attribute
        (self.network_optimizer,) = build_optimizers([(optimizer, self.network.trainable_variables)])

    def call(self, inputs, training=False):
        """The training network's noise prediction for ``[noisy_images, noise_variances(, labels)]``."""
        return self.network(inputs, training=training)

    # ------------------------------------------------------------------------------------------ training
    def drop_conditions(self, labels, seed=None):
        """Replace each label map by the null label (zeros) with probability ``condition_dropout``."""
        if not self.condition_dropout:
            return labels
        batch = tf.shape(labels)[0]
        keep = keras.random.uniform((batch, 1, 1, 1), seed=seed or self.seed_generator) >= self.condition_dropout
        return tf.where(keep, labels, tf.zeros_like(labels))

    def _network_inputs(self, noisy_images, noise_variances, labels):
        return [noisy_images, noise_variances, labels] if self.conditional else [noisy_images, noise_variances]

    def loss_terms(self, labels, photos, network, seed, training):
        """The losses at random times and noises (Ho et al. 2020, Algorithm 1), by name: the study's noise loss
        (eq. 8), its image loss (L1 of the eq. 11 estimate, Fig. 7), and the variants of eq. 8 that another
        prediction or a weighting trains instead (``trained_loss_name``)."""
        noises = keras.random.normal(tf.shape(photos), seed=seed)
        times = self.schedule.sample_training_times((tf.shape(photos)[0], 1, 1, 1), seed=seed)
        signal_rates, noise_rates = self.schedule.signal_and_noise_rates(times)
        noisy_images = add_noise(photos, noises, signal_rates, noise_rates)  # eq. 9
        if self.conditional and training:
            labels = self.drop_conditions(labels, seed)
        outputs = network(self._network_inputs(noisy_images, tf.square(noise_rates), labels), training=training)
        predicted_noises = noise_from_prediction(self.prediction, outputs, noisy_images, noise_rates)
        predicted_images = images_from_noise(noisy_images, predicted_noises, signal_rates, noise_rates)  # eq. 11
        losses = {"noise_loss": noise_loss(noises, predicted_noises),  # eq. 8: mean((eps - eps_theta)^2)
                  "image_loss": l1_loss(photos, predicted_images)}
        if self.prediction == "velocity":  # Salimans & Ho 2022: mean((v - v_theta)^2), eq. 8 weighted by 1 / s^2
            losses["velocity_loss"] = l2_loss(prediction_target("velocity", noises, photos, signal_rates,
                                                                noise_rates), outputs)
        if self.trained_loss_name == "weighted_loss":  # x_0 prediction, or min-SNR / clipped-SNR weights
            losses["weighted_loss"] = self.weighted_loss(outputs, noises, photos, signal_rates, noise_rates)
        return losses

    def weighted_loss(self, outputs, noises, photos, signal_rates, noise_rates):
        """Each image's mean squared error of what the network predicts, weighted by its time: weight 1 for x_0
        prediction without a weighting; min(SNR, gamma) (min-SNR, Hang et al. 2023) or clip(SNR, 1, gamma) on the x_0
        error, converted to the error of what is predicted (``snr_loss_weight``); then the mean over the batch."""
        target = prediction_target(self.prediction, noises, photos, signal_rates, noise_rates)
        errors = tf.reduce_mean(tf.square(target - outputs), axis=[1, 2, 3])
        weights = snr_loss_weight(self.loss_weighting, self.prediction, signal_rates, noise_rates, self.min_snr_gamma)
        return tf.reduce_mean(weights[:, 0, 0, 0] * errors)

    def train_step(self, data):
        """Ho et al. 2020, Algorithm 1: noise the photos at random times, x_t = s x_0 + n eps (eq. 9), and step on
        the study's eq. 8, mean((eps - eps_theta(x_t, t, label))^2) (or on the variant configured:
        ``trained_loss_name``); then update the EMA weights."""
        labels, photos = data
        with tf.GradientTape() as tape:
            losses = self.loss_terms(labels, photos, self.network, self.seed_generator, training=True)
        loss = losses[self.trained_loss_name]
        minimize(tape, self.network_optimizer, loss, self.network.trainable_variables)
        self.update_ema()
        return self.track(losses)

    def test_step(self, data):
        """The same losses for the EMA network (the one that samples), on reproducible noise."""
        labels, photos = data
        return self.track(self.loss_terms(labels, photos, self.ema_network, self.validation_seed_generator,
                                            training=False))

    def evaluate(self, *args, **kwargs):
        """Every validation pass draws the same noises and times, so its losses are comparable over training."""
        self.validation_seed_generator.state.assign(
            np.asarray([self.validation_seed, 0], dtype=self.validation_seed_generator.state.dtype))
        return super().evaluate(*args, **kwargs)

    def ema_decay(self):
        """This update's decay: ``ema``, or with warm-up ``min(ema, (1 + k) / (10 + k))`` at update k = 1, 2, ..."""
        if not self.ema_warmup:
            return tf.constant(self.ema, tf.float32)
        k = tf.cast(self.network_optimizer.iterations, tf.float32)
        return tf.minimum(self.ema, (1.0 + k) / (10.0 + k))

    def update_ema(self):
        """ema_w <- d * ema_w + (1 - d) * w for every weight of the network (batch-norm statistics included)."""
        decay = self.ema_decay()
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
            ema_weight.assign(decay * ema_weight + (1.0 - decay) * weight)

    # ------------------------------------------------------------------------------------------ sampling
    def translating_weights(self):
        """The variables ``translate`` uses, by network (what ``export.py`` saves): the EMA network the samplers
        call (the trained network is for training only)."""
        return {"ema_network": self.ema_network.weights}

    def translate(self, labels, seed=None, sampler=None, sampling_steps=None, eta=None, guidance=None):
        """Label maps in [-1, 1] -> photos in [-1, 1], sampled with the EMA weights from a fixed seed.

        ``seed`` (default ``sample_seed``) and the sampler settings ``sampler``, ``sampling_steps``, ``eta`` and
        ``guidance`` override the configured values for this call. An unconditional model ignores the labels'
        content and samples ``len(labels)`` photos.
        """
        settings = (self.sampler if sampler is None else sampler,
                    self.sampling_steps if sampling_steps is None else int(sampling_steps),
                    self.eta if eta is None else float(eta),
                    self.guidance if guidance is None else float(guidance))
        self._check_sampling(*settings)
        if settings not in self._samplers:
            self._samplers[settings] = tf.function(self._sampling_function(*settings), reduce_retracing=True)
        seed = self.sample_seed if seed is None else int(seed)
        conditions = self.conditions(tf.convert_to_tensor(labels, tf.float32))
        return self._samplers[settings](conditions, tf.constant(seed, tf.int32))

    def conditions(self, labels):
        """Label maps in [-1, 1] -> the network's condition input (here: the label maps themselves)."""
        return labels

    def decode_samples(self, samples):
        """Samples of the reverse process -> photos in [-1, 1] (here: the samples, clipped)."""
        return tf.clip_by_value(samples, -1.0, 1.0)

    def predict_noise_fn(self, labels, guidance=0.0):
        """``predict_noise(x, v)`` for the samplers: the EMA network, conditioned and guided as configured."""
        def network_noise(noisy_images, noise_variances, conditions):
            outputs = self.ema_network(self._network_inputs(noisy_images, noise_variances, conditions), training=False)
            return noise_from_prediction(self.prediction, outputs, noisy_images, tf.sqrt(noise_variances))

        def predict_noise(noisy_images, noise_variances):
            if not (self.conditional and guidance):
                return network_noise(noisy_images, noise_variances, labels)
            both = network_noise(tf.concat([noisy_images, noisy_images], 0), tf.concat([noise_variances] * 2, 0),
                                 tf.concat([labels, tf.zeros_like(labels)], 0))
            conditional, unconditional = tf.split(both, 2, axis=0)
            return (1.0 + guidance) * conditional - guidance * unconditional
        return predict_noise

    def _sampling_function(self, sampler, steps, eta, guidance):
        def sample(labels, seed):
            shape = tf.concat([tf.shape(labels)[:3], [self.image_channels]], axis=0)
            initial_noise = tf.random.stateless_normal(shape, seed=tf.stack([seed, -1]))
            predict_noise = self.predict_noise_fn(labels, guidance)
            if sampler == "ddim":
                images = ddim_sample(predict_noise, initial_noise, self.schedule, steps=steps, eta=eta, seed=seed,
                                     clip_images=self.clip_denoised)
            else:
                images = ddpm_sample(predict_noise, initial_noise, self.schedule, steps=steps, seed=seed,
                                     clip_images=self.clip_denoised)
            return self.decode_samples(images)
        return sample
