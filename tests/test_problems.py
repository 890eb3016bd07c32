import jax
import numpy as np
import optax
import pytest

from stability import operators, optimizers, problems
from stability.problems import NoisyQuadratic, noisy_quadratic


def dense_problem(n=4, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    q = problems.random_rotation(n, seed)
    h = q @ np.diag(problems.spectra.log_uniform(n, 0.05, 1.0)) @ q.T
    a = rng.standard_normal((n, n))
    return noisy_quadratic(h, noise * (a @ a.T) / n, rng.standard_normal(n))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hessian=np.ones((2, 3))), "hessian: must be square"),
        (dict(hessian=[[1.0, 2.0], [0.0, 1.0]]), "hessian: must be symmetric"),
        (dict(hessian=[[1.0, 0.0], [0.0, -1.0]]), "hessian: must be positive definite"),
        (dict(hessian=[[np.nan, 0.0], [0.0, 1.0]]), "hessian: contains non-finite"),
        (dict(hessian=np.eye(2), noise_cov=[1.0, 2.0, 3.0]), "noise_cov: expected 2"),
        (dict(hessian=np.eye(2), noise_cov=[1.0, -2.0]), "noise_cov: variances"),
        (
            dict(hessian=np.eye(2), noise_cov=[[1.0, 2.0], [2.0, 1.0]]),
            "noise_cov: must",
        ),
        (dict(hessian=np.eye(2), noise_cov=np.eye(3)), "noise_cov: expected shape"),
        (dict(hessian=np.eye(2), x0=[1.0]), "x0: expected shape"),
    ],
)
def test_bad_problem_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        noisy_quadratic(**kwargs)


def test_from_eigenvalues_and_spectra():
    p = NoisyQuadratic.from_eigenvalues(problems.spectra.power_law(5), 0.1)
    assert p.is_diagonal and p.dim == 5
    np.testing.assert_allclose(np.diag(p.hessian), 1 / np.arange(1, 6))
    assert problems.spectra.two_level(4, 1.0, 0.01).tolist() == [1, 1, 0.01, 0.01]
    assert problems.spectra.uniform(3, 1.0, 3.0).tolist() == [3, 2, 1]  # largest first
    lu = problems.spectra.log_uniform(10, 1e-3, 1.0, seed=1)
    assert lu.min() >= 1e-3 and lu.max() <= 1 and np.all(np.diff(lu) <= 0)
    with pytest.raises(ValueError, match="eigenvalues"):
        NoisyQuadratic.from_eigenvalues([1.0, 0.0])
    with pytest.raises(ValueError, match="n: must be an integer >= 1"):
        problems.spectra.uniform(0)
    with pytest.raises(ValueError, match="n: expected an integer"):
        problems.spectra.uniform(True)
    with pytest.raises(ValueError, match="n: expected an integer"):
        problems.random_rotation(2.5)


def test_simulate_shapes_and_determinism():
    p = dense_problem()
    opt = optimizers.heavy_ball(0.5, 0.5)
    a = problems.simulate(p, opt, 30, key=jax.random.key(3), num_seeds=5)
    b = problems.simulate(p, opt, 30, key=jax.random.key(3), num_seeds=5)
    assert a.losses.shape == (5, 30) and a.final_params.shape == (5, 4)
    np.testing.assert_array_equal(a.losses, b.losses)
    with pytest.raises(ValueError, match="num_steps"):
        problems.simulate(p, opt, 0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key: expected one jax.random.key"):
        problems.simulate(p, opt, 3, key=0)
    with pytest.raises(ValueError, match="key: expected one jax.random.key"):
        problems.simulate(p, opt, 3, key=jax.random.split(jax.random.key(0)))
    legacy = problems.simulate(p, opt, 3, key=jax.random.PRNGKey(3))
    assert legacy.losses.shape == (1, 3)


def test_rollout_is_simulate_per_seed_and_keeps_the_trajectory():
    p = dense_problem()
    opt = optimizers.heavy_ball(0.5, 0.5)
    sim = problems.simulate(p, opt, 7, key=jax.random.key(3), num_seeds=2)
    keys = jax.random.split(jax.random.key(3), 2)
    runs = jax.jit(jax.vmap(lambda k: problems.rollout(p, opt, 7, k, every=3)))(keys)
    np.testing.assert_array_equal(runs.losses, sim.losses)
    np.testing.assert_array_equal(runs.params, sim.final_params)
    params, state = runs.trajectory  # the states before steps 0, 3 and 6
    assert params.shape == (2, 3, 4) and state.momenta[0].shape == (2, 3, 4)
    np.testing.assert_array_equal(params[:, 0], np.broadcast_to(p.x0, (2, 4)))
    np.testing.assert_allclose(
        runs.clean_losses[:, ::3],
        0.5 * np.einsum("sti,ij,stj->st", params, p.hessian, params),
        rtol=1e-12,
    )
    key = keys[0]
    assert problems.rollout(p, opt, 2, key).trajectory is None
    with pytest.raises(ValueError, match="every: must be an integer >= 1"):
        problems.rollout(p, opt, 2, key, every=0)
    with pytest.raises(ValueError, match="num_steps"):
        problems.rollout(p, opt, 0, key)


def test_rollout_is_differentiable_through_the_optimizer():
    # gradient descent on the noiseless h = 1: phi_t = (1 - a)^t, so the mean loss
    # over T steps is sum_t (1 - a)^(2t) / (2T); its derivative in a is known
    p = NoisyQuadratic.from_eigenvalues([1.0], noise_var=0.0, x0=[1.0])
    key, num_steps = jax.random.key(0), 5

    def meta_loss(a):
        return problems.rollout(p, optax.sgd(a), num_steps, key).losses.mean()

    a, t = 0.3, np.arange(num_steps)
    expected = np.sum(-2 * t * (1 - a) ** (2 * t - 1)) / (2 * num_steps)
    np.testing.assert_allclose(jax.grad(meta_loss)(a), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "opt",
    [optimizers.gd(0.9), optimizers.heavy_ball(0.3, 0.8), optimizers.aggmo(0.5)],
    ids=["gd", "heavy_ball", "aggmo"],
)
def test_expected_losses_match_monte_carlo(opt):
    """Joint criterion: max |z-score| over all T steps below 4.5."""
    p = dense_problem()
    num_steps, num_seeds = 60, 4000
    loop = operators.closed_loop(opt, p)
    exact = np.asarray(problems.expected_losses(p, loop, num_steps))
    rec = problems.simulate(
        p, opt, num_steps, key=jax.random.key(0), num_seeds=num_seeds
    )
    losses = np.asarray(rec.losses)
    z = (losses.mean(0) - exact) / (losses.std(0, ddof=1) / np.sqrt(num_seeds))
    assert np.max(np.abs(z)) < 4.5


@pytest.mark.parametrize("name", ["gd", "heavy_ball", "ema_momentum", "aggmo"])
def test_modal_fast_path_equals_dense(name):
    from helpers import LINEAR_OPTIMIZERS

    make, _, _ = LINEAR_OPTIMIZERS[name]
    p = NoisyQuadratic.from_eigenvalues(
        problems.spectra.log_uniform(6, 0.01, 1.0),
        [0.1, 0.2, 0.0, 0.3, 0.05, 1.0],
        x0=np.linspace(-1, 2, 6),
    )
    loop = operators.closed_loop(make(0.7), p)
    assert problems.modal_blocks(p, loop) is not None
    dense = problems.expected_losses(p, loop, 200, method="dense")
    modal = problems.expected_losses(p, loop, 200, method="modal")
    np.testing.assert_allclose(modal, dense, rtol=1e-12, atol=1e-14)


def test_modal_blocks_refuses_dense_problem():
    p = dense_problem()
    loop = operators.closed_loop(optimizers.gd(0.1), p)
    assert problems.modal_blocks(p, loop) is None
    with pytest.raises(ValueError, match="method"):
        problems.expected_losses(p, loop, 10, method="modal")


def test_rotated_problem_has_the_same_losses():
    p = dense_problem(3, seed=2)
    r = problems.rotated(p, problems.random_rotation(3, 7))
    for opt in (optimizers.gd(0.5), optimizers.heavy_ball(0.3, 0.6)):
        a = problems.expected_losses(p, operators.closed_loop(opt, p), 20)
        b = problems.expected_losses(r, operators.closed_loop(opt, r), 20)
        np.testing.assert_allclose(b, a, rtol=1e-10)
        assert problems.stationary_loss(r, operators.closed_loop(opt, r)) == (
            pytest.approx(problems.stationary_loss(p, operators.closed_loop(opt, p)))
        )


def test_stationary_loss_is_inf_on_the_stability_boundary():
    p = NoisyQuadratic.from_eigenvalues([0.5, 1.0], noise_var=0.1)
    # gd at lr h = 2: the stiff mode flips sign for ever, rho = 1 exactly
    loop = operators.closed_loop(optimizers.gd(2.0), p)
    assert problems.stationary_loss(p, loop) == np.inf
    assert np.isfinite(
        problems.stationary_loss(p, operators.closed_loop(optimizers.gd(1.9), p))
    )


def test_bad_rotation_state_and_loop():
    p = NoisyQuadratic.from_eigenvalues([1.0, 2.0], noise_var=0.1)
    q = problems.random_rotation(2, 0)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(problems.rotated(p, q).hessian), [1.0, 2.0]
    )
    with pytest.raises(ValueError, match="q: must be orthogonal"):
        problems.rotated(p, 2 * np.eye(2))
    with pytest.raises(ValueError, match=r"q: expected shape \(2, 2\)"):
        problems.rotated(p, np.eye(3))
    with pytest.raises(ValueError, match=r"noise_var: expected a scalar or shape"):
        NoisyQuadratic.from_eigenvalues([1.0, 2.0], noise_var=[1.0, 2.0, 3.0])
    loop = operators.closed_loop(optimizers.gd(0.1), p)
    with pytest.raises(ValueError, match="z0: contains non-finite"):
        problems.expected_losses(p, loop, 3, z0=[np.nan, 1.0])
    bad = loop._replace(transition=loop.transition.at[0, 0].set(np.nan))
    with pytest.raises(ValueError, match="closed_loop: transition or noise_gain"):
        problems.expected_losses(p, bad, 3)


def test_stationary_loss_is_the_limit():
    p = dense_problem(noise=0.3)
    loop = operators.closed_loop(optimizers.ema_momentum(1.0, 0.5), p)
    limit = problems.stationary_loss(p, loop)
    tail = problems.expected_losses(p, loop, 3000)[-1]
    np.testing.assert_allclose(tail, limit, rtol=1e-10)
    unstable = operators.closed_loop(optimizers.gd(100.0), p)
    assert problems.stationary_loss(p, unstable) == float("inf")


def test_expected_losses_gd_closed_form():
    """1-D GD: m_t = (1-x)^t x0, var_{t+1} = (1-x)^2 var_t + x^2 s."""
    h, a, s, x0 = 2.0, 0.3, 0.5, 1.5
    p = NoisyQuadratic.from_eigenvalues([h], s, [x0])
    got = problems.expected_losses(p, operators.closed_loop(optimizers.gd(a), p), 5)
    x, var, want = a * h, 0.0, []
    for t in range(5):
        want.append(0.5 * h * (((1 - x) ** t * x0) ** 2 + var + s))
        var = (1 - x) ** 2 * var + x**2 * s
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_is_diagonal_needs_diagonal_noise_too():
    """is_diagonal: H *and* the noise covariance diagonal (its docstring)."""
    h = np.diag([1.0, 2.0])
    assert noisy_quadratic(h, [0.1, 0.2]).is_diagonal
    assert not noisy_quadratic(h, [[1.0, 0.5], [0.5, 1.0]]).is_diagonal
    assert not noisy_quadratic([[2.0, 0.5], [0.5, 1.0]], [0.1, 0.2]).is_diagonal


def test_default_x0_is_all_ones():
    np.testing.assert_array_equal(
        NoisyQuadratic.from_eigenvalues([1.0, 2.0]).x0, [1, 1]
    )
    np.testing.assert_array_equal(noisy_quadratic(np.eye(3)).x0, [1, 1, 1])


def test_loss_and_grad_by_hand():
    """l = 1/2 d^T H d and grad = H d with d = phi - xi: d = (0.5, 3) gives
    d^T H d = 2 (0.25) + 2 (0.5)(0.5)(3) + 9 = 11 and H d = (2.5, 3.25)."""
    p = noisy_quadratic([[2.0, 0.5], [0.5, 1.0]])
    phi, xi = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    np.testing.assert_allclose(p.loss(phi, xi), 5.5, rtol=1e-15)
    np.testing.assert_allclose(p.grad(phi, xi), [2.5, 3.25], rtol=1e-15)


def test_simulate_loss_uses_the_gradients_noise_draw():
    """losses[s, 0] = l_0(x0) with the draw xi_0 that made the first gd step, so in
    1-D: x1 = x0 - a h (x0 - xi_0) and l_0 = h/2 ((x0 - x1) / (a h))^2."""
    h, a, x0 = 2.0, 0.3, 1.5
    p = NoisyQuadratic.from_eigenvalues([h], 0.5, [x0])
    rec = problems.simulate(p, optimizers.gd(a), 1, key=jax.random.key(1), num_seeds=8)
    d = (x0 - np.asarray(rec.final_params)[:, 0]) / (a * h)
    np.testing.assert_allclose(rec.losses[:, 0], 0.5 * h * d**2, rtol=1e-12)


def test_more_bad_problem_and_simulation_inputs():
    with pytest.raises(ValueError, match="eigenvalues"):
        NoisyQuadratic.from_eigenvalues([])
    with pytest.raises(ValueError, match="n: must be an integer >= 1"):
        problems.random_rotation(0)
    p = NoisyQuadratic.from_eigenvalues([1.0])
    with pytest.raises(ValueError, match="num_seeds"):
        problems.simulate(p, optimizers.gd(0.1), 3, key=jax.random.key(0), num_seeds=0)


def test_expected_losses_with_a_state_not_a_multiple_of_n():
    """A loop whose joint state has one scalar slot (d = n + 1) has no modal form
    (modal_blocks gives None) and goes dense: per mode m_t = 0.5^t,
    v_{t+1} = 0.25 v_t + 0.25 s, E l_t = 1/2 sum_i h_i (m_t^2 + v_t + s)."""
    h, s = np.array([1.0, 2.0]), 0.5
    p = NoisyQuadratic.from_eigenvalues(h, s)
    loop = operators.ClosedLoop(
        np.diag([0.5, 0.5, 0.9]), np.array([[0.5, 0.0], [0.0, 0.5], [0.0, 0.0]])
    )
    assert problems.modal_blocks(p, loop) is None
    got = problems.expected_losses(p, loop, 6)
    var, want = 0.0, []
    for t in range(6):
        want.append(0.5 * np.sum(h * (0.25**t + var + s)))
        var = 0.25 * var + 0.25 * s
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_simulate_rejects_a_batch_of_raw_keys():
    p = NoisyQuadratic.from_eigenvalues([1.0])
    with pytest.raises(ValueError, match="key: expected one jax.random.key"):
        problems.simulate(
            p, optimizers.gd(0.1), 3, key=jax.random.split(jax.random.PRNGKey(0))
        )


def test_symmetry_and_definiteness_checks_are_scale_aware():
    """Symmetry is checked relative to the matrix's scale: a badly scaled rotated H
    (roundoff asymmetry ~1e-9 on entries ~1e7) passes, a tiny matrix with a 1e-3
    relative asymmetry does not. H must be strictly definite; a rank-one noise
    covariance (eigenvalues -1e-16 by roundoff) is a valid PSD one."""
    p = NoisyQuadratic.from_eigenvalues(np.geomspace(1e8, 1.0, 5))
    r = problems.rotated(p, problems.random_rotation(5, 0))
    np.testing.assert_allclose(np.linalg.eigvalsh(r.hessian), np.geomspace(1.0, 1e8, 5))
    with pytest.raises(ValueError, match="hessian: must be symmetric"):
        noisy_quadratic(1e-8 * np.array([[1.0, 1e-3], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="hessian: must be positive definite"):
        noisy_quadratic(np.diag([1.0, 0.0]))
    for v in ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]):
        cov = np.outer(v, v)
        f = noisy_quadratic(np.eye(3), cov).noise_factor()
        np.testing.assert_allclose(f @ f.T, cov, atol=1e-14)


# -- issue 24: the public constructor validates; linearised loops are flagged --------


@pytest.mark.parametrize(
    "args, match",
    [
        (([[1.0, 2.0], [0.0, 1.0]], np.eye(2), np.ones(2)), "hessian: must be symm"),
        (([[1.0, 0.0], [0.0, -1.0]], np.eye(2), np.ones(2)), "hessian: must be pos"),
        (([[np.nan, 0.0], [0.0, 1.0]], np.eye(2), np.ones(2)), "hessian: contains"),
        ((np.ones((2, 3)), np.eye(2), np.ones(2)), "hessian: must be square"),
        (("abc", np.eye(2), np.ones(2)), "hessian: expected a numeric"),
        ((np.eye(2), np.eye(3), np.ones(2)), "noise_cov: expected shape"),
        ((np.eye(2), np.ones(2), np.ones(2)), "noise_cov: expected 2 dim"),
        ((np.eye(2), [[1.0, 2.0], [2.0, 1.0]], np.ones(2)), "noise_cov: must be pos"),
        ((np.eye(2), [[1.0, np.inf], [0.0, 1.0]], np.ones(2)), "noise_cov: contains"),
        ((np.eye(2), np.eye(2), np.ones(3)), "x0: expected shape"),
        ((np.eye(2), np.eye(2), [np.nan, 1.0]), "x0: contains"),
    ],
)
def test_noisy_quadratic_constructor_validates(args, match):
    with pytest.raises(ValueError, match=match):
        NoisyQuadratic(*args)


def test_noisy_quadratic_validates_once(monkeypatch):
    """noisy_quadratic() leaves the validation to the constructor: one eigenvalue
    decomposition per matrix, as before."""
    calls = []
    eigvalsh = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda a: calls.append(1) or eigvalsh(a))
    p = noisy_quadratic([[2.0, 0.5], [0.5, 1.0]], [[0.1, 0.0], [0.0, 0.2]], [1.0, 2.0])
    assert len(calls) == 2 and p.x0.tolist() == [1.0, 2.0]
    assert isinstance(p.hessian, np.ndarray) and p.hessian.dtype == np.float64


def test_closed_loop_bad_optimizer_or_problem():
    p = NoisyQuadratic.from_eigenvalues([1.0, 0.5])
    with pytest.raises(ValueError, match="^optimizer: expected an optax"):
        operators.closed_loop("adam", p)
    with pytest.raises(ValueError, match="^problem: expected a NoisyQuadratic"):
        operators.closed_loop(optimizers.gd(0.1), np.eye(2))
    with pytest.raises(ValueError, match="^problem: expected a NoisyQuadratic"):
        operators.step_function(optimizers.gd(0.1), "abc")


def _adam_loop(p):
    import jax.numpy as jnp
    import optax

    opt = optax.adam(0.1)
    x = jnp.array([0.3, -0.2])
    state = opt.init(x)
    for _ in range(3):
        u, state = opt.update(p.grad(x, 0 * x), state, x)
        x = optax.apply_updates(x, u)
    return operators.closed_loop(opt, p, x, state)


def test_expected_losses_warns_on_a_linearised_loop():
    import optax

    p = NoisyQuadratic.from_eigenvalues([1.0, 0.5], noise_var=0.01)
    for opt in (optimizers.heavy_ball(0.3, 0.8), optax.sgd(0.1, momentum=0.9)):
        loop = operators.closed_loop(opt, p)
        assert loop.exact is True
        problems.expected_losses(p, loop, 5)  # no warning (they are errors here)
    adam = _adam_loop(p)
    assert adam.exact is False
    with pytest.warns(problems.LinearisedLoopWarning, match="linearised=True"):
        problems.expected_losses(p, adam, 5)
    with pytest.warns(problems.LinearisedLoopWarning):
        problems.stationary_loss(p, adam)
    quiet = problems.expected_losses(p, adam, 5, linearised=True)
    assert quiet.shape == (5,)
    with pytest.raises(ValueError, match="linearised: expected True or False"):
        problems.expected_losses(p, adam, 5, linearised="yes")
    # a loop given by its matrices is exact; jit keeps the flag
    assert operators.ClosedLoop(np.eye(2) / 2, np.eye(2) / 2).exact
    traced = jax.jit(lambda: operators.closed_loop(optimizers.gd(0.1), p))()
    assert bool(traced.exact)


def test_stationary_loss_of_a_marginal_loop_is_inf():
    """Momentum 1 puts a complex pair on the unit circle (rho computed as 1 - 1e-16):
    no stationary loss (it raised LinAlgError from the singular Lyapunov solve)."""
    import optax

    p = NoisyQuadratic.from_eigenvalues([1.0, 0.5], noise_var=0.01)
    loop = operators.closed_loop(optax.sgd(0.1, momentum=1.0), p)
    assert problems.stationary_loss(p, loop) == np.inf
