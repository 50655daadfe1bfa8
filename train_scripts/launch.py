"""Start N training workers on this machine, as a cluster of several machines would run them.

    python train_scripts/launch.py --workers 2 -- train_scripts/pix2pix.py --preset quick --out runs/p2p-2w

Each worker is the train script with ``--strategy multiworker`` and its own ``TF_CONFIG`` (free ports on 127.0.0.1;
worker 0 is the chief), all in a private network namespace where available (Linux ``unshare``), so that their
servers cannot be reached from outside. The chief's output is shown here, the others' go to log files whose tail is
printed if they fail. If one worker fails, the others are stopped. Ctrl-C is passed to every worker once (finish the
logging interval, checkpoint, stop); a second Ctrl-C stops them at once. The same command resumes an interrupted run.
On a real cluster, start the train script on every machine with that machine's ``TF_CONFIG`` instead (README,
"Several workers or machines").
"""

import argparse
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from train_scripts.training.cluster import local_tf_configs

ISOLATED = "I2I_LAUNCH_PRIVATE_NETWORK"


def private_network(argv):
    """Run this launcher again inside a private network namespace (``unshare --user --net``) whose only interface is
    its own loopback: TensorFlow's servers listen on every interface of their port ("0.0.0.0", not configurable), and
    there nothing outside this launcher can reach them. Returns whether the workers are isolated (it does not return
    when it re-runs the launcher)."""
    if os.environ.get(ISOLATED) == "1":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # bring the namespace's loopback up
            flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]  # SIOCGIFFLAGS
            fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 0x1))  # SIOCSIFFLAGS, IFF_UP
        return True
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--user", "--map-root-user", "--net", "true"],
                                  capture_output=True).returncode == 0:
        os.environ[ISOLATED] = "1"
        os.execv(unshare, [unshare, "--user", "--map-root-user", "--net", sys.executable, os.path.abspath(__file__),
                           *argv])
    return False


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python train_scripts/launch.py", description=__doc__.split("\n\n")[0],
                                usage="%(prog)s [--workers N] [--cores-per-worker K] -- SCRIPT.py [ARGS ...]")
    p.add_argument("--workers", type=int, default=2, help="number of worker processes")
    p.add_argument("--cores-per-worker", type=int, default=0,
                   help="pin worker i to cores i*K .. i*K+K-1 (0: no pinning)")
    p.add_argument("--log-dir", default=None, help="folder for the other workers' output (default: a temporary one)")
    p.add_argument("--shared-network", action="store_true",
                   help="run the workers in this machine's network instead of a private one (their servers then "
                        "listen on all interfaces of their ports)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the train script and its arguments, after --")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or not command[0].endswith(".py"):
        p.error("give the train script and its arguments after --, e.g. -- train_scripts/pix2pix.py --preset quick")
    if not os.path.isfile(command[0]):
        p.error(f"{command[0]}: no such script")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    strategy = [a for i, a in enumerate(command) if command[i - 1] == "--strategy" or a.startswith("--strategy=")]
    if strategy and strategy[-1].split("=")[-1] != "multiworker":
        p.error(f"the workers run with --strategy multiworker, not {strategy[-1].split('=')[-1]}")
    if not strategy:
        command += ["--strategy", "multiworker"]
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    if args.cores_per_worker * args.workers > len(cores):
        p.error(f"--cores-per-worker {args.cores_per_worker} x --workers {args.workers} needs more than the "
                f"{len(cores)} cores available")
    return args, command


def start_workers(args, command, log_dir):
    """Popen objects of the workers (the chief first), each in its own session so that Ctrl-C reaches it once."""
    cores = sorted(os.sched_getaffinity(0)) if args.cores_per_worker else []
    workers, logs = [], []
    for i, tf_config in enumerate(local_tf_configs(args.workers)):
        mine = set(cores[i * args.cores_per_worker:(i + 1) * args.cores_per_worker])

        def in_child(mine=mine):  # before the worker starts: its cores, and its end if the launcher dies
            if mine:
                os.sched_setaffinity(0, mine)
            prctl = getattr(ctypes.CDLL(None), "prctl", None)  # Linux
            if prctl is not None:
                prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

        out = None
        if i:
            logs.append(os.path.join(log_dir, f"worker-{i}.log"))
            out = open(logs[-1], "w")
        workers.append(subprocess.Popen([sys.executable, *command], env=dict(os.environ, TF_CONFIG=tf_config),
                                        stdout=out, stderr=subprocess.STDOUT if out else None, preexec_fn=in_child,
                                        start_new_session=True))
        if out:
            out.close()
    return workers, logs


def stop(workers, grace_s=10.0):
    """Terminate the workers still running; kill those that do not stop within ``grace_s``."""
    for w in workers:
        if w.poll() is None:
            w.terminate()
    deadline = time.monotonic() + grace_s
    for w in workers:
        try:
            w.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args, command = parse_args(argv)
    isolated = not args.shared_network and private_network(argv)
    if not isolated and not args.shared_network:
        print("launch: note: no private network namespace here (unshare --user --net failed); the workers' "
              "TensorFlow servers listen on all interfaces of their ports", file=sys.stderr, flush=True)
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="i2i-workers-")
    os.makedirs(log_dir, exist_ok=True)
    code = run_workers(args, command, log_dir, isolated)
    if code == 0 and not args.log_dir:
        shutil.rmtree(log_dir, ignore_errors=True)
    return code


def run_workers(args, command, log_dir, isolated):
    """Start the workers, watch them until they end; returns the exit code of the launch."""
    workers, logs = start_workers(args, command, log_dir)
    print(f"launch: {args.workers} workers on 127.0.0.1{' of a private network' if isolated else ''} (pids "
          f"{', '.join(str(w.pid) for w in workers)}); the other workers' output: {log_dir}", file=sys.stderr,
          flush=True)
    interrupts = []

    def forward(signum, frame):
        interrupts.append(signum)
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # stop the workers on the way out
    try:
        while True:
            codes = [w.poll() for w in workers]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed and interrupts:  # Ctrl-C: every worker finishes its checkpoint and stops by itself
                for w in workers:
                    w.wait()
                return workers[0].returncode
            if failed:
                i = failed[0]
                stop(workers)
                if i:
                    print(f"launch: worker {i} failed (exit code {codes[i]}); stopped the others. Its last output "
                          f"({logs[i - 1]}):\n{tail(logs[i - 1])}", file=sys.stderr, flush=True)
                return codes[i] if codes[i] > 0 else 128 - codes[i]
            if all(c == 0 for c in codes):
                return 0
            if codes[0] == 0:  # the chief finished (scores, run folder): the others have nothing left to do
                for w in workers[1:]:
                    try:
                        w.wait(30)
                    except subprocess.TimeoutExpired:
                        pass
                return 0
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGINT, previous)
        stop(workers)


if __name__ == "__main__":
    sys.exit(main())
