"""--budget-minutes: training stops on wall-clock time, the run counts as finished and is reused, not retrained."""

import json

import pytest

from run_helpers import log_rows, run, saved_epoch

TINY = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--log-every", "5",
        "--checkpoint-every", "50", "--sample-every", "50", "--verbose", "0"]


@pytest.mark.slow
def test_a_budget_run_stops_on_time_and_is_then_finished(tmp_path, repo_dir, tiny_facades):
    out = tmp_path / "run"
    # 6 s of training, far fewer than the 100 000 steps asked; the 32 px facades folder, not the synthetic set that
    # every process would render anew
    args = [*TINY, "--data", str(tiny_facades), "--budget-minutes", "0.1"]
    done = run("pix2pix", args, out, 100000, repo_dir)
    assert done.returncode == 0, done.stderr
    rows = log_rows(out)
    steps = int(rows[-1]["step"])
    assert 5 <= steps < 100000 and "training budget of 0.1 min reached at step" in done.stdout
    # it stops at the first interval past the budget
    assert rows[-1]["wall_time_s"] >= 6.0 and all(r["wall_time_s"] < 6.0 for r in rows[:-1])
    assert saved_epoch(out) * 5 == steps  # a checkpoint at the stopping step, not at the last interval multiple
    progress = json.load(open(out / "progress.json"))
    assert progress == {"finished": True, "steps": steps, "budget_reached": True}
    sessions = [json.loads(line) for line in open(out / "sessions.jsonl")]
    assert sessions[-1]["status"] == "finished" and sessions[-1]["end_step"] == steps

    again = run("pix2pix", args, out, 100000, repo_dir)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert int(log_rows(out)[-1]["step"]) == steps
