"""Theorem 1 (stability.lemmas.nominal): the claim under its exact hypotheses, the
counterexamples when they are dropped, the per-direction condition and the seed
summary's wording."""

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stability.analyses import spectral_radius
from stability.lemmas import _exact, nominal, samplers, seed_wording
from stability.operators import nominal_closed_loop
from stability.problems import random_rotation


@st.composite
def instances(draw, kinds=nominal.SAMPLE_KINDS):
    """Sizes 1 to 8, condition numbers up to 1e6, H = Q diag(log-uniform) Q^T."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 8))
    kappa = 10 ** draw(st.floats(0, 6))
    kind = draw(st.sampled_from(kinds))
    boundary = draw(st.booleans())
    rng = np.random.default_rng(seed)
    return nominal.sample(rng, n=n, kappa=kappa, kind=kind, boundary=boundary)


def dense_radius(inst):
    return float(
        spectral_radius(nominal_closed_loop(inst.H, inst.P, inst.alpha).transition)
    )


@given(instances())
def test_conclusion_holds_under_the_hypotheses(inst):
    status = nominal.hypothesis_status(inst)
    assert "fails" not in status.values(), status
    if all(v == "holds" for v in status.values()):
        assert nominal.conclusion(inst), nominal.radius(inst)


@given(instances())
def test_structured_radius_matches_dense_eig(inst):
    # eig of the non-normal A agrees with the structured value to its own accuracy
    kappa = np.linalg.cond(inst.H)
    assert abs(nominal.radius(inst) - dense_radius(inst)) <= 1e-12 * kappa + 1e-10


@given(instances(kinds=("shared_basis", "commuting")))
def test_per_direction_condition_on_commuting_instances(inst):
    cond = nominal.per_direction_condition(inst.H, inst.P, inst.alpha)
    assert cond.non_strict.all()
    np.testing.assert_allclose(cond.rho, nominal.radius(inst), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cond.upper, 2 / cond.curvature - inst.alpha)


def test_sweep_of_random_instances():
    """A larger deterministic sweep than the hypothesis budget (numbers in the
    report): every instance satisfying the hypotheses has rho <= 1 + 1e-9."""
    rng = np.random.default_rng(123)
    worst, undecided = 0.0, 0
    for _ in range(1500):
        inst = nominal.sample(rng)
        status = nominal.hypothesis_status(inst)
        assert "fails" not in status.values()
        if "undecided" in status.values():
            undecided += 1  # e.g. a repeated eigenvalue of a non-symmetric block
            continue
        worst = max(worst, nominal.radius(inst))
    assert worst <= 1 + nominal.SLACK
    assert undecided < 0.1 * 1500


@pytest.mark.parametrize("seed", range(200))
def test_per_direction_condition_is_exact(seed):
    """Commuting P drawn across the bounds: stable iff every pair is strictly inside,
    and rho <= 1 iff every pair is inside or on them."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    H, h, q = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 4), repeated=True)
    alpha = rng.uniform(0, 3)
    p = rng.uniform(-alpha - 1, 2 / h - alpha + 1)
    if seed % 3 == 0:  # some pairs exactly on their bound
        p[0] = 2 / h[0] - alpha
    P = samplers.commuting_matrix(rng, h, q, p)
    cond = nominal.per_direction_condition(H, P, alpha)
    rho = dense_radius(nominal.make_instance(H=H, P=P, alpha=alpha))
    assert cond.stable == (rho < 1 - 1e-9) or abs(rho - 1) < 1e-9
    assert cond.non_strict.all() == (rho <= 1 + 1e-9)


@pytest.mark.parametrize("p0", [-0.5, 1.5])
def test_a_pair_on_its_bound_is_not_strictly_inside(p0):
    # H = diag(1, 4), alpha = 0.5: the bounds are -0.5 < p_i < 2 / h_i - 0.5
    cond = nominal.per_direction_condition(
        np.diag([1.0, 4.0]), np.diag([p0, -0.25]), 0.5
    )
    assert cond.strict.tolist() == [False, True] and cond.non_strict.all()
    assert cond.rho == 1.0 and not cond.stable


def test_per_direction_condition_needs_commuting_P():
    H = np.array([[2.0, 0.5], [0.5, 1.0]])
    with pytest.raises(ValueError, match="P: must commute with H"):
        nominal.per_direction_condition(H, np.diag([0.1, 0.2]), 0.1)


@pytest.mark.parametrize("drop", list(nominal.DROPS))
@pytest.mark.parametrize("seed", range(3))
def test_counterexample_found_and_verified(drop, seed):
    kind = nominal.DROPS[drop]
    inst = nominal.counterexample(drop, kind=kind, seed=seed)
    assert inst is not None
    hyp = nominal.hypotheses(inst)
    assert not hyp[drop] and all(v for k, v in hyp.items() if k != drop)
    rho = dense_radius(inst)  # independent of the structured radius
    b = nominal.bounds(inst)
    if kind == "sufficiency":
        assert rho > 1 + 1e-6
    else:
        assert rho < 1 - 1e-6
    if drop == "P_symmetric_or_commuting":
        lam = np.linalg.eigvals(inst.P)
        assert np.all(lam.imag == 0)
        assert np.all((lam.real > b["lower"]) & (lam.real < b["upper"]))
        assert not nominal.is_symmetric(inst.P) and not nominal.commutes(inst.H, inst.P)
        assert inst.P.shape == (2, 2)
    if drop == "upper_bound":
        # stable although a direction of P exceeds 2/L - alpha: symmetric P, and the
        # exact test 0 < S < 2 holds
        assert nominal.is_symmetric(inst.P) and b["lambda_max_P"] > b["upper"]
        r = nominal.spd_power(inst.H, 0.5)
        s = np.linalg.eigvalsh(r @ (inst.alpha * np.eye(len(r)) + inst.P) @ r)
        assert s.min() > 0 and s.max() < 2


@pytest.mark.parametrize("drop", list(nominal.DROPS))
def test_counterexample_is_deterministic(drop):
    a = nominal.counterexample(drop, seed=7)
    b = nominal.counterexample(drop, seed=7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = nominal.counterexample(drop, seed=8)
    assert not np.array_equal(a.P, c.P)


def test_counterexample_arguments():
    with pytest.raises(ValueError, match="drop"):
        nominal.counterexample("H_spd")
    with pytest.raises(ValueError, match="kind"):
        nominal.counterexample("upper_bound", kind="sufficiency")
    with pytest.raises(ValueError, match="kind"):
        nominal.counterexample("upper_bound", kind="both")
    with pytest.raises(ValueError, match="budget"):
        nominal.counterexample("upper_bound", budget=0)


def test_odd_count_below_lower_bound_is_unstable_for_any_P():
    """det(KH) < 0 when an odd number of P's real eigenvalues lie below -alpha."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        H, _, _ = samplers.random_hessian(rng, n, 100.0)
        alpha = rng.uniform(0, 1)
        p = rng.uniform(-alpha + 0.01, 1, n)
        p[0] = -alpha - rng.uniform(0.01, 1)
        v = rng.standard_normal((n, n))
        inst = nominal.make_instance(
            H=H, P=v @ np.diag(p) @ np.linalg.inv(v), alpha=alpha
        )
        eig = np.linalg.eigvals(np.eye(n) - (alpha * np.eye(n) + inst.P) @ H)
        assert np.max(eig[np.abs(eig.imag) < 1e-12].real) > 1


# ----- the summaries' readings -------------------------------------------------------


@given(instances(kinds=("symmetric", "shared_basis")))
def test_bounds_are_the_iff_over_all_curvatures(inst):
    """Bounds hold: stable for random SPD H' with lambda_max(H') <= L; a violated bound
    gives a destabilising H' (checked on the instance with P pushed out)."""
    L = float(np.linalg.eigvalsh(inst.H)[-1])
    assert nominal.destabilising_hessian(inst.P, inst.alpha, L) is None
    bumped = inst.P + (1e-3 + 2 / L) * np.eye(len(inst.P))
    H2 = nominal.destabilising_hessian(bumped, inst.alpha, L)
    assert abs(np.linalg.eigvalsh(H2)[-1] - L) <= 1e-12 * L
    assert nominal.radius(nominal.make_instance(H=H2, P=bumped, alpha=inst.alpha)) > 1


def test_literal_seed_wording_is_false():
    for seed in range(3):
        inst = seed_wording.seed_counterexample("literal", seed=seed)
        assert inst is not None
        assert seed_wording.seed_premise(inst, "literal")
        assert not seed_wording.seed_wording_holds(inst, "literal")
        assert dense_radius(inst) > 1 + 1e-6


def test_reparametrised_seed_wording_is_theorem_1():
    assert (
        seed_wording.seed_counterexample("reparametrised", seed=0, budget=500) is None
    )
    rng = np.random.default_rng(11)
    for _ in range(300):
        inst = nominal.sample(rng, kind="symmetric")
        L = float(np.linalg.eigvalsh(inst.H)[-1])
        # nominal step 1/L, i.e. the seed's alpha_s = L
        re = nominal.make_instance(
            H=inst.H, P=inst.P, alpha=seed_wording.from_seed_alpha(L)
        )
        assert seed_wording.to_seed_alpha(re.alpha) == pytest.approx(L, rel=1e-15)
        hyp = nominal.hypotheses(re)
        theorem = hyp["lower_bound"] and hyp["upper_bound"]
        assert seed_wording.seed_premise(re, "reparametrised") == theorem
        assert seed_wording.seed_wording_holds(re, "reparametrised")
        b = nominal.bounds(re)
        assert b["lower"] == pytest.approx(-1 / L) and b["upper"] == pytest.approx(
            1 / L
        )


def test_seed_bounds_imply_theorem_1_iff_alpha_s_at_least_L():
    # with nominal step 1/a_s: [-1/a_s, 1/a_s] inside [-1/a_s, 2/L - 1/a_s] iff a_s >= L
    L = 2.0
    for a_s in (1.0, 1.9, 2.0, 2.1, 5.0):
        alpha = seed_wording.from_seed_alpha(a_s)
        assert (1 / a_s <= 2 / L - alpha + 1e-15) == (a_s >= L)


def test_seed_reading_argument():
    with pytest.raises(ValueError, match="reading"):
        seed_wording.seed_counterexample("loose")
    with pytest.raises(ValueError, match="alpha_seed"):
        seed_wording.from_seed_alpha(0.0)


# ----- validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(H=[[1.0, 0.2], [0.0, 1.0]], P=np.zeros((2, 2)), alpha=0.1), "H: must"),
        (dict(H=np.eye(2), P=np.zeros((3, 3)), alpha=0.1), "P: expected shape"),
        (dict(H=np.eye(2), P=np.zeros(2), alpha=0.1), "P: expected 2"),
        (dict(H=np.eye(2), P=np.zeros((2, 2)), alpha=-0.1), "alpha: must be >="),
        (dict(H=np.eye(2), P=np.zeros((2, 2)), alpha=np.nan), "alpha: must be finite"),
        (dict(H=[[1.0, np.inf], [np.inf, 1.0]], P=np.eye(2), alpha=0.1), "H: contains"),
        (dict(H=np.eye(2), P=[[0.0, np.nan], [0.0, 0.0]], alpha=0.1), "P: contains"),
        (dict(H=-np.eye(2), P=np.zeros((2, 2)), alpha=0.1), "H: must be positive"),
    ],
)
def test_bad_inputs(fields, match):
    with pytest.raises(ValueError, match=match):
        nominal.make_instance(**fields)


def test_claim_shape():
    inst = nominal.sample(np.random.default_rng(0))
    assert nominal.NAME == "nominal"
    assert set(nominal.hypotheses(inst)) == {
        "H_spd",
        "P_real_spectrum",
        "P_symmetric_or_commuting",
        "lower_bound",
        "upper_bound",
    }
    assert set(nominal.DROPS) <= set(nominal.hypotheses(inst))
    assert set(nominal.bounds(inst)) >= {"lower", "upper"}
    with pytest.raises(ValueError, match="kind"):
        nominal.sample(np.random.default_rng(0), kind="other")


NON_SYMMETRIC = [[2.0, 0.5], [1.5, 1.0]]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nominal.closed_loop_radius(NON_SYMMETRIC, np.eye(2), 0.5), "H: must"),
        (lambda: nominal.closed_loop_radius(np.eye(2), np.eye(3), 0.5), "P: expected"),
        (lambda: nominal.closed_loop_radius(np.eye(2), np.eye(2), -0.1), "alpha: "),
        (lambda: nominal.spd_power([[2.0, 1.0], [0.0, 1.0]], 0.5), "H: must be sym"),
        (lambda: nominal.spd_power(-np.eye(2), 0.5), "H: must be positive"),
        (lambda: nominal.commutes(np.eye(2), np.eye(3)), "P: expected shape"),
        (lambda: nominal.sample(np.random.default_rng(0), kappa=0.5), "kappa: must"),
        (lambda: nominal.sample(np.random.default_rng(0), kappa=0), "kappa: must"),
        (lambda: nominal.sample(np.random.default_rng(0), kappa=np.nan), "kappa: "),
        (lambda: nominal.sample(np.random.default_rng(0), n=2.7), "n: expected an"),
        (lambda: nominal.sample(np.random.default_rng(0), n=0), "n: must be"),
        (lambda: nominal.sample(np.random.default_rng(0), boundary="no"), "boundary"),
        (
            lambda: nominal.destabilising_hessian(
                np.diag([3.0, 0.0]), 0, 1.0, floor=10
            ),
            "floor: must be <= 1.0",
        ),
        (
            lambda: nominal.destabilising_hessian(np.diag([3.0, 0.0]), 0, 1.0, floor=0),
            "floor: must be > 0",
        ),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_array_likes_are_accepted():
    H, P = [[2.0, 0.5], [0.5, 1.0]], [[0.3, 0.0], [0.0, 0.1]]
    assert nominal.is_symmetric(P) and not nominal.commutes(H, P)
    assert nominal.closed_loop_radius(H, P, 0.5) == nominal.closed_loop_radius(
        np.array(H), np.array(P), 0.5
    )


# ---------------------------------------------------------------------------------
# issue 25: no false theorem within tolerance

# the issue's instance: H's curvatures equal to 5e-10 relative, P nearly defective
# with eigenvalues 2 and 1.999999 (inside the bounds), exact radius 1.0000219
ISSUE_H = np.diag([1.0, 1.0 - 5e-10])
ISSUE_P = np.array([[2.5 - 5e-7, 1.0], [-0.25 + 2.5e-13, 1.5 - 5e-7]])


def test_issue_instance_is_not_accepted_and_fails_exactly():
    inst = nominal.make_instance(H=ISSUE_H, P=ISSUE_P, alpha=0.0)
    status = nominal.hypothesis_status(inst)
    assert status["P_symmetric_or_commuting"] == "undecided"
    assert not all(nominal.hypotheses(inst).values())
    assert not nominal.conclusion(inst)
    assert nominal.radius(inst) == pytest.approx(1.0000218658922564, abs=1e-12)
    # exactly: no root of the rational characteristic polynomial outside 1 + 2e-5,
    # one outside 1 + 1e-9
    A = np.eye(2) - ISSUE_P @ ISSUE_H
    assert not _exact.exact_radius_below(A, 1 + 1e-9)
    assert _exact.exact_radius_below(A, 1 + 2.2e-5)


def test_exact_schur_cohn_agrees_with_50_digit_eigenvalues():
    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(1, 6))
        A = rng.standard_normal((n, n)) * rng.uniform(0.1, 0.8)
        with mpmath.workdps(50):
            rho = _exact.mp_radius(_exact.mp_matrix(A))
        for r in (rho * (1 - 1e-6), rho * (1 + 1e-6)):
            assert _exact.exact_radius_below(A, r) == (rho < r)


def test_jordan_block_at_one_is_decided_exactly():
    # float eig puts the eigenvalues of a 6x6 Jordan block at 1 off by ~1e-3;
    # the exact test decides rho = 1 < 1 + 1e-9 and rho = 1 >= 1
    J = np.eye(6) + np.diag(np.ones(5), 1)
    assert _exact.float_radius(J)[1] > 1e-3
    assert _exact.exact_radius_below(J, 1 + 1e-9)
    assert not _exact.exact_radius_below(J, 1)


def test_non_symmetric_P_inside_the_bounds_gives_a_growing_jordan_block_at_rho_1():
    """At rho = 1 a non-symmetric P inside the bounds can give a Jordan block: with
    H = I, alpha = 0 and P = [[0, -1], [0, 0]] (eigenvalues 0, inside [0, 2]) the
    loop is A = [[1, 1], [0, 1]] and ||A^t|| grows linearly."""
    inst = nominal.make_instance(H=np.eye(2), P=[[0.0, -1.0], [0.0, 0.0]], alpha=0.0)
    status = nominal.hypothesis_status(inst)
    assert status["lower_bound"] == status["upper_bound"] == "holds"
    # P commutes with H = I but is defective: within rounding that is never
    # certified (nor refuted), so the structure hypothesis does not hold
    assert status["P_symmetric_or_commuting"] == "undecided"
    assert status["P_real_spectrum"] == "undecided"
    A = np.eye(2) - inst.P
    norms = [np.linalg.norm(np.linalg.matrix_power(A, t), 2) for t in (10, 100, 1000)]
    assert norms[1] / norms[0] == pytest.approx(10, rel=0.02)
    assert norms[2] / norms[1] == pytest.approx(10, rel=0.01)
    assert nominal.conclusion(inst) and nominal.radius(inst) == 1.0


@given(st.integers(0, 2**32 - 1), st.sampled_from(list(nominal.HARD_FAMILIES)))
def test_hard_families_never_accept_a_false_conclusion(seed, family):
    """Nearly repeated curvatures and nearly defective P at the bounds: whatever the
    three-valued hypotheses accept satisfies the conclusion exactly (rational
    Schur-Cohn on the float inputs)."""
    inst = nominal.HARD_FAMILIES[family](np.random.default_rng(seed))
    if all(v == "holds" for v in nominal.hypothesis_status(inst).values()):
        n = len(inst.H)
        A = np.eye(n) - (inst.alpha * np.eye(n) + inst.P) @ inst.H
        assert _exact.exact_radius_below(A, Fraction(1) + Fraction(nominal.SLACK))


def test_hard_families_sweep_counts():
    """A small version of the slow search in test_lemmas_audit.py: zero
    accepted instances fail the exact conclusion, and the nearly defective family
    is mostly undecided rather than accepted."""
    from stability import lemmas

    for family in nominal.HARD_FAMILIES:
        rng = np.random.default_rng(11)
        counts = {"held": 0, "failed": 0, "undecided": 0, "excluded": 0}
        for _ in range(150):
            counts[lemmas.classify(nominal, nominal.HARD_FAMILIES[family](rng))] += 1
        assert counts["failed"] == 0, (family, counts)
        assert counts["undecided"] > 0, (family, counts)


# ---------------------------------------------------------------------------------
# issue 25: other true statements


@given(st.integers(0, 2**32 - 1))
def test_weyl_form_is_sufficient_for_symmetric_P(seed):
    """lambda_min(H^{1/2} P H^{1/2}) >= -alpha lambda_min(H) and lambda_max(...) <=
    2 - alpha L imply rho <= 1 (drawn with margins 1e-6 and on them)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    H, h, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 4))
    alpha = rng.uniform(0, 2 / h[0])
    lo, hi = -alpha * h[-1], 2 - alpha * h[0]
    m = samplers.draw_in_interval(rng, lo, hi, n, rng.random() < 0.5)
    r = random_rotation(n, rng)
    root_inv = nominal.spd_power(H, -0.5)
    P = root_inv @ ((r * m) @ r.T) @ root_inv
    inst = nominal.make_instance(H=H, P=0.5 * (P + P.T), alpha=alpha)
    lower, upper = nominal.weyl_margins(inst.H, inst.P, inst.alpha)
    if min(lower, upper) >= -1e-12:
        assert nominal.conclusion(inst), nominal.radius(inst)


def test_naive_weyl_form_is_false():
    inst = nominal.naive_weyl_counterexample()
    r = nominal.spd_power(inst.H, 0.5)
    m = np.linalg.eigvalsh(r @ inst.P @ r)
    L = np.linalg.eigvalsh(inst.H)[-1]
    assert -inst.alpha * L <= m.min() and m.max() <= 2 - inst.alpha * L
    assert nominal.weyl_margins(inst.H, inst.P, inst.alpha)[0] < 0
    assert not nominal.conclusion(inst) and nominal.radius(inst) > 1.8


@given(st.integers(0, 2**32 - 1))
def test_contraction_norm_at_most_one_is_sufficient_for_any_P(seed):
    """||I - H^{1/2} K H^{1/2}||_2 <= 1 implies rho <= 1, for non-symmetric P: P from
    a random contraction C (norm 1 - 1e-6 or 1) via K = H^{-1/2} (I - C) H^{-1/2}."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    H, h, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3))
    C = rng.standard_normal((n, n))
    C *= (1 - 1e-6 * (rng.random() < 0.5)) / np.linalg.norm(C, 2)
    alpha = rng.uniform(0, 1 / h[0])
    root_inv = nominal.spd_power(H, -0.5)
    P = root_inv @ (np.eye(n) - C) @ root_inv - alpha * np.eye(n)
    inst = nominal.make_instance(H=H, P=P, alpha=alpha)
    if nominal.contraction_norm(inst.H, inst.P, inst.alpha) <= 1 - 1e-9:
        assert nominal.conclusion(inst), nominal.radius(inst)
    # the contraction is not necessary: a stable non-normal loop with norm > 1
    shear = nominal.make_instance(H=np.eye(2), P=[[1.0, -2.0], [0.0, 1.0]], alpha=0.0)
    assert nominal.contraction_norm(shear.H, shear.P, 0.0) == pytest.approx(2.0)
    assert nominal.radius(shear) == 0.0
