"""The noisy quadratic model (NQM).

Per-step loss :math:`l_t(\\phi) = \\tfrac12 (\\phi - \\xi_t)^T H (\\phi - \\xi_t)` with
:math:`\\xi_t \\sim N(0, \\Sigma_\\xi)` drawn fresh each step, the stand-in for
minibatch noise. The gradient is :math:`H(\\phi - \\xi_t)`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability._validation import (
    as_float_array,
    check_int,
    check_psd,
    check_spd,
    check_square,
)


class _Fields(NamedTuple):
    hessian: np.ndarray
    noise_cov: np.ndarray
    x0: np.ndarray


def _checked(name, value, check):
    """``check(name, value)``'s array, or ``value`` itself when it is a JAX array (kept
    in its dtype once checked) or traced (not checkable)."""
    if isinstance(value, jax.core.Tracer):
        return value
    arr = check(name, value)
    return value if isinstance(value, jax.Array) else arr


class NoisyQuadratic(_Fields):
    """A noisy quadratic problem. The constructor validates its arguments;
    :func:`noisy_quadratic` also takes variances or a scalar for ``noise_cov`` and
    a default ``x0``, and :meth:`NoisyQuadratic.from_eigenvalues` builds the
    diagonal case.

    Attributes:
      hessian: symmetric positive definite ``H``, shape ``(n, n)``.
      noise_cov: covariance of the optimum's noise ``xi``, symmetric positive
        semidefinite, shape ``(n, n)``.
      x0: initial parameters, shape ``(n,)``.

    Raises:
      ValueError: naming the argument, for a non-finite, non-square, non-symmetric or
        indefinite ``hessian``, a ``noise_cov`` that is not ``(n, n)`` positive
        semidefinite, or an ``x0`` that is not ``(n,)``. NumPy inputs are stored as
        float64 arrays, JAX arrays as given (traced ones are not checked).

    >>> NoisyQuadratic([[1.0, 2.0], [0.0, 1.0]], np.eye(2), np.ones(2))
    Traceback (most recent call last):
    ...
    ValueError: hessian: must be symmetric
    """

    __slots__ = ()

    def __new__(cls, hessian, noise_cov, x0):
        hessian = _checked("hessian", hessian, check_spd)
        n = np.shape(hessian)[0]
        noise_cov = _checked("noise_cov", noise_cov, lambda k, v: check_psd(k, v, n=n))
        x0 = _checked("x0", x0, lambda k, v: as_float_array(k, v, shape=(n,)))
        return super().__new__(cls, hessian, noise_cov, x0)

    @property
    def dim(self) -> int:
        return self.hessian.shape[0]

    @property
    def is_diagonal(self) -> bool:
        """True when H and the noise covariance are both diagonal (per-mode case)."""
        off = ~np.eye(self.dim, dtype=bool)
        return not (np.any(self.hessian[off]) or np.any(self.noise_cov[off]))

    @classmethod
    def from_eigenvalues(cls, eigenvalues, noise_var=0.0, x0=None):
        """The diagonal problem ``H = diag(eigenvalues)``, noise variances ``noise_var``
        (a scalar or one per coordinate), and ``x0`` (default all ones)."""
        lam = as_float_array("eigenvalues", eigenvalues, ndim=1)
        if lam.size == 0 or np.any(lam <= 0):
            raise ValueError(
                "eigenvalues: must be a non-empty vector of positive values"
            )
        var = as_float_array("noise_var", noise_var)
        if var.ndim > 1 or var.size not in (1, lam.size):
            raise ValueError(
                f"noise_var: expected a scalar or shape {lam.shape}, got {var.shape}"
            )
        var = np.broadcast_to(var, lam.shape)
        if np.any(var < 0):
            raise ValueError("noise_var: variances must be non-negative")
        x0 = np.ones_like(lam) if x0 is None else x0
        return noisy_quadratic(np.diag(lam), var, x0)

    def loss(self, params, xi):
        """The per-step loss at ``params`` for one noise draw ``xi``."""
        d = params - xi
        return 0.5 * d @ (jnp.asarray(self.hessian, d.dtype) @ d)

    def grad(self, params, xi):
        return jnp.asarray(self.hessian, params.dtype) @ (params - xi)

    def noise_factor(self) -> np.ndarray:
        """``F`` with ``F F^T = noise_cov``: ``xi = F e`` with ``e ~ N(0, I)``."""
        lam, vec = np.linalg.eigh(self.noise_cov)
        return vec * np.sqrt(np.clip(lam, 0.0, None))


def noisy_quadratic(hessian, noise_cov=0.0, x0=None) -> NoisyQuadratic:
    """A validated :class:`NoisyQuadratic`.

    Args:
      hessian: symmetric positive definite matrix, shape ``(n, n)``.
      noise_cov: dense covariance ``(n, n)``, a vector of variances ``(n,)`` or a scalar
        variance; must be positive semidefinite.
      x0: initial parameters ``(n,)``; default all ones.

    >>> p = noisy_quadratic([[2.0, 0.5], [0.5, 1.0]], [0.1, 0.2])
    >>> p.dim, float(p.noise_cov[1, 1])
    (2, 0.2)
    """
    # the constructor validates; only the shorthand forms are handled here
    h = check_square("hessian", hessian)
    n = h.shape[0]
    cov = as_float_array("noise_cov", noise_cov)
    if cov.ndim <= 1:
        cov = np.broadcast_to(cov, (n,)) if cov.ndim == 0 else cov
        if cov.shape != (n,):
            raise ValueError(
                f"noise_cov: expected {n} variances, got shape {cov.shape}"
            )
        if np.any(cov < 0):
            raise ValueError("noise_cov: variances must be non-negative")
        cov = np.diag(cov)
    x0 = np.ones(n) if x0 is None else np.array(as_float_array("x0", x0))
    return NoisyQuadratic(h, np.array(cov), x0)


def random_rotation(n, seed=0) -> np.ndarray:
    """A Haar-random orthogonal matrix, shape ``(n, n)``, from a NumPy seed."""
    n = check_int("n", n, low=1)
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def rotated(problem: NoisyQuadratic, q) -> NoisyQuadratic:
    """The same problem in a rotated basis: ``H -> Q H Q^T`` (dense, non-diagonal)."""
    q = check_square("q", q, n=problem.dim)
    if np.max(np.abs(q @ q.T - np.eye(problem.dim))) > 1e-10:
        raise ValueError("q: must be orthogonal (q q^T = I to 1e-10)")
    return noisy_quadratic(
        q @ problem.hessian @ q.T, q @ problem.noise_cov @ q.T, q @ problem.x0
    )
