"""Pix2Pix networks against study Table 1 (layer output shapes, 30x30 PatchGAN) and hand parameter counts."""

import pytest

from models.discriminators import patch_discriminator
from models.pix2pix import Pix2Pix, unet_generator

# Table 1, generator rows 2-19: (layer, output shape at 256 px). Rows 11-18 are the shapes after the concat.
TABLE1_GENERATOR = [
    ("down1_lrelu", (128, 128, 64)), ("down2_lrelu", (64, 64, 128)), ("down3_lrelu", (32, 32, 256)),
    ("down4_lrelu", (16, 16, 512)), ("down5_lrelu", (8, 8, 512)), ("down6_lrelu", (4, 4, 512)),
    ("down7_lrelu", (2, 2, 512)), ("down8_lrelu", (1, 1, 512)), ("down9_lrelu", (1, 1, 512)),
    ("skip1", (1, 1, 1024)), ("skip2", (2, 2, 1536)), ("skip3", (4, 4, 1536)), ("skip4", (8, 8, 1536)),
    ("skip5", (16, 16, 1536)), ("skip6", (32, 32, 768)), ("skip7", (64, 64, 384)), ("skip8", (128, 128, 192)),
    ("out_tanh", (256, 256, 3)),
]
# Table 1, discriminator rows 1-1 to 9.
TABLE1_DISCRIMINATOR = [
    ("condition", (256, 256, 3)), ("image", (256, 256, 3)), ("concat", (256, 256, 6)), ("c64_lrelu", (128, 128, 64)),
    ("c128_lrelu", (64, 64, 128)), ("c256_lrelu", (32, 32, 256)), ("pad1", (34, 34, 256)),
    ("c512s1_lrelu", (31, 31, 512)), ("pad2", (33, 33, 512)), ("logits", (30, 30, 1)),
]


def conv(k, cin, cout, bias):
    return k * k * cin * cout + (cout if bias else 0)


def norm(c):
    return 2 * c  # instance norm: scale and offset per channel


def test_generator_layers_match_table1():
    g = unet_generator(256, kind="study")
    for name, shape in TABLE1_GENERATOR:
        assert tuple(g.get_layer(name).output.shape[1:]) == shape, name


def test_generator_dropout_in_first_three_decoder_blocks_only():
    g = unet_generator(256, kind="study")
    assert sorted(layer.name for layer in g.layers if "drop" in layer.name) == ["up1_drop", "up2_drop", "up3_drop"]
    assert g.get_layer("up1_convT").strides == (1, 1)  # CT512S1


def test_generator_parameter_count_by_hand():
    encoder = conv(4, 3, 64, True) + sum(conv(4, i, o, False) + norm(o) for i, o in
                                         [(64, 128), (128, 256), (256, 512)] + [(512, 512)] * 5)
    # decoder rows 11-19: input width = previous output + its skip
    decoder = sum(conv(4, i, o, False) + norm(o) for i, o in
                  [(512, 512), (1024, 1024), (1536, 1024), (1536, 1024), (1536, 1024), (1536, 512), (768, 256),
                   (384, 128)]) + conv(4, 192, 3, True)
    assert encoder + decoder == 136_738_371
    assert unet_generator(256, kind="study").count_params() == encoder + decoder


def test_original_pix2pix_unet_widths_and_count():
    g = unet_generator(256, kind="pix2pix")
    decoder_widths = [g.get_layer(f"up{i}_convT").filters for i in range(1, 8)]
    assert decoder_widths == [512, 512, 512, 512, 256, 128, 64]
    enc = [(3, 64)] + [(64, 128), (128, 256), (256, 512)] + [(512, 512)] * 4
    encoder = conv(4, 3, 64, True) + sum(conv(4, i, o, False) + norm(o) for i, o in enc[1:-1]) + conv(4, 512, 512, True)
    dec_in = [512, 1024, 1024, 1024, 1024, 512, 256]
    decoder = sum(conv(4, i, o, False) + norm(o) for i, o in zip(dec_in, decoder_widths)) + conv(4, 128, 3, True)
    assert g.count_params() == encoder + decoder == 54_414_531


def test_patchgan_layers_match_table1_and_count():
    d = patch_discriminator(256)
    for name, shape in TABLE1_DISCRIMINATOR:
        assert tuple(d.get_layer(name).output.shape[1:]) == shape, name
    expected = (conv(4, 6, 64, True) + conv(4, 64, 128, False) + norm(128) + conv(4, 128, 256, False) + norm(256)
                + conv(4, 256, 512, False) + norm(512) + conv(4, 512, 1, True))
    assert d.count_params() == expected == 2_768_705


@pytest.mark.parametrize("size,patch", [(128, 14), (64, 6)])
def test_smaller_inputs_drop_levels(size, patch):
    g = unet_generator(size, kind="study")
    assert tuple(g.output.shape[1:]) == (size, size, 3)
    downs = [layer for layer in g.layers if layer.name.endswith("_lrelu") and layer.name.startswith("down")]
    assert tuple(downs[-2].output.shape[1:3]) == (1, 1)  # still reaches 1x1, then one more 1x1 row
    assert len(downs) == 9 - (8 - size.bit_length() + 1)
    assert tuple(patch_discriminator(size).output.shape[1:]) == (patch, patch, 1)


def test_model_translates_and_dropout_switch():
    import numpy as np

    m = Pix2Pix(image_size=32, ngf=8, ndf=8)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    a, b = m.translate(x).numpy(), m.translate(x).numpy()
    np.testing.assert_array_equal(a, b)  # deterministic without dropout
    assert np.abs(a).max() <= 1.0
    assert not np.array_equal(m.translate(x, dropout=True).numpy(), a)
