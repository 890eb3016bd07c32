"""Spectral radius of closed-loop operators, dense or matrix-free."""

import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg

from stability._validation import check_int, check_scalar
from stability.optimizers.modes import quadratic_radius

_METHODS = ("auto", "closed_form", "eig", "arnoldi")


def _radius_2x2(m, xp):
    s = m[..., 0, 0] + m[..., 1, 1]
    q = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    return quadratic_radius(s, q, xp)


def _arnoldi(op, k):
    n = op.shape[0]
    if n <= max(k + 2, 64):  # ARPACK needs k < n - 1; small operators go dense
        dense = op.matmat(np.eye(n))
        return float(np.max(np.abs(np.linalg.eigvals(dense))))
    vals = scipy.sparse.linalg.eigs(
        op, k=k, which="LM", return_eigenvectors=False, tol=1e-10, maxiter=50 * n
    )
    return float(np.max(np.abs(vals)))


def spectral_radius(m, *, method: str = "auto", k: int = 6):
    r"""Spectral radius :math:`\rho(M) = \max_i |\lambda_i(M)|`; the loop
    :math:`z' = M z` is stable iff :math:`\rho < 1`.

    Args:
      m: closed-loop matrices, shape ``(..., n, n)`` (NumPy arrays are handled in
        float64 with NumPy, JAX arrays with ``jax.numpy``), or a matrix-free operator
        (a ``scipy.sparse.linalg.LinearOperator``, e.g. from
        :func:`stability.operators.linear_operator`).
      method: ``"closed_form"`` (real 2x2 and 1x1 blocks; differentiable),
        ``"eig"`` (dense eigenvalues), ``"arnoldi"`` (ARPACK on matrix-vector
        products: the ``k`` largest-magnitude eigenvalues; step Jacobians are non-normal
        with eigenvalues clustered near 1, where power iteration stalls), or ``"auto"``
        (closed form when it applies, Arnoldi for operators, else eig).
      k: number of eigenvalues Arnoldi resolves.

    Returns:
      ρ of each matrix, shape ``(...)`` (a float for an operator).

    >>> import numpy as np
    >>> float(spectral_radius(np.array([[0.0, 1.0], [-0.25, 1.0]])))
    0.5

    References:
      Harrison, Metz & Sohl-Dickstein, "A Closer Look at Learned Optimization:
      Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 4.
    """
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
    k = check_int("k", k, low=1)
    if isinstance(m, scipy.sparse.linalg.LinearOperator):
        if method not in ("auto", "arnoldi"):
            raise ValueError(f"method: an operator needs 'arnoldi', got {method!r}")
        return _arnoldi(m, k)
    xp = np if isinstance(m, np.ndarray | float | list) else jnp
    m = xp.asarray(m)
    if m.ndim < 2 or m.shape[-1] != m.shape[-2] or m.shape[-1] == 0:
        raise ValueError(f"m: expected shape (..., n, n) with n >= 1, got {m.shape}")
    n = m.shape[-1]
    real = not xp.iscomplexobj(m)
    if method == "arnoldi":
        if m.ndim != 2:
            raise ValueError("m: 'arnoldi' takes one matrix, not a batch")
        return _arnoldi(scipy.sparse.linalg.aslinearoperator(np.asarray(m)), k)
    if method == "closed_form" and (n > 2 or not real):
        raise ValueError(
            f"method: 'closed_form' needs real 1x1 or 2x2 blocks, got {n}x{n}"
        )
    if method != "eig" and n == 1:
        return xp.abs(m[..., 0, 0])
    if method != "eig" and n == 2 and real:
        return _radius_2x2(m, xp)
    if xp is np:
        return np.max(np.abs(np.linalg.eigvals(m)), axis=-1)
    return jnp.max(jnp.abs(jnp.linalg.eigvals(m)), axis=-1)


def is_stable(m, *, tol: float = 0.0, **kwargs):
    """``rho(m) < 1 - tol`` (elementwise over a batch), ``0 <= tol < 1``."""
    tol = check_scalar("tol", tol, low=0.0, high=1.0, high_open=True)
    return spectral_radius(m, **kwargs) < 1 - tol


def convergence_rate(m, **kwargs):
    r"""Asymptotic rate :math:`-\log \rho(M)` per step (negative when unstable): the
    distance to the optimum shrinks like :math:`e^{-\text{rate}\, t}`."""
    rho = spectral_radius(m, **kwargs)
    return -(np.log(rho) if isinstance(rho, float | np.ndarray) else jnp.log(rho))


def eigenvalues(m):
    """All eigenvalues of ``m`` (``(..., n, n)``), float64 NumPy for NumPy input."""
    if isinstance(m, np.ndarray):
        return np.linalg.eigvals(m)
    return jnp.linalg.eigvals(jnp.asarray(m))
