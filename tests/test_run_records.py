"""What a run records about the command that trained it names no folder of the machine it ran on: paths inside the
workspace are stored relative to it (``compare.py`` launches the train scripts by their absolute paths)."""

import os

from train_scripts.training.config import recorded_command


def test_paths_inside_the_workspace_are_recorded_relative_to_it(tmp_path):
    root = tmp_path / "repo"
    argv = [str(root / "train_scripts" / "pix2pix.py"), "--preset", "quick", "--out", str(root / "runs" / "p2p"),
            f"--data={root / 'data' / 'facades'}", "--steps", "20"]
    assert recorded_command(argv, root=str(root)) == (
        f"{os.path.join('train_scripts', 'pix2pix.py')} --preset quick --out {os.path.join('runs', 'p2p')} "
        f"--data={os.path.join('data', 'facades')} --steps 20")


def test_paths_outside_the_workspace_and_relative_paths_are_kept(tmp_path):
    root, outside = tmp_path / "repo", tmp_path / "elsewhere" / "runs" / "p2p"
    argv = ["train_scripts/ddim.py", "--out", str(outside), "--data", "../shared/data/facades", "--latent=runs/ae"]
    assert recorded_command(argv, root=str(root)) == " ".join(argv)
    # a sibling whose name starts like the root is outside it
    sibling = str(tmp_path / "repo-old" / "run")
    assert recorded_command(["--out", sibling], root=str(root)) == f"--out {sibling}"


def test_loss_curves_are_redrawn_at_checkpoints_at_most_once_a_minute_and_at_the_end(tmp_path, monkeypatch):
    from train_scripts.training import callbacks

    clock = [1000.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    csv_path, png = tmp_path / "log.csv", tmp_path / "losses.png"
    csv_path.write_text("epoch,g_loss,step\n0,1.0,10\n1,0.5,20\n")
    plot = callbacks.LossPlot(str(csv_path), str(png), every_epochs=1)
    clock[0] += 30
    plot.on_epoch_end(0)
    assert not png.exists()  # 30 s after the start: not yet
    clock[0] += 31
    plot.on_epoch_end(1)
    assert png.exists()
    png.unlink()
    clock[0] += 59
    plot.on_epoch_end(2)
    assert not png.exists()  # 59 s after the last drawing
    plot.on_train_end()
    assert png.exists()  # the end is always drawn


def test_a_run_counts_as_finished_only_with_its_model_its_config_and_its_progress(tmp_path):
    from train_scripts.training.config import COMMON_DEFAULTS
    from train_scripts.training.run_folder import RunFolder

    run = RunFolder(str(tmp_path / "run"))
    config = {**COMMON_DEFAULTS, "steps": 20, "seed": 0}
    assert not run.finished_with("pix2pix", config)  # no folder
    run.open("pix2pix", "quick", config)
    assert not run.finished_with("pix2pix", config)  # not finished
    run.set_progress(finished=True, steps=20)
    assert run.finished_with("pix2pix", config)
    assert not run.finished_with("cgan", config)
    assert not run.finished_with("pix2pix", {**config, "steps": 40})
    assert run.config_differences({**config, "steps": 40}) == {"steps": (20, 40)}
