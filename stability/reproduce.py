r"""``stability reproduce``: regenerate every figure and the lemma report.

This module is the command only: its arguments, :func:`run`, :func:`main` and
:func:`script_main`. The figures are modules of :mod:`stability.figures` (each
computes a record, draws it and reports its numbers), so the command works from a
plain ``pip install``. ``figures/figNN_name.py`` are thin scripts calling
:func:`script_main` for one figure. Calling pattern::

    stability reproduce [--quick | --full [--shipped-records]] [--out DIR]
                        [--only fig01 fig02 ...]

    from stability import reproduce
    reproduce.main(["--quick", "--out", "/tmp/figs", "--only", "fig02"])

``--quick`` (the default) shrinks grids, seeds and horizons; ``--full`` is
publication quality and reruns the meta-training and the evaluation behind fig06-08
(:func:`stability.figures.records.rerun_lopt_records`, about an hour on 2 cores,
resumable) unless ``--shipped-records`` says to draw the records shipped in
``stability/lopt/records/`` (as the committed renders in ``figures/`` do). Images
(PNG and PDF) and ``REPORT.md`` go into ``--out`` (default ``figures/``). Figures
whose inputs do not exist are reported as not available, with the reason, and never
drawn from stand-in data. The exit status is 1 if any figure (or the lemma report)
failed, else 0.

Float64 is switched on when a run starts (:func:`run`), never at import.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import traceback

from stability.figures import (
    FIGURES,
    FigureResult,
    Quality,
    format_report,
    lemma_report,
    records,
    render,
    resolve,
)

DEFAULT_OUT = "figures"


def _check_arguments(args) -> None:
    """Check parsed arguments before anything runs.

    Raises:
      ValueError: naming the flag: ``--shipped-records`` without ``--full``, an
        unknown ``--only`` name, an ``--out`` that is empty, a file or unwritable.
    """
    from stability.cli import writable_dir

    if getattr(args, "shipped_records", False) and not getattr(args, "full", False):
        raise ValueError("--shipped-records: only --full takes it")
    resolve(getattr(args, "only", None))
    writable_dir("--out", getattr(args, "out", DEFAULT_OUT))


def _add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    quick_out = f"{DEFAULT_OUT}/quick"

    class Mode(argparse.Action):  # --quick / --full; a default --out follows it
        def __call__(self, parser, namespace, values, option_string=None):
            namespace.full = self.const
            if not getattr(namespace, "out_given", False):
                namespace.out = DEFAULT_OUT if self.const else quick_out

    class Out(argparse.Action):  # --out DIR, which then stays whatever the mode
        def __call__(self, parser, namespace, values, option_string=None):
            namespace.out = values
            namespace.out_given = True

    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="full",
        action=Mode,
        nargs=0,
        const=False,
        help="small grids and runs, a few minutes on 2 cores (default)",
    )
    mode.add_argument(
        "--full",
        dest="full",
        action=Mode,
        nargs=0,
        const=True,
        help="publication quality",
    )
    p.set_defaults(full=False)
    p.add_argument(
        "--out",
        action=Out,
        default=quick_out,
        metavar="DIR",
        help=f"output folder for images and REPORT.md (default: {quick_out}/ "
        f"with --quick, {DEFAULT_OUT}/ with --full; the committed renders in "
        f"{DEFAULT_OUT}/ are full quality, so quick ones go elsewhere unless "
        "--out says so)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="figure ids to run, e.g. fig01 fig05 (default: all)",
    )
    p.add_argument(
        "--shipped-records",
        action="store_true",
        help="with --full: draw fig06-08 from the shipped meta-training and "
        "evaluation records instead of rerunning them (about an hour on 2 cores)",
    )
    p.add_argument(
        "--no-lemmas",
        dest="lemmas",
        action="store_false",
        help="leave the lemma report out",
    )
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``reproduce`` on an ``argparse`` sub-parser set (for the CLI)."""
    p = subparsers.add_parser(
        "reproduce",
        help="regenerate every figure and the lemma report",
        description=__doc__.split("\n\n")[0],
    )
    _add_arguments(p)

    def checked_run(args) -> int:
        _check_arguments(args)  # a ValueError: one line from the CLI, exit 2
        return run(args)

    p.set_defaults(run=checked_run)
    return p


def _enable_x64():
    import jax

    jax.config.update("jax_enable_x64", True)


def run(args) -> int:
    """Run the figures named in ``args`` and write ``REPORT.md``; 0 if none failed."""
    from tqdm.auto import tqdm

    ids = resolve(getattr(args, "only", None))
    out = pathlib.Path(getattr(args, "out", DEFAULT_OUT))
    full = bool(getattr(args, "full", False))
    rerun = full and not getattr(args, "shipped_records", False)
    quality = Quality(full, str(out / "lopt_runs") if rerun else None)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    needs_records = [fid for fid in ids if fid in records.RECORD_FIGURES]
    rerun_failed = ""
    if rerun and needs_records:  # once for the three figures, before x64 is on
        try:
            records.rerun_lopt_records(quality.lopt_runs)
        except Exception as err:
            traceback.print_exc()
            rerun_failed = f"rerunning the records failed: {type(err).__name__}: {err}"
    _enable_x64()
    results = []
    bar = tqdm(ids, desc=f"reproduce ({quality.name})", unit="fig", file=sys.stderr)
    for fid in bar:
        bar.set_postfix_str(FIGURES[fid].name)
        if rerun_failed and fid in needs_records:
            spec = FIGURES[fid]
            results.append(
                FigureResult(
                    fid, spec.name, spec.title, "failed", 0.0, (), "", {}, rerun_failed
                )
            )
            continue
        results.append(render(fid, out, quality))
    bar.close()
    lemma_text, lemma_error = "", ""
    if getattr(args, "lemmas", True):
        lemma_text, lemma_error = lemma_report(quality)
    seconds = time.perf_counter() - start
    report = format_report(results, lemma_text, lemma_error, quality, seconds)
    (out / "REPORT.md").write_text(report)
    for r in results:
        extra = f" ({r.reason})" if r.reason else ""
        print(f"{r.name}: {r.status} in {r.seconds:.1f} s{extra}", file=sys.stderr)
    print(f"wrote {out / 'REPORT.md'} in {seconds:.1f} s", file=sys.stderr)
    failed = any(r.status == "failed" for r in results) or bool(lemma_error)
    return 1 if failed else 0


def main(argv=None) -> int:
    """``stability reproduce`` as a function: ``main(["--quick", "--out", d])``."""
    parser = _add_arguments(
        argparse.ArgumentParser(prog="stability reproduce", description=__doc__)
    )
    args = parser.parse_args(argv)
    try:
        _check_arguments(args)
    except ValueError as err:
        parser.error(str(err))
    return run(args)


def script_main(fid: str, argv=None) -> int:
    """Entry point of ``figures/figNN_name.py``: one figure, ``--quick`` or default
    (full quality; fig06-08 from the shipped records), ``--out DIR`` (default: the
    script's own folder). Prints the key numbers; exit status 1 if the figure
    failed."""
    spec = FIGURES[fid]
    p = argparse.ArgumentParser(prog=f"{spec.name}.py", description=spec.title)
    p.add_argument("--quick", action="store_true", help="small grids and runs")
    p.add_argument("--out", default=None, help="output folder")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out) if args.out else pathlib.Path(sys.argv[0]).parent
    _enable_x64()
    quality = Quality(full=not args.quick)
    out.mkdir(parents=True, exist_ok=True)
    r = render(fid, out, quality)
    print(f"# {r.name} ({quality.name}): {r.status} in {r.seconds:.1f} s")
    if r.reason:
        print(r.reason)
    for k, v in r.numbers.items():
        print(f"{k}: {v}")
    for f in r.files:
        print(f"wrote {f}")
    return 1 if r.status == "failed" else 0


# Names that moved out of this module, kept for one release: old -> (module, new).
_MOVED = {
    "NotAvailable": ("stability.figures", "NotAvailable"),
    "Drawn": ("stability.figures", "Drawn"),
    "FigureSpec": ("stability.figures", "FigureSpec"),
    "RECORD_FIGURES": ("stability.figures.records", "RECORD_FIGURES"),
    "LOPT_RUNS": ("stability.figures.records", "LOPT_RUNS"),
    "LOPT_META_ARGS": ("stability.figures.records", "LOPT_META_ARGS"),
    "LOPT_EVAL_ARGS": ("stability.figures.records", "LOPT_EVAL_ARGS"),
    "LOPT_EVAL_REST_ARGS": ("stability.figures.records", "LOPT_EVAL_REST_ARGS"),
    "ANATOMY_RUNS": ("stability.figures.records", "ANATOMY_RUNS"),
    "rerun_lopt_records": ("stability.figures.records", "rerun_lopt_records"),
    "_REST": ("stability.figures.records", "REST"),
    "_with_optimizers": ("stability.figures.records", "with_optimizers"),
    "_fmt": ("stability.figures", "fmt"),
    "_disagreement": ("stability.analyses.checks", "disagreement"),
    "_standard_scores": ("stability.analyses.checks", "standard_scores"),
    "_first_spike": ("stability.analyses.checks", "first_spike"),
    "_first_step": ("stability.analyses.checks", "first_step"),
}


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    module, new = _MOVED[name]
    warnings.warn(
        f"stability.reproduce.{name} is deprecated; use {module}.{new}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), new)


if __name__ == "__main__":
    raise SystemExit(main())
