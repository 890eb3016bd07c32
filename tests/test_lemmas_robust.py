"""Lemma 3 (stability.lemmas.robust): robust stability over the multiplicative
uncertainty box, its counterexamples, and the fragility of cancellation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stability.analyses import spectral_radius
from stability.lemmas import nominal, robust, samplers
from stability.operators import nominal_closed_loop
from stability.problems import random_rotation


@st.composite
def instances(draw, kinds=robust.SAMPLE_KINDS, boundary=None):
    """Sizes 1 to 8, condition numbers up to 1e6, H = Q diag(log-uniform) Q^T."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 8))
    kappa = 10 ** draw(st.floats(0, 6))
    kind = draw(st.sampled_from(kinds))
    boundary = draw(st.booleans()) if boundary is None else boundary
    rng = np.random.default_rng(seed)
    return robust.sample(rng, n=n, kappa=kappa, kind=kind, boundary=boundary)


def loop_radius(inst, d):
    """rho(I - (alpha I + diag(d) P~) H), independently of the search code."""
    P = np.diag(d) @ inst.P_tilde
    return float(spectral_radius(nominal_closed_loop(inst.H, P, inst.alpha).transition))


@given(instances())
def test_conclusion_holds_under_the_hypotheses(inst):
    hyp = robust.hypotheses(inst)
    assert all(hyp.values()), hyp
    assert robust.conclusion(inst), robust.radius(inst)
    assert robust.exact_verdict(inst) is True


@given(instances(boundary=False))
def test_bounds_are_theorem_1_divided_by_d_max(inst):
    b = robust.bounds(inst)
    L = float(np.linalg.eigvalsh(inst.H)[-1])
    assert b["lower"] == pytest.approx(-inst.alpha / inst.d_max)
    assert b["upper"] == pytest.approx((2 / L - inst.alpha) / inst.d_max)
    # at the vertex Delta = d_max I the instance is a Theorem-1 instance
    corner = nominal.make_instance(
        H=inst.H, P=inst.d_max * inst.P_tilde, alpha=inst.alpha
    )
    assert all(nominal.hypotheses(corner).values())


@pytest.mark.parametrize("seed", range(100))
def test_per_pair_condition_is_exact(seed):
    """Commuting symmetric P~ drawn across the per-pair bounds, alpha across 2/L: the
    per-pair condition decides robust stability as the worst-case search finds it."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    H, h, q = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3))
    alpha = 2 * rng.uniform(0, 1.2)
    d_max = 10 ** rng.uniform(-1, 1)
    p = rng.uniform(-alpha - 0.5, 2 / h - alpha + 0.5) / d_max
    P = (q * p) @ q.T
    inst = robust.make_instance(H=H, P_tilde=0.5 * (P + P.T), alpha=alpha, d_max=d_max)
    pair = robust.per_pair_condition(inst.H, inst.P_tilde, alpha, d_max)
    assert pair.robust == (robust.worst_case(inst).rho <= 1 + nominal.SLACK)


@pytest.mark.parametrize("seed", range(100))
def test_diagonal_H_verdict_is_decided_at_d_max(seed):
    """H diagonal, P~ symmetric, alpha <= 2/L: robust iff stable at Delta = d_max I,
    although the largest rho over the box is often elsewhere."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    h = samplers.random_curvatures(rng, n, 10 ** rng.uniform(0, 3))
    alpha = rng.uniform(0, 2)
    r = random_rotation(n, rng)
    P = (r * rng.uniform(-1.5 * alpha, 2 / h.min() - alpha, n)) @ r.T
    inst = robust.make_instance(
        H=np.diag(h), P_tilde=0.5 * (P + P.T), alpha=alpha, d_max=1.0
    )
    assert robust.exact_verdict(inst) == (
        robust.worst_case(inst).rho <= 1 + nominal.SLACK
    )


def test_largest_rho_is_not_always_at_d_max():
    rng = np.random.default_rng(1)
    elsewhere = 0
    for _ in range(40):
        inst = robust.sample(rng, kind="diagonal", boundary=False, n=3)
        at_corner = loop_radius(inst, np.full(3, inst.d_max))
        elsewhere += robust.worst_case(inst).rho > at_corner + 1e-9
    assert elsewhere > 0


def test_sweep_of_random_instances():
    rng = np.random.default_rng(99)
    worst = 0.0
    for _ in range(150):
        inst = robust.sample(rng)
        assert all(robust.hypotheses(inst).values())
        worst = max(worst, robust.radius(inst))
    assert worst <= 1 + nominal.SLACK


@pytest.mark.parametrize("drop", list(robust.DROPS))
@pytest.mark.parametrize("seed", range(2))
def test_counterexample_found_and_verified(drop, seed):
    kind = robust.DROPS[drop]
    inst = robust.counterexample(drop, seed=seed)
    assert inst is not None
    hyp = robust.hypotheses(inst)
    assert not hyp[drop] and all(v for k, v in hyp.items() if k != drop)
    if kind == "sufficiency":
        # a witness inside the open box 0 < d_i <= d_max
        d = np.maximum(robust.worst_case(inst).delta, 1e-7 * inst.d_max)
        assert loop_radius(inst, d) > 1 + 1e-6
    else:
        # robust although lambda_max(P~) > (2/L - alpha)/d_max: certified per pair
        b = robust.bounds(inst)
        assert b["lambda_max_P_tilde"] > b["upper"]
        pair = robust.per_pair_condition(inst.H, inst.P_tilde, inst.alpha, inst.d_max)
        assert pair.robust
    if drop == "nominal_stable":
        assert inst.alpha > robust.bounds(inst)["alpha_max"]
    if drop == "commuting":
        assert nominal.is_symmetric(inst.P_tilde) and not robust.is_diagonal(inst.H)


def test_commuting_counterexample_with_psd_P_tilde():
    """Even a symmetric PSD P~ fails when it does not commute with a non-diagonal H."""
    for seed in range(20):
        inst = robust.counterexample("commuting", seed=seed)
        if np.linalg.eigvalsh(inst.P_tilde)[0] >= -1e-12:
            return
    pytest.fail("no PSD instance among the first 20 seeds")


def test_counterexample_is_deterministic():
    a = robust.counterexample("commuting", seed=3)
    b = robust.counterexample("commuting", seed=3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# ----- cancellation fragility --------------------------------------------------------


def _hessian_and_step(rng):
    n = int(rng.integers(1, 9))
    top = 10 ** rng.uniform(-2, 2)
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 6), top)
    return H, top


@given(st.integers(0, 2**32 - 1), st.floats(0.01, 10), st.floats(-3, 3))
def test_fragility_of_cancelling_the_inverse(seed, aL, eps):
    rng = np.random.default_rng(seed)
    H, L = _hessian_and_step(rng)
    alpha = aL / L
    P_star = nominal.spd_power(H, -1.0)
    h = np.linalg.eigvalsh(H)
    expected = abs(eps) * np.max(np.abs(1 - alpha * h))
    assert robust.fragility(H, P_star, alpha, eps) == pytest.approx(
        expected, rel=1e-6, abs=1e-9
    )
    # the tolerated relative error: >= 1 while alpha L <= 2, 1/(alpha L - 1) beyond
    tol = robust.inverse_tolerated_error(H, alpha)
    assert robust.tolerated_error(H, P_star, alpha) == pytest.approx(tol, rel=1e-6)
    if aL <= 2:
        assert tol >= 1
    else:
        assert tol == pytest.approx(1 / (aL - 1), rel=1e-9)


@pytest.mark.parametrize("aL", [0.5, 1.0, 2.0, 3.0, 10.0, 100.0])
def test_tolerated_error_by_scanning_rho(aL):
    """The tolerated error, found by scanning the spectral radius of the dense loop."""
    rng = np.random.default_rng(int(aL * 10))
    H, L = _hessian_and_step(rng)
    alpha = aL / L
    P_star = nominal.spd_power(H, -1.0)
    eps = np.linspace(-3, 3, 6001)
    n = len(H)
    A = (
        np.eye(n)
        - alpha * eps[:, None, None] * H
        - (1 - eps[:, None, None]) * (P_star @ H)
    )
    stable = np.asarray(spectral_radius(A)) < 1
    tol = robust.inverse_tolerated_error(H, alpha)
    inside = np.abs(eps) < tol - 1e-3
    outside = np.abs(eps) > tol + 1e-3
    assert stable[inside].all() and not stable[outside].any()


@pytest.mark.parametrize("seed", range(10))
def test_error_interval_for_symmetric_and_nonsymmetric_P_star(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    H, h, q = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 2))
    alpha = rng.uniform(0, 4)
    m = random_rotation(n, rng)
    S = (m * rng.uniform(0.1, 1.9, n)) @ m.T  # 0 < S* < 2: stable at eps = 0
    r = nominal.spd_power(H, -0.5)
    P_sym = r @ S @ r
    lo, hi = robust.error_interval(H, 0.5 * (P_sym + P_sym.T), alpha)
    grid = np.linspace(max(lo, -50) * 1.2, min(hi, 50) * 1.2, 4001)
    rho = robust.fragility(H, 0.5 * (P_sym + P_sym.T), alpha, grid)
    stable = rho < 1
    assert stable[(grid > lo + 1e-6) & (grid < hi - 1e-6)].all()
    assert not stable[(grid < lo - 1e-6) | (grid > hi + 1e-6)].any()
    # the scanning path (non-symmetric P*) agrees with the pencil on a symmetric one
    # made non-symmetric by a similarity that commutes with nothing relevant
    P_ns = P_sym + 1e-3 * rng.standard_normal((n, n))
    lo2, hi2 = robust.error_interval(H, P_ns, alpha)
    grid2 = np.linspace(max(lo2, -50) * 1.2, min(hi2, 50) * 1.2, 4001)
    stable2 = np.asarray(robust.fragility(H, P_ns, alpha, grid2)) < 1
    inner = (grid2 > lo2 + 1e-6) & (grid2 < hi2 - 1e-6)
    assert stable2[inner].all()


@pytest.mark.parametrize("seed", range(20))
def test_margin_sensitivity_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3))
    alpha = rng.uniform(0, 3)
    m = random_rotation(n, rng)
    S = (m * rng.uniform(-0.5, 2.5, n)) @ m.T
    r = nominal.spd_power(H, -0.5)
    P_star = r @ S @ r
    P_star = 0.5 * (P_star + P_star.T)
    sens = robust.margin_sensitivity(H, P_star, alpha)
    e = 1e-6
    rho0 = robust.fragility(H, P_star, alpha, 0.0)
    assert sens.rho == pytest.approx(rho0, rel=1e-12)
    fd_plus = (robust.fragility(H, P_star, alpha, e) - rho0) / e
    fd_minus = (robust.fragility(H, P_star, alpha, -e) - rho0) / e
    assert sens.undershoot == pytest.approx(fd_plus, rel=1e-4, abs=1e-4)
    assert sens.overshoot == pytest.approx(fd_minus, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("seed", range(20))
def test_margin_lost_at_the_upper_edge(seed):
    """rho(eps) = 1 - eps (2 - alpha u^T H u) + O(eps^2) at the upper edge: undershoot
    stabilises iff alpha u^T H u < 2, and overshoot then destabilises."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3))
    alpha = rng.uniform(0, 4)
    m = random_rotation(n, rng)
    s = rng.uniform(0.1, 1.8, n)
    s[0] = 2.0  # simple eigenvalue at the upper edge
    r = nominal.spd_power(H, -0.5)
    P_star = r @ ((m * s) @ m.T) @ r
    P_star = 0.5 * (P_star + P_star.T)
    u = m[:, 0]
    rate = 2 - alpha * u @ H @ u
    sens = robust.margin_sensitivity(H, P_star, alpha)
    assert sens.rho == pytest.approx(1.0, rel=1e-9)
    assert sens.undershoot == pytest.approx(-rate, rel=1e-6, abs=1e-9)
    assert sens.overshoot == pytest.approx(rate, rel=1e-6, abs=1e-9)
    e = 1e-5
    fd = (robust.fragility(H, P_star, alpha, e) - 1) / e
    assert fd == pytest.approx(-rate, rel=1e-3, abs=1e-3)
    if rate > 1e-3:  # undershoot stabilises, overshoot destabilises
        assert robust.fragility(H, P_star, alpha, e) < 1
        assert robust.fragility(H, P_star, alpha, -e) > 1


# ----- validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(H=[[1.0, 0.3], [0.0, 1.0]], P_tilde=np.eye(2), alpha=0.1, d_max=1), "H"),
        (dict(H=np.eye(2), P_tilde=np.eye(3), alpha=0.1, d_max=1), "P_tilde"),
        (
            dict(H=np.eye(2), P_tilde=np.eye(2), alpha=0.1, d_max=0.0),
            "d_max: must be >",
        ),
        (dict(H=np.eye(2), P_tilde=np.eye(2), alpha=0.1, d_max=-1), "d_max: must be >"),
        (dict(H=np.eye(2), P_tilde=np.eye(2), alpha=0.1, d_max=np.nan), "d_max"),
        (dict(H=np.eye(2), P_tilde=np.eye(2), alpha=np.inf, d_max=1), "alpha"),
        (dict(H=np.eye(2), P_tilde=[[np.nan, 0], [0, 1]], alpha=0.1, d_max=1), "P_"),
    ],
)
def test_bad_inputs(fields, match):
    with pytest.raises(ValueError, match=match):
        robust.make_instance(**fields)


def test_bad_fragility_inputs():
    H = np.diag([1.0, 2.0])
    with pytest.raises(ValueError, match="P_star"):
        robust.fragility(H, np.eye(3), 0.1, 0.1)
    with pytest.raises(ValueError, match="eps"):
        robust.fragility(H, np.eye(2), 0.1, np.nan)
    with pytest.raises(ValueError, match="P_star: must be symmetric"):
        robust.margin_sensitivity(H, np.array([[1.0, 1.0], [0.0, 1.0]]), 0.1)
    with pytest.raises(ValueError, match="P_tilde: must be symmetric"):
        robust.per_pair_condition(H, np.array([[1.0, 1.0], [0.0, 1.0]]), 0.1, 1.0)
    with pytest.raises(ValueError, match="H"):
        robust.inverse_tolerated_error([[1.0, 2.0], [0.0, 1.0]], 0.1)


def test_claim_shape():
    inst = robust.sample(np.random.default_rng(0))
    assert robust.NAME == "robust"
    assert set(robust.hypotheses(inst)) == {
        "H_spd",
        "nominal_stable",
        "P_symmetric",
        "commuting",
        "lower_bound",
        "upper_bound",
    }
    assert set(robust.DROPS) <= set(robust.hypotheses(inst))


H2, P2 = np.diag([1.0, 4.0]), np.array([[0.2, 0.1], [0.0, 0.2]])  # non-symmetric P*


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: robust.tolerated_error(H2, P2, 0.5, num_grid=0), "num_grid: must"),
        (lambda: robust.tolerated_error(H2, P2, 0.5, num_grid=2.5), "num_grid: exp"),
        (lambda: robust.tolerated_error(H2, P2, 0.5, eps_max=1e-9), "eps_max: must"),
        (lambda: robust.tolerated_error(H2, P2, 0.5, eps_max=np.nan), "eps_max: mu"),
        (lambda: robust.tolerated_error(H2, P2, 0.5, eps_max=-1), "eps_max: must"),
        (lambda: robust.margin_sensitivity(H2, np.eye(2), 0.5, rtol=np.nan), "rtol"),
        (lambda: robust.margin_sensitivity(H2, np.eye(2), 0.5, rtol=-1), "rtol"),
        (lambda: robust.sample(np.random.default_rng(0), kappa=0.5), "kappa: must"),
        (lambda: robust.sample(np.random.default_rng(0), kappa=np.nan), "kappa: "),
        (lambda: robust.sample(np.random.default_rng(0), n=2.7), "n: expected an"),
        (lambda: robust.sample(np.random.default_rng(0), n=0), "n: must be"),
        (lambda: robust.sample(np.random.default_rng(0), boundary="no"), "boundary"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
