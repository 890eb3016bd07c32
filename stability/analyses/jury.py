r"""Schur-Cohn and Jury stability conditions of a polynomial, in sympy: all roots
strictly inside the unit disk iff every returned expression is positive.

:mod:`stability.analyses.symbolic` derives the per-mode characteristic polynomials and
solves these conditions for the stability boundaries; the floating-point reduction on
coefficients is :func:`stability.analyses.schur.schur_stable`.

References:
  E. I. Jury, *Theory and Application of the z-Transform Method*, Wiley, 1964.
  I. Schur, "Über Potenzreihen, die im Innern des Einheitskreises beschränkt sind",
  J. reine angew. Math. 147 (1917); A. Cohn, "Über die Anzahl der Wurzeln einer
  algebraischen Gleichung in einem Kreise", Math. Z. 14 (1922).
"""

import sympy

__all__ = ["Z", "jury_conditions", "schur_cohn_conditions"]

Z = sympy.Symbol("z")
"""The variable of the characteristic polynomials."""


def _as_poly(poly, z):
    if isinstance(poly, sympy.Poly):
        if len(poly.gens) != 1:
            raise ValueError(f"poly: expected a univariate Poly, got gens {poly.gens}")
        return poly
    expr = sympy.sympify(poly)
    return sympy.Poly(expr, Z if z is None else z)


def _coefficients(poly):
    """Coefficients, highest degree first, with denominators cleared."""
    poly = sympy.Poly(poly.as_expr(), poly.gens[0])
    if poly.degree() < 1:
        raise ValueError(f"poly: needs degree >= 1, got {poly.as_expr()}")
    coeffs = [sympy.together(c) for c in poly.all_coeffs()]
    den = sympy.lcm_list([sympy.denom(c) for c in coeffs])
    if den.is_number:
        scale = abs(den)
    else:
        scale = den**2  # positive wherever the coefficients are defined
    return [sympy.expand(sympy.cancel(c * scale)) for c in coeffs]


def _with_plain_symbols(coeffs):
    """Replace non-symbol generators (``sqrt(h)``, ...) by dummies carrying the same
    sign assumptions, since sympy factorises only over plain symbols; returns the new
    coefficients and the map back."""
    gens = set()
    for c in coeffs:
        if not c.is_number:
            gens.update(sympy.Poly(c).gens)
    forward, back = {}, {}
    for g in sorted(gens, key=sympy.default_sort_key):
        if g.is_Symbol:
            continue
        if g.is_positive:
            d = sympy.Dummy(str(g), positive=True)
        elif g.is_nonnegative:
            d = sympy.Dummy(str(g), nonnegative=True)
        elif g.is_real:
            d = sympy.Dummy(str(g), real=True)
        else:
            d = sympy.Dummy(str(g))
        forward[g], back[d] = d, g
    return [sympy.expand(c.xreplace(forward)) for c in coeffs], back


def _reduce(coeffs):
    r"""One Schur-Cohn step: ``(a p(z) - c p^*(z)) / z`` for ``p`` of leading ``a``,
    constant ``c`` and reciprocal :math:`p^*(z) = z^n p(1/z)` (real coefficients)."""
    a, c = coeffs[0], coeffs[-1]
    n = len(coeffs) - 1
    return [sympy.expand(a * coeffs[i] - c * coeffs[n - i]) for i in range(n)]


def schur_cohn_conditions(poly, z=None) -> list[sympy.Expr]:
    r"""Schur-Cohn conditions: all roots of ``poly`` strictly inside the unit disk iff
    every returned expression is ``> 0``.

    Method (Schur 1917, Cohn 1922). For a real polynomial :math:`p` of degree ``n``
    with leading coefficient ``a`` and constant ``c``, let
    :math:`p^*(z) = z^n p(1/z)` (the coefficients reversed) and
    :math:`Tp(z) = (a\,p(z) - c\,p^*(z))/z`, of degree ``n - 1`` (the ``z^0``
    coefficient :math:`ac - ca` vanishes). Then

    .. math:: p \text{ is Schur stable} \iff a^2 - c^2 > 0 \text{ and } Tp
              \text{ is Schur stable.}

    Proof: if :math:`|c| \ge |a|`, the product of the roots has modulus
    :math:`|c/a| \ge 1`, so some root is outside the open disk. If :math:`|c| < |a|`:
    on :math:`|z| = 1`, :math:`|p^*(z)| = |p(z)|`, so a zero of ``p`` on the circle is a
    zero of ``Tp``; and where ``p`` has no zero on the circle,
    :math:`|c\,p^*| < |a\,p|` there and Rouché's theorem gives ``z Tp`` as many zeros
    in the open disk as ``p``. Hence ``p`` has all ``n`` zeros inside iff ``Tp`` has all
    ``n - 1`` inside. Iterating down to degree 0 gives ``n`` conditions
    :math:`D_k = a_k^2 - c_k^2 > 0` (the recursive form of the Schur-Cohn
    determinant test). Only positive numeric factors are removed, so the expressions
    grow quickly with the degree; :func:`jury_conditions` gives the same set in a
    reduced form.

    For a monic quadratic :math:`z^2 + c_1 z + c_0` the two conditions are
    :math:`1 - c_0^2 > 0` and :math:`(1 - c_0)^2 p(1) p(-1) > 0`, i.e.
    :math:`|c_0| < 1`, :math:`p(1) > 0`, :math:`p(-1) > 0` (``p(1)``, ``p(-1)`` cannot
    both be negative when :math:`|c_0| < 1`, since their sum is :math:`2(1 + c_0)`).

    Args:
      poly: a univariate ``sympy.Poly`` with real coefficients, or an expression in
        ``z`` (default :data:`Z`); its parameters may be symbols.
      z: the variable, when ``poly`` is an expression.

    Returns:
      ``n`` sympy expressions (factored), all ``> 0`` iff ``poly`` is Schur stable.

    >>> c0, c1 = sympy.symbols("c0 c1")
    >>> schur_cohn_conditions(Z**2 + c1 * Z + c0)
    [-(c0 - 1)*(c0 + 1), (c0 - 1)**2*(c0 - c1 + 1)*(c0 + c1 + 1)]
    """
    coeffs, back = _with_plain_symbols(_coefficients(_as_poly(poly, z)))
    conditions = []
    while len(coeffs) > 1:
        conditions.append(sympy.factor(coeffs[0] ** 2 - coeffs[-1] ** 2))
        coeffs = _reduce(coeffs)
        content = sympy.gcd_list(coeffs)
        if content.is_number and content != 0:
            coeffs = [sympy.expand(ci / abs(content)) for ci in coeffs]
    return [c.xreplace(back) for c in conditions]


class _Signs:
    """Irreducible factors whose sign the conditions collected so far fix."""

    def __init__(self):
        self._known = {}

    def sign(self, factor):
        key = sympy.expand(factor)
        if key in self._known:
            return self._known[key]
        if -key in self._known:
            return -self._known[-key]
        if factor.is_positive:
            return 1
        if factor.is_negative:
            return -1
        return None

    def set(self, factor, sign):
        self._known[sympy.expand(factor)] = sign


def _sign_of(expr, signs):
    """The sign of ``expr`` given the known factor signs, or None if undecided."""
    const, factors = sympy.factor_list(expr)
    if const == 0:
        return 0
    total = 1 if const > 0 else -1
    for f, m in factors:
        s = signs.sign(f)
        if s is None:
            return None
        total *= s**m
    return total


def _jury(poly, z=None):
    """Reduced Schur-Cohn conditions and the factor signs they fix, over plain
    symbols, with the map back to the original generators."""
    coeffs, back = _with_plain_symbols(_coefficients(_as_poly(poly, z)))
    signs = _Signs()
    conditions = []
    lead = coeffs[0]
    if lead.is_number:
        coeffs = [sympy.expand(c / lead) for c in coeffs]
    else:
        # Multiplying by the leading coefficient squares it: positive iff nonzero.
        conditions.append(sympy.factor(lead**2))
        coeffs = [sympy.expand(c * lead) for c in coeffs]

    def add(expr):
        """Append ``expr > 0`` without the factors whose sign is already fixed; False
        when the condition can never hold."""
        const, factors = sympy.factor_list(expr)
        kept = []
        for f, m in factors:
            s = signs.sign(f)
            if s is None:
                kept.append((f, m))
            else:
                const *= s**m
        if not kept:
            if const > 0:
                return True
            conditions.append(sympy.sympify(const))
            return False
        if len(kept) == 1 and kept[0][1] % 2 == 1:
            signs.set(kept[0][0], 1 if const > 0 else -1)
        conditions.append(const * sympy.Mul(*(f**m for f, m in kept)))
        return True

    while len(coeffs) > 1:
        a, c = coeffs[0], coeffs[-1]
        if not (add(a - c) and add(a + c)):
            break
        coeffs = _reduce(coeffs)
        # Divide by the part of the content whose sign is fixed (made positive): roots
        # and the signs of the next conditions are unchanged.
        const, factors = sympy.factor_list(sympy.gcd_list(coeffs))
        divisor = abs(const) if const != 0 else 1
        for f, m in factors:
            s = signs.sign(f)
            if s is not None:
                divisor *= (s * f) ** m
        coeffs = [sympy.expand(sympy.cancel(ci / divisor)) for ci in coeffs]
    return conditions, signs, back


def jury_conditions(poly, z=None) -> list[sympy.Expr]:
    r"""Jury-form stability conditions: all roots of ``poly`` strictly inside the unit
    disk iff every returned expression is ``> 0``.

    The same reduction as :func:`schur_cohn_conditions`, written the way Jury's table
    is: each stage ``k`` of leading coefficient :math:`a_k > 0` and constant
    :math:`c_k` contributes the two linear conditions :math:`a_k - c_k > 0`,
    :math:`a_k + c_k > 0` (together :math:`|c_k| < a_k`, equivalent to
    :math:`a_k^2 - c_k^2 > 0`). The next leading coefficient
    :math:`a_k^2 - c_k^2` is then positive, so :math:`a_k > 0` holds at every stage by
    induction (the input is made monic first, or multiplied by its leading coefficient
    when that is symbolic, adding ``lead**2 > 0``). Irreducible factors whose sign an
    earlier condition already fixes are removed from later conditions and from the
    content of the reduced polynomial (dividing by a positive quantity moves no root);
    conditions that become positive constants are dropped. Because
    :math:`Tp(1) = (a - c)\,p(1)` and :math:`Tp(-1) = -(a - (-1)^n c)\,p(-1)`, the last
    stage's two conditions are :math:`p(1) > 0` and :math:`(-1)^n p(-1) > 0` up to
    factors of known sign, as in Jury (1964).

    For a monic quadratic :math:`z^2 + c_1 z + c_0` this gives exactly
    :math:`1 - c_0 > 0`, :math:`1 + c_0 > 0`, :math:`p(-1) > 0`, :math:`p(1) > 0`.

    Args:
      poly: a univariate ``sympy.Poly`` with real coefficients, or an expression in
        ``z`` (default :data:`Z`).
      z: the variable, when ``poly`` is an expression.

    Returns:
      sympy expressions, all ``> 0`` iff ``poly`` is Schur stable. A constant
      ``<= 0`` among them means the polynomial is never stable.

    >>> c0, c1 = sympy.symbols("c0 c1")
    >>> jury_conditions(Z**2 + c1 * Z + c0)
    [1 - c0, c0 + 1, c0 - c1 + 1, c0 + c1 + 1]
    >>> from stability.analyses.symbolic import characteristic_polynomial
    >>> jury_conditions(characteristic_polynomial("heavy_ball"))
    [1 - beta, beta + 1, 2*beta - x + 2, x]
    """
    conditions, _, back = _jury(poly, z)
    return [c.xreplace(back) for c in conditions]
