"""Inner training, the one engine: a task trained by an optimizer, member by member.

:class:`Inner` is one member's training: its fresh parameters and optimizer state,
the minibatch of each step, one optimizer step, the per-step meta-loss and a whole
episode. Every inner run in :mod:`stability.lopt` goes through it: the antithetic
populations of meta-training (:class:`stability.lopt._unroll.InnerLoop` adds
horizons and pairs), the held-out evaluations that keep the best theta, and the
windowed runs below that evaluation, tuning and the cost measurements use.

A run's key fixes everything random about it: the initial parameters come from
``fold_in(key, 0)``, the minibatch of step ``t`` from ``fold_in(fold_in(key, 1),
t)``, whatever the optimizer. Windowed runs (:class:`Runs`) cut a run into windows
of ``record_every`` steps, each one call of a jitted ``lax.scan`` vmapped over the
members, and gather the statistics :class:`TrainRecord` holds; they run in float32,
also under ``jax_enable_x64``.
"""

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from stability._validation import check_int
from stability.lopt.tasks import Task, get_task

F32 = jnp.float32
LOSS_FLOOR = 1e-6  # the log's floor; float32 cross-entropy is not resolved far below
# Roots of the run keys: seed s of a held-out run is fold_in(key(HELD_OUT_ROOT), s),
# of a tuning run fold_in(key(TUNING_ROOT), s); the two sets never meet, and neither
# is a key that meta-training draws.
HELD_OUT_ROOT = 6_000_001
TUNING_ROOT = 6_000_002


def wrap(raw: jax.Array) -> jax.Array:
    """A typed key from raw ``uint32`` key data."""
    return jax.random.wrap_key_data(raw)


def unwrap(key: jax.Array) -> jax.Array:
    """Raw ``uint32`` key data of a typed key."""
    return jax.random.key_data(key)


def f32(tree):
    """Cast every floating leaf to float32 (x64 may be on; runs stay float32)."""

    def cast(x):
        x = jnp.asarray(x)
        return x.astype(F32) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree.map(cast, tree)


def _same(tree):
    return tree


class Inner:
    """One member's inner training of ``task`` by ``make_opt(meta)``.

    Args:
      task: a :class:`~stability.lopt.tasks.Task`.
      make_opt: ``meta -> optax transformation``; ``meta`` is theta, a scalar
        hyperparameter or any pytree the factory understands, and may be traced.
      cast: applied to the parameters when they are made and after every step
        (:func:`f32` keeps a run in float32; default: left as they come).
    Keys are raw ``uint32`` key data (:func:`unwrap`).
    """

    def __init__(self, task, make_opt: Callable, *, cast: Callable = _same) -> None:
        self.task = task
        self.make_opt = make_opt
        self.cast = cast
        self.loss_max = float(1.5 * task.chance_loss)

    def fresh(self, meta, episode_key: jax.Array):
        """Initial task parameters and optimizer state of an episode."""
        params = self.cast(self.task.init(jax.random.fold_in(wrap(episode_key), 0)))
        return params, self.make_opt(meta).init(params)

    def batch(self, episode_key: jax.Array, step: jax.Array):
        """The minibatch of inner step ``step`` of an episode."""
        data_key = jax.random.fold_in(wrap(episode_key), 1)
        return self.task.sample_batch(jax.random.fold_in(data_key, step))

    def update(self, meta, params, opt_state, batch):
        """Loss at ``params`` on ``batch``, then one optimizer step."""
        loss, grads = jax.value_and_grad(self.task.loss)(params, batch)
        updates, opt_state = self.make_opt(meta).update(grads, opt_state, params)
        params = self.cast(optax.apply_updates(params, updates))
        return loss.astype(F32), params, opt_state

    def normalize(self, loss: jax.Array) -> jax.Array:
        """Per-step meta-loss: log of the clipped loss (NaN/inf count as the max)."""
        hi = self.loss_max
        loss = jnp.nan_to_num(loss, nan=hi, posinf=hi, neginf=hi)
        return jnp.log(jnp.clip(loss, LOSS_FLOOR, hi)).astype(F32)

    def run(self, meta, episode_key: jax.Array, num_steps: int):
        """A fresh episode of ``num_steps`` steps with no reset.

        Returns:
          ``(raw losses (num_steps,), normalised losses (num_steps,), final params)``.
        """
        params, opt_state = self.fresh(meta, episode_key)

        def body(carry, t):
            params, opt_state = carry
            loss, params, opt_state = self.update(
                meta, params, opt_state, self.batch(episode_key, t)
            )
            return (params, opt_state), loss

        (params, _), losses = lax.scan(
            body, (params, opt_state), jnp.arange(num_steps, dtype=jnp.int32)
        )
        return losses, self.normalize(losses), params


def episode_scores(inner: Inner, meta, keys, horizon: int) -> dict:
    """Full episodes of ``horizon`` steps from raw ``keys`` (vmapped); means over
    the episodes of ``objective`` (mean meta-loss), ``final_batch_loss``,
    ``train_loss`` (training split), ``test_loss`` and ``test_accuracy``."""
    task = inner.task

    def one(key):
        raw, normed, params = inner.run(meta, key, horizon)
        held_out = task.evaluate(params)
        return {
            "objective": jnp.mean(normed),
            "final_batch_loss": raw[-1],
            "train_loss": task.train_loss(params),
            "test_loss": held_out.loss,
            "test_accuracy": held_out.accuracy,
        }

    per_seed = jax.vmap(one)(keys)
    return {k: jnp.mean(v) for k, v in per_seed.items()}


# -- windowed runs -------------------------------------------------------------------


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


class Runner:
    """Jitted programs advancing ``M`` members of one optimizer family by one window.

    ``make_opt(value)`` builds the optimizer from a float32 scalar hyperparameter
    (traced under ``vmap``; ignored by fixed optimizers). Members are pairs
    ``(value, raw run key)``; each is one float32 :class:`Inner`.
    """

    def __init__(self, task: Task, make_opt: Callable, record_every: int):
        self.task = task
        self.make_opt = make_opt
        self.record_every = int(record_every)
        inner = Inner(task, make_opt, cast=f32)

        def init(value, key):
            params, state = inner.fresh(value, key)
            return (params, state), task.train_loss(params).astype(F32)

        def advance(carry, value, key, start):
            def step(carry, t):
                loss, params, state = inner.update(value, *carry, inner.batch(key, t))
                return (params, state), loss

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
def runner(task: Task, make_opt: Callable, record_every: int) -> Runner:
    """A cached :class:`Runner` (one compilation per optimizer family)."""
    return Runner(task, make_opt, record_every)


class Runs:
    """Members in flight: carry on the device, per-window statistics gathered.

    Args:
      runner: the programs.
      values: ``(M,)`` hyperparameter values.
      keys: ``(M,)`` typed run keys (:func:`run_keys`).
    """

    def __init__(self, runner: Runner, values, keys):
        self.runner = runner
        self.values = jnp.asarray(values, F32)
        self.keys = unwrap(keys)
        self.carry, self.initial = runner.init(self.values, self.keys)
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

    def subset(self, members) -> "Runs":
        """Continue only ``members`` (an index array); history is kept for them."""
        m = jnp.asarray(np.asarray(members))
        out = object.__new__(Runs)
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


def run_keys(root: int, seeds) -> jax.Array:
    """Typed keys ``fold_in(key(root), s)`` of the seeds ``s``."""
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    base = jax.random.key(root)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(
        jnp.asarray(seeds, jnp.uint32)
    )


def check_seeds(seeds) -> np.ndarray:
    """An int or ints in ``[0, 2**31)`` as an int64 array (ValueError naming
    ``seed`` otherwise)."""
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


def check_float(name: str, value, positive=False, allow_inf=False) -> float:
    """A real number ``>= 0`` (``> 0`` if ``positive``), finite unless
    ``allow_inf`` allows ``+inf``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a real number, got {value!r}") from None
    if math.isnan(x) or (math.isinf(x) and not (allow_inf and x > 0)):
        raise ValueError(f"{name}: must be finite, got {x}")
    if x < 0 or (positive and x == 0):
        raise ValueError(f"{name}: must be {'>' if positive else '>='} 0, got {x}")
    return x


def default_record_every(steps: Sequence[int]) -> int:
    """About 50 windows over the shortest horizon, dividing every horizon."""
    g = 0
    for s in steps:
        g = math.gcd(g, int(s))
    target = max(1, min(steps) // 50)
    return max(d for d in range(1, target + 1) if g % d == 0)


def check_schedule(num_steps: int, eval_at, record_every):
    """``(num_steps, sorted eval_at, record_every)`` checked: the window length
    (default :func:`default_record_every`) divides every step."""
    num_steps = check_int("num_steps", num_steps, low=1)
    eval_at = (num_steps,) if eval_at is None else tuple(eval_at)
    for s in eval_at:
        check_int("eval_at", s, low=1)
        if s > num_steps:
            raise ValueError(f"eval_at: {s} is beyond num_steps={num_steps}")
    if record_every is None:
        record_every = default_record_every((num_steps, *eval_at))
    record_every = check_int("record_every", record_every, low=1)
    for s in (num_steps, *eval_at):
        if s % record_every:
            raise ValueError(
                f"record_every: {record_every} does not divide the step {s}"
            )
    return num_steps, tuple(sorted(set(eval_at))), record_every


@dataclasses.dataclass(frozen=True)
class Fixed:
    """``make_opt`` of an optimizer without a tuned hyperparameter (hashable, so
    that the jitted programs are cached per optimizer object)."""

    optimizer: Any

    def __call__(self, value):
        del value
        return self.optimizer

    def __hash__(self):
        return id(self.optimizer)

    def __eq__(self, other):
        return isinstance(other, Fixed) and other.optimizer is self.optimizer


def held_out_runs(runner: Runner, value, seeds, num_steps, eval_at) -> TrainRecord:
    """Held-out seeds (from :data:`HELD_OUT_ROOT`) run at one value for
    ``num_steps`` steps, the held-out split measured at ``eval_at``."""
    t0 = time.perf_counter()
    values = np.full(len(seeds), value)
    runs = Runs(runner, values, run_keys(HELD_OUT_ROOT, seeds))
    runs.run_to(num_steps, eval_at)
    return runs.record(time.perf_counter() - t0)


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
    seeds = check_seeds(seed)
    num_steps, eval_at, record_every = check_schedule(num_steps, eval_at, record_every)
    return held_out_runs(
        runner(task, Fixed(optimizer), record_every), 0.0, seeds, num_steps, eval_at
    )
