"""The cluster of ``--strategy multiworker``: ``TF_CONFIG`` read and checked before TensorFlow sees it, the chief,
a rendezvous of the workers with a time limit, and the ``TF_CONFIG`` of N workers on free local ports (launch.py).

``TF_CONFIG`` is tf.distribute's own cluster description (README, "Several workers or machines"):
``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``, optionally with a
``"chief"`` job of one address.
"""

import errno
import json
import os
import socket
import time
from dataclasses import dataclass

from data.errors import I2IError

JOBS = ("chief", "worker")


@dataclass
class Cluster:
    """The workers of a ``TF_CONFIG`` and this process's place among them."""

    addresses: list  # every worker's "host:port", the chief first
    task_type: str
    index: int
    has_chief_job: bool = False

    @property
    def address(self):
        return self.addresses[self.rank]

    @property
    def rank(self):
        """0 for the chief, then the workers in ``TF_CONFIG`` order."""
        offset = 1 if self.task_type == "worker" and self.has_chief_job else 0
        return offset + self.index

    @property
    def is_chief(self):
        """The chief writes the run folder: the ``chief`` task, or worker 0 when there is no chief job."""
        return self.rank == 0

    @property
    def size(self):
        return len(self.addresses)


def _split_address(address, where):
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise I2IError(f"TF_CONFIG: {where} is {address!r}, not host:port")
    return host, int(port)


def read_tf_config(text=None):
    """The :class:`Cluster` of ``$TF_CONFIG`` (or ``text``); one clear error for every way it can be wrong."""
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise I2IError("--strategy multiworker needs TF_CONFIG, the cluster description of tf.distribute; start the "
                       "workers with train_scripts/launch.py, or see the README's 'Several workers or machines'")
    try:
        conf = json.loads(text)
    except ValueError as e:
        raise I2IError(f"TF_CONFIG is not JSON ({e}): {text[:200]!r}") from None
    if not isinstance(conf, dict):
        raise I2IError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task', got {type(conf).__name__}")
    cluster, task = conf.get("cluster"), conf.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise I2IError("TF_CONFIG has no 'cluster' (a mapping of job names to lists of host:port)")
    if not isinstance(task, dict):
        raise I2IError("TF_CONFIG has no 'task' ({\"type\": \"worker\", \"index\": i}): which worker is this process?")
    unknown = sorted(set(cluster) - set(JOBS))
    if unknown:
        raise I2IError(f"TF_CONFIG: cluster jobs {unknown} are not used by multiworker training (only 'chief' and "
                       "'worker'; parameter servers are another strategy)")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise I2IError(f"TF_CONFIG: cluster['{job}'] must be a non-empty list of host:port")
    if len(cluster.get("chief", [])) > 1:
        raise I2IError(f"TF_CONFIG: a cluster has one chief, got {len(cluster['chief'])}")
    addresses = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
    for job in JOBS:
        for i, address in enumerate(cluster.get(job, [])):
            _split_address(address, f"cluster['{job}'][{i}]")
    if len(set(addresses)) < len(addresses):
        raise I2IError(f"TF_CONFIG: two workers share an address: {addresses}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise I2IError(f"TF_CONFIG: task type {task_type!r} is not a job of the cluster ({sorted(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task_type]):
        raise I2IError(f"TF_CONFIG: task index {index!r} is out of range: cluster['{task_type}'] has "
                       f"{len(cluster[task_type])} address(es), indices 0 to {len(cluster[task_type]) - 1}")
    return Cluster(addresses, task_type, index, has_chief_job="chief" in cluster)


def _bind_host(host):
    return "127.0.0.1" if host in ("localhost", "127.0.0.1") else ""


def join_cluster(cluster, timeout_s):
    """Wait until every other worker of ``cluster`` answers on its port, listening on this worker's port meanwhile.

    ``MultiWorkerMirroredStrategy()`` waits for every worker without a time limit, inside a call that Python cannot
    interrupt: a worker that cannot reach the others would hang. This rendezvous comes first and fails with an
    :class:`I2IError` naming the workers that did not answer within ``timeout_s`` (0: no limit), or naming this
    worker's port if another process holds it. The listener never accepts, so closing it leaves the port free for
    TensorFlow's server at once.
    """
    host, port = _split_address(cluster.address, "this task's address")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((_bind_host(host), port))
        listener.listen(64)
    except OSError as e:
        listener.close()
        if e.errno == errno.EADDRINUSE:
            raise I2IError(f"TF_CONFIG: this worker's address {cluster.address} is in use by another process (a "
                           "worker of an earlier run still running?); free the port or choose another") from None
        raise I2IError(f"TF_CONFIG: cannot listen on {cluster.address}: {e.strerror}") from None
    deadline = time.monotonic() + timeout_s
    pending = [a for a in cluster.addresses if a != cluster.address]
    try:
        while pending:
            pending = unreachable(pending, timeout=0.5)
            if pending and timeout_s > 0 and time.monotonic() >= deadline:
                raise I2IError(f"worker {cluster.rank} ({cluster.address}) could not join the cluster within "
                               f"{timeout_s:g} s: no answer from {', '.join(pending)}. Start every worker of TF_CONFIG "
                               "(each with its own task index), check that these addresses are reachable from this "
                               "machine, or raise --cluster-timeout.")
            if pending:
                time.sleep(0.2)
    finally:
        listener.close()


def unreachable(addresses, timeout=1.0):
    """The addresses of ``addresses`` that refuse or time out a TCP connection."""
    missing = []
    for address in addresses:
        host, port = _split_address(address, "address")
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError:
            missing.append(address)
    return missing


def free_ports(n, host="127.0.0.1"):
    """``n`` distinct ports free on ``host`` right now."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_configs(n, host="127.0.0.1"):
    """The ``TF_CONFIG`` of each of ``n`` workers on free ports of ``host`` (worker 0 is the chief)."""
    addresses = [f"{host}:{port}" for port in free_ports(n, host)]
    return [json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}}) for i in range(n)]
