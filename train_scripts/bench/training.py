"""Training speed and input-pipeline throughput on this machine (figures printed, never asserted).

    python -m train_scripts.bench.training                 # Pix2Pix at 64/128/256 px, batch 1 and 4, XLA off/on
    python -m train_scripts.bench.training --sizes 64 --batches 4 --jit off --onednn both --generators study,pix2pix
    python -m train_scripts.bench.training --model ddim --mixed-precision none,mixed_bfloat16 --jit off
    python -m train_scripts.bench.training --pipeline-only --data /path/to/facades

Each configuration runs in a fresh process, because oneDNN (``TF_ENABLE_ONEDNN_OPTS``) is read
when TensorFlow is imported. A configuration trains on a fixed in-memory batch through
``model.fit`` (warm-up steps excluded), so the figure is the training step alone; the input
pipeline is timed separately, on the real data layout when ``--data`` is given.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time


def worker(job):
    """Runs inside the child process: time ``job['steps']`` training steps of one configuration."""
    import tensorflow as tf

    from train_scripts.training.config import COMMON_DEFAULTS
    from train_scripts.training.devices import build_model, precision_policy
    from train_scripts.training.registry import spec_for

    threads = job.get("threads")
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    spec = spec_for(job["model"])
    config = {**COMMON_DEFAULTS, **spec.presets["quick"], "image_size": job["size"], "batch_size": job["batch"],
              "jit_compile": job["jit"], "mixed_precision": job.get("precision", "none"), **job.get("overrides", {})}
    with precision_policy(config):
        return _time_fit(build_model(spec, config), job)


def _time_fit(model, job):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shape = (job["batch"], job["size"], job["size"], 3)
    batch = tuple(tf.constant(rng.uniform(-1, 1, shape).astype("float32")) for _ in range(2))
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=job["warmup"], epochs=1, verbose=0)
    warm = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.fit(ds, steps_per_epoch=job["steps"], epochs=1, verbose=0)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    # CPU seconds per step: on a machine shared with other jobs, wall time measures the neighbours as much as the
    # model; the process's CPU time is the steadier figure for comparing variants
    return {"steps_per_s": job["steps"] / elapsed, "images_per_s": job["steps"] * job["batch"] / elapsed,
            "cpu_s_per_step": cpu / job["steps"], "warmup_s": warm, "params": params}


def pipeline_throughput(data, size, batch, seconds=10.0):
    """Images/s of the training input pipeline alone (decode once, then augment + batch)."""
    from data.augment import load_size_for
    from data.pipeline import training_dataset
    from data.sources import open_source

    t0 = time.perf_counter()
    pairs = open_source(data).load("train", load_size_for(size))
    load = time.perf_counter() - t0
    ds = training_dataset(pairs.labels, pairs.photos, size, batch, steps=10**9, seed=0)
    it = iter(ds)
    next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(it)
        n += 1
    return {"decode_s": load, "images_per_s": n * batch / (time.perf_counter() - t0), "pairs": len(pairs)}


def run_child(job, onednn):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "train_scripts.bench.training", "--worker", json.dumps(job)], env=env,
                         capture_output=True, text=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}


def json_object(text):
    """The --set value: a JSON object of config overrides (argparse reports the error with the flag's name)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error.msg} at character {error.pos}): {text!r}; "
                                         "write e.g. '{\"widths\": [24, 48, 96, 128]}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"wants a JSON object of config overrides, got {text!r}")
    return value


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="pix2pix")
    p.add_argument("--sizes", default="64,128,256")
    p.add_argument("--batches", default="1,4")
    p.add_argument("--jit", default="both", choices=("off", "on", "both"))
    p.add_argument("--mixed-precision", default="none",
                   help="comma-separated dtype policies to time: none, mixed_float16, mixed_bfloat16 (or 'all')")
    p.add_argument("--onednn", default="on", choices=("off", "on", "both"))
    p.add_argument("--generators", default="study,pix2pix", help="Pix2Pix generator variants to time")
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = TensorFlow's default)")
    p.add_argument("--set", default={}, type=json_object,
                   help="extra config overrides as a JSON object, e.g. '{\"ngf\": 32}' or "
                        "'{\"widths\": [24, 48, 96, 128]}'")
    p.add_argument("--data", default="synthetic", help="data for the input-pipeline figure")
    p.add_argument("--pipeline-only", action="store_true")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))))
        return 0

    results = []
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    print(f"input pipeline ({args.data}, study jitter, parallel map + prefetch):")
    for size in sizes:
        r = pipeline_throughput(args.data, size, max(batches))
        results.append({"kind": "pipeline", "size": size, **r})
        print(f"  {size:>3} px: {r['images_per_s']:8.1f} images/s  "
              f"(decoding {r['pairs']} pairs once: {r['decode_s']:.1f} s)")
    if args.pipeline_only:
        return 0

    jits = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
    onednns = {"off": [False], "on": [True], "both": [True, False]}[args.onednn]
    generators = args.generators.split(",") if args.model == "pix2pix" else [None]
    from train_scripts.training.config import PRECISIONS

    precisions = list(PRECISIONS) if args.mixed_precision == "all" else args.mixed_precision.split(",")
    if set(precisions) - set(PRECISIONS):
        p.error(f"--mixed-precision: choose from {', '.join(PRECISIONS)} or all")
    extra = args.set
    print(f"\ntraining step ({args.model}; {args.steps} timed steps after {args.warmup} warm-up steps):")
    print(f"  {'variant':<10} {'px':>4} {'batch':>5} {'XLA':>4} {'oneDNN':>6} {'precision':>14} {'steps/s':>8} "
          f"{'images/s':>9} {'CPU s/step':>10} {'params':>11}")
    for gen, size, batch, jit, onednn, precision in itertools.product(generators, sizes, batches, jits, onednns,
                                                                       precisions):
        overrides = dict(extra, **({"generator": gen} if gen else {}))
        job = {"model": args.model, "size": size, "batch": batch, "jit": jit, "steps": args.steps,
               "warmup": args.warmup, "threads": args.threads, "overrides": overrides, "precision": precision}
        r = run_child(job, onednn)
        results.append({"kind": "train", **job, "onednn": onednn, **r})
        row = (f"  {gen or args.model:<10} {size:>4} {batch:>5} {'on' if jit else 'off':>4} "
               f"{'on' if onednn else 'off':>6} {precision:>14}")
        if "error" in r:
            print(f"{row}  error: {r['error']}")
        else:
            print(f"{row} {r['steps_per_s']:8.2f} {r['images_per_s']:9.2f} {r['cpu_s_per_step']:10.3f} "
                  f"{r['params']:11,d}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
