"""The segmentation score in the scoring paths: score_pairs' intervals, ``python -m metrics GEN --labels L`` (with
and without references), evaluate.py's columns and full scores, and the refusals. A tiny parser trained here."""

import csv
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from data.label_classes import IGNORE, label_map_to_classes
from data.synthetic import CLASS_NAMES, make_pairs
from metrics import facade_parser
from metrics.__main__ import main as metrics_main
from metrics.facade_parser import ENV_VAR, save_facade_parser
from metrics.score import resampled_segmentation
from metrics.segmentation import confusion_matrix, mean_iou, pixel_accuracy, segmentation_scores
from metrics.weights import WeightsError
from train_scripts import evaluate
from train_scripts.training.models import pix2pix
from train_scripts.training.results import COLUMNS, format_results, read_results
from train_scripts.training.runner import main as train_main


@pytest.fixture(scope="module")
def parser_dir(tmp_path_factory):
    """A width-8 parser trained for 240 steps on 64 synthetic facades at 64 px, saved as the shipped one is."""
    import keras

    from models.facade_parser import facade_parser_network
    from train_scripts.facade_parser import training_batches

    labels, photos = make_pairs(64, size=72, seed=5)
    keras.utils.set_random_seed(0)
    model = facade_parser_network(64, 8)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE))
    model.fit(training_batches(photos, label_map_to_classes(labels), 64, 8, seed=0, start_step=0, steps=240),
              verbose=0, shuffle=False)
    folder = tmp_path_factory.mktemp("parser")
    save_facade_parser(model, folder, {"image_size": 64, "width": 8, "class_names": list(CLASS_NAMES)})
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """gen/ (the true photos), shuffled/ (other images' photos), blurred/, ref/, labels/: 12 images at 128 px."""
    root = tmp_path_factory.mktemp("folders")
    labels, photos = make_pairs(12, size=128, seed=5, start=400)
    sets = {"gen": photos, "ref": photos, "labels": labels, "shuffled": np.roll(photos, 6, axis=0),
            "blurred": np.stack([cv2.GaussianBlur(p, (0, 0), 6) for p in photos])}
    for name, images in sets.items():
        os.makedirs(root / name)
        for i, image in enumerate(images):
            Image.fromarray(image).save(root / name / f"{i:03d}.png")
    return root, labels, photos


def score_json(capsys, *argv):
    assert metrics_main([*map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_resampled_scores_are_those_of_the_summed_matrices():
    rng = np.random.default_rng(0)
    matrices = np.stack([confusion_matrix(rng.integers(0, 4, 50), rng.integers(0, 5, 50)) for _ in range(6)])
    indices = rng.integers(0, 6, (5, 6))
    got = resampled_segmentation(matrices, indices)
    for row, miou, acc in zip(indices, got["seg_miou"], got["seg_acc"]):
        summed = matrices[row].sum(axis=0)
        assert miou == pytest.approx(mean_iou(summed)) and acc == pytest.approx(pixel_accuracy(summed))


@pytest.mark.slow
def test_folder_scored_against_label_maps_alone(folders, parser_dir, capsys):
    root, labels, photos = folders
    own = score_json(capsys, root / "gen", "--labels", root / "labels", "--metrics", "segmentation", "--parser",
                     parser_dir, "--resamples", "200", "--per-image")
    expected = segmentation_scores(photos, labels, facade_parser.load_facade_parser(parser_dir))
    assert own["seg_miou"] == pytest.approx(expected["seg_miou"]) and own["seg_acc"] == pytest.approx(
        expected["seg_acc"])
    assert own["per_class_iou"] == pytest.approx(expected["per_class_iou"])
    assert own["dir_b"] is None and own["n_images"] == 12 and own["psnr"] is None
    assert own["seg_miou_lo"] <= own["seg_miou"] <= own["seg_miou_hi"] and own["seg_miou_lo"] < own["seg_miou_hi"]
    assert own["seg_acc_lo"] <= own["seg_acc"] <= own["seg_acc_hi"]
    assert own["per_image"]["005"]["seg_acc"] == pytest.approx(expected["per_image"]["seg_acc"][5])
    for worse in ("shuffled", "blurred"):
        other = score_json(capsys, root / worse, "--labels", root / "labels", "--parser", parser_dir,
                           "--resamples", "0")  # without a reference folder: segmentation by default
        assert own["seg_miou"] > other["seg_miou"] + 0.05 and own["seg_acc"] > other["seg_acc"], worse


@pytest.mark.slow
def test_with_references_and_the_table(folders, parser_dir, capsys):
    root, _, _ = folders
    both = score_json(capsys, root / "gen", root / "blurred", "--labels", root / "labels", "--metrics",
                      "psnr,segmentation", "--parser", parser_dir, "--resamples", "50")
    alone = score_json(capsys, root / "gen", "--labels", root / "labels", "--parser", parser_dir, "--resamples", "50")
    assert 10 < both["psnr"] < 60 and both["seg_miou"] == alone["seg_miou"]
    assert both["seg_acc_hi"] == alone["seg_acc_hi"]
    assert metrics_main([str(root / "gen"), "--labels", str(root / "labels"), "--parser", str(parser_dir),
                         "--resamples", "0", "--per-image"]) == 0
    out = capsys.readouterr().out
    assert "seg mIoU" in out and "reference: (none)" in out and "SEG_MIOU" in out and "window" in out


@pytest.mark.slow
def test_refusals(folders, parser_dir, tmp_path, capsys, monkeypatch):
    root, _, _ = folders
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(facade_parser, "DEFAULT_DIR", str(tmp_path / "shipped"))

    def error(*argv):
        assert metrics_main(list(map(str, argv))) == 2
        return capsys.readouterr().err

    assert "the shipped facade parser is not there" in error(root / "gen", "--labels", root / "labels")
    assert "--labels" in error(root / "gen", root / "ref", "--metrics", "segmentation")
    assert "need a reference folder" in error(root / "gen", "--labels", root / "labels", "--metrics", "psnr")
    assert "give a reference folder" in error(root / "gen")
    partial = tmp_path / "partial"
    os.makedirs(partial)
    for source, name in (("000", "000"), ("001", "001"), ("002", "extra")):
        Image.open(root / "labels" / f"{source}.png").save(partial / f"{name}.png")
    err = error(root / "gen", "--labels", partial, "--parser", parser_dir)
    assert "10 images without a label map" in err and "002" in err and "extra" in err and str(partial) in err
    assert "--labels" in error("compare", root / "gen", root / "shuffled", root / "ref", "--metrics", "segmentation")
    assert "leaves out segmentation" in error("compare", root / "gen", root / "shuffled", root / "ref", "--labels",
                                              root / "labels", "--metrics", "psnr")


def test_paired_comparison_tells_the_photos_that_follow_their_label_maps(folders, parser_dir, capsys):
    """``python -m metrics compare`` with --labels: the true photos against other images' photos (the same photo
    set, so FID and KID cannot tell them apart) win on segmentation, with a small p; A's score is the one
    ``python -m metrics GEN --labels`` gives."""
    root, _, _ = folders
    common = ["--labels", root / "labels", "--parser", parser_dir, "--resamples", "200"]
    result = score_json(capsys, "compare", root / "gen", root / "shuffled", root / "ref", "--metrics",
                        "ssim,segmentation", *common, "--per-image")
    alone = score_json(capsys, root / "gen", *common, "--per-image")
    shuffled = score_json(capsys, root / "shuffled", *common)
    miou = result["seg_miou"]
    assert miou["a"] == pytest.approx(alone["seg_miou"]) and miou["b"] == pytest.approx(shuffled["seg_miou"])
    assert miou["diff"] > 0.05 and miou["lo"] > 0 and miou["p"] < 0.05 and miou["a_better"] > 0.8
    assert result["seg_acc"]["diff"] > 0 and result["seg_acc"]["lo"] > 0
    assert result["per_image"]["000"]["seg_miou"]["a"] == pytest.approx(alone["per_image"]["000"]["seg_miou"])
    copy = score_json(capsys, "compare", root / "gen", root / "ref", root / "ref", "--metrics", "segmentation",
                      *common)
    assert copy["seg_miou"]["diff"] == 0 and copy["seg_miou"]["a_better"] == 0


@pytest.mark.slow
def test_default_metrics_follow_the_parser(parser_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(facade_parser, "DEFAULT_DIR", str(tmp_path / "shipped"))
    assert evaluate.evaluation_metrics(None) == ("psnr", "ssim", "fid", "kid", "lpips")
    assert "no segmentation score" in capsys.readouterr().out
    with pytest.raises(WeightsError, match="the shipped facade parser is not there"):
        evaluate.evaluation_metrics("psnr,segmentation")
    monkeypatch.setenv(ENV_VAR, str(parser_dir))
    assert evaluate.evaluation_metrics(None)[-1] == "segmentation"
    assert evaluate.evaluation_metrics(None, reconstructs=True) == ("psnr", "ssim", "fid", "kid", "lpips")


@pytest.mark.slow
def test_evaluate_writes_the_columns(parser_dir, tmp_path, monkeypatch):
    from data.sources import open_source

    monkeypatch.delenv(ENV_VAR, raising=False)
    run = tmp_path / "run"
    assert train_main(pix2pix.SPEC, ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--steps",
                                     "4", "--log-every", "2", "--checkpoint-every", "4", "--sample-every", "4",
                                     "--verbose", "0", "--out", str(run)]) == 0
    results = tmp_path / "metrics.csv"
    with open(results, "w") as f:  # a table written before the segmentation score
        f.write(",".join(COLUMNS[:COLUMNS.index("seg_miou")]) + "\n")
        f.write("old,quick,test,32x32,106,20,0.5,,,,,,10,1,abc,synthetic,0,,old-run,,,,,,,,,,,\n")
    assert evaluate.main([str(run), "--metrics", "psnr,segmentation", "--parser", str(parser_dir), "--results",
                          str(results), "--resamples", "50"]) == 0
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["old", "pix2pix"] and rows[0]["seg_miou"] == ""
    row = rows[1]
    full = json.load(open(run / "scores_test_full.json"))
    outputs = np.stack([np.asarray(Image.open(run / "outputs_test" / f"{os.path.splitext(n)[0]}.png"))
                        for n in full["segmentation"]["per_image"]["names"]])
    labels = open_source("synthetic").load("test", 256).labels
    expected = segmentation_scores(outputs, labels, facade_parser.load_facade_parser(parser_dir))
    assert float(row["seg_miou"]) == pytest.approx(expected["seg_miou"], rel=1e-5)
    assert float(row["seg_acc"]) == pytest.approx(expected["seg_acc"], rel=1e-5)
    assert float(row["seg_miou_lo"]) <= float(row["seg_miou"]) <= float(row["seg_miou_hi"])
    assert float(row["seg_acc_lo"]) <= float(row["seg_acc"]) <= float(row["seg_acc_hi"])
    assert full["segmentation"]["per_class_iou"] == pytest.approx(expected["per_class_iou"])
    assert np.allclose(full["segmentation"]["per_image"]["seg_acc"], expected["per_image"]["seg_acc"])
    assert "seg_miou" in format_results(read_results(results))
