"""The segmentation score: label maps to classes through JPEG noise, the confusion-matrix scores, the facade parser
(a tiny one trained here on synthetic facades; the shipped one where its files are present) and its refusals."""

import io
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from data.label_classes import IGNORE, MAX_COLOUR_DISTANCE, label_map_to_classes, nearest_palette_class, resize_classes
from data.synthetic import CLASS_NAMES, FACADE, PALETTE, SHOP, WINDOW, make_pairs
from metrics import facade_parser
from metrics.facade_parser import CONFIG_NAME, WEIGHTS_NAME, FacadeParser, load_facade_parser, save_facade_parser
from metrics.segmentation import SegmentationScore, confusion_matrix, scores_from_confusion, segmentation_scores
from metrics.weights import WeightsError


def jpeg(image, quality=95):
    """``image`` through a JPEG file as the facades label halves were saved (IJG quality 95, 4:2:0 chroma)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
    return np.asarray(Image.open(buffer).convert("RGB"))


def interior(classes, radius=2):
    """Pixels whose (2 radius + 1)^2 neighbourhood holds one class."""
    kernel = np.ones((2 * radius + 1,) * 2, np.uint8)
    return cv2.dilate(classes, kernel, borderType=cv2.BORDER_REPLICATE) == cv2.erode(
        classes, kernel, borderType=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------------------ class conversion

def test_class_conversion_on_jpeg_colour_noise():
    labels, _ = make_pairs(6, size=256, seed=11)
    for label in labels:
        true, distance = nearest_palette_class(label)
        assert distance.max() == 0  # synthetic label maps are palette-exact
        got = label_map_to_classes(jpeg(label))
        kept = got != IGNORE
        inside = interior(true)
        assert np.mean(got[inside] == true[inside]) >= 0.99  # interior pixels: kept and right
        assert np.mean(got[kept] == true[kept]) >= 0.999  # a kept pixel near a seam is right too
        assert kept.mean() >= 0.75  # what is ignored is a band along the boundaries, not the image


def test_palette_exact_label_map_loses_no_pixel():
    label = make_pairs(1, size=64, seed=2)[0][0]
    true, _ = nearest_palette_class(label)
    np.testing.assert_array_equal(label_map_to_classes(label), true)  # one-pixel lines and corners included


def test_seam_colours_are_ignored():
    label = np.zeros((16, 16, 3), np.uint8)
    label[:, :8], label[:, 8:] = PALETTE["shop"], PALETTE["facade"]
    label[:, 7:9] = (0, 0, 128)  # the ringing colour between dark red and blue regions of the real set
    label[5, 3] = (0, 88, 255)  # halfway between facade and window: 40 from both
    label[2, 12] = (0, 110, 240)  # 23.5 from window, alone among facade pixels: a seam pixel, not a window
    label[10:16, 12] = (0, 122, 250)  # 8.5 from window: a one-pixel window line, kept
    classes = label_map_to_classes(label)
    assert np.all(classes[:, 7:9] == IGNORE) and classes[5, 3] == IGNORE and classes[2, 12] == IGNORE
    assert np.all(classes[10:, 12] == WINDOW)
    assert np.all(classes[:, :7][np.arange(16) != 5] == SHOP)
    assert np.all(np.delete(classes[:, 9:], 3, axis=1) == FACADE)
    assert MAX_COLOUR_DISTANCE == pytest.approx(57.69 / 2, abs=0.01)  # half the facade-background distance


def test_resize_classes_samples_pixel_centres():
    classes = np.arange(16, dtype=np.uint8).reshape(4, 4)
    np.testing.assert_array_equal(resize_classes(classes, 2), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(resize_classes(classes[:2, :2], 4), np.kron([[0, 1], [4, 5]], np.ones((2, 2))))


# ------------------------------------------------------------------------------ scores from a confusion matrix

def test_scores_equal_a_hand_computed_confusion_matrix():
    true = np.array([[0, 0, 1], [1, 2, IGNORE]])
    predicted = np.array([[0, 1, 1], [1, 1, 0]])
    matrix = confusion_matrix(true, predicted)
    expected = np.zeros((12, 12), int)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[2, 1] = 1, 1, 2, 1
    np.testing.assert_array_equal(matrix, expected)
    scores = scores_from_confusion(matrix, [matrix])
    # class 0: TP 1, FP 0, FN 1; class 1: TP 2, FP 2, FN 0; class 2: TP 0, FN 1; classes 3-11 absent
    iou = scores["per_class_iou"]
    assert iou["background"] == pytest.approx(1 / 2) and iou["facade"] == pytest.approx(2 / 4)
    assert iou["window"] == 0.0 and all(iou[name] is None for name in CLASS_NAMES[3:])
    assert scores["seg_miou"] == pytest.approx((1 / 2 + 2 / 4 + 0) / 3)
    assert scores["seg_acc"] == pytest.approx(3 / 5)
    assert scores["n_pixels"] == 5


def test_dataset_scores_sum_the_matrices_and_per_image_scores_do_not():
    a = confusion_matrix(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]))  # class 1 missed
    b = confusion_matrix(np.array([1, 1]), np.array([1, 1]))
    scores = scores_from_confusion(a + b, [a, b])
    # total: class 0 TP 3, FP 1 -> 3/4; class 1 TP 2, FN 1 -> 2/3
    assert scores["seg_miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert scores["seg_acc"] == pytest.approx(5 / 6)
    # image a: class 0 3/4, class 1 0/1 -> 3/8; image b: class 1 alone, 1
    assert scores["per_image"]["seg_miou"] == pytest.approx([3 / 8, 1.0])
    assert scores["per_image"]["seg_acc"] == pytest.approx([3 / 4, 1.0])


def test_a_predicted_class_absent_from_the_labels_counts_as_zero():
    scores = scores_from_confusion(confusion_matrix(np.array([0, 0]), np.array([0, 5])))
    assert scores["per_class_iou"]["sill"] == 0.0
    assert scores["seg_miou"] == pytest.approx((1 / 2 + 0) / 2)


# ------------------------------------------------------------------------------ with a parser

@pytest.fixture(scope="module")
def tiny_parser():
    """A width-8 parser trained for 240 steps on 64 synthetic facades at 64 px (half a minute of one core)."""
    import keras

    from models.facade_parser import facade_parser_network
    from train_scripts.facade_parser import training_batches

    labels, photos = make_pairs(64, size=72, seed=5)
    classes = label_map_to_classes(labels)
    keras.utils.set_random_seed(0)
    model = facade_parser_network(64, 8)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE))
    model.fit(training_batches(photos, classes, 64, 8, seed=0, start_step=0, steps=240), verbose=0, shuffle=False)
    return FacadeParser(model, 64)


@pytest.fixture(scope="module")
def val_pairs():
    labels, photos = make_pairs(12, size=128, seed=5, start=400)
    return labels, photos


@pytest.mark.slow
def test_parser_sees_the_label_map_in_the_photo(tiny_parser, val_pairs):
    labels, photos = val_pairs
    own = segmentation_scores(photos, labels, tiny_parser)
    shuffled = segmentation_scores(photos, np.roll(labels, 6, axis=0), tiny_parser)
    blurred = segmentation_scores(np.stack([cv2.GaussianBlur(p, (0, 0), 6) for p in photos]), labels, tiny_parser)
    print(f"tiny parser: mIoU {own['seg_miou']:.3f}, other label maps {shuffled['seg_miou']:.3f}, "
          f"blurred photos {blurred['seg_miou']:.3f}")
    assert own["seg_miou"] > shuffled["seg_miou"] + 0.05
    assert own["seg_miou"] > blurred["seg_miou"] + 0.05
    assert own["seg_acc"] > shuffled["seg_acc"] and own["seg_acc"] > blurred["seg_acc"]


@pytest.mark.slow
def test_batches_add_up_to_one_pass_and_sizes_may_differ(tiny_parser, val_pairs):
    labels, photos = val_pairs
    small = np.stack([cv2.resize(p, (32, 32), interpolation=cv2.INTER_AREA) for p in photos])
    score = SegmentationScore(tiny_parser)
    score.update(small[:5], labels[:5])
    score.update(small[5:], labels[5:])
    whole = segmentation_scores(small, labels, tiny_parser)
    expected = confusion_matrix(resize_classes(label_map_to_classes(labels), 64), tiny_parser.classes(small))
    np.testing.assert_array_equal(score.matrix, expected)
    assert score.result()["seg_miou"] == whole["seg_miou"]
    assert score.result()["per_image"] == whole["per_image"] and len(whole["per_image"]["seg_acc"]) == 12


@pytest.mark.slow
def test_saved_parser_loads_and_parses_alike(tiny_parser, val_pairs, tmp_path):
    save_facade_parser(tiny_parser.model, tmp_path, {"image_size": 64, "width": 8, "class_names": list(CLASS_NAMES)})
    loaded = load_facade_parser(tmp_path)
    photos = val_pairs[1]
    same = loaded.classes(photos) == tiny_parser.classes(photos)
    assert same.mean() > 0.99  # float16 storage moves an argmax only where two classes nearly tie
    assert load_facade_parser(tmp_path / WEIGHTS_NAME).config == loaded.config


# ------------------------------------------------------------------------------ refusals

@pytest.fixture
def saved_parser(tmp_path):
    """An untrained parser's files (the checks do not depend on what it learnt)."""
    from models.facade_parser import facade_parser_network

    folder = tmp_path / "parser"
    save_facade_parser(facade_parser_network(32, 4), folder, {"image_size": 32, "width": 4,
                                                             "class_names": list(CLASS_NAMES)})
    return folder


def test_missing_files_are_named(saved_parser, tmp_path, monkeypatch):
    monkeypatch.setattr(facade_parser, "DEFAULT_DIR", str(tmp_path / "shipped"))
    with pytest.raises(WeightsError, match=f"{tmp_path / 'shipped'}: the shipped facade parser is not there"):
        load_facade_parser()
    with pytest.raises(WeightsError, match=f"{tmp_path / 'nowhere'}: facade parser not found"):
        load_facade_parser(tmp_path / "nowhere")
    os.remove(saved_parser / WEIGHTS_NAME)
    with pytest.raises(WeightsError, match=f"{saved_parser / WEIGHTS_NAME}: facade parser weights not found"):
        load_facade_parser(saved_parser)
    os.remove(saved_parser / CONFIG_NAME)
    with pytest.raises(WeightsError, match=f"{saved_parser / CONFIG_NAME}: facade parser config not found"):
        load_facade_parser(saved_parser)


def test_truncated_weights_are_refused(saved_parser):
    path = saved_parser / WEIGHTS_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=f"{path}: its sha256 is .*truncated, corrupt or another file"):
        load_facade_parser(saved_parser)


def test_foreign_weights_are_refused_even_with_a_matching_checksum(saved_parser):
    from metrics.weights import file_digest

    path, config_path = saved_parser / WEIGHTS_NAME, saved_parser / CONFIG_NAME
    np.savez(path, **{"alexnet/conv1/kernel": np.zeros((11, 11, 3, 64), np.float32)})
    with pytest.raises(WeightsError, match="truncated, corrupt or another file"):
        load_facade_parser(saved_parser)
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(dict(config, weights_sha256=file_digest(path, "sha256"))))
    with pytest.raises(WeightsError, match=f"{path}: not the weights of this facade parser"):
        load_facade_parser(saved_parser)
    config_path.write_text(json.dumps({"network": "lpips"}))
    with pytest.raises(WeightsError, match=f"{config_path}: not a facade parser config"):
        load_facade_parser(saved_parser)


# ------------------------------------------------------------------------------ the shipped parser

shipped = pytest.mark.skipif(not os.path.isfile(os.path.join(facade_parser.DEFAULT_DIR, CONFIG_NAME)),
                             reason="the trained facade parser is not in metrics/weights/facade_parser/ "
                                    "(train_scripts/facade_parser.py writes it)")


@shipped
def test_shipped_parser_reads_real_val_photos(shared_dir):
    from data.sources import open_source

    folder = os.path.join(shared_dir, "data", "facades")
    if not os.path.isdir(folder):
        pytest.skip(f"real facades not in {folder}")
    pairs = open_source(folder).load("val", 256)
    parser = load_facade_parser()
    own = segmentation_scores(pairs.photos[:40], pairs.labels[:40], parser)
    other = segmentation_scores(pairs.photos[:40], np.roll(pairs.labels[:40], 20, axis=0), parser)
    print(f"shipped parser, 40 val photos: mIoU {own['seg_miou']:.3f} (other label maps {other['seg_miou']:.3f})")
    assert own["seg_miou"] > other["seg_miou"] + 0.1
    assert own["per_class_iou"]["window"] > 0.3
