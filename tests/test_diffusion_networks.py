"""Diffusion noise-prediction networks: the study's Table 4 U-Net and the attention U-Net (DDPM's, Ho et al. 2020)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from data.errors import I2IError
from models.diffusion import SinusoidalEmbedding, attention_unet, get_network, study_unet


def inputs_for(model, batch=2, seed=0):
    """Random inputs matching the model's inputs (noise variances in (0, 1))."""
    rng = np.random.default_rng(seed)
    values = []
    for tensor in model.inputs:
        shape = (batch, *tensor.shape[1:])
        is_variance = tensor.name == "noise_variances"
        values.append(rng.uniform(0.01, 0.99, shape) if is_variance else rng.normal(size=shape))
    return [v.astype("float32") for v in values]


def randomize_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape))
        else:
            weight.assign(rng.normal(0.0, 0.05, weight.shape))


def output_shape(model, layer_name):
    return tuple(model.get_layer(layer_name).output.shape[1:])


@pytest.fixture(scope="module")
def table4_unet():
    return study_unet(image_size=64)


def test_study_unet_blocks_have_the_output_shapes_of_table4(table4_unet):
    rows = [  # (Table 4 row, layer name, output shape at 64 px)
        ("1-1", "noisy_images", (64, 64, 3)),
        ("1-1-2 C32k1", "input_conv", (64, 64, 32)),
        ("1-2", "noise_variances", (1, 1, 1)),
        ("1-2-1 sinusoidal embedding", "noise_embedding", (1, 1, 32)),
        ("1-2-2 nearest up-sampling", "embedding_upsample", (64, 64, 32)),
        ("2 concat", "input_concat", (64, 64, 64)),
        ("3 D64", "down1", (32, 32, 64)),
        ("4 D128", "down2", (16, 16, 128)),
        ("5 D256", "down3", (8, 8, 256)),
        ("6 D256", "down4", (4, 4, 256)),
        ("7 R512", "bottleneck_res1", (4, 4, 512)),
        ("8 R512", "bottleneck_res2", (4, 4, 512)),
        ("9 U256", "up1_res2", (8, 8, 256)),
        ("10 U256", "up2_res2", (16, 16, 256)),
        ("11 U128", "up3_res2", (32, 32, 128)),
        # Table 4 prints (64, 64, 3) for row 12, a typo: U64's residual blocks output 64 channels and
        # the 3 channels come from row 13's C3k1.
        ("12 U64", "up4_res2", (64, 64, 64)),
        ("13 C3k1", "output_conv", (64, 64, 3)),
    ]
    for row, name, shape in rows:
        assert output_shape(table4_unet, name) == shape, f"Table 4 row {row}"
    # block U: bilinear 2x up-sampling, then a concat with one kept skip before each residual block
    assert table4_unet.get_layer("up1_upsample").interpolation == "bilinear"
    assert output_shape(table4_unet, "up1_concat1") == (8, 8, 512 + 256)
    assert output_shape(table4_unet, "up4_concat2") == (64, 64, 64 + 64)
    assert table4_unet.get_layer("embedding_upsample").interpolation == "nearest"


def residual_block_weights(c_in, n):
    """Block R: two 3x3 convs (kernels + biases), a 1x1 skip conv when widths differ; the batch norm has
    no centre/scale, only its moving mean and variance (2 * c_in, not trainable)."""
    trainable = (9 * c_in * n + n) + (9 * n * n + n) + ((c_in * n + n) if c_in != n else 0)
    return trainable, 2 * c_in


def test_study_unet_parameter_count_equals_a_hand_count_of_table4(table4_unet):
    residual_blocks = [
        (64, 64), (64, 64),  # D64 (input: 32 conv + 32 embedding channels)
        (64, 128), (128, 128),  # D128
        (128, 256), (256, 256),  # D256
        (256, 256), (256, 256),  # D256
        (256, 512), (512, 512),  # R512 R512
        (512 + 256, 256), (256 + 256, 256),  # U256: up-sampled 512 + skip 256, then 256 + skip 256
        (256 + 256, 256), (256 + 256, 256),  # U256
        (256 + 128, 128), (128 + 128, 128),  # U128
        (128 + 64, 64), (64 + 64, 64),  # U64
    ]
    trainable = (3 * 32 + 32) + (64 * 3 + 3)  # C32k1 on the noisy image, C3k1 at the output
    non_trainable = 0
    for c_in, n in residual_blocks:
        t, nt = residual_block_weights(c_in, n)
        trainable += t
        non_trainable += nt
    assert trainable == 23_177_283 and non_trainable == 10_496
    assert sum(int(np.prod(w.shape)) for w in table4_unet.trainable_weights) == trainable
    assert sum(int(np.prod(w.shape)) for w in table4_unet.non_trainable_weights) == non_trainable
    conditional = study_unet(image_size=64, condition_channels=3)
    assert conditional.count_params() == trainable + non_trainable + 3 * 32, "3 more input channels"


def test_untrained_study_unet_predicts_exactly_zero_noise(table4_unet):
    kernel, bias = table4_unet.get_layer("output_conv").get_weights()
    assert not kernel.any() and not bias.any()
    prediction = table4_unet(inputs_for(table4_unet, batch=1), training=False)
    assert prediction.shape == (1, 64, 64, 3)
    assert not np.any(prediction.numpy()), "a zero-initialised last layer outputs exactly 0"


@pytest.mark.parametrize("image_size", [32, 128])
@pytest.mark.parametrize("condition_channels", [0, 3])
def test_study_unet_builds_at_other_sizes_with_tiny_widths(image_size, condition_channels):
    model = study_unet(image_size, condition_channels, input_width=4, down_widths=(4, 8, 8, 8),
                       bottleneck_width=16, block_depth=1)
    names = ["noisy_images", "noise_variances", "condition_images"]
    assert [t.name for t in model.inputs] == names[:3 if condition_channels else 2]
    assert output_shape(model, "down4") == (image_size // 16, image_size // 16, 8)
    assert output_shape(model, "embedding_upsample") == (image_size, image_size, 32)
    randomize_weights(model)
    out = model(inputs_for(model, batch=2), training=True)
    assert out.shape == (2, image_size, image_size, 3) and np.all(np.isfinite(out))


def test_sinusoidal_embedding_is_eq12_13():
    variances = np.array([0.0, 0.013, 0.5, 1.0], "float32").reshape(4, 1, 1, 1)
    embedding = SinusoidalEmbedding()(variances).numpy().reshape(4, 32)
    a = np.arange(16) * 0.2  # eq. (12): 0, 0.2, ..., 3
    assert a[-1] == pytest.approx(3.0)
    angles = 2 * math.pi * np.exp(a) * variances.reshape(4, 1)
    np.testing.assert_allclose(embedding, np.concatenate([np.sin(angles), np.cos(angles)], 1), atol=2e-5)


def test_conditional_networks_use_the_condition_and_the_noise_variance():
    for model in (study_unet(32, 3, input_width=4, down_widths=(4, 8), bottleneck_width=8, block_depth=1),
                  attention_unet(32, 3, widths=(8, 16), block_depth=1, norm_groups=4)):
        randomize_weights(model)
        noisy, variances, condition = (tf.constant(x) for x in inputs_for(model, batch=2))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([variances, condition])
            prediction = model([noisy, variances, condition])
        for name, tensor in (("condition", condition), ("noise variance", variances)):
            gradient = tape.gradient(prediction, tensor).numpy()
            assert np.all(np.any(gradient != 0, axis=(1, 2, 3))), f"{model.name} ignores the {name}"


def test_condition_every_level_feeds_the_pooled_label_map_to_every_block():
    """Off (Table 4) the label enters only the input conv; on, it is concatenated, pooled, before every level."""
    table4 = study_unet(32, 3, input_width=4, down_widths=(4, 8), bottleneck_width=8, block_depth=1)
    assert [layer.name for layer in table4.layers if "condition" in layer.name] == ["condition_images",
                                                                                    "condition_concat"]
    model = study_unet(32, 3, input_width=4, down_widths=(4, 8), bottleneck_width=8, block_depth=1,
                       condition_every_level=True)
    expected = {"down1_condition_concat": (32, 32, 4 + 32 + 3), "down2_condition_concat": (16, 16, 4 + 3),
                "bottleneck_condition_concat": (8, 8, 8 + 3), "up1_condition_concat": (16, 16, 8 + 3),
                "up2_condition_concat": (32, 32, 8 + 3)}
    for name, shape in expected.items():
        assert output_shape(model, name) == shape, name
    assert model.get_layer("condition_pool2").pool_size == (4, 4)
    randomize_weights(model)
    input_conv = model.get_layer("input_conv")
    kernel, bias = input_conv.get_weights()
    kernel[:, :, 3:, :] = 0.0  # cut the Table 4 path: the label can only arrive through the other levels
    input_conv.set_weights([kernel, bias])
    noisy, variances, condition = (tf.constant(x) for x in inputs_for(model, batch=2))
    with tf.GradientTape() as tape:
        tape.watch(condition)
        prediction = model([noisy, variances, condition])
    assert np.all(np.any(tape.gradient(prediction, condition).numpy() != 0, axis=(1, 2, 3)))
    with pytest.raises(I2IError, match="only for the study network"):
        from models.diffusion.networks import build_network
        build_network("attention", 32, (8, 16), condition_channels=3, condition_every_level=True)


@pytest.mark.parametrize("image_size", [32, 64])
def test_attention_unet_attends_at_16x16_and_outputs_the_input_shape(image_size):
    model = attention_unet(image_size, widths=(8, 16, 32), block_depth=1, norm_groups=4)
    attention = [layer for layer in model.layers if isinstance(layer, keras.layers.MultiHeadAttention)]
    assert attention, "the network has self-attention"
    for layer in attention:
        block = model.get_layer(layer.name.removesuffix("_mha"))
        assert tuple(block.output.shape[1:3]) == (16, 16), layer.name
    # 16x16 is level 2 (of 3) at 64 px, where the middle block also sits; level 1 at 32 px
    expected = 3 if image_size == 64 else 2
    assert len(attention) == expected
    randomize_weights(model)
    inputs = inputs_for(model, batch=2)
    out = model(inputs, training=True)
    assert out.shape == inputs[0].shape and np.all(np.isfinite(out))

    with_bottleneck = attention_unet(32, widths=(8, 16, 32), block_depth=1, norm_groups=4,
                                     bottleneck_attention=True)
    assert tuple(with_bottleneck.get_layer("middle_res1_attention").output.shape[1:3]) == (8, 8)


def test_untrained_attention_unet_predicts_exactly_zero_noise():
    model = attention_unet(32, 3, widths=(8, 16, 32), block_depth=1, norm_groups=4)
    assert not np.any(model(inputs_for(model, batch=2)).numpy())


def test_networks_save_and_load_with_the_same_predictions(tmp_path):
    for model in (study_unet(32, 3, input_width=4, down_widths=(4, 8), bottleneck_width=8, block_depth=1),
                  attention_unet(32, 0, widths=(8, 16), block_depth=1, norm_groups=4)):
        randomize_weights(model, seed=1)
        inputs = inputs_for(model)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)


@pytest.mark.slow
def test_networks_learn_to_predict_the_noise_of_one_batch():
    """Adam steps on eq. (8)'s noise loss for one batch of noised flat-colour images lower it."""
    rng = np.random.default_rng(2)
    images = np.broadcast_to(rng.uniform(-1, 1, (4, 1, 1, 3)), (4, 16, 16, 3)).astype("float32")
    noise = rng.normal(size=(4, 16, 16, 3)).astype("float32")
    variances = np.array([0.1, 0.3, 0.6, 0.9], "float32").reshape(4, 1, 1, 1)
    noisy = np.sqrt(1 - variances) * images + np.sqrt(variances) * noise
    for model in (study_unet(16, 3, input_width=8, down_widths=(8, 16), bottleneck_width=16, block_depth=1),
                  attention_unet(16, 3, widths=(8, 16), block_depth=1, norm_groups=4,
                                 attention_resolutions=(8,))):
        optimizer = keras.optimizers.Adam(2e-3)
        optimizer.build(model.trainable_weights)  # slots made outside tf.function: one trace, not two

        @tf.function
        def train_step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(noise - model([noisy, variances, images], training=True)))
            gradients = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(gradients, model.trainable_weights))
            return loss

        losses = [float(train_step()) for _ in range(40)]
        assert losses[-1] < 0.6 * losses[0], f"{model.name}: {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_bad_network_settings_raise_clear_errors():
    with pytest.raises(I2IError, match="image size 40 must be a positive multiple of 16"):
        study_unet(40)
    with pytest.raises(I2IError, match="not divisible by norm_groups"):
        attention_unet(32, widths=(8, 20), norm_groups=8)
    with pytest.raises(I2IError, match="condition_channels"):
        study_unet(32, condition_channels=-1)
    with pytest.raises(I2IError, match="unknown diffusion network 'vit'.*study, attention"):
        get_network("vit")
    assert get_network("study", image_size=32, condition_channels=3, down_widths=(4, 8), input_width=4,
                       bottleneck_width=8).name == "study_unet"
