"""The conditional DDIM in an autoencoder's latent space (latent diffusion, Rombach et al. 2022).

``LatentDiffusionModel`` is ``DiffusionModel`` - the same network, schedules, samplers, EMA, guidance and prediction
types - on the scaled latents of a trained, frozen ``KLAutoencoder``; the condition is the label map area-resized
to the latent size. Its training batches are ``encode_pairs(labels, photos)``, made by the data pipeline (once for
a fixed augmentation set); validation batches of photos are encoded in ``test_step``. ``translate`` takes label maps
at the photo size and returns decoded photos.
"""

import dataclasses

import tensorflow as tf

from models.diffusion.model import DiffusionModel
from models.diffusion.networks import NetworkSettings
from models.diffusion.schedules import DiffusionConfigError


class LatentDiffusionModel(DiffusionModel):
    """``DiffusionModel`` on ``autoencoder``'s latents (``autoencoder.latent_size`` px, ``latent_channels``).

    ``kwargs`` are ``DiffusionModel``'s; a ``NetworkSettings`` network is built at the latents' size and channels,
    a built network must take them. The autoencoder is frozen and is part of the model's weights, so a saved latent
    DDIM holds everything it samples with. Sampled latents are not clipped (they are not in [-1, 1]; the default
    ``SamplerSettings`` does not clip); the decoded photos are.
    """

    def __init__(self, autoencoder, network=None, **kwargs):
        latents = {"image_size": autoencoder.latent_size, "image_channels": autoencoder.latent_channels}
        if network is None or isinstance(network, NetworkSettings):
            network = dataclasses.replace(network or NetworkSettings(), **latents)
        super().__init__(network=network, **kwargs)
        if (self.image_size, self.image_channels) != (latents["image_size"], latents["image_channels"]):
            raise DiffusionConfigError(f"the network diffuses {self.image_size} px with {self.image_channels} "
                                       f"channels, the autoencoder's latents are {latents['image_size']} px with "
                                       f"{latents['image_channels']} channels")
        self.autoencoder = autoencoder
        self.autoencoder.trainable = False
        self.photo_size = autoencoder.image_size

    def translating_weights(self):
        """The EMA network, and the autoencoder's decoder and latent scale that ``decode_samples`` uses (its
        encoder is for training only)."""
        decoding = self.autoencoder.translating_weights()
        return {**super().translating_weights(), "autoencoder_decoder": decoding["decoder"],
                "autoencoder_latent_variance": decoding["latent_variance"]}

    def conditions(self, labels):
        """Label maps at the photo size -> area-resized to the latent size (each latent pixel's mean colour)."""
        return tf.image.resize(labels, (self.image_size, self.image_size), method="area")

    def encode_pairs(self, labels, photos):
        """A batch of (label map, photo) in [-1, 1] -> (condition, scaled latents): what the network trains on."""
        return self.conditions(tf.convert_to_tensor(labels, tf.float32)), self.autoencoder.encode(photos)

    def decode_samples(self, samples):
        """Sampled latents -> photos in [-1, 1] through the autoencoder's decoder."""
        return self.autoencoder.decode(samples)

    def test_step(self, data):
        """``DiffusionModel.test_step`` on the encoded validation pairs."""
        return super().test_step(self.encode_pairs(*data))
