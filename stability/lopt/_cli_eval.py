"""``stability evaluate``: a meta-trained optimizer against tuned baselines.

    stability evaluate --theta FILE --task NAME [--horizons 1,10] [--seeds N]
                       [--out DIR] [--extra FILE ...] [--profile default|full|quick]

``--task`` takes a name, a comma-separated list or ``all``. Settings the command
line does not give come from the profile (``stability.lopt.evaluate.PROFILES``):
in ``default``, horizons of 1, 10 and 100 times the meta-training horizon on
``digits_mlp``, 1 and 10 on the other digits tasks and ``mnist1d_mlp``, 1 on the
rest, whose steps cost 1 to 40 ms (``--profile full``: 1, 10 and 100 everywhere).
Without ``--theta`` the thetas shipped in ``stability/lopt/thetas/`` are used.
Writes ``curves.npz``, ``eval.csv`` and ``eval.json`` in ``--out`` after every task
(``eval.json`` last, so the tasks it lists are complete) and prints the table. Bad
arguments: one line on stderr, exit code 2.
"""

import argparse
import pathlib
import sys
import time

SHIPPED = ("star.npz", "small_fc_lopt.npz")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, got {text!r}"
        )
    return values


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or not all(0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(
            f"expected positive numbers separated by commas, got {text!r}"
        )
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on an argparse sub-parser collection."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a meta-trained optimizer against tuned baselines",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--theta", help="STAR or small_fc_lopt theta (.npz)")
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="FILE",
        help="another theta to evaluate (small_fc_lopt, an ablation); repeatable",
    )
    p.add_argument("--task", required=True, help="task name, comma list or 'all'")
    p.add_argument("--horizons", type=_ints, help="multiples of the base horizon")
    p.add_argument("--seeds", type=_positive, default=3, help="held-out seeds")
    p.add_argument(
        "--tuning-seeds", type=_positive, help="default: the profile's (2 or 1)"
    )
    p.add_argument(
        "--screen",
        type=float,
        help="fraction of the first horizon where tuning keeps the --keep best",
    )
    p.add_argument("--profile", choices=("default", "full", "quick"), default="default")
    p.add_argument(
        "--base-horizon",
        type=_positive,
        help="meta-training horizon in steps (default: from the theta's metadata)",
    )
    p.add_argument("--nominal-stepsize", type=float, help="for a STAR theta")
    p.add_argument(
        "--keep",
        type=int,
        default=3,
        help="grid values continued past each horizon when tuning (0: all)",
    )
    p.add_argument(
        "--grid",
        type=_floats,
        help="tuning grid, comma-separated (default 1e-4 to 1 in half decades)",
    )
    p.add_argument("--record-every", type=_positive)
    p.add_argument(
        "--baselines",
        default="adam,nominal",
        help="comma list of adam, nominal, or 'none'",
    )
    p.add_argument("--out", default="eval_out", help="output directory")
    p.set_defaults(run=run_evaluate)
    return p


def _fail(message: str) -> int:
    print(f"stability evaluate: error: {message}", file=sys.stderr)
    return 2


def run_evaluate(args) -> int:
    """Run ``stability evaluate``; 0 on success, 2 (one line on stderr) on bad
    arguments."""
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, KeyError, ImportError) as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else err
        return _fail(str(text).splitlines()[0] if str(text) else type(err).__name__)


def _run(args) -> int:
    from stability.lopt import evaluate as ev
    from stability.lopt.io import SHIPPED_THETAS
    from stability.lopt.tasks import task_names

    known = task_names()
    names = known if args.task == "all" else tuple(args.task.split(","))
    for name in names:
        if name not in known:
            return _fail(f"--task: unknown task {name!r}; known: {', '.join(known)}")
    baselines = () if args.baselines == "none" else tuple(args.baselines.split(","))
    for b in baselines:
        if b not in ("adam", "nominal"):
            return _fail(f"--baselines: expected adam, nominal or none, got {b!r}")
    if args.keep < 0:
        return _fail(f"--keep: expected a non-negative integer, got {args.keep}")
    if args.nominal_stepsize is not None and not args.nominal_stepsize > 0:
        return _fail(f"--nominal-stepsize: expected > 0, got {args.nominal_stepsize}")
    files = [args.theta] if args.theta else []
    if not files:
        files = [
            str(SHIPPED_THETAS / f) for f in SHIPPED if (SHIPPED_THETAS / f).exists()
        ]
        if not files:
            return _fail("--theta: not given and no theta is shipped in this build")
    files += args.extra
    for f in files:
        if not pathlib.Path(f).is_file():
            return _fail(f"--theta: no such file {f!r}")
    learned = [
        ev.learned_optimizer(
            f, nominal_stepsize=args.nominal_stepsize if i == 0 else None
        )
        for i, f in enumerate(files)
    ]
    out = pathlib.Path(args.out)
    tables = []
    t0 = time.perf_counter()
    if args.screen is not None and not 0 < args.screen < 1:
        return _fail(f"--screen: expected a fraction in (0, 1), got {args.screen}")
    for name in names:
        settings = ev.profile_settings(args.profile, name)
        table = ev.evaluate(
            learned[0],
            name,
            args.horizons or settings["multiples"],
            args.seeds,
            extra=learned[1:],
            base_horizon=args.base_horizon,
            tuning_seeds=args.tuning_seeds or settings["tuning_seeds"],
            screen=settings["screen"] if args.screen is None else args.screen,
            keep=args.keep or None,
            grid=args.grid or ev.TUNING_GRID,
            baselines=baselines,
            record_every=args.record_every,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        tables.append(table)
        merged = ev.merge(tables)
        merged.costs["total"] = time.perf_counter() - t0
        # eval.json last: a task listed there is complete in all three files (a
        # rerun of an interrupted evaluation keeps those tasks)
        ev.write_curves(merged, out / "curves.npz")
        ev.write_csv(merged, out / "eval.csv")
        ev.write_json(merged, out / "eval.json")
    print(ev.format_table(merged.rows))
    print(
        f"total {merged.costs['total']:.1f}s; wrote {out}/eval.json, eval.csv, "
        "curves.npz"
    )
    return 0
