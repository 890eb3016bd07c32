import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stability import analyses, operators, optimizers
from stability.problems import NoisyQuadratic


def test_spectral_radius_methods_agree():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((50, 2, 2))
    ref = np.max(np.abs(np.linalg.eigvals(m)), -1)
    np.testing.assert_allclose(analyses.spectral_radius(m), ref, rtol=1e-12)
    np.testing.assert_allclose(
        analyses.spectral_radius(jnp.asarray(m), method="eig"), ref, rtol=1e-12
    )
    big = rng.standard_normal((4, 5, 5))
    np.testing.assert_allclose(
        analyses.spectral_radius(big), np.max(np.abs(np.linalg.eigvals(big)), -1)
    )
    with pytest.raises(ValueError, match="method"):
        analyses.spectral_radius(big, method="closed_form")
    with pytest.raises(ValueError, match="m: expected shape"):
        analyses.spectral_radius(np.ones((2, 3)))
    with pytest.raises(ValueError, match="m: expected shape"):
        analyses.spectral_radius(np.zeros((0, 0)))
    with pytest.raises(ValueError, match="k: expected an integer"):
        analyses.spectral_radius(np.eye(100), method="arnoldi", k=2.5)
    with pytest.raises(ValueError, match="tol: must be finite"):
        analyses.is_stable(np.eye(2) / 2, tol=np.nan)
    with pytest.raises(ValueError, match="tol: must be >= 0"):
        analyses.is_stable(np.eye(2) * 1.5, tol=-1.0)


def test_closed_form_radius_is_differentiable():
    def rho(a):
        return analyses.spectral_radius(jnp.array([[1 - a, -0.5], [a, 0.5]]))

    a = 0.3
    fd = (rho(a + 1e-6) - rho(a - 1e-6)) / 2e-6
    np.testing.assert_allclose(jax.grad(rho)(a), fd, rtol=1e-6)


def test_arnoldi_on_a_large_jvp_operator():
    """A 400-dim heavy-ball loop given only by Jacobian-vector products."""
    h = np.geomspace(1.0, 1e-3, 200)
    prob = NoisyQuadratic.from_eigenvalues(h)
    opt = optimizers.heavy_ball(1.0, 0.9)
    step, z = operators.step_function(opt, prob)
    op = operators.linear_operator(lambda z: step(z, jnp.zeros(200)), z)
    dense = operators.closed_loop(opt, prob).transition
    ref = float(np.max(np.abs(np.linalg.eigvals(np.asarray(dense)))))
    assert abs(analyses.spectral_radius(op) - ref) < 1e-8
    assert analyses.is_stable(op) is True and analyses.is_marginal(op) is False


def test_region_record_and_boundary():
    lrs = np.linspace(0.01, 5.0, 500)
    region = analyses.stability_region(
        "heavy_ball", lr=lrs, curvature=1.0, beta=np.array([0.0, 0.5, 0.9])
    )
    assert region.rho.shape == (500, 3) and list(region.axes) == ["lr", "beta"]
    last_stable = lrs[region.stable.sum(0) - 1]
    np.testing.assert_allclose(
        last_stable, 2 * (1 + np.array([0.0, 0.5, 0.9])), atol=0.011
    )


def test_region_record_fixed_arguments():
    lrs = np.array([0.5, 1.0])
    # AggMo without betas records the default decays it used
    default = analyses.stability_region("aggmo", lr=lrs, curvature=1.0)
    assert default.fixed == {"curvature": 1.0, "betas": (0.9, 0.99, 0.999)}
    # the preconditioner is recorded exactly when it is used
    p = np.array([0.0, 0.5])
    plain = analyses.stability_region("nominal", alpha=0.5, p=p, curvature=4.0)
    pre = analyses.stability_region(
        "nominal", alpha=0.5, p=p, curvature=4.0, precondition=True
    )
    assert "precondition" not in plain.fixed
    assert pre.fixed["precondition"] is True


def test_nominal_region_is_shifted_and_preconditioned():
    p = np.linspace(-1, 3, 401)
    plain = analyses.stability_region("nominal", alpha=0.5, p=p, curvature=4.0)
    pre = analyses.stability_region(
        "nominal", alpha=0.5, p=p, curvature=4.0, precondition=True
    )
    # -alpha < p < 2/h - alpha, and 2/sqrt(h) - alpha with the preconditioner
    np.testing.assert_array_equal(plain.stable, (p > -0.5) & (p < 0.5 - 0.5))
    np.testing.assert_array_equal(pre.stable, (p > -0.5) & (p < 1.0 - 0.5))


def test_is_stable_and_rate():
    m = np.diag([0.5, -0.9])
    assert analyses.is_stable(m) and not analyses.is_stable(m, tol=0.2)
    assert not analyses.is_stable(np.diag([0.5, -1.0]))  # rho = 1 exactly
    np.testing.assert_allclose(analyses.convergence_rate(m), -np.log(0.9))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(family="sgd", lr=1.0, curvature=1.0), "family"),
        (dict(family="gd", lr=1.0), "missing"),
        (dict(family="heavy_ball", lr=1.0, curvature=1.0, beta=1.5), "beta"),
        (dict(family="gd", lr=np.ones((2, 2)), curvature=1.0), "lr: expected"),
        (dict(family="gd", lr=[np.nan], curvature=1.0), "lr: contains non-finite"),
        (dict(family="gd", lr=[-1.0, 0.5], curvature=1.0), "lr: must be >= 0"),
        (dict(family="nominal", alpha=-0.1, p=0.0, curvature=1.0), "alpha: must"),
        (
            dict(family="nominal", alpha=0.1, p=0.0, curvature=-1.0, precondition=True),
            "curvature: must be >= 0",
        ),
        (
            dict(family="nominal", alpha=0.1, p=0.0, curvature=1.0, precondition="no"),
            "precondition: expected True or False",
        ),
        (dict(family="gd", lr=1.0, curvature=1.0, precondition=True), "precondition"),
        (dict(family="gd", lr=1.0, curvature=1.0, betas=(0.5,)), "betas: only"),
    ],
)
def test_region_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        analyses.stability_region(**kwargs)
    if match != "lr: expected":  # mode_radius broadcasts arrays of any rank
        with pytest.raises(ValueError, match=match):
            analyses.mode_radius(**kwargs)


def test_negative_curvature_without_preconditioner_is_a_radius():
    """A direction of negative curvature is legitimate input: |1 - x| > 1."""
    assert float(analyses.mode_radius("gd", lr=0.5, curvature=-1.0)) == 1.5
    rho = analyses.mode_radius("nominal", alpha=0.1, p=0.4, curvature=-1.0)
    assert float(rho) == pytest.approx(1.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(family="heavy_ball", beta=0.5, rtol=np.nan), "rtol: must be finite"),
        (dict(family="heavy_ball", beta=0.5, rtol=0.0), "rtol: must be >"),
        (dict(family="heavy_ball", beta=0.5, lr=0.1), "lr: is the ray"),
        (dict(family="nominal", p=0.0, alpha=0.1), "alpha: is the ray"),
        (dict(family="heavy_ball", beta=[0.5, 0.9]), "beta: expected a real number"),
    ],
)
def test_max_stable_learning_rate_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        analyses.max_stable_learning_rate(**kwargs)


def test_complex_2x2_goes_to_eig():
    """The closed form is for real blocks only; a complex 2x2 batch gets numpy's
    eigenvalues."""
    rng = np.random.default_rng(3)
    m = rng.standard_normal((20, 2, 2)) + 1j * rng.standard_normal((20, 2, 2))
    ref = np.max(np.abs(np.linalg.eigvals(m)), -1)
    np.testing.assert_allclose(analyses.spectral_radius(m), ref, rtol=1e-12)
    np.testing.assert_allclose(
        analyses.spectral_radius(np.array([[0.9j, 0.0], [0.0, 0.5]])), 0.9
    )


def test_arnoldi_finds_the_largest_magnitude_eigenvalue():
    """ARPACK's 'largest magnitude': a lone eigenvalue -0.95 among many in (0, 0.5]
    sets rho, though its real part is the smallest."""
    n = 100
    q = np.linalg.qr(np.random.default_rng(4).standard_normal((n, n)))[0]
    lam = np.concatenate([[-0.95], np.linspace(0.01, 0.5, n - 1)])
    m = q @ np.diag(lam) @ q.T
    got = analyses.spectral_radius(m, method="arnoldi")
    assert abs(got - 0.95) < 1e-8


def test_arnoldi_with_k_close_to_n():
    """Any k >= 1 is accepted, also k >= n - 1 where ARPACK itself cannot run."""
    m = np.random.default_rng(5).standard_normal((70, 70)) / 10
    ref = np.max(np.abs(np.linalg.eigvals(m)))
    for k in (68, 69, 70):
        got = analyses.spectral_radius(m, method="arnoldi", k=k)
        np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_spectral_bounds_on_k_and_tol():
    with pytest.raises(ValueError, match="k: must be an integer >= 1"):
        analyses.spectral_radius(np.eye(2), k=0)
    with pytest.raises(ValueError, match="tol: must be < 1"):
        analyses.is_stable(np.eye(2) / 2, tol=1.0)


# -- issue 24: marginal stability, the exact stable set, bad input ------------------


def test_marginal_cells_are_not_stable():
    """rho within rounding of 1 is marginal, never stable: the README's heavy-ball
    region at lr = 0 (rho is exactly 1, computed as 1 - 2e-15 in some cells), and
    momentum 1 (a complex pair on the unit circle)."""
    lrs = np.linspace(0, 4, 400)
    betas = np.linspace(0, 0.99, 100)
    region = analyses.stability_region("heavy_ball", lr=lrs, beta=betas, curvature=1.0)
    assert not region.stable[0].any() and region.marginal[0].all()
    # elsewhere the exact condition 0 < lr < 2 (1 + beta) holds cell by cell
    exact = (lrs[:, None] > 0) & (lrs[:, None] < 2 * (1 + betas[None, :]))
    assert np.sum(region.stable != exact) <= 2  # cells on the boundary itself
    # near a double root (beta -> 1) the closed form loses digits: still marginal
    near_one = analyses.stability_region(
        "heavy_ball", lr=0.0, beta=1 - np.geomspace(1e-8, 1e-1, 200), curvature=1.0
    )
    assert near_one.marginal.all() and not near_one.stable.any()
    problem = NoisyQuadratic.from_eigenvalues([1.0, 0.1])
    loop = operators.closed_loop(optax.sgd(0.1, momentum=1.0), problem)
    assert not analyses.is_stable(loop.transition)
    assert analyses.is_marginal(loop.transition)
    assert not analyses.is_stable(np.asarray(loop.transition), method="eig")
    # the band is rounding-sized: a radius 1e-9 below 1 is stable
    m = np.array([[1 - 1e-9, 0.0], [0.0, 0.5]])
    assert analyses.is_stable(m) and not analyses.is_marginal(m)
    assert analyses.is_stable(jnp.asarray(m))


def test_hand_built_region_records_get_the_marginal_grid():
    reg = analyses.StabilityRegion("gd", {"lr": np.arange(3.0)}, {}, [1.0, 0.5, 1.5])
    assert reg.marginal.tolist() == [True, False, False]
    assert reg.stable.tolist() == [False, True, False]


def test_region_cli_prints_the_marginal_count(capsys):
    from stability import cli

    argv = "region --family ema_momentum --lr 0:3:7 --curvature 1 --beta 0.9"
    assert cli.main(argv.split()) == 0
    out = capsys.readouterr().out
    assert "stable fraction 0.8571" in out and "not stable) 1," in out


def test_max_stable_learning_rate_refuses_a_set_not_starting_at_zero():
    """Every alpha in (0, 0.5) is unstable for p = -0.5 (rho = 1.25 at 0.25)."""
    rho = analyses.mode_radius("nominal", alpha=0.25, p=-0.5, curvature=1.0)
    assert float(rho) == pytest.approx(1.25)
    with pytest.raises(ValueError, match=r"stable set in alpha is \[\(0\.5"):
        analyses.max_stable_learning_rate("nominal", 1.0, p=-0.5)
    ((lo, hi),) = analyses.stable_learning_rates("nominal", 1.0, p=-0.5)
    assert lo == pytest.approx(0.5, rel=1e-14) and hi == pytest.approx(2.5, rel=1e-14)
    assert analyses.stable_learning_rates("nominal", 1.0, p=3.0) == []
    with pytest.raises(ValueError, match="stable set in alpha is \\[\\]"):
        analyses.max_stable_learning_rate("nominal", 1.0, p=3.0)
    assert analyses.max_stable_learning_rate("aggmo", 1.0) == pytest.approx(
        15116438 / 146521, rel=1e-14
    )


RAY_CASES = [
    ("gd", 2.0, {}),
    ("nominal", 1.0, {"p": -0.5}),
    ("nominal", 4.0, {"p": 0.3, "precondition": True}),
    ("nominal", 1.0, {"p": 3.0}),
    ("nominal", 0.5, {"p": -2.5}),
    ("heavy_ball", 1.0, {"beta": -0.9}),
    ("heavy_ball", 3.0, {"beta": 0.5}),
    ("heavy_ball", 1.0, {"beta": 0.99}),
    ("ema_momentum", 1.0, {"beta": -0.5}),
    ("ema_momentum", 2.0, {"beta": 0.9}),
    ("aggmo", 1.0, {}),
    ("aggmo", 1.0, {"betas": (-0.9, 0.5)}),
    ("aggmo", 0.3, {"betas": (0.2, -0.6, 0.95)}),
]


@pytest.mark.parametrize("family, h, params", RAY_CASES)
def test_stable_learning_rates_match_a_dense_grid(family, h, params):
    intervals = analyses.stable_learning_rates(family, h, **params)
    ends = [e for iv in intervals for e in iv if np.isfinite(e)]
    top = 1.5 * max(ends + [4.0 / h])
    ts = np.linspace(0.0, top, 20001)
    ray = "alpha" if family == "nominal" else "lr"
    region = analyses.stability_region(family, curvature=h, **{ray: ts}, **params)
    inside = np.zeros(ts.shape, bool)
    for lo, hi in intervals:
        inside |= (ts > lo) & (ts < hi)
    near = np.zeros(ts.shape, bool)  # grid points within rounding of an end
    for e in ends:
        near |= np.abs(ts - e) <= 1e-9 * max(1.0, e)
    np.testing.assert_array_equal(region.stable[~near], inside[~near])
    for (_, hi), (lo, _) in zip(intervals, intervals[1:], strict=False):
        assert hi < lo  # disjoint and sorted
    if len(intervals) == 1 and intervals[0][0] == 0.0:
        assert analyses.max_stable_learning_rate(family, h, **params) == intervals[0][1]
    else:
        with pytest.raises(ValueError, match="stable_learning_rates"):
            analyses.max_stable_learning_rate(family, h, **params)


@pytest.mark.parametrize(
    "m, match",
    [
        ("abc", "m: expected a numeric array"),
        (np.array([[np.nan, 0.0], [0.0, 0.5]]), "m: contains non-finite"),
        (jnp.array([[0.5, jnp.inf], [0.0, 0.5]]), "m: contains non-finite"),
        (np.full((2, 3, 3), np.nan), "m: contains non-finite"),
        ([[1.0, 2.0], [3.0]], "m: expected a numeric array"),
        (None, "m: expected a numeric array"),
    ],
)
def test_spectral_radius_bad_input(m, match):
    for fn in (analyses.spectral_radius, analyses.is_stable, analyses.is_marginal):
        with pytest.raises(ValueError, match=match):
            fn(m)


def test_spectral_radius_on_a_jax_batch_runs_the_jitted_kernel(monkeypatch):
    """A JAX batch goes through one jitted call (the closed form that
    stability_region's kernel also runs) and gives NumPy's float64 radii."""
    from stability.analyses import spectral

    calls = []
    kernel = spectral._jax_radius

    def counting(m, eig):
        calls.append(m.shape)
        return kernel(m, eig)

    monkeypatch.setattr(spectral, "_jax_radius", counting)
    rng = np.random.default_rng(7)
    m = rng.standard_normal((300, 2, 2))
    got = analyses.spectral_radius(jnp.asarray(m))
    assert calls == [(300, 2, 2)]
    np.testing.assert_allclose(got, analyses.spectral_radius(m), rtol=1e-13)
    x, b = np.meshgrid(np.linspace(0, 4, 30), np.linspace(0, 0.99, 20), indexing="ij")
    blocks = jnp.asarray(np.asarray(optimizers.modes.heavy_ball_block(x, b)[0]))
    region = analyses.stability_region(
        "heavy_ball",
        lr=np.linspace(0, 4, 30),
        beta=np.linspace(0, 0.99, 20),
        curvature=1.0,
    )
    np.testing.assert_array_equal(analyses.spectral_radius(blocks), region.rho)
    np.testing.assert_array_equal(analyses.is_marginal(blocks), region.marginal)
