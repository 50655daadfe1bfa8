"""Data layouts, the study's augmentation and the tf.data pipeline (study section 3.1)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.augment import load_size_for, random_jitter
from data.errors import I2IError, LayoutError
from data.layouts import detect_layout, find_pairs
from data.pipeline import eval_dataset, expand_pairs, training_dataset
from data.sources import FolderSource, open_source, read_pair


def _pair_images(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    photos = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return labels, photos


def _save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def write_ab(root, split, labels, photos):
    for i, (label, p) in enumerate(zip(labels, photos), 1):
        _save(os.path.join(root, split, f"{i}.png"), np.concatenate([p, label], axis=1))


def test_ab_layout_reads_photo_left_label_right(tmp_path):
    labels, photos = _pair_images(3)
    write_ab(tmp_path, "train", labels, photos)
    assert detect_layout(str(tmp_path)) == "ab"
    got = FolderSource(tmp_path).load("train", 16)
    np.testing.assert_array_equal(got.labels, labels)
    np.testing.assert_array_equal(got.photos, photos)
    assert got.names == ["1", "2", "3"]


def test_natural_order_of_numbered_files(tmp_path):
    labels, photos = _pair_images(11)
    write_ab(tmp_path, "val", labels, photos)
    assert [p.name for p in find_pairs(tmp_path, "val")] == [str(i) for i in range(1, 12)]


@pytest.mark.parametrize("outer", [False, True])
def test_two_folder_layout(tmp_path, outer):
    labels, photos = _pair_images(2, seed=1)
    for i, (label, p) in enumerate(zip(labels, photos)):
        a = tmp_path / ("A/train" if outer else "train/A")
        b = tmp_path / ("B/train" if outer else "train/B")
        _save(str(a / f"img{i}.png"), p)
        _save(str(b / f"img{i}.png"), label)
    assert detect_layout(str(tmp_path)) == ("two-folder-outer" if outer else "two-folder")
    got = FolderSource(tmp_path).load("train", 16)
    np.testing.assert_array_equal(got.labels, labels)
    np.testing.assert_array_equal(got.photos, photos)


def test_kaggle_layout_matches_suffixed_names(tmp_path):
    labels, photos = _pair_images(2, seed=2)
    for i, (label, p) in enumerate(zip(labels, photos), 1):
        _save(str(tmp_path / "trainA" / f"{i}_A.jpg".replace(".jpg", ".png")), p)
        _save(str(tmp_path / "trainB" / f"{i}_B.png"), label)
    assert detect_layout(str(tmp_path)) == "kaggle"
    got = FolderSource(tmp_path).load("train", 16)
    np.testing.assert_array_equal(got.labels, labels)
    assert got.names == ["1", "2"]
    with pytest.raises(LayoutError, match="split 'val' not found"):
        FolderSource(tmp_path).load("val", 16)


def test_real_facades_layout(shared_dir):
    root = os.path.join(shared_dir, "data", "facades")
    if not os.path.isdir(root):
        pytest.skip(f"real facades not found at {root}")
    pairs = find_pairs(root, "val")
    assert len(pairs) == 100
    label, photo = read_pair(pairs[0])
    assert label.shape == photo.shape == (256, 256, 3)
    # label maps are flat colour regions: far fewer distinct colours than the photo
    assert len(np.unique(label.reshape(-1, 3), axis=0)) < len(np.unique(photo.reshape(-1, 3), axis=0)) / 3


def test_same_crop_and_flip_for_both_images():
    size, crop = 40, 32
    # a label map and a photo that are the same picture: any mismatch in crop or flip shows up
    base = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    flips = 0
    for k in range(20):
        label, photo = random_jitter(tf.constant(base), tf.constant(base[..., ::-1].copy()), crop, tf.constant([3, k]))
        np.testing.assert_array_equal(label.numpy(), photo.numpy()[..., ::-1])
        assert label.shape == (crop, crop, 3)
        flips += int(not any(np.array_equal(label.numpy(), base[i:i + crop, j:j + crop])
                             for i in range(size - crop + 1) for j in range(size - crop + 1)))
    assert 0 < flips < 20  # some crops flipped, some not


def test_load_sizes_follow_the_study():
    assert load_size_for(256) == 300
    assert load_size_for(256, "pix2pix") == 286
    assert load_size_for(64) == 75


def test_training_stream_is_a_function_of_the_step():
    labels, photos = _pair_images(5, size=20)
    full = [b for b in training_dataset(labels, photos, 16, 2, steps=8, seed=1)]
    resumed = [b for b in training_dataset(labels, photos, 16, 2, steps=8, seed=1, start_step=5)]
    assert len(full) == 8 and len(resumed) == 3
    for (a1, b1), (a2, b2) in zip(full[5:], resumed):
        np.testing.assert_array_equal(a1.numpy(), a2.numpy())
        np.testing.assert_array_equal(b1.numpy(), b2.numpy())
    other = [b for b in training_dataset(labels, photos, 16, 2, steps=8, seed=2)]
    assert not np.array_equal(full[0][0].numpy(), other[0][0].numpy())


def test_training_stream_visits_every_pair_each_epoch_and_keeps_pairs_together():
    n, size = 6, 16
    labels, photos = _pair_images(n, size=size)
    ids = {label.tobytes(): i for i, label in enumerate(labels)}
    batches = list(training_dataset(labels, photos, size, 3, steps=4, seed=0, augment=False))
    seen = []
    for lab, pho in batches:
        for label, p in zip(lab.numpy(), pho.numpy()):
            l8 = np.round((label + 1) * 127.5).astype(np.uint8)
            p8 = np.round((p + 1) * 127.5).astype(np.uint8)
            i = ids[l8.tobytes()]
            np.testing.assert_array_equal(p8, photos[i])
            seen.append(i)
    assert sorted(seen[:n]) == list(range(n)) and sorted(seen[n:]) == list(range(n))
    assert seen[:n] != seen[n:]  # reshuffled each epoch


def test_fixed_expansion_gives_factor_times_pairs():
    labels, photos = _pair_images(4, size=20)
    el, ep = expand_pairs(labels, photos, 16, 6, seed=0)
    assert el.shape == ep.shape == (24, 16, 16, 3)
    assert len({x.tobytes() for x in el}) > 4


def test_eval_dataset_keeps_every_image_in_order():
    labels, photos = _pair_images(7)
    batches = list(eval_dataset(labels, photos, 3))
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    got = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_allclose((got + 1) * 127.5, photos, atol=1e-3)


def test_unknown_data_argument_is_a_clear_error(tmp_path):
    with pytest.raises(I2IError, match="no such folder"):
        open_source(str(tmp_path / "nope"))
    (tmp_path / "stuff").mkdir()
    with pytest.raises(LayoutError, match="no known layout"):
        find_pairs(tmp_path, "train")
