"""``stability evaluate``: a meta-trained optimizer against tuned baselines.

    stability evaluate --theta FILE --task NAME [--horizons 1,10] [--seeds N]
                       [--out DIR [--resume | --overwrite]] [--extra FILE ...]
                       [--profile default|full|quick]

``--task`` takes a name, a comma-separated list or ``all``. Settings the command
line does not give come from the profile (``stability.lopt.evaluate.PROFILES``):
in ``default``, horizons of 1, 10 and 100 times the meta-training horizon on
``digits_mlp``, 1 and 10 on the other digits tasks and ``mnist1d_mlp``, 1 on the
rest, whose steps cost 1 to 40 ms (``--profile full``: 1, 10 and 100 everywhere).
Without ``--theta`` the thetas shipped in ``stability/lopt/thetas/`` are used.
Writes ``curves.npz``, ``eval.csv`` and ``eval.json`` in ``--out`` after every task
(``eval.json`` last, so the tasks it lists are complete) and prints the table.

An ``--out`` that already holds results (an ``eval.json``) is refused unless
``--overwrite`` replaces them or ``--resume`` continues them: ``--resume`` keeps
every (task, optimizer) cell recorded there and runs only the missing ones (new
tasks, an added ``--extra`` theta or baseline), after checking that the settings
and the thetas of the recorded cells are the ones given now. Bad arguments, an
unwritable ``--out`` and unreadable thetas are found before any computation: one
line on stderr, exit code 2.
"""

import argparse
import pathlib
import sys
import time

from stability.cli import _resume
from stability.cli._args import positive_int, writable_dir

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


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on an argparse sub-parser collection."""
    from stability.lopt.tasks import task_names

    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a meta-trained optimizer against tuned baselines",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument(
        "--theta",
        metavar="FILE",
        help="STAR or small_fc_lopt theta (.npz; default: the shipped "
        f"{' and '.join(SHIPPED)})",
    )
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="FILE",
        help="another theta to evaluate (small_fc_lopt, an ablation); repeatable",
    )
    p.add_argument(
        "--task",
        required=True,
        help=f"a task, a comma list or 'all' ({', '.join(task_names())})",
    )
    p.add_argument(
        "--horizons",
        type=_ints,
        metavar="M1,M2,...",
        help="multiples of the base horizon (default: the profile's)",
    )
    p.add_argument(
        "--seeds", type=positive_int, default=3, help="held-out seeds (default 3)"
    )
    p.add_argument(
        "--tuning-seeds",
        type=positive_int,
        help="seeds for tuning the baselines (default: the profile's, 2 or 1)",
    )
    p.add_argument(
        "--screen",
        type=float,
        help="fraction in (0, 1) of the first horizon where tuning keeps the "
        "--keep best (default: the profile's, none or 0.1)",
    )
    p.add_argument(
        "--profile",
        choices=("default", "full", "quick"),
        default="default",
        help="horizons, tuning seeds and screening by task (default: default)",
    )
    p.add_argument(
        "--base-horizon",
        type=positive_int,
        help="meta-training horizon in steps (default: from the theta's metadata)",
    )
    p.add_argument(
        "--nominal-stepsize",
        type=float,
        help="for a STAR --theta (default: from its metadata)",
    )
    p.add_argument(
        "--keep",
        type=int,
        default=3,
        help="grid values continued past each horizon when tuning (0: all; default 3)",
    )
    p.add_argument(
        "--grid",
        type=_floats,
        metavar="V1,V2,...",
        help="tuning grid (default 1e-4 to 1 in half decades)",
    )
    p.add_argument(
        "--record-every",
        type=positive_int,
        metavar="STEPS",
        help="steps between recorded losses (default: about the base horizon / 50)",
    )
    p.add_argument(
        "--baselines",
        default="adam,nominal",
        help="comma list of adam, nominal, or 'none' (default adam,nominal)",
    )
    p.add_argument(
        "--tune-learned",
        action="store_true",
        help="also a row <label>_tuned per STAR: its nominal step tuned per task "
        "and horizon exactly as Adam's learning rate (the fair comparison)",
    )
    p.add_argument(
        "--out",
        default="eval_out",
        metavar="DIR",
        help="output folder (default eval_out); one holding results is refused "
        "without --resume or --overwrite",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the results in --out: run only the (task, optimizer) "
        "cells it does not hold",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="replace the results in --out"
    )
    p.set_defaults(run=run)
    return p


def _fail(message: str) -> int:
    print(f"stability evaluate: error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
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
    if args.screen is not None and not 0 < args.screen < 1:
        return _fail(f"--screen: expected a fraction in (0, 1), got {args.screen}")
    resume = getattr(args, "resume", False)
    overwrite = getattr(args, "overwrite", False)
    out = writable_dir("--out", args.out)
    if (out / "eval.json").exists() and not (resume or overwrite):
        return _fail(
            f"--out: {out} already holds results (eval.json); --resume continues "
            "them, --overwrite replaces them"
        )
    if resume and not (out / "eval.json").exists():
        return _fail(f"--resume: {out} holds no eval.json to continue")
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
    labels = [lo.label for lo in learned]
    for lo in learned:
        if labels.count(lo.label) > 1 or lo.label in baselines:
            return _fail(f"--extra: two optimizers would be labelled {lo.label!r}")
    base = args.base_horizon or next(
        (lo.base_horizon for lo in learned if lo.base_horizon), None
    )
    if base is None:
        return _fail("--base-horizon: not given and no theta's metadata names one")
    settings = _resume.settings(args, learned, files)
    tables, spent = {}, 0.0
    if resume:
        tables, old_settings, spent = _resume.recorded(out)
        problem = _resume.check_resume(out, old_settings, settings)
        if problem:
            return _fail(problem)
        settings["thetas"] = {**old_settings["thetas"], **settings["thetas"]}
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    for name in names:
        done = {r["optimizer"] for r in tables[name].rows} if name in tables else ()
        todo = [lo for lo in learned if lo.label not in done]
        todo_baselines = tuple(b for b in baselines if b not in done)
        if not todo and not todo_baselines:
            say(f"{name}: every optimizer is recorded in {out}; kept")
            continue
        if done:
            say(f"{name}: keeping {', '.join(sorted(done))} from {out}")
        settings_of = ev.profile_settings(args.profile, name)
        table = ev.evaluate(
            todo[0] if todo else None,
            name,
            args.horizons or settings_of["multiples"],
            args.seeds,
            extra=todo[1:],
            base_horizon=base,
            tuning_seeds=args.tuning_seeds or settings_of["tuning_seeds"],
            screen=settings_of["screen"] if args.screen is None else args.screen,
            keep=args.keep or None,
            grid=args.grid or ev.TUNING_GRID,
            baselines=todo_baselines,
            record_every=args.record_every,
            log=say,
            tune_learned=args.tune_learned,
        )
        tables[name] = _resume.join(tables.get(name), table)
        _write(ev, out, tables, settings, spent + time.perf_counter() - t0)
    merged = _write(ev, out, tables, settings, spent + time.perf_counter() - t0)
    print(ev.format_table(merged.rows))
    print(
        f"total {merged.costs['total']:.1f}s; wrote {out}/eval.json, eval.csv, "
        "curves.npz"
    )
    return 0


def _write(ev, out, tables, settings, total):
    """Write every task's table into ``out``; return the merged table."""
    merged = ev.merge(list(tables.values()))
    merged.costs["total"] = total
    merged.info["settings"] = settings
    # eval.json last: a task listed there is complete in all three files (a
    # rerun of an interrupted evaluation keeps those tasks)
    ev.write_curves(merged, out / "curves.npz")
    ev.write_csv(merged, out / "eval.csv")
    ev.write_json(merged, out / "eval.json")
    return merged
