r"""STAR and its nominal term past the meta-training horizon on a real network: does
the linearisation of the real training step say where the loss stalls or diverges?

:func:`past_horizon` trains ``digits_mlp`` (STAR's meta-training task, horizon
``T = 1000``) and an out-of-distribution task with the paper's STAR
(``thetas/star.npz``), the bounded STAR (``thetas/star_bounded.npz``, its sidecar's
``blackbox_bound`` applied) and STAR's nominal AdamAggMo term alone at the same
nominal step, on minibatches as in meta-training, to many times ``T``. At each
checkpoint it measures, on the full training split,

* ``step_radius``: the spectral radius of the Jacobian of one real training step
  over parameters and optimizer state (Arnoldi, products in float64 when
  ``jax_enable_x64`` is on), the loop's own linearised stability;
* ``preconditioned_sharpness`` against ``threshold``: the top eigenvalue of
  :math:`D^{-1/2} H D^{-1/2}` (:math:`D = \sqrt{v + 10^{-6}}`) against the exact
  AdamAggMo boundary at the optimizer's own momentum decays, the stability of the
  nominal term with a frozen second moment;

and finds the loss's event: the checkpoint where it diverges (non-finite, or above
its value at step 0) or, failing that, where it first climbs ``10x`` above its best
so far. :func:`summary` gives, per run, how often each criterion flags instability
before and after that event. The step radius flags it when it exceeds ``1 + 1/T``
(growth by a factor ``e`` within one horizon), not at 1: along the Hessian's null
space (flat directions of an over-parameterised network, all of it at a loss of
zero) the step of an optimizer that sees the parameters only through their gradient
has eigenvalue exactly 1 (STAR, whose features include the parameters, near 1), so
the radius does not fall below 1 on a real network.
:func:`stability.plotting.edge_horizon` draws the record::

    record = compute("quick")          # or past_horizon(...) with your own settings
    summary(record)                    # {"digits_mlp, paper STAR: event": ...}
"""

import math
from typing import NamedTuple

import jax
import numpy as np

from stability.lopt.edge import EdgeRun, track_task
from stability.lopt.io import SHIPPED_THETAS, load_metadata

__all__ = [
    "HorizonRecord",
    "HorizonRun",
    "OPTIMIZERS",
    "compute",
    "past_horizon",
    "radius_flag",
    "summary",
]

# (key, label, theta file under SHIPPED_THETAS or None for the nominal term)
OPTIMIZERS = (
    ("star", "paper STAR", "star.npz"),
    ("star_bounded", "bounded STAR", "star_bounded.npz"),
    ("nominal", "nominal term", None),
)
CLIMB = 10.0  # the loss "stalls" once it climbs this far above its best so far


def radius_flag(horizon: int) -> float:
    """The step radius above which a run counts as linearly unstable: ``1 + 1/T``."""
    return 1.0 + 1.0 / horizon


class HorizonRun(NamedTuple):
    """One optimizer on one task.

    Attributes:
      task: the task's name.
      label: ``paper STAR``, ``bounded STAR`` or ``nominal term``.
      run: the tracked :class:`~stability.lopt.edge.EdgeRun`.
      event: the step of the loss's event, or ``None``.
      event_kind: ``"diverged"``, ``"climbed"`` (``CLIMB`` times its best so far)
        or ``"none"``.
    """

    task: str
    label: str
    run: EdgeRun
    event: int | None
    event_kind: str


class HorizonRecord(NamedTuple):
    """Runs past the horizon.

    Attributes:
      runs: :class:`HorizonRun` per task and optimizer, tasks outermost.
      horizon: the meta-training horizon ``T`` (from the paper STAR's sidecar).
      settings: steps per task, ``every``, Arnoldi's ``radius_k`` and ``radius_tol``,
        the dtype of the step Jacobian, seconds.
    """

    runs: list
    horizon: int
    settings: dict


def _event(run: EdgeRun) -> tuple[int | None, str]:
    """The step where the loss diverges, or first climbs ``CLIMB`` times above its
    best so far."""
    if run.checkpoints[-1].diverged:
        return run.checkpoints[-1].step, "diverged"
    best = math.inf
    for c in run.checkpoints:
        if c.loss > CLIMB * best:
            return c.step, "climbed"
        best = min(best, c.loss)
    return None, "none"


def past_horizon(
    tasks=(("digits_mlp", 30000), ("digits_mlp_deep", 10000)),
    optimizers=("star", "star_bounded", "nominal"),
    *,
    every=(1000, 500),
    radius_k: int = 6,
    radius_tol: float = 1e-6,
    seed: int = 0,
    log=None,
) -> HorizonRecord:
    """Track each optimizer of :data:`OPTIMIZERS` named in ``optimizers`` on each
    task, measuring on the task's full training split.

    Args:
      tasks: ``(name, steps)`` pairs.
      optimizers: keys of :data:`OPTIMIZERS`.
      every: steps between checkpoints, one per task.
      radius_k, radius_tol: Arnoldi's eigenvalue count and tolerance for the step
        radius.
      seed: initial parameters and minibatches.
      log: called with one line per checkpoint.
    Returns:
      :class:`HorizonRecord`.
    """
    known = {key: (label, theta) for key, label, theta in OPTIMIZERS}
    for key in optimizers:
        if key not in known:
            raise ValueError(
                f"optimizers: expected keys of {tuple(known)}, got {key!r}"
            )
    if len(every) != len(tasks):
        raise ValueError(f"every: one per task ({len(tasks)}), got {len(every)}")
    from stability.lopt.evaluate import learned_optimizer
    from stability.lopt.tasks import get_task

    paper = SHIPPED_THETAS / "star.npz"
    horizon = int(load_metadata(paper)["config"]["horizon"])
    nominal_step = float(learned_optimizer(paper).nominal_stepsize)
    dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    runs = []
    for (name, steps), stride in zip(tasks, every, strict=True):
        task = get_task(name)
        full = task.train_batch()
        for key in optimizers:
            label, theta = known[key]
            kind = "nominal" if theta is None else "star"
            run = track_task(
                task,
                kind,
                lr=nominal_step if theta is None else None,
                theta=None if theta is None else str(SHIPPED_THETAS / theta),
                steps=steps,
                every=stride,
                batch_size=task.batch_size,
                step_radius=True,
                seed=seed,
                measure_batch=full,
                radius_k=radius_k,
                radius_tol=radius_tol,
                radius_dtype=dtype,
                log=None if log is None else _prefixed(log, f"{name}, {label}: "),
            )
            runs.append(HorizonRun(name, label, run, *_event(run)))
    settings = {
        "steps": {name: steps for name, steps in tasks},
        "every": {name: e for (name, _), e in zip(tasks, every, strict=True)},
        "radius_k": radius_k,
        "radius_tol": radius_tol,
        "jacobian_dtype": dtype,
        "nominal_step": nominal_step,
        "seconds": sum(r.run.info["seconds"] for r in runs),
    }
    return HorizonRecord(runs, horizon, settings)


def _prefixed(log, prefix):
    return lambda line: log(prefix + line)


def compute(quality: str = "quick") -> HorizonRecord:
    """The record of the figure: ``"quick"`` (digits_mlp to 200 steps, every 100,
    two Arnoldi eigenvalues to 1e-3: most of its time is compiling each optimizer's
    step) or ``"full"`` (digits_mlp to 30x the horizon, checkpoints every 1000
    steps, and digits_mlp_deep to 10x, every 500; six eigenvalues to 1e-6). Turn
    ``jax_enable_x64`` on first for float64 step Jacobians."""
    if quality == "quick":
        return past_horizon(
            (("digits_mlp", 200),), every=(100,), radius_k=2, radius_tol=1e-3
        )
    if quality == "full":
        return past_horizon()
    raise ValueError(f"quality: expected 'quick' or 'full', got {quality!r}")


def _fraction(flags) -> str:
    flags = np.asarray(flags, dtype=bool)
    return "-" if flags.size == 0 else f"{np.mean(flags):.2f} ({flags.size})"


def summary(record: HorizonRecord) -> dict:
    """The numbers to report, per run: the loss's event; the fractions of
    checkpoints (after step 0) with ``step_radius`` above :func:`radius_flag` and
    with the
    preconditioned sharpness at or above the nominal term's threshold, before and
    after the event; the first checkpoint each criterion flags; the median step
    radius and the largest preconditioned sharpness over the threshold."""
    numbers = {}
    flag = radius_flag(record.horizon)
    for r in record.runs:
        tag = f"{r.task}, {r.label}"
        steps = r.run.series("step")
        rho = r.run.series("step_radius")
        margin = r.run.series("preconditioned_sharpness") / r.run.series("threshold")
        event = math.inf if r.event is None else r.event
        numbers[f"{tag}: event"] = (
            "none (loss never diverged nor climbed 10x above its best)"
            if r.event is None
            else f"{r.event_kind} at step {r.event:,}"
        )
        rho_name = f"rho > {flag:.4g}"
        for name, values, limit in (
            (rho_name, rho, flag),
            ("psharp >= threshold", margin, 1.0),
        ):
            ok = np.isfinite(values) & (steps > 0)
            flags = values >= limit
            numbers[f"{tag}: {name}, fraction before / after the event"] = (
                f"{_fraction(flags[ok & (steps < event)])} / "
                f"{_fraction(flags[ok & (steps >= event)])}"
            )
            first = steps[ok & flags]
            numbers[f"{tag}: first step with {name}"] = (
                f"{int(first[0]):,}" if first.size else "none"
            )
        finite = np.isfinite(rho) & (steps > 0)
        numbers[f"{tag}: median / max rho"] = (
            f"{np.median(rho[finite]):.4g} / {np.max(rho[finite]):.4g}"
            if finite.any()
            else "-"
        )
        numbers[f"{tag}: max psharp / threshold"] = (
            f"{np.nanmax(margin):.3g}" if np.isfinite(margin).any() else "-"
        )
    return numbers
