"""The hand-designed baselines of :mod:`stability.lopt.evaluate` and their tuning.

* ``adam``: ``optax.adam`` with its learning rate tuned per task and horizon;
* ``nominal``: STAR's nominal term alone (:func:`nominal_only`, STAR with a zero
  output layer) with ``nominal_stepsize`` tuned the same way, the hand-designed part
  that meta-learning has to beat;
* a meta-trained STAR whose ``nominal_stepsize`` is tuned the same way
  (:class:`TunedStar`).

:func:`tune` runs the half-decade grid :data:`TUNING_GRID` (``1e-4, 3e-4, ..., 1``)
on tuning seeds that are disjoint from the held-out seeds (keys from
:data:`~stability.lopt._engine.TUNING_ROOT`) and picks, per horizon, the value with
the lowest final training-split loss averaged over the tuning seeds; a non-finite
loss ranks last. Every grid value and seed is one member of the same windowed runs
(:mod:`stability.lopt._engine`). Meta-training picks STAR's nominal step by its own
criterion, the mean meta-loss of held-out episodes (:func:`tune_nominal_stepsize`,
which :func:`stability.lopt.meta_train.meta_train` calls for
``nominal_stepsize=None``).
"""

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from stability._validation import check_int
from stability.lopt._engine import (
    F32,
    TUNING_ROOT,
    Inner,
    Runs,
    check_float,
    check_schedule,
    check_seeds,
    episode_scores,
    run_keys,
    runner,
)
from stability.lopt._unroll import eval_keys, key_streams
from stability.lopt.star import star
from stability.lopt.tasks import Task, get_task
from stability.lopt.theta import (
    MOMENTUM_DECAYS,
    RMS_DECAYS,
    init_theta,
    zero_output_layer,
)

__all__ = [
    "BASELINES",
    "TUNING_GRID",
    "NominalState",
    "TuneResult",
    "TunedStar",
    "nominal_only",
    "tune",
    "tune_adam",
    "tune_nominal",
    "tune_nominal_stepsize",
]

# 1e-4, 3.16e-4, 1e-3, ..., 0.316, 1: the half decades from 1e-4 to 1.
TUNING_GRID = tuple(float(10.0 ** (k / 2)) for k in range(-8, 1))


class NominalState(NamedTuple):
    """State of :func:`nominal_only`: three EMA momenta and the second moment."""

    momentum: optax.Updates
    second_moment: optax.Updates


def nominal_only(nominal_stepsize) -> optax.GradientTransformation:
    r"""STAR's nominal term alone: STAR with a zero output layer, computed directly.

    .. math::

        m_i \leftarrow b_i m_i + (1 - b_i) g,\quad
        v \leftarrow b_v v + (1 - b_v) g^2,\quad
        \Delta p = -\alpha\, \tfrac13 \textstyle\sum_i m_i\, (v + 10^{-6})^{-1/2}

    with STAR's initial decays (float32, no bias correction), in float32 for
    float32 parameters. It equals ``star(zero_output_layer(theta),
    nominal_stepsize=alpha)`` (with zero decay offsets) without evaluating the MLP,
    at the cost of Adam. ``nominal_stepsize`` may be traced (tuning vmaps over it).

    >>> import jax, jax.numpy as jnp
    >>> p = jnp.array([1.0, -2.0])
    >>> u, _ = nominal_only(0.1).update(p, nominal_only(0.1).init(p), p)
    >>> [round(float(x), 4) for x in u]
    [-0.1169, 0.117]
    """

    def init(params):
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)
        return NominalState(tuple(zeros() for _ in MOMENTUM_DECAYS), zeros())

    def update(grads, state, params=None):
        del params

        def decays(init, dtype):
            # as STAR builds them: 1 - (1 - float32(b0)) * exp(10 * 0)
            return [1 - (1 - np.asarray(b, np.float32).astype(dtype)) for b in init]

        def leaf(g, v, *ms):
            dtype = F32 if g.dtype != jnp.float64 else g.dtype
            g = g.astype(dtype)
            bm = decays(MOMENTUM_DECAYS, dtype)
            (bv,) = decays(RMS_DECAYS, dtype)
            new_m = [b * m + (1 - b) * g for b, m in zip(bm, ms, strict=True)]
            new_v = bv * v + (1 - bv) * (g * g)
            g_hat = (new_m[0] + new_m[1] + new_m[2]) / 3 * lax.rsqrt(new_v + 1e-6)
            step = jnp.asarray(nominal_stepsize, dtype) * g_hat
            return -step, new_v, new_m

        out = jax.tree.map(leaf, grads, state.second_moment, *state.momentum)
        treedef = jax.tree.structure(grads)
        parts = treedef.flatten_up_to(out)
        updates = treedef.unflatten([p[0] for p in parts])
        v = treedef.unflatten([p[1] for p in parts])
        momenta = tuple(
            treedef.unflatten([p[2][i] for p in parts])
            for i in range(len(MOMENTUM_DECAYS))
        )
        return updates, NominalState(momenta, v)

    return optax.GradientTransformation(init, update)


def _make_adam(value):
    return optax.adam(value)


def _make_nominal(value):
    return nominal_only(value)


BASELINES = {"adam": _make_adam, "nominal": _make_nominal}


@dataclasses.dataclass(frozen=True, eq=False)
class TunedStar:
    """``make_opt`` of a meta-trained STAR whose ``nominal_stepsize`` is tuned, the
    theta and its other options (``(name, value)`` pairs) fixed; hashable by
    identity, as :class:`~stability.lopt._engine.Fixed`."""

    theta: Any
    options: tuple

    def __call__(self, value):
        return star(self.theta, **dict(self.options), nominal_stepsize=value)


class TuneResult(NamedTuple):
    """A tuned hyperparameter per horizon.

    Attributes:
      family: ``"adam"`` (learning rate) or ``"nominal"`` (``nominal_stepsize``).
      grid: the values tried.
      horizons: the horizons (steps) tuned for.
      scores: ``(H, G)`` mean final training-split loss over the tuning seeds;
        ``inf`` where non-finite, ``nan`` where not run (successive halving).
      best: best value per horizon.
      seconds: wall time, compilation included.
      screened: ``((step, values kept), ...)`` for the screening stages.
    """

    family: str
    grid: tuple
    horizons: tuple
    scores: np.ndarray
    best: tuple
    seconds: float
    screened: tuple = ()

    def best_at(self, horizon: int) -> float:
        return self.best[self.horizons.index(horizon)]


def tune(
    family, task, horizons, seeds, grid, keep, record_every, screen=(), make_opt=None
) -> TuneResult:
    """Tune one hyperparameter of ``family`` per horizon (see :func:`tune_adam`).

    ``make_opt(value)`` builds the optimizer (default ``BASELINES[family]``);
    ``family`` then only names the result. The other arguments are
    :func:`tune_adam`'s, ``screen`` a sequence of steps.
    """
    task = get_task(task) if isinstance(task, str) else task
    if isinstance(horizons, int | np.integer):
        horizons = (horizons,)
    horizons = tuple(sorted({check_int("horizon", h, low=1) for h in horizons}))
    screen = tuple(sorted({check_int("screen", h, low=1) for h in screen}))
    if screen and max(screen) >= horizons[0]:
        raise ValueError(f"screen: {screen} must lie before the first horizon")
    seeds = check_seeds(seeds)
    grid = tuple(float(g) for g in grid)
    if not grid or not all(math.isfinite(g) and g > 0 for g in grid):
        raise ValueError(f"grid: expected positive finite values, got {grid!r}")
    keep = len(grid) if keep is None else check_int("keep", keep, low=1)
    _, _, record_every = check_schedule(
        max(horizons), (*screen, *horizons), record_every
    )
    programs = runner(task, make_opt or BASELINES[family], record_every)
    n_s = len(seeds)
    t0 = time.perf_counter()
    values = np.repeat(np.asarray(grid), n_s)
    keys = jnp.concatenate([run_keys(TUNING_ROOT, seeds)] * len(grid))
    runs = Runs(programs, values, keys)
    active = np.arange(len(grid))  # grid indices still running
    scores = np.full((len(horizons), len(grid)), np.nan)
    best, screened = [], []
    stages = [(h, True) for h in screen] + [(h, False) for h in horizons]
    for i, (h, screening) in enumerate(stages):
        runs.run_to(h)
        loss = np.asarray(runs.windows[-1][3], np.float64).reshape(len(active), n_s)
        score = np.mean(loss, axis=1)
        score = np.where(np.isfinite(score), score, np.inf)
        order = np.argsort(score, kind="stable")
        if screening:
            screened.append((h, tuple(grid[a] for a in active[np.sort(order[:keep])])))
        else:
            scores[horizons.index(h), active] = score
            best.append(grid[active[order[0]]])
        if i + 1 < len(stages) and keep < len(active):
            chosen = np.sort(order[:keep])
            members = (chosen[:, None] * n_s + np.arange(n_s)).reshape(-1)
            runs = runs.subset(members)
            active = active[chosen]
    return TuneResult(
        family,
        grid,
        horizons,
        scores,
        tuple(best),
        time.perf_counter() - t0,
        tuple(screened),
    )


def tune_adam(
    task: Task | str,
    horizon,
    seeds=(0, 1),
    grid: Sequence[float] = TUNING_GRID,
    *,
    keep: int | None = None,
    record_every: int | None = None,
    screen: Sequence[int] = (),
) -> TuneResult:
    """Tune ``optax.adam``'s learning rate per horizon on tuning seeds.

    All grid values and seeds run as one vmapped population. With several horizons
    the runs go on to the longest one and the best value is picked at each; with
    ``keep`` only the ``keep`` best values at a horizon go on to the next (successive
    halving: cheaper, and exact as long as the best value at a horizon is among the
    ``keep`` best at the previous one).

    Args:
      task: a task or its name.
      horizon: steps, or a sequence of them.
      seeds: tuning seeds (from :data:`TUNING_ROOT`, disjoint from held-out seeds).
      grid: values to try (default :data:`TUNING_GRID`).
      keep: grid values continued past each horizon (default all).
      record_every: window length (default about ``min(horizon) / 50``).
      screen: steps before the first horizon at which only the ``keep`` best
        values go on (a cheaper, approximate tuning for expensive tasks).
    Returns:
      a :class:`TuneResult`.
    """
    return tune("adam", task, horizon, seeds, grid, keep, record_every, screen)


def tune_nominal(
    task: Task | str,
    horizon,
    seeds=(0, 1),
    grid: Sequence[float] = TUNING_GRID,
    *,
    keep: int | None = None,
    record_every: int | None = None,
    screen: Sequence[int] = (),
) -> TuneResult:
    """Tune the nominal-only optimizer's ``nominal_stepsize`` (see
    :func:`nominal_only`) exactly as :func:`tune_adam` tunes Adam."""
    return tune("nominal", task, horizon, seeds, grid, keep, record_every, screen)


def tune_nominal_stepsize(
    task: str = "digits_mlp",
    *,
    horizon: int = 1000,
    seeds: int = 4,
    grid: Sequence[float] | None = None,
    precondition: bool = True,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """Tune STAR's nominal step size for its nominal term alone (zero output layer).

    Every grid value runs ``seeds`` held-out episodes of ``horizon`` steps (all in
    one vmapped program) from the evaluation keys of a meta-training run with this
    ``seed``; the score is the mean per-step meta-loss, as meta-training measures it
    (:func:`tune_nominal` scores the final training-split loss instead).

    Args:
      task: task name.
      horizon: inner steps per episode.
      seeds: episodes per grid value.
      grid: step sizes; default the half decades ``10**(k/2)``, ``k = -8..-2``.
      precondition: passed to STAR (no effect with a zero output layer).
      seed: root of the held-out keys (as in :class:`MetaTrainConfig`).
    Returns:
      ``(best step size, {step size: score})``.
    """
    if grid is None:
        grid = [float(10.0 ** (k / 2)) for k in range(-8, -1)]
    grid = [check_float("grid", g, positive=True) for g in np.ravel(grid)]
    if not grid:
        raise ValueError("grid: needs at least one step size")
    seeds = check_int("seeds", seeds, low=1)
    horizon = check_int("horizon", horizon, low=1)
    task_obj = get_task(task)

    def make_opt(meta):
        theta, nominal_stepsize = meta
        return star(theta, nominal_stepsize=nominal_stepsize, precondition=precondition)

    inner = Inner(task_obj, make_opt)
    theta = zero_output_layer(init_theta(key_streams(seed)["theta"], heads=3))
    keys = eval_keys(seed, seeds)

    @jax.jit
    def scores(values):
        return jax.vmap(
            lambda v: episode_scores(inner, (theta, v), keys, horizon)["objective"]
        )(values)

    values = np.asarray(scores(jnp.asarray(grid, F32)), dtype=np.float64)
    table = {g: float(s) for g, s in zip(grid, values, strict=True)}
    finite = {g: s for g, s in table.items() if math.isfinite(s)}
    if not finite:
        raise RuntimeError("tune_nominal_stepsize: every grid value diverged")
    return min(finite, key=finite.get), table
