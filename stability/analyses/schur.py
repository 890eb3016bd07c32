r"""The jitted Schur-Cohn stability test on polynomial coefficients (jax.numpy).

This module owns the floating-point half of the Schur-Cohn reduction whose exact,
symbolic form is :func:`stability.analyses.symbolic.schur_cohn_conditions`: real
coefficients are reduced in double-double arithmetic, complex ones in the working
precision. Batched, jittable, no eigenvalues::

    coeffs = symbolic.characteristic_coefficients("aggmo", xs, betas=(0.9, 0.99, 0.999))
    schur_stable(coeffs)                               # shape xs.shape, bool

References:
  E. I. Jury, *Theory and Application of the z-Transform Method*, Wiley, 1964.
  I. Schur, "Über Potenzreihen, die im Innern des Einheitskreises beschränkt sind",
  J. reine angew. Math. 147 (1917); A. Cohn, "Über die Anzahl der Wurzeln einer
  algebraischen Gleichung in einem Kreise", Math. Z. 14 (1922).
  T. J. Dekker, "A floating-point technique for extending the available precision",
  Numer. Math. 18 (1971).
"""

import jax
import jax.numpy as jnp

__all__ = ["schur_stable"]

# Double-double arithmetic (Dekker 1971; Knuth's TwoSum): a value is an unevaluated sum
# hi + lo with |lo| <= ulp(hi)/2. The Schur-Cohn step ``a p - c p*`` cancels heavily
# when roots cluster near the circle (AggMo's decays near 1, small x); carrying twice
# the working precision lets the test decide the given coefficients almost exactly.
# These kernels assume IEEE arithmetic without fast-math reassociation (XLA's default);
# a fused multiply-add leaves them exact since every split product is exact.


def _two_sum(a, b):
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def _split(a, factor):
    """Veltkamp split: ``a = hi + lo`` with each half on half the mantissa."""
    t = factor * a
    hi = t - (t - a)
    return hi, a - hi


def _two_prod(a, b, factor):
    """``a * b = p + e`` exactly."""
    p = a * b
    a_hi, a_lo = _split(a, factor)
    b_hi, b_lo = _split(b, factor)
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _renormalise(s, e):
    hi = s + e
    return hi, e - (hi - s)


def _dd_mul(x, y, factor):
    p, e = _two_prod(x[0], y[0], factor)
    return _renormalise(p, e + (x[0] * y[1] + x[1] * y[0]))


def _dd_sub(x, y):
    s, e = _two_sum(x[0], -y[0])
    return _renormalise(s, e + (x[1] - y[1]))


def _dd_abs(x):
    sign = jnp.where(x[0] < 0, -1, 1).astype(x[0].dtype)
    return sign * x[0], sign * x[1]


@jax.jit
def _schur_stable_real(coeffs):
    # Stages run in a fori_loop on zero-padded arrays of fixed length, so the compiled
    # graph does not grow with the degree.
    dtype = coeffs.dtype
    n = coeffs.shape[-1] - 1
    factor = jnp.asarray(2.0 ** ((jnp.finfo(dtype).nmant + 2) // 2) + 1, dtype)
    index = jnp.arange(n + 1)
    axis = coeffs.ndim - 1

    def stage(s, carry):
        hi, lo, stable = carry
        last = n - s  # index of the constant coefficient at this stage
        lead = (hi[..., :1], lo[..., :1])
        const = (
            jax.lax.dynamic_slice_in_dim(hi, last, 1, axis=axis),
            jax.lax.dynamic_slice_in_dim(lo, last, 1, axis=axis),
        )
        margin = _dd_sub(_dd_abs(lead), _dd_abs(const))
        stable &= margin[0][..., 0] > 0
        mirror = jnp.clip(last - index, 0, n)
        reciprocal = (jnp.take(hi, mirror, axis=-1), jnp.take(lo, mirror, axis=-1))
        hi, lo = _dd_sub(
            _dd_mul(lead, (hi, lo), factor), _dd_mul(const, reciprocal, factor)
        )
        keep = index < last  # the new constant sits at last - 1; the z^0 term is gone
        hi, lo = jnp.where(keep, hi, 0), jnp.where(keep, lo, 0)
        # Rescale by a power of two (exact) to unit size: no overflow at any degree.
        scale = jnp.max(jnp.abs(hi), axis=-1, keepdims=True)
        _, exponent = jnp.frexp(jnp.where(scale > 0, scale, 1))
        unit = jnp.ldexp(jnp.ones_like(scale), -exponent)
        return hi * unit, lo * unit, stable

    stable = jnp.all(jnp.isfinite(coeffs), axis=-1) & (coeffs[..., 0] != 0)
    carry = (coeffs, jnp.zeros_like(coeffs), stable)
    return jax.lax.fori_loop(0, n, stage, carry)[2]


@jax.jit
def _schur_stable_complex(coeffs):
    stable = jnp.all(jnp.isfinite(coeffs), axis=-1) & (coeffs[..., 0] != 0)
    for _ in range(coeffs.shape[-1] - 1):
        lead, const = coeffs[..., :1], coeffs[..., -1:]
        stable &= jnp.abs(const[..., 0]) < jnp.abs(lead[..., 0])
        reduced = jnp.conj(lead) * coeffs - const * jnp.conj(coeffs[..., ::-1])
        coeffs = reduced[..., :-1]
        scale = jnp.max(jnp.abs(coeffs), axis=-1, keepdims=True)
        coeffs = coeffs / jnp.where(scale > 0, scale, 1).astype(coeffs.dtype)
    return stable


def schur_stable(coeffs) -> jax.Array:
    r"""Whether every root of each polynomial lies strictly inside the unit disk.

    The Schur-Cohn reduction of :func:`schur_cohn_conditions`, in floating point:
    stage ``k`` requires :math:`|c_k| < |a_k|` and replaces ``p`` by
    :math:`(\bar a\,p(z) - c\,p^*(z))/z` with :math:`p^*(z) = z^n \bar p(1/\bar z)`,
    rescaled by a power of two. ``n`` comparisons and ``O(n^2)`` flops per
    polynomial, no eigenvalues: a degree-4 AggMo block is decided without ``eig``.

    Real coefficients are reduced in double-double arithmetic (about 106 bits under
    x64), so the answer is the exact one for the coefficients as given unless a root
    lies within roughly ``1e-25`` of the circle (a plain float64 reduction already
    fails for AggMo with decays ``(0.9, 0.99, 0.999)`` at ``x < 1e-8``, and
    ``numpy.roots`` errs by up to ``1e-5`` on such root clusters). The coefficients
    themselves remain the limit: for AggMo at ``x`` below about
    ``eps / prod(1 - b_i)`` the rounded monomial coefficients no longer carry the
    stability margin, and may genuinely describe an unstable polynomial. Complex
    coefficients use a plain reduction in the working precision.

    Args:
      coeffs: shape ``(..., n + 1)``, highest degree first (``numpy.roots``
        convention), nonzero leading coefficient; real or complex. Integer input is
        cast to the default float (float64 when x64 is on).

    Returns:
      Boolean array of shape ``(...)``. Non-finite coefficients or a zero leading
      coefficient give False.

    References:
      Jury (1964); Schur (1917); Cohn (1922); T. J. Dekker, "A floating-point
      technique for extending the available precision", Numer. Math. 18 (1971).

    >>> schur_stable(jnp.array([[1.0, -1.5, 0.56], [1.0, 0.0, -4.0], [0.5, 0.25, 0.0]]))
    Array([ True, False,  True], dtype=bool)
    """
    coeffs = jnp.asarray(coeffs)
    if coeffs.ndim == 0:
        raise ValueError("coeffs: expected shape (..., n + 1)")
    if jnp.issubdtype(coeffs.dtype, jnp.complexfloating):
        return _schur_stable_complex(coeffs)
    if not jnp.issubdtype(coeffs.dtype, jnp.floating):
        coeffs = coeffs.astype(jax.dtypes.canonicalize_dtype(jnp.float64))
    return _schur_stable_real(coeffs)
