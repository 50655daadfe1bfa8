"""Test-time noise from a seed (``models.noise``): every stochastic model's ``translate(labels, seed=S)`` gives the
same output for the same seed whatever the model drew before, another output for another seed, and leaves the
model's own generators (which training and validation draw from) as they were; a model built with ``noise_seed=S``
draws in its first call what ``seed=S`` draws."""

import keras
import numpy as np
import pytest

from models.cgan import CGAN
from models.cvae import CVAE
from models.diffusion import NetworkSettings, SamplerSettings
from models.diffusion.model import DiffusionModel
from models.noise import MAX_SEED, dropout_on, noise_seeds
from models.pix2pix import Pix2Pix
from run_helpers import TINY_FLAGS
from train_scripts.training.config import COMMON_DEFAULTS
from train_scripts.training.inference import build_translator
from train_scripts.training.registry import spec_for

SIZE = 32
STOCHASTIC = ("cvae", "cgan", "pix2pix", "ddim")


def build(name, noise_seed=None):
    """A small ``name`` model with random weights, the same for every build of one name and ``noise_seed``."""
    keras.utils.set_random_seed(0)
    if name == "cvae":
        return CVAE(image_size=SIZE, latent_dim=4, ngf=8, noise_seed=noise_seed)
    if name == "cgan":
        return CGAN(image_size=SIZE, noise_dim=4, ngf=8, ndf=8, noise_seed=noise_seed)
    if name == "pix2pix":
        return Pix2Pix(image_size=SIZE, ngf=8, ndf=8, dropout_at_test=True, noise_seed=noise_seed)
    return DiffusionModel(network=NetworkSettings(image_size=SIZE, widths=(4, 8)),
                          sampling=SamplerSettings(sampling_steps=2, eta=1.0, sample_seed=noise_seed or 0))


@pytest.fixture(scope="module")
def labels():
    return np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")


@pytest.mark.parametrize("name", STOCHASTIC)
def test_the_same_seed_gives_the_same_output_in_any_order_and_another_seed_another(name, labels):
    model = build(name)
    first = model.translate(labels, seed=3).numpy()
    model.translate(labels)  # the model's own noise in between
    other = model.translate(labels, seed=4).numpy()
    np.testing.assert_array_equal(model.translate(labels, seed=3).numpy(), first)
    assert np.abs(other - first).mean() > 1e-4
    # a fresh model with the same weights, which drew nothing before: seed 4 first, then seed 3
    fresh = build(name)
    np.testing.assert_array_equal(fresh.translate(labels, seed=4).numpy(), other)
    np.testing.assert_array_equal(fresh.translate(labels, seed=3).numpy(), first)


@pytest.mark.parametrize("name", ("cvae", "cgan", "pix2pix"))
def test_own_noise_starts_from_the_noise_seed_and_seeded_calls_leave_it_alone(name, labels):
    own = build(name, noise_seed=3)
    first, second = own.translate(labels).numpy(), own.translate(labels).numpy()
    assert np.abs(second - first).mean() > 1e-4  # the own generators go on: a run's batches draw fresh noise
    other = build(name)
    other.set_weights(own.get_weights())
    np.testing.assert_array_equal(other.translate(labels, seed=3).numpy(), first)
    again = build(name, noise_seed=3)
    again.set_weights(own.get_weights())
    np.testing.assert_array_equal(again.translate(labels).numpy(), first)
    again.translate(labels, seed=9)  # a call with its own seed does not advance the model's generators
    np.testing.assert_array_equal(again.translate(labels).numpy(), second)


def test_the_diffusion_models_own_seed_is_its_sample_seed(labels):
    model = build("ddim", noise_seed=5)
    np.testing.assert_array_equal(model.translate(labels).numpy(), model.translate(labels, seed=5).numpy())


def test_noise_seeds_are_fixed_by_the_seed_and_refuse_what_is_not_one():
    assert noise_seeds(None, 3) == [None, None, None]  # Keras' default seeds, as training has them
    seeds = noise_seeds(7, 3)
    assert seeds == noise_seeds(7, 3) and len(set(seeds)) == 3 and all(0 <= s <= MAX_SEED for s in seeds)
    assert noise_seeds(8, 3) != seeds and noise_seeds(7, 1) == seeds[:1]
    assert all(0 <= s <= MAX_SEED for s in noise_seeds(2**40, 3))  # a large seed gives seeds Keras can take
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="a seed of test-time noise must be a non-negative integer"):
            noise_seeds(bad)


def test_a_seeded_dropout_call_leaves_the_networks_generators_and_layers_alone(labels):
    generator = build("pix2pix").generator
    layers_before, states = list(generator.layers), [v.numpy() for v in generator.non_trainable_variables]
    assert len(states) == 3  # the seed states of the three dropout layers

    def own_states_kept():
        return all(np.array_equal(v.numpy(), s) for v, s in zip(generator.non_trainable_variables, states))

    seeded = dropout_on(generator, labels, 1).numpy()
    assert own_states_kept() and generator.layers == layers_before
    np.testing.assert_array_equal(dropout_on(generator, labels, 1).numpy(), seeded)
    dropout_on(generator, labels)  # the network's own dropout generators draw, and go on
    assert not own_states_kept()


# ------------------------------------------------------------------------------------------ the registry's claims

CONFIGS = [(name, overrides) for name in ("cvae", "cgan", "pix2pix", "cyclegan", "ddim", "autoencoder")
           for overrides in ({}, {"sample_at_test": False}, {"dropout_at_test": True})
           if not overrides or next(iter(overrides)) in spec_for(name).arguments]


@pytest.mark.parametrize("name, overrides", CONFIGS, ids=[f"{n}-{'-'.join(o) or 'preset'}" for n, o in CONFIGS])
def test_what_a_spec_declares_is_what_its_translate_does(name, overrides, labels):
    """``seeded(config)``: another seed, another output, else the seed changes nothing; ``noise_seed``: the model
    the loaders build with seed 4 draws first what seed 4 draws; ``sampler_settings``: keywords of translate whose
    defaults are the config's."""
    spec = spec_for(name)
    tiny = {key: spec.arguments[key][0](value) for key, value in TINY_FLAGS.items() if key in spec.arguments}
    no_lpips = {"lpips_weight": 0.0} if "lpips_weight" in spec.arguments else {}  # its weights are not here
    config = {**COMMON_DEFAULTS, **spec.presets["quick"], "image_size": SIZE, **tiny, **no_lpips, **overrides}
    model = build_translator(spec, config, seed=4)
    rng = np.random.default_rng(0)  # weights away from their initial values (an untrained DDIM samples zeros)
    for variables in model.translating_weights().values():
        for v in variables:
            if v.trainable:
                v.assign(v.numpy() + rng.normal(0.0, 0.05, v.shape).astype(v.dtype))
    first = model.translate(labels).numpy()
    one, two = model.translate(labels, seed=1).numpy(), model.translate(labels, seed=2).numpy()
    assert (np.abs(one - two).mean() > 1e-4) == spec.seeded(config)
    np.testing.assert_array_equal(model.translate(labels, seed=4).numpy(), first)
    settings = {key: config[key] for key in spec.sampler_settings}
    assert set(spec.sampler_settings) <= set(spec.inference)
    np.testing.assert_array_equal(model.translate(labels, seed=1, **settings).numpy(), one)
