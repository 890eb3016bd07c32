r"""One sampled run of an optimizer on a noisy quadratic, as a pure function.

:func:`rollout` is the single place where the NQM is unrolled with fresh noise: step
``t`` draws :math:`\xi_t = F e_t` (``F`` the noise factor, :math:`e_t \sim N(0, I)`
from the ``t``-th of ``num_steps`` keys split from ``key``), records the sampled loss
:math:`l_t(\phi_t)` and takes one optimizer step on the gradient
:math:`H(\phi_t - \xi_t)`. It is one ``lax.scan`` over the steps of one noise
sequence: callers ``vmap`` it over keys (or anything else), ``jit`` it, and
differentiate through it (meta-gradients with respect to whatever the optimizer
closes over). :func:`stability.problems.simulate` is its batched form.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from stability._validation import check_int
from stability.problems.quadratic import NoisyQuadratic


class Rollout(NamedTuple):
    r"""One sampled run.

    Attributes:
      losses: ``(T,)`` sampled loss :math:`l_t(\phi_t)`, with the noise draw that
        also makes the step-``t`` gradient.
      clean_losses: ``(T,)`` :math:`\tfrac12 \phi_t^T H \phi_t` (no noise term).
      params: final parameters :math:`\phi_T`.
      state: final optimizer state.
      trajectory: ``(params, state)`` *before* the steps ``range(0, T, every)``,
        stacked along a leading axis; ``None`` unless ``every`` was given.
    """

    losses: jax.Array
    clean_losses: jax.Array
    params: jax.Array
    state: Any
    trajectory: Any = None


def rollout(
    problem: NoisyQuadratic,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    key: jax.Array,
    *,
    every: int | None = None,
    noise_factor=None,
) -> Rollout:
    """Run ``optimizer`` on ``problem`` from ``problem.x0`` for ``num_steps`` steps.

    Runs in the default float dtype (float64 under x64); the problem's arrays may be
    traced (inside ``jit``), in which case pass ``noise_factor``.

    Args:
      problem: the NQM; parameters are a vector of shape ``(n,)``.
      optimizer: any optax transformation whose ``update(grads, state, params)``
        needs nothing else.
      num_steps: steps ``T``.
      key: one PRNG key; the noise of step ``t`` comes from
        ``jax.random.split(key, num_steps)[t]``.
      every: if given, also keep the state before every ``every``-th step.
      noise_factor: ``F`` with ``F F^T = problem.noise_cov`` (default
        ``problem.noise_factor()``, which needs concrete arrays).
    Returns:
      a :class:`Rollout`.

    >>> import jax, optax
    >>> p = NoisyQuadratic.from_eigenvalues([1.0, 0.1], noise_var=0.0)
    >>> run = rollout(p, optax.sgd(0.5), 3, jax.random.key(0), every=2)
    >>> [round(float(x), 4) for x in run.clean_losses], run.trajectory[0].shape
    ([0.55, 0.1701, 0.072], (2, 2))
    """
    num_steps = check_int("num_steps", num_steps, low=1)
    if every is not None:
        every = check_int("every", every, low=1)
    dtype = jnp.zeros(()).dtype  # float64 under x64, float32 otherwise
    if noise_factor is None:
        noise_factor = problem.noise_factor()
    h = jnp.asarray(problem.hessian, dtype)
    factor = jnp.asarray(noise_factor, dtype)
    x0 = jnp.asarray(problem.x0, dtype)

    def step(carry, key_t):
        params, state = carry
        xi = factor @ jax.random.normal(key_t, x0.shape, dtype)
        d = params - xi
        updates, new_state = optimizer.update(h @ d, state, params)
        new = (optax.apply_updates(params, updates), new_state)
        loss = 0.5 * d @ (h @ d)
        clean = 0.5 * params @ (h @ params)
        return new, (loss, clean, None if every is None else carry)

    keys = jax.random.split(key, num_steps)
    (params, state), (losses, clean, traj) = jax.lax.scan(
        step, (x0, optimizer.init(x0)), keys
    )
    if every is not None:
        traj = jax.tree.map(lambda x: x[::every], traj)
    return Rollout(losses, clean, params, state, traj)
