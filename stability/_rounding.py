"""The rounding tolerance on a spectral radius near 1 (the marginal-stability policy
of :mod:`stability.analyses.spectral`), here so that the problems can apply it
without importing the analyses."""

MARGIN = 8.0
"""The constant of the marginal-stability tolerance."""


def _entries(m):
    """The entries of real 2x2 blocks ``(..., 2, 2)``, and ``s = tr``, ``q = det``."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    return (a, b, c, d), a + d, a * d - b * c


def marginal_tolerance(m, xp):
    """The band ``tol`` around ``rho = 1`` of each matrix ``(..., n, n)`` (``xp`` is
    ``numpy`` or ``jax.numpy``): ``delta = MARGIN * eps * sum_ij |M_ij|``, and for
    real 2x2 blocks ``delta + 2 delta / sqrt(max(|s^2 - 4q|, delta))`` (the root's
    conditioning, ``s`` the trace and ``q`` the determinant)."""
    eps = xp.finfo(m.dtype).eps
    if m.shape[-1] != 2 or xp.iscomplexobj(m):
        return MARGIN * eps * xp.sum(xp.abs(m), axis=(-2, -1))
    (a, b, c, d), s, q = _entries(m)
    delta = MARGIN * eps * (xp.abs(a) + xp.abs(b) + xp.abs(c) + xp.abs(d))
    gap = xp.maximum(xp.abs(s * s - 4 * q), delta)
    return delta + 2 * delta / xp.sqrt(xp.where(gap > 0, gap, 1.0))
