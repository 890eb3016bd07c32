r"""Meta-training STAR and small_fc_lopt: antithetic ES or PES over truncated unrolls.

Calling pattern::

    config = MetaTrainConfig(task="digits_mlp", estimator="pes", steps=2000)
    result = meta_train(config, "runs/star")          # checkpoints, logs, thetas
    result = meta_train(config, "runs/star", resume=True)  # after a kill: same bits
    theta = load_theta("runs/star/best_theta.npz")

One outer step is one truncation of ``truncation`` inner steps for a population of
``population`` antithetic pairs (``2 * population`` inner training runs), compiled as
one jitted program: a ``lax.scan`` over inner steps of a step ``vmap``-ped over the
members (minibatch sampling inside), then the ES or PES estimate (see
:mod:`stability.lopt._unroll`), then AdamW on theta (decoupled weight decay, the
paper's regulariser) after clipping the meta-gradient's global norm. A non-finite
meta-gradient leaves theta and the outer optimizer untouched and is counted
(``skipped``); an inner run whose loss becomes non-finite or exceeds
``DIVERGED_LOSS_FACTOR * log(classes)`` restarts with its antithetic partner
(counted as ``diverged``); runs restart at the horizon.

The meta-loss is the mean over the truncation's inner steps of the log of the
training loss on the step's minibatch, clipped as upstream clips classification
losses: NaN and inf count as :math:`1.5 \log(\text{classes})`, the clip range is
``[1e-6, 1.5 log(classes)]`` (the floor keeps the log finite; float32 cross-entropy
is not resolved much below it).

STAR meta-training starts from a zero output layer, where STAR equals its nominal
term (upstream's random output layer makes the untrained STAR diverge);
small_fc_lopt starts from upstream's random initialisation (with a zero output layer
it would not move). ``nominal_stepsize`` is a hyperparameter of the run: the default
is the value :func:`tune_nominal_stepsize` picks on ``digits_mlp`` at T = 1000, and
``None`` tunes it for the configured task and horizon before meta-training starts.

Every ``eval_every`` outer steps the current theta runs ``eval_seeds`` full inner
episodes of ``horizon`` steps from held-out seeds (keys no training episode uses) and
the best theta so far is kept. ``select`` says what "best" means: ``"train_loss"``
(the default), the lowest training-split loss at the end of the episode averaged over
the seeds, which is what an evaluation reports and which a single failed seed
dominates; or ``"objective"``, the lowest mean meta-loss (the mean log loss along the
episode), which rewards very small losses on some seeds and forgives a stalled one.
The candidates are the evaluations at step 0 and at multiples of ``eval_every``; a
run whose ``steps`` is no such multiple also evaluates its last step (logged with
``"final": true``) without letting it compete, so that the kept theta does not
depend on where a run was split into resumed pieces. ``eval_horizon`` longer than
``horizon`` keeps the theta that trains best past the meta-training horizon.

Files in ``out_dir``: ``checkpoint.npz`` (theta, outer optimizer state, estimator
state with the inner runs and PES accumulators, the inner RNG keys, step, counters,
best theta; written atomically every ``checkpoint_every`` steps), ``log.jsonl`` and
``log.csv`` (one row per outer step), ``eval.jsonl`` (held-out evaluations),
``theta.npz`` (final) and ``best_theta.npz``, each with a JSON sidecar (command, git
commit, date, configuration, final metrics). ``resume=True`` restarts from the
checkpoint, drops log rows written after it, and continues bit for bit.

Scale-out: the population's pair axis is sharded over the devices with
``jax.sharding`` (the largest divisor of ``population`` not above
``jax.device_count()``); results equal the one-device run up to the order of the
float32 sum over pairs. To use several CPU devices on one host set
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before importing JAX. On
several hosts, call ``jax.distributed.initialize()`` in every process before
:func:`meta_train` (same configuration everywhere); ``jax.devices()`` is then global
and the same mesh spans the hosts. Every process writes the same files, so give each
process its own ``out_dir`` or let only ``jax.process_index() == 0`` keep them. (The
multi-host path has not been run here.)
"""

import csv
import dataclasses
import datetime
import functools
import json
import math
import pathlib
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS

from stability._validation import check_int
from stability.lopt import _unroll
from stability.lopt.io import atomic_write, flatten_theta, save_theta, unflatten_theta
from stability.lopt.star import small_fc_lopt, star
from stability.lopt.theta import init_theta, zero_output_layer

__all__ = [
    "DEFAULT_BLACKBOX_BOUND",
    "DEFAULT_NOMINAL_STEPSIZE",
    "DIVERGED_LOSS_FACTOR",
    "MetaTrainConfig",
    "MetaTrainResult",
    "evaluate_theta",
    "meta_gradient",
    "meta_train",
    "tune_nominal_stepsize",
]

F32 = jnp.float32
# tune_nominal_stepsize("digits_mlp", horizon=1000) on the half-decade grid.
DEFAULT_NOMINAL_STEPSIZE = 10**-1.5  # 0.0316
DIVERGED_LOSS_FACTOR = 30.0
# The blackbox term bounded by the nominal term (issue 26): at 1 the shipped STAR
# stayed stable to 100x its horizon on 3 of 3 meta-seeds, where the paper's
# unbounded recipe drifts (benchmarks/RESULTS.md, "Meta-training levers").
DEFAULT_BLACKBOX_BOUND = 1.0
OPTIMIZERS = ("star", "small_fc_lopt")
ESTIMATORS = ("pes", "es")
SELECTIONS = ("train_loss", "objective")
_CHECKPOINT_FORMAT = 1
# Fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = ("steps",)
# fields added after checkpoints were first written, with the value those implied
_LEGACY = {
    "select": "objective",
    "horizon_min": None,
    "final_weight": 0.0,
    "blackbox_penalty": 0.0,
    "eval_horizon": None,
    "blackbox_bound": None,
}
_LOG_FIELDS = (
    "step",
    "meta_loss",
    "grad_norm",
    "skipped",
    "skipped_total",
    "diverged",
    "diverged_total",
    "episodes_total",
    "theta_norm",
    "wall_s",
)


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    """Everything that defines a meta-training run (validated on construction).

    Attributes:
      task: name of a task in :func:`stability.lopt.tasks.task_names`.
      optimizer: ``"star"`` or ``"small_fc_lopt"``.
      estimator: ``"pes"`` (persistent, unbiased over the horizon) or ``"es"``
        (antithetic, truncated).
      steps: outer steps (truncations) in total.
      horizon: inner steps per episode, T.
      truncation: inner steps per outer step, K (at most ``horizon``).
      population: antithetic pairs; ``2 * population`` inner runs.
      sigma: standard deviation of the perturbations of theta.
      outer_lr: AdamW learning rate on theta.
      weight_decay: AdamW decoupled weight decay on theta (paper: 0.1; ablations
        0, 0.1, 0.5, 1.0).
      nominal_stepsize: STAR's nominal step; ``None`` tunes it at the start
        (:func:`tune_nominal_stepsize`).
      nominal: STAR with its nominal term.
      precondition: STAR's blackbox term output-preconditioned.
      seed: root of every random number of the run.
      checkpoint_every: outer steps between checkpoints.
      eval_every: outer steps between held-out evaluations (0: never).
      eval_seeds: held-out inner episodes per evaluation.
      clip: global-norm clip of the meta-gradient (``math.inf``: none).
      select: held-out score that picks ``best_theta``: ``"train_loss"`` or
        ``"objective"`` (see the module doc).
      horizon_min: ``None`` (every episode lasts ``horizon`` steps) or the
        shortest episode: lengths are drawn log-uniformly in
        ``[horizon_min, horizon]``, one per episode (randomised horizons).
      final_weight: weight of an episode's final loss beside its mean loss in the
        meta-objective (0: the mean alone).
      blackbox_penalty: weight of the stability term: at the end of every
        truncation each member pays ``log(1 + ||f_b|| / ||f_g||)``, the gain of
        STAR's blackbox term relative to its nominal term at its current state
        (:mod:`stability.lopt.anatomy`); 0 turns it off. STAR with its nominal
        term only.
      eval_horizon: inner steps of the held-out evaluations that pick
        ``best_theta`` (``None``: ``horizon``); e.g. ``10 * horizon`` keeps the
        theta that trains best past the meta-training horizon. ``nominal_stepsize
        = None`` is then tuned at this horizon too.
      blackbox_bound: ``None`` (the paper's STAR) or ``c > 0``: STAR's blackbox
        term bounded per tensor to ``c`` times the nominal term's RMS (see
        :func:`stability.lopt.star`; not in the paper). ``"auto"`` (the default)
        is :data:`DEFAULT_BLACKBOX_BOUND` for STAR with its nominal term, ``None``
        otherwise, resolved when the run starts (the sidecars and
        :attr:`MetaTrainResult.config` hold the resolved value).
    """

    task: str = "digits_mlp"
    optimizer: str = "star"
    estimator: str = "pes"
    steps: int = 3000
    horizon: int = 1000
    truncation: int = 50
    population: int = 8
    sigma: float = 0.01
    outer_lr: float = 3e-4
    weight_decay: float = 0.1
    nominal_stepsize: float | None = DEFAULT_NOMINAL_STEPSIZE
    nominal: bool = True
    precondition: bool = True
    seed: int = 0
    checkpoint_every: int = 100
    eval_every: int = 100
    eval_seeds: int = 32
    clip: float = 10.0
    select: str = "train_loss"
    horizon_min: int | None = None
    final_weight: float = 0.0
    blackbox_penalty: float = 0.0
    eval_horizon: int | None = None
    blackbox_bound: float | str | None = "auto"

    def __post_init__(self):
        from stability.lopt.tasks import task_names

        def put(name, value):
            object.__setattr__(self, name, value)

        if not isinstance(self.task, str) or self.task not in task_names():
            raise ValueError(
                f"task: expected one of {', '.join(task_names())}, got {self.task!r}"
            )
        for name, options in (
            ("optimizer", OPTIMIZERS),
            ("estimator", ESTIMATORS),
            ("select", SELECTIONS),
        ):
            if getattr(self, name) not in options:
                raise ValueError(
                    f"{name}: expected one of {options}, got {getattr(self, name)!r}"
                )
        for name, low in (
            ("steps", 0),
            ("horizon", 1),
            ("truncation", 1),
            ("population", 1),
            ("seed", 0),
            ("checkpoint_every", 1),
            ("eval_every", 0),
            ("eval_seeds", 1),
        ):
            put(name, check_int(name, getattr(self, name), low=low))
        if self.seed >= 2**31:
            raise ValueError(f"seed: must be < 2**31, got {self.seed}")
        if self.truncation > self.horizon:
            raise ValueError(
                f"truncation: must be <= horizon ({self.horizon}), "
                f"got {self.truncation}"
            )
        put("sigma", _check_float("sigma", self.sigma, positive=True))
        put("outer_lr", _check_float("outer_lr", self.outer_lr))
        put("weight_decay", _check_float("weight_decay", self.weight_decay))
        if self.nominal_stepsize is not None:
            put(
                "nominal_stepsize",
                _check_float("nominal_stepsize", self.nominal_stepsize, positive=True),
            )
        put("clip", _check_float("clip", self.clip, positive=True, allow_inf=True))
        for name in ("final_weight", "blackbox_penalty"):
            put(name, _check_float(name, getattr(self, name)))
        for name in ("horizon_min", "eval_horizon"):
            if getattr(self, name) is not None:
                put(name, check_int(name, getattr(self, name), low=1))
        if self.horizon_min is not None and self.horizon_min > self.horizon:
            raise ValueError(
                f"horizon_min: must be <= horizon ({self.horizon}), "
                f"got {self.horizon_min}"
            )
        if self.blackbox_bound not in (None, "auto"):
            put(
                "blackbox_bound",
                _check_float("blackbox_bound", self.blackbox_bound, positive=True),
            )
            if self.optimizer != "star" or not self.nominal:
                raise ValueError(
                    "blackbox_bound: needs STAR with its nominal term (it bounds "
                    "the blackbox term by the nominal term)"
                )
        if self.blackbox_penalty and (self.optimizer != "star" or not self.nominal):
            raise ValueError(
                "blackbox_penalty: needs STAR with its nominal term (the penalty "
                "is the blackbox term's gain relative to the nominal term)"
            )
        for name in ("nominal", "precondition"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"{name}: expected a bool, got {value!r}")
            put(name, bool(value))

    def to_dict(self) -> dict:
        """The fields as a JSON-friendly dict (``clip = inf`` as the string)."""
        d = dataclasses.asdict(self)
        if math.isinf(d["clip"]):
            d["clip"] = "inf"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MetaTrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"config: unknown field {unknown[0]!r}")
        d = dict(d)
        if d.get("clip") == "inf":
            d["clip"] = math.inf
        return cls(**d)


def _check_float(name: str, value, positive=False, allow_inf=False) -> float:
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


class TrainState(NamedTuple):
    """Everything the jitted outer step reads and writes (all of it checkpointed).

    Attributes:
      theta: meta-parameters (float32 dict).
      opt_state: AdamW state on theta.
      population: the inner runs (:class:`~stability.lopt._unroll.Population`).
      accumulator: PES sums of perturbations, leaves ``(population, ...)``.
      step: outer steps done (int32).
      skipped: non-finite meta-gradients skipped so far.
      diverged: inner runs restarted because they diverged.
      episodes: inner runs that reached the horizon.
    """

    theta: Any
    opt_state: Any
    population: _unroll.Population
    accumulator: Any
    step: jax.Array
    skipped: jax.Array
    diverged: jax.Array
    episodes: jax.Array


class MetaTrainResult(NamedTuple):
    """What :func:`meta_train` returns.

    Attributes:
      theta: final theta (NumPy float32 dict).
      best_theta: theta with the best held-out evaluation (the final one when no
        evaluation ran).
      best_score: its held-out score, ``config.select`` (``nan`` without
        evaluations).
      best_step: the outer step it was reached at (``-1`` without evaluations).
      steps: outer steps done.
      skipped: non-finite meta-gradients skipped.
      diverged: inner runs restarted after diverging.
      config: the configuration actually run (nominal step size resolved).
      out_dir: where the files are.
    """

    theta: dict
    best_theta: dict
    best_score: float
    best_step: int
    steps: int
    skipped: int
    diverged: int
    config: MetaTrainConfig
    out_dir: pathlib.Path


def _make_opt_factory(config: MetaTrainConfig):
    if config.optimizer == "small_fc_lopt":
        return lambda theta: small_fc_lopt(theta)
    return lambda theta: star(
        theta,
        nominal_stepsize=config.nominal_stepsize,
        nominal=config.nominal,
        precondition=config.precondition,
        blackbox_bound=config.blackbox_bound,
    )


def _keys(seed: int):
    """Independent key streams of a run: perturbations, population, evaluation."""
    root = jax.random.key(seed)
    return {
        name: jax.random.fold_in(root, i)
        for i, name in enumerate(("theta", "eps", "population", "eval"))
    }


def _pop_devices(pairs: int, devices) -> list:
    devices = list(jax.devices() if devices is None else devices)
    n = max(d for d in range(1, len(devices) + 1) if pairs % d == 0)
    return devices[:n]


class _Program:
    """The jitted pieces of a run, built once from an (effective) configuration."""

    def __init__(self, config: MetaTrainConfig, devices=None):
        from stability.lopt.tasks import get_task

        if config.nominal_stepsize is None or config.blackbox_bound == "auto":
            raise ValueError("config: resolve it before building a program")
        self.config = config
        self.task = get_task(config.task)
        self.inner = _unroll.InnerLoop(
            self.task,
            _make_opt_factory(config),
            config.horizon,
            DIVERGED_LOSS_FACTOR * self.task.chance_loss,
            horizon_min=config.horizon_min,
            final_weight=config.final_weight,
        )
        clip = (
            [optax.clip_by_global_norm(config.clip)]
            if math.isfinite(config.clip)
            else []
        )
        self.outer = optax.chain(
            *clip, optax.adamw(config.outer_lr, weight_decay=config.weight_decay)
        )
        self.devices = _pop_devices(config.population, devices)
        self.mesh = Mesh(np.asarray(self.devices), ("pop",))
        self.pop_sharding = NamedSharding(self.mesh, PS("pop"))
        self.replicated = NamedSharding(self.mesh, PS())
        r, p = self.replicated, self.pop_sharding
        self.state_sharding = TrainState(r, r, p, p, r, r, r, r)
        self.init_state = jax.jit(self._init_state, out_shardings=self.state_sharding)
        self.step = jax.jit(
            self._step,
            in_shardings=(self.state_sharding, p, r),
            out_shardings=(self.state_sharding, r),
        )
        self.evaluate = jax.jit(self._evaluate)

    @property
    def heads(self) -> int:
        return 3 if self.config.optimizer == "star" else 2

    def initial_theta(self):
        theta = init_theta(_keys(self.config.seed)["theta"], heads=self.heads)
        return zero_output_layer(theta) if self.config.optimizer == "star" else theta

    def _init_state(self) -> TrainState:
        c = self.config
        theta = self.initial_theta()
        pop = self.inner.init_population(
            theta, _keys(c.seed)["population"], c.population
        )
        acc = jax.tree.map(lambda x: jnp.zeros((c.population, *x.shape), F32), theta)
        zero = jnp.zeros((), jnp.int32)
        return TrainState(
            theta, self.outer.init(theta), pop, acc, zero, zero, zero, zero
        )

    def _step(self, state: TrainState, poison: jax.Array, pes: jax.Array):
        c = self.config
        key = jax.random.fold_in(_keys(c.seed)["eps"], state.step)
        eps = _unroll.perturbations(key, state.theta, c.population, c.sigma)
        eps = jax.lax.with_sharding_constraint(eps, self.pop_sharding)
        metas = _unroll.member_thetas(state.theta, eps)
        pop, tr = self.inner.truncation(metas, state.population, poison, c.truncation)
        if c.blackbox_penalty:
            tr = self._penalised(tr, metas, pop)
        grad, acc = _unroll.estimate(pes, tr, eps, state.accumulator, c.sigma)
        finite = jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grad)])
        )
        safe_grad = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grad)
        updates, opt_state = self.outer.update(safe_grad, state.opt_state, state.theta)
        theta = optax.apply_updates(state.theta, updates)

        def keep(new, old):
            return jnp.where(finite, new, old)

        theta = jax.tree.map(keep, theta, state.theta)
        opt_state = jax.tree.map(keep, opt_state, state.opt_state)
        diverged = jnp.sum(tr.diverged, dtype=jnp.int32)
        episodes = jnp.sum(tr.done & ~tr.diverged, dtype=jnp.int32)
        skipped = (~finite).astype(jnp.int32)
        new_state = TrainState(
            theta,
            opt_state,
            pop,
            acc,
            state.step + 1,
            state.skipped + skipped,
            state.diverged + diverged,
            state.episodes + episodes,
        )
        metrics = {
            "meta_loss": jnp.mean(tr.losses),
            "grad_norm": optax.tree.norm(grad),
            "skipped": skipped,
            "diverged": diverged,
            "theta_norm": optax.tree.norm(theta),
            "grad": grad,
        }
        return new_state, metrics

    def _penalised(self, tr, metas, pop) -> _unroll.Truncation:
        """The truncation's losses with the stability term added at its last step
        (weighted by the truncation's length, so that it counts as
        ``blackbox_penalty * log(1 + ratio)`` in the truncation's mean)."""
        c = self.config
        batch = jax.vmap(self.inner.batch)(pop.episode_key, pop.step)

        def ratio(meta, params, opt_state, batch):
            g = jax.grad(self.task.loss)(params, batch)
            kw = {
                "nominal_stepsize": c.nominal_stepsize,
                "precondition": c.precondition,
            }
            total, _ = self.inner.make_opt(meta).update(g, opt_state, params)
            free, _ = star(meta, **kw).update(g, opt_state, params)
            black, _ = star(meta, nominal=False, **kw).update(g, opt_state, params)
            trees = (total, free, black)
            # the nominal term is the free step less its blackbox term; the blackbox
            # term taken (bounded or not) is the step less the nominal term
            sq = [
                (jnp.sum(jnp.square(t - (f - b))), jnp.sum(jnp.square(f - b)))
                for t, f, b in zip(*map(jax.tree.leaves, trees), strict=True)
            ]
            nb = jnp.sqrt(sum(x for x, _ in sq))
            ng = jnp.sqrt(sum(y for _, y in sq))
            return jnp.log1p(nb / jnp.maximum(ng, 1e-30))

        pen = jax.vmap(jax.vmap(ratio, (0, 0, 0, None)), (0, 0, 0, 0))(
            metas, pop.params, pop.opt_state, batch
        )
        # a non-finite member state is the divergence's business, not the penalty's
        pen = jnp.where(jnp.isfinite(pen), pen, 0.0).astype(F32)
        extra = c.truncation * c.blackbox_penalty * pen
        return tr._replace(losses=tr.losses.at[-1].add(extra))

    def eval_keys(self) -> jax.Array:
        base = _keys(self.config.seed)["eval"]
        return jax.vmap(lambda i: _unroll.unwrap(jax.random.fold_in(base, i)))(
            jnp.arange(self.config.eval_seeds, dtype=jnp.int32)
        )

    def _evaluate(self, theta) -> dict:
        c = self.config
        return _evaluate_runs(
            self.inner, theta, self.eval_keys(), c.eval_horizon or c.horizon, self.task
        )


# Fields the compiled program does not depend on (the estimator is a runtime flag).
_RUNTIME_FIELDS = {
    "steps": 0,
    "estimator": "pes",
    "checkpoint_every": 1,
    "eval_every": 0,
    "select": "train_loss",
}


def _program(config: MetaTrainConfig, devices=None) -> _Program:
    """A cached :class:`_Program`: runs that differ only in the fields above (a
    resumed run, a longer run, ES vs PES) share the compiled functions."""
    key = dataclasses.replace(_resolve_bound(config), **_RUNTIME_FIELDS)
    return _cached_program(key, None if devices is None else tuple(devices))


@functools.lru_cache(maxsize=8)
def _cached_program(config: MetaTrainConfig, devices) -> _Program:
    return _Program(config, devices)


def _evaluate_runs(inner, meta, keys, horizon: int, task) -> dict:
    """Full episodes from ``keys`` (vmapped); means over the seeds."""

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


def evaluate_theta(
    theta, config: MetaTrainConfig | None = None, *, seeds: int | None = None
) -> dict:
    """Held-out evaluation of ``theta`` as :func:`meta_train` runs it.

    Args:
      theta: meta-parameters for ``config.optimizer``.
      config: the run's configuration (default :class:`MetaTrainConfig`); its task,
        horizon, optimizer options, seed and ``eval_seeds`` are used.
      seeds: overrides ``config.eval_seeds``.
    Returns:
      floats ``objective`` (mean per-step meta-loss), ``final_batch_loss``,
      ``train_loss`` (whole training split), ``test_loss``, ``test_accuracy``,
      each the mean over the held-out episodes at the end of the horizon.
    """
    config = config or MetaTrainConfig()
    if seeds is not None:
        config = dataclasses.replace(config, eval_seeds=seeds)
    config = _resolve(config)
    program = _program(config)
    theta = jax.tree.map(lambda x: jnp.asarray(x, F32), theta)
    return {k: float(v) for k, v in program.evaluate(theta).items()}


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
    one vmapped program); the score is the mean per-step meta-loss, as meta-training
    measures it.

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
    from stability.lopt.tasks import get_task

    if grid is None:
        grid = [float(10.0 ** (k / 2)) for k in range(-8, -1)]
    grid = [_check_float("grid", g, positive=True) for g in np.ravel(grid)]
    if not grid:
        raise ValueError("grid: needs at least one step size")
    seeds = check_int("seeds", seeds, low=1)
    horizon = check_int("horizon", horizon, low=1)
    task_obj = get_task(task)

    def make_opt(meta):
        theta, nominal_stepsize = meta
        return star(theta, nominal_stepsize=nominal_stepsize, precondition=precondition)

    inner = _unroll.InnerLoop(
        task_obj, make_opt, horizon, DIVERGED_LOSS_FACTOR * task_obj.chance_loss
    )
    theta = zero_output_layer(init_theta(_keys(seed)["theta"], heads=3))
    base = _keys(seed)["eval"]
    keys = jax.vmap(lambda i: _unroll.unwrap(jax.random.fold_in(base, i)))(
        jnp.arange(seeds, dtype=jnp.int32)
    )

    @jax.jit
    def scores(values):
        return jax.vmap(
            lambda v: _evaluate_runs(inner, (theta, v), keys, horizon, task_obj)[
                "objective"
            ]
        )(values)

    values = np.asarray(scores(jnp.asarray(grid, F32)), dtype=np.float64)
    table = {g: float(s) for g, s in zip(grid, values, strict=True)}
    finite = {g: s for g, s in table.items() if math.isfinite(s)}
    if not finite:
        raise RuntimeError("tune_nominal_stepsize: every grid value diverged")
    return min(finite, key=finite.get), table


def _resolve_bound(config: MetaTrainConfig) -> MetaTrainConfig:
    """The configuration with ``blackbox_bound="auto"`` resolved."""
    if config.blackbox_bound != "auto":
        return config
    star_with_nominal = config.optimizer == "star" and config.nominal
    bound = DEFAULT_BLACKBOX_BOUND if star_with_nominal else None
    return dataclasses.replace(config, blackbox_bound=bound)


def _resolve(config: MetaTrainConfig) -> MetaTrainConfig:
    """The configuration with ``blackbox_bound="auto"`` resolved and
    ``nominal_stepsize=None`` replaced by a tuned value."""
    config = _resolve_bound(config)
    if config.nominal_stepsize is not None:
        return config
    if config.optimizer != "star":
        return dataclasses.replace(config, nominal_stepsize=DEFAULT_NOMINAL_STEPSIZE)
    best, _ = tune_nominal_stepsize(
        config.task,
        horizon=config.eval_horizon or config.horizon,
        seeds=config.eval_seeds,
        precondition=config.precondition,
        seed=config.seed,
    )
    return dataclasses.replace(config, nominal_stepsize=best)


def meta_gradient(config: MetaTrainConfig, *, devices=None) -> dict:
    """The first outer step's meta-gradient and meta-loss from a fresh state.

    Args:
      config: the run's configuration.
      devices: devices to shard the population over (default all).
    Returns:
      ``{"grad": theta-shaped NumPy dict, "meta_loss": float, "devices": n}``.
    """
    config = _resolve(config)
    program = _program(config, devices)
    state = program.init_state()
    poison = jnp.zeros((config.population, 2), F32)
    _, metrics = program.step(state, poison, config.estimator == "pes")
    return {
        "grad": jax.tree.map(np.asarray, jax.device_get(metrics["grad"])),
        "meta_loss": float(metrics["meta_loss"]),
        "devices": len(program.devices),
    }


# -- checkpoints and logs ------------------------------------------------------------


def _save_checkpoint(path, state: TrainState, host: dict, best_theta) -> None:
    leaves = jax.tree.leaves(jax.device_get(state))
    arrays = {f"state/{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
    if best_theta is not None:
        arrays.update(
            {
                f"best/{k}": v
                for k, v in flatten_theta(jax.device_get(best_theta)).items()
            }
        )
    arrays["host"] = np.asarray(json.dumps(host))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _load_checkpoint(path, program: _Program):
    with np.load(path) as f:
        host = json.loads(str(f["host"]))
        template = jax.eval_shape(program._init_state)
        t_leaves, treedef = jax.tree.flatten(template)
        names = sorted(k for k in f.files if k.startswith("state/"))
        if len(names) != len(t_leaves):
            raise ValueError(
                f"checkpoint: {path} holds {len(names)} arrays, the configuration "
                f"needs {len(t_leaves)}"
            )
        leaves = []
        for name, t in zip(names, t_leaves, strict=True):
            x = np.asarray(f[name])
            if x.shape != t.shape or x.dtype != t.dtype:
                raise ValueError(
                    f"checkpoint: {name} is {x.dtype}{x.shape}, expected "
                    f"{t.dtype}{t.shape}"
                )
            leaves.append(x)
        best = {k[5:]: np.asarray(f[k]) for k in f.files if k.startswith("best/")}
    state = jax.device_put(treedef.unflatten(leaves), program.state_sharding)
    return state, host, (unflatten_theta(best) if best else None)


def _read_jsonl(path: pathlib.Path, max_step: int) -> list[dict]:
    """Records of a JSONL log up to ``max_step``; a torn last line is dropped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= max_step:
            rows.append(row)
    return rows


def _write_jsonl(path: pathlib.Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write(path, lambda f: f.write(text), mode="w")


def _write_csv(path: pathlib.Path, rows: list[dict]) -> None:
    def write(f):
        w = csv.DictWriter(f, fieldnames=_LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    atomic_write(path, write, mode="w")


def _float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=pathlib.Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# -- the loop ------------------------------------------------------------------------


def meta_train(
    config: MetaTrainConfig,
    out_dir,
    resume: bool = False,
    progress: bool = True,
    *,
    fault_steps: Sequence[int] = (),
    devices=None,
    command: str | None = None,
) -> MetaTrainResult:
    """Meta-train, checkpointing and logging to ``out_dir``; see the module doc.

    Ctrl-C (SIGINT, in the main thread) is taken at the next safe point whatever the
    moment it comes: after the compilation, evaluation or outer step under way, the
    run writes a checkpoint of where it is and raises ``KeyboardInterrupt``; resumed,
    it continues bit for bit. (Raised inside XLA's compilation it could crash the
    process.)

    Args:
      config: the run's configuration.
      out_dir: directory for the checkpoint, logs and thetas (created).
      resume: continue from ``out_dir/checkpoint.npz`` (bit for bit, whatever the
        step it was written at). Without a checkpoint the run starts afresh. The
        configuration must equal the saved one except for ``steps``, which may
        not be below the checkpoint's step.
      progress: show a tqdm progress bar (meta-loss, steps/s) on stderr.
      fault_steps: testing hook: at these outer steps (0-based) the first member's
        meta-loss is made NaN at the first inner step, which must be skipped as a
        non-finite meta-gradient and restart that pair.
      devices: devices for the population (default all of ``jax.devices()``).
      command: the command recorded in the thetas' sidecars (default: this
        process's ``sys.argv``; ``stability meta-train`` passes its own).
    Returns:
      a :class:`MetaTrainResult`.
    Raises:
      ValueError: ``out_dir`` already holds a checkpoint and ``resume`` is false, or
        the checkpoint does not belong to this configuration.
      KeyboardInterrupt: after a SIGINT, once the checkpoint is written.
    """
    import signal
    import threading

    received: list = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        return _meta_train(
            config, out_dir, resume, progress, fault_steps, devices, command, received
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _meta_train(
    config, out_dir, resume, progress, fault_steps, devices, command, received
) -> MetaTrainResult:
    """:func:`meta_train`'s body; ``received`` turns non-empty on a SIGINT."""
    from tqdm import tqdm

    if not isinstance(config, MetaTrainConfig):
        raise ValueError(
            f"config: expected a MetaTrainConfig, got {type(config).__name__}"
        )
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.npz"
    if ckpt.exists() and not resume:
        raise ValueError(
            f"out_dir: {out} already holds a checkpoint; "
            "resume it or use a new directory"
        )
    fault_steps = {int(s) for s in fault_steps}
    log_path, csv_path, eval_path = (
        out / "log.jsonl",
        out / "log.csv",
        out / "eval.jsonl",
    )

    if resume and ckpt.exists():
        with np.load(ckpt) as f:
            saved = json.loads(str(f["host"]))
        requested = config.to_dict()
        for name, value in {**_LEGACY, **saved["requested"]}.items():
            if name not in _RESUMABLE_CHANGES and requested.get(name) != value:
                raise ValueError(
                    f"{name}: the checkpoint in {out} was written with {value!r}, "
                    f"got {requested.get(name)!r}"
                )
        effective = MetaTrainConfig.from_dict(
            {**_LEGACY, **saved["effective"], "steps": config.steps}
        )
        program = _program(effective, devices)
        state, host, best_theta = _load_checkpoint(ckpt, program)
        start = int(host["step"])
        if config.steps < start:
            raise ValueError(
                f"steps: the checkpoint in {out} is at step {start}; a resumed run "
                f"needs steps >= {start}, got {config.steps}"
            )
        fresh = False
        rows = _read_jsonl(log_path, start)
        _write_jsonl(log_path, rows)
        _write_csv(csv_path, rows)
        evals = _read_jsonl(eval_path, start)
        if start < config.steps:  # the shorter run's closing evaluation goes
            evals = [r for r in evals if not r.get("final")]
        _write_jsonl(eval_path, evals)
    else:
        effective = _resolve(config)
        program = _program(effective, devices)
        state = program.init_state()
        start = 0
        fresh = True
        host = {"best_score": None, "best_step": -1}
        best_theta = None
        rows = []
        for path in (log_path, eval_path):
            _write_jsonl(path, [])
        _write_csv(csv_path, [])

    c = effective
    members_per_step = 2 * c.population * c.truncation
    meta_dict = {"requested": config.to_dict(), "effective": c.to_dict()}
    t0 = time.perf_counter()

    def run_eval(step: int, final: bool = False) -> None:
        nonlocal best_theta
        result = {k: float(v) for k, v in program.evaluate(state.theta).items()}
        score = result[c.select]
        best = host["best_score"]
        improved = not final and math.isfinite(score) and (best is None or score < best)
        if improved:
            host["best_score"], host["best_step"] = score, step
            best_theta = jax.device_get(state.theta)
        row = {"step": step, **{k: _float(v) for k, v in result.items()}}
        row.update(
            best=improved, final=final, wall_s=round(time.perf_counter() - t0, 3)
        )
        with eval_path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def checkpoint(step: int) -> None:
        host_record = {**host, **meta_dict, "step": step, "format": _CHECKPOINT_FORMAT}
        _save_checkpoint(ckpt, state, host_record, best_theta)

    def stop_if_asked(step: int) -> None:
        if received:
            checkpoint(step)
            raise KeyboardInterrupt

    if progress:
        print(
            f"meta-train {c.optimizer} on {c.task}: compiling the outer step"
            + (" and evaluating the start" if fresh and c.eval_every else "")
            + " (tens of seconds on a CPU)",
            file=sys.stderr,
            flush=True,
        )
    if fresh and c.eval_every:
        run_eval(0)  # the starting point: STAR's tuned nominal term alone
    stop_if_asked(start)

    bar = tqdm(
        total=c.steps,
        initial=start,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        desc=f"meta-train {c.optimizer}/{c.estimator}",
    )
    use_pes = jax.device_put(np.asarray(c.estimator == "pes"), program.replicated)
    poison_ok = jax.device_put(
        np.zeros((c.population, 2), np.float32), program.pop_sharding
    )
    try:
        with log_path.open("a") as log_f, csv_path.open("a", newline="") as csv_f:
            writer = csv.DictWriter(
                csv_f, fieldnames=_LOG_FIELDS, extrasaction="ignore"
            )
            for s in range(start, c.steps):
                poison = poison_ok
                if s in fault_steps:
                    bad = np.zeros((c.population, 2), np.float32)
                    bad[0, 0] = np.nan
                    poison = jax.device_put(bad, program.pop_sharding)
                state, metrics = program.step(state, poison, use_pes)
                scalars = jax.device_get(
                    {k: v for k, v in metrics.items() if k != "grad"}
                )
                counts = jax.device_get((state.skipped, state.diverged, state.episodes))
                row = {
                    "step": s + 1,
                    "meta_loss": _float(scalars["meta_loss"]),
                    "grad_norm": _float(scalars["grad_norm"]),
                    "skipped": int(scalars["skipped"]),
                    "skipped_total": int(counts[0]),
                    "diverged": int(scalars["diverged"]),
                    "diverged_total": int(counts[1]),
                    "episodes_total": int(counts[2]),
                    "theta_norm": _float(scalars["theta_norm"]),
                    "wall_s": round(time.perf_counter() - t0, 3),
                }
                log_f.write(json.dumps(row) + "\n")
                log_f.flush()
                writer.writerow(row)
                csv_f.flush()
                done = s + 1
                if c.eval_every and done % c.eval_every == 0:
                    run_eval(done)
                elif c.eval_every and done == c.steps:
                    run_eval(done, final=True)
                if done % c.checkpoint_every == 0 or done == c.steps:
                    checkpoint(done)
                stop_if_asked(done)
                rate = bar.format_dict.get("rate") or 0.0
                bar.set_postfix(
                    meta_loss=f"{row['meta_loss']:.4f}"
                    if row["meta_loss"] is not None
                    else "nan",
                    best=(
                        f"{host['best_score']:.3g}"
                        if host["best_score"] is not None
                        else "-"
                    ),
                    msteps_s=f"{rate * members_per_step:.0f}",
                    refresh=False,
                )
                bar.update(1)
    finally:
        bar.close()

    theta = jax.tree.map(np.asarray, jax.device_get(state.theta))
    if best_theta is None:
        best_theta = theta
    best_theta = jax.tree.map(lambda x: np.asarray(x, np.float32), best_theta)
    final_rows = _read_jsonl(eval_path, c.steps)
    metadata = {
        "command": command if command is not None else " ".join(sys.argv),
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": c.to_dict(),
        "metrics": {
            "steps": int(state.step),
            "skipped": int(state.skipped),
            "diverged": int(state.diverged),
            "episodes": int(state.episodes),
            "best_score": host["best_score"],
            "best_step": host["best_step"],
            "last_eval": final_rows[-1] if final_rows else None,
        },
    }
    save_theta(out / "theta.npz", theta, {**metadata, "which": "final"})
    save_theta(out / "best_theta.npz", best_theta, {**metadata, "which": "best"})
    return MetaTrainResult(
        theta,
        best_theta,
        float("nan") if host["best_score"] is None else float(host["best_score"]),
        int(host["best_step"]),
        int(state.step),
        int(state.skipped),
        int(state.diverged),
        c,
        out,
    )
