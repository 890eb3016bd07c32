"""Certified rates over F(mu, L) (analyses.certified) and Nesterov's method."""

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stability import analyses, operators, optimizers
from stability.analyses import certified
from stability.optimizers import modes
from stability.problems import NoisyQuadratic

pytest.importorskip("cvxpy")


def polyak(mu, L):
    """Polyak's heavy-ball parameters, optimal on quadratics of [mu, L]."""
    k = L / mu
    return 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, (
        (math.sqrt(k) - 1) / (math.sqrt(k) + 1)
    ) ** 2


# ---------------------------------------------------------------------------------
# Nesterov as an optimizer and a per-mode family
# ---------------------------------------------------------------------------------


def test_nesterov_block_equals_jacfwd_operator():
    rng = np.random.default_rng(0)
    for beta in (0.6, -0.4):
        lr, h = rng.uniform(0.05, 2.0), rng.uniform(0.1, 3.0)
        loop = operators.closed_loop(
            optimizers.nesterov(lr, beta), NoisyQuadratic.from_eigenvalues([h])
        )
        block, gain = modes.block("nesterov", lr * h, beta=beta)
        scale = np.diag([1.0, lr])
        np.testing.assert_allclose(
            scale @ loop.transition @ np.linalg.inv(scale), block, rtol=1e-12
        )
        np.testing.assert_allclose(scale @ loop.noise_gain[:, 0], gain, atol=1e-14)


def test_nesterov_radius_matches_eig_and_textbook_form():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 3.0, 2000)
    beta = rng.uniform(-0.95, 0.95, 2000)
    block, _ = modes.nesterov_block(x, beta)
    ref = np.max(np.abs(np.linalg.eigvals(np.asarray(block))), axis=-1)
    # the textbook (x, y) form: x' = y - a g(y), y' = x' + b (x' - x)
    text = np.stack(
        [
            np.stack([(1 + beta) * (1 - x), -beta * (1 - x)], -1),
            np.stack([np.ones_like(x), np.zeros_like(x)], -1),
        ],
        -2,
    )
    ref_text = np.max(np.abs(np.linalg.eigvals(text)), axis=-1)
    got = np.asarray(modes.nesterov_radius(x, beta))
    s, q = (1 + beta) * (1 - x), beta * (1 - x)
    keep = np.abs(s * s - 4 * q) > 1e-3  # eig is inaccurate at repeated roots
    np.testing.assert_allclose(got[keep], ref[keep], rtol=1e-10)
    np.testing.assert_allclose(got[keep], ref_text[keep], rtol=1e-10)
    np.testing.assert_allclose(modes.nesterov_radius(x, beta, xp=np), got, rtol=1e-15)
    # stable iff 0 < x < 2(1 + b)/(1 + 2b) for b in [0, 1)
    b = np.abs(beta)
    edge = 2 * (1 + b) / (1 + 2 * b)
    np.testing.assert_array_less(modes.nesterov_radius(0.999 * edge, b), 1.0)
    assert np.all(np.asarray(modes.nesterov_radius(1.001 * edge, b)) > 1.0)


def test_nesterov_update_and_bad_input():
    opt = optimizers.nesterov(0.1, 0.5)
    state = opt.init(jnp.zeros(2))
    g = jnp.array([1.0, -2.0])
    u, state = opt.update(g, state)
    u, state = opt.update(g, state)
    # m = 1.5 g; update = -a (g + b m)
    np.testing.assert_allclose(u, -0.1 * (g + 0.5 * 1.5 * g), rtol=1e-12)
    assert isinstance(optax.chain(opt, optax.clip(1.0)), optax.GradientTransformation)
    with pytest.raises(ValueError, match="beta: must be < 1"):
        optimizers.nesterov(0.1, 1.0)
    with pytest.raises(ValueError, match="lr: must be >= 0"):
        optimizers.nesterov(-0.1, 0.5)


# ---------------------------------------------------------------------------------
# checks against published results
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("multipliers", certified.MULTIPLIERS)
@pytest.mark.parametrize(
    "a, mu, L",
    [(0.25, 1.0, 4.0), (0.1, 1.0, 10.0), (0.19, 1.0, 10.0), (0.01, 0.5, 90.0)],
)
def test_gd_certified_rate_is_the_known_tight_rate(a, mu, L, multipliers):
    r = analyses.certified_rate("gd", mu=mu, L=L, lr=a, multipliers=multipliers)
    exact = max(abs(1 - a * mu), abs(1 - a * L))
    assert r.status == "certified" and r.certified
    assert r.quadratic_exact and r.quadratic_rate == pytest.approx(exact, abs=1e-15)
    assert abs(r.rate - exact) <= 1e-6
    assert 0 <= r.gap <= 1e-6 and r.resolution <= 1e-7
    assert r.residual <= 1e-7 and r.constant >= 1


@pytest.mark.parametrize("a", [0.5, 0.6])
def test_gd_at_or_past_2_over_L_is_not_certified(a):
    r = analyses.certified_rate("gd", mu=1.0, L=4.0, lr=a)
    assert r.status == "not_certified" and not r.certified
    assert r.rate == math.inf and r.P is None and r.num_solves == 0
    # the quadratic rate settles it without a solve; the SDP agrees
    for multipliers in certified.MULTIPLIERS:
        system = certified.state_space("gd", lr=a)
        lmi = certified._lmi(*system, 1.0, 4.0, multipliers)
        assert not lmi.solve(1 - 1e-6, "CLARABEL")[0]


@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_nesterov_certified_below_the_classical_guarantee(kappa):
    beta = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    r = analyses.certified_rate("nesterov", mu=1.0, L=kappa, lr=1 / kappa, beta=beta)
    assert r.status == "certified"
    assert r.quadratic_rate <= r.rate <= math.sqrt(1 - 1 / math.sqrt(kappa))
    # the sector multiplier alone is weaker (LRP 2016, Section 4.5)
    s = analyses.certified_rate(
        "nesterov", mu=1.0, L=kappa, lr=1 / kappa, beta=beta, multipliers="sector"
    )
    assert s.rate > r.rate


def test_heavy_ball_polyak_is_quadratic_optimal_but_not_certified():
    mu, L = 1.0, 25.0
    a, beta = polyak(mu, L)
    r = analyses.certified_rate("heavy_ball", mu=mu, L=L, lr=a, beta=beta)
    assert r.quadratic_rate == pytest.approx(2 / 3, abs=1e-12)
    assert r.status == "not_certified" and r.rate == math.inf


def test_heavy_ball_polyak_cycles_on_a_piecewise_quadratic():
    """The search finds a function of F(1, 25) on which heavy ball with Polyak's
    parameters cycles (LRP 2016, Section 4.6 give one with period 3); the cycle is
    replayed with the real optax optimizer."""
    mu, L = 1.0, 25.0
    a, beta = polyak(mu, L)
    c = certified.counterexample_search(
        "heavy_ball", mu=mu, L=L, lr=a, beta=beta, num_trials=2048, steps=400
    )
    assert c.found and c.period > 0 and c.distance_ratio > 1e-3
    assert set(c.slopes.tolist()) <= {mu, L}
    # the function is in F(mu, L): interpolation inequalities on random pairs
    rng = np.random.default_rng(0)
    xs = rng.uniform(-8, 8, (2, 4000))
    f, g = c.value(xs), c.gradient(xs)
    lhs = f[0] - f[1] - g[1] * (xs[0] - xs[1])
    rhs = (
        (g[0] - g[1]) ** 2 / L
        + mu * (xs[0] - xs[1]) ** 2
        - 2 * mu / L * (g[1] - g[0]) * (xs[1] - xs[0])
    ) / (2 * (1 - mu / L))
    assert np.all(lhs >= rhs - 1e-9 * (1 + np.abs(rhs)))
    assert c.gradient(0.0) == 0.0
    # replay: optax heavy ball from y0 with zero momentum
    opt = optimizers.heavy_ball(a, beta)
    y = jnp.array([c.y0])
    state = opt.init(y)
    traj = [float(y[0])]
    for _ in range(c.trajectory.size - 1):
        u, state = opt.update(jnp.asarray(c.gradient(np.asarray(y))), state)
        y = optax.apply_updates(y, u)
        traj.append(float(y[0]))
    np.testing.assert_allclose(traj, c.trajectory, rtol=1e-7, atol=1e-9)
    tail = np.array(traj[-3 * c.period :])
    assert np.min(np.abs(tail)) > 0.1  # it never gets near the minimiser
    # gradient descent on the same search converges: nothing is found
    gd = certified.counterexample_search("gd", mu=mu, L=L, lr=1 / L, num_trials=256)
    assert not gd.found


def test_state_space_triple_gives_the_family_rate_and_richer_inputs():
    mu, L = 1.0, 10.0
    fam = analyses.certified_rate("heavy_ball", mu=mu, L=L, lr=0.05, beta=0.3)
    abc = analyses.certified_rate(
        certified.state_space("heavy_ball", lr=0.05, beta=0.3), mu=mu, L=L
    )
    assert fam.status == abc.status == "certified"
    assert abc.rate == pytest.approx(fam.rate, abs=2e-7)
    assert abc.quadratic_rate == pytest.approx(fam.quadratic_rate, abs=1e-9)
    # a learned linear term as a full matrix on R^2: x' = x - (alpha I + P) g
    P = np.array([[0.02, 0.01], [-0.01, 0.03]])
    A, B, C = np.eye(2), -(0.05 * np.eye(2) + P), np.eye(2)
    r = analyses.certified_rate((A, B, C), mu=mu, L=L)
    assert r.status == "certified" and r.rate < 1 and r.P.shape == (4, 4)


@pytest.mark.parametrize("multipliers", certified.MULTIPLIERS)
def test_certificate_is_checkable_by_hand(multipliers):
    """The record's P, c and weights pass an independent check in the function's own
    units (a perturbed one does not), and the bound holds on a trajectory of a
    non-quadratic function of the class."""
    mu, L, lr, beta = 1.0, 10.0, 0.1, 0.3
    r = analyses.certified_rate(
        "nesterov", mu=mu, L=L, lr=lr, beta=beta, multipliers=multipliers
    )
    assert r.certified and certified.check_certificate(r)
    assert not certified.check_certificate(r._replace(rate=r.rate - 1e-3))
    assert not certified.check_certificate(r._replace(P=0.5 * r.P))
    A, B, C = r.system

    def grad(y):  # f = mu/2 y^2 + (L - mu) log cosh y: f'' in [mu, L]
        return mu * y + (L - mu) * np.tanh(y)

    xi = np.array([3.0, 0.0])
    dist0 = np.linalg.norm(xi)
    for k in range(1, 60):
        xi = A @ xi + B[:, 0] * grad(C[0] @ xi)
        assert np.linalg.norm(xi) ** 2 <= r.constant * r.rate ** (2 * k) * dist0**2


# ---------------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------------


def test_heavy_ball_region_band_and_nominal_has_none():
    mu, L = 1.0, 10.0
    lrs = np.linspace(0.02, 0.38, 6)
    betas = np.linspace(0.0, 0.9, 5)
    r = analyses.certified_region("heavy_ball", mu=mu, L=L, lr=lrs, beta=betas)
    assert r.rho.shape == r.certified.shape == (6, 5)
    assert not np.any(r.certified & ~r.quadratic_stable)  # certified => stable
    assert np.any(r.band)  # stable on quadratics but not certified
    assert not np.any(r.solver_failed)
    # each cell agrees with a full certified_rate
    for i, j in [(0, 0), (2, 3), (5, 4)]:
        full = analyses.certified_rate(
            "heavy_ball", mu=mu, L=L, lr=lrs[i], beta=betas[j]
        )
        assert full.certified == r.certified[i, j]
    ref = analyses.stability_region("heavy_ball", lr=lrs, beta=betas, curvature=L)
    assert np.all(r.rho >= np.asarray(ref.rho) - 1e-12)
    # memoryless per-mode gain: certified exactly where every quadratic is stable
    alphas = np.linspace(0.0, 0.25, 6)
    ps = np.linspace(-0.1, 0.1, 5)
    nom = analyses.certified_region("nominal", mu=mu, L=L, alpha=alphas, p=ps)
    np.testing.assert_array_equal(nom.certified, nom.quadratic_stable)
    assert np.any(nom.certified) and not np.all(nom.certified)


def test_aggmo_region_with_a_decay_axis():
    r = analyses.certified_region(
        "aggmo",
        mu=1.0,
        L=10.0,
        lr=np.array([0.05, 0.15]),
        betas=(0.0, np.array([0.3, 0.8])),
    )
    assert list(r.axes) == ["lr", "betas[1]"] and r.fixed["betas"] == (0.0, None)
    assert r.certified[0, 0] and not np.any(r.certified & ~r.quadratic_stable)


# ---------------------------------------------------------------------------------
# bad input and failures
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kw, match",
    [
        (("gd",), dict(mu=0.0, L=1.0, lr=0.1), "mu: must be > 0"),
        (("gd",), dict(mu=-1.0, L=1.0, lr=0.1), "mu: must be > 0"),
        (("gd",), dict(mu=1.0, L=1.0, lr=0.1), "L: must be > mu"),
        (("gd",), dict(mu=1.0, L=math.inf, lr=0.1), "L: must be finite"),
        (("gd",), dict(mu=math.nan, L=2.0, lr=0.1), "mu: must be finite"),
        (("gd",), dict(mu=1.0, L=2.0, lr=math.nan), "lr: must be finite"),
        (("heavy_ball",), dict(mu=1.0, L=2.0, lr=0.1), r"missing \['beta'\]"),
        (("adam_aggmo",), dict(mu=1.0, L=2.0, lr=0.1), "not linear time-invariant"),
        (("adamw",), dict(mu=1.0, L=2.0), "family: expected one of"),
        (("gd",), dict(mu=1.0, L=2.0, lr=0.1, multipliers="popov"), "multipliers"),
        ((([[1.0]], [[-0.1]], [[1.0, 0.0]]),), dict(mu=1.0, L=2.0), "C: expected"),
        ((([[1.0, 0.0]], [[-0.1]], [[1.0]]),), dict(mu=1.0, L=2.0), "A: must be"),
        ((([[1.0]], [[-0.1], [0.0]], [[1.0]]),), dict(mu=1.0, L=2.0), "B: expected"),
        ((([[1.0]], [[np.nan]], [[1.0]]),), dict(mu=1.0, L=2.0), "B: contains"),
        ((([[0.5]], [[-0.1]], [[1.0]]),), dict(mu=1.0, L=2.0), "system: .* no fixed"),
        ((([[1.0]], [[-0.1]], [[1.0]]),), dict(mu=1.0, L=2.0, lr=0.1), "takes none"),
        (((1, 2),), dict(mu=1.0, L=2.0), "system: expected"),
    ],
)
def test_bad_input(args, kw, match):
    with pytest.raises(ValueError, match=match):
        analyses.certified_rate(*args, **kw)


def test_bad_region_input():
    with pytest.raises(ValueError, match="target"):
        analyses.certified_region("gd", mu=1.0, L=2.0, lr=[0.1, 0.2], target=1.0)
    with pytest.raises(ValueError, match="grid: expected one or two"):
        analyses.certified_region("gd", mu=1.0, L=2.0, lr=0.1)
    with pytest.raises(ValueError, match="not linear time-invariant"):
        analyses.certified_region("adam_aggmo", mu=1.0, L=2.0, lr=[0.1, 0.2])


def test_solver_failure_is_reported_not_a_rate(monkeypatch):
    def fail(self, rho, solver, fallback=True):
        raise certified._SolverFailed(f"{solver}: numerical error (injected)")

    monkeypatch.setattr(certified._Lmi, "solve", fail)
    r = analyses.certified_rate("gd", mu=1.0, L=4.0, lr=0.25)
    assert r.status == "solver_failed" and not r.certified
    assert math.isnan(r.rate) and "injected" in r.solver_status
    assert r.P is None and math.isnan(r.constant)
    reg = analyses.certified_region("gd", mu=1.0, L=4.0, lr=[0.1, 0.6])
    assert reg.solver_failed.tolist() == [True, False]
    assert not np.any(reg.certified)


def test_failure_while_refining_keeps_the_checked_rate(monkeypatch):
    """Once a certificate is in hand, a failure only ends the bisection: the rate
    reported is the checked one, and the resolution says how loose it is."""
    real = certified._Lmi.solve
    calls = []

    def flaky(self, rho, solver, fallback=True):
        calls.append(rho)
        if len(calls) > 4:
            raise certified._SolverFailed(f"{solver}: numerical error (injected)")
        return real(self, rho, solver, fallback)

    monkeypatch.setattr(certified._Lmi, "solve", flaky)
    r = analyses.certified_rate("heavy_ball", mu=1.0, L=10.0, lr=0.15, beta=0.5)
    assert r.status == "certified" and "injected" in r.message
    assert r.resolution > 1e-3 and certified.check_certificate(r)


def test_pepit_worst_case_never_exceeds_the_certificate():
    """PEPit's exact N-step worst case over F(mu, L) (distance to the minimiser,
    zero initial momentum) stays below K rho^(2N), for random hyperparameters."""
    pepit = pytest.importorskip("PEPit")
    from PEPit.functions import SmoothStronglyConvexFunction

    rng = np.random.default_rng(3)
    mu, L, n = 1.0, 10.0, 4
    checked = 0
    for _ in range(3):
        beta = float(rng.uniform(0.0, 0.6))
        lr = float(rng.uniform(0.2, 1.0)) / L
        r = analyses.certified_rate("heavy_ball", mu=mu, L=L, lr=lr, beta=beta)
        if not r.certified:
            continue
        problem = pepit.PEP()
        f = problem.declare_function(SmoothStronglyConvexFunction, mu=mu, L=L)
        xs = f.stationary_point()
        x0 = problem.set_initial_point()
        problem.set_initial_condition((x0 - xs) ** 2 <= 1)
        x, m = x0, 0 * x0
        for _ in range(n):
            m = beta * m + f.gradient(x)
            x = x - lr * m
        # the state's distance: |x - x*|^2 + |m|^2 (m* = 0)
        problem.set_performance_metric((x - xs) ** 2 + m**2)
        worst = problem.solve(verbose=0)
        assert worst <= r.constant * r.rate ** (2 * n) * (1 + 1e-6)
        checked += 1
    assert checked >= 2


def test_plot_certified_region_and_the_figure():
    import matplotlib.pyplot as plt

    from stability import plotting
    from stability.figures import fig10
    from stability.plotting.certified import classes

    r = analyses.certified_region(
        "heavy_ball",
        mu=1.0,
        L=10.0,
        lr=np.linspace(0.02, 0.38, 4),
        beta=np.linspace(0.0, 0.9, 3),
    )
    cls = classes(r)
    assert set(np.unique(cls)) <= {0, 1, 2}
    np.testing.assert_array_equal(cls == 2, r.certified)
    np.testing.assert_array_equal(cls == 1, r.band)
    ax = plotting.certified_region(r, x="beta", y="lr")
    assert ax.get_xlabel() == "momentum β" and ax.get_legend() is not None
    with pytest.raises(ValueError, match="x, y"):
        plotting.certified_region(r, x="beta", y="alpha")

    class Quick:
        def pick(self, quick, full):
            return quick

    record = fig10.compute(Quick())
    fig10.draw(record)
    numbers, caption = fig10.numbers(record), fig10.caption(record)
    assert (
        "not_certified"
        in numbers["heavy ball, Polyak (kappa 25): quadratic rate, certified"]
    )
    assert numbers["heavy-ball cycle: period, breakpoints, slopes"].startswith("3,")
    assert "certified" in caption
    plt.close("all")


def test_random_families_certificates_are_consistent():
    """On random hyperparameters: a certified rate never beats the quadratic rate,
    its certificate passes the independent check, and the Zames-Falb multiplier is
    never weaker than the sector alone."""
    rng = np.random.default_rng(5)
    mu, L = 1.0, 8.0
    draws = [
        (
            "heavy_ball",
            lambda: dict(lr=rng.uniform(0.01, 0.3), beta=rng.uniform(0, 0.9)),
        ),
        (
            "ema_momentum",
            lambda: dict(lr=rng.uniform(0.01, 0.5), beta=rng.uniform(0, 0.9)),
        ),
        (
            "nesterov",
            lambda: dict(lr=rng.uniform(0.01, 0.2), beta=rng.uniform(0, 0.9)),
        ),
        (
            "aggmo",
            lambda: dict(lr=rng.uniform(0.01, 0.3), betas=(0.0, rng.uniform(0, 0.9))),
        ),
        (
            "nominal",
            lambda: dict(alpha=0.1, p=rng.uniform(-0.1, 0.2), preconditioner=0.5),
        ),
    ]
    certified_any = 0
    for family, draw in draws * 2:
        params = draw()
        zf = analyses.certified_rate(family, mu=mu, L=L, **params)
        sec = analyses.certified_rate(
            family, mu=mu, L=L, multipliers="sector", **params
        )
        assert zf.status != "solver_failed" and sec.status != "solver_failed"
        assert zf.rate >= zf.quadratic_rate - 1e-12
        assert zf.rate <= sec.rate + 2e-7
        if zf.certified:
            certified_any += 1
            assert certified.check_certificate(zf)
    assert certified_any >= 5
