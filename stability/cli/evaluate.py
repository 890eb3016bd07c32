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
import hashlib
import json
import pathlib
import sys
import time

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


def _sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _settings(args, learned, files) -> dict:
    """What the recorded cells depend on besides the task and the optimizer."""
    keys = ("profile", "horizons", "seeds", "tuning_seeds", "screen")
    keys += ("base_horizon", "nominal_stepsize", "keep", "grid", "record_every")
    keys += ("tune_learned",)
    settings = {k: getattr(args, k) for k in keys}
    settings["thetas"] = {
        lo.label: _sha256(f) for lo, f in zip(learned, files, strict=True)
    }
    return json.loads(json.dumps(settings))  # tuples as lists, as read back


def _recorded(out: pathlib.Path):
    """The tables of the tasks recorded in ``out`` (``{task: EvaluationTable}``),
    their settings and wall time.

    Raises:
      ValueError: naming the file, if ``eval.json`` or ``curves.npz`` is corrupt.
    """
    import numpy as np

    from stability.lopt import evaluate as ev

    path = out / "eval.json"
    try:
        record = json.loads(path.read_text())
        infos = record["info"]["tasks"]
        settings = record["info"].get("settings")
        rows, tuning, costs = record["rows"], record["tuning"], record["costs"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"--resume: {path} is not an evaluation record ({err})"
        ) from None
    try:
        with np.load(out / "curves.npz") as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        arrays = {}
    except Exception as err:  # BadZipFile, EOFError, ...: a corrupt file
        raise ValueError(
            f"--resume: cannot read {out / 'curves.npz'} ({err})"
        ) from None
    tables = {}
    for info in infos:
        task = info["task"]
        prefix = f"{task}/"
        mine = [k[len(prefix) :] for k in arrays if k.startswith(prefix)]
        curves = {}
        for name in sorted({k.rsplit("/", 1)[0] for k in mine}):
            keys = {f: f"{prefix}{name}/{f}" for f in ev.TrainRecord._fields}
            if not all(k in arrays for k in keys.values()):
                raise ValueError(
                    f"--resume: {out / 'curves.npz'} lacks fields of {task}/{name}"
                )
            fields = {f: arrays[k] for f, k in keys.items()}
            fields["seconds"] = float(fields["seconds"])
            curves[name] = ev.TrainRecord(**fields)
        tuned = {
            (task, t["family"]): ev.TuneResult(
                t["family"],
                tuple(t["grid"]),
                tuple(t["horizons"]),
                np.asarray(t["scores"], np.float64),
                tuple(t["best"]),
                t["seconds"],
            )
            for t in tuning
            if t.get("task") == task
        }
        tables[task] = ev.EvaluationTable(
            [_nan_for_null(r) for r in rows if r["task"] == task],
            curves,
            tuned,
            {k[len(prefix) :]: v for k, v in costs.items() if k.startswith(prefix)},
            info,
        )
    return tables, settings, float(costs.get("total") or 0.0)


def _nan_for_null(row: dict) -> dict:
    """A row read back from JSON: its non-finite numbers (written as null) NaN
    again; a learned optimizer's missing hyperparameter stays None."""
    return {
        k: float("nan") if v is None and k != "hyperparameter" else v
        for k, v in row.items()
    }


def _check_resume(out, old, new) -> str | None:
    """Why the cells recorded with settings ``old`` cannot be continued with
    ``new`` (None if they can)."""
    if old is None:
        return (
            f"--resume: {out / 'eval.json'} records no settings (an older version "
            "wrote it); rerun with --overwrite"
        )
    for key, value in new.items():
        if key != "thetas" and old.get(key) != value:
            return (
                f"--resume: {out} was evaluated with {key} {old.get(key)}, now "
                f"{value}; give the same settings, --overwrite or another --out"
            )
    for label, digest in new["thetas"].items():
        if old.get("thetas", {}).get(label, digest) != digest:
            return (
                f"--resume: the {label} theta is not the one evaluated in {out}; "
                "use --overwrite or another --out"
            )
    return None


def _join(old, new):
    """One task's recorded table ``old`` with the cells ``new`` ran for it."""
    from stability.lopt import evaluate as ev

    if old is None:
        return new
    info = dict(old.info)
    info["learned"] = {**old.info.get("learned", {}), **new.info.get("learned", {})}
    return ev.EvaluationTable(
        old.rows + new.rows,
        {**old.curves, **new.curves},
        {**old.tuning, **new.tuning},
        {**old.costs, **new.costs},
        info,
    )


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
    settings = _settings(args, learned, files)
    tables, spent = {}, 0.0
    if resume:
        tables, old_settings, spent = _recorded(out)
        problem = _check_resume(out, old_settings, settings)
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
        tables[name] = _join(tables.get(name), table)
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
