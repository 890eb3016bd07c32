"""Exact moments of a linear closed loop on a noisy quadratic.

For ``z' = M z + N xi`` with ``xi ~ N(0, S_xi)``: ``E z_{t+1} = M E z_t`` and
``C_{t+1} = M C_t M^T + N S_xi N^T``. With ``phi`` the first ``n`` coordinates of z,
:math:`E l_t = \\tfrac12[m_t^T H m_t + tr(H C_t) + tr(H S_\\xi)]` (``phi_t`` is
independent of the fresh draw ``xi_t``).
"""

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from stability._rounding import marginal_tolerance
from stability._validation import check_finite, check_flag, check_int, is_finite
from stability.problems.quadratic import NoisyQuadratic


class LinearisedLoopWarning(UserWarning):
    """The moments of a loop linearised from a nonlinear optimizer (Adam, STAR): they
    are those of the linear model, not the optimizer's expected losses."""


def _check_exact(closed_loop, linearised, where):
    linearised = check_flag("linearised", linearised)
    exact = getattr(closed_loop, "exact", True)
    if linearised or isinstance(exact, jax.core.Tracer) or bool(exact):
        return
    warnings.warn(
        LinearisedLoopWarning(
            f"closed_loop: linearised from a nonlinear optimizer, so {where} gives "
            "the moments of that linear model, not the optimizer's expected losses; "
            "pass linearised=True if that is what you want"
        ),
        stacklevel=3,
    )


def _initial_state(problem, closed_loop, z0):
    dim = closed_loop.transition.shape[-1]
    if z0 is None:
        return jnp.concatenate([jnp.asarray(problem.x0), jnp.zeros(dim - problem.dim)])
    z0 = jnp.asarray(z0)
    if z0.shape != (dim,):
        raise ValueError(f"z0: expected shape ({dim},), got {z0.shape}")
    return check_finite("z0", z0)


def _check(problem, closed_loop):
    n = problem.dim
    m, g = closed_loop.transition, closed_loop.noise_gain
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < n:
        raise ValueError(f"closed_loop: transition must be square with >= {n} rows")
    if g.shape != (m.shape[0], n):
        raise ValueError(f"closed_loop: noise_gain must have shape ({m.shape[0]}, {n})")
    if not (is_finite(m) and is_finite(g)):
        raise ValueError("closed_loop: transition or noise_gain is not finite")


def modal_blocks(problem: NoisyQuadratic, closed_loop):
    """Per-mode blocks ``(n, k, k)`` and noise gains ``(n, k)`` when H, the noise and
    the joint transition are all diagonal in the coordinate basis, else ``None``.

    The joint state is laid out as ``(phi, s_1, ..., s_{k-1})`` with each ``s_j`` a
    copy of the parameter shape (momenta, EMAs); mode ``i`` owns coordinates
    ``i, n + i, ..., (k-1) n + i``.
    """
    n, dim = problem.dim, closed_loop.transition.shape[0]
    if not problem.is_diagonal or dim % n:
        return None
    k = dim // n
    # (mode_out, mode_in, slot_out, slot_in) and (mode_out, mode_in, slot_out)
    m = np.asarray(closed_loop.transition).reshape(k, n, k, n).transpose(1, 3, 0, 2)
    g = np.asarray(closed_loop.noise_gain).reshape(k, n, n).transpose(1, 2, 0)
    off = ~np.eye(n, dtype=bool)
    if np.any(m[off]) or np.any(g[off]):
        return None
    idx = np.arange(n)
    return m[idx, idx], g[idx, idx]  # (n, k, k), (n, k)


@partial(jax.jit, static_argnames=("n", "num_steps"))
def _dense_losses(h, s_xi, m, g, z0, n, num_steps):
    q = g @ s_xi @ g.T
    base = jnp.trace(h @ s_xi)

    def step(carry, _):
        mean, cov = carry
        mp, cp = mean[:n], cov[:n, :n]
        loss = 0.5 * (mp @ h @ mp + jnp.sum(h * cp) + base)
        return (m @ mean, m @ cov @ m.T + q), loss

    cov0 = jnp.zeros((z0.shape[0],) * 2, z0.dtype)
    return jax.lax.scan(step, (z0, cov0), None, length=num_steps)[1]


@partial(jax.jit, static_argnames=("num_steps",))
def _modal_losses(h, var, blocks, gains, z0, num_steps):
    # h, var: (n,); blocks (n, k, k); gains (n, k); z0 (n, k)
    q = gains[:, :, None] * gains[:, None, :] * var[:, None, None]
    base = jnp.sum(h * var)

    def step(carry, _):
        mean, cov = carry
        loss = 0.5 * (jnp.sum(h * mean[:, 0] ** 2) + jnp.sum(h * cov[:, 0, 0]) + base)
        mean = jnp.einsum("nij,nj->ni", blocks, mean)
        cov = jnp.einsum("nij,njk,nlk->nil", blocks, cov, blocks) + q
        return (mean, cov), loss

    cov0 = jnp.zeros(blocks.shape, z0.dtype)
    return jax.lax.scan(step, (z0, cov0), None, length=num_steps)[1]


def expected_losses(
    problem: NoisyQuadratic,
    closed_loop,
    num_steps: int,
    *,
    z0=None,
    method: str = "auto",
    linearised: bool = False,
) -> jax.Array:
    """Exact expected loss :math:`E l_t`, ``t = 0 .. num_steps - 1``, shape
    ``(num_steps,)``.

    Args:
      problem: the noisy quadratic.
      closed_loop: a *linear* closed loop over the joint state (exact for linear
        optimizers); its first ``n`` coordinates are the parameters.
      num_steps: number of steps T.
      z0: initial joint state; default ``(problem.x0, 0, ..., 0)``.
      method: ``"dense"`` (``O(T d^3)``), ``"modal"`` (``O(T n k^2)``, needs H, the
        noise and the loop diagonal in one basis, see :func:`modal_blocks`) or
        ``"auto"`` (modal when it applies).
      linearised: accept a loop whose ``exact`` flag is False (a linearisation of
        a nonlinear optimizer, see :func:`stability.operators.closed_loop`);
        without it such a loop gives a :class:`LinearisedLoopWarning`, since the
        numbers are the linear model's, not the optimizer's.

    Differentiable with respect to ``closed_loop.transition`` (for meta-gradients) in
    the dense method.
    """
    num_steps = check_int("num_steps", num_steps, low=1)
    if method not in ("auto", "dense", "modal"):
        raise ValueError(f"method: expected 'auto', 'dense' or 'modal', got {method!r}")
    _check(problem, closed_loop)
    _check_exact(closed_loop, linearised, "expected_losses")
    n = problem.dim
    z = _initial_state(problem, closed_loop, z0)
    modal = None
    if method != "dense" and not isinstance(closed_loop.transition, jax.core.Tracer):
        modal = modal_blocks(problem, closed_loop)
    if method == "modal" and modal is None:
        raise ValueError(
            "method: 'modal' needs H, noise and loop diagonal in one basis"
        )
    if modal is not None:
        blocks, gains = (jnp.asarray(a, z.dtype) for a in modal)
        k = blocks.shape[1]
        z_modes = z.reshape(k, n).T
        h, var = np.diag(problem.hessian), np.diag(problem.noise_cov)
        return _modal_losses(
            jnp.asarray(h, z.dtype),
            jnp.asarray(var, z.dtype),
            blocks,
            gains,
            z_modes,
            num_steps,
        )
    h = jnp.asarray(problem.hessian, z.dtype)
    s_xi = jnp.asarray(problem.noise_cov, z.dtype)
    return _dense_losses(
        h, s_xi, closed_loop.transition, closed_loop.noise_gain, z, n, num_steps
    )


def stationary_loss(
    problem: NoisyQuadratic, closed_loop, *, linearised: bool = False
) -> float:
    """:math:`\\lim_t E l_t = \\tfrac12[tr(H C_\\infty) + tr(H S_\\xi)]` with
    :math:`C_\\infty` from the discrete Lyapunov equation
    :math:`C = M C M^T + N S_\\xi N^T`; ``inf`` when the loop is not stable or is
    marginal (:func:`stability.analyses.is_marginal`).
    ``linearised`` as in :func:`expected_losses`."""
    _check(problem, closed_loop)
    _check_exact(closed_loop, linearised, "stationary_loss")
    m = np.asarray(closed_loop.transition, float)
    g = np.asarray(closed_loop.noise_gain, float)
    rho = np.max(np.abs(np.linalg.eigvals(m)))
    if rho >= 1.0 or abs(rho - 1) <= marginal_tolerance(m, np):  # marginal: no limit
        return float("inf")
    cov = scipy.linalg.solve_discrete_lyapunov(m, g @ problem.noise_cov @ g.T)
    n = problem.dim
    h = problem.hessian
    return 0.5 * float(np.sum(h * cov[:n, :n]) + np.trace(h @ problem.noise_cov))
