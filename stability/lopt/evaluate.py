r"""Evaluation of learned optimizers against tuned baselines on real tasks.

Every optimizer is run on the same held-out seeds (same initial parameters, same
minibatches), for horizons given as multiples of the meta-training horizon:

* a learned optimizer from a theta (STAR, small_fc_lopt, STAR ablations), as the
  theta's metadata configures it;
* ``adam``: ``optax.adam`` with its learning rate tuned per task and horizon;
* ``nominal``: STAR's nominal term alone (STAR with a zero output layer, i.e.
  AdamAggMo without bias correction) with ``nominal_stepsize`` tuned the same way,
  the hand-designed part that meta-learning has to beat.

Tuning runs the half-decade grid :data:`TUNING_GRID` (``1e-4, 3e-4, ..., 1``) on
tuning seeds that are disjoint from the held-out seeds and picks the value with the
lowest final training-split loss averaged over the tuning seeds; a non-finite loss
ranks last. Calling pattern::

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

import csv
import dataclasses
import functools
import json
import math
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from stability._validation import check_int
from stability.lopt.io import atomic_write, json_safe
from stability.lopt.star import small_fc_lopt, star
from stability.lopt.tasks import Task, get_task
from stability.lopt.theta import MOMENTUM_DECAYS, RMS_DECAYS, validate_theta

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

F32 = jnp.float32
# 1e-4, 3.16e-4, 1e-3, ..., 0.316, 1: the half decades from 1e-4 to 1.
TUNING_GRID = tuple(float(10.0 ** (k / 2)) for k in range(-8, 1))
# Roots of the run keys: seed s of a held-out run is fold_in(key(HELD_OUT_ROOT), s),
# of a tuning run fold_in(key(TUNING_ROOT), s); the two sets never meet, and neither
# is a key that meta-training draws.
HELD_OUT_ROOT = 6_000_001
TUNING_ROOT = 6_000_002
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


# -- single runs ---------------------------------------------------------------------


class TrainRecord(NamedTuple):
    """Curves and end points of ``S`` runs (one per member).

    Attributes:
      steps: ``(R,)`` step count at the end of each window.
      batch_loss: ``(S, R)`` mean minibatch loss over each window.
      batch_loss_max: ``(S, R)`` largest minibatch loss in each window.
      train_loss: ``(S, R)`` loss on the whole training split at each window end.
      initial_loss: ``(S,)`` training-split loss of the initial parameters.
      eval_steps: ``(E,)`` steps at which the held-out split was evaluated.
      test_loss: ``(S, E)`` held-out loss there.
      test_accuracy: ``(S, E)`` held-out accuracy there.
      diverged_step: ``(S,)`` end of the first window in which the run diverged
        (non-finite minibatch loss, or training-split loss above the initial one);
        -1 if it never did.
      nonfinite_step: ``(S,)`` end of the first window with a non-finite minibatch
        loss; -1 if none.
      seconds: wall time of the runs, compilation included.
    """

    steps: np.ndarray
    batch_loss: np.ndarray
    batch_loss_max: np.ndarray
    train_loss: np.ndarray
    initial_loss: np.ndarray
    eval_steps: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    diverged_step: np.ndarray
    nonfinite_step: np.ndarray
    seconds: float

    def window(self, step: int) -> int:
        """Index of the window ending at ``step``."""
        idx = np.flatnonzero(self.steps == step)
        if idx.size == 0:
            raise ValueError(f"step: {step} is not the end of a recorded window")
        return int(idx[0])

    def final_train_loss(self, step: int | None = None) -> np.ndarray:
        """``(S,)`` training-split loss at ``step`` (default: the last window)."""
        return self.train_loss[:, -1 if step is None else self.window(step)]

    def diverged_by(self, step: int | None = None) -> np.ndarray:
        """``(S,)`` whether each run diverged at or before ``step`` (default: end)."""
        step = int(self.steps[-1]) if step is None else step
        return (self.diverged_step >= 0) & (self.diverged_step <= step)

    def held_out(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(S,)`` held-out loss and accuracy at ``step``."""
        idx = np.flatnonzero(self.eval_steps == step)
        if idx.size == 0:
            raise ValueError(f"step: the held-out split was not evaluated at {step}")
        return self.test_loss[:, idx[0]], self.test_accuracy[:, idx[0]]

    def select(self, members) -> "TrainRecord":
        """The record of a subset of the members (an index array)."""
        m = np.asarray(members)
        return self._replace(
            batch_loss=self.batch_loss[m],
            batch_loss_max=self.batch_loss_max[m],
            train_loss=self.train_loss[m],
            initial_loss=self.initial_loss[m],
            test_loss=self.test_loss[m],
            test_accuracy=self.test_accuracy[m],
            diverged_step=self.diverged_step[m],
            nonfinite_step=self.nonfinite_step[m],
        )


def _f32(tree):
    """Cast every floating leaf to float32 (x64 may be on; runs stay float32)."""

    def cast(x):
        x = jnp.asarray(x)
        return x.astype(F32) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree.map(cast, tree)


class _Runner:
    """Jitted programs advancing ``M`` members of one optimizer family by one window.

    ``make_opt(value)`` builds the optimizer from a float32 scalar hyperparameter
    (traced under ``vmap``; ignored by fixed optimizers). Members are pairs
    ``(value, run key)``.
    """

    def __init__(self, task: Task, make_opt: Callable, record_every: int):
        self.task = task
        self.make_opt = make_opt
        self.record_every = int(record_every)

        def init(value, key):
            params = _f32(task.init(jax.random.fold_in(key, 0)))
            state = make_opt(value).init(params)
            return (params, state), task.train_loss(params).astype(F32)

        def advance(carry, value, key, start):
            opt = make_opt(value)
            data_key = jax.random.fold_in(key, 1)

            def step(carry, t):
                params, state = carry
                batch = task.sample_batch(jax.random.fold_in(data_key, t))
                loss, grads = jax.value_and_grad(task.loss)(params, batch)
                updates, state = opt.update(grads, state, params)
                params = _f32(optax.apply_updates(params, updates))
                return (params, state), loss.astype(F32)

            ts = start + jnp.arange(self.record_every, dtype=jnp.int32)
            carry, losses = lax.scan(step, carry, ts)
            stats = (
                jnp.mean(losses),
                jnp.max(losses),
                ~jnp.all(jnp.isfinite(losses)),
                task.train_loss(carry[0]).astype(F32),
            )
            return carry, stats

        def held_out(carry):
            ev = task.evaluate(carry[0])
            return ev.loss.astype(F32), ev.accuracy.astype(F32)

        self.init = jax.jit(jax.vmap(init))
        self.advance = jax.jit(jax.vmap(advance, in_axes=(0, 0, 0, None)))
        self.held_out = jax.jit(jax.vmap(held_out))


@functools.lru_cache(maxsize=64)
def _runner(task: Task, make_opt: Callable, record_every: int) -> _Runner:
    return _Runner(task, make_opt, record_every)


class _Runs:
    """Members in flight: carry on the device, per-window statistics gathered."""

    def __init__(self, runner: _Runner, values, keys):
        self.runner = runner
        self.values = jnp.asarray(values, F32)
        self.keys = keys
        self.carry, self.initial = runner.init(self.values, keys)
        self.step = 0
        self.windows: list = []
        self.evals: list = []  # (step, loss, accuracy)

    def run_to(self, step: int, eval_at=()) -> None:
        r = self.runner.record_every
        while self.step < step:
            self.carry, stats = self.runner.advance(
                self.carry, self.values, self.keys, jnp.int32(self.step)
            )
            self.step += r
            self.windows.append(stats)
            if self.step in eval_at:
                self.evals.append((self.step, *self.runner.held_out(self.carry)))

    def subset(self, members) -> "_Runs":
        """Continue only ``members`` (an index array); history is kept for them."""
        m = jnp.asarray(np.asarray(members))
        out = object.__new__(_Runs)
        out.runner, out.step = self.runner, self.step
        out.values, out.keys = self.values[m], self.keys[m]
        out.carry = jax.tree.map(lambda x: x[m], self.carry)
        out.initial = self.initial[m]
        out.windows = [tuple(s[m] for s in w) for w in self.windows]
        out.evals = [(t, lo[m], acc[m]) for t, lo, acc in self.evals]
        return out

    def record(self, seconds: float) -> TrainRecord:
        r = self.runner.record_every
        n = len(self.windows)
        steps = r * np.arange(1, n + 1, dtype=np.int64)
        mean, top, bad, train = (
            np.stack([np.asarray(w[i]) for w in self.windows], axis=1) for i in range(4)
        )
        initial = np.asarray(self.initial)
        diverged = bad | ~np.isfinite(train) | (train > initial[:, None])
        e_steps = np.array([e[0] for e in self.evals], np.int64)
        members = initial.shape[0]
        if self.evals:
            e_loss = np.stack([np.asarray(e[1]) for e in self.evals], axis=1)
            e_acc = np.stack([np.asarray(e[2]) for e in self.evals], axis=1)
        else:
            e_loss = e_acc = np.zeros((members, 0), np.float32)
        return TrainRecord(
            steps,
            mean,
            top,
            train,
            initial,
            e_steps,
            e_loss,
            e_acc,
            _first(diverged, steps),
            _first(bad, steps),
            float(seconds),
        )


def _first(flags: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``(S,)`` first step where ``flags[s]`` holds, -1 where it never does."""
    any_ = flags.any(axis=1)
    return np.where(any_, steps[np.argmax(flags, axis=1)], -1).astype(np.int64)


def _run_keys(root: int, seeds) -> jax.Array:
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    base = jax.random.key(root)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(
        jnp.asarray(seeds, jnp.uint32)
    )


def _check_seeds(seeds) -> np.ndarray:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        seeds = [seeds]
    try:
        arr = np.asarray(list(seeds))
    except TypeError:
        raise ValueError(f"seed: expected an int or ints, got {seeds!r}") from None
    if arr.size == 0 or arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"seed: expected an int or non-empty ints, got {seeds!r}")
    if np.any(arr < 0) or np.any(arr >= 2**31):
        raise ValueError(f"seed: expected ints in [0, 2**31), got {seeds!r}")
    return arr.astype(np.int64)


def _default_record_every(steps: Sequence[int]) -> int:
    """About 50 windows over the shortest horizon, dividing every horizon."""
    g = 0
    for s in steps:
        g = math.gcd(g, int(s))
    target = max(1, min(steps) // 50)
    return max(d for d in range(1, target + 1) if g % d == 0)


def _check_schedule(num_steps: int, eval_at, record_every):
    num_steps = check_int("num_steps", num_steps, low=1)
    eval_at = (num_steps,) if eval_at is None else tuple(eval_at)
    for s in eval_at:
        check_int("eval_at", s, low=1)
        if s > num_steps:
            raise ValueError(f"eval_at: {s} is beyond num_steps={num_steps}")
    if record_every is None:
        record_every = _default_record_every((num_steps, *eval_at))
    record_every = check_int("record_every", record_every, low=1)
    for s in (num_steps, *eval_at):
        if s % record_every:
            raise ValueError(
                f"record_every: {record_every} does not divide the step {s}"
            )
    return num_steps, tuple(sorted(set(eval_at))), record_every


def inner_train(
    task: Task | str,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    *,
    seed=0,
    record_every: int | None = None,
    eval_at: Sequence[int] | None = None,
) -> TrainRecord:
    """Train ``task`` with ``optimizer`` from one or several held-out seeds.

    The runs of all seeds are vmapped; each window of ``record_every`` steps is one
    call of a jitted ``lax.scan`` (see the module doc). Seed ``s`` fixes the initial
    parameters and every minibatch, whatever the optimizer.

    Args:
      task: a :class:`~stability.lopt.tasks.Task` or its name.
      optimizer: an optax transformation (``update(grads, state, params)``).
      num_steps: training steps.
      seed: an int or a sequence of ints (held-out seeds, from
        :data:`HELD_OUT_ROOT`).
      record_every: steps per recorded window; must divide ``num_steps`` and every
        ``eval_at`` (default: about ``num_steps / 50``).
      eval_at: steps at which to measure the held-out split (default: the end).
    Returns:
      a :class:`TrainRecord` with one row per seed.

    >>> import optax
    >>> rec = inner_train("digits_mlp", optax.adam(1e-2), 20, seed=[0, 1],
    ...                   record_every=10)
    >>> rec.train_loss.shape, rec.test_accuracy.shape, rec.diverged_by().tolist()
    ((2, 2), (2, 1), [False, False])
    """
    task = get_task(task) if isinstance(task, str) else task
    seeds = _check_seeds(seed)
    num_steps, eval_at, record_every = _check_schedule(num_steps, eval_at, record_every)
    runner = _runner(task, _Fixed(optimizer), record_every)
    return _held_out(runner, 0.0, seeds, num_steps, eval_at)


def _held_out(runner, value, seeds, num_steps, eval_at) -> TrainRecord:
    t0 = time.perf_counter()
    values = np.full(len(seeds), value)
    runs = _Runs(runner, values, _run_keys(HELD_OUT_ROOT, seeds))
    runs.run_to(num_steps, eval_at)
    return runs.record(time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class _Fixed:
    """``make_opt`` of an optimizer without a tuned hyperparameter (hashable, so
    that the jitted programs are cached per optimizer object)."""

    optimizer: Any

    def __call__(self, value):
        del value
        return self.optimizer

    def __hash__(self):
        return id(self.optimizer)

    def __eq__(self, other):
        return isinstance(other, _Fixed) and other.optimizer is self.optimizer


# -- baselines and tuning ------------------------------------------------------------


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


_FAMILIES = {"adam": _make_adam, "nominal": _make_nominal}


@dataclasses.dataclass(frozen=True, eq=False)
class _TunedStar:
    """``make_opt`` of a meta-trained STAR whose ``nominal_stepsize`` is tuned, the
    theta and its other options (``(name, value)`` pairs) fixed; hashable by
    identity, as :class:`_Fixed`."""

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


def _tune(
    family, task, horizons, seeds, grid, keep, record_every, screen=(), make_opt=None
) -> TuneResult:
    task = get_task(task) if isinstance(task, str) else task
    if isinstance(horizons, int | np.integer):
        horizons = (horizons,)
    horizons = tuple(sorted({check_int("horizon", h, low=1) for h in horizons}))
    screen = tuple(sorted({check_int("screen", h, low=1) for h in screen}))
    if screen and max(screen) >= horizons[0]:
        raise ValueError(f"screen: {screen} must lie before the first horizon")
    seeds = _check_seeds(seeds)
    grid = tuple(float(g) for g in grid)
    if not grid or not all(math.isfinite(g) and g > 0 for g in grid):
        raise ValueError(f"grid: expected positive finite values, got {grid!r}")
    keep = len(grid) if keep is None else check_int("keep", keep, low=1)
    _, _, record_every = _check_schedule(
        max(horizons), (*screen, *horizons), record_every
    )
    runner = _runner(task, make_opt or _FAMILIES[family], record_every)
    n_s = len(seeds)
    t0 = time.perf_counter()
    values = np.repeat(np.asarray(grid), n_s)
    keys = jnp.concatenate([_run_keys(TUNING_ROOT, seeds)] * len(grid))
    runs = _Runs(runner, values, keys)
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
    return _tune("adam", task, horizon, seeds, grid, keep, record_every, screen)


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
    return _tune("nominal", task, horizon, seeds, grid, keep, record_every, screen)


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
        if b not in _FAMILIES:
            raise ValueError(f"baselines: expected adam or nominal, got {b!r}")
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
    seeds = check_int("seeds", seeds, low=1)
    tuning_seeds = check_int("tuning_seeds", tuning_seeds, low=1)
    _, _, record_every = _check_schedule(max(steps), steps, record_every)
    screen_steps: tuple[int, ...] = ()
    if screen is not None:
        if not 0 < screen < 1:
            raise ValueError(f"screen: expected a fraction in (0, 1), got {screen}")
        s0 = int(steps[0] * screen) // record_every * record_every
        screen_steps = (s0,) if 0 < s0 < steps[0] else ()
    held_out = np.arange(seeds)
    rows, curves, tuning, costs = [], {}, {}, {}

    def add_rows(name, rec, hyper, step_list):
        for m, s in zip(mults, steps, strict=True):
            if s not in step_list:
                continue
            row = {
                "optimizer": name,
                "task": task.name,
                "horizon": s,
                "multiple": m,
                "hyperparameter": hyper(s) if callable(hyper) else hyper,
            }
            row.update(_stats(rec, s))
            rows.append(row)

    for lo in learned:
        t0 = time.perf_counter()
        rec = inner_train(
            task,
            lo.optimizer,
            max(steps),
            seed=held_out,
            record_every=record_every,
            eval_at=steps,
        )
        costs[f"{lo.label}: held-out runs"] = time.perf_counter() - t0
        curves[lo.label] = rec
        add_rows(lo.label, rec, lo.nominal_stepsize, steps)
        say(f"{task.name} {lo.label}: {costs[f'{lo.label}: held-out runs']:.1f}s")

    tuned_families = [(family, _FAMILIES[family]) for family in baselines]
    if tune_learned:
        tuned_families += [
            (f"{lo.label}_tuned", _TunedStar(lo.theta, _star_options(lo)))
            for lo in learned
            if lo.nominal_stepsize is not None
        ]
    for family, make_opt in tuned_families:
        tuned = _tune(
            family,
            task,
            steps,
            np.arange(tuning_seeds),
            grid,
            keep,
            record_every,
            screen_steps,
            make_opt,
        )
        tuning[(task.name, family)] = tuned
        costs[f"{family}: tuning"] = tuned.seconds
        say(f"{task.name} {family} tuning: {tuned.seconds:.1f}s best {tuned.best}")
        t0 = time.perf_counter()
        by_value: dict[float, list[int]] = {}
        for s, v in zip(steps, tuned.best, strict=True):
            by_value.setdefault(v, []).append(s)
        runner = _runner(task, make_opt, record_every)
        for v, group in by_value.items():
            rec = _held_out(runner, v, held_out, max(group), tuple(group))
            curves[f"{family}@{v:.3g}"] = rec
            add_rows(family, rec, v, group)
        costs[f"{family}: held-out runs"] = time.perf_counter() - t0
        say(f"{task.name} {family} held-out: {costs[f'{family}: held-out runs']:.1f}s")

    info = {
        "task": task.name,
        "base_horizon": base_horizon,
        "multiples": list(mults),
        "held_out_seeds": held_out.tolist(),
        "held_out_root": HELD_OUT_ROOT,
        "tuning_seeds": list(range(tuning_seeds)),
        "tuning_root": TUNING_ROOT,
        "grid": list(grid),
        "keep": keep,
        "screen_steps": list(screen_steps),
        "record_every": record_every,
        "learned": {lo.label: lo.metadata for lo in learned},
        "jax_backend": jax.default_backend(),
    }
    return EvaluationTable(rows, curves, tuning, costs, info)


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


# -- writers -------------------------------------------------------------------------

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


def write_json(table: EvaluationTable, path) -> None:
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


def write_csv(table: EvaluationTable, path) -> None:
    """One line per row, columns :data:`CSV_FIELDS`."""
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in table.rows:
        w.writerow({k: json_safe(row.get(k)) for k in CSV_FIELDS})
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="w")


def write_curves(table: EvaluationTable, path) -> None:
    """Every held-out run's curves as one ``.npz``: keys ``NAME/FIELD``."""
    arrays = {}
    for name, rec in table.curves.items():
        for field, value in rec._asdict().items():
            arrays[f"{name}/{field}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def profile_settings(profile: str, task: str) -> dict:
    """Settings of ``task`` in a profile of :data:`PROFILES`: ``multiples``,
    ``tuning_seeds`` (default 2) and ``screen`` (default ``None``)."""
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {tuple(PROFILES)}, got {profile!r}")
    p = PROFILES[profile]
    return {"tuning_seeds": 2, "screen": None, **p.get(task, p["*"])}


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


# -- costs ---------------------------------------------------------------------------


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
    every window end included, as in :func:`evaluate`).

    Returns:
      ``{family: {"compile_s", "step_s", "cpu_step_s"}}``: compilation (first
      window minus a steady one), wall and process-CPU seconds per member-step.
    """
    from stability.lopt.theta import init_theta, zero_output_layer

    task = get_task(task) if isinstance(task, str) else task
    star_theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    sfc_theta = init_theta(jax.random.key(0), heads=2)
    makers = {
        "adam": _make_adam,
        "nominal": _make_nominal,
        "star": _Fixed(star(star_theta, nominal_stepsize=0.03)),
        "small_fc_lopt": _Fixed(small_fc_lopt(sfc_theta)),
    }
    out = {}
    for name, make in makers.items():
        runs = _Runs(
            _runner(task, make, record_every),
            np.full(members, 1e-3),
            _run_keys(TUNING_ROOT, np.arange(members)),
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
    """Projected seconds of each part of :func:`evaluate` from measured rates.

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
