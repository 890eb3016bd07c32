"""lopt.dynamics: linearised STAR on the NQM, Arnoldi against dense eig."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stability import analyses, operators
from stability.lopt import dynamics as dy
from stability.lopt import star
from stability.lopt.tasks import Evaluation
from stability.lopt.theta import MOMENTUM_DECAYS
from stability.operators import closed_loop
from stability.problems import NoisyQuadratic


@pytest.fixture(scope="module")
def problem():
    return dy.default_problem(3, noise_var=1e-3, condition=10.0)


def test_linearised_star_along_trajectory_shapes(problem):
    rec = dy.linearized_star_along_trajectory(
        None, problem, 10, nominal_stepsize=0.03, every=5, num_seeds=2
    )
    # joint state: params, 3 momenta, second moment, 3 full Adafactor accumulators
    assert rec.dim == 8 * problem.dim
    assert rec.rho.shape == rec.rho_params.shape == (2, 2)
    assert rec.loss.shape == rec.clean_loss.shape == (2, 10)
    assert rec.second_moment.shape == (2, 2, problem.dim)
    assert np.all(rec.second_moment[:, 0] == 0)  # v before the first step
    assert np.all(rec.second_moment[:, 1] > 0)
    assert np.all(np.isfinite(rec.rho)) and np.all(rec.rho > 0)
    assert rec.clean_loss[0, -1] < rec.clean_loss[0, 0]


def test_pushed_nominal_step_predicts_and_shows_divergence(problem):
    # AggMo nominal term (no preconditioning): the loop is linear, and the exact
    # per-mode limit is a h < 103.17 with h_max = 1.
    sweep = dy.push_until_divergence(
        None,
        problem,
        [10.0, 200.0],
        num_steps=30,
        num_seeds=1,
        nominal_estimator="AggMo",
    )
    assert sweep.rho_max[0] < 1 < sweep.rho_initial[1]
    assert sweep.predicted_diverges.tolist() == [False, True]
    assert sweep.observed_diverges.tolist() == [False, True]
    assert not sweep.disagree.any() and not sweep.note
    # the loop is linear, so rho is the same at every step and the predicted loss
    # ratio after 30 steps is rho^(2 * 30)
    np.testing.assert_allclose(sweep.rho_max, sweep.rho_initial, rtol=1e-9)
    assert sweep.predicted_log_growth[0] == 0
    np.testing.assert_allclose(
        sweep.predicted_log_growth[1], 60 * np.log(sweep.rho_max[1]), rtol=1e-9
    )


def test_parameter_block_radius_is_the_nominal_steps(problem):
    # AggMo nominal term alone: phi' = phi - (a/3) sum_k (b_k m_k + (1 - b_k) H phi),
    # so the parameter block is I - a c H, with c the mean of STAR's 1 - b_k
    rec = dy.linearized_star_along_trajectory(
        None, problem, 4, nominal_stepsize=10.0, nominal_estimator="AggMo"
    )
    one_minus = 1 - np.float32(MOMENTUM_DECAYS).astype(np.float64)
    h = np.linalg.eigvalsh(problem.hessian)
    expected = np.max(np.abs(1 - 10.0 * np.mean(one_minus) * h))
    np.testing.assert_allclose(rec.rho_params, expected, rtol=1e-12)
    assert np.all(np.abs(rec.rho - expected) > 1e-3)  # the joint loop's differs


def test_pushed_adam_aggmo_step_has_rho_above_one(problem):
    sweep = dy.push_until_divergence(None, problem, [10.0], num_steps=30, num_seeds=1)
    assert sweep.rho_initial[0] > 1 and sweep.predicted_diverges[0]
    assert sweep.observed_diverges[0]


def _tiny_task():
    """Softmax regression, 4 features, 3 classes, 8 fixed examples."""
    x = jax.random.normal(jax.random.key(0), (8, 4), jnp.float32)
    y = jnp.arange(8, dtype=jnp.int32) % 3

    def init(key):
        w = 0.5 * jax.random.normal(key, (4, 3), jnp.float32)
        return {"w": w, "b": jnp.zeros(3, jnp.float32)}

    def loss(p, batch):
        xb, yb = batch
        logp = jax.nn.log_softmax(xb @ p["w"] + p["b"])
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def evaluate(p):
        return Evaluation(loss(p, (x, y)), jnp.float32(0))

    # any object with init, loss and sample_batch will do
    return types.SimpleNamespace(
        init=init, loss=loss, sample_batch=lambda key: (x, y), evaluate=evaluate
    )


def test_arnoldi_matches_dense_eig_on_a_tiny_task():
    task = _tiny_task()
    opt = star(dy.nominal_theta(), nominal_stepsize=0.05)
    batch = task.sample_batch(None)

    @jax.jit
    def three_steps(params):  # move away from the all-zero accumulators
        def step(carry, _):
            p, s = carry
            u, s = opt.update(jax.grad(task.loss)(p, batch), s, p)
            return (jax.tree.map(jnp.add, p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), None, length=3)[0]

    params, state = three_steps(task.init(jax.random.key(0)))
    fn, z = operators.training_step(task.loss, opt, params, state, batch)
    dense = np.linalg.eigvals(np.asarray(jax.jit(jax.jacfwd(fn))(z), np.float64))
    dense = dense[np.argsort(-np.abs(dense))]
    jac, _ = operators.step_jacobian(task.loss, opt, params, state, batch)
    pairs = analyses.arnoldi(jac, k=4, tol=1e-8)
    vals, matvecs = pairs.eigenvalues, pairs.matvecs
    assert z.size > 40 and matvecs > 0
    np.testing.assert_allclose(np.abs(vals), np.abs(dense[:4]), rtol=1e-4)

    rec = dy.top_eigenvalues_along_training(task, opt, [0, 3], k=4, tol=1e-8)
    assert rec.eigenvalues.shape == (2, 4) and rec.dim == z.size
    np.testing.assert_allclose(rec.rho[1], np.abs(dense[0]), rtol=1e-4)
    assert rec.residuals.shape == (2, 4)
    assert np.all(rec.residuals <= 1e-4 * np.abs(rec.eigenvalues))  # float32 JVPs


def test_metagrad_variance_grows_with_the_horizon_when_unstable(problem):
    rec = dy.metagrad_variance_vs_rho(
        None,
        problem,
        [1.0, 200.0],
        horizons=(4, 12),
        samples=8,
        nominal_estimator="AggMo",
    )
    assert rec.variance.shape == (2, 2)
    assert rec.rho[0] < 1 < rec.rho[1]
    assert rec.variance[1, 1] > 1e3 * rec.variance[1, 0]
    assert rec.variance_rate[1] > 0.5 * rec.predicted_rate[1] > 0


def test_default_problem_curvatures_are_log_spaced_up_to_one():
    problem = dy.default_problem(3, noise_var=2e-3, condition=100.0)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(problem.hessian), [0.01, 0.1, 1.0], rtol=1e-12
    )
    np.testing.assert_allclose(problem.noise_cov, 2e-3 * np.eye(3), rtol=1e-12)


def test_trajectory_from_the_optimum_is_moved_by_the_noise_alone():
    # x0 = 0: before step 0 the clean loss is 0 and the sampled loss is
    # l_0 = xi^T H xi / 2, of mean tr(H Sigma) / 2; only the noisy gradient moves
    # the parameters away, differently on every seed
    h, var, seeds = np.array([1.0, 0.5, 0.25]), 1e-2, 64
    problem0 = NoisyQuadratic.from_eigenvalues(h, var, np.zeros(3))
    rec = dy.linearized_star_along_trajectory(
        None, problem0, 2, nominal_stepsize=0.03, num_seeds=seeds
    )
    np.testing.assert_array_equal(rec.steps, [0, 1])
    np.testing.assert_array_equal(rec.clean_loss[:, 0], 0.0)
    mean = 0.5 * var * h.sum()
    std = 0.5 * var * np.sqrt(2 * np.sum(h**2))  # of one draw: sum of h_i var chi2_1
    assert abs(rec.loss[:, 0].mean() - mean) < 3 * std / np.sqrt(seeds)
    assert np.all(rec.clean_loss[:, 1] > 0)
    assert np.unique(rec.clean_loss[:, 1]).size == seeds


def test_sweeps_pair_values_with_their_seeds_and_hold_rho_for_every_steps(problem):
    # AggMo nominal term: the loop is linear, its rho the same at every state;
    # at the first state (x0, zero accumulators) it is known without a trajectory
    theta = dy.nominal_theta()
    first = []
    for a in (10.0, 200.0):
        opt = star(theta, nominal_stepsize=a, nominal_estimator="AggMo")
        params = jnp.asarray(problem.x0)
        loop = closed_loop(opt, problem, params, opt.init(params))
        first.append(np.max(np.abs(np.linalg.eigvals(loop.transition))))
    sweep = dy.push_until_divergence(
        None,
        problem,
        [10.0, 200.0],
        num_steps=7,
        num_seeds=2,
        every=2,
        nominal_estimator="AggMo",
    )
    np.testing.assert_allclose(sweep.rho_initial, first, rtol=1e-9)
    np.testing.assert_allclose(sweep.rho_max, first, rtol=1e-9)
    # states 0, 2, 4, 6 each held for 2 steps
    np.testing.assert_allclose(
        sweep.predicted_log_growth[1], 16 * np.log(first[1]), rtol=1e-9
    )
    # horizons: judged on the states before the horizon, 0 and 2 for T = 3 and 4
    sweep = dy.push_until_divergence(
        None,
        problem,
        [3, 4, 5],
        parameter="horizon",
        nominal_stepsize=200.0,
        num_seeds=1,
        every=2,
        nominal_estimator="AggMo",
    )
    assert sweep.horizon == 5
    np.testing.assert_allclose(sweep.rho_final, first[1], rtol=1e-9)
    np.testing.assert_allclose(
        sweep.predicted_log_growth, np.array([8, 8, 12]) * np.log(first[1]), rtol=1e-9
    )
    assert sweep.observed_diverges.all()


def test_metagradient_statistics_against_their_definitions():
    # no noise: every sample is the same unroll (zero variance); the meta-loss of
    # horizon 1 is l_0(x0), which theta does not change (zero meta-gradient); rho is
    # the median along the trajectory, predicted_rate 4 log rho where rho > 1
    problem0 = dy.default_problem(3, noise_var=0.0, condition=10.0)
    values = [0.03, 3.0]
    rec = dy.metagrad_variance_vs_rho(
        None, problem0, values, horizons=(1, 3), samples=2, every=1
    )
    np.testing.assert_array_equal(rec.variance, 0.0)
    np.testing.assert_array_equal(rec.mean_norm[:, 0], 0.0)
    assert np.all(rec.mean_norm[:, 1] > 0)
    for i, a in enumerate(values):
        traj = dy.linearized_star_along_trajectory(
            None, problem0, 3, nominal_stepsize=a
        )
        np.testing.assert_allclose(rec.rho[i], np.median(traj.rho[0]), rtol=1e-9)
    expected = np.where(rec.rho > 1, 4 * np.log(rec.rho), 0.0)
    np.testing.assert_allclose(rec.predicted_rate, expected, rtol=1e-12)
    assert rec.rho[1] > 1


def test_top_eigenvalues_of_a_small_linear_map():
    # d = 8 < ARPACK's default basis of 20; eigenvalues known by construction
    lam = np.array([3.0, -2.5, 2.0, 1.0, 0.5, 0.25, 0.1, 0.05])
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 8)))[0]
    a = jnp.asarray(q @ np.diag(lam) @ q.T)
    op = operators.linear_operator(lambda z: a @ z, jnp.ones(8))
    pairs = analyses.arnoldi(op, k=3, tol=1e-10)
    np.testing.assert_allclose(pairs.eigenvalues, [3.0, -2.5, 2.0], atol=1e-8)
    assert pairs.matvecs > 0 and pairs.converged
    # the deprecated dynamics.top_eigenvalues: the same numbers, its own bound on k
    with pytest.warns(DeprecationWarning, match="analyses.arnoldi"):
        top_eigenvalues = dy.top_eigenvalues
    vals, matvecs = top_eigenvalues(lambda z: a @ z, jnp.ones(8), k=3, tol=1e-10)
    np.testing.assert_allclose(vals, [3.0, -2.5, 2.0], atol=1e-8)
    assert matvecs > 0
    with pytest.raises(ValueError, match="k"):
        top_eigenvalues(lambda z: a @ z, jnp.ones(8), k=7)
    nan_map = lambda z: jnp.sqrt(-jnp.abs(z))  # noqa: E731  (no finite JVP)
    vals, matvecs = top_eigenvalues(nan_map, jnp.ones(8), k=3)
    assert np.all(np.isnan(vals)) and matvecs == 0


def test_joint_state_moved_to_operators_and_freezes_hyperparameters():
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    state = opt.init(params)
    z, unravel, ravel = operators.joint_state(params, state)
    assert z.size == 2 * 9  # params and the momentum; not the learning rate
    p, s = unravel(2 * z)
    np.testing.assert_array_equal(p["w"], 2 * params["w"])
    assert s.hyperparams == state.hyperparams and s.count == state.count
    np.testing.assert_array_equal(ravel(p, s), 2 * z)
    with pytest.warns(DeprecationWarning, match="operators.joint_state"):
        old = dy.joint_state(params, state)
    np.testing.assert_array_equal(old[0], z)
    # step_map: operators.training_step on task.loss
    task = _tiny_task()
    opt = star(dy.nominal_theta(), nominal_stepsize=0.05)
    params = task.init(jax.random.key(0))
    state, batch = opt.init(params), task.sample_batch(None)
    fn, z = operators.training_step(task.loss, opt, params, state, batch)
    with pytest.warns(DeprecationWarning, match="operators.training_step"):
        old_fn, old_z = dy.step_map(task, opt, params, state, batch)
    np.testing.assert_array_equal(old_z, z)
    np.testing.assert_array_equal(old_fn(z), fn(z))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dy.nothing  # noqa: B018
