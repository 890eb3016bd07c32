r"""``stability reproduce``: regenerate every figure and the lemma report.

The figures are a registry of functions in this module, so the command works from a
plain ``pip install``. Each figure function computes its records with
:mod:`stability.analyses`, :mod:`stability.problems`, :mod:`stability.lemmas` and
:mod:`stability.lopt`, draws them with :mod:`stability.plotting`, and returns the
figure with the key numbers behind it. ``figures/figNN_name.py`` are thin scripts
calling :func:`script_main` for one figure. Calling pattern::

    stability reproduce [--quick | --full [--shipped-records]] [--out DIR]
                        [--only fig01 fig02 ...]

    from stability import reproduce
    reproduce.main(["--quick", "--out", "/tmp/figs", "--only", "fig02"])

``--quick`` (the default) shrinks grids, seeds and horizons; ``--full`` is
publication quality and reruns the meta-training and the evaluation behind fig06-08
(:func:`rerun_lopt_records`, about an hour on 2 cores, resumable) unless
``--shipped-records`` says to draw the records shipped in ``stability/lopt/records/``
(as the committed renders in ``figures/`` do). Images (PNG and PDF) and
``REPORT.md`` go into ``--out`` (default ``figures/``). Figures whose inputs do not
exist are reported as not available, with the reason, and never drawn from stand-in
data. The exit status is 1 if any figure (or the lemma report) failed, else 0.

Float64 is switched on when a run starts (:func:`run`), never at import.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import pathlib
import sys
import time
import traceback
from collections.abc import Callable
from typing import NamedTuple

from stability.figures import Drawn, NotAvailable, Quality
from stability.figures import fmt as _fmt

DEFAULT_OUT = "figures"


class FigureSpec(NamedTuple):
    id: str
    name: str
    title: str
    build: Callable[[Quality], Drawn]


class FigureResult(NamedTuple):
    """One row of the report."""

    id: str
    name: str
    title: str
    status: str  # "ok", "not available" or "failed"
    seconds: float
    files: tuple
    caption: str
    numbers: dict
    reason: str


FIGURES: dict[str, FigureSpec] = {}


def _register(fid, name, title):
    def wrap(fn):
        FIGURES[fid] = FigureSpec(fid, f"{fid}_{name}", title, fn)
        return fn

    return wrap


# ----------------------------------------------------------------------------------
# fig01-fig05: modules of stability.figures
# ----------------------------------------------------------------------------------


def _moved(fid):
    from stability import figures

    spec = figures.FIGURES[fid]

    def build(q: Quality) -> Drawn:
        return spec.build(q)

    _register(fid, spec.name.split("_", 1)[1], spec.title)(build)


for _fid in ("fig01", "fig02", "fig03", "fig04", "fig05"):
    _moved(_fid)


def _optional_module(name, needed_for):
    """Import ``name``, or raise :class:`NotAvailable` if it does not exist yet."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise NotAvailable(f"{needed_for} needs {name}, not in this build") from err
        raise


# ----------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------
# Learned-optimizer figures (need meta-trained thetas and evaluation records)
# ----------------------------------------------------------------------------------


_LOPT_STYLE = {  # name -> (label, colour key, marker)
    "star": ("STAR", "blue", "o"),
    "small_fc_lopt": ("small_fc_lopt", "vermillion", "s"),
    "star_no_nominal": ("STAR, no nominal", "green", "^"),
    "star_no_precond": ("STAR, no precond.", "orange", "v"),
    "star_wd0": ("STAR, weight decay 0", "purple", "D"),
    "star_bounded": ("STAR, blackbox bounded", "sky", "*"),
    "star_bounded_tuned": ("STAR bounded, nominal tuned", "#2b8cbe", "p"),
    "adam": ("Adam (lr tuned)", "black", "P"),
    "nominal": ("nominal only (tuned)", "#7f7f7f", "X"),
}
_LOSS_FLOOR = 1e-12  # training losses of exactly 0 (float32 underflow) drawn here


def _lopt_style(name):
    from stability import plotting

    label, colour, marker = _LOPT_STYLE.get(name, (name, "black", "o"))
    return label, plotting.PALETTE.get(colour, colour), marker


# The runs behind the shipped records (stability/lopt/records/README.md); --full
# reruns them into OUT/lopt_runs (a meta-training resumes where it stopped, an
# evaluation keeps the tasks it finished).
_PAPER = ["--blackbox-bound", "none"]  # the paper's STAR: the blackbox term unbounded
LOPT_RUNS = (  # (name, stability meta-train arguments)
    ("star", ["--optimizer", "star", *_PAPER]),
    ("small_fc_lopt", ["--optimizer", "small_fc_lopt"]),
    ("star_no_nominal", ["--optimizer", "star", "--no-nominal"]),
    ("star_no_precond", ["--optimizer", "star", "--no-precondition", *_PAPER]),
    ("star_wd0", ["--optimizer", "star", "--weight-decay", "0", *_PAPER]),
    ("star_bounded", ["--optimizer", "star"]),  # today's default recipe
)
LOPT_META_ARGS = ["--steps", "3000", "--no-progress"]
LOPT_EVAL_ARGS = [  # every run's kept theta, on the cheap tasks
    "--task",
    "digits_mlp,digits_mlp_tanh,digits_mlp_gelu,digits_mlp_deep,mnist1d_mlp",
]
_REST = ("star", "small_fc_lopt", "star_bounded")
LOPT_EVAL_REST_ARGS = [  # _REST only, on the expensive tasks
    "--task",
    "digits_mlp_wide,mnist_mlp,mnist_cnn,mnist1d_cnn,text_lstm,text_transformer",
]


@contextlib.contextmanager
def _x64_off():
    """Run as a plain ``stability meta-train`` / ``evaluate`` runs: without x64.

    The analysis figures switch ``jax_enable_x64`` on for the whole process; PES
    meta-training is chaotic, so under x64 (a few promoted constants) it would follow
    another trajectory than the command recorded in the sidecars."""
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def _run_cli(argv: list) -> None:
    """``stability ARGV`` in this process, without x64; raises when it fails."""
    from stability import cli

    with _x64_off():
        rc = cli.main(argv)
    if rc == 130:  # the command was interrupted: stop, do not go on to the next
        raise KeyboardInterrupt
    if rc != 0:
        raise RuntimeError(f"stability {' '.join(argv)} failed")


def rerun_lopt_records(folder) -> pathlib.Path:
    """Meta-train the five learned optimizers, evaluate them against the tuned
    baselines and condense both into records, all under ``folder``; return the
    records folder. About an hour on 2 CPU cores with the default arguments.
    Rerun after an interruption, it redoes nothing finished: meta-training resumes
    from its checkpoints, and an evaluation keeps the tasks it completed."""
    from stability.lopt import _records

    folder = pathlib.Path(folder)
    records = folder / "records"
    done = [records / _records.META_TRAINING, records / _records.EVALUATION]
    if all(p.exists() for p in done):
        return records
    thetas = []
    for name, extra in LOPT_RUNS:
        run_dir = folder / "meta_training" / name
        if not (run_dir / "best_theta.npz").exists():  # meta-train's last file
            resume = ["--resume"] if (run_dir / "checkpoint.npz").exists() else []
            argv = ["meta-train", *extra, *LOPT_META_ARGS, "--out", str(run_dir)]
            _run_cli(argv + resume)
        thetas.append(run_dir / "best_theta.npz")
    evaluated = [
        *_evaluate(folder / "evaluation", thetas, LOPT_EVAL_ARGS),
        *_evaluate(
            folder / "evaluation_rest",
            [t for t in thetas if t.parent.name in _REST],
            LOPT_EVAL_REST_ARGS,
        ),
    ]
    runs = {n: folder / "meta_training" / n for n, _ in LOPT_RUNS}
    _records._write_json(_records.compact_meta_training(runs), done[0])
    _records._write_json(_records.compact_evaluation(evaluated), done[1])
    return records


def _evaluate(out: pathlib.Path, thetas: list, args: list) -> list:
    """``stability evaluate`` of ``thetas`` with ``args`` into ``out``, resumably;
    return the directories that together hold its tasks, in order.

    ``evaluate`` rewrites ``eval.json`` after each task, so an interrupted run
    leaves the tasks it finished there. They are kept; the missing tasks run into
    the first of ``OUT``, ``OUT-2``, ``OUT-3``, ... that has no ``eval.json``.
    """
    i = args.index("--task") + 1
    wanted = args[i].split(",")
    dirs, have = [], set()
    for k in itertools.count(1):
        d = out if k == 1 else out.with_name(f"{out.name}-{k}")
        if not (d / "eval.json").exists():
            break
        dirs.append(d)
        with open(d / "eval.json") as f:
            have.update(t["task"] for t in json.load(f)["info"]["tasks"])
    missing = [t for t in wanted if t not in have]
    if missing:
        argv = ["evaluate", "--theta", str(thetas[0])]
        for t in thetas[1:]:
            argv += ["--extra", str(t)]
        rest = [*args[:i], ",".join(missing), *args[i + 1 :]]
        _run_cli([*argv, *rest, "--out", str(d)])
        dirs.append(d)
    return dirs


RECORD_FIGURES = ("fig06", "fig07", "fig08")  # drawn from the learned-opt records


def _lopt_record(name, q: Quality, what):
    """A record: the shipped one (``stability/lopt/records/``), or with ``--full``
    one rerun into ``q.lopt_runs``; NotAvailable when the shipped one is missing."""
    from stability.lopt import _records

    if q.lopt_runs is not None:
        return _records.load(name, rerun_lopt_records(q.lopt_runs))
    try:
        record = _records.load(name)
    except FileNotFoundError:
        raise NotAvailable(
            f"{what} needs stability/lopt/records/{name}.json (see "
            "python -m stability.lopt._records); it is not there"
        ) from None
    if name == "evaluation":  # the bounded STAR was evaluated on its own, later
        try:
            record = _with_optimizers(record, _records.load("evaluation_bounded"))
        except FileNotFoundError:
            pass
    return record


def _with_optimizers(record: dict, extra: dict) -> dict:
    """``record`` plus the rows and curves of ``extra``'s optimizers that ``record``
    lacks (on the tasks both hold; the baselines of the two are the same runs)."""
    have = {r["optimizer"] for r in record["rows"]}
    tasks = set(record["tasks"]) & set(extra["tasks"])
    rows = [
        r for r in extra["rows"] if r["optimizer"] not in have and r["task"] in tasks
    ]
    names = {(r["task"], r["optimizer"]) for r in rows}
    curves = {
        k: v
        for k, v in extra["curves"].items()
        if (k.split("/", 1)[0], k.split("/", 1)[1].split("@")[0]) in names
    }
    out = dict(
        record, rows=record["rows"] + rows, curves={**record["curves"], **curves}
    )
    out["tasks"] = {
        t: {**v, "learned": {**v.get("learned", {}), **extra["tasks"][t]["learned"]}}
        if t in tasks
        else v
        for t, v in record["tasks"].items()
    }
    return out


def _records_note(q: Quality) -> str:
    if q.lopt_runs is not None:
        return f" Records rerun by this --full run in {q.lopt_runs}."
    return (
        " Drawn from the records shipped in stability/lopt/records/ (--full reruns "
        "the meta-training and the evaluation)."
    )


@_register("fig06", "meta_training", "Meta-training curves")
def _fig06(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting

    rec = _lopt_record("meta_training", q, "meta-training curves")
    runs = rec["runs"]
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(1, 2, width=7.4, height=3.0)
        a, b = axes[0]
        for name, run in runs.items():
            label, colour, marker = _lopt_style(name)
            c, ev = run["curve"], run["eval"]
            a.plot(c["step"], c["meta_loss_smooth"], color=colour, label=label)
            b.semilogy(
                ev["step"],
                ev["train_loss"],
                color=colour,
                marker=marker,
                markersize=2.5,
                linewidth=1.0,
                label=label,
            )
            kept = run["best_step"] is not None
            if kept:
                i = int(np.flatnonzero(ev["step"] == run["best_step"])[0])
                b.plot(
                    ev["step"][i],
                    ev["train_loss"][i],
                    marker="*",
                    markersize=9,
                    color=colour,
                    markeredgecolor="black",
                    markeredgewidth=0.5,
                )
            numbers[f"{name}: wall time (s) for {int(c['step'][-1])} outer steps"] = (
                _fmt(run["wall_s"], 3)
            )
            smooth = c["meta_loss_smooth"]
            first = smooth[min(rec["window"] // rec["every"], smooth.size) - 1]
            key = f"{name}: meta-loss, mean of first / last {rec['window']} steps"
            numbers[key] = f"{_fmt(first)} / {_fmt(smooth[-1])}"
            if kept:
                select = run["config"].get("select", "objective")
                numbers[
                    f"{name}: held-out train loss at T / meta-loss, start -> kept "
                    f"(step {run['best_step']}, by {select})"
                ] = (
                    f"{_fmt(ev['train_loss'][0])} / {_fmt(ev['objective'][0])} -> "
                    f"{_fmt(ev['train_loss'][i])} / {_fmt(ev['objective'][i])}"
                )
            numbers[f"{name}: meta-gradients skipped / inner runs reset"] = (
                f"{int(c['skipped_total'][-1])} / {int(c['diverged_total'][-1])}"
            )
        cfg = (
            runs["star"]["config"]
            if "star" in runs
            else next(iter(runs.values()))["config"]
        )
        a.set_title(f"(a) meta-loss, trailing mean of {rec['window']} outer steps")
        a.set_xlabel("outer step")
        a.set_ylabel("meta-loss (mean log train loss)")
        b.set_title("(b) held-out train loss at T (★ kept)")
        b.set_xlabel("outer step")
        b.set_ylabel("training-split loss at step T")
        a.legend(loc="upper right", fontsize=6.5)
    caption = (
        f"Meta-training on {cfg['task']} with {cfg['estimator'].upper()}: horizon "
        f"T = {cfg['horizon']}, truncation {cfg['truncation']}, "
        f"{cfg['population']} antithetic pairs, sigma {cfg['sigma']}, AdamW lr "
        f"{cfg['outer_lr']}, weight decay {cfg['weight_decay']} (0 for the wd-0 "
        f"ablation), nominal step {_fmt(cfg['nominal_stepsize'], 3)}. Meta-loss: "
        "mean log training loss over each truncation. Held-out: mean over "
        f"{cfg['eval_seeds']} held-out episodes every {cfg['eval_every']} outer "
        "steps. Each run keeps (★) the theta with the lowest held-out training loss "
        "at T (runs older than that rule kept the lowest held-out meta-loss); the "
        "shipped thetas are these kept thetas." + _records_note(q)
    )
    return Drawn(fig, caption, numbers)


def _eval_rows(rec, task):
    return [r for r in rec["rows"] if r["task"] == task]


def _eval_curve(rec, task, row):
    """The held-out curve behind a table row (tuned baselines have one per value)."""
    name = row["optimizer"]
    key = f"{task}/{name}"
    if key not in rec["curves"]:
        key = f"{task}/{name}@{row['hyperparameter']:.3g}"
    return rec["curves"].get(key)


def _mark_diverged(ax, curve, colour):
    import numpy as np

    for d in curve["diverged_step"]:
        if not np.isfinite(d):  # this seed never diverged
            continue
        i = min(int(np.searchsorted(curve["step"], d)), curve["step"].size - 1)
        y = curve["loss_geomean"][i]
        y = y if np.isfinite(y) and y > 0 else curve["initial_loss"]
        ax.plot(d, y, marker="x", color=colour, markersize=6, markeredgewidth=1.4)


@_register("fig07", "long_horizon", "Long-horizon stability of learned optimizers")
def _fig07(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting

    rec = _lopt_record("evaluation", q, "training curves past the horizon")
    task = "digits_mlp"
    rows = _eval_rows(rec, task)
    if not rows:
        raise NotAvailable(f"the shipped evaluation has no {task} rows")
    proto = rec["tasks"][task]
    base = proto["base_horizon"]
    multiples = sorted({r["multiple"] for r in rows})
    main = ("star", "star_bounded", "small_fc_lopt", "adam", "nominal")
    order = [n for n in _LOPT_STYLE if any(r["optimizer"] == n for r in rows)]
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(1, 2, width=7.4, height=3.2)
        a, b = axes[0]
        for name in main:
            longest = max(
                (r for r in rows if r["optimizer"] == name),
                key=lambda r: r["multiple"],
                default=None,
            )
            if longest is None:
                continue
            curve = _eval_curve(rec, task, longest)
            label, colour, _ = _lopt_style(name)
            if name in ("adam", "nominal"):
                label += f", {_fmt(longest['hyperparameter'], 3)}"
            lo = np.maximum(curve["loss_min"], _LOSS_FLOOR)
            hi = np.maximum(curve["loss_max"], _LOSS_FLOOR)
            a.fill_between(curve["step"], lo, hi, color=colour, alpha=0.18, linewidth=0)
            a.plot(
                curve["step"],
                np.maximum(curve["loss_geomean"], _LOSS_FLOOR),
                color=colour,
                label=label,
                linewidth=1.1,
            )
            _mark_diverged(a, curve, colour)
        init = float(
            np.mean(
                [
                    c["initial_loss"]
                    for k, c in rec["curves"].items()
                    if k.startswith(f"{task}/")
                ]
            )
        )
        a.axhline(init, color="0.3", linestyle=":", linewidth=1.0)
        a.text(
            25,
            init * 1.6,
            "initial loss",
            fontsize=6.5,
            color="0.3",
        )
        for m in multiples:
            a.axvline(m * base, color="0.75", linewidth=0.8, zorder=0)
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("inner step t")
        a.set_ylabel("training-split loss")
        a.set_title(
            f"(a) {task}, {len(proto['held_out_seeds'])} held-out seeds "
            "(band: min–max, ×: diverged)"
        )
        a.legend(loc="lower left", fontsize=6.5)
        offsets = np.linspace(-0.3, 0.3, len(order))
        for off, name in zip(offsets, order, strict=True):
            label, colour, marker = _lopt_style(name)
            for r in rows:
                if r["optimizer"] != name:
                    continue
                x = np.log10(r["multiple"]) + off * 0.5
                y = max(r["train_loss_mean"] or _LOSS_FLOOR, _LOSS_FLOOR)
                div = r["diverged"] > 0
                b.plot(
                    x,
                    y,
                    marker=marker,
                    linestyle="none",
                    markersize=5,
                    color=colour,
                    markerfacecolor="none" if div else colour,
                    label=label if r["multiple"] == multiples[0] else None,
                )
                numbers[
                    f"{name} at {r['multiple']}x: final train loss (diverged seeds)"
                ] = f"{_fmt(r['train_loss_mean'])} ({r['diverged']}/{r['seeds']})"
        b.set_yscale("log")
        b.set_xticks(
            [np.log10(m) for m in multiples],
            [f"{m}x\n(T = {m * base:,})" for m in multiples],
        )
        b.set_ylabel("final training loss (mean over seeds)")
        b.set_title("(b) end of each horizon (hollow: a seed diverged)")
        fig.legend(
            *b.get_legend_handles_labels(),
            loc="outside lower center",
            ncol=4,
            fontsize=6.5,
        )
    caption = (
        f"Inner training on {task} past the meta-training horizon T = {base}: the "
        "meta-trained STAR and small_fc_lopt (kept by a held-out evaluation at T) "
        "against Adam and the "
        "nominal term alone, each with its step tuned per horizon on separate seeds "
        f"over {len(proto['grid'])} half-decade values. A run diverged when its "
        "training-split loss rose above its initial value or went non-finite; "
        f"losses of 0 (float32 underflow) are drawn at {_LOSS_FLOOR:g}."
        + _records_note(q)
    )
    return Drawn(fig, caption, numbers)


@_register("fig08", "generalization", "Out-of-distribution generalisation")
def _fig08(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting
    from stability.lopt.tasks import task_names

    rec = _lopt_record("evaluation", q, "out-of-distribution evaluation")
    tasks = list(rec["tasks"])
    missing = [t for t in task_names() if t not in rec["tasks"]]
    order = [n for n in _LOPT_STYLE if any(r["optimizer"] == n for r in rec["rows"])]
    numbers = {"tasks evaluated": ", ".join(tasks)}
    if missing:
        numbers["tasks not in the shipped evaluation (CPU cost)"] = ", ".join(missing)
    multiples = (1, 10)
    rows = {(r["task"], r["multiple"], r["optimizer"]): r for r in rec["rows"]}
    at = {  # the tasks evaluated at each multiple, in the record's order
        m: [t for t in tasks if any(k[:2] == (t, m) for k in rows)] for m in multiples
    }
    with plotting.style():
        fig, axes = plotting.figure(
            1,
            2,
            width=7.4,
            height=3.6,
            sharey=True,
            gridspec_kw={"width_ratios": [max(len(at[m]), 1) for m in multiples]},
        )
        offsets = np.linspace(-0.32, 0.32, len(order))
        for ax, mult, tag in zip(axes[0], multiples, "ab", strict=True):
            for off, name in zip(offsets, order, strict=True):
                label, colour, marker = _lopt_style(name)
                small = name.startswith("star_")
                for i, task in enumerate(at[mult]):
                    row = rows.get((task, mult, name))
                    if row is None:
                        continue
                    y = max(row["train_loss_mean"] or _LOSS_FLOOR, _LOSS_FLOOR)
                    div = row["diverged"] > 0
                    ax.plot(
                        i + off,
                        y,
                        marker=marker,
                        linestyle="none",
                        markersize=3.5 if small else 5.5,
                        color=colour,
                        markerfacecolor="none" if div else colour,
                        alpha=0.7 if small else 1.0,
                        label=label if i == 0 else None,
                    )
            ax.set_xticks(
                range(len(at[mult])),
                [t.replace("digits_mlp", "digits") for t in at[mult]],
                rotation=40,
                ha="right",
                rotation_mode="anchor",
                fontsize=7,
            )
            ax.set_yscale("log")
            ax.set_title(f"({tag}) at {mult}x the meta-training horizon")
        axes[0, 0].set_ylabel("final training loss (mean over seeds)")
        fig.legend(
            *axes[0, 0].get_legend_handles_labels(),
            loc="outside lower center",
            ncol=4,
            fontsize=6.5,
        )
    for task in tasks:
        for mult in multiples:
            s, ad = rows.get((task, mult, "star")), rows.get((task, mult, "adam"))
            if s is None or ad is None:
                continue
            verdict = (
                "wins"
                if (s["diverged"] == 0 and s["train_loss_mean"] < ad["train_loss_mean"])
                else "loses"
            )
            sfc = rows.get((task, mult, "small_fc_lopt"))
            numbers[f"{task} {mult}x: STAR / small_fc_lopt / tuned Adam"] = (
                f"{_fmt(s['train_loss_mean'])} ({s['diverged']} div) / "
                + (
                    f"{_fmt(sfc['train_loss_mean'])} ({sfc['diverged']} div)"
                    if sfc
                    else "-"
                )
                + f" / {_fmt(ad['train_loss_mean'])}: STAR {verdict}"
            )
    caption = (
        "Final training loss of the learned optimizers (meta-trained on "
        "digits_mlp at T = 1000) on other activations, depths and data, at 1x and "
        "10x T, against Adam and the nominal term with tuned steps; hollow markers: "
        "at least one of the held-out seeds diverged; small markers: STAR "
        "ablations. Within the CPU budget not every optimizer ran on every task, "
        "and (b) has only the tasks evaluated at 10x (benchmarks/RESULTS.md says "
        "what each costs)." + _records_note(q)
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig09: linearised STAR along an NQM trajectory
# ----------------------------------------------------------------------------------


@_register("fig09", "linearized_star", "Linearised STAR against observed training")
def _fig09(q: Quality) -> Drawn:
    import numpy as np

    from stability import analyses, plotting, problems
    from stability.analyses import checks
    from stability.lopt.dynamics import linearized_star_along_trajectory
    from stability.lopt.evaluate import learned_optimizer
    from stability.lopt.io import SHIPPED_THETAS

    n = 8
    lam = problems.spectra.log_uniform(n, 1e-2, 1.0)
    steps = q.pick(6000, 20000)
    stride = q.pick(20, 10)
    x_star = analyses.max_stable_learning_rate("aggmo", 1.0)
    panels = [  # (title, theta (None: zero output layer), nominal step, noise var.,
        # other STAR options)
        ("nominal term alone", None, 1.0, 0.0, {}),
        ("nominal term alone", None, 1.0, 1e-4, {}),
    ]
    shipped = SHIPPED_THETAS / "star.npz"
    if shipped.exists():
        lo = learned_optimizer(shipped)
        if lo.label != "star":  # an ablation would need its own switches here
            raise ValueError(f"{shipped}: expected plain STAR, got {lo.label}")
        nominal = float(lo.nominal_stepsize)
        panels.append(("meta-trained STAR", lo.theta, nominal, 0.0, {}))
    bounded = SHIPPED_THETAS / "star_bounded.npz"
    if bounded.exists():
        lo = learned_optimizer(bounded)
        options = {"blackbox_bound": lo.metadata["config"]["blackbox_bound"]}
        nominal = float(lo.nominal_stepsize)
        panels.append(("bounded STAR", lo.theta, nominal, 0.0, options))
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(2, len(panels), width=9.2, height=5.0, sharex="col")
        for col, (title, theta, nominal, var, options) in enumerate(panels):
            prob = problems.NoisyQuadratic.from_eigenvalues(lam, noise_var=var)
            rec = linearized_star_along_trajectory(
                theta,
                prob,
                steps,
                nominal_stepsize=nominal,
                every=stride,
                seed=col,
                **options,
            )
            losses, at, rho, dim = rec.loss[0], rec.steps, rec.rho[0], rec.dim
            v = rec.second_moment[0]
            # frozen second moment: per mode an AggMo block with lr a / sqrt(v + 1e-6)
            margin = np.max(nominal * lam[None, :] / np.sqrt(v + 1e-6), axis=1) / x_star
            top, bottom = axes[0, col], axes[1, col]
            noise_label = "noiseless" if var == 0 else f"noise var. {var:g}"
            top.plot(np.arange(steps), np.maximum(losses, 1e-300), linewidth=0.6)
            top.set_yscale("log")
            top.set_title(
                f"({'abcd'[col]}) {title}, a = {nominal:.3g}\n{noise_label}: loss",
                fontsize=8,
            )
            plotting.radius_trace(bottom, at, rho, label="ρ, linearised joint step")
            bottom.plot(
                at,
                margin,
                color=plotting.PALETTE["vermillion"],
                linestyle="--",
                linewidth=1.1,
                label="nominal part, frozen v:\nmax_i a h_i/√(v_i+1e-6) / x*",
            )
            bottom.set_yscale("log")
            bottom.set_ylim(0.005 if col >= 2 else 0.08, 12)
            bottom.set_xlabel("step t")
            unstable = rho >= 1.0
            plotting.shade(bottom, at, unstable, label="ρ ≥ 1")
            plotting.shade(top, at, unstable)
            bottom.set_title(f"({'efgh'[col]}) ρ of the {dim} × {dim} Jacobian")
            if col == 0:
                top.set_ylabel("loss l_t")
                bottom.set_ylabel("ρ  /  margin")
                bottom.legend(loc="upper left", fontsize=6)
            tag = f"{title}, {noise_label}"
            late = at >= 100
            first = checks.first_step(at, unstable, start=100)
            numbers[f"{tag}: first step (>= 100) with rho >= 1"] = (
                "none" if first is None else str(first)
            )
            numbers[f"{tag}: fraction of checkpoints (t >= 100) with rho >= 1"] = _fmt(
                np.mean(unstable[late]), 3
            )
            numbers[f"{tag}: median / max rho (t >= 100)"] = (
                f"{_fmt(np.median(rho[late]))} / {_fmt(np.max(rho[late]))}"
            )
            means, spike = checks.first_spike(losses[:steps])
            numbers[f"{tag}: first loss spike (50-step mean > 100x best so far)"] = (
                f"steps {spike}-{spike + 49}" if spike is not None else "none"
            )
            numbers[f"{tag}: lowest 50-step mean loss (steps) / final loss"] = (
                f"{_fmt(means.min())} ({int(np.argmin(means)) * 50}-"
                f"{int(np.argmin(means)) * 50 + 49}) / {_fmt(losses[-1])}"
            )
        fig.suptitle(
            f"NQM n = {n}, spec(H) log-uniform in [0.01, 1], x0 = 1; AggMo limit "
            f"x* = {x_star:.3f}; shaded: checkpoints with ρ ≥ 1",
            fontsize=8,
        )
    if not shipped.exists():
        numbers["meta-trained STAR"] = (
            "not drawn: stability/lopt/thetas/star.npz absent"
        )
    caption = (
        "STAR linearised by jax.jacfwd of one real step over (parameters, momenta, "
        "second moment, Adafactor accumulators) every few steps along its own "
        "trajectory, next to the observed loss. (a, b) STAR with a zero output layer "
        "is exactly its nominal AdamAggMo term: noiseless, the second moment decays "
        "geometrically, the effective step a/sqrt(v) grows past the AggMo limit x* "
        "and the loss spikes where rho crosses 1; with gradient noise v stays bounded "
        "away from zero and the loop stays stable. (c) The shipped STAR (meta-trained "
        "on digits_mlp) at its own nominal step: its nominal part alone stays far "
        "inside the limit, yet the learned term makes the joint step unstable at "
        "most checkpoints of the noiseless run and the loss climbs from its minimum "
        "to a plateau instead of converging. The climb is bounded and far slower "
        "than rho^t: the learned "
        "term's inputs are normalised by their own RMS, so its step does not shrink "
        "with the gradient and the linearisation, exact for one step, overstates the "
        "growth over many (the prediction and the observation disagree here in rate, "
        "not in direction). (d) The shipped bounded STAR (its blackbox term at most "
        "its nominal term per tensor): the joint step is stable at almost every "
        "checkpoint and the loss converges. The joint radius never drops below "
        "0.999, the slowest accumulator decay."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# Running, reporting, command line
# ----------------------------------------------------------------------------------
# fig10: certified rates on F(mu, L) against quadratic stability
# ----------------------------------------------------------------------------------


@_register("fig10", "certified", "Certified convergence on F(mu, L) against quadratics")
def _fig10(q: Quality) -> Drawn:
    _optional_module("cvxpy", "fig10")
    from stability.certified_figure import figure

    return Drawn(*figure(q))


# ----------------------------------------------------------------------------------
# fig11: what STAR's update is made of, out to 100x the meta-training horizon
# ----------------------------------------------------------------------------------

# (name, theta file in stability/lopt/thetas/ or a --full run, nominal term alone)
ANATOMY_RUNS = (
    ("star", "star", False),
    ("star_no_precond", "star_no_precond", False),
    ("nominal", "star", True),
)


def _anatomy_record(q: Quality) -> dict:
    """The shipped anatomy record, or with ``--full`` one recomputed (100,000 steps,
    3 held-out seeds) from the thetas of the rerun meta-training."""
    import json

    shipped = pathlib.Path(__file__).parent / "lopt" / "records" / "anatomy.json"
    if q.lopt_runs is None:
        if not shipped.exists():
            raise NotAvailable(
                "fig11 needs stability/lopt/records/anatomy.json "
                "(python -m stability.lopt.anatomy); it is not there"
            )
        return json.loads(shipped.read_text())
    from stability.lopt import anatomy

    folder = rerun_lopt_records(q.lopt_runs).parent / "meta_training"
    out = pathlib.Path(q.lopt_runs) / "anatomy.json"
    if not out.exists():
        argv = [str(out)] + [
            f"{name}={'nominal:' if alone else ''}{folder / run / 'best_theta.npz'}"
            for name, run, alone in ANATOMY_RUNS
        ]
        with _x64_off():
            anatomy.main(argv)
    return json.loads(out.read_text())


@_register("fig11", "anatomy", "STAR's update split into its two terms along training")
def _fig11(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting
    from stability.lopt.anatomy import from_json

    raw = _anatomy_record(q)
    runs = {k: from_json(v) for k, v in raw["runs"].items()}
    base = 1000  # the meta-training horizon of the shipped runs
    numbers = {}

    def geo(x):
        with np.errstate(divide="ignore"):
            return np.exp(np.mean(np.log(np.maximum(x, _LOSS_FLOOR)), axis=0))

    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.6)
        (a, b), (c, d) = axes
        for name, rec in runs.items():
            label, colour, _ = _lopt_style(name)
            if name == "nominal":
                label = f"nominal term alone, {_fmt(rec.config['nominal_stepsize'], 3)}"
            t = np.maximum(rec.steps, 1)
            lo = np.maximum(rec.loss.min(0), _LOSS_FLOOR)
            hi = np.maximum(rec.loss.max(0), _LOSS_FLOOR)
            a.fill_between(t, lo, hi, color=colour, alpha=0.15, linewidth=0)
            a.plot(t, geo(rec.loss), color=colour, label=label, linewidth=1.1)
            if name != "nominal":
                ratio = np.median(rec.ratio, axis=0)
                b.plot(t, np.median(rec.blackbox_norm, 0), color=colour, linewidth=1.1)
                b.plot(t, np.median(rec.nominal_norm, 0), color=colour, linestyle="--")
                numbers[f"{name}: |f_b| / |f_g| at T, 10T, 100T (median)"] = ", ".join(
                    _fmt(ratio[np.searchsorted(rec.steps, m * base - 1)], 3)
                    for m in (1, 10, 100)
                )
            c.plot(t, np.median(rec.cos_total, 0), color=colour, linewidth=1.1)
            d.plot(t, np.median(rec.param_norm, 0), color=colour, linewidth=1.1)
            first = [
                int(rec.steps[np.argmax(f)]) if f.any() else None for f in rec.diverged
            ]
            numbers[f"{name}: loss at T, 10T, 100T (geometric mean)"] = ", ".join(
                _fmt(geo(rec.loss[:, np.searchsorted(rec.steps, m * base - 1)]))
                for m in (1, 10, 100)
            )
            numbers[f"{name}: first step above the initial loss, per seed"] = ", ".join(
                "never" if f is None else f"{f:,}" for f in first
            )
        init = float(np.mean(next(iter(runs.values())).initial_loss))
        a.axhline(init, color="0.3", linestyle=":", linewidth=1.0)
        for ax in (a, b, c, d):
            ax.set_xscale("log")
            for m in (1, 10, 100):
                ax.axvline(m * base, color="0.8", linewidth=0.8, zorder=0)
            ax.set_xlabel("inner step t")
        a.set_yscale("log")
        b.set_yscale("log")
        a.set_ylabel("training-split loss")
        a.set_title("(a) digits_mlp, 3 held-out seeds (band: min–max)")
        a.legend(loc="lower left", fontsize=6.5)
        b.set_ylabel("norm of the term (median)")
        b.set_title("(b) blackbox |f_b| (solid), nominal |f_g| (dashed)")
        c.set_ylabel("cos(step, gradient)")
        c.axhline(0, color="0.5", linewidth=0.8)
        c.set_title("(c) alignment of the step with the gradient")
        d.set_yscale("log")
        d.set_ylabel("parameter norm |p|")
        d.set_title("(d) parameter norm")
    caption = (
        f"STAR's step split into its output-preconditioned blackbox term f_b and its "
        f"nominal term f_g along training on digits_mlp out to {raw['steps']:,} "
        "steps (100x the meta-training horizon T; grey lines at T, 10T, 100T), for "
        "the shipped STAR, STAR without output preconditioning and the nominal term "
        "alone at the shipped nominal step. The nominal term shrinks with the "
        "gradient; the blackbox term, divided by sqrt(v + 1e-6), does not, so past T "
        "the step stops following the gradient and the parameters drift. From "
        "stability/lopt/records/anatomy.json (python -m stability.lopt.anatomy)."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig12: gradient descent and Adam at the edge of stability on a real network
# ----------------------------------------------------------------------------------


@_register(
    "fig12",
    "edge_of_stability",
    "Gradient descent and Adam at the edge of stability on a real network",
)
def _fig12(q: Quality) -> Drawn:
    from stability import plotting
    from stability.lopt.edge import adam_edge_of_stability, gd_edge_of_stability

    # quick: half the steps, half as many checkpoints; Adam's smallest lr (4e-3)
    # only reaches its edge near step 1600, too late for a median over 1000-2000
    steps, every = q.pick(2000, 4000), q.pick(40, 20)
    gd = gd_edge_of_stability(steps=steps, every=every)
    adam = adam_edge_of_stability(
        q.pick((8e-3, 1.6e-2), (4e-3, 8e-3, 1.6e-2)), steps=steps, every=every
    )
    numbers = {}
    for name, rec, what in (
        ("GD", gd, "sharpness / (2 / lr)"),
        ("Adam", adam, "preconditioned sharpness / (38 / lr)"),
    ):
        numbers[f"{name}: late median {what}, per lr"] = ", ".join(
            f"{r.info['lr']:g}: {_fmt(x, 4)}"
            for r, x in zip(rec.runs, rec.ratios, strict=True)
        )
    numbers["GD: sharpness at step 0"] = _fmt(gd.runs[0].checkpoints[0].sharpness, 4)
    numbers["Adam: raw sharpness at step 0 and at the end, per lr"] = ", ".join(
        f"{r.info['lr']:g}: {_fmt(r.checkpoints[0].sharpness, 4)} -> "
        f"{_fmt(r.checkpoints[-1].sharpness, 4)}"
        for r in adam.runs
    )
    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.6)
        (a, b), (c, d) = axes
        panels = (
            (a, c, gd, "GD", "sharpness", "2/lr", "upper right"),
            (b, d, adam, "Adam", "preconditioned sharpness", "38/lr", "lower right"),
        )
        for top, bottom, rec, name, quantity, edge, where in panels:
            plotting.edge(rec, top)
            plotting.edge_loss(rec, bottom)
            top.set_title(
                f"({'a' if name == 'GD' else 'b'}) {name}, full batch; dashed: {edge}"
            )
            top.set_ylabel(quantity)
            handles, _ = top.get_legend_handles_labels()
            top.legend(
                handles,
                [
                    f"{r.info['lr']:g}: {_fmt(x, 4)}"
                    for r, x in zip(rec.runs, rec.ratios, strict=True)
                ],
                title="lr: late median / threshold",
                title_fontsize=6,
                fontsize=6,
                loc=where,
            )
            bottom.set_title(
                f"({'c' if name == 'GD' else 'd'}) {name}: training loss (MSE)"
            )
            bottom.legend(loc="best", fontsize=6.5)
    caption = (
        f"Full-batch training of digits_mlp_tanh (500 examples, squared error) for "
        f"{steps:,} steps. (a) Gradient descent: the sharpness (top Hessian "
        "eigenvalue, Lanczos every "
        f"{every} steps) drops from about 25, climbs back by progressive sharpening "
        "and hovers at 2/lr (dashed) while the loss (c) keeps falling, unevenly "
        "(Cohen et al., 2021). (b) Adam (b1 = 0.9): the preconditioned sharpness "
        "(top eigenvalue of D^(-1/2) H D^(-1/2), D = sqrt(v_hat) + eps) hovers at "
        "38/lr (Cohen et al., 2022). Legends: the median over the second half of "
        "training divided by the threshold; 1 is the edge. From "
        "stability.lopt.edge (gd_edge_of_stability, adam_edge_of_stability)."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------


def resolve(names) -> list[str]:
    """Figure ids for ``--only`` names (``fig01`` or ``fig01_eigenvalues``); all of
    them when ``names`` is empty.

    >>> resolve(["fig05_nqm_losses", "fig01"])
    ['fig05', 'fig01']
    """
    if not names:
        return list(FIGURES)
    ids = []
    for name in names:
        fid = name.split("_", 1)[0]
        if fid not in FIGURES or name not in (fid, FIGURES[fid].name):
            known = ", ".join(FIGURES)
            raise ValueError(f"--only: unknown figure {name!r} (known: {known})")
        if fid not in ids:
            ids.append(fid)
    return ids


def render(fid: str, out: pathlib.Path, quality: Quality) -> FigureResult:
    """Build one figure, save it as PNG and PDF into ``out``, and return its row."""
    import matplotlib.pyplot as plt

    from stability import plotting

    spec = FIGURES[fid]
    start = time.perf_counter()
    try:
        drawn = spec.build(quality)
        files = tuple(
            str(p)
            for p in plotting.save(drawn.figure, out / spec.name, dpi=quality.dpi)
        )
        status, reason = "ok", ""
        caption, numbers = drawn.caption, drawn.numbers
    except NotAvailable as err:
        status, reason, files, caption, numbers = "not available", str(err), (), "", {}
    except Exception as err:  # a failed figure must not stop the others
        status, files, caption, numbers = "failed", (), "", {}
        reason = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        plt.close("all")
    return FigureResult(
        fid,
        spec.name,
        spec.title,
        status,
        time.perf_counter() - start,
        files,
        caption,
        numbers,
        reason,
    )


def _lemma_report(quality: Quality) -> tuple[str, str]:
    """The lemma report as Markdown, and an error line ('' if it ran)."""
    try:
        from stability import lemmas

        rows = lemmas.report(num_instances=quality.pick(20, 200))
    except Exception as err:
        traceback.print_exc()
        return "", f"{type(err).__name__}: {err}"
    if not rows:
        return "# Lemma report\n\nNo claim module exists yet.\n", ""
    return lemmas.format_report(rows), ""


def format_report(results, lemma_text, lemma_error, quality, seconds) -> str:
    """``REPORT.md``: every figure's status, caption, key numbers and files, then
    what was skipped and why, then the lemma report."""
    ok = [r for r in results if r.status == "ok"]
    skipped = [r for r in results if r.status == "not available"]
    failed = [r for r in results if r.status == "failed"]
    lines = [
        "# `stability reproduce` report",
        "",
        f"Quality: **{quality.name}**. Wall time {seconds:.1f} s. "
        f"{len(ok)} figure(s) drawn, {len(skipped)} not yet available, "
        f"{len(failed)} failed.",
        "",
        "| figure | status | time (s) |",
        "|---|---|---|",
    ]
    for r in results:
        lines.append(f"| `{r.name}` | {r.status} | {r.seconds:.1f} |")
    lines.append("")
    for r in results:
        lines += [f"## `{r.name}`: {r.title}", ""]
        if r.status == "ok":
            lines += [r.caption, "", "| quantity | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in r.numbers.items()]
            files = ", ".join(f"`{pathlib.Path(f).name}`" for f in r.files)
            lines += ["", f"Files: {files}", ""]
        else:
            lines += [f"**{r.status}**: {r.reason}", ""]
    lines += ["## Skipped and failed", ""]
    if not skipped and not failed:
        lines.append("Nothing was skipped.")
    for r in skipped + failed:
        lines.append(f"- `{r.name}` ({r.status}): {r.reason}")
    if lemma_error:
        lines.append(f"- lemma report (failed): {lemma_error}")
    lines.append("")
    text = "\n".join(lines)
    if lemma_text:
        # demote the lemma report's headings one level under this report
        demoted = "\n".join(
            "#" + ln if ln.startswith("#") else ln for ln in lemma_text.splitlines()
        )
        text += "\n" + demoted + "\n"
    return text


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
    needs_records = [fid for fid in ids if fid in RECORD_FIGURES]
    rerun_failed = ""
    if rerun and needs_records:  # once for the three figures, before x64 is on
        try:
            rerun_lopt_records(quality.lopt_runs)
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
        lemma_text, lemma_error = _lemma_report(quality)
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


# Names that moved out of this module, kept for one release: module, new name.
_MOVED = {
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
