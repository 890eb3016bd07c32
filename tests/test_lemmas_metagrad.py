"""Meta-gradient growth with the horizon: boundedness iff rho < 1, rho^{2T} growth,
polynomial growth at rho = 1, Monte-Carlo variance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stability.analyses import growth
from stability.lemmas import metagrad
from stability.problems import NoisyQuadratic

# one set of horizons and seeds for every measurement, so that the jitted kernels
# compile once
HORIZONS = (16, 32, 48, 64)
SEEDS = 256


def test_claim_shape():
    inst = metagrad.sample(np.random.default_rng(0))
    assert metagrad.NAME == "metagrad"
    assert set(metagrad.DROPS) <= set(metagrad.hypotheses(inst))
    assert all(isinstance(v, float) for v in metagrad.bounds(inst).values())


def test_predicted_rate_is_two_log_rho():
    # H = 1, alpha = 0.5, P = 2: A = 1 - 2.5 = -1.5, predicted rate 2 log 1.5
    inst = metagrad.make_instance(H=[[1.0]], P=[[2.0]], alpha=0.5, horizon=8)
    b = metagrad.bounds(inst)
    assert b["rho"] == pytest.approx(1.5, rel=1e-15)
    assert b["predicted_rate"] == pytest.approx(2 * np.log(1.5), rel=1e-14)
    # stable: no growth predicted
    stable = metagrad.make_instance(H=[[1.0]], P=[[0.0]], alpha=0.5, horizon=8)
    assert metagrad.bounds(stable)["predicted_rate"] == 0.0


def test_horizon_resolves_needs_log_20_T():
    # A = 0.75 at T = 16: T |log rho| = 16 log(4/3) = 4.60, above log 20 = 3.00 but
    # below log(20 T) = log 320 = 5.77, so the horizon does not resolve rho
    inst = metagrad.make_instance(H=[[1.0]], P=[[0.0]], alpha=0.25, horizon=16)
    assert np.log(20) < 16 * np.log(4 / 3) < np.log(320)
    assert not metagrad.hypotheses(inst)["horizon_resolves"]
    # T = 32: 32 log(4/3) = 9.21 >= log 640 = 6.46
    assert metagrad.hypotheses(inst._replace(horizon=32))["horizon_resolves"]


@pytest.mark.parametrize(
    "norms, expected",
    [
        ((1.0, 0.1, 4.0), True),  # 4 <= 8 max(1, 0.1) = 8
        ((0.1, 1.0, 8.0), True),  # the factor is inclusive
        ((1.0, 0.1, 8.5), False),
        ((1.0, 0.1, np.inf), False),
    ],
)
def test_bounded_compares_with_the_larger_earlier_norm(monkeypatch, norms, expected):
    # A = 0: the transient is over at once, so the check horizons are T, 2T, 4T
    inst = metagrad.make_instance(H=[[1.0]], P=[[0.0]], alpha=1.0, horizon=4)

    def fake(instance, horizons):
        assert list(horizons) == [4, 8, 16]
        return np.array(norms)

    monkeypatch.setattr(metagrad, "gradient_norms", fake)
    assert metagrad.bounded(inst) is expected


@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 8),
    log_kappa=st.floats(0.0, 6.0),
    stable=st.booleans(),
)
def test_bounded_iff_stable(seed, n, log_kappa, stable):
    rng = np.random.default_rng(seed)
    inst = metagrad.sample(rng, n=n, kappa=10**log_kappa, stable=stable)
    assert all(metagrad.hypotheses(inst).values())
    assert (metagrad.radius(inst) < 1) == stable
    assert metagrad.conclusion(inst)
    assert metagrad.bounded(inst) == stable


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unexcited_counterexample(seed):
    inst = metagrad.counterexample("excited", seed=seed)
    assert inst is not None
    hyp = metagrad.hypotheses(inst)
    assert not hyp["excited"] and hyp["horizon_resolves"]
    assert metagrad.radius(inst) > 1
    assert metagrad.bounded(inst)
    assert not metagrad.conclusion(inst)
    # exciting the unstable direction restores the growth
    kicked = inst._replace(x0=inst.x0 + 1e-3)
    assert metagrad.hypotheses(kicked)["excited"]
    assert not metagrad.bounded(kicked)
    again = metagrad.counterexample("excited", seed=seed)
    np.testing.assert_array_equal(again.P, inst.P)


def test_forward_recursion_matches_jax_grad_through_expected_losses():
    rng = np.random.default_rng(3)
    for stable in (True, False):
        inst = metagrad.sample(rng, n=3, kappa=100.0, stable=stable)
        problem = metagrad.problem_of(inst)
        taus = [1, 5, 12]
        grads = growth.meta_gradients(problem, inst.P, inst.alpha, taus)
        ref = np.linalg.norm(grads.reshape(3, -1), axis=1)
        np.testing.assert_allclose(
            metagrad.gradient_norms(inst, taus), ref, rtol=1e-9, atol=1e-14
        )
        # and jax.grad of the scalar meta-loss at one horizon
        g = jax.grad(growth.meta_loss)(jnp.asarray(inst.P), problem, inst.alpha, 12)
        np.testing.assert_allclose(np.asarray(g), grads[-1], rtol=1e-9, atol=1e-14)


def test_meta_loss_is_a_polynomial_of_degree_2T_minus_2():
    # L_T has degree 2(T - 1) in p (E l_t has degree 2t, t < T), so dL/dp has degree
    # 2T - 3: the (2T - 1)-th finite difference vanishes, the (2T - 2)-th does not
    problem = NoisyQuadratic.from_eigenvalues([0.7], noise_var=0.3, x0=[1.5])
    T = 4
    ps = 0.1 * np.arange(2 * T)
    vals = np.array(
        [float(growth.meta_loss(jnp.array([[p]]), problem, 0.2, T)) for p in ps]
    )
    assert abs(np.diff(vals, 2 * T - 1)[0]) < 1e-10 * np.max(np.abs(vals))
    assert abs(np.diff(vals[:-1], 2 * T - 2)[0]) > 1e-6


@pytest.fixture(scope="module")
def rates():
    return growth.rate_vs_rho([0.6, 1.1, 1.2, 1.3], HORIZONS, num_seeds=SEEDS)


def test_growth_rate_is_two_log_rho(rates):
    unstable = rates.rhos > 1
    np.testing.assert_allclose(
        rates.rates[unstable], 2 * np.log(rates.rhos[unstable]), rtol=0.03
    )
    np.testing.assert_allclose(rates.predicted, 2 * np.log(np.maximum(rates.rhos, 1)))
    # slope of the fitted rate against 2 log rho
    slope = np.polyfit(rates.predicted[unstable], rates.rates[unstable], 1)[0]
    assert slope == pytest.approx(1.0, rel=0.03)
    # the Monte-Carlo variance grows twice as fast: rho^{4T}
    np.testing.assert_allclose(
        rates.variance_rates[unstable], 4 * np.log(rates.rhos[unstable]), rtol=0.1
    )


def test_stable_meta_gradient_converges(rates):
    assert abs(rates.rates[0]) < 0.01
    problem, P = growth.one_mode(0.6)
    rec = growth.gradient_growth(problem, P, 0.5, HORIZONS, num_seeds=SEEDS)
    assert rec.rho == pytest.approx(0.6)
    assert rec.grad_norms[-1] == pytest.approx(rec.grad_norms[-2], rel=0.05)
    # the variance of the sampled meta-gradient shrinks (averaging over more steps)
    assert rec.mc_variances[-1] < rec.mc_variances[0]


@pytest.mark.parametrize("eigenvalue, degree", [(1.0, 1.0), (-1.0, 2.0)])
def test_polynomial_growth_at_rho_one(eigenvalue, degree):
    problem, P = growth.one_mode(eigenvalue)
    rec = growth.gradient_growth(problem, P, 0.5, HORIZONS, num_seeds=SEEDS)
    assert rec.rho == pytest.approx(1.0)
    assert rec.degree == pytest.approx(degree, abs=0.1)
    assert abs(rec.rate) < 0.05


def test_sampled_meta_gradients_are_unbiased():
    problem, P = growth.one_mode(-1.1)
    rec = growth.gradient_growth(problem, P, 0.5, HORIZONS, num_seeds=SEEDS)
    err = np.abs(rec.mc_grad_norms - rec.grad_norms)
    assert np.all(err <= 5 * np.sqrt(rec.mc_variances / SEEDS))
    assert np.all(np.diff(rec.mc_variances) > 0)


def test_bad_inputs_raise():
    H = np.eye(2)
    with pytest.raises(ValueError, match="H"):
        metagrad.make_instance(H=-H, P=H, alpha=0.1, horizon=8)
    with pytest.raises(ValueError, match="P"):
        metagrad.make_instance(H=H, P=np.eye(3), alpha=0.1, horizon=8)
    with pytest.raises(ValueError, match="alpha"):
        metagrad.make_instance(H=H, P=H, alpha=-0.1, horizon=8)
    with pytest.raises(ValueError, match="horizon"):
        metagrad.make_instance(H=H, P=H, alpha=0.1, horizon=0)
    with pytest.raises(ValueError, match="noise_cov"):
        metagrad.make_instance(H=H, P=H, alpha=0.1, horizon=8, noise_cov=-1.0)
    inst = metagrad.make_instance(H=H, P=H, alpha=0.1, horizon=8)
    with pytest.raises(ValueError, match="horizons"):
        metagrad.gradient_norms(inst, [0, 3])
    problem = metagrad.problem_of(inst)
    with pytest.raises(ValueError, match="num_seeds"):
        growth.sampled_meta_gradients(problem, H, 0.1, [4], num_seeds=1)
    with pytest.raises(ValueError, match="sign"):
        growth.rate_vs_rho([1.1], [4, 8], sign=2)
    with pytest.raises(ValueError, match="drop"):
        metagrad.counterexample("stable")
    with pytest.raises(ValueError, match="kind"):
        metagrad.counterexample("excited", kind="sufficiency")


INST = metagrad.make_instance(H=np.eye(2), P=0.1 * np.eye(2), alpha=0.1, horizon=8)
PROBLEM = metagrad.problem_of(INST)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metagrad.gradient_norms(INST, [2.5]), "horizons"),
        (lambda: metagrad.gradient_norms(INST, [np.nan]), "horizons"),
        (lambda: growth.meta_loss(jnp.array([0.1, 0.2]), PROBLEM, 0.3, 3), "P: "),
        (lambda: growth.meta_loss(jnp.zeros((2, 2)), PROBLEM, -1.0, 3), "alpha"),
        (lambda: growth.meta_gradients(PROBLEM, INST.P, -0.5, [2]), "alpha"),
        (lambda: growth.meta_gradients(PROBLEM, np.eye(3), 0.1, [2]), "P: "),
        (
            lambda: growth.sampled_meta_gradients(PROBLEM, INST.P, -0.5, [2]),
            "alpha",
        ),
        (lambda: growth.one_mode(np.nan), "eigenvalue: must be finite"),
        (lambda: growth.one_mode(0.5, alpha=-1.0), "alpha"),
        (lambda: growth.fit_growth([1, 2, 3, 4], [1.0, 2.0]), "values: expected"),
        (lambda: metagrad.sample(np.random.default_rng(0), kappa=0.5), "kappa: "),
        (lambda: metagrad.sample(np.random.default_rng(0), n=2.7), "n: expected"),
        (lambda: metagrad.sample(np.random.default_rng(0), n=0), "n: must be"),
        (lambda: metagrad.sample(np.random.default_rng(0), stable="no"), "stable"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------
# issue 25: the transient of a non-normal loop, and Jordan blocks at rho = 1


def test_issue_non_normal_stable_loop_is_bounded():
    """n = 8, H = I, alpha = 0, A = 0.5 I + 10 N, x0 ones, no noise, T = 8: rho = 1/2
    but the gradient norm grows through T, 2T, 4T (1.8e13, 5.1e21, 2.0e24) before it
    converges; the check horizon follows the transient, and the conclusion holds."""
    A = 0.5 * np.eye(8) + 10 * np.eye(8, k=1)
    inst = metagrad.make_instance(
        H=np.eye(8), P=np.eye(8) - A, alpha=0.0, horizon=8, noise_cov=0.0
    )
    assert all(v == "holds" for v in metagrad.hypothesis_status(inst).values())
    g = metagrad.gradient_norms(inst, [8, 16, 32])
    assert g[2] > metagrad.GROWTH_FACTOR * max(g[0], g[1])  # what T alone saw
    assert metagrad.settling_horizon(inst) == 128
    assert metagrad.stable(inst) and metagrad.bounded(inst)
    assert metagrad.conclusion(inst)


def test_rounding_dominated_loop_is_undecided_not_unbounded():
    """A stable loop whose float64 powers diverge (its rounding-level
    pseudospectrum leaves the unit disc): the float recursion cannot show
    convergence, so ``horizon_resolves`` is undecided rather than the conclusion
    failing."""
    n = 8
    A = 0.9 * np.eye(n) + 10 * np.eye(n, k=1)
    u, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))
    A = u @ A @ u.T
    inst = metagrad.make_instance(
        H=np.eye(n), P=np.eye(n) - A, alpha=0.0, horizon=256, noise_cov=0.0
    )
    assert metagrad.stable(inst)
    assert metagrad.hypothesis_status(inst)["horizon_resolves"] == "undecided"
    assert not metagrad.hypotheses(inst)["horizon_resolves"]


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_non_normal_family_never_contradicts_the_theorem(seed):
    """Strongly non-normal loops (stable, transients up to ~1e9, and unstable):
    whenever every hypothesis holds, bounded == (rho < 1) with rho < 1 decided
    exactly."""
    inst = metagrad.sample_non_normal(np.random.default_rng(seed))
    status = metagrad.hypothesis_status(inst)
    if all(v == "holds" for v in status.values()):
        assert metagrad.conclusion(inst)


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("eigenvalue", [1.0, -1.0])
def test_jordan_block_growth_degree_is_3m_minus_2(m, eigenvalue):
    """At rho = 1 a Jordan block of size m (noise-free, x0 exciting the chain) makes
    ||dL_T/dP|| grow like T^{3m-2}: 1, 4, 7."""
    A = eigenvalue * np.eye(m) + np.eye(m, k=1)
    inst = metagrad.make_instance(
        H=np.eye(m), P=np.eye(m) - A, alpha=0.0, horizon=8, noise_cov=0.0
    )
    taus = np.array([512, 1024, 2048])
    _, degree = growth.fit_growth(taus, metagrad.gradient_norms(inst, taus))
    assert degree == pytest.approx(metagrad.jordan_growth_degree(m), abs=0.03)
