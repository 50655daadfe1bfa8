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
