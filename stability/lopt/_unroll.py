r"""Population unrolls of a learned optimizer and the ES / PES meta-gradient estimators.

Private kernel of :mod:`stability.lopt.meta_train`, built on the inner-training
engine :class:`stability.lopt._engine.Inner` (one member's steps, minibatches and
meta-loss). A population of ``P`` antithetic pairs trains ``2P`` copies of a task,
member ``(i, s)`` with meta-parameters :math:`\theta + s\,\epsilon_i`, :math:`s =
\pm 1`, :math:`\epsilon_i \sim \mathcal N(0, \sigma^2 I)` drawn afresh for every
truncation. The two members of a pair share their random numbers (initial parameters,
minibatches): the difference of their losses is then due to the perturbation alone.
Array layout: every leaf of the population carries leading axes ``(P, 2)`` (pair,
sign); the pair axis is the one that is sharded over devices.

One truncation of ``K`` inner steps for the whole population is one ``lax.scan`` over
steps of a step vmapped over pairs and signs, minibatch sampling included. An episode
ends, and the pair restarts from fresh parameters with a fresh key, when its step
count reaches the horizon or when either member's loss is non-finite or larger than
``diverged_loss`` (both members restart together, which keeps the pair antithetic).
Resets are rare, so they run under a ``lax.cond`` on "any pair done".

Per-step meta-loss (upstream's normaliser for classifiers, then a log):
:math:`\ell = \log \mathrm{clip}(\mathrm{nan\_to\_num}(L, L_{\max}), L_{\min},
L_{\max})` with :math:`L_{\max} = 1.5 \log(\text{classes})`.

Estimators, with :math:`\Delta_{i,t} = \ell^+_{i,t} - \ell^-_{i,t}` and ``K`` steps
per truncation:

* antithetic ES (truncated):
  :math:`g = \frac{1}{P}\sum_i \frac{\bar\Delta_i}{2\sigma^2}\,\epsilon_i`,
  :math:`\bar\Delta_i = \frac1K \sum_t \Delta_{i,t}`; biased towards short horizons.
* PES (Vicol, Metz & Sohl-Dickstein, ICML 2021): the loss at step ``t`` depends on
  every perturbation applied since its episode began, so each pair keeps the sum
  :math:`A_i` of its past perturbations in the current episode and
  :math:`g = \frac{1}{P}\sum_i \frac{1}{2\sigma^2}\big(\bar\Delta_i\,\epsilon_i +
  \bar\Delta^{\mathrm{old}}_i A_i\big)`, where :math:`\bar\Delta^{\mathrm{old}}_i`
  sums only the steps still in the episode that was running when the truncation
  began. Afterwards :math:`A_i \leftarrow A_i + \epsilon_i` if the episode goes on,
  :math:`\epsilon_i` if a new one began inside the truncation and 0 if it begins at
  the next step. Unbiased for the full-horizon loss (up to the outer updates of
  :math:`\theta` between truncations).
"""

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from stability.lopt._engine import LOSS_FLOOR as LOSS_FLOOR
from stability.lopt._engine import Inner, unwrap, wrap

__all__ = [
    "DIVERGED_LOSS_FACTOR",
    "LOSS_FLOOR",
    "InnerLoop",
    "Population",
    "Truncation",
    "eval_keys",
    "key_streams",
    "unwrap",
    "wrap",
]

F32 = jnp.float32
# An inner run whose loss exceeds this times log(classes) has diverged.
DIVERGED_LOSS_FACTOR = 30.0


def key_streams(seed: int) -> dict:
    """Independent key streams of a meta-training run: ``theta`` (its start),
    ``eps`` (perturbations), ``population`` and ``eval`` (held-out episodes)."""
    root = jax.random.key(seed)
    return {
        name: jax.random.fold_in(root, i)
        for i, name in enumerate(("theta", "eps", "population", "eval"))
    }


def eval_keys(seed: int, episodes: int) -> jax.Array:
    """Raw keys of the held-out episodes ``0 .. episodes - 1`` of a run's seed."""
    base = key_streams(seed)["eval"]
    return jax.vmap(lambda i: unwrap(jax.random.fold_in(base, i)))(
        jnp.arange(episodes, dtype=jnp.int32)
    )


class Population(NamedTuple):
    """Inner training state of ``P`` antithetic pairs.

    Attributes:
      params: task parameters, leaves ``(P, 2, ...)``.
      opt_state: learned-optimizer state, leaves ``(P, 2, ...)``.
      step: ``(P,)`` int32, inner steps taken in the pair's current episode.
      episode_key: ``(P, 2)`` uint32 raw key of the current episode (both signs).
      rng: ``(P, 2)`` uint32 raw key from which the next episode keys are drawn.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    episode_key: jax.Array
    rng: jax.Array


class Truncation(NamedTuple):
    """What one truncation of the population produced.

    Attributes:
      losses: ``(K, P, 2)`` normalised per-step meta-losses (may hold NaN only when a
        fault is injected on purpose).
      done: ``(K, P)`` the pair's episode ended after this step.
      diverged: ``(K, P)`` ... because a member's loss was non-finite or too large.
    """

    losses: jax.Array
    done: jax.Array
    diverged: jax.Array


class InnerLoop(Inner):
    """Inner training of a task by a learned optimizer in episodes of a horizon, for
    populations of antithetic pairs (one member's steps are :class:`Inner`'s).

    Args:
      task: a :class:`~stability.lopt.tasks.Task`.
      make_opt: ``meta -> optax transformation``; ``meta`` is theta (or any pytree
        the factory understands) and may be traced.
      horizon: inner steps per episode (the longest, with ``horizon_min``).
      diverged_loss: a loss above this (or non-finite) ends the episode.
      horizon_min: ``None`` (every episode lasts ``horizon`` steps), or the
        shortest episode: each episode's length is then drawn log-uniformly in
        ``[horizon_min, horizon]`` from its own key (:meth:`length`), so that
        training states from late in long episodes enter the meta-objective.
      final_weight: ``lambda >= 0``; the last loss of an episode that reaches its
        length is weighted ``1 + lambda * length``, so that an episode's
        meta-objective is its mean loss plus ``lambda`` times its final loss.
    """

    def __init__(
        self,
        task,
        make_opt: Callable,
        horizon: int,
        diverged_loss: float,
        *,
        horizon_min: int | None = None,
        final_weight: float = 0.0,
    ) -> None:
        super().__init__(task, make_opt)
        self.horizon = int(horizon)
        self.horizon_min = None if horizon_min is None else int(horizon_min)
        self.final_weight = float(final_weight)
        self.diverged_loss = float(diverged_loss)

    def length(self, episode_key: jax.Array) -> jax.Array:
        """An episode's length in steps (int32), a function of its key alone."""
        if self.horizon_min is None or self.horizon_min >= self.horizon:
            return jnp.asarray(self.horizon, jnp.int32)
        lo, hi = math.log(self.horizon_min), math.log(self.horizon)
        u = jax.random.uniform(jax.random.fold_in(wrap(episode_key), 2), (), F32)
        steps = jnp.round(jnp.exp(lo + (hi - lo) * u))
        return jnp.clip(steps, self.horizon_min, self.horizon).astype(jnp.int32)

    # -- a population of antithetic pairs --------------------------------------------
    def init_population(self, meta, key: jax.Array, pairs: int) -> Population:
        """Fresh episodes for ``pairs`` pairs; pair ``i`` starts at inner step
        ``i * length // pairs`` (its episode's length) so that the episodes do not
        all end together."""
        raw = jax.vmap(lambda i: unwrap(jax.random.fold_in(key, i)))(
            jnp.arange(pairs, dtype=jnp.int32)
        )
        split = jax.vmap(lambda k: unwrap(jax.random.split(wrap(k))))(raw)
        rng, episode_key = split[:, 0], split[:, 1]
        params, opt_state = jax.vmap(self.fresh, (None, 0))(meta, episode_key)
        pair_sign = functools.partial(_broadcast_signs, pairs=pairs)
        lengths = jax.vmap(self.length)(episode_key)
        step = (jnp.arange(pairs, dtype=jnp.int32) * lengths) // pairs
        return Population(
            jax.tree.map(pair_sign, params),
            jax.tree.map(pair_sign, opt_state),
            step.astype(jnp.int32),
            episode_key,
            rng,
        )

    def truncation(
        self, metas, pop: Population, poison: jax.Array, length: int
    ) -> tuple[Population, Truncation]:
        """``length`` inner steps of every member, with resets.

        Args:
          metas: per-member meta-parameters, leaves ``(P, 2, ...)``.
          pop: the population.
          poison: ``(P, 2)`` float32 added to the members' losses at the first step
            (zeros; NaN injects a fault for tests).
          length: steps in the truncation.
        """
        step_pairs = jax.vmap(jax.vmap(self.update, (0, 0, 0, None)), (0, 0, 0, 0))

        def body(pop, t):
            batch = jax.vmap(self.batch)(pop.episode_key, pop.step)
            loss, params, opt_state = step_pairs(
                metas, pop.params, pop.opt_state, batch
            )
            # The fault hook bypasses the normaliser, so that it reaches the gradient.
            fault = jnp.where(t == 0, poison, jnp.zeros_like(poison))
            meta_loss = self.normalize(loss) + fault
            loss = loss + fault
            bad = ~jnp.isfinite(loss) | (loss > self.diverged_loss)
            diverged = jnp.any(bad, axis=1)
            step = pop.step + 1
            length = jax.vmap(self.length)(pop.episode_key)
            finished = step >= length
            if self.final_weight:
                weight = 1 + self.final_weight * length.astype(F32)
                meta_loss = meta_loss * jnp.where(finished, weight, 1.0)[:, None]
            done = finished | diverged
            pop = Population(
                params, opt_state, jnp.where(done, 0, step), pop.episode_key, pop.rng
            )
            pop = lax.cond(
                jnp.any(done),
                functools.partial(self._reset, metas),
                lambda p, d: p,
                pop,
                done,
            )
            return pop, Truncation(meta_loss, done, diverged)

        return lax.scan(body, pop, jnp.arange(length, dtype=jnp.int32))

    def _reset(self, metas, pop: Population, done: jax.Array) -> Population:
        """New episodes for the pairs whose ``done`` is set."""
        pairs = done.shape[0]
        split = jax.vmap(lambda k: unwrap(jax.random.split(wrap(k))))(pop.rng)
        rng, episode_key = split[:, 0], split[:, 1]
        first = jax.tree.map(lambda x: x[:, 0], metas)
        params, opt_state = jax.vmap(self.fresh)(first, episode_key)

        def select(new, old):
            mask = done.reshape((pairs,) + (1,) * (old.ndim - 1))
            return jnp.where(mask, new, old)

        def select_signs(new, old):
            return select(_broadcast_signs(new, pairs), old)

        return Population(
            jax.tree.map(select_signs, params, pop.params),
            jax.tree.map(select_signs, opt_state, pop.opt_state),
            pop.step,
            select(episode_key, pop.episode_key),
            select(rng, pop.rng),
        )


def _broadcast_signs(x: jax.Array, pairs: int) -> jax.Array:
    """``(P, ...) -> (P, 2, ...)``, the same value for both signs."""
    x = jnp.asarray(x)
    return jnp.broadcast_to(x[:, None], (pairs, 2, *x.shape[1:]))


def perturbations(key: jax.Array, theta, pairs: int, sigma: float):
    """``pairs`` Gaussian perturbations of std ``sigma``, leaves ``(P, ...)``."""
    leaves, treedef = jax.tree.flatten(theta)
    keys = jax.random.split(key, len(leaves))
    eps = [
        jnp.asarray(sigma, F32) * jax.random.normal(k, (pairs, *jnp.shape(x)), F32)
        for k, x in zip(keys, leaves, strict=True)
    ]
    return treedef.unflatten(eps)


def member_thetas(theta, eps):
    """``theta + s * eps_i`` for ``s = +1, -1``: leaves ``(P, 2, ...)``."""

    def one(t, e):
        signs = jnp.asarray([1.0, -1.0], F32).reshape((1, 2) + (1,) * jnp.ndim(t))
        return jnp.asarray(t, F32)[None, None] + signs * e[:, None]

    return jax.tree.map(one, theta, eps)


def estimate(pes, tr: Truncation, eps, accumulator, sigma: float):
    """The ES or PES meta-gradient of one truncation.

    Args:
      pes: ``True`` for PES, ``False`` for ES; may be a traced bool, so that one
        compiled program serves both.
      tr: the truncation's losses and episode ends.
      eps: this truncation's perturbations, leaves ``(P, ...)``.
      accumulator: PES sums of past perturbations, leaves ``(P, ...)`` (ignored and
        returned unchanged by ES, where it stays zero).
      sigma: perturbation std.
    Returns:
      ``(gradient with theta's structure, new accumulator)``.
    """
    pes = jnp.asarray(pes, bool)
    delta = tr.losses[..., 0] - tr.losses[..., 1]  # (K, P)
    length = delta.shape[0]
    scale = 1.0 / (2.0 * sigma**2)
    coef_eps = jnp.mean(delta, axis=0) * scale  # (P,)
    done = tr.done.astype(jnp.int32)
    # Steps whose loss still belongs to the episode running when the truncation began.
    in_old_episode = (jnp.cumsum(done, axis=0) - done) == 0
    coef_acc = jnp.sum(jnp.where(in_old_episode, delta, 0.0), axis=0) / length * scale
    coef_acc = jnp.where(pes, coef_acc, 0.0)

    def weighted_mean(coef, x):
        return jnp.mean(coef.reshape((-1,) + (1,) * (x.ndim - 1)) * x, axis=0)

    grad = jax.tree.map(
        lambda e, a: weighted_mean(coef_eps, e) + weighted_mean(coef_acc, a),
        eps,
        accumulator,
    )
    ended = jnp.any(tr.done, axis=0)
    starts_next = tr.done[-1]

    def new_acc(acc, e):
        shape = (-1,) + (1,) * (acc.ndim - 1)
        kept = jnp.where(ended.reshape(shape), 0.0, acc)
        return jnp.where(pes, kept + jnp.where(starts_next.reshape(shape), 0.0, e), acc)

    return grad, jax.tree.map(new_acc, accumulator, eps)
