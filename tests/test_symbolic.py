"""Tests for stability.analyses.symbolic: derived blocks and polynomials, Schur-Cohn and
Jury conditions, exact boundaries against numerical bisection, and the jitted test."""

import subprocess
import sys
from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from stability.analyses import schur
from stability.analyses import symbolic as S

X, Z, BETA = S.X, S.Z, S.BETA
AGGMO_DEFAULT = (0.9, 0.99, 0.999)


# ----------------------------------------------------------------------------- helpers


def hand_block(family, x, beta=None, betas=None):
    """The blocks as written in the issue, typed independently of the module."""
    if family == "gd":
        return np.array([[1.0 - x]])
    if family == "heavy_ball":
        return np.array([[1 - x, -beta], [x, beta]])
    if family == "ema_momentum":
        return np.array([[1 - (1 - beta) * x, -beta], [(1 - beta) * x, beta]])
    b = np.asarray(betas, dtype=float)
    k = b.size
    m = np.zeros((k + 1, k + 1))
    m[0, 0] = 1 - x * np.mean(1 - b)
    m[0, 1:] = -b / k
    m[1:, 0] = (1 - b) * x
    m[1:, 1:] = np.diag(b)
    return m


def hand_coefficients(family, x, beta=None, betas=None):
    """Char. polynomial coefficients (highest first) from the issue's closed forms."""
    if family == "heavy_ball":
        return np.array([1.0, -(1 + beta - x), beta])
    if family == "ema_momentum":
        return np.array([1.0, -(1 + beta - (1 - beta) * x), beta])
    b = list(betas)
    k = len(b)
    p = np.polymul([1.0, -1.0], np.poly(b))
    s = np.zeros(k)
    for i in range(k):
        s = np.polyadd(s, (1 - b[i]) * np.poly(b[:i] + b[i + 1 :]))
    return np.polyadd(p, np.polymul([x / k, 0.0], s))


def max_root_mp(coeffs):
    """max |root| of float coefficients taken exactly, at 60 digits."""
    with mpmath.workdps(60):
        roots = mpmath.polyroots(
            [mpmath.mpf(float(c)) for c in coeffs], maxsteps=800, extraprec=1200
        )
        return float(max(abs(r) for r in roots))


def exactly_stable(coeffs):
    """Exact Schur-Cohn reduction in rational arithmetic on float coefficients."""
    c = [Fraction(float(v)) for v in coeffs]
    while len(c) > 1:
        a, k = c[0], c[-1]
        if not abs(k) < abs(a):
            return False
        n = len(c) - 1
        c = [a * c[i] - k * c[n - i] for i in range(n)]
    return True


def numeric_boundary(coeff_fn, grid):
    """First loss of stability on ``grid`` (max |np.roots| >= 1), then bisection."""
    stable = np.array([np.max(np.abs(np.roots(coeff_fn(x)))) < 1 for x in grid])
    assert stable[0], "grid must start inside the stable region"
    i = int(np.argmin(stable))
    assert not stable[i], "no loss of stability on the grid"
    lo, hi = grid[i - 1], grid[i]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if np.max(np.abs(np.roots(coeff_fn(mid)))) < 1:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def symbolic_ok(conditions, values):
    """All conditions > 0 at an exact point."""
    return all(sympy.sympify(c).subs(values) > 0 for c in conditions)


# ------------------------------------------------------------ blocks and polynomials

CASES = [
    ("gd", {}),
    ("heavy_ball", {"beta": 0.7}),
    ("heavy_ball", {"beta": -0.4}),
    ("ema_momentum", {"beta": 0.9}),
    ("aggmo", {"betas": (0.5,)}),
    ("aggmo", {"betas": (0.3, 0.95)}),
    ("aggmo", {"betas": AGGMO_DEFAULT}),
    ("aggmo", {"betas": (0.0, 0.6, 0.9, 0.999)}),
]


@pytest.mark.parametrize(("family", "params"), CASES)
def test_block_matches_update_equations(family, params):
    for x in (0.3, 1.7, 42.0):
        m = np.array(S.block_matrix(family, x, **params).evalf(), dtype=float)
        np.testing.assert_allclose(m, hand_block(family, x, **params), atol=1e-15)


@pytest.mark.parametrize(("family", "params"), CASES)
def test_char_poly_is_det_zI_minus_M(family, params):
    poly = S.characteristic_polynomial(family, **params)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = float(rng.uniform(0.01, 50.0))
        z0 = complex(rng.normal(), rng.normal())
        m = hand_block(family, x, **params)
        det = np.linalg.det(z0 * np.eye(len(m)) - m)
        value = complex(poly.as_expr().subs({X: x, Z: z0}).evalf(30))
        assert abs(value - det) <= 1e-11 * max(1.0, abs(det))


def test_char_polys_equal_closed_forms():
    hb = S.characteristic_polynomial("heavy_ball").as_expr()
    assert sympy.expand(hb - (Z**2 - (1 + BETA - X) * Z + BETA)) == 0
    ema = S.characteristic_polynomial("ema_momentum").as_expr()
    assert sympy.expand(ema - (Z**2 - (1 + BETA - (1 - BETA) * X) * Z + BETA)) == 0
    gd = S.characteristic_polynomial("gd").as_expr()
    assert sympy.expand(gd - (Z - (1 - X))) == 0
    for k in (1, 2, 3, 4):
        b = sympy.symbols(f"beta_1:{k + 1}", real=True)
        derived = S.characteristic_polynomial("aggmo", betas=k).as_expr()
        prod = lambda items: sympy.Mul(*items)
        closed = (Z - 1) * prod(Z - bj for bj in b) + (X * Z / k) * sympy.Add(
            *((1 - b[i]) * prod(Z - b[j] for j in range(k) if j != i) for i in range(k))
        )
        assert sympy.expand(derived - closed) == 0


def test_ema_is_aggmo_with_one_decay():
    ema = S.characteristic_polynomial("ema_momentum", beta=0.8).as_expr()
    aggmo = S.characteristic_polynomial("aggmo", betas=(0.8,)).as_expr()
    assert sympy.expand(ema - aggmo) == 0


def test_block_in_unscaled_coordinates_is_similar():
    # Unscaled state (phi, m_1..m_k) with lr and h: M = D J D^-1, D = diag(1, lr, ...).
    lr, h, b = 0.3, 5.0, np.array(AGGMO_DEFAULT)
    k = b.size
    j = np.zeros((k + 1, k + 1))
    j[1:, 0] = (1 - b) * h
    j[1:, 1:] = np.diag(b)
    j[0] = -lr * j[1:].mean(axis=0)
    j[0, 0] += 1.0
    d = np.diag([1.0] + [lr] * k)
    m = np.array(S.block_matrix("aggmo", lr * h, betas=b).evalf(), dtype=float)
    np.testing.assert_allclose(d @ j @ np.linalg.inv(d), m, atol=1e-13)


def test_nominal_and_preconditioned_products():
    a, p, h = sympy.symbols("alpha p h", positive=True)
    nom = S.characteristic_polynomial("nominal", alpha=a, p=p, h=h).as_expr()
    pre = S.characteristic_polynomial(
        "nominal", alpha=a, p=p, h=h, precondition=True
    ).as_expr()
    assert sympy.expand(nom - (Z - 1 + (a + p) * h)) == 0
    assert sympy.expand(pre - (Z - 1 + (a + p) * sympy.sqrt(h))) == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="family"):
        S.block_matrix("adam")
    with pytest.raises(ValueError, match="betas"):
        S.block_matrix("aggmo")
    with pytest.raises(ValueError, match="beta"):
        S.block_matrix("gd", beta=0.5)
    with pytest.raises(ValueError, match="alpha"):
        S.block_matrix("heavy_ball", alpha=1, p=0, h=1)
    with pytest.raises(ValueError, match="finite"):
        S.block_matrix("gd", float("nan"))


def test_bad_arguments_are_not_silently_ignored():
    # a count of zero decays is no AggMo block (it would divide by k = 0)
    with pytest.raises(ValueError, match="betas"):
        S.block_matrix("aggmo", betas=0)
    with pytest.raises(ValueError, match="betas"):
        S.block_matrix("aggmo", betas=())
    # x and (alpha, p, h) both given: neither may win silently
    with pytest.raises(ValueError, match="alpha"):
        S.block_matrix("nominal", 0.5, alpha=1, p=0, h=1)
    with pytest.raises(ValueError, match="alpha"):
        S.characteristic_polynomial("nominal", X, alpha=1, p=0, h=4, precondition=True)


# ---------------------------------------------------------------- Schur-Cohn and Jury


def test_degree_two_reduces_to_triangle():
    c0, c1 = sympy.symbols("c0 c1", real=True)
    quad = Z**2 + c1 * Z + c0
    p1, pm1 = quad.subs(Z, 1), quad.subs(Z, -1)
    d1, d2 = S.schur_cohn_conditions(quad)
    assert sympy.expand(d1 - (1 - c0**2)) == 0
    assert sympy.expand(d2 - (1 - c0) ** 2 * p1 * pm1) == 0
    jury = S.jury_conditions(quad)
    assert {sympy.expand(c) for c in jury} == {
        sympy.expand(e) for e in (1 - c0, 1 + c0, p1, pm1)
    }


def test_heavy_ball_conditions():
    conds = S.jury_conditions(S.characteristic_polynomial("heavy_ball"))
    expected = (1 - BETA, 1 + BETA, X, 2 * (1 + BETA) - X)
    assert {sympy.expand(c) for c in conds} == {sympy.expand(e) for e in expected}


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_conditions_agree_with_roots(degree):
    cs = sympy.symbols(f"c0:{degree}", real=True)
    poly = Z**degree + sympy.Add(*(c * Z**i for i, c in enumerate(cs)))
    raw = S.schur_cohn_conditions(poly)
    jury = S.jury_conditions(poly)
    assert len(raw) == degree
    rng = np.random.default_rng(degree)
    seen = set()
    for _ in range(25):
        roots = rng.uniform(0.2, 1.3, degree // 2) * np.exp(
            1j * rng.uniform(0, np.pi, degree // 2)
        )
        real = rng.uniform(-1.3, 1.3, degree % 2)
        coeffs = np.real(np.poly(np.concatenate([roots, roots.conj(), real])))
        values = {
            c: sympy.Rational(float(coeffs[degree - i])) for i, c in enumerate(cs)
        }
        margin = max_root_mp(coeffs) - 1
        if abs(margin) < 1e-9:
            continue
        truth = margin < 0
        seen.add(truth)
        assert symbolic_ok(raw, values) == truth
        assert symbolic_ok(jury, values) == truth
    assert seen == {True, False}


def test_conditions_with_symbolic_leading_coefficient():
    a = sympy.Symbol("a", real=True)
    conds = S.jury_conditions(a * Z - sympy.Rational(1, 2))
    for value, stable in ((1, True), (-1, True), (sympy.Rational(1, 3), False)):
        assert symbolic_ok(conds, {a: value}) == stable


@pytest.mark.parametrize(
    "poly",
    [Z - 1, Z + 1, Z**2 + 1, Z**2 - 1, Z**2 - Z + 1, 2 * Z**3 - Z**2 + Z - 2],
)
def test_roots_on_the_circle_are_never_stable(poly):
    # every one has a root with |z| = 1 exactly (z = 1, -1, +-i, exp(+-i pi/3), and
    # 2z^3 - z^2 + z - 2 = (z - 1)(2z^2 + z + 2)), so no condition set may be empty
    # or all positive: a constant <= 0 must say "never stable"
    assert np.isclose(np.max(np.abs(np.roots(sympy.Poly(poly, Z).all_coeffs()))), 1)
    for conds in (S.jury_conditions(poly), S.schur_cohn_conditions(poly)):
        assert conds and not symbolic_ok(conds, {})


def test_jury_conditions_with_a_parameter_squared():
    # p = z^2 + x z + x^2 - 1: the first stage gives x^2 > 0, which fixes no sign of
    # x; by the roots p is stable iff 1 < |x| < sqrt(2) (negative x included)
    conds = S.jury_conditions(Z**2 + X * Z + X**2 - 1)
    seen = set()
    for k in range(-14, 15):
        x = sympy.Rational(k, 10)
        if k in (-10, 0, 10):
            continue  # a root on the circle
        truth = np.max(np.abs(np.roots([1.0, float(x), float(x) ** 2 - 1]))) < 1
        seen.add((truth, k < 0))
        assert symbolic_ok(conds, {X: x}) == truth, x
    assert seen == {(True, True), (True, False), (False, True), (False, False)}


# -------------------------------------------------------------------------- boundaries


def test_heavy_ball_boundary_is_derived():
    b = S.stability_boundary("heavy_ball")
    assert sympy.simplify(b.x_star - 2 * (1 + BETA)) == 0
    assert b.lower == 0
    assert b.crossing == "z = -1"
    assert b.digits is None
    assert {sympy.expand(c) for c in b.parameter_conditions} == {1 - BETA, 1 + BETA}


def test_ema_boundary_is_derived():
    b = S.stability_boundary("ema_momentum")
    assert sympy.simplify(b.x_star - 2 * (1 + BETA) / (1 - BETA)) == 0
    assert b.lower == 0
    assert b.crossing == "z = -1"
    assert {sympy.expand(c) for c in b.parameter_conditions} == {1 - BETA, 1 + BETA}


def test_gd_and_theorem_one_ranges():
    assert S.stability_boundary("gd").x_star == 2
    a, p = sympy.symbols("alpha p", real=True)
    h = sympy.Symbol("h", positive=True)
    nom = S.stability_boundary("nominal", alpha=a, p=p, h=h, variable=p)
    assert sympy.simplify(nom.lower + a) == 0
    assert sympy.simplify(nom.x_star - (2 / h - a)) == 0
    pre = S.stability_boundary(
        "nominal", alpha=a, p=p, h=h, precondition=True, variable=p
    )
    assert sympy.simplify(pre.lower + a) == 0
    assert sympy.simplify(pre.x_star - (2 / sympy.sqrt(h) - a)) == 0


def test_heavy_ball_solved_for_beta_takes_the_larger_lower_limit():
    # conditions 1 + beta > 0 and 2(1 + beta) - x > 0 both bound beta below; with
    # x > 0 the second, (x - 2)/2 > -1, is the binding one; 1 - beta > 0 bounds above
    x = sympy.Symbol("x", positive=True)
    b = S.stability_boundary("heavy_ball", x, beta=BETA, variable=BETA)
    assert sympy.simplify(b.lower - (x - 2) / 2) == 0
    assert b.x_star == 1


def test_aggmo_boundary_thirty_digits():
    b = S.stability_boundary("aggmo", betas=AGGMO_DEFAULT)
    # p(-1) is linear in x: x* = 2k / sum (1 - b_i) / (1 + b_i), here 6/(1/19 + ...).
    expected = 6 / (
        sympy.Rational(1, 19) + sympy.Rational(1, 199) + sympy.Rational(1, 1999)
    )
    assert b.x_star == expected == sympy.Rational(15116438, 146521)
    assert b.digits == "103.169088390060127899754983927"
    assert b.digits == str(sympy.N(b.x_star, 30))
    assert b.crossing == "z = -1"
    # The whole stable set is (0, x*): no complex pair crosses before, none re-enters.
    assert b.stable_intervals == ((0, b.x_star),)
    poly = S.characteristic_polynomial("aggmo", betas=AGGMO_DEFAULT).as_expr()
    assert poly.subs({Z: -1, X: b.x_star}) == 0
    # The conditions hold on (0, x*) and fail just past it, at exact points.
    conds = b.conditions
    for t in (
        sympy.Rational(1, 10**6),
        1,
        50,
        103,
        b.x_star - sympy.Rational(1, 10**12),
    ):
        assert symbolic_ok(conds, {X: t})
    assert not symbolic_ok(conds, {X: b.x_star + sympy.Rational(1, 10**12)})
    assert not symbolic_ok(conds, {X: b.x_star})
    # The parameter block alone would say 2 / mean(1 - b_i).
    assert b.x_star > 2 / np.mean(1 - np.array(AGGMO_DEFAULT))


def test_boundary_of_a_complex_crossing():
    # c0 = x^3 + x leaves the disk through a complex pair; the boundary is a CRootOf.
    poly = sympy.Poly(Z**2 - Z / 2 + X**3 + X, Z)
    b = S.stability_boundary(poly, variable=X)
    assert b.crossing == "complex pair on |z| = 1"
    with mpmath.workdps(50):
        root = mpmath.findroot(lambda t: t**3 + t - 1, 0.7)
        assert b.digits == mpmath.nstr(root, 30)
    assert float(b.lower) < 0 < float(b.x_star)


def test_boundary_errors():
    with pytest.raises(ValueError, match="not stable"):
        S.stability_boundary("heavy_ball", beta=1.5)
    with pytest.raises(NotImplementedError):
        S.stability_boundary("aggmo", betas=2)
    with pytest.raises(ValueError, match="variable"):
        S.stability_boundary(sympy.Poly(Z**2 + X, Z))


def test_boundary_chooses_the_interval_right_of_zero():
    # z = 1 - x^2 is stable iff 0 < x^2 < 2: two intervals meeting at the double
    # root x = 0; the boundary is the one starting at 0, not the one ending there
    b = S.stability_boundary(sympy.Poly(Z - 1 + X**2, Z), variable=X)
    assert b.lower == 0 and b.x_star == sympy.sqrt(2)
    assert b.stable_intervals == ((-sympy.sqrt(2), 0), (0, sympy.sqrt(2)))
    assert b.crossing == "z = -1"


def test_boundary_with_a_negative_symbol_squared_in_the_slope():
    # z = 1 - a^2 x with a < 0: stable iff 0 < a^2 x < 2, so x* = 2 / a^2; the slope
    # -a^2 of the upper condition is negative although a is
    a = sympy.Symbol("a", negative=True)
    b = S.stability_boundary(sympy.Poly(Z - 1 + a**2 * X, Z), variable=X)
    assert b.lower == 0
    assert sympy.simplify(b.x_star - 2 / a**2) == 0


def test_boundary_in_a_symbol_given_as_x():
    # the variable defaults to x itself when x is a symbol (here a plain real t)
    t = sympy.Symbol("t", real=True)
    hb = S.stability_boundary("heavy_ball", t, beta=0.5)
    assert hb.variable == t and hb.lower == 0 and hb.x_star == 3  # 2 (1 + beta)
    gd = S.stability_boundary("gd", t)
    assert gd.variable == t and gd.lower == 0 and gd.x_star == 2


def test_boundary_ignores_assumptions_on_the_variable():
    # a positive t makes t/2 > 0 true by assumption; the stable set must still be
    # reported from 0, in the caller's own symbol
    t = sympy.Symbol("t", positive=True)
    hb = S.stability_boundary("heavy_ball", t, beta=0.5)
    assert hb.variable is t and hb.lower == 0 and hb.x_star == 3
    assert hb.stable_intervals == ((0, 3),)
    assert hb.active_condition.free_symbols == {t}
    a = sympy.Symbol("a", positive=True)  # the symbolic path, in a positive p
    pos = sympy.Symbol("p", positive=True)
    nom = S.stability_boundary("nominal", alpha=a, p=pos, h=1, variable=pos)
    assert nom.variable is pos and nom.lower == -a  # Theorem 1: -alpha < p
    assert sympy.simplify(nom.x_star - (2 - a)) == 0


@pytest.mark.parametrize("beta", [-0.5, 0.0, 0.5, 0.9, 0.99])
def test_heavy_ball_numeric_bisection(beta):
    exact = S.stability_boundary("heavy_ball", beta=beta).x_star
    assert exact == 2 * (1 + sympy.Rational(repr(beta)))
    grid = np.linspace(1e-2, 10.0, 400)
    num = numeric_boundary(lambda x: hand_coefficients("heavy_ball", x, beta), grid)
    assert abs(num - float(exact)) < 1e-9


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_ema_numeric_bisection(beta):
    exact = S.stability_boundary("ema_momentum", beta=beta).x_star
    grid = np.linspace(1e-2, 50.0, 500)
    num = numeric_boundary(lambda x: hand_coefficients("ema_momentum", x, beta), grid)
    assert abs(num - float(exact)) < 1e-9


@pytest.mark.parametrize(
    "betas",
    [
        AGGMO_DEFAULT,
        (0.5, 0.8, 0.95),
        (0.0, 0.5, 0.9),
        (0.9, 0.99),
        (0.0, 0.9, 0.99, 0.999),
    ],
)
def test_aggmo_numeric_bisection(betas):
    b = S.stability_boundary("aggmo", betas=betas)
    grid = np.geomspace(1e-2, 1e3, 600)
    num = numeric_boundary(lambda x: hand_coefficients("aggmo", x, betas=betas), grid)
    assert abs(num - float(b.x_star)) < 1e-9


# ------------------------------------------------------------------ numeric Schur test


def test_coefficients_match_symbolic():
    xs = np.array([0.01, 1.0, 103.0])
    c = S.characteristic_coefficients("aggmo", xs, betas=np.array(AGGMO_DEFAULT))
    assert c.shape == (3, 5) and c.dtype == jnp.float64
    for x, row in zip(xs, np.asarray(c), strict=True):
        np.testing.assert_allclose(
            row,
            hand_coefficients("aggmo", x, betas=AGGMO_DEFAULT),
            rtol=1e-12,
            atol=1e-12,
        )
    hb = S.characteristic_coefficients(
        "heavy_ball", xs[:, None], beta=np.array([0.0, 0.9])
    )
    assert hb.shape == (3, 2, 3)
    np.testing.assert_allclose(hb[2, 1], hand_coefficients("heavy_ball", 103.0, 0.9))
    gd = S.characteristic_coefficients("gd", xs)
    np.testing.assert_allclose(gd, np.stack([np.ones(3), xs - 1], axis=-1))


def test_coefficients_with_batched_decays():
    # betas of shape (..., k): one set of decays per x, the last axis the decays
    xs = np.array([0.5, 2.0, 10.0, 40.0])
    betas = np.array(
        [[0.9, 0.99, 0.999], [0.5, 0.8, 0.95], [0.0, 0.5, 0.9], [0.3, 0.6, 0.7]]
    )
    c = np.asarray(S.characteristic_coefficients("aggmo", xs, betas=betas))
    assert c.shape == (4, 5)  # degree k + 1 = 4
    for x, b, row in zip(xs, betas, c, strict=True):
        np.testing.assert_allclose(
            row, hand_coefficients("aggmo", x, betas=tuple(b)), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 5, 6, 8])
def test_schur_stable_against_roots(degree):
    rng = np.random.default_rng(degree)
    coeffs = rng.normal(size=(600, degree + 1))
    # Half of them built from roots, so that both outcomes are common.
    for i in range(300):
        r = rng.uniform(0.0, 1.2, degree) * np.exp(1j * rng.uniform(0, np.pi, degree))
        pairs = np.concatenate([r[: degree // 2], r[: degree // 2].conj()])
        roots = np.concatenate([pairs, np.real(r[degree // 2 :])[: degree % 2]])
        coeffs[i] = np.real(np.poly(roots)) * rng.uniform(0.1, 10)
    max_root = np.array([np.max(np.abs(np.roots(c))) for c in coeffs])
    clear = np.abs(max_root - 1) > 1e-6
    got = np.asarray(S.schur_stable(coeffs))
    assert got.shape == (600,)
    assert np.array_equal(got[clear], max_root[clear] < 1)
    assert 0.05 < np.mean(got) < 0.95


def test_schur_stable_batches_dtypes_and_edge_cases():
    c = np.array([[[1.0, -0.5], [1.0, 2.0]], [[2.0, -1.0], [1.0, -0.9]]])
    np.testing.assert_array_equal(S.schur_stable(c), [[True, False], [True, True]])
    assert S.schur_stable(c).shape == (2, 2)
    assert not bool(S.schur_stable(np.array([0.0, 0.5])))  # zero leading coefficient
    assert not bool(S.schur_stable(np.array([1.0, np.nan])))
    assert bool(S.schur_stable(np.array([2, 1])))  # integers are cast
    assert bool(S.schur_stable(np.array([3.0])))  # a nonzero constant has no roots
    assert not bool(S.schur_stable(np.array([1.0, -1.0])))  # root on the circle
    z = np.array([1.0, -(0.5 + 0.6j)])  # complex coefficients
    assert bool(S.schur_stable(z)) and not bool(S.schur_stable(np.array([1.0, 1j])))
    f32 = S.schur_stable(np.array([1.0, -1.5, 0.56], dtype=np.float32))
    assert bool(f32)
    with pytest.raises(ValueError):
        S.schur_stable(1.0)


@pytest.mark.parametrize("degree", [2, 3, 4])
def test_schur_stable_complex_against_roots(degree):
    rng = np.random.default_rng(10 + degree)
    coeffs = np.empty((400, degree + 1), complex)
    for i in range(400):
        roots = rng.uniform(0.0, 1.3, degree) * np.exp(1j * rng.uniform(0, 6.3, degree))
        coeffs[i] = np.poly(roots) * complex(*rng.normal(size=2))
    max_root = np.array([np.max(np.abs(np.roots(c))) for c in coeffs])
    clear = np.abs(max_root - 1) > 1e-6
    got = np.asarray(S.schur_stable(coeffs))
    assert np.array_equal(got[clear], max_root[clear] < 1)
    assert 0.05 < np.mean(got) < 0.95


def test_schur_stable_jits_and_vmaps():
    def stable(x):
        return S.schur_stable(S.characteristic_coefficients("heavy_ball", x, beta=0.5))

    xs = jnp.array([-0.1, 0.1, 2.9, 3.1])
    np.testing.assert_array_equal(jax.jit(stable)(xs), [0, 1, 1, 0])
    np.testing.assert_array_equal(jax.vmap(stable)(xs), [0, 1, 1, 0])


def test_schur_stable_small_x_root_clusters():
    # A plain float64 reduction calls AggMo unstable here; double-double does not.
    xs = np.geomspace(1e-8, 1e-2, 50)
    c = np.asarray(
        S.characteristic_coefficients("aggmo", xs, betas=np.array(AGGMO_DEFAULT))
    )
    truth = np.array([exactly_stable(row) for row in c])
    assert truth.all()
    np.testing.assert_array_equal(np.asarray(S.schur_stable(c)), truth)


def test_two_prod_is_error_free_on_this_backend():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 2000)) * 10.0 ** rng.integers(-30, 30, size=(2, 2000))
    factor = jnp.float64(2.0**27 + 1)
    p, e = jax.jit(schur._two_prod)(a, b, factor)
    for ai, bi, pi, ei in zip(a, b, np.asarray(p), np.asarray(e), strict=True):
        assert Fraction(float(pi)) + Fraction(float(ei)) == Fraction(ai) * Fraction(bi)


def test_aggmo_region_from_schur_matches_boundary():
    b = S.stability_boundary("aggmo", betas=AGGMO_DEFAULT)
    xs = np.linspace(0.5, 150.0, 3000)
    c = S.characteristic_coefficients("aggmo", xs, betas=np.array(AGGMO_DEFAULT))
    np.testing.assert_array_equal(np.asarray(S.schur_stable(c)), xs < float(b.x_star))


decay = st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)


@given(
    family=st.sampled_from(["heavy_ball", "ema_momentum", "aggmo"]),
    log_x=st.floats(-6.0, 4.0),
    betas=st.lists(decay, min_size=1, max_size=4),
)
def test_schur_stable_property(family, log_x, betas):
    x = 10.0**log_x
    if family == "aggmo":
        coeffs = S.characteristic_coefficients("aggmo", x, betas=np.array(betas))
    else:
        coeffs = S.characteristic_coefficients(family, x, beta=betas[0])
    coeffs = np.asarray(coeffs)
    margin = max_root_mp(coeffs) - 1
    if abs(margin) <= 1e-6:
        return
    assert bool(S.schur_stable(coeffs)) == (margin < 0)


def test_import_does_not_enable_x64():
    code = (
        "import jax, stability.analyses.symbolic; assert not jax.config.jax_enable_x64"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------- family names and old spellings


def test_symbolic_families_are_the_registry():
    from stability import optimizers

    assert tuple(S.FAMILIES) == tuple(optimizers.FAMILIES)
    for family in S.FAMILIES:
        params = {"betas": (0.5, 0.9)} if family == "aggmo" else {}
        if family in ("heavy_ball", "ema_momentum", "nesterov"):
            params = {"beta": 0.6}
        m = np.array(S.block_matrix(family, 0.7, **params).evalf(), dtype=float)
        ref = optimizers.modes.block(family, 0.7, **params)[0]
        np.testing.assert_allclose(m, np.asarray(ref), atol=1e-15)


def test_nesterov_boundary_is_derived():
    b = S.stability_boundary("nesterov", beta=sympy.Rational(1, 2))
    assert b.x_star == sympy.Rational(3, 2)  # 2 (1 + b) / (1 + 2 b)
    assert b.crossing == "z = -1"
    xs = np.array([0.5, 1.4, 1.6])
    stable = S.schur_stable(S.characteristic_coefficients("nesterov", xs, beta=0.5))
    assert stable.tolist() == [True, True, False]


def test_precondition_only_for_nominal():
    with pytest.raises(ValueError, match="precondition"):
        S.block_matrix("heavy_ball", precondition=True)


@pytest.mark.parametrize(
    ("old", "new", "kw"),
    [
        ("ema", "ema_momentum", {}),
        ("preconditioned", "nominal", {"precondition": True}),
    ],
)
def test_old_family_spellings_warn_and_agree(old, new, kw):
    a, p = sympy.symbols("alpha p", real=True)
    h = sympy.Symbol("h", positive=True)
    args = {"alpha": a, "p": p, "h": h, "variable": p} if new == "nominal" else {}
    poly_args = {k: v for k, v in args.items() if k != "variable"}
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated"):
        got = S.stability_boundary(old, **args)
    assert got == S.stability_boundary(new, **args, **kw)
    with pytest.warns(DeprecationWarning, match=new):
        m = S.block_matrix(old, **poly_args)
    assert m == S.block_matrix(new, **poly_args, **kw)
    with pytest.warns(DeprecationWarning):
        poly = S.characteristic_polynomial(old, **poly_args)
    assert poly == S.characteristic_polynomial(new, **poly_args, **kw)
    beta = {"beta": 0.5} if new == "ema_momentum" else {}
    xs = np.array([0.5, 3.5])
    with pytest.warns(DeprecationWarning):
        c = S.characteristic_coefficients(old, xs, **beta)
    np.testing.assert_array_equal(c, S.characteristic_coefficients(new, xs, **beta))
