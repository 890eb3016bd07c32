"""Sampled training on a noisy quadratic: any optax optimizer, ``lax.scan`` over
steps, ``vmap`` over seeds, one jitted program."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from stability._validation import check_int, check_key
from stability.problems.quadratic import NoisyQuadratic


class SimulationRecord(NamedTuple):
    """Per-step losses ``(num_seeds, num_steps)``: ``losses[s, t]`` is
    :math:`l_t(\\phi_t)` with the noise draw that also makes the step-t gradient;
    ``final_params`` has shape ``(num_seeds, n)``."""

    losses: jax.Array
    final_params: jax.Array


def simulate(
    problem: NoisyQuadratic,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    *,
    key: jax.Array,
    num_seeds: int = 1,
) -> SimulationRecord:
    """Run ``optimizer`` on ``problem`` from ``problem.x0`` for ``num_steps`` steps.

    >>> import jax, optax
    >>> from stability.problems import NoisyQuadratic
    >>> p = NoisyQuadratic.from_eigenvalues([1.0, 0.1], noise_var=0.01)
    >>> rec = simulate(p, optax.sgd(0.5), 20, key=jax.random.key(0), num_seeds=4)
    >>> rec.losses.shape, rec.final_params.shape
    ((4, 20), (4, 2))
    """
    num_steps = check_int("num_steps", num_steps, low=1)
    num_seeds = check_int("num_seeds", num_seeds, low=1)
    check_key("key", key)
    dtype = jnp.zeros(()).dtype  # float64 under x64, float32 otherwise
    h = jnp.asarray(problem.hessian, dtype)
    factor = jnp.asarray(problem.noise_factor(), dtype)
    x0 = jnp.asarray(problem.x0, dtype)

    def run(key):
        def step(carry, key_t):
            params, state = carry
            xi = factor @ jax.random.normal(key_t, x0.shape, dtype)
            d = params - xi
            loss = 0.5 * d @ (h @ d)
            updates, state = optimizer.update(h @ d, state, params)
            return (optax.apply_updates(params, updates), state), loss

        keys = jax.random.split(key, num_steps)
        (params, _), losses = jax.lax.scan(step, (x0, optimizer.init(x0)), keys)
        return losses, params

    losses, params = jax.jit(jax.vmap(run))(jax.random.split(key, num_seeds))
    return SimulationRecord(losses, params)
