"""Sampled training on a noisy quadratic over many seeds: :func:`rollout` under
``vmap`` over seeds, one jitted program."""

from typing import NamedTuple

import jax
import optax

from stability._validation import check_int, check_key
from stability.problems.quadratic import NoisyQuadratic
from stability.problems.rollout import rollout


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

    def run(key):
        out = rollout(problem, optimizer, num_steps, key)
        return out.losses, out.params

    losses, params = jax.jit(jax.vmap(run))(jax.random.split(key, num_seeds))
    return SimulationRecord(losses, params)
