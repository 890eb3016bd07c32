"""The compiled pieces of a meta-training run: the outer step and its evaluation.

:class:`Program` builds, from a resolved
:class:`~stability.lopt.meta_train.MetaTrainConfig`, the jitted functions
:func:`~stability.lopt.meta_train.meta_train` calls: the initial
:class:`TrainState`, one outer step (perturbations, a truncation of the population
sharded over devices, the ES or PES estimate, an optional stability penalty, AdamW
on theta after a global-norm clip, a non-finite meta-gradient skipped) and the
held-out evaluation that keeps the best theta. The estimators and the population
are :mod:`stability.lopt._unroll`'s; one member's inner steps are
:mod:`stability.lopt._engine`'s.
"""

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS

from stability.lopt import _unroll
from stability.lopt._engine import episode_scores
from stability.lopt.star import small_fc_lopt, star
from stability.lopt.theta import init_theta, zero_output_layer

if TYPE_CHECKING:
    from stability.lopt.meta_train import MetaTrainConfig

F32 = jnp.float32


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


def make_opt_factory(config: "MetaTrainConfig"):
    if config.optimizer == "small_fc_lopt":
        return lambda theta: small_fc_lopt(theta)
    return lambda theta: star(
        theta,
        nominal_stepsize=config.nominal_stepsize,
        nominal=config.nominal,
        precondition=config.precondition,
        blackbox_bound=config.blackbox_bound,
    )


def pop_devices(pairs: int, devices) -> list:
    """The first ``n`` devices, ``n`` the largest divisor of ``pairs`` available."""
    devices = list(jax.devices() if devices is None else devices)
    n = max(d for d in range(1, len(devices) + 1) if pairs % d == 0)
    return devices[:n]


class Program:
    """The jitted pieces of a run, built once from an (effective) configuration."""

    def __init__(self, config: "MetaTrainConfig", devices=None):
        from stability.lopt.tasks import get_task

        if config.nominal_stepsize is None or config.blackbox_bound == "auto":
            raise ValueError("config: resolve it before building a program")
        self.config = config
        self.task = get_task(config.task)
        self.inner = _unroll.InnerLoop(
            self.task,
            make_opt_factory(config),
            config.horizon,
            _unroll.DIVERGED_LOSS_FACTOR * self.task.chance_loss,
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
        self.devices = pop_devices(config.population, devices)
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
        theta = init_theta(
            _unroll.key_streams(self.config.seed)["theta"], heads=self.heads
        )
        return zero_output_layer(theta) if self.config.optimizer == "star" else theta

    def _init_state(self) -> TrainState:
        c = self.config
        theta = self.initial_theta()
        pop = self.inner.init_population(
            theta, _unroll.key_streams(c.seed)["population"], c.population
        )
        acc = jax.tree.map(lambda x: jnp.zeros((c.population, *x.shape), F32), theta)
        zero = jnp.zeros((), jnp.int32)
        return TrainState(
            theta, self.outer.init(theta), pop, acc, zero, zero, zero, zero
        )

    def _step(self, state: TrainState, poison: jax.Array, pes: jax.Array):
        c = self.config
        key = jax.random.fold_in(_unroll.key_streams(c.seed)["eps"], state.step)
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
        return _unroll.eval_keys(self.config.seed, self.config.eval_seeds)

    def _evaluate(self, theta) -> dict:
        c = self.config
        return episode_scores(
            self.inner, theta, self.eval_keys(), c.eval_horizon or c.horizon
        )
