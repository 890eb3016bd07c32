"""``python -m stability.lopt._records`` (or ``python -m stability.cli.records``):
condense meta-training run directories or ``stability evaluate`` outputs into the
small JSON records that ``stability reproduce`` draws (:mod:`stability.lopt._records`).

    python -m stability.lopt._records meta-training NAME=RUN_DIR ... --out FILE
    python -m stability.lopt._records evaluation EVAL_DIR ... --out FILE
"""

import argparse
import pathlib

from stability.lopt import _records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stability.lopt._records")
    sub = parser.add_subparsers(dest="what", required=True)
    mt = sub.add_parser("meta-training", help="condense meta-training run directories")
    mt.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    mt.add_argument("--every", type=int, default=10)
    mt.add_argument("--window", type=int, default=50)
    mt.add_argument("--out", default=str(_records.RECORDS_DIR / _records.META_TRAINING))
    ev = sub.add_parser("evaluation", help="condense a stability evaluate --out dir")
    ev.add_argument("eval_dirs", nargs="+", metavar="EVAL_DIR")
    ev.add_argument("--points", type=int, default=100)
    ev.add_argument("--out", default=str(_records.RECORDS_DIR / _records.EVALUATION))
    args = parser.parse_args(argv)
    if args.what == "meta-training":
        runs = {}
        for spec in args.runs:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                parser.error(f"runs: expected NAME=RUN_DIR, got {spec!r}")
            runs[name] = path
        record = _records.compact_meta_training(
            runs, every=args.every, window=args.window
        )
    else:
        record = _records.compact_evaluation(args.eval_dirs, points=args.points)
    _records._write_json(record, args.out)
    print(f"wrote {args.out} ({pathlib.Path(args.out).stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
