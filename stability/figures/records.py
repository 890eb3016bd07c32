"""The learned-optimizer records behind fig06-fig08 and fig11: the ones shipped in
``stability/lopt/records/``, or with ``--full`` rerun (meta-training, evaluation,
anatomy) into a folder; and how those figures tell the optimizers apart.

:func:`rerun_lopt_records` runs the commands of :data:`LOPT_RUNS` as a plain
``stability meta-train`` / ``stability evaluate`` would (without x64), resumably.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import pathlib

from stability.figures._base import NotAvailable, Quality

RECORD_FIGURES = ("fig06", "fig07", "fig08")  # drawn from the learned-opt records

LOPT_STYLE = {  # name -> (label, colour key, marker)
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
LOSS_FLOOR = 1e-12  # training losses of exactly 0 (float32 underflow) drawn here


def lopt_style(name):
    """``(label, colour, marker)`` of an optimizer in the learned-optimizer figures."""
    from stability import plotting

    label, colour, marker = LOPT_STYLE.get(name, (name, "black", "o"))
    return label, plotting.PALETTE.get(colour, colour), marker


def legend_below(fig, ax) -> None:
    """The optimizers of ``ax`` in one legend band under the figure."""
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="outside lower center",
        ncol=4,
        fontsize=6.5,
    )


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
REST = ("star", "small_fc_lopt", "star_bounded")
LOPT_EVAL_REST_ARGS = [  # REST only, on the expensive tasks
    "--task",
    "digits_mlp_wide,mnist_mlp,mnist_cnn,mnist1d_cnn,text_lstm,text_transformer",
]
# (name, theta file in stability/lopt/thetas/ or a --full run, nominal term alone)
ANATOMY_RUNS = (
    ("star", "star", False),
    ("star_no_precond", "star_no_precond", False),
    ("nominal", "star", True),
)


@contextlib.contextmanager
def x64_off():
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

    with x64_off():
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
            [t for t in thetas if t.parent.name in REST],
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


def lopt_record(name, q: Quality, what):
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
    # the bounded STAR was meta-trained and evaluated on its own, later
    merge = {"evaluation": with_optimizers, "meta_training": with_runs}.get(name)
    if merge is not None:
        try:
            record = merge(record, _records.load(f"{name}_bounded"))
        except FileNotFoundError:
            pass
    return record


def with_runs(record: dict, extra: dict) -> dict:
    """A meta-training ``record`` plus ``extra``'s runs that it lacks (both condensed
    with the same spacing)."""
    if (record["every"], record["window"]) != (extra["every"], extra["window"]):
        raise ValueError("extra: condensed with another spacing than record")
    runs = {k: v for k, v in extra["runs"].items() if k not in record["runs"]}
    return dict(record, runs={**record["runs"], **runs})


def with_optimizers(record: dict, extra: dict) -> dict:
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


def records_note(q: Quality) -> str:
    """The caption's last sentence: which records the figure was drawn from."""
    if q.lopt_runs is not None:
        return f" Records rerun by this --full run in {q.lopt_runs}."
    return (
        " Drawn from the records shipped in stability/lopt/records/ (--full reruns "
        "the meta-training and the evaluation)."
    )


def anatomy_record(q: Quality) -> dict:
    """The shipped anatomy record, or with ``--full`` one recomputed (100,000 steps,
    3 held-out seeds) from the thetas of the rerun meta-training."""
    shipped = pathlib.Path(__file__).parent.parent / "lopt" / "records" / "anatomy.json"
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
        with x64_off():
            anatomy.main(argv)
    return json.loads(out.read_text())
