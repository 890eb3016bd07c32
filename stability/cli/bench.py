"""``stability bench NAME ...``: run ``benchmarks/bench_NAME.py`` of a source
checkout with the arguments that follow."""

import argparse
import pathlib
import sys

#: the benchmark scripts the command runs
BENCHMARKS = ("regions", "step", "meta_train")


def add_parser(sub):
    """Register ``bench`` on an argparse sub-parser collection."""
    p = sub.add_parser(
        "bench",
        help="run a benchmark script from a source checkout",
        description="Run benchmarks/bench_NAME.py with the arguments that follow "
        "(stability bench NAME --help lists them); needs a source checkout.",
    )
    p.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    p.add_argument(
        "rest", nargs=argparse.REMAINDER, help="arguments for the benchmark script"
    )
    p.set_defaults(run=run)


def run(args):
    """Run ``benchmarks/bench_NAME.py``; its exit status."""
    import runpy

    root = pathlib.Path(__file__).resolve().parents[2]
    script = root / "benchmarks" / f"bench_{args.name}.py"
    if not script.exists():
        raise FileNotFoundError(f"{script} (benchmarks live in a source checkout)")
    saved = sys.argv
    sys.argv = [f"stability bench {args.name}", *args.rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:  # the script's own exit status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.argv = saved
    return 0
