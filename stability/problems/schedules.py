r"""Exact expected losses of a time-varying linear loop on a noisy quadratic: the
moment recursion of :func:`stability.problems.expected_losses` with a different
transition per step (a nominal-step schedule, :mod:`stability.lemmas.adaptive`)."""

import jax
import jax.numpy as jnp

from stability._validation import check_finite
from stability.problems.quadratic import NoisyQuadratic


def _check_stack(problem, loop):
    for field in ("hessian", "noise_cov", "x0"):
        check_finite(f"problem.{field}", getattr(problem, field))
    for field in ("transition", "noise_gain"):
        check_finite(f"loop.{field}", getattr(loop, field))
    n = problem.dim
    m, g = jnp.asarray(loop.transition), jnp.asarray(loop.noise_gain)
    if m.ndim != 3 or m.shape[1] != m.shape[2] or m.shape[1] < n:
        raise ValueError(
            f"loop: transition must be a stack (T, d, d) with d >= {n}, got {m.shape}"
        )
    if g.shape != (m.shape[0], m.shape[1], n):
        raise ValueError(
            f"loop: noise_gain must have shape {(m.shape[0], m.shape[1], n)}, "
            f"got {g.shape}"
        )
    return m, g


def time_varying_expected_losses(problem: NoisyQuadratic, loop, *, z0=None):
    r"""Exact :math:`E l_t`, ``t = 0 .. T - 1``, of the time-varying linear loop
    :math:`z_{t+1} = M_t z_t + N_t \xi_t`, shape ``(T,)``.

    Moments: :math:`E z_{t+1} = M_t E z_t`,
    :math:`C_{t+1} = M_t C_t M_t^T + N_t \Sigma_\xi N_t^T`, and with :math:`\phi` the
    first ``n`` coordinates :math:`E l_t = \tfrac12[m_t^T H m_t + \mathrm{tr}(H C_t)
    + \mathrm{tr}(H\Sigma_\xi)]`
    (the step-t loss is taken before the step-t transition, as in
    :func:`stability.problems.expected_losses`, so ``M_{T-1}`` does not enter).
    Dense, ``lax.scan`` over the stack; differentiable with respect to the stack.

    Args:
      problem: the noisy quadratic.
      loop: a :class:`~stability.operators.ClosedLoop` whose ``transition`` is a
        stack ``(T, d, d)`` and ``noise_gain`` a stack ``(T, d, n)`` (e.g. from
        :func:`stability.lemmas.adaptive.schedule_loop`).
      z0: initial joint state ``(d,)``; default ``(problem.x0, 0, ..., 0)``.

    >>> import numpy as np
    >>> from stability.operators import ClosedLoop
    >>> p = NoisyQuadratic.from_eigenvalues([1.0], noise_var=0.0, x0=[1.0])
    >>> loop = ClosedLoop(np.full((3, 1, 1), 0.5), np.full((3, 1, 1), 0.5))
    >>> np.asarray(time_varying_expected_losses(p, loop)).round(6).tolist()
    [0.5, 0.125, 0.03125]
    """
    m, g = _check_stack(problem, loop)
    n, d = problem.dim, m.shape[1]
    if z0 is None:
        z0 = jnp.concatenate([jnp.asarray(problem.x0), jnp.zeros(d - n)])
    check_finite("z0", z0)
    z0 = jnp.asarray(z0)
    if z0.shape != (d,):
        raise ValueError(f"z0: expected shape ({d},), got {z0.shape}")
    dtype = jnp.result_type(z0.dtype, m.dtype)
    h = jnp.asarray(problem.hessian, dtype)
    s_xi = jnp.asarray(problem.noise_cov, dtype)
    return _tv_losses(h, s_xi, m.astype(dtype), g.astype(dtype), z0.astype(dtype))


@jax.jit
def _tv_losses(h, s_xi, m, g, z0):
    n, d = h.shape[0], z0.shape[0]
    base = jnp.trace(h @ s_xi)

    def step(carry, mats):
        mean, cov = carry
        mt, gt = mats
        mp, cp = mean[:n], cov[:n, :n]
        loss = 0.5 * (mp @ h @ mp + jnp.sum(h * cp) + base)
        return (mt @ mean, mt @ cov @ mt.T + gt @ s_xi @ gt.T), loss

    carry0 = (z0, jnp.zeros((d, d), z0.dtype))
    return jax.lax.scan(step, carry0, (m, g))[1]
