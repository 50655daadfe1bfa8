"""The demo's command line: ``python -m train_scripts.demo [RUN_DIR ...]`` (or ``python train_scripts/demo``) loads
the runs, then serves the page until Ctrl-C."""

import argparse
import logging
import os
import sys

import train_scripts.demo
from data.errors import I2IError
from train_scripts.demo.app import DEFAULT_MAX_BODY_MB, DEFAULT_MAX_PIXELS, DemoApp
from train_scripts.demo.runs import resolve_runs
from train_scripts.demo.server import DEFAULT_PORT, HOST, bind
from train_scripts.demo.translators import load_models
from train_scripts.training.config import workspace_root

log = logging.getLogger("i2i.demo")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train_scripts.demo",
                                description=train_scripts.demo.__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="run folders or exported models (export.py), or compare.py folders whose subfolders are runs "
                        "(default: every finished run and exported model under --runs-root, newest first)")
    p.add_argument("--runs-root", default=os.path.join(workspace_root(), "runs"),
                   help="where runs are looked for when no RUN_DIR is given")
    p.add_argument("--port", type=int, default=None,
                   help=f"port on {HOST} (default: {DEFAULT_PORT}, or a free port if it is taken; 0: a free port)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse uploaded images with more pixels than this")
    p.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB,
                   help="refuse request bodies larger than this many MiB")
    p.add_argument("--parser", metavar="DIR",
                   help="facade parser folder for the segmentation score of each output (default: "
                        "$I2I_FACADE_PARSER, else metrics/weights/facade_parser/; without one the page says the "
                        "score is unavailable)")
    return p


def load_parser(path):
    """(the facade parser or None, a note for the page): a missing or broken parser leaves the score out."""
    from metrics.facade_parser import load_facade_parser
    from metrics.weights import WeightsError

    try:
        return load_facade_parser(path), ""
    except WeightsError as e:
        log.warning("no segmentation score: %s", e)
        return None, "the segmentation score is unavailable: the facade parser's weights are not installed"


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        if args.port is not None and not 0 <= args.port < 65536:
            raise I2IError(f"--port must be between 0 and 65535, got {args.port}")
        if args.max_pixels < 1 or args.max_body_mb <= 0:
            raise I2IError("--max-pixels and --max-body-mb must be positive")
        run_dirs, problems = resolve_runs(args.runs, os.path.normpath(args.runs_root))
        for path, problem in problems:
            log.error("%s: %s", path, problem)
        models, failures = load_models(run_dirs)
        parser, parser_note = load_parser(args.parser)
        app = DemoApp(models, problems + failures, args.max_pixels, int(args.max_body_mb * 2 ** 20), parser,
                      parser_note)
        server = bind(app, args.port)
    except I2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"serving {len(models)} model(s) ({', '.join(app.models) or 'none'}; {len(app.failures)} not loaded) "
          f"at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
