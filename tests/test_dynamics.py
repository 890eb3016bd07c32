"""lopt.dynamics: linearised STAR on the NQM, Arnoldi against dense eig."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stability.lopt import dynamics as dy
from stability.lopt import star
from stability.lopt.tasks import Evaluation
from stability.lopt.theta import MOMENTUM_DECAYS


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
    fn, z = dy.step_map(task, opt, params, state, batch)
    dense = np.linalg.eigvals(np.asarray(jax.jit(jax.jacfwd(fn))(z), np.float64))
    dense = dense[np.argsort(-np.abs(dense))]
    vals, matvecs = dy.top_eigenvalues(fn, z, k=4, tol=1e-8)
    assert z.size > 40 and matvecs > 0
    np.testing.assert_allclose(np.abs(vals), np.abs(dense[:4]), rtol=1e-4)

    rec = dy.top_eigenvalues_along_training(task, opt, [0, 3], k=4, tol=1e-8)
    assert rec.eigenvalues.shape == (2, 4) and rec.dim == z.size
    np.testing.assert_allclose(rec.rho[1], np.abs(dense[0]), rtol=1e-4)


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
