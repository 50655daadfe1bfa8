"""Training throughput of one process vs several workers on this machine (figures printed, never asserted).

    python -m train_scripts.bench.workers --data ../shared/data/facades --model pix2pix --image-size 64 \\
        --batch-size 4 --steps 200 --workers 1,2

Each configuration is a real training run through ``launch.py`` with every worker pinned to its own core(s)
(``--cores-per-worker``), plus the one-process baseline (``--strategy default``) pinned to one worker's cores. The
global batch is the same in all; images/s is measured from the run's ``log.csv`` over every logging interval after
the first (which includes tracing), so it covers the whole step: input pipeline, gradients and their all-reduce.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

from train_scripts.training.registry import train_script

COMMANDS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # train_scripts/: launch.py


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="paired dataset folder")
    p.add_argument("--model", default="pix2pix", help="train script name")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4, help="global batch (split over the workers)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--cores-per-worker", type=int, default=1)
    p.add_argument("--set", default="{}", help="extra model flags as JSON, e.g. '{\"generator\": \"pix2pix\"}'")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    return p.parse_args(argv)


def _throughput(run, batch_size, log_every):
    with open(os.path.join(run, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        raise SystemExit(f"{run}: fewer than two logging intervals; raise --steps")
    seconds = float(rows[-1]["wall_time_s"]) - float(rows[0]["wall_time_s"])
    return (len(rows) - 1) * log_every * batch_size / seconds, seconds


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    extra = []
    for key, value in json.loads(args.set).items():
        extra += [f"--{key.replace('_', '-')}", str(value)]
    train = [train_script(args.model), "--preset", "quick", "--data", args.data,
             "--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
             "--log-every", str(args.log_every), "--checkpoint-every", str(args.steps), "--sample-every",
             str(args.steps), "--val-images", str(args.batch_size), "--verbose", "0", *extra]
    cores = sorted(os.sched_getaffinity(0))[:args.cores_per_worker]
    configs = [("1 process (--strategy default)", 1, None)]
    configs += [(f"{n} worker{'s' * (n > 1)} (multiworker)", n, n) for n in map(int, args.workers.split(","))]
    results = []
    with tempfile.TemporaryDirectory(prefix="i2i-bench-workers-") as tmp:
        for i, (name, n, workers) in enumerate(configs):
            out = os.path.join(tmp, f"run{i}")
            if workers is None:
                command = [sys.executable, *train, "--out", out]
                preexec = lambda: os.sched_setaffinity(0, cores)  # noqa: E731
            else:
                command = [sys.executable, os.path.join(COMMANDS, "launch.py"), "--workers", str(n),
                           "--cores-per-worker", str(args.cores_per_worker), "--log-dir", os.path.join(tmp, f"logs{i}"),
                           "--", *train, "--out", out]
                preexec = None
            t0 = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, preexec_fn=preexec,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            images_s, seconds = _throughput(out, args.batch_size, args.log_every)
            results.append({"config": name, "workers": n, "cores": n * args.cores_per_worker,
                            "images_per_s": round(images_s, 2), "measured_s": round(seconds, 1),
                            "total_s": round(time.perf_counter() - t0, 1)})
            print(f"{name:34s} {n * args.cores_per_worker} core(s): {images_s:7.2f} images/s "
                  f"(steps {args.log_every + 1}-{args.steps}, {seconds:.1f} s)", flush=True)
    base = results[0]["images_per_s"]
    for r in results[1:]:
        print(f"{r['config']}: {r['images_per_s'] / base:.2f}x the one-process figure")
    if args.json:
        print(json.dumps({"args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
