r"""Exact stability of the per-mode blocks: block matrices and characteristic
polynomials derived in sympy, stability boundaries solved in closed form from their
Jury conditions, and the derived coefficients evaluated in jax.numpy. The conditions
themselves live in :mod:`stability.analyses.jury` and the jitted Schur-Cohn test on
coefficients in :mod:`stability.analyses.schur`; both are re-exported here.

Every linear optimizer in this package acts on one Hessian eigen-direction (curvature
``h``) through a small block ``M`` that depends only on ``x = lr * h`` and the decays,
once the momentum coordinates are scaled by ``lr``. The block is derived here as the
Jacobian of one step of the scaled update, its characteristic polynomial as
``det(z I - M)``, and the loop is stable iff every root of that polynomial lies strictly
inside the unit disk.

Calling pattern::

    M = block_matrix("heavy_ball")                     # symbolic x and beta
    p = characteristic_polynomial("heavy_ball")        # Poly in z, det(z I - M)
    jury_conditions(p)                                 # stable iff every entry is > 0
    b = stability_boundary("aggmo", betas=(0.9, 0.99, 0.999))
    b.x_star, b.digits, b.crossing                     # exact x*, 30 digits, z = -1
    coeffs = characteristic_coefficients("aggmo", xs, betas=(0.9, 0.99, 0.999))
    schur_stable(coeffs)                               # batched, jittable, no eig

Families, named as in :data:`stability.optimizers.FAMILIES` (``x = lr * h``;
``u = lr * m`` are the scaled momenta):

======================  =====================================================
``"gd"``                ``phi' = phi - x phi``
``"nominal"``           gd with ``x = (alpha + p) h`` (learned term sharing H's
                        basis); ``precondition=True``: ``x = (alpha + p) sqrt(h)``
                        (idealised ``H^{-1/2}``)
``"heavy_ball"``        ``u' = beta u + x phi``, ``phi' = phi - u'``
``"ema_momentum"``      ``u' = beta u + (1 - beta) x phi``, ``phi' = phi - u'``
``"nesterov"``          ``u' = beta u + x phi``, ``phi' = phi - x phi - beta u'``
``"aggmo"``             ``u_i' = b_i u_i + (1 - b_i) x phi``,
                        ``phi' = phi - mean_i u_i'``
======================  =====================================================

The old spellings ``"ema"`` (for ``"ema_momentum"``) and ``"preconditioned"`` (for
``"nominal"`` with ``precondition=True``) still work and warn (DeprecationWarning).

Numbers given as Python floats are read through their shortest decimal form, so
``0.9`` means ``9/10`` exactly.

References:
  E. I. Jury, *Theory and Application of the z-Transform Method*, Wiley, 1964.
  I. Schur, "Über Potenzreihen, die im Innern des Einheitskreises beschränkt sind",
  J. reine angew. Math. 147 (1917); A. Cohn, "Über die Anzahl der Wurzeln einer
  algebraischen Gleichung in einem Kreise", Math. Z. 14 (1922).
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 4.
"""

from __future__ import annotations

import fractions
import functools
import numbers
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from stability.analyses.jury import Z as Z
from stability.analyses.jury import _jury, _sign_of
from stability.analyses.jury import jury_conditions as jury_conditions
from stability.analyses.jury import schur_cohn_conditions as schur_cohn_conditions
from stability.analyses.schur import schur_stable as schur_stable
from stability.optimizers import FAMILIES as FAMILIES

__all__ = [
    "BETA",
    "FAMILIES",
    "X",
    "Z",
    "StabilityBoundary",
    "block_matrix",
    "characteristic_coefficients",
    "characteristic_polynomial",
    "jury_conditions",
    "schur_cohn_conditions",
    "schur_stable",
    "stability_boundary",
]

X = sympy.Symbol("x", real=True)
"""The per-mode product ``x = lr * h``."""
BETA = sympy.Symbol("beta", real=True)
"""The momentum decay of heavy ball, EMA momentum and Nesterov."""

# old spelling -> (family, precondition)
_DEPRECATED = {"ema": ("ema_momentum", False), "preconditioned": ("nominal", True)}
_ONE_DECAY = ("heavy_ball", "ema_momentum", "nesterov")

_CROSSING_MINUS = "z = -1"
_CROSSING_PLUS = "z = +1"
_CROSSING_COMPLEX = "complex pair on |z| = 1"


# --------------------------------------------------------------------------------------
# Blocks and characteristic polynomials
# --------------------------------------------------------------------------------------


def _exact(name, value):
    """``value`` as an exact sympy object; floats through their shortest decimal."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, bool):
        raise ValueError(
            f"{name}: expected a number or a sympy expression, got {value!r}"
        )
    if isinstance(value, numbers.Integral):
        return sympy.Integer(int(value))
    if isinstance(value, fractions.Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, numbers.Real):
        v = float(value)
        if not np.isfinite(v):
            raise ValueError(f"{name}: must be finite, got {v}")
        return sympy.Rational(repr(v))
    raise ValueError(f"{name}: expected a number or a sympy expression, got {value!r}")


def _aggmo_betas(betas):
    if betas is None:
        raise ValueError(
            "betas: the 'aggmo' family needs betas (a sequence, or a count)"
        )
    if isinstance(betas, numbers.Integral) and not isinstance(betas, bool):
        if betas < 1:
            raise ValueError(f"betas: needs at least one decay, got {betas}")
        return sympy.symbols(f"beta_1:{int(betas) + 1}", real=True)
    try:
        seq = tuple(betas)
    except TypeError as err:
        raise ValueError(
            f"betas: expected a sequence of decays, got {betas!r}"
        ) from err
    if not seq:
        raise ValueError("betas: needs at least one decay")
    return tuple(_exact(f"betas[{i}]", b) for i, b in enumerate(seq))


def _family(family, precondition):
    """``(family, precondition)`` with the old spellings resolved (they warn)."""
    if isinstance(family, str) and family in _DEPRECATED:
        new, flag = _DEPRECATED[family]
        warnings.warn(
            f"family {family!r} is deprecated; use {new!r}"
            + (" with precondition=True" if flag else ""),
            DeprecationWarning,
            stacklevel=3,
        )
        family, precondition = new, precondition or flag
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {tuple(FAMILIES)}, got {family!r}")
    if precondition and family != "nominal":
        raise ValueError(f"precondition: only for 'nominal', not {family!r}")
    return family, bool(precondition)


def _per_mode_x(family, x, alpha, p, h, precondition):
    """The per-mode product for the gd-like families."""
    given = [v is not None for v in (alpha, p, h)]
    if any(given):
        if family != "nominal":
            raise ValueError(f"alpha, p, h: only for 'nominal', not {family!r}")
        if not all(given) or x is not None:
            raise ValueError("alpha, p, h: give all three (and no x), or give x alone")
        gain = _exact("alpha", alpha) + _exact("p", p)
        h = _exact("h", h)
        return gain * (sympy.sqrt(h) if precondition else h)
    return X if x is None else _exact("x", x)


def _one_step(family, x, beta, betas, alpha, p, h, precondition):
    """The state and its image under one scaled step: (state, next_state), for a
    family already resolved by :func:`_family`."""
    if beta is not None and family not in _ONE_DECAY:
        raise ValueError(f"beta: only for {_ONE_DECAY}, not {family!r}")
    if betas is not None and family != "aggmo":
        raise ValueError(f"betas: only for 'aggmo', not {family!r}")
    x = _per_mode_x(family, x, alpha, p, h, precondition)
    phi = sympy.Symbol("phi")
    grad = x * phi  # lr * h * phi: the scaled gradient of the mode
    if family in ("gd", "nominal"):
        return [phi], [phi - grad]
    if family in _ONE_DECAY:
        b = BETA if beta is None else _exact("beta", beta)
        u = sympy.Symbol("u")
        u_next = b * u + ((1 - b) * grad if family == "ema_momentum" else grad)
        if family == "nesterov":  # phi' = phi - lr (g + beta m')
            return [phi, u], [phi - grad - b * u_next, u_next]
        return [phi, u], [phi - u_next, u_next]
    bs = _aggmo_betas(betas)
    us = sympy.symbols(f"u_1:{len(bs) + 1}")
    us_next = [b * u + (1 - b) * grad for b, u in zip(bs, us, strict=True)]
    phi_next = phi - sympy.Add(*us_next) / len(bs)
    return [phi, *us], [phi_next, *us_next]


def block_matrix(
    family: str,
    x=None,
    *,
    beta=None,
    betas=None,
    alpha=None,
    p=None,
    h=None,
    precondition=False,
) -> sympy.Matrix:
    r"""The per-mode block ``M`` of a linear optimizer, derived as a Jacobian.

    ``M`` is the Jacobian of one step of the scaled update (see the module docstring)
    with respect to the state ``(phi, lr m_1, ..., lr m_k)``; the update is linear, so
    the Jacobian is exact. For example heavy ball gives
    :math:`\begin{pmatrix} 1 - x & -\beta \\ x & \beta \end{pmatrix}`.

    Args:
      family: one of :data:`FAMILIES`.
      x: the per-mode product ``lr * h`` (number or sympy expression); default
        :data:`X`.
      beta: decay of ``"heavy_ball"``, ``"ema_momentum"``, ``"nesterov"``; default
        the symbol :data:`BETA`.
      betas: decays of ``"aggmo"``: a sequence (numbers or symbols), or a count ``k``
        for symbols ``beta_1..beta_k``.
      alpha, p, h: for ``"nominal"``, instead of ``x``: nominal step, learned-term
        eigenvalue and curvature (``x = (alpha + p) h``).
      precondition: ``"nominal"`` with the idealised output preconditioner
        ``H^{-1/2}``, so ``x = (alpha + p) sqrt(h)``.

    Returns:
      A square sympy Matrix of size ``1``, ``2`` or ``k + 1``.

    >>> block_matrix("heavy_ball", beta=0.5)
    Matrix([
    [1 - x, -1/2],
    [    x,  1/2]])
    """
    family, precondition = _family(family, precondition)
    state, image = _one_step(family, x, beta, betas, alpha, p, h, precondition)
    return sympy.Matrix(image).jacobian(sympy.Matrix(state))


def characteristic_polynomial(family, x=None, **params) -> sympy.Poly:
    r"""Characteristic polynomial :math:`\det(z I - M)` of a block, as a Poly in ``z``.

    Derived, not tabulated: the block comes from :func:`block_matrix` (or is given as
    ``family`` itself, a square sympy Matrix) and the determinant is expanded. For the
    families of this module it is monic and equals

    - gd-like: :math:`z - (1 - x)`;
    - heavy ball: :math:`z^2 - (1 + \beta - x) z + \beta`;
    - EMA: :math:`z^2 - (1 + \beta - (1 - \beta) x) z + \beta`;
    - Nesterov: :math:`z^2 - (1 + \beta)(1 - x) z + \beta (1 - x)`;
    - AggMo with ``k`` decays: :math:`(z - 1)\prod_j (z - b_j)
      + \frac{x z}{k}\sum_i (1 - b_i)\prod_{j\ne i}(z - b_j)`.

    Args:
      family: one of :data:`FAMILIES`, or a square sympy Matrix.
      x: as in :func:`block_matrix`.
      **params: ``beta``, ``betas``, ``alpha``, ``p``, ``h``, ``precondition``, as in
        :func:`block_matrix`.

    Returns:
      ``sympy.Poly`` in :data:`Z`.

    >>> characteristic_polynomial("heavy_ball").all_coeffs()
    [1, -beta + x - 1, beta]
    """
    if isinstance(family, sympy.MatrixBase):
        m = family
        if m.rows != m.cols:
            raise ValueError(f"family: matrix must be square, got {m.shape}")
    else:
        family, precondition = _family(family, params.pop("precondition", False))
        m = block_matrix(family, x, precondition=precondition, **params)
    det = (Z * sympy.eye(m.rows) - m).det(method="berkowitz")
    return sympy.Poly(sympy.expand(det), Z)


# --------------------------------------------------------------------------------------
# Stability boundaries
# --------------------------------------------------------------------------------------


class StabilityBoundary(NamedTuple):
    """The exact stable range ``lower < variable < x_star`` of one block family.

    Attributes:
      family: the family's name (``"custom"`` for a polynomial given directly).
      variable: the symbol the range is in (``x`` unless asked otherwise).
      lower: exact lower end (``0`` for every family here, in ``x``).
      x_star: exact upper end; ``sympy.oo`` if there is none.
      digits: ``x_star`` to 30 significant digits (``sympy.N(x_star, 30)``), or None
        when it depends on free parameters.
      active_condition: the Jury condition that vanishes at ``x_star``.
      crossing: where the root leaves the disk at ``x_star``: ``"z = -1"``,
        ``"z = +1"`` or ``"complex pair on |z| = 1"``.
      parameter_conditions: the conditions not involving ``variable`` (e.g.
        ``|beta| < 1``); empty when the parameters are numbers.
      conditions: every Jury condition (see :func:`jury_conditions`).
      stable_intervals: when every other parameter is a number, the whole stable set
        in ``variable`` as exact open intervals (so re-entry of stability would show);
        None otherwise.
    """

    family: str
    variable: sympy.Symbol
    lower: sympy.Expr
    x_star: sympy.Expr
    digits: str | None
    active_condition: sympy.Expr
    crossing: str
    parameter_conditions: tuple
    conditions: tuple
    stable_intervals: tuple | None


def _crossing(poly, variable, factor_or_value, *, exact_root):
    """Label the unit-circle point where a root sits at the boundary."""
    labels = []
    for point, label in ((-1, _CROSSING_MINUS), (1, _CROSSING_PLUS)):
        value = sympy.expand(poly.as_expr().subs(poly.gens[0], point))
        if exact_root:
            # Univariate, rational: the boundary is a root of the irreducible factor.
            hit = not value.has(variable) and value == 0
            if value.has(variable):
                hit = sympy.rem(value, factor_or_value, variable) == 0
        else:
            hit = sympy.cancel(value.subs(variable, factor_or_value)) == 0
        if hit:
            labels.append(label)
    return " and ".join(labels) if labels else _CROSSING_COMPLEX


def _sorted_real_roots(factors, variable):
    """Real roots of distinct irreducible factors (so all distinct), ascending, with a
    rational approximation of each and the factor it belongs to."""
    roots = []
    for f in factors:
        for r in sympy.Poly(f, variable).real_roots():
            roots.append((sympy.Rational(str(sympy.N(r, 60))), r, f))
    roots.sort(key=lambda t: t[0])
    for (q0, _, _), (q1, _, _) in zip(roots, roots[1:], strict=False):
        if q1 - q0 < sympy.Rational(1, 10**50):
            raise ArithmeticError("roots too close to separate at 60 digits")
    return roots


def _numeric_boundary(family, poly, variable, conditions):
    factors = []
    for cond in conditions:
        for f, _ in sympy.factor_list(cond, variable)[1]:
            if f.has(variable) and f not in factors:
                factors.append(f)
    roots = _sorted_real_roots(factors, variable)
    # Conditions keep their sign between consecutive roots, so one exact rational
    # sample per gap decides the whole gap; every root makes some condition vanish.
    approx = [q for q, _, _ in roots]
    if approx:
        samples = [sympy.floor(approx[0]) - 1]
        samples += [(a + b) / 2 for a, b in zip(approx, approx[1:], strict=False)]
        samples.append(sympy.ceiling(approx[-1]) + 1)
    else:
        samples = [sympy.Integer(0)]
    ends = [-sympy.oo, *(r for _, r, _ in roots), sympy.oo]
    owners = [None, *(f for _, _, f in roots), None]
    stable = []
    for i, s in enumerate(samples):
        if all(sympy.sympify(c).subs(variable, s) > 0 for c in conditions):
            stable.append((i, ends[i], ends[i + 1]))
    # The interval reaching down to (or past) 0 from the right.
    chosen = None
    for i, lo, hi in stable:
        lo_ok = lo == -sympy.oo or (approx[i - 1] <= 0 if i > 0 else True)
        hi_ok = hi == sympy.oo or approx[i] > 0
        if lo_ok and hi_ok:
            chosen = (i, lo, hi)
            break
    if chosen is None:
        raise ValueError(
            f"{family}: not stable for small positive {variable} "
            f"(stable set: {[(lo, hi) for _, lo, hi in stable]})"
        )
    i, lo, hi = chosen
    if hi == sympy.oo:
        active, crossing, digits = sympy.Integer(0), "none", None
    else:
        owner = owners[i + 1]
        active = next(c for c in conditions if sympy.rem(c, owner, variable) == 0)
        crossing = _crossing(poly, variable, owner, exact_root=True)
        digits = str(sympy.N(hi, 30))
    return StabilityBoundary(
        family=family,
        variable=variable,
        lower=lo,
        x_star=hi,
        digits=digits,
        active_condition=active,
        crossing=crossing,
        parameter_conditions=(),
        conditions=tuple(conditions),
        stable_intervals=tuple((lo_, hi_) for _, lo_, hi_ in stable),
    )


def _symbolic_boundary(family, poly, variable, conditions, signs, back):
    lowers, uppers = [], []
    for cond in conditions:
        if not cond.has(variable):
            continue
        as_poly = sympy.Poly(cond, variable)
        if as_poly.degree() != 1:
            raise NotImplementedError(
                f"{family}: condition {cond} > 0 is not linear in {variable}; give the "
                "other parameters as numbers for an exact boundary"
            )
        slope, offset = as_poly.all_coeffs()
        s = _sign_of(slope, signs)
        if s is None or s == 0:
            raise NotImplementedError(
                f"{family}: the sign of {slope} in {cond} > 0 is not fixed by the "
                "other conditions or by the symbols' assumptions"
            )
        bound = sympy.factor(sympy.cancel(-offset / slope))
        (lowers if s > 0 else uppers).append((bound, cond))
    if not uppers:
        raise NotImplementedError(f"{family}: no upper limit on {variable} found")
    if len(uppers) > 1:
        raise NotImplementedError(
            f"{family}: several upper limits {[u for u, _ in uppers]}; give numbers"
        )
    upper, active = (e.xreplace(back) for e in uppers[0])
    lower = sympy.Max(*(lo for lo, _ in lowers)) if lowers else -sympy.oo
    digits = str(sympy.N(upper, 30)) if upper.is_number else None
    conditions = [c.xreplace(back) for c in conditions]
    return StabilityBoundary(
        family=family,
        variable=variable,
        lower=lower.xreplace(back),
        x_star=upper,
        digits=digits,
        active_condition=active,
        crossing=_crossing(poly, variable, upper, exact_root=False),
        parameter_conditions=tuple(c for c in conditions if not c.has(variable)),
        conditions=tuple(conditions),
        stable_intervals=None,
    )


def stability_boundary(family, x=None, *, variable=None, **params) -> StabilityBoundary:
    r"""The exact stable range of a block family, solved from its Jury conditions.

    The conditions of :func:`jury_conditions` on ``det(z I - M)`` are solved for
    ``variable`` (default ``x = lr h``):

    - all other parameters numbers: every condition is a polynomial in ``variable``
      with rational coefficients. Its irreducible factors are distinct, hence have no
      common root; their real roots are isolated exactly (sympy ``real_roots``), and
      since no condition changes sign between consecutive roots, one exact rational
      sample per gap decides stability there. This yields the whole stable set as
      exact open intervals, the interval starting at ``0``, its upper end ``x_star``
      (a rational, a radical or a ``CRootOf``) and the condition that vanishes there.
      Complex crossings are covered: they are zeros of the conditions too.
    - symbolic parameters: each condition involving ``variable`` must be linear in it
      with a coefficient whose sign the parameter conditions (or the symbols'
      assumptions) fix; it gives a lower or an upper limit.

    Results (derived, not typed in): heavy ball :math:`x^* = 2(1 + \beta)` with
    :math:`|\beta| < 1`; EMA :math:`x^* = 2(1 + \beta)/(1 - \beta)`; AggMo with decays
    ``b_i``: the crossing at ``z = -1``, where ``p(-1)`` is linear in ``x``, so
    :math:`x^* = 2k / \sum_i (1 - b_i)/(1 + b_i)` whenever no complex pair crosses
    first, which the exact check verifies (for ``(0.9, 0.99, 0.999)``,
    :math:`x^* = 6/(1/19 + 1/199 + 1/1999) = 15116438/146521 \approx 103.169`).

    Args:
      family: one of :data:`FAMILIES`, or a ``sympy.Poly`` in :data:`Z` (then
        ``variable`` must be given).
      x, **params: as in :func:`characteristic_polynomial`.
      variable: the symbol to solve for; default ``x`` if it is a symbol, else
        :data:`X`. E.g. ``variable=p`` with ``alpha``, ``p``, ``h`` symbols
        (``h`` declared positive) gives Theorem 1's ``-alpha < p < 2/h - alpha``.

    Returns:
      A :class:`StabilityBoundary`.

    Raises:
      ValueError: if the block is not stable for small positive ``variable``.
      NotImplementedError: symbolic parameters whose conditions are not linear in
        ``variable`` (give numbers instead).

    >>> b = stability_boundary("aggmo", betas=(0.9, 0.99, 0.999))
    >>> b.x_star, b.crossing
    (15116438/146521, 'z = -1')
    >>> b.digits
    '103.169088390060127899754983927'
    """
    if isinstance(family, sympy.Poly):
        poly, name = family, "custom"
        if variable is None:
            raise ValueError("variable: required when a polynomial is given")
    else:
        name, precondition = _family(family, params.pop("precondition", False))
        poly = characteristic_polynomial(name, x, precondition=precondition, **params)
        if variable is None:
            variable = x if isinstance(x, sympy.Symbol) else X
    if not isinstance(variable, sympy.Symbol):
        raise ValueError(f"variable: expected a sympy Symbol, got {variable!r}")
    if variable not in poly.free_symbols:
        raise ValueError(f"variable: {variable} does not appear in {poly.as_expr()}")
    # Solved in a plain real symbol: an assumption on the variable (positive, say)
    # would drop a condition such as x/2 > 0 as always true, and the stable set
    # would no longer start at 0.
    plain = sympy.Symbol(variable.name, real=True)
    if plain != variable and plain in poly.free_symbols:
        plain = sympy.Dummy(variable.name, real=True)
    poly = sympy.Poly(poly.as_expr().xreplace({variable: plain}), Z)
    conditions, signs, back = _jury(poly)
    others = set().union(*(sympy.sympify(c).free_symbols for c in conditions))
    others.discard(plain)
    if not others:
        found = _numeric_boundary(name, poly, plain, conditions)
    else:
        found = _symbolic_boundary(name, poly, plain, conditions, signs, back)
    return StabilityBoundary(*_restore(tuple(found), {plain: variable}))


def _restore(value, mapping):
    """``value`` (sympy objects, possibly in nested tuples) with ``mapping``'s
    symbols put back."""
    if isinstance(value, tuple):
        return tuple(_restore(v, mapping) for v in value)
    if isinstance(value, sympy.Basic):
        return value.xreplace(mapping)
    return value


# --------------------------------------------------------------------------------------
# Numeric: the derived coefficients in jax.numpy
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _coefficient_function(family: str, k: int) -> tuple[Callable, int]:
    """Lambdified (jax) coefficients of the derived polynomial, and their count."""
    if family == "aggmo":
        params = sympy.symbols(f"beta_1:{k + 1}", real=True)
        poly = characteristic_polynomial(family, betas=params)
    elif family in _ONE_DECAY:
        params = (BETA,)
        poly = characteristic_polynomial(family)
    else:
        params = ()
        poly = characteristic_polynomial("gd")
    coeffs = poly.all_coeffs()
    return sympy.lambdify([X, *params], coeffs, modules="jax"), len(coeffs)


def characteristic_coefficients(family: str, x, *, beta=None, betas=None) -> jax.Array:
    r"""Coefficients of the derived characteristic polynomial, evaluated in jax.numpy.

    The symbolic coefficients of :func:`characteristic_polynomial` are lambdified once
    per family (and number of decays) and evaluated with broadcasting.

    Args:
      family: one of :data:`FAMILIES` (``"nominal"``: pass the per-mode ``x``).
      x: per-mode products ``lr * h``, any shape.
      beta: decay(s) of ``"heavy_ball"``, ``"ema_momentum"``, ``"nesterov"``,
        broadcast against ``x``.
      betas: decays of ``"aggmo"``, shape ``(..., k)``, the leading axes broadcast
        against ``x``.

    Returns:
      Array of shape ``broadcast(...) + (n + 1,)``, highest degree first (the
      convention of ``numpy.roots`` and :func:`schur_stable`); float64 when x64 is on.
    """
    family, _ = _family(family, False)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    x = jnp.asarray(x, dtype=dtype)
    if family == "aggmo":
        if betas is None:
            raise ValueError("betas: the 'aggmo' family needs betas")
        betas = jnp.asarray(betas, dtype=dtype)
        if betas.ndim == 0:
            raise ValueError("betas: expected shape (..., k)")
        args = [betas[..., i] for i in range(betas.shape[-1])]
        fn, count = _coefficient_function(family, betas.shape[-1])
    elif family in _ONE_DECAY:
        if beta is None:
            raise ValueError(f"beta: the {family!r} family needs beta")
        args = [jnp.asarray(beta, dtype=dtype)]
        fn, count = _coefficient_function(family, 1)
    else:
        args = []
        fn, count = _coefficient_function(family, 0)
    shape = jnp.broadcast_shapes(x.shape, *(a.shape for a in args))
    values = fn(x, *args)
    return jnp.stack(
        [jnp.broadcast_to(jnp.asarray(v, dtype=dtype), shape) for v in values], axis=-1
    )
