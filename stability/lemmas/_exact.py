r"""Exact and high-precision spectral tests for the claim modules.

Floats are exact rationals, so for a matrix built from float inputs by products and
sums (Theorem 1's :math:`A = I - (\alpha I + P) H`) the question ":math:`\rho(A) <
r`?" has an exact answer: the characteristic polynomial in rational arithmetic
(Faddeev--LeVerrier) and the Schur--Cohn recursion, which decides whether every root
of a polynomial lies in the open unit disc with no root-finding at all
(:func:`roots_inside`). Where an input is irrational (Lemma 2's :math:`H^{1/2}`) the
test uses 50-digit ``mpmath`` eigenvalues with a Bauer--Fike error bar and answers
``"undecided"`` when the radius is within it (:func:`radius_verdict`).

Float eigenvalues are not enough near a defective eigenvalue: a perturbation of size
:math:`d` moves an eigenvalue of a Jordan block of size :math:`m` by about
:math:`d^{1/m}`, so rounding of :math:`10^{-16}` can move :math:`\rho` by
:math:`10^{-8}` (:math:`m = 2`) or :math:`10^{-2}` (:math:`m = 8`).
:func:`float_radius` therefore reports an error bar from the eigenvector condition
number (Bauer--Fike with a rounding allowance), and callers fall back to the exact
test when the float answer is within it.

The Schur--Cohn step: for :math:`p(z) = \sum_{k=0}^n a_k z^k` with real coefficients
and reversal :math:`p^*(z) = z^n p(1/z)`, every root of :math:`p` lies in
:math:`|z| < 1` iff :math:`|a_0| < |a_n|` and every root of :math:`(a_n p - a_0
p^*)/z` (degree :math:`n - 1`, leading coefficient :math:`a_n^2 - a_0^2`) does
(Rouche on the unit circle, where :math:`|p^*| = |p|`).

References:
  E. I. Jury, *Theory and Application of the z-Transform Method*, Wiley, 1964.
  F. L. Bauer & C. T. Fike, "Norms and exclusion theorems", Numer. Math. 2 (1960).
"""

from fractions import Fraction

import mpmath
import numpy as np

from stability.lemmas._claim import FAILS, HOLDS, UNDECIDED, verdict

DIGITS = 50  # mpmath working precision (decimal digits)
EPS = float(np.finfo(float).eps)


def with_digits(fn):
    """Run ``fn`` at :data:`DIGITS` decimal digits."""

    def wrapped(*args, **kwargs):
        with mpmath.workdps(DIGITS):
            return fn(*args, **kwargs)

    wrapped.__doc__, wrapped.__name__ = fn.__doc__, fn.__name__
    return wrapped


def rounding(n) -> float:
    """The rounding allowance per unit of norm for ``n x n`` float64 matrix work
    (``64 n eps``: a generous multiple of the standard backward-error bounds)."""
    return 64.0 * max(int(n), 1) * EPS


def to_fractions(a):
    """A float array as a nested list of exact :class:`~fractions.Fraction`."""
    arr = np.asarray(a, float)
    if arr.ndim == 0:
        return Fraction(float(arr))
    return [to_fractions(x) for x in arr]


def matmul(a, b):
    """Product of two square nested lists (exact for Fractions)."""
    n = len(a)
    return [
        [sum(a[i][k] * b[k][j] for k in range(n)) for j in range(n)] for i in range(n)
    ]


def charpoly(m):
    """Coefficients ``[c_0, ..., c_n]`` (lowest first, ``c_n = 1``) of
    :math:`\\det(zI - M)` by Faddeev--LeVerrier; exact for Fractions."""
    n = len(m)
    one, zero = m[0][0] * 0 + 1, m[0][0] * 0
    c = [zero] * n + [one]
    mk = [[zero] * n for _ in range(n)]
    for k in range(1, n + 1):
        for i in range(n):  # M_k = M M_{k-1} + c_{n-k+1} I
            mk[i][i] += c[n - k + 1]
        am = matmul(m, mk)
        c[n - k] = -sum(am[i][i] for i in range(n)) / k
        mk = am
    return c


def roots_inside(coeffs, radius=1, *, tol=0):
    """Schur--Cohn: ``HOLDS`` if every root of ``sum coeffs[k] z^k`` (lowest first,
    real, leading coefficient nonzero) lies in ``|z| < radius``, ``FAILS`` if not.
    Exact for Fractions with ``tol=0``; with ``mpmath`` numbers a pivot
    ``|a_0| - |a_n|`` within ``tol`` times its size gives ``UNDECIDED``."""
    a = [c * radius**k for k, c in enumerate(coeffs)]
    while len(a) > 1:
        a0, an = a[0], a[-1]
        gap = abs(an) - abs(a0)
        if abs(gap) <= tol * max(abs(an), abs(a0)):
            return UNDECIDED if tol else FAILS
        if gap < 0:
            return FAILS
        rev = a[::-1]
        a = [an * a[k] - a0 * rev[k] for k in range(1, len(a))]
        top = abs(a[-1])
        a = [x / top for x in a]  # keep the sizes down; roots unchanged
    return HOLDS


def exact_radius_below(A, radius) -> bool:
    """Whether :math:`\\rho(A) <` ``radius`` exactly, for a float matrix ``A`` taken
    as exact rationals (``radius`` a Fraction, int or float)."""
    r = radius if isinstance(radius, Fraction) else Fraction(radius)
    return roots_inside(charpoly(to_fractions(A)), r) == HOLDS


def mp_matrix(a):
    """A float array as an ``mpmath`` matrix (exact conversion)."""
    return mpmath.matrix([[mpmath.mpf(float(x)) for x in row] for row in np.asarray(a)])


def mp_sqrt_spd(H):
    """:math:`H^{1/2}` of the exact float SPD matrix ``H`` at the working precision
    (``mpmath.eigsy``)."""
    w, q = mpmath.eigsy(mp_matrix(H))
    n = len(w)
    d = mpmath.diag([mpmath.sqrt(w[i]) for i in range(n)])
    return q * d * q.T


def radius_verdict(M, radius) -> str:
    """Whether :math:`\\rho(M) <` ``radius`` for an ``mpmath`` matrix at the working
    precision, from its eigenvalues and their error bar (:func:`mp_eig_error`):
    ``UNDECIDED`` only when the largest modulus is within the bar of ``radius``.
    (Schur--Cohn is exact only in rational arithmetic: on rounded coefficients of a
    polynomial with roots clustered near the circle its pivots lose too many
    digits.)"""
    lam, err = mp_eig_error(M)
    rho = max(abs(x) for x in lam)
    return verdict(float(mpmath.mpf(radius) - rho), err)


def mp_radius(M) -> float:
    """:math:`\\rho(M)` of an ``mpmath`` matrix from 50-digit eigenvalues, as a
    float (near a Jordan block of size :math:`m` accurate to about
    :math:`10^{-50/m}`)."""
    return float(max(abs(x) for x in mp_eigenvalues(M)))


def mp_eigenvalues(M):
    """The eigenvalues of an ``mpmath`` matrix at the working precision."""
    w = mpmath.eig(M, left=False, right=False)
    return w[0] if isinstance(w, tuple) else w  # mpmath returns a tuple for 1x1


def mp_eig_error(M):
    """``(eigenvalues, err)`` of an ``mpmath`` matrix at the working precision, with
    an error bar: Bauer--Fike with the eigenvector condition number and a backward
    error of :math:`10^{5 - \\text{dps}} \\|M\\|_F`, or, when that condition number
    is numerically infinite, the worst case of a Jordan block of size ``n``
    (:math:`\\delta^{1/n}\\|M\\|^{1-1/n}` for a backward error :math:`\\delta`)."""
    n = M.rows
    w, v = mpmath.eig(M)
    scale = max(float(mpmath.mnorm(M, "f")), 1e-300)
    tiny = 10.0 ** (5 - mpmath.mp.dps) * scale
    try:
        cond = float(mpmath.mnorm(v, "f") * mpmath.mnorm(mpmath.inverse(v), "f"))
    except ZeroDivisionError:
        cond = float("inf")
    if cond * tiny < 1e-20 * scale:
        return w, cond * tiny
    return w, tiny ** (1 / n) * scale ** (1 - 1 / n)


@with_digits
def mp_spectrum(a):
    """``(eigenvalues, err)`` of the exact float matrix ``a`` at 50 digits
    (:func:`mp_eig_error`), as complex float64, the bar including the rounding to
    float64."""
    w, err = mp_eig_error(mp_matrix(a))
    lam = np.array([complex(x) for x in w])
    return lam, err + 2 * EPS * float(np.max(np.abs(lam)))


def float_radius(A):
    """``(rho, err)``: :math:`\\rho(A)` from float64 ``eig`` and a bound on its error,
    Bauer--Fike with the rounding allowance: ``cond(V) * rounding(n) * ||A||_F``
    (``inf`` when ``V`` is numerically singular: a (nearly) defective ``A``)."""
    A = np.asarray(A, float)
    w, v = np.linalg.eig(A)
    cond = np.linalg.cond(v)
    err = cond * rounding(A.shape[0]) * np.linalg.norm(A)
    return float(np.max(np.abs(w))), float(err) if np.isfinite(err) else np.inf
