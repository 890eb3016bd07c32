"""Adaptive nominal terms: products of time-varying loops, the stable set of alpha,
and the exact expected loss of a schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL
from hypothesis import given
from hypothesis import strategies as st

from stability import optimizers
from stability.lemmas import adaptive
from stability.lemmas.samplers import random_hessian
from stability.lemmas.structure import spd_power
from stability.operators import ClosedLoop, closed_loop, nominal_closed_loop
from stability.problems import (
    NoisyQuadratic,
    expected_losses,
    noisy_quadratic,
    random_rotation,
    rotated,
    schedules,
)


def test_claim_shape():
    for name in ("NAME", "TITLE", "STATEMENT", "DROPS"):
        assert hasattr(adaptive, name)
    inst = adaptive.sample(np.random.default_rng(0))
    assert set(adaptive.DROPS) <= set(adaptive.hypotheses(inst))
    assert all(isinstance(v, float) for v in adaptive.bounds(inst).values())


def test_ends_stable_checks_the_largest_step():
    # H = 1, P = 0: A(alpha) = 1 - alpha, stable at 0.5 (0.5), not at 3 (-2)
    for alphas in ([3.0, 0.5], [0.5, 3.0], [3.0]):
        inst = adaptive.make_instance(H=[[1.0]], P=[[0.0]], alphas=alphas)
        assert not adaptive.hypotheses(inst)["ends_stable"]
    inst = adaptive.make_instance(H=[[1.0]], P=[[0.0]], alphas=[1.5, 0.5])
    assert adaptive.hypotheses(inst)["ends_stable"]


@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 8),
    log_kappa=st.floats(0.0, 6.0),
    kind=st.sampled_from(["symmetric", "commuting"]),
    length=st.integers(1, 4),
)
def test_products_of_stable_loops_are_stable(seed, n, log_kappa, kind, length):
    rng = np.random.default_rng(seed)
    inst = adaptive.sample(rng, n=n, kappa=10**log_kappa, kind=kind, length=length)
    assert all(adaptive.hypotheses(inst).values())
    assert adaptive.conclusion(inst)
    b = adaptive.bounds(inst)
    # symmetric P: the H-norm is a common quadratic Lyapunov function, so the joint
    # spectral radius is the largest factor radius
    if kind == "symmetric":
        assert b["jsr_upper"] == pytest.approx(b["rho_max"], rel=1e-9)
    assert b["jsr_lower"] <= b["jsr_upper"] * (1 + 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switching_counterexample(seed):
    inst = adaptive.counterexample("P_symmetric_or_commuting", seed=seed)
    assert inst is not None
    hyp = adaptive.hypotheses(inst)
    assert hyp["ends_stable"] and not hyp["P_symmetric_or_commuting"]
    assert not adaptive.conclusion(inst)
    # each loop alone is stable, some product of them is not
    a = adaptive.transitions(inst.H, inst.P, inst.alphas)
    assert np.all(np.max(np.abs(np.linalg.eigvals(a)), axis=-1) < 1)
    lower, _ = adaptive.jsr_bounds(a, 4)
    assert lower > 1
    again = adaptive.counterexample("P_symmetric_or_commuting", seed=seed)
    np.testing.assert_array_equal(again.P, inst.P)
    np.testing.assert_array_equal(again.alphas, inst.alphas)


@pytest.mark.parametrize("seed", [0, 1])
def test_disconnected_stable_set(seed):
    inst = adaptive.disconnected_counterexample(seed=seed)
    assert inst is not None
    a_hi, a_mid, a_lo = inst.alphas
    assert a_hi > a_mid > a_lo
    assert adaptive.stable_alphas(inst.H, inst.P, inst.alphas).tolist() == [
        True,
        False,
        True,
    ]
    assert not adaptive.hypotheses(inst)["P_symmetric_or_commuting"]
    assert not adaptive.conclusion(inst)
    # lingering in the unstable window amplifies the error (against jumping over
    # it); the stable limit then takes over (any P: asymptotically stable)
    window = np.concatenate([np.full(5, a_hi), np.full(200, a_mid)])
    jump = np.concatenate([np.full(5, a_hi), np.full(200, a_lo)])
    peak = adaptive.transient(inst.H, inst.P, window)[-1]
    assert peak > 1
    assert peak > adaptive.transient(inst.H, inst.P, jump)[-1]
    tail = np.concatenate([window, np.full(3000, a_lo)])
    assert adaptive.transient(inst.H, inst.P, tail)[-1] < 1e-3 * peak


def test_stable_interval_matches_grid():
    rng = np.random.default_rng(3)
    for kind in ("symmetric", "commuting"):
        inst = adaptive.sample(rng, n=4, kappa=100.0, kind=kind)
        lo, hi = adaptive.stable_interval(inst.H, inst.P)
        grid = np.linspace(0, 2 * hi, 2001)
        stable = adaptive.stable_alphas(inst.H, inst.P, grid)
        inside = (grid > lo) & (grid < hi)
        width = grid[1] - grid[0]
        near = (np.abs(grid - lo) < width) | (np.abs(grid - hi) < width)
        np.testing.assert_array_equal(stable[~near], inside[~near])


def test_jsr_bounds_meet_in_h_norm_for_symmetric_p():
    rng = np.random.default_rng(4)
    inst = adaptive.sample(rng, n=5, kappa=1e4, kind="symmetric", length=3)
    a = adaptive.transitions(inst.H, inst.P, inst.alphas)
    lower, upper = adaptive.jsr_bounds(a, 3, weight=spd_power(inst.H, 0.5))
    rho = np.max(np.abs(np.linalg.eigvals(a)))
    assert lower == pytest.approx(rho, rel=1e-9)
    assert upper == pytest.approx(rho, rel=1e-9)


def _problem(n, rotate):
    p = NoisyQuadratic.from_eigenvalues(
        np.geomspace(1.0, 0.05, n), noise_var=np.linspace(0.1, 0.3, n)
    )
    return rotated(p, random_rotation(n, 5)) if rotate else p


@pytest.mark.parametrize("rotate", [False, True])
def test_time_varying_moments_match_constant_schedule(rotate):
    problem = _problem(3, rotate)
    rng = np.random.default_rng(6)
    P = 0.1 * rng.standard_normal((3, 3))
    T = 25
    loop = adaptive.schedule_loop(problem.hessian, P, np.full(T, 0.8))
    got = schedules.time_varying_expected_losses(problem, loop)
    ref = expected_losses(
        problem, nominal_closed_loop(problem.hessian, P, 0.8), T, method="dense"
    )
    np.testing.assert_allclose(got, ref, **TOL[np.dtype("float64")])


def test_time_varying_moments_on_a_joint_state():
    # a constant stack of heavy-ball loops (joint state (phi, m)) against the
    # time-invariant recursion
    problem = _problem(2, True)
    loop = closed_loop(optimizers.heavy_ball(0.3, 0.8), problem)
    T = 15
    stack = ClosedLoop(
        jnp.broadcast_to(loop.transition, (T, 4, 4)),
        jnp.broadcast_to(loop.noise_gain, (T, 4, 2)),
    )
    got = schedules.time_varying_expected_losses(problem, stack)
    ref = expected_losses(problem, loop, T, method="dense")
    np.testing.assert_allclose(got, ref, **TOL[np.dtype("float64")])


def test_time_varying_moments_are_differentiable():
    problem = _problem(2, True)
    alphas = jnp.linspace(1.0, 0.2, 10)
    H = jnp.asarray(problem.hessian)

    def loss(alphas):
        k = alphas[:, None, None] * jnp.eye(2)
        a = jnp.eye(2) - k @ H
        stack = ClosedLoop(a, jnp.eye(2) - a)
        return jnp.mean(schedules.time_varying_expected_losses(problem, stack))

    g = jax.grad(loss)(alphas)
    eps = 1e-6
    e3 = jnp.zeros(10).at[3].set(eps)
    fd = (loss(alphas + e3) - loss(alphas - e3)) / (2 * eps)
    assert np.all(np.isfinite(g))
    assert float(g[3]) == pytest.approx(float(fd), rel=1e-5)


def test_decaying_schedule_buys_lower_loss():
    n = 8
    problem = NoisyQuadratic.from_eigenvalues(
        np.geomspace(1.0, 0.01, n), noise_var=0.05, x0=np.full(n, 3.0)
    )
    P = np.diag(np.linspace(0.0, 0.5, n))  # a learned term sharing H's basis
    sched = adaptive.decay_schedule(1.2, 0.05, 400, "exponential")
    cmp = adaptive.compare_schedules(problem, P, sched)
    assert np.all(cmp.radii < 1)
    # below the large step's noise floor, and faster than the small step
    assert cmp.final["scheduled"] < cmp.final["constant_start"]
    assert cmp.mean["scheduled"] < cmp.mean["constant_end"]
    assert cmp.scheduled.shape == cmp.constant_start.shape == (400,)


@pytest.mark.parametrize("kind", adaptive.SCHEDULE_KINDS)
def test_decay_schedule_ends(kind):
    s = adaptive.decay_schedule(2.0, 0.5, 9, kind)
    assert s.shape == (9,)
    assert s[0] == pytest.approx(2.0)
    if kind != "constant":
        assert s[-1] == pytest.approx(0.5)
        assert np.all(np.diff(s) <= 1e-15)


def test_bad_inputs_raise():
    H = np.eye(2)
    with pytest.raises(ValueError, match="H"):
        adaptive.make_instance(H=-H, P=H, alphas=[1.0])
    with pytest.raises(ValueError, match="P"):
        adaptive.make_instance(H=H, P=np.eye(3), alphas=[1.0])
    with pytest.raises(ValueError, match="alphas"):
        adaptive.make_instance(H=H, P=H, alphas=[1.0, -0.5])
    with pytest.raises(ValueError, match="alphas"):
        adaptive.make_instance(H=H, P=H, alphas=[])
    with pytest.raises(ValueError, match="drop"):
        adaptive.counterexample("nope")
    with pytest.raises(ValueError, match="kind"):
        adaptive.counterexample("P_symmetric_or_commuting", kind="necessity")
    with pytest.raises(ValueError, match="budget"):
        adaptive.counterexample("P_symmetric_or_commuting", budget=0)
    with pytest.raises(ValueError, match="kind"):
        adaptive.decay_schedule(1.0, 0.1, 5, "cosine")
    with pytest.raises(ValueError, match="num_steps"):
        adaptive.decay_schedule(1.0, 0.1, 0)
    with pytest.raises(ValueError, match="depth"):
        adaptive.jsr_bounds(np.eye(2)[None], 0)
    with pytest.raises(ValueError, match="P"):
        adaptive.stable_interval(np.diag([1.0, 2.0]), [[1.0, 1.0], [-1.0, 2.0]])
    problem = noisy_quadratic(H)
    with pytest.raises(ValueError, match="loop"):
        schedules.time_varying_expected_losses(
            problem, ClosedLoop(np.eye(2), np.eye(2))
        )
    with pytest.raises(ValueError, match="z0"):
        schedules.time_varying_expected_losses(
            problem, adaptive.schedule_loop(H, H, [0.5, 0.5]), z0=np.zeros(3)
        )


def test_random_hessian_helper_is_spd():
    # the sample's building block (from the nominal claim) at the largest condition
    H, h, _ = random_hessian(np.random.default_rng(0), 8, 1e6)
    assert np.linalg.eigvalsh(H)[0] > 0
    assert h[0] / h[-1] == pytest.approx(1e6)


ONE = NoisyQuadratic.from_eigenvalues([1.0], noise_var=0.0, x0=[1.0])
LOOP = adaptive.schedule_loop(np.eye(1), np.zeros((1, 1)), [0.5, 0.5, 0.5])
NAN = np.array([np.nan])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: adaptive.decay_schedule(0.0, 1.0, 3), "start: a 'exponential'"),
        (lambda: adaptive.decay_schedule(1.0, 0.0, 3, "inverse"), "end: a 'inv"),
        (lambda: adaptive.words(np.eye(2)[None], 0), "depth: must be"),
        (lambda: adaptive.words(np.eye(2)[None], 1.5), "depth: expected"),
        (lambda: adaptive.sample(np.random.default_rng(0), kappa=0.5), "kappa: "),
        (lambda: adaptive.sample(np.random.default_rng(0), n=2.7), "n: expected"),
        (lambda: adaptive.sample(np.random.default_rng(0), n=0), "n: must be"),
        (lambda: adaptive.sample(np.random.default_rng(0), length=0), "length: "),
        (
            lambda: schedules.time_varying_expected_losses(ONE, LOOP, z0=NAN),
            "z0: contains non-finite",
        ),
        (
            lambda: schedules.time_varying_expected_losses(ONE._replace(x0=NAN), LOOP),
            "problem.x0: contains non-finite",
        ),
        (
            lambda: schedules.time_varying_expected_losses(
                ONE, LOOP._replace(transition=np.full((3, 1, 1), np.nan))
            ),
            "loop.transition: contains non-finite",
        ),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
