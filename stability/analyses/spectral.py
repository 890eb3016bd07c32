"""Spectral radius of closed-loop operators, dense or matrix-free, and the rounding
policy that decides stable, marginal and unstable.

Marginal stability: a computed radius within rounding of 1 decides nothing (an
eigenvalue exactly on the unit circle, such as heavy ball's ``z = 1`` at ``lr = 0``,
comes out as ``1 - 2e-15`` as often as ``1 + 2e-15``). Every analysis here calls such a
loop *marginal* and never stable: ``|rho - 1| <= tol`` with, for a matrix ``M`` in a
dtype with machine epsilon ``eps`` (``stability._rounding.marginal_tolerance``, which
:func:`stability.problems.stationary_loss` applies too),

- ``delta = MARGIN * eps * sum_ij |M_ij|`` (a bound on the backward error of the
  eigensolver or of the closed form, as an absolute perturbation of the entries; the
  entrywise 1-norm lies between ``||M||_F`` and ``n ||M||_F``), and ``tol = delta``;
- for real ``2 x 2`` blocks the root's own conditioning on top: a root of
  ``z^2 - s z + q`` moves by about ``2 delta / sqrt|s^2 - 4q|`` when ``s, q`` move by
  ``delta``, and by ``2 sqrt(delta)`` at a double root, so
  ``tol = delta + 2 delta / sqrt(max(|s^2 - 4q|, delta))``;
- for a matrix-free operator (Arnoldi) ``tol = 1e-10 * max(1, rho)``, ARPACK's
  requested accuracy.

Larger matrices get the norm-based ``delta`` only: a nearly defective eigenvalue of a
``3 x 3`` or larger matrix can be off by more than that, so there ``marginal`` is a
rounding guard, not a certificate (the exact Jury conditions of
:mod:`stability.analyses.symbolic` are).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg

from stability._rounding import MARGIN as MARGIN
from stability._rounding import _entries, marginal_tolerance
from stability._validation import check_int, check_scalar
from stability.analyses.eigen import arnoldi
from stability.optimizers.modes import quadratic_radius

_METHODS = ("auto", "closed_form", "eig", "arnoldi")

_ARNOLDI_TOL = 1e-10


def _closed_form(m, xp, eig):
    """Whether the closed form applies (real 1x1 or 2x2 blocks, not ``eig``)."""
    return not eig and m.shape[-1] <= 2 and not xp.iscomplexobj(m)


def _radius(m, xp, eig):
    """rho of real or complex blocks ``(..., n, n)``; closed form for real n <= 2."""
    if _closed_form(m, xp, eig) and m.shape[-1] == 1:
        return xp.abs(m[..., 0, 0])
    if _closed_form(m, xp, eig):
        _, s, q = _entries(m)
        return quadratic_radius(s, q, xp)
    return xp.max(xp.abs(xp.linalg.eigvals(m)), axis=-1)


def _finite(m, xp):
    """Whether every entry is finite (elementwise on the 2x2 entries: a reduction
    over the strided ``(..., 2, 2)`` layout is several times slower on CPU)."""
    if m.shape[-1] == 2 and not xp.iscomplexobj(m):
        a, b, c, d = _entries(m)[0]
        ok = xp.isfinite(a) & xp.isfinite(b) & xp.isfinite(c) & xp.isfinite(d)
        return xp.all(ok)
    return xp.all(xp.isfinite(m))


def _classify(m, xp, eig):
    """``(rho, marginal, finite)`` of blocks ``(..., n, n)``."""
    rho = _radius(m, xp, eig)
    marginal = xp.abs(rho - 1) <= marginal_tolerance(m, xp)
    return rho, marginal, _finite(m, xp)


# The jitted kernels on JAX batches; stability_region calls _classify inside its own
# jitted kernel, so both run the same code.
_jax_radius = jax.jit(
    lambda m, eig: (_radius(m, jnp, eig), _finite(m, jnp)), static_argnums=1
)
_jax_classify = jax.jit(partial(_classify, xp=jnp), static_argnames="eig")


def _arnoldi(op, k):
    """rho of an operator by :func:`stability.analyses.arnoldi`; any ``k >= 1``
    (ARPACK itself needs ``k < n - 1``; small operators go dense)."""
    n = op.shape[0]

    def matvec(v):
        out = np.asarray(op.matvec(v))
        if not np.all(np.isfinite(out)):
            raise ValueError("m: the operator gives non-finite values (NaN or inf)")
        return out

    checked = scipy.sparse.linalg.LinearOperator((n, n), matvec, dtype=op.dtype)
    pairs = arnoldi(checked, min(k, n), tol=_ARNOLDI_TOL)
    if not pairs.converged:
        raise scipy.sparse.linalg.ArpackNoConvergence(
            "ARPACK did not converge", pairs.eigenvalues, pairs.eigenvectors
        )
    return float(np.max(np.abs(pairs.eigenvalues)))


def _as_matrices(m):
    """``m`` as a NumPy array (float64 or complex) or a JAX array, shape-checked."""
    if isinstance(m, jax.Array):  # tracers too
        arr = m
        ok = jnp.issubdtype(arr.dtype, jnp.number)
        if ok and not jnp.issubdtype(arr.dtype, jnp.inexact):
            arr = arr.astype(jnp.result_type(float))
    else:
        try:
            arr = np.asarray(m)
        except (TypeError, ValueError) as err:
            raise ValueError(f"m: expected a numeric array, got {m!r}") from err
        ok = arr.dtype.kind in "biufc"
        if ok and arr.dtype.kind != "c":
            arr = arr.astype(float)
    if not ok:
        raise ValueError(f"m: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2] or arr.shape[-1] == 0:
        raise ValueError(f"m: expected shape (..., n, n) with n >= 1, got {arr.shape}")
    return arr


def _check_method(m, method, k):
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
    k = check_int("k", k, low=1)
    if isinstance(m, scipy.sparse.linalg.LinearOperator):
        if method not in ("auto", "arnoldi"):
            raise ValueError(f"method: an operator needs 'arnoldi', got {method!r}")
        return m, k
    m = _as_matrices(m)
    n = m.shape[-1]
    if method == "arnoldi" and m.ndim != 2:
        raise ValueError("m: 'arnoldi' takes one matrix, not a batch")
    if method == "closed_form" and (n > 2 or jnp.iscomplexobj(m)):
        raise ValueError(
            f"method: 'closed_form' needs real 1x1 or 2x2 blocks, got {n}x{n}"
        )
    return m, k


def _check_finite(finite):
    if not isinstance(finite, jax.core.Tracer) and not bool(finite):
        raise ValueError("m: contains non-finite values (NaN or inf)")


def spectral_radius(m, *, method: str = "auto", k: int = 6):
    r"""Spectral radius :math:`\rho(M) = \max_i |\lambda_i(M)|`; the loop
    :math:`z' = M z` is stable iff :math:`\rho < 1`.

    Args:
      m: closed-loop matrices, shape ``(..., n, n)`` (JAX arrays are handled with a
        jitted ``jax.numpy`` kernel, the one :func:`stability_region` runs; anything
        else is converted to a float64 NumPy array), or a matrix-free operator (a
        ``scipy.sparse.linalg.LinearOperator``, e.g. from
        :func:`stability.operators.linear_operator`). NaN or inf entries raise.
      method: ``"closed_form"`` (real 2x2 and 1x1 blocks; differentiable),
        ``"eig"`` (dense eigenvalues), ``"arnoldi"`` (ARPACK on matrix-vector
        products: the ``k`` largest-magnitude eigenvalues; step Jacobians are non-normal
        with eigenvalues clustered near 1, where power iteration stalls), or ``"auto"``
        (closed form when it applies, Arnoldi for operators, else eig).
      k: number of eigenvalues Arnoldi resolves.

    Returns:
      ρ of each matrix, shape ``(...)`` (a float for an operator).

    Raises:
      ValueError: ``m`` is not numeric, not ``(..., n, n)`` or not finite, or a bad
        ``method`` / ``k``.

    >>> import numpy as np
    >>> float(spectral_radius(np.array([[0.0, 1.0], [-0.25, 1.0]])))
    0.5

    References:
      Harrison, Metz & Sohl-Dickstein, "A Closer Look at Learned Optimization:
      Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 4.
    """
    m, k = _check_method(m, method, k)
    if isinstance(m, scipy.sparse.linalg.LinearOperator):
        return _arnoldi(m, k)
    if method == "arnoldi":
        return _arnoldi(scipy.sparse.linalg.aslinearoperator(np.asarray(m)), k)
    if isinstance(m, np.ndarray):
        _check_finite(np.all(np.isfinite(m)))
        return _radius(m, np, method == "eig")
    rho, finite = _jax_radius(m, method == "eig")
    _check_finite(finite)
    return rho


def is_marginal(m, **kwargs):
    """``|rho(m) - 1| <= tol(m)``: within rounding of the unit circle, elementwise over
    a batch (the policy of the module docstring). ``kwargs`` go to
    :func:`spectral_radius`.

    >>> import numpy as np
    >>> bool(is_marginal(np.array([[1.0, -0.9], [0.0, 0.9]])))  # heavy ball, lr = 0
    True
    """
    return _marginal(m, **kwargs)[1]


def _marginal(m, *, method="auto", k=6):
    m, k = _check_method(m, method, k)
    if isinstance(m, scipy.sparse.linalg.LinearOperator) or method == "arnoldi":
        rho = spectral_radius(m, method=method, k=k)
        return rho, bool(abs(rho - 1) <= _ARNOLDI_TOL * max(1.0, rho))
    if isinstance(m, np.ndarray):
        _check_finite(np.all(np.isfinite(m)))
        rho, marginal, _ = _classify(m, np, method == "eig")
        return rho, marginal
    rho, marginal, finite = _jax_classify(m, eig=method == "eig")
    _check_finite(finite)
    return rho, marginal


def is_stable(m, *, tol: float = 0.0, **kwargs):
    """``rho(m) < 1 - tol`` and not marginal (:func:`is_marginal`), elementwise over a
    batch; ``0 <= tol < 1``. ``kwargs`` go to :func:`spectral_radius`.

    >>> import numpy as np
    >>> bool(is_stable(np.diag([0.5, -0.9]))), bool(is_stable(np.diag([0.5, -1.0])))
    (True, False)
    """
    tol = check_scalar("tol", tol, low=0.0, high=1.0, high_open=True)
    rho, marginal = _marginal(m, **kwargs)
    if isinstance(marginal, bool):  # a matrix-free operator: plain floats
        return bool(rho < 1 - tol) and not marginal
    return (rho < 1 - tol) & ~marginal


def convergence_rate(m, **kwargs):
    r"""Asymptotic rate :math:`-\log \rho(M)` per step (negative when unstable): the
    distance to the optimum shrinks like :math:`e^{-\text{rate}\, t}`."""
    rho = spectral_radius(m, **kwargs)
    return -(np.log(rho) if isinstance(rho, float | np.ndarray) else jnp.log(rho))


def eigenvalues(m):
    """All eigenvalues of ``m`` (``(..., n, n)``), float64 NumPy for NumPy input."""
    m = _as_matrices(m)
    if isinstance(m, np.ndarray):
        return np.linalg.eigvals(m)
    return jnp.linalg.eigvals(m)
