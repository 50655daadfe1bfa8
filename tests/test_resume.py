"""Interrupted runs resume from their last checkpoint and end where an uninterrupted run ends.

Training is deterministic on CPU here (same seed, stateless data stream keyed by step), so the
resumed run's final weights must *equal* the uninterrupted run's, not just be close.
"""

import json
import os
import signal

import numpy as np
import pytest

from run_helpers import run, saved_epoch, start_and_stop, steps_logged, weights

# A sample grid at every checkpoint, translated with dropout on: its masks come from the generators that training draws
# from too, so the resumed run must restore them as they were after the grid was drawn.
TINY = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--log-every", "10",
        "--checkpoint-every", "20", "--sample-every", "20", "--dropout-at-test", "--verbose", "0"]
STEPS = 140  # two interruptions, after the checkpoints at steps 40 and 60-80, each with time enough to land mid-run


@pytest.fixture(scope="module")
def args(tiny_facades):
    """The tiny run on the 32 px facades folder (not the quick preset's synthetic set, rendered anew by every
    process; the data do not matter here, only that every run sees the same)."""
    return [*TINY, "--data", str(tiny_facades)]


def _run(args, out, steps, repo):
    return run("pix2pix", args, out, steps, repo)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, repo_dir, args):
    out = tmp_path_factory.mktemp("uninterrupted")
    done = _run(args, out, STEPS, repo_dir)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_run_stopped_by_ctrl_c_then_killed_resumes_to_the_same_end(tmp_path, repo_dir, args, reference):
    """Ctrl-C (a checkpoint at the end of the current interval, a clean exit), then kill -9 of the resumed run (the
    last periodic checkpoint), then the same command once more: the weights of the uninterrupted run."""
    out = tmp_path / "run"
    code, stdout, stderr = start_and_stop("pix2pix", args, out, STEPS, repo_dir, signal.SIGINT, after_epoch=4)
    assert code != 0 and not os.path.exists(out / "progress.json")
    assert "checkpoint saved at step" in stdout and "Run the same command again" in stdout
    assert "Traceback" not in stderr
    first_stop = saved_epoch(out) * 10
    code, stdout, _ = start_and_stop("pix2pix", args, out, STEPS, repo_dir, signal.SIGKILL,
                                     after_epoch=first_stop // 10 + 2)
    assert code != 0 and not os.path.exists(out / "progress.json")
    assert f"resuming {out} from its checkpoint at step {first_stop} of {STEPS}" in stdout
    second_stop = saved_epoch(out) * 10
    assert 40 <= first_stop < second_stop < STEPS

    resumed = _run(args, out, STEPS, repo_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out} from its checkpoint at step {second_stop} of {STEPS}" in resumed.stdout
    assert steps_logged(out) == list(range(10, STEPS + 1, 10))  # the loss curve continues, no gaps or repeats
    sessions = [json.loads(line) for line in open(out / "sessions.jsonl")]
    assert [s["start_step"] for s in sessions] == [0, first_stop, second_stop] and sessions[-1]["end_step"] == STEPS
    assert [s["status"] for s in sessions] == ["stopped", "running", "finished"]  # kill -9 left its session open
    assert sessions[-1]["commit"]

    a, b = weights(out / "model.weights.h5"), weights(reference / "model.weights.h5")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.slow
def test_finished_run_is_not_trained_again(reference, repo_dir, args):
    before = weights(reference / "model.weights.h5")
    again = _run(args, reference, STEPS, repo_dir)
    assert again.returncode == 0 and "already finished" in again.stdout
    after = weights(reference / "model.weights.h5")
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_other_config_in_the_same_folder_is_refused(reference, repo_dir, args):
    other = _run(args, reference, 300, repo_dir)
    assert other.returncode == 2 and "different config" in other.stderr
    assert f"steps: {STEPS} there, 300 now" in other.stderr


@pytest.mark.slow
def test_larger_budget_continues_a_run_that_finished_on_its_budget(tmp_path, repo_dir, args, reference):
    out = tmp_path / "run"
    first = _run_with_budget(args, out, "0.0001", repo_dir)  # 6 ms: the budget is reached at the first logging interval
    assert first.returncode == 0, first.stderr
    assert json.load(open(out / "progress.json")) == {"finished": True, "steps": 10, "budget_reached": True}

    smaller = _run_with_budget(args, out, "0.00005", repo_dir)
    assert smaller.returncode == 2 and "budget_minutes: 0.0001 there, 5e-05 now" in smaller.stderr

    more = _run_with_budget(args, out, "60", repo_dir)
    assert more.returncode == 0, more.stderr
    assert f"extending the training budget of {out} from 0.0001 to 60 min" in more.stdout
    assert f"resuming {out} from its checkpoint at step 10 of {STEPS}" in more.stdout
    assert json.load(open(out / "config.json"))["config"]["budget_minutes"] == 60
    assert json.load(open(out / "progress.json")) == {"finished": True, "steps": STEPS, "budget_reached": False}
    assert steps_logged(out) == list(range(10, STEPS + 1, 10))
    a, b = weights(out / "model.weights.h5"), weights(reference / "model.weights.h5")
    for name in a:  # the budget stops training, it does not change it
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _run_with_budget(args, out, minutes, repo):
    return run("pix2pix", args + ["--budget-minutes", minutes], out, STEPS, repo)
