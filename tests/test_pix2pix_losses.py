"""Pix2Pix's objective (study eq. 2, pix2pix paper eq. 4) by hand: G minimises adv + lambda * L1 with lambda = 100,
D minimises its adversarial loss halved, as the paper's reference code does; the paper preset trains exactly that."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from train_scripts.training.models import pix2pix


def softplus(x):
    return np.logaddexp(0.0, x)


def paper_model(**changes):
    """The paper preset's model, at 32 px and width 8 so the test is fast; every loss setting is the preset's."""
    config = {**pix2pix.SPEC.presets["paper"], "image_size": 32, "ngf": 8, "ndf": 8, **changes}
    keras.utils.set_random_seed(7)
    return pix2pix.build(config)


def tiny_batch(n=2, size=32):
    rng = np.random.default_rng(0)
    return tuple(rng.uniform(-1, 1, (n, size, size, 3)).astype("float32") for _ in range(2))


def test_paper_preset_is_table3():
    paper = pix2pix.SPEC.presets["paper"]
    assert (paper["l1_weight"], paper["gan_loss"], paper["lr"], paper["beta_1"], paper["beta_2"]) == \
        (100.0, "bce", 2e-4, 0.5, 0.999)
    assert (paper["batch_size"], paper["steps"], paper["image_size"], paper["expand"]) == (1, 80000, 256, 6)


@pytest.mark.parametrize("gan_loss", ["bce", "lsgan"])
def test_loss_terms_by_hand(gan_loss):
    model = paper_model(gan_loss=gan_loss)
    label, photo = tiny_batch()
    got = model.evaluate(tf.data.Dataset.from_tensors((label, photo)), verbose=0, return_dict=True)

    fake = model.generator(label, training=False).numpy()  # evaluation: dropout off, as in test_step
    real_logits = np.asarray(model.discriminator([label, photo], training=False), np.float64)
    fake_logits = np.asarray(model.discriminator([label, fake], training=False), np.float64)
    assert real_logits.shape == (2, 2, 2, 1)
    if gan_loss == "bce":  # -log sigmoid(real) - log(1 - sigmoid(fake)); G: -log sigmoid(fake)
        d_adv = softplus(-real_logits).mean() + softplus(fake_logits).mean()
        g_gan = softplus(-fake_logits).mean()
    else:  # least squares
        d_adv = ((real_logits - 1) ** 2).mean() + (fake_logits ** 2).mean()
        g_gan = ((fake_logits - 1) ** 2).mean()
    g_l1 = np.abs(photo.astype(np.float64) - fake).mean()
    np.testing.assert_allclose(got["g_gan"], g_gan, rtol=1e-5)
    np.testing.assert_allclose(got["g_l1"], g_l1, rtol=1e-5)
    np.testing.assert_allclose(got["g_loss"], g_gan + 100.0 * g_l1, rtol=1e-5)
    np.testing.assert_allclose(got["d_loss"], 0.5 * d_adv, rtol=1e-5)
    assert g_l1 > 0.1 and 100.0 * g_l1 > 10 * g_gan  # the L1 term dominates G's loss at lambda 100


def test_each_network_descends_its_own_loss():
    """One step with plain SGD moves G along -grad(adv + 100 L1) and D along -grad(adv / 2), on the same fakes."""
    model = paper_model()
    label, photo = tiny_batch()
    lr = 0.5
    model.compile(g_optimizer=keras.optimizers.SGD(lr), d_optimizer=keras.optimizers.SGD(lr), run_eagerly=True)
    g_vars, d_vars = model.generator.trainable_variables, model.discriminator.trainable_variables
    g_before, d_before = [v.numpy().copy() for v in g_vars], [v.numpy().copy() for v in d_vars]
    # every variable, the dropout layers' seed states among them: the hand computation replays the step's masks
    state = [(v, v.numpy().copy()) for v in model.generator.variables + model.discriminator.variables]

    model.train_step((tf.constant(label), tf.constant(photo)))
    g_after, d_after = [v.numpy().copy() for v in g_vars], [v.numpy().copy() for v in d_vars]

    for v, value in state:
        v.assign(value)
    label, photo = tf.constant(label), tf.constant(photo)
    with tf.GradientTape(persistent=True) as tape:
        fake = model.generator(label, training=True)
        real_logits = model.discriminator([label, photo], training=True)
        fake_logits = model.discriminator([label, fake], training=True)
        g_loss = tf.reduce_mean(tf.nn.softplus(-fake_logits)) + 100.0 * tf.reduce_mean(tf.abs(photo - fake))
        d_loss = 0.5 * (tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits)))
    for variables, before, after, loss in ((g_vars, g_before, g_after, g_loss), (d_vars, d_before, d_after, d_loss)):
        grads = tape.gradient(loss, variables)
        for w, a, g in zip(before, after, grads):
            np.testing.assert_allclose(a, w - lr * g.numpy(), rtol=1e-4, atol=1e-6)
        assert any(not np.array_equal(w, a) for w, a in zip(before, after))
