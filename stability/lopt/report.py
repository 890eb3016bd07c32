r"""Reporting an evaluation: its files, its Markdown table, and what it costs.

:func:`write_json`, :func:`write_csv` and :func:`write_curves` write an
:class:`~stability.lopt.evaluate.EvaluationTable` (each file atomically);
:func:`format_table` renders its rows; :func:`measure_rates` measures what a step of
each optimizer family costs on a task and :func:`project_costs` projects from those
rates the seconds each part of :func:`~stability.lopt.evaluate.evaluate` will take.
"""

import csv
import io
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import jax
import numpy as np

from stability.lopt._engine import TUNING_ROOT, Fixed, Runs, run_keys, runner
from stability.lopt.baselines import BASELINES, TUNING_GRID
from stability.lopt.io import atomic_write, json_safe
from stability.lopt.star import small_fc_lopt, star
from stability.lopt.tasks import Task, get_task

if TYPE_CHECKING:
    from stability.lopt.evaluate import EvaluationTable

__all__ = [
    "CSV_FIELDS",
    "format_table",
    "measure_rates",
    "project_costs",
    "write_csv",
    "write_curves",
    "write_json",
]


CSV_FIELDS = (
    "optimizer",
    "task",
    "horizon",
    "multiple",
    "hyperparameter",
    "seeds",
    "train_loss_mean",
    "train_loss_std",
    "test_loss_mean",
    "test_accuracy_mean",
    "test_accuracy_std",
    "diverged",
    "nonfinite",
    "max_batch_loss",
)


def write_json(table: "EvaluationTable", path) -> None:
    """Rows, tuning tables, costs and settings as JSON (non-finite -> null)."""
    tuning = [
        {
            "task": task,
            "family": family,
            "grid": list(t.grid),
            "horizons": list(t.horizons),
            "scores": t.scores,
            "best": list(t.best),
            "seconds": t.seconds,
        }
        for (task, family), t in table.tuning.items()
    ]
    record = {
        "rows": table.rows,
        "tuning": tuning,
        "costs": table.costs,
        "info": table.info,
    }
    text = json.dumps(json_safe(record), indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


def write_csv(table: "EvaluationTable", path) -> None:
    """One line per row, columns :data:`CSV_FIELDS`."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in table.rows:
        w.writerow({k: json_safe(row.get(k)) for k in CSV_FIELDS})
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="w")


def write_curves(table: "EvaluationTable", path) -> None:
    """Every held-out run's curves as one ``.npz``: keys ``NAME/FIELD``."""
    arrays = {}
    for name, rec in table.curves.items():
        for field, value in rec._asdict().items():
            arrays[f"{name}/{field}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def format_table(rows: Sequence[Mapping]) -> str:
    """The rows as a Markdown table (for reports and the CLI)."""
    head = (
        "| task | optimizer | horizon | hyper | train loss | test acc | diverged |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        hyper = r.get("hyperparameter")
        lines.append(
            f"| {r['task']} | {r['optimizer']} | {r['horizon']} ({r['multiple']}x) "
            f"| {'' if hyper is None else f'{hyper:.3g}'} "
            f"| {r['train_loss_mean']:.4g} ± {r['train_loss_std']:.2g} "
            f"| {r['test_accuracy_mean']:.4f} "
            f"| {r['diverged']}/{r['seeds']} |"
        )
    return "\n".join(lines)


def measure_rates(
    task: Task | str,
    *,
    members: int = 3,
    record_every: int = 20,
    windows: int = 3,
) -> dict:
    """Measured cost of each optimizer family on ``task``.

    For ``adam``, ``nominal``, ``star`` (cost does not depend on theta) and
    ``small_fc_lopt``: one program of ``members`` vmapped runs is compiled and run
    for ``1 + windows`` windows of ``record_every`` steps (training-split loss at
    every window end included, as in :func:`~stability.lopt.evaluate.evaluate`).

    Returns:
      ``{family: {"compile_s", "step_s", "cpu_step_s"}}``: compilation (first
      window minus a steady one), wall and process-CPU seconds per member-step.
    """
    from stability.lopt.theta import init_theta, zero_output_layer

    task = get_task(task) if isinstance(task, str) else task
    star_theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    sfc_theta = init_theta(jax.random.key(0), heads=2)
    makers = {
        **BASELINES,
        "star": Fixed(star(star_theta, nominal_stepsize=0.03)),
        "small_fc_lopt": Fixed(small_fc_lopt(sfc_theta)),
    }
    out = {}
    for name, make in makers.items():
        runs = Runs(
            runner(task, make, record_every),
            np.full(members, 1e-3),
            run_keys(TUNING_ROOT, np.arange(members)),
        )
        t0 = time.perf_counter()
        runs.run_to(record_every)
        jax.block_until_ready(runs.carry)
        first = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        runs.run_to(record_every * (1 + windows))
        jax.block_until_ready(runs.carry)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        steady = wall / windows
        n = members * record_every * windows
        out[name] = {
            "compile_s": max(first - steady, 0.0),
            "step_s": wall / n,
            "cpu_step_s": cpu / n,
        }
    return out


def project_costs(
    rates: Mapping,
    base_horizon: int,
    multiples: Sequence[int],
    *,
    seeds: int = 3,
    tuning_seeds: int = 2,
    grid_size: int = len(TUNING_GRID),
    keep: int | None = 3,
    screen: float | None = None,
    learned: Sequence[str] = ("star", "small_fc_lopt"),
    rate_key: str = "cpu_step_s",
) -> dict:
    """Projected seconds of each part of :func:`~stability.lopt.evaluate.evaluate`
    from measured rates.

    Member-steps per part, with horizons :math:`h_1 < \\dots < h_n` and screening
    step :math:`s` (:math:`s = h_1` without screening), ``k = min(keep, grid)``:
    a learned optimizer ``seeds * h_n``; tuning a baseline
    ``grid * tuning_seeds * s + k * tuning_seeds * (h_n - s)``;
    a baseline's held-out runs at most ``seeds * sum(h_i)`` (a different tuned value
    at every horizon). Compilation: one program per learned optimizer and per
    baseline's held-out runs, one per member count in tuning.

    Args:
      rates: ``{family: {"compile_s", rate_key}}`` from :func:`measure_rates`.
      rate_key: ``"cpu_step_s"`` (process CPU time: what the part costs on an idle
        machine, measured even on a busy one) or ``"step_s"`` (wall time).
    Returns:
      ``{part: seconds, ..., "total": seconds}``.
    """
    hs = sorted(m * base_horizon for m in multiples)
    kept = grid_size if keep is None else min(keep, grid_size)
    s = hs[0] if screen is None else max(1, int(hs[0] * screen))
    parts = {}
    for name in learned:
        r = rates[name]
        parts[f"{name}: held-out runs"] = r["compile_s"] + seeds * hs[-1] * r[rate_key]
    for family in ("adam", "nominal"):
        r = rates[family]
        tune = grid_size * tuning_seeds * s + kept * tuning_seeds * (hs[-1] - s)
        pruned = kept < grid_size and (len(hs) > 1 or s < hs[0])
        parts[f"{family}: tuning"] = (1 + pruned) * r["compile_s"] + tune * r[rate_key]
        held = seeds * sum(hs)
        parts[f"{family}: held-out runs"] = r["compile_s"] + held * r[rate_key]
    parts["total"] = sum(parts.values())
    return parts
