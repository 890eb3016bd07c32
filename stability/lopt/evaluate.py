r"""Evaluation of learned optimizers against tuned baselines on real tasks: the table.

Every optimizer is run on the same held-out seeds (same initial parameters, same
minibatches), for horizons given as multiples of the meta-training horizon:

* a learned optimizer from a theta (STAR, small_fc_lopt, STAR ablations), as the
  theta's metadata configures it (:func:`learned_optimizer`);
* the tuned baselines of :mod:`stability.lopt.baselines`: ``adam`` (learning rate
  tuned per task and horizon) and ``nominal`` (STAR's nominal term alone, its
  ``nominal_stepsize`` tuned the same way), and optionally each STAR with its
  nominal step tuned the same way.

:func:`evaluate` returns an :class:`EvaluationTable`: one row per optimizer, task
and horizon, the held-out curves, the tuning tables and the costs. Its files, its
Markdown table and cost projections are :mod:`stability.lopt.report`'s; the runs are
the windowed runs of :mod:`stability.lopt._engine`. Calling pattern::

    task = get_task("digits_mlp")
    rec = inner_train(task, optax.adam(1e-3), 1000, seed=[0, 1, 2])
    tuned = tune_adam(task, [1000, 10000], seeds=[0, 1])
    table = evaluate("star.npz", "digits_mlp", horizons=(1, 10), seeds=3)
    write_json(table, "out/eval.json"); write_csv(table, "out/eval.csv")
    write_curves(table, "out/curves.npz")

Runs and divergence. A run of ``num_steps`` steps is cut into windows of
``record_every`` steps; each window is one call of a jitted program (a
``lax.scan`` over its steps, vmapped over members: seeds, or grid values x seeds), so
a program is compiled once per optimizer family and member count whatever the
horizon. Each window records its mean and largest minibatch loss and, at its end,
the loss on the whole training split. A run *diverged* by step ``t`` when a minibatch
loss was non-finite in a window ending at or before ``t``, or the training-split
loss at a window end was above the initial training-split loss. (Minibatch losses
are too noisy to compare with the initial loss one by one: a run with a tiny step
would be flagged by the noise.) Held-out loss and accuracy are measured at the
horizons.

Everything runs in float32, also under ``jax_enable_x64``.
"""

import dataclasses
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stability._validation import check_int
from stability.lopt import baselines as _baselines
from stability.lopt._engine import F32, TrainRecord, check_schedule, held_out_runs
from stability.lopt._engine import HELD_OUT_ROOT as HELD_OUT_ROOT
from stability.lopt._engine import TUNING_ROOT as TUNING_ROOT
from stability.lopt._engine import check_seeds as _check_seeds  # noqa: F401 (anatomy)
from stability.lopt._engine import inner_train as inner_train
from stability.lopt._engine import run_keys as _run_keys  # noqa: F401 (anatomy)
from stability.lopt._engine import runner as _runner
from stability.lopt.baselines import TUNING_GRID as TUNING_GRID
from stability.lopt.baselines import NominalState as NominalState
from stability.lopt.baselines import TunedStar as _TunedStar
from stability.lopt.baselines import TuneResult as TuneResult
from stability.lopt.baselines import nominal_only as nominal_only
from stability.lopt.baselines import tune_adam as tune_adam
from stability.lopt.baselines import tune_nominal as tune_nominal
from stability.lopt.report import CSV_FIELDS as CSV_FIELDS
from stability.lopt.report import format_table as format_table
from stability.lopt.report import measure_rates as measure_rates
from stability.lopt.report import project_costs as project_costs
from stability.lopt.report import write_csv as write_csv
from stability.lopt.report import write_curves as write_curves
from stability.lopt.report import write_json as write_json
from stability.lopt.tasks import Task, get_task
from stability.lopt.theta import validate_theta

__all__ = [
    "HELD_OUT_ROOT",
    "PROFILES",
    "TUNING_GRID",
    "TUNING_ROOT",
    "EvaluationTable",
    "LearnedOptimizer",
    "TrainRecord",
    "TuneResult",
    "evaluate",
    "format_table",
    "inner_train",
    "learned_optimizer",
    "measure_rates",
    "merge",
    "nominal_only",
    "profile_settings",
    "project_costs",
    "tune_adam",
    "tune_nominal",
    "write_csv",
    "write_curves",
    "write_json",
]

# Settings of evaluate() per task ("*": every other task): horizon multiples (of the
# meta-training horizon), tuning seeds, and screening (the grid is cut to the `keep`
# best values at this fraction of the first horizon). "default" has to run all tasks
# in under 40 minutes on 2 CPU cores: the projected costs are in
# benchmarks/RESULTS.md (section "Evaluation (issue 6)").
PROFILES = {
    "default": {
        "digits_mlp": {"multiples": (1, 10, 100)},
        "digits_mlp_wide": {"multiples": (1, 10), "tuning_seeds": 1},
        "mnist_mlp": {"multiples": (1,)},
        "mnist1d_cnn": {"multiples": (1,), "tuning_seeds": 1},
        "mnist_cnn": {"multiples": (1,), "tuning_seeds": 1, "screen": 0.1},
        "text_lstm": {"multiples": (1,), "tuning_seeds": 1, "screen": 0.1},
        "text_transformer": {"multiples": (1,), "tuning_seeds": 1, "screen": 0.1},
        "*": {"multiples": (1, 10)},
    },
    "full": {"*": {"multiples": (1, 10, 100)}},
    "quick": {"*": {"multiples": (1,), "tuning_seeds": 1, "screen": 0.1}},
}


# -- learned optimizers from thetas --------------------------------------------------


class LearnedOptimizer(NamedTuple):
    """A meta-trained optimizer ready to evaluate.

    Attributes:
      label: row name in the tables (``star``, ``small_fc_lopt``,
        ``star_no_nominal``, ...).
      optimizer: the optax transformation.
      theta: its meta-parameters.
      metadata: the theta's JSON sidecar (empty for an in-memory theta).
      base_horizon: meta-training horizon from the metadata, or ``None``.
      nominal_stepsize: STAR's nominal step (``None`` for small_fc_lopt).
    """

    label: str
    optimizer: optax.GradientTransformation
    theta: dict
    metadata: dict
    base_horizon: int | None
    nominal_stepsize: float | None = None


def learned_optimizer(
    theta, *, label: str | None = None, nominal_stepsize: float | None = None
) -> LearnedOptimizer:
    """Build STAR or small_fc_lopt from a theta file or dict.

    A theta with 3 heads is STAR, configured by its metadata (``config``:
    ``nominal_stepsize``, ``nominal``, ``precondition``, ``weight_decay``, as
    ``stability meta-train`` writes it); 2 heads is small_fc_lopt. The label says
    which ablation it is (``star_no_nominal``, ``star_no_precond``, ``star_wd0``,
    ``star_bounded`` for a blackbox term bounded by the nominal term).
    The optimizer is built as :func:`stability.lopt.load_optimizer` builds it
    (:func:`stability.lopt.io.configured_optimizer`).

    Args:
      theta: path of an ``.npz`` saved by :func:`stability.lopt.io.save_theta`, or a
        theta dict.
      label: overrides the derived label.
      nominal_stepsize: overrides the metadata's (needed for a STAR dict).
    Raises:
      ValueError: bad theta, or STAR without a known ``nominal_stepsize``.
    """
    from stability.lopt import io

    metadata: dict = {}
    where = "theta"
    if isinstance(theta, str | pathlib.Path):
        path = pathlib.Path(theta)
        if not path.exists():
            raise FileNotFoundError(f"theta: no such file {str(path)!r}")
        metadata = io.load_metadata(path)
        theta = io._read_theta(path)  # configured below: no bare-theta warning
        where = str(path)
    if not isinstance(theta, Mapping):
        raise ValueError(
            f"theta: expected a path or a dict, got {type(theta).__name__}"
        )
    validate_theta(theta)
    theta = jax.tree.map(lambda x: jnp.asarray(x, F32), dict(theta))
    heads = int(np.shape(theta["mlp"]["b2"])[0])
    config = metadata.get("config") or {}
    base = config.get("horizon")
    base = int(base) if base else None
    overrides = {}
    if heads == 3 and nominal_stepsize is not None:
        overrides["nominal_stepsize"] = float(nominal_stepsize)
    opt, options = io.configured_optimizer(theta, metadata, where=where, **overrides)
    if heads == 2:
        return LearnedOptimizer(label or "small_fc_lopt", opt, theta, metadata, base)
    nominal = bool(options.get("nominal", True))
    precondition = bool(options.get("precondition", True))
    if label is None:
        label = "star"
        if not nominal:
            label += "_no_nominal"
        if not precondition:
            label += "_no_precond"
        if config.get("weight_decay") == 0:
            label += "_wd0"
        if options.get("blackbox_bound") is not None:
            label += "_bounded"
    step = options.get("nominal_stepsize")
    step = float(step) if nominal and step is not None else None
    return LearnedOptimizer(label, opt, theta, metadata, base, step)


# -- the evaluation table ------------------------------------------------------------


@dataclasses.dataclass
class EvaluationTable:
    """Rows of one evaluation, curves and costs.

    Attributes:
      rows: one dict per (optimizer, task, horizon): ``optimizer, task, horizon``
        (steps), ``multiple`` (of the meta-training horizon), ``hyperparameter``
        (tuned value, or the learned optimizer's nominal step), ``seeds``,
        ``train_loss_mean``, ``train_loss_std`` (training split, final),
        ``test_loss_mean``, ``test_accuracy_mean``, ``test_accuracy_std``,
        ``diverged`` (count of seeds), ``nonfinite`` (count), ``max_batch_loss``
        (over seeds and steps, relative to the initial loss).
      curves: ``{name: TrainRecord}`` of the held-out runs.
      tuning: ``{(task, family): TuneResult}``.
      costs: ``{part: seconds}``.
      info: the settings (seeds, base horizon, grid, ...).
    """

    rows: list
    curves: dict
    tuning: dict
    costs: dict
    info: dict


def _stats(rec: TrainRecord, step: int) -> dict:
    loss = rec.final_train_loss(step).astype(np.float64)
    t_loss, t_acc = rec.held_out(step)
    w = rec.window(step)
    ratio = np.max(rec.batch_loss_max[:, : w + 1], axis=1) / rec.initial_loss
    with np.errstate(invalid="ignore"):
        return {
            "seeds": int(loss.shape[0]),
            "train_loss_mean": float(np.mean(loss)),
            "train_loss_std": float(np.std(loss)),
            "test_loss_mean": float(np.mean(t_loss)),
            "test_accuracy_mean": float(np.mean(t_acc)),
            "test_accuracy_std": float(np.std(t_acc)),
            "diverged": int(np.sum(rec.diverged_by(step))),
            "nonfinite": int(
                np.sum((rec.nonfinite_step >= 0) & (rec.nonfinite_step <= step))
            ),
            "max_batch_loss": float(np.max(ratio)),
        }


def evaluate(
    theta=None,
    task: Task | str = "digits_mlp",
    horizons: Sequence[int] = (1, 10),
    seeds: int = 3,
    *,
    extra: Sequence = (),
    base_horizon: int | None = None,
    nominal_stepsize: float | None = None,
    tuning_seeds: int = 2,
    grid: Sequence[float] = TUNING_GRID,
    keep: int | None = 3,
    baselines: Sequence[str] = ("adam", "nominal"),
    screen: float | None = None,
    record_every: int | None = None,
    log: Callable[[str], None] | None = None,
    tune_learned: bool = False,
) -> EvaluationTable:
    """Evaluate learned optimizers and tuned baselines on one task.

    Args:
      theta: the main learned optimizer (path, dict or :class:`LearnedOptimizer`);
        ``None`` for baselines only.
      task: task or name.
      horizons: multiples of ``base_horizon``.
      seeds: number of held-out seeds (``0 .. seeds - 1``).
      extra: more learned optimizers (small_fc_lopt, ablations), as ``theta``.
      base_horizon: meta-training horizon in steps (default: from the metadata).
      nominal_stepsize: for a STAR theta without metadata.
      tuning_seeds: seeds for tuning the baselines (``0 .. tuning_seeds - 1`` from
        :data:`TUNING_ROOT`).
      grid: tuning grid.
      keep: successive halving for tuning across horizons (``None``: every grid
        value runs to the longest horizon).
      baselines: which of ``adam``, ``nominal`` to tune and run.
      screen: if set, a fraction of the first horizon at which tuning keeps only
        the ``keep`` best grid values (cheaper, approximate; see
        :func:`tune_adam`).
      record_every: window length (default about ``base_horizon / 50``).
      log: called with a line of progress per part.
      tune_learned: also a row ``<label>_tuned`` per STAR with a nominal term:
        the same theta with ``nominal_stepsize`` tuned per horizon exactly as
        Adam's learning rate is (same grid, tuning seeds, screening), the fair
        comparison with tuned Adam.
    Returns:
      an :class:`EvaluationTable`.
    """
    say = log or (lambda line: None)
    task = get_task(task) if isinstance(task, str) else task
    learned = [
        x
        if isinstance(x, LearnedOptimizer)
        else learned_optimizer(x, nominal_stepsize=nominal_stepsize if i == 0 else None)
        for i, x in enumerate([theta, *extra] if theta is not None else list(extra))
    ]
    for b in baselines:
        if b not in _baselines.BASELINES:
            raise ValueError(f"baselines: expected adam or nominal, got {b!r}")
    plan = _Plan.make(
        task, learned, horizons, seeds, tuning_seeds, base_horizon, record_every
    )
    screen_steps = _screen_steps(screen, plan.steps[0], plan.record_every)
    table = EvaluationTable([], {}, {}, {}, {})
    for lo in learned:
        t0 = time.perf_counter()
        rec = inner_train(
            task,
            lo.optimizer,
            max(plan.steps),
            seed=plan.held_out,
            record_every=plan.record_every,
            eval_at=plan.steps,
        )
        table.costs[f"{lo.label}: held-out runs"] = time.perf_counter() - t0
        table.curves[lo.label] = rec
        plan.add_rows(table, lo.label, rec, lo.nominal_stepsize, plan.steps)
        say(f"{task.name} {lo.label}: {table.costs[f'{lo.label}: held-out runs']:.1f}s")

    tuned_families = [(family, _baselines.BASELINES[family]) for family in baselines]
    if tune_learned:
        tuned_families += [
            (f"{lo.label}_tuned", _TunedStar(lo.theta, _star_options(lo)))
            for lo in learned
            if lo.nominal_stepsize is not None
        ]
    for family, make_opt in tuned_families:
        tuned = _baselines.tune(
            family,
            task,
            plan.steps,
            np.arange(plan.tuning_seeds),
            grid,
            keep,
            plan.record_every,
            screen_steps,
            make_opt,
        )
        say(f"{task.name} {family} tuning: {tuned.seconds:.1f}s best {tuned.best}")
        _tuned_rows(table, plan, family, make_opt, tuned)
        say(
            f"{task.name} {family} held-out: "
            f"{table.costs[f'{family}: held-out runs']:.1f}s"
        )

    table.info = plan.info(grid, keep, screen_steps, learned)
    return table


class _Plan(NamedTuple):
    """The horizons and seeds of one :func:`evaluate` call, checked."""

    task: Task
    base_horizon: int
    mults: tuple
    steps: tuple
    held_out: np.ndarray
    tuning_seeds: int
    record_every: int

    @classmethod
    def make(cls, task, learned, horizons, seeds, tuning, base_horizon, record_every):
        if base_horizon is None:
            found = [lo.base_horizon for lo in learned if lo.base_horizon]
            if not found:
                raise ValueError(
                    "base_horizon: not given and no theta metadata names a horizon"
                )
            base_horizon = found[0]
        base_horizon = check_int("base_horizon", base_horizon, low=1)
        mults = tuple(sorted({check_int("horizons", m, low=1) for m in horizons}))
        steps = tuple(m * base_horizon for m in mults)
        held_out = np.arange(check_int("seeds", seeds, low=1))
        tuning = check_int("tuning_seeds", tuning, low=1)
        _, _, record_every = check_schedule(max(steps), steps, record_every)
        return cls(task, base_horizon, mults, steps, held_out, tuning, record_every)

    def add_rows(self, table, name, rec, hyper, step_list) -> None:
        """A row per horizon in ``step_list``; ``hyper`` a value or
        ``step -> value``."""
        for m, s in zip(self.mults, self.steps, strict=True):
            if s not in step_list:
                continue
            row = {
                "optimizer": name,
                "task": self.task.name,
                "horizon": s,
                "multiple": m,
                "hyperparameter": hyper(s) if callable(hyper) else hyper,
            }
            row.update(_stats(rec, s))
            table.rows.append(row)

    def info(self, grid, keep, screen_steps, learned) -> dict:
        """The settings recorded in :attr:`EvaluationTable.info`."""
        return {
            "task": self.task.name,
            "base_horizon": self.base_horizon,
            "multiples": list(self.mults),
            "held_out_seeds": self.held_out.tolist(),
            "held_out_root": HELD_OUT_ROOT,
            "tuning_seeds": list(range(self.tuning_seeds)),
            "tuning_root": TUNING_ROOT,
            "grid": list(grid),
            "keep": keep,
            "screen_steps": list(screen_steps),
            "record_every": self.record_every,
            "learned": {lo.label: lo.metadata for lo in learned},
            "jax_backend": jax.default_backend(),
        }


def _screen_steps(screen, first: int, record_every: int) -> tuple[int, ...]:
    """The screening step for a fraction ``screen`` of the first horizon (none
    when it rounds to 0 or to the horizon)."""
    if screen is None:
        return ()
    if not 0 < screen < 1:
        raise ValueError(f"screen: expected a fraction in (0, 1), got {screen}")
    s0 = int(first * screen) // record_every * record_every
    return (s0,) if 0 < s0 < first else ()


def _tuned_rows(table, plan: _Plan, family, make_opt, tuned) -> None:
    """The held-out runs of a tuned family at its best values, into ``table``."""
    table.tuning[(plan.task.name, family)] = tuned
    table.costs[f"{family}: tuning"] = tuned.seconds
    t0 = time.perf_counter()
    by_value: dict[float, list[int]] = {}
    for s, v in zip(plan.steps, tuned.best, strict=True):
        by_value.setdefault(v, []).append(s)
    programs = _runner(plan.task, make_opt, plan.record_every)
    for v, group in by_value.items():
        rec = held_out_runs(programs, v, plan.held_out, max(group), tuple(group))
        table.curves[f"{family}@{v:.3g}"] = rec
        plan.add_rows(table, family, rec, v, group)
    table.costs[f"{family}: held-out runs"] = time.perf_counter() - t0


def _star_options(lo: LearnedOptimizer) -> tuple:
    """The options a learned STAR was built with, but its nominal step."""
    from stability.lopt import io

    options = io._sidecar_options(lo.metadata, "star")
    return tuple(sorted((k, v) for k, v in options.items() if k != "nominal_stepsize"))


def merge(tables: Sequence[EvaluationTable]) -> EvaluationTable:
    """One table from several (e.g. one per task)."""
    out = EvaluationTable([], {}, {}, {}, {"tasks": []})
    for t in tables:
        out.rows += t.rows
        out.curves.update({f"{t.info['task']}/{k}": v for k, v in t.curves.items()})
        out.tuning.update(t.tuning)
        out.costs.update({f"{t.info['task']}/{k}": v for k, v in t.costs.items()})
        out.info["tasks"].append(t.info)
    return out


def profile_settings(profile: str, task: str) -> dict:
    """Settings of ``task`` in a profile of :data:`PROFILES`: ``multiples``,
    ``tuning_seeds`` (default 2) and ``screen`` (default ``None``)."""
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {tuple(PROFILES)}, got {profile!r}")
    p = PROFILES[profile]
    return {"tuning_seeds": 2, "screen": None, **p.get(task, p["*"])}
