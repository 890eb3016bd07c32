r"""The top eigenpair of a loss's (preconditioned) Hessian by a jitted, restarted
Lanczos: each block of ``block`` Lanczos steps, Hessian-vector products and full
reorthogonalisation included, is one XLA program on the parameters' dtype, and the
host only solves the small tridiagonal problem between blocks.

It answers what :func:`stability.analyses.lanczos` on
:func:`stability.operators.hessian_operator` answers for ``k = 1`` (the same
residual, :math:`\|H x - \theta x\| / |\theta|`, read off the tridiagonal matrix),
without the float64 round trip and the NumPy vector work per product::

    pairs = top_hessian_eigenpair(loss_fn, params, batch, tol=1e-3)
    ...  # train
    pairs = top_hessian_eigenpair(loss_fn, params, batch, v0=pairs.eigenvectors)

A restart keeps only the Ritz vector, so a cold start may need more products than
the unrestarted solver; warm starts along training are its use.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax import lax
from jax.flatten_util import ravel_pytree

from stability._validation import check_int, check_scalar
from stability.analyses.eigen import Eigenpairs
from stability.operators.network import _check_loss, _flat_like, _hvp_flat

__all__ = ["top_hessian_eigenpair"]


@partial(jax.jit, static_argnums=(0, 4))
def _block(loss_fn, params, batch, scale, m, v0):
    """``m`` Lanczos steps from ``v0`` (unit norm) with full reorthogonalisation
    (twice, classical Gram-Schmidt): the basis ``(m + 1, n)``, ``alpha``, ``beta``."""
    basis = jnp.zeros((m + 1, v0.size), v0.dtype).at[0].set(v0)

    def step(j, carry):
        basis, alpha, beta = carry
        v = basis[j]
        w = _hvp_flat(loss_fn, params, batch, scale, v)
        a = v @ w
        w = w - basis.T @ (basis @ w)  # rows past j are zero
        w = w - basis.T @ (basis @ w)
        b = jnp.linalg.norm(w)
        basis = basis.at[j + 1].set(jnp.where(b > 0, w / jnp.where(b > 0, b, 1), 0))
        return basis, alpha.at[j].set(a), beta.at[j].set(b)

    zeros = jnp.zeros(m, v0.dtype)
    return lax.fori_loop(0, m, step, (basis, zeros, zeros))


def top_hessian_eigenpair(
    loss_fn,
    params,
    batch,
    *,
    preconditioner=None,
    v0=None,
    tol: float = 1e-3,
    max_iter: int = 100,
    block: int = 8,
    seed: int = 0,
) -> Eigenpairs:
    r"""The largest (algebraic) eigenvalue of the Hessian of ``loss_fn`` at
    ``params`` on ``batch``, or of :math:`D^{-1/2} H D^{-1/2}` for a diagonal
    ``preconditioner`` :math:`D`, to relative residual ``tol``.

    Args:
      loss_fn: ``(params, batch) -> scalar``; a static argument of the jitted block.
      params, batch: the point and the data.
      preconditioner: ``D``, a pytree like ``params``, or ``None``.
      v0: warm start, shape ``(n,)`` or ``(n, 1)`` (e.g. the last ``eigenvectors``);
        ``None`` draws a random one with ``seed``.
      tol: relative residual to reach.
      max_iter: most Hessian-vector products (whole blocks).
      block: Lanczos steps per jitted block (each restart keeps the Ritz vector).
      seed: for the random start.
    Returns:
      :class:`~stability.analyses.Eigenpairs` with one pair (float64 on the host);
      ``converged`` is False if ``max_iter`` came first.
    Raises:
      ValueError: naming the argument, as :func:`stability.operators.hessian_operator`.

    >>> import jax.numpy as jnp
    >>> loss = lambda p, b: 0.5 * jnp.sum(b * p**2)          # H = diag(b)
    >>> pairs = top_hessian_eigenpair(loss, jnp.ones(3), jnp.array([1.0, 5.0, 3.0]),
    ...                               block=3, tol=1e-8)
    >>> round(float(pairs.eigenvalues[0]), 6), bool(pairs.converged)
    (5.0, True)
    """
    _check_loss(loss_fn, params, batch)
    tol = check_scalar("tol", tol, low=0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    flat = ravel_pytree(params)[0]
    n = flat.size
    block = min(check_int("block", block, low=1), n)
    dtype = flat.dtype
    if preconditioner is None:
        scale = jnp.ones((), dtype)
    else:
        d = _flat_like("preconditioner", preconditioner, params)
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise ValueError("preconditioner: entries must be positive and finite")
        scale = jnp.asarray(1 / np.sqrt(d), dtype)
    if v0 is None:
        v = np.random.default_rng(seed).standard_normal(n)
    else:
        v = np.real(np.asarray(v0, np.float64))
        if v.ndim not in (1, 2) or v.shape[0] != n:
            raise ValueError(f"v0: expected shape ({n},) or ({n}, j), got {v.shape}")
        v = v.reshape(n, -1).sum(axis=1)
        if not np.all(np.isfinite(v)) or not np.any(v):
            raise ValueError("v0: must be finite and non-zero")
    used = 0
    while True:
        v = jnp.asarray(v / np.linalg.norm(v), dtype)
        basis, alpha, beta = _block(loss_fn, params, batch, scale, block, v)
        used += block
        alpha, beta = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
        if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta))):
            raise ValueError("params: the Hessian-vector product here is non-finite")
        m = int(np.argmax(beta <= 0)) + 1 if np.any(beta <= 0) else block
        theta, s = scipy.linalg.eigh_tridiagonal(alpha[:m], beta[: m - 1])
        top = int(np.argmax(theta))
        lam, y = float(theta[top]), s[:, top]
        res = abs(beta[m - 1] * y[-1])
        x = np.asarray(basis[:m], np.float64).T @ y
        done = res <= tol * max(abs(lam), np.finfo(float).tiny)
        if done or m < block or used + block > max_iter:
            x = x / np.linalg.norm(x)
            return Eigenpairs(
                np.array([lam]), x[:, None], np.array([res]), used, bool(done)
            )
        v = x
