"""``--strategy multiworker``: the cluster description is checked before training, a worker that cannot
reach the others gives up with a message, and a cluster that lost a worker (``kill -9``) resumes with the same
command. That several workers train what one device trains is shown in test_distribute.py."""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from data.errors import I2IError
from run_helpers import env, tiny_args, weights
from train_scripts.training.cluster import join_cluster, local_tf_configs, read_tf_config

ENV = env()  # quiet TensorFlow; this checkout and tests/ (batch_invariant.py) on the path


def _config(cluster, task):
    return json.dumps({"cluster": cluster, "task": task})


WORKERS = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}


@pytest.mark.parametrize("text, problem", [
    ("", "needs TF_CONFIG"),
    ("{cluster: 1}", "not JSON"),
    ("[1, 2]", "JSON object"),
    (_config(None, {"type": "worker", "index": 0}), "no 'cluster'"),
    (json.dumps({"cluster": WORKERS}), "no 'task'"),
    (_config(WORKERS, {"type": "worker", "index": 2}), r"index 2 is out of range.*indices 0 to 1"),
    (_config(WORKERS, {"type": "worker", "index": -1}), "out of range"),
    (_config(WORKERS, {"type": "ps", "index": 0}), "task type 'ps' is not a job"),
    (_config({**WORKERS, "ps": ["127.0.0.1:2224"]}, {"type": "worker", "index": 0}), "parameter servers"),
    (_config({"worker": ["127.0.0.1"]}, {"type": "worker", "index": 0}), r"'127.0.0.1', not host:port"),
    (_config({"worker": ["127.0.0.1:99999"]}, {"type": "worker", "index": 0}), "not host:port"),
    (_config({"worker": ["a:1", "a:1"]}, {"type": "worker", "index": 0}), "share an address"),
    (_config({"chief": ["a:1", "b:1"]}, {"type": "chief", "index": 0}), "one chief"),
])
def test_malformed_tf_config_is_named(text, problem):
    with pytest.raises(I2IError, match=problem):
        read_tf_config(text)


def test_cluster_roles():
    two = read_tf_config(_config(WORKERS, {"type": "worker", "index": 1}))
    assert (two.size, two.rank, two.is_chief, two.address) == (2, 1, False, "127.0.0.1:2223")
    assert read_tf_config(_config(WORKERS, {"type": "worker", "index": 0})).is_chief
    with_chief = {"chief": ["127.0.0.1:2221"], **WORKERS}
    assert read_tf_config(_config(with_chief, {"type": "chief", "index": 0})).is_chief
    worker0 = read_tf_config(_config(with_chief, {"type": "worker", "index": 0}))
    assert (worker0.rank, worker0.is_chief, worker0.size) == (1, False, 3)
    configs = [json.loads(c) for c in local_tf_configs(3)]
    assert [c["task"]["index"] for c in configs] == [0, 1, 2]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)


def test_port_in_use_is_refused():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cluster = read_tf_config(_config({"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]}, {"type": "worker",
                                                                                             "index": 0}))
        with pytest.raises(I2IError, match=f"127.0.0.1:{port} is in use"):
            join_cluster(cluster, 1)
    with pytest.raises(I2IError, match="could not join the cluster within 1 s: no answer from 127.0.0.1:1"):
        join_cluster(cluster, 1)  # its own port free again: now it waits for the other worker


@pytest.mark.slow
def test_train_script_refuses_bad_tf_config_before_training(tmp_path, tiny_facades, repo_dir):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "train_scripts/pix2pix.py", *tiny_args("pix2pix", tiny_facades),
                           "--strategy", "multiworker", "--out", str(out)], cwd=repo_dir, capture_output=True,
                          text=True, timeout=300, env=dict(ENV, TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:1"]}}'))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: TF_CONFIG has no 'task'" in done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_unreachable_worker_gives_up_with_a_message(tmp_path, tiny_facades, repo_dir):
    chief, _ = local_tf_configs(2)  # nobody starts worker 1
    missing = json.loads(chief)["cluster"]["worker"][1]
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "train_scripts/pix2pix.py", *tiny_args("pix2pix", tiny_facades),
                           "--strategy", "multiworker", "--cluster-timeout", "5", "--out", str(tmp_path / "run")],
                          cwd=repo_dir, capture_output=True, text=True, timeout=120, env=dict(ENV, TF_CONFIG=chief))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"could not join the cluster within 5 s: no answer from {missing}" in done.stderr
    assert time.monotonic() - t0 < 60


def _launch(repo_dir, args, log_dir):
    return subprocess.Popen([sys.executable, "train_scripts/launch.py", "--workers", "2", "--log-dir", str(log_dir),
                             "--", "tests/batch_invariant.py", "pix2pix", *args], cwd=repo_dir, env=ENV,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _committed_step(run, log_every):
    try:
        with open(run / "backup" / "training_metadata.json") as f:
            return json.load(f)["epoch"] * log_every
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_killed_worker_resumes_with_the_same_command(tmp_path, tiny_facades, repo_dir):
    """kill -9 one worker after the first checkpoint: the launcher stops the other and fails; the same command
    resumes both workers from that checkpoint and ends with the weights of an uninterrupted 2-worker run."""
    steps = 60
    base = tiny_args("pix2pix", tiny_facades, steps=steps, batch_size=4) + ["--log-every", "10", "--checkpoint-every",
                                                                            "20", "--sample-every", str(steps)]
    run, reference = tmp_path / "run", tmp_path / "reference"
    first = _launch(repo_dir, [*base, "--out", str(run)], tmp_path / "logs")
    line = first.stderr.readline()
    if "note: no private network" in line:
        line = first.stderr.readline()
    else:  # TensorFlow's servers listen on all interfaces: the workers run where only their loopback exists
        assert "of a private network" in line
    pids = [int(p) for p in re.search(r"pids ([\d, ]+)\)", line).group(1).split(", ")]
    assert all(os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net") for pid in pids) == (
        "of a private network" in line)
    deadline = time.monotonic() + 300
    while _committed_step(run, 10) < 20 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed_at = _committed_step(run, 10)
    assert first.poll() is None and 20 <= killed_at < steps, "the run ended before a worker could be killed"
    os.kill(pids[1], signal.SIGKILL)
    stderr = first.communicate(timeout=120)[1]
    assert first.returncode != 0 and "worker 1 failed" in stderr, stderr[-2000:]
    assert all(_gone(pid) for pid in pids)

    second = _launch(repo_dir, [*base, "--out", str(run)], tmp_path / "logs")
    ref = _launch(repo_dir, [*base, "--out", str(reference)], tmp_path / "ref-logs")
    for proc in (second, ref):
        proc.communicate(timeout=600)
        assert proc.returncode == 0
    with open(run / "sessions.jsonl") as f:
        sessions = [json.loads(line) for line in f]
    assert len(sessions) == 2 and sessions[1]["status"] == "finished"  # the first was killed while "running"
    assert sessions[1]["start_step"] >= killed_at and sessions[1]["workers"] == 2
    with open(run / "log.csv") as f:
        assert [int(float(row["step"])) for row in csv.DictReader(f)] == list(range(10, steps + 10, 10))
    resumed, uninterrupted = weights(run / "model.weights.h5"), weights(reference / "model.weights.h5")
    for key in uninterrupted:
        np.testing.assert_allclose(resumed[key], uninterrupted[key], atol=1e-6, err_msg=key)


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its parent counts as gone
        return f.read().split(")")[-1].split()[0] == "Z"
