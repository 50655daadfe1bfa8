"""The procedural synthetic facades (data/synthetic.py): determinism, palette, splits, learnability, files."""

import numpy as np
import pytest

from data import synthetic
from data.errors import I2IError
from data.images import read_image


def class_ids(labels):
    """Class index of every pixel of palette-exact label maps (-1 where a pixel is not a palette colour)."""
    ids = np.full(labels.shape[:-1], -1, np.int64)
    for k, colour in enumerate(synthetic.PALETTE_ARRAY):
        ids[(labels == colour).all(axis=-1)] = k
    return ids


@pytest.fixture(scope="module")
def batch64():
    return synthetic.make_pairs(16, size=64, seed=0)


@pytest.fixture(scope="module")
def batch256():
    return synthetic.make_pairs(12, size=256, seed=0)


def test_palette_is_the_real_datasets_twelve_classes():
    assert synthetic.CLASS_NAMES == ("background", "facade", "window", "door", "cornice", "sill", "balcony",
                                     "blind", "deco", "molding", "pillar", "shop")
    assert synthetic.PALETTE["facade"] == (0, 48, 255) and synthetic.PALETTE["shop"] == (174, 0, 1)
    assert len(set(synthetic.PALETTE.values())) == 12
    assert synthetic.PALETTE_ARRAY.dtype == np.uint8 and synthetic.PALETTE_ARRAY.shape == (12, 3)


def test_shapes_and_dtypes(batch64):
    labels, photos = batch64
    assert labels.shape == photos.shape == (16, 64, 64, 3)
    assert labels.dtype == photos.dtype == np.uint8


def test_same_seed_same_images_other_seed_other_images():
    a = synthetic.make_pairs(3, size=64, seed=5)
    b = synthetic.make_pairs(3, size=64, seed=5)
    c = synthetic.make_pairs(3, size=64, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for i in range(3):
        assert not np.array_equal(a[0][i], c[0][i])
        assert not np.array_equal(a[1][i], c[1][i])


def test_prefix_and_start_give_the_same_images(batch64):
    labels, photos = batch64
    small = synthetic.make_pairs(5, size=64, seed=0)
    np.testing.assert_array_equal(small[0], labels[:5])
    np.testing.assert_array_equal(small[1], photos[:5])
    one = synthetic.make_pairs(2, size=64, seed=0, start=11)  # any single image can be regenerated
    np.testing.assert_array_equal(one[0], labels[11:13])
    np.testing.assert_array_equal(one[1], photos[11:13])


def test_labels_are_palette_exact_at_256_and_64(batch256, batch64):
    for labels, _ in (batch256, batch64):
        assert (class_ids(labels) >= 0).all()
    labels, _ = synthetic.make_pairs(1, size=320, seed=0)  # larger sizes are drawn directly
    assert (class_ids(labels) >= 0).all()


def test_every_class_is_drawn(batch256):
    present = np.unique(class_ids(batch256[0]))
    assert present.tolist() == list(range(12))


def test_layouts_vary(batch256):
    labels, _ = batch256
    ids = class_ids(labels)
    window_share = [(x == synthetic.WINDOW).mean() for x in ids]
    background_share = [(x == synthetic.BACKGROUND).mean() for x in ids]
    assert np.std(window_share) > 0.02 and np.std(background_share) > 0.05
    assert all(0.02 < w < 0.4 for w in window_share)


def test_small_sizes_are_the_256_rendering_reduced(batch256):
    labels, photos = synthetic.make_pairs(2, size=64, seed=0)
    # labels: the centre pixel of each 4x4 block; photos: the block mean (area interpolation)
    np.testing.assert_array_equal(labels, batch256[0][:2, 2::4, 2::4])
    blocks = batch256[1][:2].astype(np.float64).reshape(2, 64, 4, 64, 4, 3).mean(axis=(2, 4))
    assert np.abs(photos - blocks).max() <= 1


def test_split_sizes_and_disjoint_index_ranges():
    assert synthetic.SPLIT_SIZES == {"train": 400, "val": 100, "test": 106}
    ranges = [set(range(synthetic.SPLIT_STARTS[s], synthetic.SPLIT_STARTS[s] + n))
              for s, n in synthetic.SPLIT_SIZES.items()]
    assert sum(len(r) for r in ranges) == len(set().union(*ranges)) == 606
    for split in ("val", "test"):  # train (400) is the same code path; rendering it too would be slow
        labels, photos = synthetic.make_split(split, size=16, seed=0)
        assert labels.shape == photos.shape == (synthetic.SPLIT_SIZES[split], 16, 16, 3)
        first = synthetic.make_pairs(1, size=16, seed=0, start=synthetic.SPLIT_STARTS[split])
        np.testing.assert_array_equal(first[1][0], photos[0])


def test_splits_differ():
    firsts = [synthetic.make_pairs(1, size=64, seed=0, start=synthetic.SPLIT_STARTS[s])[1][0]
              for s in ("train", "val", "test")]
    assert not np.array_equal(firsts[0], firsts[1])
    assert not np.array_equal(firsts[1], firsts[2])
    assert not np.array_equal(firsts[0], firsts[2])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(I2IError, match="no split 'dev'"):
        synthetic.make_split("dev")
    with pytest.raises(I2IError, match="size"):
        synthetic.make_pairs(1, size=4)
    with pytest.raises(I2IError, match="n must be"):
        synthetic.make_pairs(-1)
    with pytest.raises(I2IError, match="seed must be"):
        synthetic.make_pairs(1, seed="zero")


def test_photo_depends_on_the_label(batch64):
    labels, photos = batch64
    ids = class_ids(labels)
    grey = photos.astype(np.float64).mean(axis=-1)
    facade, window = grey[ids == synthetic.FACADE].mean(), grey[ids == synthetic.WINDOW].mean()
    shop, sill = grey[ids == synthetic.SHOP].mean(), grey[ids == synthetic.SILL].mean()
    assert facade - window > 30  # dark glass in a lighter wall
    assert sill - shop > 60  # bright stone sills, dark shop windows


def test_photo_edges_line_up_with_label_edges(batch64):
    labels, photos = batch64
    ids = class_ids(labels)
    grey = photos.astype(np.float64).mean(axis=-1)
    label_edge = np.zeros(ids.shape, bool)
    label_edge[:, :, 1:] |= ids[:, :, 1:] != ids[:, :, :-1]
    label_edge[:, 1:, :] |= ids[:, 1:, :] != ids[:, :-1, :]
    gradient = np.zeros_like(grey)
    gradient[:, :, 1:] = np.abs(np.diff(grey, axis=2))
    gradient[:, 1:, :] = np.maximum(gradient[:, 1:, :], np.abs(np.diff(grey, axis=1)))
    assert gradient[label_edge].mean() > 2 * gradient[~label_edge].mean()


def test_photo_is_not_a_fixed_function_of_the_label(batch64):
    labels, photos = batch64
    ids = class_ids(labels)
    # per-image style: the same class has clearly different colours in different images
    facade_colours = np.array([p[i == synthetic.FACADE].mean(axis=0) for p, i in zip(photos, ids)])
    spread = np.linalg.norm(facade_colours[:, None] - facade_colours[None], axis=-1)
    assert np.median(spread[np.triu_indices(16, 1)]) > 30
    # texture: pixels of one flat label region are not one colour
    inside = [p[i == synthetic.FACADE].std(axis=0).mean() for p, i in zip(photos, ids)]
    assert min(inside) > 3


def test_write_ab_folder_reads_back_as_photo_and_label(tmp_path):
    written = synthetic.write_ab_folder(tmp_path, size=64, seed=3, counts={"train": 3, "test": 2})
    assert sorted(written) == ["test", "train"] and not (tmp_path / "val").exists()
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["1.png", "2.png", "3.png"]
    for split, count in (("train", 3), ("test", 2)):
        labels, photos = synthetic.make_pairs(count, size=64, seed=3, start=synthetic.SPLIT_STARTS[split])
        for i in range(count):
            ab = read_image(tmp_path / split / f"{i + 1}.png")
            assert ab.shape == (64, 128, 3)
            np.testing.assert_array_equal(ab[:, :64], photos[i])
            np.testing.assert_array_equal(ab[:, 64:], labels[i])


def test_write_ab_folder_jpeg_like_the_real_set(tmp_path):
    written = synthetic.write_ab_folder(tmp_path, size=256, counts={"val": 1}, ext=".jpg")
    assert written == {"val": [str(tmp_path / "val" / "1.jpg")]}
    labels, photos = synthetic.make_pairs(1, size=256, start=synthetic.SPLIT_STARTS["val"])
    ab = read_image(tmp_path / "val" / "1.jpg").astype(np.float64)
    assert ab.shape == (256, 512, 3)
    assert np.abs(ab[:, :256] - photos[0]).mean() < 8
    # JPEG blurs label colours at edges (as in the real set); snapping to the nearest palette colour recovers most
    distance = ((ab[:, 256:, None, :] - synthetic.PALETTE_ARRAY.astype(np.float64)) ** 2).sum(axis=-1)
    assert (distance.argmin(axis=-1) == class_ids(labels)[0]).mean() > 0.8


def test_write_ab_folder_rejects_bad_counts(tmp_path):
    with pytest.raises(I2IError, match="has 100 pairs"):
        synthetic.write_ab_folder(tmp_path, size=16, counts={"val": 101})
    with pytest.raises(I2IError, match="no split"):
        synthetic.write_ab_folder(tmp_path, size=16, counts={"validation": 1})
    with pytest.raises(I2IError, match=".gif"):
        synthetic.write_ab_folder(tmp_path, size=16, counts={"val": 1}, ext=".gif")
