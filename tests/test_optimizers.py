import jax.numpy as jnp
import mpmath
import numpy as np
import optax
import pytest
from helpers import LINEAR_OPTIMIZERS

from stability import analyses, operators, optimizers
from stability.optimizers import modes
from stability.problems import NoisyQuadratic, noisy_quadratic


@pytest.mark.parametrize("name", list(LINEAR_OPTIMIZERS))
def test_mode_block_equals_jacfwd_operator(name):
    """The closed-form block equals the jacfwd Jacobian of the real optax optimizer
    (through the similarity diag(1, lr, ..., lr)), and both have the eigenvalues of
    numpy's eigvals to 1e-10."""
    make, family, params = LINEAR_OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    for _ in range(5):
        lr, h = rng.uniform(0.05, 2.0), rng.uniform(0.1, 3.0)
        loop = operators.closed_loop(make(lr), NoisyQuadratic.from_eigenvalues([h]))
        block, gain = modes.block(family, lr * h, **params)
        k = block.shape[0]
        scale = np.diag([1.0] + [lr] * (k - 1))
        np.testing.assert_allclose(
            scale @ loop.transition @ np.linalg.inv(scale),
            block,
            rtol=1e-12,
            atol=1e-14,
        )
        np.testing.assert_allclose(scale @ loop.noise_gain[:, 0], gain, atol=1e-14)
        ours = np.sort_complex(np.linalg.eigvals(np.asarray(loop.transition)))
        ref = np.sort_complex(np.linalg.eigvals(np.asarray(block)))
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "family, params", [("heavy_ball", "beta"), ("ema_momentum", "beta"), ("gd", None)]
)
def test_closed_form_radius_matches_eig(family, params):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 6.0, 2000)
    beta = rng.uniform(-0.95, 0.95, 2000)
    kw = {"beta": beta} if params else {}
    block, _ = modes.block(family, x, **kw)
    ref = np.max(np.abs(np.linalg.eigvals(np.asarray(block))), axis=-1)
    got = analyses.mode_radius(
        family, lr=x, curvature=1.0, **({"beta": beta} if params else {})
    )
    # away from critical damping (repeated roots), eig itself is accurate to 1e-10
    if params:
        disc = (1 + beta - (x if family == "heavy_ball" else (1 - beta) * x)) ** 2
        keep = np.abs(disc - 4 * beta) > 1e-3
    else:
        keep = np.ones_like(x, bool)
    np.testing.assert_allclose(np.asarray(got)[keep], ref[keep], rtol=1e-10)


def test_closed_form_radius_propagates_nan():
    """A NaN coefficient gives NaN, never the complex-pair radius sqrt(q) (which would
    read as stable)."""
    for radius in (
        modes.quadratic_radius(np.nan, 0.5),
        modes.quadratic_radius(1, np.nan),
    ):
        assert np.isnan(radius)
    assert np.isnan(modes.quadratic_radius(np.nan, 0.5, xp=np))
    assert np.isnan(modes.heavy_ball_radius(np.nan, 0.5))
    assert np.isnan(modes.ema_momentum_radius(0.5, np.nan))
    assert float(modes.quadratic_radius(0.0, 0.25)) == 0.5  # the pair's branch


@pytest.mark.parametrize(
    "family, kw, match",
    [
        ("gd", {"beta": 0.5}, r"gd: takes \(\)"),
        ("heavy_ball", {}, "heavy_ball: takes"),
        ("aggmo", {"betas": []}, "betas: needs at least one"),
        ("adam", {}, "family"),
    ],
)
def test_block_bad_inputs(family, kw, match):
    with pytest.raises(ValueError, match=match):
        modes.block(family, 1.0, **kw)


def test_radius_near_critical_damping_against_mpmath():
    """At a double root eig is only ~1e-8 accurate; the closed form is checked against
    50-digit roots of the characteristic polynomial instead."""
    beta = 0.81
    x_crit = (1 - np.sqrt(beta)) ** 2  # s^2 = 4q for heavy ball
    mpmath.mp.dps = 50
    for dx in (0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-6):
        x = x_crit + dx
        s = 1 + beta - x
        roots = mpmath.polyroots([1, -mpmath.mpf(s), mpmath.mpf(beta)], maxsteps=200)
        ref = float(max(abs(r) for r in roots))
        got = float(modes.heavy_ball_radius(x, beta))
        assert abs(got - ref) <= 1e-10 * ref, (dx, got, ref)


@pytest.mark.parametrize(
    "family, params, exact",
    [
        ("gd", {}, 2.0),
        ("heavy_ball", {"beta": 0.9}, 2 * 1.9),
        ("heavy_ball", {"beta": 0.3}, 2 * 1.3),
        ("ema_momentum", {"beta": 0.9}, 2 * 1.9 / 0.1),
        ("ema_momentum", {"beta": 0.5}, 2 * 1.5 / 0.5),
        ("aggmo", {"betas": (0.9, 0.99, 0.999)}, 6 / (1 / 19 + 1 / 199 + 1 / 1999)),
    ],
)
def test_boundaries(family, params, exact):
    for h in (0.5, 1.0, 3.0):
        got = analyses.max_stable_learning_rate(family, h, **params) * h
        assert abs(got - exact) <= 1e-12 * exact, (h, got, exact)


def test_aggmo_boundary_digits():
    """x* = 2k / sum_i (1 - b_i)/(1 + b_i) from p(-1) = 0 (see analyses.symbolic)."""
    got = analyses.max_stable_learning_rate("aggmo", 1.0, betas=(0.9, 0.99, 0.999))
    assert f"{got:.6f}" == "103.169088"


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: optimizers.gd(-0.1), "lr: must be >= 0"),
        (lambda: optimizers.gd(float("nan")), "lr: must be finite"),
        (lambda: optimizers.heavy_ball(0.1, 1.0), "beta: must be < 1"),
        (lambda: optimizers.ema_momentum(0.1, -1.0), "beta: must be > -1"),
        (lambda: optimizers.aggmo(0.1, (0.9, 1.2)), r"betas\[1\]"),
        (lambda: optimizers.aggmo(0.1, ()), "betas: needs at least one"),
        (lambda: optimizers.adam_aggmo(0.1, beta2=1.0), "beta2"),
        (lambda: optimizers.adam_aggmo(0.1, eps=-1.0), "eps"),
        (lambda: optimizers.adam_aggmo(0.1, eps=0.0), "eps: must be > 0"),
        (lambda: optimizers.nominal_linear(0.1, np.ones((2, 3))), "P: must be square"),
        (lambda: optimizers.nominal_linear(-0.1, np.eye(2)), "alpha"),
        (
            lambda: optimizers.preconditioned(0.1, np.eye(2), np.eye(3)),
            "preconditioner: expected shape",
        ),
    ],
)
def test_bad_hyperparameters(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_matrix_optimizer_rejects_wrong_parameter_shape():
    opt = optimizers.nominal_linear(0.1, np.eye(3))
    with pytest.raises(
        ValueError, match=r"P: acts on a parameter vector of shape \(3,\)"
    ):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))


def test_closed_loop_freezes_counters_and_injected_hyperparameters():
    """Adam's counter and inject_hyperparams' learning rate are not state: the loop
    of the injected optimizer is Adam's, with no extra eigenvalue 1."""
    prob = NoisyQuadratic.from_eigenvalues([0.5, 1.0, 2.0])
    x = jnp.array([1.0, -0.5, 0.25])
    state = optax.adam(0.1).init(x)
    for _ in range(3):  # away from v = 0, where Adam has no derivative
        updates, state = optax.adam(0.1).update(prob.hessian @ x, state)
        x = optax.apply_updates(x, updates)
    plain = operators.closed_loop(optax.adam(0.1), prob, x, state)
    injected_opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    injected_state = injected_opt.init(x)._replace(inner_state=state)
    injected = operators.closed_loop(injected_opt, prob, x, injected_state)
    assert plain.transition.shape == (9, 9)  # params, mu, nu; the count is frozen
    np.testing.assert_array_equal(injected.transition, plain.transition)
    sgd = operators.closed_loop(optax.inject_hyperparams(optax.sgd)(0.1), prob)
    np.testing.assert_allclose(sgd.transition, np.eye(3) - 0.1 * prob.hessian)
    with pytest.raises(ValueError, match="params: expected a floating dtype"):
        operators.closed_loop(optax.sgd(0.1), prob, np.array([1, 2, 3]))


def test_nominal_and_preconditioned_operators():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 3))
    h = a @ a.T + np.eye(3)
    p_mat = 0.1 * rng.standard_normal((3, 3))
    c = np.diag([0.5, 1.0, 2.0])
    prob = noisy_quadratic(h)
    for opt, pre in [
        (optimizers.nominal_linear(0.05, p_mat), None),
        (optimizers.preconditioned(0.05, p_mat, c), c),
    ]:
        loop = operators.closed_loop(opt, prob)
        ref = operators.nominal_closed_loop(h, p_mat, 0.05, preconditioner=pre)
        np.testing.assert_allclose(loop.transition, ref.transition, atol=1e-14)
        np.testing.assert_allclose(loop.noise_gain, ref.noise_gain, atol=1e-14)


def test_adam_aggmo_matches_formula_and_keeps_float32():
    opt = optimizers.adam_aggmo(0.1, betas=(0.5, 0.9), beta2=0.99, eps=1e-6)
    g = jnp.array([1.0, -3.0], jnp.float32)
    u, state = opt.update(g, opt.init(jnp.zeros(2, jnp.float32)))
    u, state = opt.update(g, state)
    m1, m2 = 0.5 * 0.5 * g + 0.5 * g, 0.9 * 0.1 * g + 0.1 * g
    v = 0.99 * 0.01 * g**2 + 0.01 * g**2
    np.testing.assert_allclose(u, -0.1 * (m1 + m2) / 2 / np.sqrt(v + 1e-6), rtol=1e-6)
    assert u.dtype == jnp.float32
    assert all(x.dtype == jnp.float32 for x in jax_leaves(state))


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_optimizers_compose_with_optax():
    opt = optax.chain(optimizers.heavy_ball(0.1, 0.5), optax.clip(1.0))
    params = jnp.ones(3)
    updates, _ = opt.update(jnp.full(3, 100.0), opt.init(params), params)
    assert float(jnp.max(jnp.abs(updates))) <= 1.0


def test_aggmo_default_decays_give_the_documented_boundary():
    """aggmo's default betas put the per-mode boundary at lr h = 103.169... (its
    docstring): the real optimizer's loop is stable just below, unstable just above."""
    prob = NoisyQuadratic.from_eigenvalues([1.0])
    for lr, stable in (
        (103.169088 * (1 - 1e-4), True),
        (103.169088 * (1 + 1e-4), False),
    ):
        loop = operators.closed_loop(optimizers.aggmo(lr), prob)
        rho = np.max(np.abs(np.linalg.eigvals(np.asarray(loop.transition))))
        assert (rho < 1) == stable, (lr, rho)


def test_adam_aggmo_defaults_first_step():
    """Defaults beta2 = 0.999, eps = 1e-6, betas = (0.9, 0.99, 0.999): from a zero
    state, m_i = (1 - b_i) g and v = 0.001 g^2, so the first update is
    -lr mean_i(1 - b_i) g / sqrt(0.001 g^2 + 1e-6)."""
    opt = optimizers.adam_aggmo(0.1)
    g = jnp.array([0.01, -0.03, 2.0])
    u, _ = opt.update(g, opt.init(jnp.zeros(3)))
    mean_decay = (0.1 + 0.01 + 0.001) / 3
    want = -0.1 * mean_decay * np.asarray(g) / np.sqrt(1e-3 * np.asarray(g) ** 2 + 1e-6)
    np.testing.assert_allclose(u, want, rtol=1e-12)


def test_closed_loop_passes_params_to_update():
    """optax.add_decayed_weights reads params: sgd with weight decay w has the loop
    I - lr (H + w I), noise gain lr H."""
    h = np.array([[2.0, 0.5], [0.5, 1.0]])
    opt = optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.3))
    loop = operators.closed_loop(opt, noisy_quadratic(h))
    np.testing.assert_allclose(
        loop.transition, np.eye(2) - 0.3 * (h + 0.1 * np.eye(2)), rtol=1e-14
    )
    np.testing.assert_allclose(loop.noise_gain, 0.3 * h, rtol=1e-14)


def test_closed_loop_default_point_is_the_optimum():
    """Default params are zeros with a fresh state: there g = 0, so adam_aggmo's
    parameter block is I - lr mean_i(1 - b_i) H / sqrt(eps) (d(g^2)/dphi = 0)."""
    h = np.array([[2.0, 0.5], [0.5, 1.0]])
    opt = optimizers.adam_aggmo(1e-3, betas=(0.5, 0.9), beta2=0.9, eps=1e-4)
    loop = operators.closed_loop(opt, noisy_quadratic(h))
    want = np.eye(2) - 1e-3 * 0.3 * h / 1e-2
    np.testing.assert_allclose(loop.parameter_block, want, rtol=1e-12)


def test_closed_loop_rejects_params_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"params: expected shape \(3,\)"):
        operators.closed_loop(
            optimizers.gd(0.1),
            NoisyQuadratic.from_eigenvalues([1.0, 2.0, 3.0]),
            np.zeros(2),
        )


# ------------------------------------------------------------------ the family registry

# family -> hyperparameters, and the per-mode x = step * h they give at curvature h
REGISTRY_CASES = {
    "gd": ({"lr": 0.3}, 0.3),
    "nominal": ({"alpha": 0.2, "p": 0.15, "preconditioner": 1.0}, 0.35),
    "heavy_ball": ({"lr": 0.3, "beta": 0.6}, 0.3),
    "ema_momentum": ({"lr": 0.3, "beta": 0.8}, 0.3),
    "nesterov": ({"lr": 0.3, "beta": 0.5}, 0.3),
    "aggmo": ({"lr": 0.3, "betas": (0.5, 0.9, 0.99)}, 0.3),
}


def test_registry_names_every_family_once():
    assert tuple(optimizers.FAMILIES) == tuple(REGISTRY_CASES)
    assert set(analyses.regions.FAMILY_ARGS) == set(optimizers.FAMILIES)
    assert set(analyses.robust.ENDPOINT_FAMILIES) <= set(optimizers.FAMILIES)
    for name, fam in optimizers.FAMILIES.items():
        assert fam.name == name and fam.step in fam.hyperparameters
    with pytest.raises(TypeError):
        optimizers.FAMILIES["adam"] = None  # read-only


@pytest.mark.parametrize("name", list(REGISTRY_CASES))
def test_registry_state_space_is_the_block(name):
    """On curvature h the loop A + h B C of the state-space triple is similar to the
    per-mode block at x = step h (momenta scaled by the step), and the registry's
    characteristic polynomial is that of both."""
    fam = optimizers.FAMILIES[name]
    hyper, step = REGISTRY_CASES[name]
    A, B, C = fam.state_space(**fam.check(**hyper))
    block_params = {k: hyper[k] for k in fam.block_params}
    for h in (0.5, 2.0, 7.0):
        block, _ = fam.block(step * h, **block_params)
        k = A.shape[0]
        scale = np.diag([1.0] + [step] * (k - 1))
        np.testing.assert_allclose(
            scale @ (A + h * B @ C) @ np.linalg.inv(scale), block, atol=1e-14
        )
        np.testing.assert_allclose(
            fam.characteristic(step * h, **block_params),
            np.poly(np.asarray(block)),
            atol=1e-12,
        )
        if fam.radius is not None:
            ref = np.max(np.abs(np.linalg.eigvals(np.asarray(block))))
            got = fam.radius(step * h, **block_params, xp=np)
            np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize("name", [n for n in REGISTRY_CASES if n != "nominal"])
def test_registry_factory_is_the_block(name):
    """The registry's optax factory has the registry's block as its closed loop."""
    fam = optimizers.FAMILIES[name]
    hyper, lr = REGISTRY_CASES[name]
    h = 1.7
    loop = operators.closed_loop(
        fam.factory(**hyper), NoisyQuadratic.from_eigenvalues([h])
    )
    block, _ = fam.block(lr * h, **{k: hyper[k] for k in fam.block_params})
    np.testing.assert_allclose(
        np.sort_complex(np.linalg.eigvals(np.asarray(loop.transition))),
        np.sort_complex(np.linalg.eigvals(np.asarray(block))),
        rtol=1e-10,
        atol=1e-12,
    )


def test_registry_checks_name_the_argument():
    fam = optimizers.FAMILIES["heavy_ball"]
    assert fam.check(lr=1, beta=0.5) == {"lr": 1.0, "beta": 0.5}
    with pytest.raises(ValueError, match="beta"):
        fam.check(lr=0.1, beta=1.0)
    with pytest.raises(ValueError, match="lr"):
        fam.check(lr=-0.1, beta=0.5)
    with pytest.raises(ValueError, match=r"heavy_ball: takes .*missing \['beta'\]"):
        fam.check(lr=0.1)
    with pytest.raises(ValueError, match="preconditioner"):
        optimizers.FAMILIES["nominal"].check(alpha=0.1, preconditioner=0.0)


def test_modes_families_tuple_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="optimizers.FAMILIES"):
        families = modes.FAMILIES
    assert families is optimizers.FAMILIES
    assert {"gd", "heavy_ball", "ema_momentum", "nesterov", "aggmo"} <= set(families)
    with pytest.raises(AttributeError):
        modes.NOT_A_NAME  # noqa: B018


def test_family_names_elsewhere_are_registry_names():
    # the lists that keep their own extra members (STAR's AdamAggMo, Adam, a learned
    # momentum) spell every linear family as the registry does
    from stability.analyses import regions, robust, symbolic
    from stability.cli import region
    from stability.lemmas import joint
    from stability.operators import network

    names = set(optimizers.FAMILIES)
    assert set(regions.FAMILY_ARGS) == names
    assert set(region.REGION_FAMILIES) == names
    assert set(robust.ENDPOINT_FAMILIES) <= names
    assert set(symbolic.FAMILIES) == names
    assert set(joint.FAMILIES) - {"adam_aggmo", "learned_momentum"} <= names
    assert set(network.THRESHOLD_FAMILIES) - {"adam"} <= names
