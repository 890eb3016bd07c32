"""Lemma 2 (stability.lemmas.preconditioning): Theorem 1 on H^{1/2}, the lower bound
it still needs, and input versus output preconditioning."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stability.analyses import spectral_radius
from stability.lemmas import nominal, samplers
from stability.lemmas import preconditioning as pre
from stability.operators import nominal_closed_loop


@st.composite
def instances(draw, kinds=nominal.SAMPLE_KINDS):
    """Sizes 1 to 8, condition numbers up to 1e6, H = Q diag(log-uniform) Q^T."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 8))
    kappa = 10 ** draw(st.floats(0, 6))
    kind = draw(st.sampled_from(kinds))
    boundary = draw(st.booleans())
    rng = np.random.default_rng(seed)
    return pre.sample(rng, n=n, kappa=kappa, kind=kind, boundary=boundary)


def preconditioned_radius(inst):
    """rho(I - H^{-1/2} K H) straight from the definition."""
    loop = nominal_closed_loop(
        inst.H, inst.P, inst.alpha, preconditioner=pre.ideal_preconditioner(inst.H)
    )
    return float(spectral_radius(loop.transition))


@given(instances())
def test_conclusion_holds_under_the_hypotheses(inst):
    status = pre.hypothesis_status(inst)
    assert "fails" not in status.values(), status
    assert np.linalg.cond(inst.H) <= 1.0000001e6
    if all(v == "holds" for v in status.values()):
        assert pre.conclusion(inst), pre.radius(inst)


@given(instances())
def test_radius_is_the_preconditioned_loop(inst):
    kappa = np.linalg.cond(inst.H)
    assert abs(pre.radius(inst) - preconditioned_radius(inst)) <= 1e-12 * kappa + 1e-10


@given(instances(kinds=("shared_basis", "commuting")))
def test_per_direction_condition(inst):
    cond = pre.per_direction_condition(inst.H, inst.P, inst.alpha)
    assert cond.non_strict.all()
    np.testing.assert_allclose(cond.upper, 2 / np.sqrt(cond.curvature) - inst.alpha)
    np.testing.assert_allclose(np.sort(cond.curvature), np.linalg.eigvalsh(inst.H))


def test_sweep_of_random_instances():
    rng = np.random.default_rng(321)
    worst, undecided = 0.0, 0
    for _ in range(500):
        inst = pre.sample(rng)
        status = pre.hypothesis_status(inst)
        assert "fails" not in status.values()
        if "undecided" in status.values():
            undecided += 1
            continue
        worst = max(worst, pre.radius(inst))
    assert worst <= 1 + nominal.SLACK
    assert undecided < 0.1 * 500


@given(st.floats(-4, 4), st.floats(0, 3))
def test_upper_bound_is_looser_only_when_L_above_1(log_L, alpha):
    L = 10**log_L
    inst = pre.make_instance(H=np.diag([L, L / 3]), P=np.zeros((2, 2)), alpha=alpha)
    b = pre.bounds(inst)
    assert b["upper"] == pytest.approx(2 / np.sqrt(L) - alpha)
    assert b["upper_theorem1"] == pytest.approx(2 / L - alpha)
    assert pre.looser_than_theorem1(L) == (L > 1) == (b["upper"] > b["upper_theorem1"])


@pytest.mark.parametrize("drop", list(pre.DROPS))
@pytest.mark.parametrize("seed", range(3))
def test_counterexample_found_and_verified(drop, seed):
    kind = pre.DROPS[drop]
    inst = pre.counterexample(drop, seed=seed)
    assert inst is not None
    hyp = pre.hypotheses(inst)
    assert not hyp[drop] and all(v for k, v in hyp.items() if k != drop)
    rho = preconditioned_radius(inst)
    assert rho > 1 + 1e-6 if kind == "sufficiency" else rho < 1 - 1e-6
    if drop == "lower_bound":  # the preconditioner does not rescue a negative K
        assert pre.bounds(inst)["lambda_min_P"] < -inst.alpha


def test_counterexample_is_deterministic():
    a = pre.counterexample("P_symmetric_or_commuting", seed=4)
    b = pre.counterexample("P_symmetric_or_commuting", seed=4)
    np.testing.assert_array_equal(a.P, b.P)
    np.testing.assert_array_equal(a.H, b.H)


# ----- input versus output -----------------------------------------------------------


def _random_case(rng, symmetric_P):
    n = int(rng.integers(1, 6))
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 4))
    P = rng.standard_normal((n, n))
    if symmetric_P:
        P = P + P.T
    return H, P, float(rng.uniform(0, 2))


def _same_spectrum(cmp):
    scale = max(1.0, float(np.max(np.abs(cmp.eig_output))))
    # match every eigenvalue of one spectrum with one of the other
    e_in = list(cmp.eig_input)
    for z in cmp.eig_output:
        j = int(np.argmin(np.abs(np.array(e_in) - z)))
        assert abs(e_in.pop(j) - z) <= 1e-6 * scale
    return True


@pytest.mark.parametrize("seed", range(30))
def test_exact_preconditioner_gives_identical_spectra(seed):
    rng = np.random.default_rng(seed)
    H, P, alpha = _random_case(rng, symmetric_P=False)
    cmp = pre.input_vs_output(H, P, alpha, pre.ideal_preconditioner(H))
    assert _same_spectrum(cmp)
    assert abs(cmp.rho_output - cmp.rho_input) <= 1e-6 * max(1, cmp.rho_output)


@pytest.mark.parametrize("seed", range(30))
def test_commuting_preconditioner_gives_identical_spectra(seed):
    rng = np.random.default_rng(seed)
    H, P, alpha = _random_case(rng, symmetric_P=False)
    w, q = np.linalg.eigh(H)
    C = (q * rng.uniform(0.1, 2, w.size)) @ q.T  # any function of H commutes with it
    assert _same_spectrum(pre.input_vs_output(H, P, alpha, C))


@pytest.mark.parametrize("seed", range(30))
def test_symmetric_preconditioner_and_P_give_identical_spectra(seed):
    rng = np.random.default_rng(seed)
    H, P, alpha = _random_case(rng, symmetric_P=True)
    C = pre.diagonal_preconditioner(H)
    assert _same_spectrum(pre.input_vs_output(H, P, alpha, C))


@pytest.mark.parametrize("seed", range(30))
def test_input_with_C_is_output_with_C_transpose_for_symmetric_K(seed):
    """Which side the error sits: input with E H^{-1/2} == output with H^{-1/2} E^T."""
    rng = np.random.default_rng(seed)
    H, P, alpha = _random_case(rng, symmetric_P=True)
    n = len(H)
    C = (np.eye(n) + 0.3 * rng.standard_normal((n, n))) @ pre.ideal_preconditioner(H)
    a = pre.input_vs_output(H, P, alpha, C)
    b = pre.input_vs_output(H, P, alpha, C.T)
    scale = max(1.0, float(np.max(np.abs(a.eig_input))))
    np.testing.assert_allclose(a.rho_input, b.rho_output, rtol=1e-8, atol=1e-9 * scale)


@pytest.mark.parametrize("preconditioner", pre.PRECONDITIONERS)
@pytest.mark.parametrize("winner", pre.WINNERS)
def test_either_side_can_win_with_an_approximate_preconditioner(winner, preconditioner):
    found = pre.comparison_search(winner, preconditioner=preconditioner, seed=0)
    assert found is not None
    cmp = pre.input_vs_output(*found)
    assert cmp.winner == winner
    good, bad = (
        (cmp.rho_output, cmp.rho_input)
        if winner == "output"
        else (cmp.rho_input, cmp.rho_output)
    )
    assert good < 1 < bad
    if preconditioner == "diagonal":
        np.testing.assert_array_equal(found.C, np.diag(np.diag(found.C)))
        assert not nominal.is_symmetric(found.P)
    again = pre.comparison_search(winner, preconditioner=preconditioner, seed=0)
    np.testing.assert_array_equal(again.C, found.C)


def test_comparison_arguments():
    with pytest.raises(ValueError, match="winner"):
        pre.comparison_search("both")
    with pytest.raises(ValueError, match="preconditioner"):
        pre.comparison_search("input", preconditioner="adam")
    with pytest.raises(ValueError, match="C: expected shape"):
        pre.input_vs_output(np.eye(2), np.zeros((2, 2)), 0.1, np.eye(3))
    with pytest.raises(ValueError, match="H: must be symmetric"):
        pre.input_vs_output([[1.0, 0.1], [0.0, 1.0]], np.zeros((2, 2)), 0.1, np.eye(2))


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(H=[[1.0, 0.2], [0.0, 1.0]], P=np.zeros((2, 2)), alpha=0.1), "H: must"),
        (dict(H=np.eye(2), P=np.zeros((2, 3)), alpha=0.1), "P: "),
        (dict(H=np.eye(2), P=np.zeros((2, 2)), alpha=np.inf), "alpha"),
        (dict(H=[[np.nan, 0], [0, 1.0]], P=np.zeros((2, 2)), alpha=0.1), "H: contains"),
    ],
)
def test_bad_inputs(fields, match):
    with pytest.raises(ValueError, match=match):
        pre.make_instance(**fields)


def test_claim_shape():
    inst = pre.sample(np.random.default_rng(0))
    assert pre.NAME == "preconditioning"
    assert set(pre.DROPS) <= set(pre.hypotheses(inst))
    assert {"lower", "upper", "upper_theorem1"} <= set(pre.bounds(inst))


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(kappa=0.5), "kappa: must be >= 1"),
        (dict(kappa=0.0), "kappa: must be >= 1"),
        (dict(kappa=np.nan), "kappa: must be finite"),
        (dict(n=2.7), "n: expected an integer"),
        (dict(n=0), "n: must be an integer >= 1"),
    ],
)
def test_bad_sample_arguments(options, match):
    with pytest.raises(ValueError, match=match):
        pre.sample(np.random.default_rng(0), **options)


# issue 25: the nearly defective family breaks a tolerance-based Lemma 2 too
ISSUE_P = np.array([[2.5 - 5e-7, 1.0], [-0.25 + 2.5e-13, 1.5 - 5e-7]])


def test_issue_family_instance_is_not_accepted_and_fails_at_50_digits():
    # H^{1/2} = diag(1, 1 - 5e-10): the nominal counterexample on the square root
    inst = pre.make_instance(H=np.diag([1.0, (1 - 5e-10) ** 2]), P=ISSUE_P, alpha=0.0)
    assert pre.hypothesis_status(inst)["P_symmetric_or_commuting"] == "undecided"
    assert not all(pre.hypotheses(inst).values())
    assert pre.conclusion_status(inst) == "fails"
    assert pre.radius(inst) == pytest.approx(1.0000218658922, abs=1e-9)


@given(st.integers(0, 2**32 - 1), st.sampled_from(list(pre.HARD_FAMILIES)))
def test_hard_families_never_accept_a_false_conclusion(seed, family):
    """Whatever the hypotheses accept satisfies the 50-digit conclusion (the root
    and the loop's eigenvalues at 50 digits, with their error bar)."""
    inst = pre.HARD_FAMILIES[family](np.random.default_rng(seed))
    if all(v == "holds" for v in pre.hypothesis_status(inst).values()):
        assert pre.exact_status(inst) == "holds"
