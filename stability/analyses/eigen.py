r"""Matrix-free eigen-solvers that report their residuals: Lanczos for symmetric
operators (the Hessian, the preconditioned Hessian) and Arnoldi for non-symmetric ones
(the Jacobian of a training step).

Both take a SciPy ``LinearOperator`` (e.g. from
:func:`stability.operators.hessian_operator` or
:func:`stability.operators.step_jacobian`) or a dense square array, run in NumPy
around the operator's (jitted) products (Lanczos in the operator's precision, float32
or float64; Arnoldi in float64), and return an :class:`Eigenpairs` record. Calling
pattern along training, warm-starting from the last vectors::

    pairs = lanczos(hessian_operator(loss_fn, params, batch))
    ...  # train
    pairs = lanczos(hessian_operator(loss_fn, params, batch), v0=pairs.eigenvectors)
    sharpness = pairs.eigenvalues[0]

    radius = np.max(np.abs(arnoldi(step_operator).eigenvalues))
"""

from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from threadpoolctl import ThreadpoolController  # installed with scikit-learn

from stability._validation import check_int, check_scalar

__all__ = ["Eigenpairs", "arnoldi", "lanczos"]

_CONTROLLER = []  # one ThreadpoolController: building one scans the loaded libraries


def _one_blas_thread():
    """A context limiting BLAS to one thread: the solvers' vector work is
    memory-bound, and threaded BLAS only contends with the operator's own (JAX)
    threads (dot products 20x slower on 2 busy cores)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


class Eigenpairs(NamedTuple):
    """Eigenvalue estimates with the evidence for them.

    Attributes:
      eigenvalues: shape ``(k,)``, largest first (algebraically for
        :func:`lanczos`, in modulus for :func:`arnoldi`; complex there).
      eigenvectors: shape ``(n, k)``, unit 2-norm columns.
      residuals: shape ``(k,)``, :math:`\\|A x - \\lambda x\\|_2` of each pair.
      matvecs: products with the operator the solver used.
      converged: every relative residual ``residual / |eigenvalue|`` is within the
        tolerance asked for.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    matvecs: int
    converged: bool

    @property
    def relative_residuals(self) -> np.ndarray:
        scale = np.maximum(np.abs(self.eigenvalues), np.finfo(float).tiny)
        return self.residuals / scale


def _as_operator(name, op) -> scipy.sparse.linalg.LinearOperator:
    if not isinstance(op, scipy.sparse.linalg.LinearOperator):
        try:
            arr = np.asarray(op, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name}: expected a LinearOperator or a square array"
            ) from err
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
            raise ValueError(f"{name}: expected shape (n, n), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
        op = scipy.sparse.linalg.aslinearoperator(arr)
    if op.shape[0] != op.shape[1] or op.shape[0] == 0:
        raise ValueError(f"{name}: expected a square operator, got {op.shape}")
    return op


def _start(v0, n, seed) -> np.ndarray:
    """A unit start vector: the sum of the warm vectors, or a random one."""
    if v0 is None:
        v = np.random.default_rng(seed).standard_normal(n)
    else:
        v = np.asarray(v0)
        if v.ndim == 1:
            v = v[:, None]
        if v.ndim != 2 or v.shape[0] != n:
            raise ValueError(f"v0: expected shape ({n},) or ({n}, j), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("v0: contains non-finite values (NaN or inf)")
        v = np.real(v).sum(axis=1)
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError("v0: is zero")
    return v / norm


def lanczos(
    op,
    k: int = 1,
    *,
    v0=None,
    tol: float = 1e-3,
    max_iter: int | None = None,
    seed: int = 0,
) -> Eigenpairs:
    r"""The ``k`` largest (algebraic) eigenvalues of a symmetric operator by Lanczos
    with semi-orthogonal vectors, stopped once each relative residual
    :math:`\|A x - \theta x\| / |\theta|` is at most ``tol``.

    The residual of a Ritz pair :math:`(\theta_i, V s_i)` after ``j`` steps is
    :math:`|\beta_j\, s_{j,i}|`, read off the tridiagonal matrix at no extra
    product; the Lanczos vectors are kept semi-orthogonal (every new one checked
    against the whole basis, and reorthogonalised when a component exceeds
    :math:`\sqrt{\epsilon}` of its norm), so it equals the true residual to within
    a relative :math:`\sqrt{\epsilon}` and rounding.
    The Lanczos vectors are kept in the operator's precision (a float32 operator,
    such as the Hessian of float32 parameters, gives float32 vectors and
    eigenvectors; the tridiagonal eigenproblem is float64 either way), so a
    ``tol`` near float32 rounding (``1e-6``) is out of reach of a float32 operator.

    Args:
      op: a symmetric ``LinearOperator`` or array, shape ``(n, n)``.
      k: eigenpairs wanted.
      v0: warm start, shape ``(n,)`` or ``(n, j)`` (e.g. the previous
        ``eigenvectors``): the Krylov space starts from their sum. ``None`` starts
        from a random vector drawn with ``seed``.
      tol: relative residual at which to stop.
      max_iter: most products (default ``min(n, 300)``).
      seed: for the random start.
    Returns:
      :class:`Eigenpairs`; ``converged`` is False if ``max_iter`` came first.

    >>> import numpy as np
    >>> pairs = lanczos(np.diag([1.0, 5.0, 3.0]), k=2, tol=1e-10)
    >>> pairs.eigenvalues.round(8).tolist(), bool(pairs.converged)
    ([5.0, 3.0], True)
    """
    op = _as_operator("op", op)
    n = op.shape[0]
    k = check_int("k", k, low=1)
    if k > n:
        raise ValueError(f"k: at most the dimension {n}, got {k}")
    tol = check_scalar("tol", tol, low=0.0, low_open=True)
    with _one_blas_thread():
        return _lanczos(op, n, k, v0, tol, max_iter, seed)


def _product(op, v, dtype) -> np.ndarray:
    """``op v`` as a fresh writable vector of ``dtype``."""
    w = np.asarray(op.matvec(v), dtype=dtype).reshape(-1)
    return w.copy() if not w.flags.writeable or np.shares_memory(w, v) else w


def _lanczos(op, n, k, v0, tol, max_iter, seed) -> Eigenpairs:
    if max_iter is not None:
        max_iter = check_int("max_iter", max_iter, low=1)
    max_iter = max(min(300 if max_iter is None else max_iter, n), k)
    # the vectors in the operator's precision (float32 products gain nothing from
    # a float64 basis, and the vector work is memory-bound); the tridiagonal
    # matrix and its eigenproblem in float64
    dtype = np.float32 if op.dtype == np.float32 else np.float64
    # one Lanczos vector per row, the rows in use contiguous; the basis starts
    # small and doubles when full: a small block is reused from the heap on the
    # next call, while fresh memory costs a page fault per 4 KiB written
    basis = np.empty((min(max_iter, 16), n), dtype)
    alpha, beta = np.zeros(max_iter), np.zeros(max_iter)
    basis[0] = _start(v0, n, seed)
    vals = vecs = res = None
    j = 0
    semi = np.sqrt(np.finfo(dtype).eps)
    for j in range(max_iter):
        w = _product(op, basis[j], dtype)
        # the three-term recurrence; then the new vector's components along the
        # whole basis are measured, and removed (classical Gram-Schmidt, at most
        # twice) only when one exceeds sqrt(eps) of its norm. Semi-orthogonal
        # Lanczos vectors give Ritz values and residual estimates as accurate as
        # orthogonal ones (Simon, 1984), and the check costs half a pass
        if j:
            w -= dtype(beta[j - 1]) * basis[j - 1]
        alpha[j] = basis[j] @ w
        w -= dtype(alpha[j]) * basis[j]
        beta[j] = np.linalg.norm(w)
        for _ in range(2):
            c = basis[: j + 1] @ w
            if np.max(np.abs(c)) <= semi * beta[j]:
                break
            w -= c @ basis[: j + 1]
            beta[j] = np.linalg.norm(w)
        m = j + 1
        if m >= k:
            theta, s = scipy.linalg.eigh_tridiagonal(alpha[:m], beta[: m - 1])
            top = np.argsort(theta)[::-1][:k]
            vals, vecs = theta[top], s[:, top]
            res = np.abs(beta[j] * vecs[-1])
            scale = np.maximum(np.abs(vals), np.finfo(float).tiny)
            if np.all(res <= tol * scale):
                break
        if beta[j] <= 50 * np.finfo(dtype).eps * max(1.0, np.max(np.abs(alpha[:m]))):
            break  # an invariant subspace: the Ritz pairs are exact
        if m < max_iter:
            if m == len(basis):
                basis = np.concatenate([basis, np.empty_like(basis)])[:max_iter]
            np.divide(w, beta[j], out=basis[m], casting="same_kind")
    m = j + 1
    if vals is None or m < k:
        raise ValueError(
            f"op: its Krylov space from v0 has dimension {m} < k = {k}; "
            "start from another vector"
        )
    scale = np.maximum(np.abs(vals), np.finfo(float).tiny)
    x = basis[:m].T @ vecs.astype(dtype)
    x /= np.maximum(np.linalg.norm(x, axis=0), np.finfo(dtype).tiny)
    return Eigenpairs(
        vals,
        x,
        res,
        m,
        bool(np.all(res <= tol * scale)),
    )


def arnoldi(
    op,
    k: int = 6,
    *,
    v0=None,
    tol: float = 1e-8,
    max_iter: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
) -> Eigenpairs:
    r"""The ``k`` eigenvalues of largest modulus of a (non-symmetric) operator, by
    ARPACK's implicitly restarted Arnoldi on its products, with each pair's residual
    :math:`\|A x - \lambda x\|` computed explicitly (``k`` products more).

    Step Jacobians are non-normal with eigenvalues clustered near 1, where power
    iteration stalls; Arnoldi resolves the cluster. Operators of dimension at most
    ``max(k + 2, 64)`` are formed densely (ARPACK needs ``k < n - 1``).

    Args:
      op: a ``LinearOperator`` (real or complex) or a real array, shape ``(n, n)``.
      k: eigenvalues wanted.
      v0: start vector, shape ``(n,)`` (default: a random one drawn with ``seed``,
        so that repeated calls agree; ARPACK's own is random each call).
      tol: ARPACK's relative accuracy of the Ritz values.
      max_iter: ARPACK's restarts (default ``50 n``).
      ncv: ARPACK's basis size (default ``min(n, max(2k + 1, 20))``).
      seed: for the random start.
    Returns:
      :class:`Eigenpairs` sorted by decreasing modulus (complex); if ARPACK does
      not converge, the pairs it did converge, with ``converged`` False.

    >>> import numpy as np
    >>> pairs = arnoldi(np.array([[0.0, 1.0], [-0.25, 1.0]]), k=2)
    >>> np.abs(pairs.eigenvalues).round(8).tolist()
    [0.5, 0.5]
    """
    op = _as_operator("op", op)
    n = op.shape[0]
    k = check_int("k", k, low=1)
    if k > n:
        raise ValueError(f"k: at most the dimension {n}, got {k}")
    tol = check_scalar("tol", tol, low=0.0)
    max_iter = 50 * n if max_iter is None else check_int("max_iter", max_iter, low=1)
    if ncv is not None:
        ncv = check_int("ncv", ncv, low=1)
    with _one_blas_thread():
        return _arnoldi(op, n, k, _start(v0, n, seed), tol, max_iter, ncv)


def _arnoldi(op, n, k, start, tol, max_iter, ncv) -> Eigenpairs:
    count = [0]
    real = not np.issubdtype(op.dtype, np.complexfloating)
    dtype = np.float64 if real else np.complex128

    def matvec(v):
        count[0] += 1
        return np.asarray(op.matvec(v), dtype=dtype).reshape(-1)

    def apply(x):  # a real operator on a complex vector: two real products
        if real and np.iscomplexobj(x):
            return matvec(x.real) + 1j * matvec(x.imag)
        return matvec(x)

    converged = True
    if n <= max(k + 2, 64):
        dense = np.stack([matvec(e) for e in np.eye(n)], axis=1)
        vals, vecs = np.linalg.eig(dense)
    else:
        counted = scipy.sparse.linalg.LinearOperator((n, n), matvec, dtype=dtype)
        try:
            vals, vecs = scipy.sparse.linalg.eigs(
                counted, k=k, which="LM", v0=start, tol=tol, maxiter=max_iter, ncv=ncv
            )
        except scipy.sparse.linalg.ArpackNoConvergence as err:
            vals, vecs, converged = err.eigenvalues, err.eigenvectors, False
    order = np.argsort(-np.abs(vals), kind="stable")[:k]
    vals, vecs = vals[order], vecs[:, order]
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=0), np.finfo(float).tiny)
    res = np.array(
        [
            np.linalg.norm(apply(x) - lam * x)
            for lam, x in zip(vals, vecs.T, strict=True)
        ]
    )
    if len(vals) < k:
        converged = False
    return Eigenpairs(vals, vecs, res, count[0], converged)
