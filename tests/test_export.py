"""export.py: an exported model translates like its run (every kind of run), float16 close to float32, snapshots by
step, evaluate.py / translate.py / the demo on an export, and the refusals (training into an export, damaged files, a
foreign config, bad sources and destinations)."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from data.errors import I2IError
from data.sources import open_source
from data.synthetic import make_pairs
from metrics.image_quality import psnr
from run_helpers import log_rows, tiny_args, train_script_names
from train_scripts import evaluate, export, translate
from train_scripts.demo.runs import finished_runs
from train_scripts.demo.translators import load_models
from train_scripts.training.export_folder import sha256_of
from train_scripts.training.inference import load_trained, translate_split
from train_scripts.training.models import autoencoder
from train_scripts.training.registry import spec_for
from train_scripts.training.runner import main as train_main

SIZE = 32
VARIANTS = [*train_script_names(), "ddim-latent"]
# what each model's translate uses: the networks an export holds (no discriminator, encoder, training network)
EXPORTED = {"pix2pix": {"generator"}, "cgan": {"generator"}, "cvae": {"decoder"}, "cyclegan": {"g_ab"},
            "ddim": {"ema_network"}, "autoencoder": {"encoder", "decoder", "latent_variance"},
            "ddim-latent": {"ema_network", "autoencoder_decoder", "autoencoder_latent_variance"}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_facades):
    """``trained(variant)``: a 2-step tiny run of the variant, trained once for the module (Pix2Pix keeping its
    weights at every step; the autoencoder without LPIPS, which needs no weights file)."""
    root, runs = tmp_path_factory.mktemp("export_runs"), {}

    def run(variant):
        if variant not in runs:
            script = "ddim" if variant == "ddim-latent" else variant
            args = [*tiny_args(script, tiny_facades, image_size=SIZE), "--out", str(root / variant)]
            if variant == "pix2pix":
                args += ["--keep-every", "1"]
            elif variant == "autoencoder":
                args += ["--lpips-weight", "0"]
            elif variant == "ddim-latent":
                args += ["--latent", str(run("autoencoder"))]
            assert train_main(spec_for(script), args) == 0
            runs[variant] = root / variant
        return runs[variant]

    return run


@pytest.fixture(scope="module")
def val_pairs(tiny_facades):
    return open_source(str(tiny_facades)).load("val", SIZE)


def outputs_of(path, pairs, seed=5, inference=None):
    """uint8 outputs of the val split through ``load_trained`` (reconstructions for an autoencoder)."""
    spec, _, model, _ = load_trained(path, inference, seed=seed)
    return translate_split(model, pairs, batch_size=4, reconstruct=spec.reconstructs)


def manifest(path):
    with open(os.path.join(path, "export.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def pix2pix_export(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "pix2pix"
    assert export.main([str(trained("pix2pix")), str(out)]) == 0
    return out


def fresh_copy(path, tmp_path):
    """A copy of an export to damage."""
    return shutil.copytree(path, tmp_path / "copy")


# ------------------------------------------------------------------------------------------ exports translate

@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_kind_of_run_exports_only_what_translates_and_translates_the_same(variant, trained, val_pairs,
                                                                                 tmp_path):
    run = trained(variant)
    out = tmp_path / "export"
    assert export.main([str(run), str(out)]) == 0
    saved = manifest(out)
    assert set(saved["files"]) == EXPORTED[variant]
    assert sorted(os.listdir(out)) == sorted(["config.json", "export.json",
                                              *(f"{n}.weights.npz" for n in EXPORTED[variant])])
    with open(run / "config.json") as f, open(out / "config.json") as g:
        assert json.load(f) == json.load(g)
    assert (saved["model_name"], saved["source_run"], saved["step"], saved["precision"]) == (
        variant, variant, 2, "float32")
    # no discriminator, training network, encoder or optimizer state: under half the run's weights file
    weights = sum(os.path.getsize(out / e["file"]) for e in saved["files"].values())
    assert weights < 0.5 * os.path.getsize(run / "model.weights.h5")
    np.testing.assert_array_equal(outputs_of(out, val_pairs), outputs_of(run, val_pairs))


@pytest.mark.slow
def test_float16_halves_the_weights_and_stays_close(trained, pix2pix_export, val_pairs, tmp_path):
    half = tmp_path / "half"
    assert export.main([str(trained("pix2pix")), str(half), "--precision", "float16"]) == 0
    size = {p: os.path.getsize(p / "generator.weights.npz") for p in (pix2pix_export, half)}
    assert 0.45 < size[half] / size[pix2pix_export] < 0.55
    with np.load(half / "generator.weights.npz") as f:
        assert {f[k].dtype for k in f.files} == {np.dtype("float16")}
    _, _, model, _ = load_trained(half)
    assert {v.dtype for v in model.generator.weights} == {"float32"}  # loaded back into float32 networks
    full, reduced = outputs_of(pix2pix_export, val_pairs), outputs_of(half, val_pairs)
    values = psnr(reduced, full)
    print(f"float16 export against float32: PSNR {np.min(values):.1f} dB (worst of {len(values)})")
    assert np.min(values) >= 50  # measured: 68 dB here, 66 dB for a real-size Pix2Pix at 256 px


@pytest.mark.slow
def test_step_exports_the_snapshot_and_an_unknown_step_is_refused(trained, val_pairs, tmp_path, capsys):
    run = trained("pix2pix")
    assert export.main([str(run), str(tmp_path / "step1"), "--step", "1"]) == 0
    saved = manifest(tmp_path / "step1")
    assert (saved["step"], saved["snapshot"], saved["training"]["steps"]) == (1, True, 1)
    at_step_1 = [row["wall_time_s"] for row in log_rows(run) if row["step"] == 1]
    assert saved["training"]["wall_time_s"] == round(at_step_1[0], 1) > 0  # the run's time up to the snapshot
    _, _, model, _ = load_trained(run, seed=5, weights=str(run / "snapshots" / "step_0000001.weights.h5"))
    np.testing.assert_array_equal(outputs_of(tmp_path / "step1", val_pairs),
                                  translate_split(model, val_pairs, batch_size=4))
    assert not np.array_equal(outputs_of(tmp_path / "step1", val_pairs), outputs_of(run, val_pairs))
    capsys.readouterr()
    assert export.main([str(run), str(tmp_path / "step7"), "--step", "7"]) == 2
    err = capsys.readouterr().err
    assert f"error: {run / 'snapshots'}: no snapshot at step 7" in err and "it kept steps 1, 2" in err
    assert not (tmp_path / "step7").exists()
    assert export.main([str(trained("cgan")), str(tmp_path / "cgan"), "--step", "2"]) == 2
    assert "it kept none (train with --keep-every N" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the tools on an export

@pytest.mark.slow
def test_translate_py_with_seed_and_settings_writes_what_the_run_writes(trained, pix2pix_export, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    for i, label in enumerate(make_pairs(3, size=48, seed=0, start=0)[0]):
        Image.fromarray(label).save(labels / f"{i}.png")
    for source, name in ((trained("pix2pix"), "run"), (pix2pix_export, "export")):
        assert translate.main([str(source), str(labels), str(tmp_path / name), "--seed", "3", "--set",
                               "dropout_at_test=true"]) == 0
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "export" / f"{i}.png")),
                                      np.asarray(Image.open(tmp_path / "run" / f"{i}.png")))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pix2pix", "ddim-latent"])
def test_evaluate_scores_an_export_with_its_runs_training_record(variant, trained, tmp_path):
    run = trained(variant)
    assert export.main([str(run), str(tmp_path / "export")]) == 0
    rows = {}
    for source in (run, tmp_path / "export"):
        rows[source] = evaluate.evaluate_run(str(source), split="val", metrics="psnr,ssim", save_images=False)
    ran, exported = rows[run], rows[tmp_path / "export"]
    for key in ("model", "variant", "psnr", "ssim", "train_steps", "wall_time_s", "commit"):
        assert exported[key] == ran[key], key
    # the table names a folder outside the workspace by its name only, never by a path of this machine
    assert exported["run_dir"] == "export" and ran["wall_time_s"] > 0


@pytest.mark.slow
def test_the_demo_serves_an_export_as_its_run(trained, pix2pix_export, tmp_path):
    label = make_pairs(1, size=SIZE, seed=0, start=400)[0][0]
    models, failures = load_models([str(pix2pix_export), str(trained("pix2pix"))], warmup=False)
    assert not failures and models[0].finished and models[0].run_dir == str(pix2pix_export)
    np.testing.assert_array_equal(models[0].translate(label)[0], models[1].translate(label)[0])
    root = tmp_path / "runs"
    shutil.copytree(pix2pix_export, root / "exported")
    assert finished_runs(str(root)) == [str(root / "exported")]


# ------------------------------------------------------------------------------------------ refusals

@pytest.mark.slow
def test_training_into_an_export_is_refused(trained, pix2pix_export, tiny_facades, tmp_path, capsys):
    copy = fresh_copy(pix2pix_export, tmp_path)
    before = {n: (copy / n).read_bytes() for n in os.listdir(copy)}
    assert train_main(spec_for("pix2pix"), [*tiny_args("pix2pix", tiny_facades, image_size=SIZE),
                                            "--out", str(copy)]) == 2
    assert f"error: {copy} is an exported model (export.json" in capsys.readouterr().err
    assert {n: (copy / n).read_bytes() for n in os.listdir(copy)} == before
    with pytest.raises(I2IError, match="is an exported model .*--latent needs the autoencoder's run folder"):
        autoencoder.autoencoder_config(autoencoder.autoencoder_run(str(copy)))


def damage(path, problem):
    """Damage the generator's weights file (or the manifest's record of it) of the export at ``path``."""
    weights = path / "generator.weights.npz"
    data = bytearray(weights.read_bytes())
    saved = manifest(path)
    if problem == "truncated":
        weights.write_bytes(data[:len(data) // 2])
    elif problem == "flipped byte":
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif problem == "other sha256":
        saved["files"]["generator"]["sha256"] = "0" * 64
    elif problem == "not an npz":  # recorded in the manifest as it is: only reading it finds the damage
        weights.write_bytes(b"not a weights file" * 100)
        saved["files"]["generator"].update(bytes=1800, sha256=sha256_of(weights))
    (path / "export.json").write_text(json.dumps(saved))
    return weights


@pytest.mark.parametrize("problem, message", [
    ("truncated", r"\d+ bytes, export.json says \d+: the file is truncated"),
    ("flipped byte", "sha256 .* differs from export.json's .*: the file is corrupt"),
    ("other sha256", "sha256 .* differs from export.json's 0000"),
    ("not an npz", "cannot read .*the file is corrupt"),
])
@pytest.mark.slow
def test_damaged_weights_files_are_named(problem, message, pix2pix_export, tmp_path, capsys):
    copy = fresh_copy(pix2pix_export, tmp_path)
    weights = damage(copy, problem)
    with pytest.raises(I2IError, match=f"^{weights}: {message}"):
        load_trained(copy)
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(make_pairs(1, size=SIZE, seed=0, start=0)[0][0]).save(labels / "1.png")
    assert translate.main([str(copy), str(labels), str(tmp_path / "out")]) == 2
    assert f"error: {weights}: " in capsys.readouterr().err


@pytest.mark.slow
def test_a_foreign_or_mismatched_config_is_refused(trained, pix2pix_export, tmp_path):
    copy = fresh_copy(pix2pix_export, tmp_path)
    shutil.copy(trained("cgan") / "config.json", copy / "config.json")
    with pytest.raises(I2IError, match=f"^{copy / 'config.json'} holds a cgan config, but .*exports a pix2pix"):
        load_trained(copy)
    saved = json.loads((trained("pix2pix") / "config.json").read_text())
    saved["config"]["ngf"] = 16  # the same model, wider: the weights do not fit
    (copy / "config.json").write_text(json.dumps(saved))
    with pytest.raises(I2IError, match=f"^{copy / 'generator.weights.npz'}: its arrays do not fit the generator"):
        load_trained(copy)
    saved["config"].update(ngf=8, image_size=64)
    (copy / "config.json").write_text(json.dumps(saved))
    with pytest.raises(I2IError, match="is at 64 px, but .* exports weights trained at 32 px"):
        load_trained(copy)


@pytest.mark.slow
def test_bad_sources_and_destinations_are_refused(trained, pix2pix_export, tmp_path, capsys):
    run = trained("pix2pix")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run / "config.json", unfinished / "config.json")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    cases = [((tmp_path / "nowhere", tmp_path / "a"), "no such folder"),
             ((tmp_path, tmp_path / "b"), "not a run folder (no config.json)"),
             ((unfinished, tmp_path / "c"), "model.weights.h5: missing (the run has not reached its first checkpoint"),
             ((pix2pix_export, tmp_path / "d"), "is already an exported model"),
             ((run, run), "is the run itself"),
             ((run, busy), "exists and is not empty")]
    for (source, out), message in cases:
        assert export.main([str(source), str(out)]) == 2, message
        assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["busy", "unfinished"] and os.listdir(busy) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export.main([str(run), str(empty)]) == 0 and manifest(empty)["model"] == "pix2pix"


@pytest.mark.slow
def test_an_autoencoder_export_is_scored_but_not_translated(trained, tmp_path, capsys):
    out = tmp_path / "export"
    assert export.main([str(trained("autoencoder")), str(out)]) == 0
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(make_pairs(1, size=SIZE, seed=0, start=0)[0][0]).save(labels / "1.png")
    assert translate.main([str(out), str(labels), str(tmp_path / "out")]) == 2
    assert f"error: {out} is an export of the autoencoder, which reconstructs photos" in capsys.readouterr().err
