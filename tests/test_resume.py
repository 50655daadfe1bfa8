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

TINY = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--log-every", "10",
        "--checkpoint-every", "20", "--sample-every", "100", "--verbose", "0"]


def _run(out, steps, repo):
    return run("pix2pix", TINY, out, steps, repo)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, repo_dir):
    out = tmp_path_factory.mktemp("uninterrupted")
    done = _run(out, 200, repo_dir)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_run_resumes_to_the_same_end(tmp_path, repo_dir, reference, sig):
    out = tmp_path / "run"
    code, stdout, stderr = start_and_stop("pix2pix", TINY, out, 200, repo_dir, sig, after_epoch=4)
    assert code != 0 and not os.path.exists(out / "progress.json")
    if sig == signal.SIGINT:  # Ctrl-C: a checkpoint at the end of the current interval, a clean exit, a hint
        assert "checkpoint saved at step" in stdout and "Run the same command again" in stdout
        assert "Traceback" not in stderr
    interrupted_at = saved_epoch(out) * 10
    assert 40 <= interrupted_at < 200

    resumed = _run(out, 200, repo_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out} from its checkpoint at step {interrupted_at} of 200" in resumed.stdout
    assert steps_logged(out) == list(range(10, 201, 10))  # the loss curve continues, no gaps or repeats
    sessions = [json.loads(line) for line in open(out / "sessions.jsonl")]
    assert [s["start_step"] for s in sessions] == [0, interrupted_at] and sessions[-1]["end_step"] == 200
    assert sessions[0]["status"] == ("running" if sig == signal.SIGKILL else "stopped")  # kill -9 left it open
    assert sessions[-1]["status"] == "finished" and sessions[-1]["commit"]

    a, b = weights(out / "model.weights.h5"), weights(reference / "model.weights.h5")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.slow
def test_finished_run_is_not_trained_again(reference, repo_dir):
    before = weights(reference / "model.weights.h5")
    again = _run(reference, 200, repo_dir)
    assert again.returncode == 0 and "already finished" in again.stdout
    after = weights(reference / "model.weights.h5")
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_other_config_in_the_same_folder_is_refused(reference, repo_dir):
    other = _run(reference, 300, repo_dir)
    assert other.returncode == 2 and "different config" in other.stderr and "steps: 200 there, 300 now" in other.stderr


@pytest.mark.slow
def test_larger_budget_continues_a_run_that_finished_on_its_budget(tmp_path, repo_dir, reference):
    out = tmp_path / "run"
    first = _run_with_budget(out, "0.0001", repo_dir)  # 6 ms: the budget is reached at the first logging interval
    assert first.returncode == 0, first.stderr
    assert json.load(open(out / "progress.json")) == {"finished": True, "steps": 10, "budget_reached": True}

    smaller = _run_with_budget(out, "0.00005", repo_dir)
    assert smaller.returncode == 2 and "budget_minutes: 0.0001 there, 5e-05 now" in smaller.stderr

    more = _run_with_budget(out, "60", repo_dir)
    assert more.returncode == 0, more.stderr
    assert f"extending the training budget of {out} from 0.0001 to 60 min" in more.stdout
    assert f"resuming {out} from its checkpoint at step 10 of 200" in more.stdout
    assert json.load(open(out / "config.json"))["config"]["budget_minutes"] == 60
    assert json.load(open(out / "progress.json")) == {"finished": True, "steps": 200, "budget_reached": False}
    assert steps_logged(out) == list(range(10, 201, 10))
    a, b = weights(out / "model.weights.h5"), weights(reference / "model.weights.h5")
    for name in a:  # the budget stops training, it does not change it
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _run_with_budget(out, minutes, repo):
    return run("pix2pix", TINY + ["--budget-minutes", minutes], out, 200, repo)
