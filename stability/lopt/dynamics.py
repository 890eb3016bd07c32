r"""Theory against practice: linearised learned optimizers versus what training does.

Four analyses, each returning a record (NumPy arrays; plotting lives elsewhere):

* :func:`linearized_star_along_trajectory` — STAR on a noisy quadratic (NQM): along
  a sampled trajectory, the Jacobian of one closed-loop step over the joint state
  ``z = (params, momenta, second moment, Adafactor accumulators)``
  (:func:`stability.operators.closed_loop`, taken at the actual
  ``(params_t, state_t)``, zero noise, step count frozen) and its spectral radius,
  next to the loss.
* :func:`push_until_divergence` — sweep ``nominal_stepsize`` (or the horizon) until
  training diverges; compare the predicted per-step growth ``rho`` with the loss
  growth actually observed, and flag where they disagree.
* :func:`top_eigenvalues_along_training` — on a real task (``digits_mlp``), the
  largest-magnitude eigenvalues of the step map's Jacobian with a fixed minibatch
  (:func:`stability.operators.step_jacobian`), by Arnoldi
  (:func:`stability.analyses.arnoldi`) on Jacobian-vector products: no dense matrix
  is formed.
* :func:`metagrad_variance_vs_rho` — on the NQM, the variance over noise draws of
  the meta-gradient :math:`\nabla_\theta L`, ``L`` the mean loss over a horizon,
  against ``rho`` of the optimizer.

The NQM runs are :func:`stability.problems.rollout`; the joint state is
:func:`stability.operators.joint_state`'s.

Why the linearisation can mislead: STAR's steps are divided by
:math:`\sqrt{v + 10^{-6}}` and ``v`` shrinks with the gradients, so the linearised
gain grows as training converges, while the nonlinear loop only oscillates at a
level set by the step size (sign-descent-like). ``rho > 1`` then predicts growth that
saturates instead of diverging; the records keep both numbers so that this shows.

Calling pattern::

    problem = default_problem()
    traj = linearized_star_along_trajectory(theta, problem, 200, nominal_stepsize=0.1)
    sweep = push_until_divergence(theta, problem, values=np.logspace(-3, 1, 9))
    eig = top_eigenvalues_along_training("digits_mlp", star(theta, ...), [0, 100], k=6)
"""

import time
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stability.analyses import arnoldi, spectral_radius
from stability.analyses.growth import log_slope
from stability.lopt import _dynamics_deprecated
from stability.lopt.star import star
from stability.lopt.tasks import get_task
from stability.lopt.theta import init_theta, validate_theta, zero_output_layer
from stability.operators import closed_loop, step_jacobian
from stability.problems import NoisyQuadratic, rollout

__all__ = [
    "DivergenceSweep",
    "EigenRecord",
    "MetagradRecord",
    "TrajectoryRecord",
    "default_problem",
    "linearized_star_along_trajectory",
    "metagrad_variance_vs_rho",
    "nominal_theta",
    "push_until_divergence",
    "top_eigenvalues_along_training",
]


def __getattr__(name):  # joint_state, step_map, top_eigenvalues: deprecated
    return _dynamics_deprecated.moved(name)


def default_problem(
    dim: int = 10, noise_var: float = 1e-3, condition: float = 100.0
) -> NoisyQuadratic:
    """A diagonal NQM with curvatures log-spaced in ``[1/condition, 1]``."""
    return NoisyQuadratic.from_eigenvalues(
        np.logspace(-np.log10(condition), 0.0, dim), noise_var=noise_var
    )


def nominal_theta() -> dict:
    """A STAR theta with a zero output layer: STAR is then its nominal term alone."""
    return zero_output_layer(init_theta(jax.random.key(0), heads=3))


def _theta_for(theta, dtype) -> dict:
    theta = nominal_theta() if theta is None else theta
    validate_theta(theta, heads=3)
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), dict(theta))


def _nan_reduce(fn, x, axis):
    """``np.nanmean``/``nanmedian``/``nanmax`` with all-NaN slices giving NaN
    quietly (a blown-up trajectory has no finite linearisation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return fn(x, axis=axis)


def _dtype():
    return jnp.zeros(()).dtype  # float64 under x64 (analyses), float32 otherwise


# -- STAR on the NQM along a trajectory --------------------------------------------


class TrajectoryRecord(NamedTuple):
    """STAR's linearised closed loop along sampled NQM trajectories.

    Attributes:
      steps: ``(K,)`` steps ``t`` at which the loop was linearised (at the state
        *before* step ``t``).
      rho: ``(S, K)`` spectral radius of the joint transition (params and every
        accumulator).
      rho_params: ``(S, K)`` spectral radius of its parameter block alone.
      loss: ``(S, T)`` sampled per-step loss :math:`l_t(\\phi_t)`.
      clean_loss: ``(S, T)`` :math:`\\tfrac12 \\phi_t^T H \\phi_t` (no noise term).
      dim: size of the joint state.
      nominal_stepsize: STAR's nominal step.
      second_moment: ``(S, K, n)`` STAR's second moment ``v`` at the linearisation
        points (with ``nominal_stepsize`` it gives the nominal term's effective
        per-coordinate step, :math:`\\alpha / \\sqrt{v + 10^{-6}}`).
    """

    steps: np.ndarray
    rho: np.ndarray
    rho_params: np.ndarray
    loss: np.ndarray
    clean_loss: np.ndarray
    dim: int
    nominal_stepsize: float
    second_moment: np.ndarray


def _nqm_rollout(opt_of, problem, num_steps, keys, values, every):
    """Rollouts for each ``(value, key)`` member, one vmapped program: sampled and
    clean losses ``(M, T)`` and the states before every ``every``-th step."""

    def run(value, key):
        out = rollout(problem, opt_of(value), num_steps, key, every=every)
        return out.losses, out.clean_losses, out.trajectory

    return jax.jit(jax.vmap(run))(values, keys)


def _transitions(opt_of, problem, values, points) -> np.ndarray:
    """Joint transitions ``(M, K, d, d)`` at the stacked points.

    One jitted ``closed_loop`` per point in a Python loop, not a ``vmap`` over the
    points: batching ``jax.jacfwd`` of STAR's fused MLP (a ``custom_jvp``) over
    points makes XLA's CPU compiler emit, for the same StableHLO, an executable
    whose parameter rows are all NaN in some compilations (1 in 5 to 1 in 20 on a
    loaded 2-core machine with jax 0.10.2; ``benchmarks/repro_batched_jacfwd_nan.py``
    shows it); per point, or under ``lax.map``, it has not happened. A non-finite
    transition at a finite point is computed once more.
    """

    @jax.jit
    def one(value, params, state):
        return closed_loop(opt_of(value), problem, params, state).transition

    params, state = jax.tree.map(np.asarray, points)  # cheap slicing on the host
    values = np.asarray(values)
    n_m, n_k = np.shape(params)[:2]
    out = None
    for m in range(n_m):
        for k in range(n_k):
            p, s = jax.tree.map(lambda x, m=m, k=k: x[m, k], (params, state))
            t = np.asarray(one(values[m], p, s))
            if not np.all(np.isfinite(t)) and np.all(np.isfinite(np.asarray(p))):
                t = np.asarray(one(values[m], p, s))
            if out is None:
                out = np.empty((n_m, n_k, *t.shape), t.dtype)
            out[m, k] = t
    return out


def _radii(opt_of, problem, values, points):
    """``(rho, rho_params, d)``: spectral radii ``(M, K)`` of the joint transitions
    at the stacked points and of their parameter blocks, and the joint size ``d``;
    NaN where a transition is not finite."""
    m = np.asarray(_transitions(opt_of, problem, values, points), np.float64)
    n = problem.dim
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(m), axis=(-1, -2))
        safe = np.where(finite[..., None, None], m, 0.0)
        rho = np.where(finite, spectral_radius(safe, method="eig"), np.nan)
        block = safe[..., :n, :n]
        rho_p = np.where(finite, spectral_radius(block, method="eig"), np.nan)
    return rho, rho_p, int(m.shape[-1])


def _star_of(theta, dtype, **star_kwargs) -> Callable:
    theta = _theta_for(theta, dtype)

    def make(value):
        return star(theta, nominal_stepsize=value, **star_kwargs)

    return make


def linearized_star_along_trajectory(
    theta,
    problem: NoisyQuadratic,
    num_steps: int,
    *,
    nominal_stepsize: float = 1e-2,
    every: int = 1,
    seed: int = 0,
    num_seeds: int = 1,
    **star_kwargs,
) -> TrajectoryRecord:
    """Spectral radius of STAR's linearised closed loop along NQM trajectories.

    At each ``t`` in ``range(0, num_steps, every)`` the closed loop
    ``z_{t+1} = F(z_t, xi_t)`` is linearised at the trajectory's own
    ``z_t = (params_t, state_t)`` with zero noise and the step count frozen at
    ``t`` (:func:`stability.operators.closed_loop`); ``rho`` is the spectral radius
    of that joint Jacobian, the per-step growth factor a linear analysis predicts.

    Args:
      theta: a STAR theta (3 heads), or ``None`` for the nominal term alone.
      problem: the NQM (parameters are vectors; STAR keeps full accumulators).
      num_steps: trajectory length ``T``.
      nominal_stepsize: STAR's nominal step.
      every: linearise every ``every`` steps.
      seed: root of the noise.
      num_seeds: independent trajectories.
      **star_kwargs: passed to :func:`stability.lopt.star` (``precondition``, ...).
    Returns:
      a :class:`TrajectoryRecord`.

    >>> rec = linearized_star_along_trajectory(None, default_problem(4), 20, every=5)
    >>> rec.rho.shape, rec.loss.shape, rec.dim
    ((1, 4), (1, 20), 32)
    """
    dtype = _dtype()
    opt_of = _star_of(theta, dtype, **star_kwargs)
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    values = jnp.full((num_seeds,), nominal_stepsize, dtype)
    loss, clean, points = _nqm_rollout(opt_of, problem, num_steps, keys, values, every)
    rho, rho_p, dim = _radii(opt_of, problem, values, points)
    return TrajectoryRecord(
        np.arange(0, num_steps, every),
        rho,
        rho_p,
        np.asarray(loss, np.float64),
        np.asarray(clean, np.float64),
        dim,
        float(nominal_stepsize),
        np.asarray(points[1].second_moment, np.float64),
    )


# -- pushing the nominal step or the horizon ---------------------------------------


class DivergenceSweep(NamedTuple):
    r"""Predicted against observed divergence over a sweep.

    The prediction is frozen-time linear theory: were the loop held at its
    linearisation at step ``t`` for one step, the deviation from the optimum would
    grow by at most about ``rho_t``, so the loss by ``rho_t ** 2``; chained over the
    trajectory this predicts a loss ratio :math:`\prod_{s<t} \rho_s^2`.

    Attributes:
      parameter: ``"nominal_stepsize"`` or ``"horizon"``.
      values: ``(V,)`` the swept values.
      rho_initial: ``(V,)`` rho at the first state (before step 0).
      rho_median: ``(V,)`` median rho along the trajectory (up to the horizon).
      rho_max: ``(V,)`` largest rho along the trajectory.
      rho_final: ``(V,)`` rho at the last linearised state.
      predicted_log_growth: ``(V,)`` :math:`\max_t \sum_{s<t} 2 \log\rho_s`,
        the largest log loss ratio the linearisation predicts (each rho held for
        ``every`` steps).
      observed_log_growth: ``(V,)`` :math:`\max_t \log(\bar l_t / \bar l_0)`,
        with :math:`\bar l_t` the clean loss :math:`\tfrac12\phi_t^T H \phi_t`
        averaged over seeds (``inf`` if non-finite).
      final_log_ratio: ``(V,)`` :math:`\log(\bar l_T / \bar l_0)`.
      predicted_diverges: ``(V,)`` ``predicted_log_growth > log(1 + tol)``.
      observed_diverges: ``(V,)`` ``observed_log_growth > 0``: the loss rose above
        its initial value at some step, or became non-finite.
      disagree: ``(V,)`` predicted and observed verdicts differ.
      tol: tolerance of the prediction.
      horizon: steps simulated (the largest value for a horizon sweep).
      note: one line per disagreement, saying which way.
    """

    parameter: str
    values: np.ndarray
    rho_initial: np.ndarray
    rho_median: np.ndarray
    rho_max: np.ndarray
    rho_final: np.ndarray
    predicted_log_growth: np.ndarray
    observed_log_growth: np.ndarray
    final_log_ratio: np.ndarray
    predicted_diverges: np.ndarray
    observed_diverges: np.ndarray
    disagree: np.ndarray
    tol: float
    horizon: int
    note: tuple


def _verdicts(parameter, values, rho, clean, lengths, every, tol, horizon):
    """A :class:`DivergenceSweep` from ``rho (V, K)`` (stride ``every``) and the clean
    loss ``clean (V, T)``, each row judged on its first ``lengths[v]`` steps."""
    n_v = len(values)
    out = {
        k: np.zeros(n_v) for k in ("r0", "rmed", "rmax", "rfin", "pred", "obs", "fin")
    }
    for v in range(n_v):
        length = int(lengths[v])
        r = rho[v, : -(-length // every)]
        c = clean[v, :length]
        out["r0"][v], out["rmed"][v] = r[0], _nan_reduce(np.nanmedian, r, None)
        out["rmax"][v], out["rfin"][v] = _nan_reduce(np.nanmax, r, None), r[-1]
        with np.errstate(all="ignore"):
            logs = np.where(np.isfinite(r), 2 * every * np.log(r), np.inf)
            out["pred"][v] = max(0.0, float(np.max(np.cumsum(logs))))
            ratio = c / c[0]
            bad = ~np.all(np.isfinite(c))
            out["obs"][v] = np.inf if bad else float(np.log(np.max(ratio)))
            out["fin"][v] = float(np.log(ratio[-1])) if not bad else np.inf
    predicted = out["pred"] > np.log1p(tol)
    observed = out["obs"] > 0
    notes = []
    for i in np.flatnonzero(predicted != observed):
        v = values[i]
        if predicted[i]:
            notes.append(
                f"{parameter}={v:.4g}: linearisation predicts the loss to grow "
                f"(by up to e^{out['pred'][i]:.3g}; rho from {out['r0'][i]:.4g}, "
                f"median {out['rmed'][i]:.4g}) but it never rose above its start"
            )
        else:
            notes.append(
                f"{parameter}={v:.4g}: the loss rose above its start "
                f"(by e^{out['obs'][i]:.3g}) but the linearisation predicts no "
                f"growth (rho from {out['r0'][i]:.4g}, max {out['rmax'][i]:.4g})"
            )
    return DivergenceSweep(
        parameter,
        np.asarray(values, np.float64),
        out["r0"],
        out["rmed"],
        out["rmax"],
        out["rfin"],
        out["pred"],
        out["obs"],
        out["fin"],
        predicted,
        observed,
        predicted != observed,
        float(tol),
        int(horizon),
        tuple(notes),
    )


def push_until_divergence(
    theta,
    problem: NoisyQuadratic,
    values: Sequence[float],
    *,
    parameter: str = "nominal_stepsize",
    num_steps: int = 200,
    nominal_stepsize: float = 1e-2,
    every: int = 1,
    seed: int = 0,
    num_seeds: int = 4,
    tol: float = 1e-2,
    **star_kwargs,
) -> DivergenceSweep:
    """Push STAR's nominal step (or the horizon) until training diverges, and compare
    the linearisation's prediction with what happens.

    ``parameter="nominal_stepsize"``: every value of ``values`` trains ``num_seeds``
    trajectories of ``num_steps`` steps (one vmapped program).
    ``parameter="horizon"``: one step size ``nominal_stepsize``, trajectories of
    ``max(values)`` steps, each horizon judged on its prefix.

    The prediction chains the spectral radii of the joint linearised loop along the
    trajectory (at every ``every``-th state): the loss is predicted to grow when
    :math:`\\prod_{s<t} \\rho_s^2` exceeds ``1 + tol`` at some ``t``. The
    observation is the clean loss :math:`\\tfrac12 \\phi^T H \\phi` averaged over
    seeds: divergence when it rises above its initial value or becomes non-finite.
    Disagreements are flagged and described in ``note`` (see
    :class:`DivergenceSweep`).

    Returns:
      a :class:`DivergenceSweep`.
    """
    if parameter not in ("nominal_stepsize", "horizon"):
        raise ValueError(
            f"parameter: expected 'nominal_stepsize' or 'horizon', got {parameter!r}"
        )
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("values: expected positive finite numbers")
    dtype = _dtype()
    opt_of = _star_of(theta, dtype, **star_kwargs)
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    if parameter == "nominal_stepsize":
        n_v = values.size
        vals = jnp.asarray(np.repeat(values, num_seeds), dtype)
        all_keys = jnp.concatenate([keys] * n_v)
        _, clean, points = _nqm_rollout(
            opt_of, problem, num_steps, all_keys, vals, every
        )
        rho = _radii(opt_of, problem, vals, points)[0]
        rho = _nan_reduce(np.nanmean, rho.reshape(n_v, num_seeds, -1), 1)
        clean = np.asarray(clean, np.float64).reshape(n_v, num_seeds, -1)
        with np.errstate(all="ignore"):  # a blown-up run overflows the mean: inf
            clean = np.mean(clean, axis=1)
        lengths = np.full(n_v, num_steps)
        return _verdicts(parameter, values, rho, clean, lengths, every, tol, num_steps)
    horizons = values.astype(np.int64)
    if np.any(horizons != values) or np.any(horizons < 2):
        raise ValueError("values: horizons must be integers >= 2")
    steps = int(horizons.max())
    vals = jnp.full((num_seeds,), nominal_stepsize, dtype)
    _, clean, points = _nqm_rollout(opt_of, problem, steps, keys, vals, every)
    rho = _radii(opt_of, problem, vals, points)[0]
    rho = _nan_reduce(np.nanmean, rho, 0)  # (K,)
    with np.errstate(all="ignore"):
        clean = np.mean(np.asarray(clean, np.float64), axis=0)  # (T,)
    n_v = horizons.size
    return _verdicts(
        parameter,
        values,
        np.broadcast_to(rho, (n_v, rho.size)),
        np.broadcast_to(clean, (n_v, clean.size)),
        horizons,
        every,
        tol,
        steps,
    )


# -- Arnoldi on a real task ----------------------------------------------------------


def _top_pairs(jac, k, tol, ncv, max_iter=None):
    r""":func:`stability.analyses.arnoldi` on a Jacobian operator, or ``None`` where
    its products are not finite (the map is not differentiable there, e.g. Adam's
    :math:`\sqrt{\hat v}` at ``v = 0``)."""
    d = jac.shape[0]
    try:
        probe = jac.matvec(np.random.default_rng(0).standard_normal(d))
    except ValueError:  # step_jacobian refuses a non-finite product
        return None
    if not np.all(np.isfinite(probe)):
        return None
    return arnoldi(jac, k, tol=tol, ncv=ncv, max_iter=max_iter or 100 * d)


class EigenRecord(NamedTuple):
    r"""Top eigenvalues of the step map's Jacobian over training.

    Attributes:
      steps: ``(K,)`` training steps at which the map was linearised.
      eigenvalues: ``(K, k)`` complex, by decreasing magnitude.
      rho: ``(K,)`` their largest magnitude.
      loss: ``(K,)`` minibatch loss at the point (the fixed batch).
      matvecs: ``(K,)`` Jacobian-vector products the eigen-solve used (ARPACK's
        and one per residual).
      seconds: ``(K,)`` wall time of each eigen-solve.
      dim: size of the joint state.
      residuals: ``(K, k)`` :math:`\|J x - \lambda x\|` of each eigenpair.
    """

    steps: np.ndarray
    eigenvalues: np.ndarray
    rho: np.ndarray
    loss: np.ndarray
    matvecs: np.ndarray
    seconds: np.ndarray
    dim: int
    residuals: np.ndarray


def top_eigenvalues_along_training(
    task,
    optimizer: optax.GradientTransformation,
    steps: Sequence[int],
    k: int = 6,
    *,
    seed: int = 0,
    tol: float = 1e-6,
    ncv: int | None = None,
) -> EigenRecord:
    """Top-``k`` eigenvalues of the Jacobian of one training step, over training.

    The task is trained with ``optimizer`` (float32, minibatches drawn from
    ``seed``); at each step in ``steps`` the step map ``z -> z'`` over the joint
    state (parameters and every floating accumulator), with the minibatch of that
    step held fixed, is linearised (:func:`stability.operators.step_jacobian`) and
    :func:`stability.analyses.arnoldi` finds its ``k`` largest-magnitude eigenvalues
    from Jacobian-vector products; NaNs (and 0 products) where the step is not
    differentiable.

    Args:
      task: a :class:`~stability.lopt.tasks.Task` or its name (``digits_mlp``:
        2,410 parameters; STAR's joint state has 12,590 coordinates); any object
        with ``init``, ``loss`` and ``sample_batch`` will do.
      optimizer: any optax transformation (STAR, small_fc_lopt, Adam, ...).
      steps: increasing training steps (0 = at initialisation).
      k: eigenvalues per point.
      seed: root of the initial parameters and minibatches.
      tol: ARPACK's tolerance.
      ncv: Arnoldi basis size (default ``min(d, max(2k + 1, 20))``).
    Returns:
      an :class:`EigenRecord`.
    """
    task = get_task(task) if isinstance(task, str) else task
    steps = [int(s) for s in steps]
    if not steps or any(s < 0 for s in steps) or steps != sorted(set(steps)):
        raise ValueError(f"steps: expected increasing non-negative ints, got {steps}")
    key = jax.random.key(seed)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), task.init(key))
    state = optimizer.init(params)
    data_key = jax.random.fold_in(key, 1)

    def batch_at(t):
        return task.sample_batch(jax.random.fold_in(data_key, t))

    @jax.jit
    def train_step(params, state, t):
        loss, grads = jax.value_and_grad(task.loss)(params, batch_at(t))
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    batch_loss = jax.jit(lambda p, t: task.loss(p, batch_at(t)))
    out: dict[str, list] = {k_: [] for k_ in ("eig", "loss", "mv", "sec", "res")}
    t, dim = 0, 0
    for target in steps:
        while t < target:
            params, state = train_step(params, state, jnp.int32(t))
            t += 1
        batch = batch_at(jnp.int32(t))
        jac, z = step_jacobian(task.loss, optimizer, params, state, batch)
        dim = int(z.size)
        t0 = time.perf_counter()
        pairs = _top_pairs(jac, k, tol, ncv)
        out["sec"].append(time.perf_counter() - t0)
        nan = np.full(k, np.nan + 0j)
        out["eig"].append(nan if pairs is None else pairs.eigenvalues)
        out["res"].append(nan.real if pairs is None else pairs.residuals)
        out["mv"].append(0 if pairs is None else pairs.matvecs)
        out["loss"].append(float(batch_loss(params, jnp.int32(t))))
    eig = np.asarray(out["eig"])
    return EigenRecord(
        np.asarray(steps),
        eig,
        np.abs(eig[:, 0]),
        np.asarray(out["loss"]),
        np.asarray(out["mv"]),
        np.asarray(out["sec"]),
        dim,
        np.asarray(out["res"]),
    )


# -- meta-gradient variance ----------------------------------------------------------


class MetagradRecord(NamedTuple):
    """Meta-gradient statistics against rho, on the NQM.

    Attributes:
      values: ``(V,)`` nominal step sizes (each makes one optimizer).
      horizons: ``(H,)`` unroll lengths.
      rho: ``(V,)`` median spectral radius of the linearised loop along a trajectory
        of the longest horizon.
      variance: ``(V, H)`` total variance (trace of the covariance over noise
        draws) of :math:`\\nabla_\\theta L`, over the finite samples.
      mean_norm: ``(V, H)`` norm of the mean meta-gradient.
      nonfinite: ``(V, H)`` samples whose meta-gradient was not finite.
      variance_rate: ``(V,)`` least-squares slope of ``log variance`` against the
        horizon (per step; ``nan`` with fewer than two finite cells).
      predicted_rate: ``(V,)`` ``4 log rho``, the slope linear theory predicts
        for an unstable loop (the variance grows like :math:`\\rho^{4T}`, see
        :mod:`stability.lemmas.metagrad`); a stable loop predicts a bounded
        variance (slope about 0).
      samples: noise draws per cell.
    """

    values: np.ndarray
    horizons: np.ndarray
    rho: np.ndarray
    variance: np.ndarray
    mean_norm: np.ndarray
    nonfinite: np.ndarray
    variance_rate: np.ndarray
    predicted_rate: np.ndarray
    samples: int


def metagrad_variance_vs_rho(
    theta,
    problem: NoisyQuadratic,
    values: Sequence[float],
    horizons: Sequence[int] = (10, 30, 100),
    *,
    samples: int = 64,
    seed: int = 0,
    every: int = 5,
    **star_kwargs,
) -> MetagradRecord:
    r"""Variance of the meta-gradient of STAR on the NQM against its spectral radius.

    For each nominal step size in ``values`` (which moves STAR's spectral radius),
    and each horizon ``T``, the meta-loss is the mean sampled loss
    :math:`L = \frac1T \sum_{t<T} l_t(\phi_t)` from ``problem.x0`` and the
    meta-gradient :math:`\nabla_\theta L` is taken by reverse mode through the
    unroll for ``samples`` independent noise sequences. When the loop is unstable
    (``rho > 1``) the meta-gradient is a polynomial of growing degree in the
    transition and its variance grows exponentially with ``T``. (For a *linear*
    learned term the exact expected meta-gradient is in
    :mod:`stability.lemmas.metagrad`; here the optimizer is STAR itself.)

    Args:
      theta: STAR theta (3 heads), or ``None`` for the nominal term alone.
      problem: the NQM.
      values: nominal step sizes.
      horizons: unroll lengths.
      samples: noise draws per cell.
      seed: root of the noise.
      every: linearisation stride for rho.
      **star_kwargs: passed to :func:`stability.lopt.star`.
    Returns:
      a :class:`MetagradRecord`.
    """
    dtype = _dtype()
    theta = _theta_for(theta, dtype)
    values = np.asarray(values, np.float64).reshape(-1)
    horizons = np.asarray(horizons, np.int64).reshape(-1)
    if values.size == 0 or np.any(values <= 0) or np.any(horizons < 1):
        raise ValueError("values, horizons: expected positive numbers")
    num_steps = int(horizons.max())

    def prefix_losses(th, value, key):
        """Meta-losses of every horizon from one unroll, shape ``(H,)``."""
        opt = star(th, nominal_stepsize=value, **star_kwargs)
        losses = rollout(problem, opt, num_steps, key).losses
        return (jnp.cumsum(losses)[horizons - 1]) / horizons.astype(dtype)

    keys = jax.random.split(jax.random.key(seed), samples)

    @jax.jit
    def grads(value):
        jac = jax.jacrev(prefix_losses)  # one backward pass per horizon
        # ``lax.map`` over samples, not ``vmap``: see :func:`_transitions`.
        g = jax.lax.map(lambda key: jac(theta, value, key), keys)
        flat = [x.reshape(samples, horizons.size, -1) for x in jax.tree.leaves(g)]
        return jnp.concatenate(flat, axis=-1)  # (samples, H, theta size)

    variance = np.full((values.size, horizons.size), np.inf)  # inf: < 2 finite
    mean_norm = np.full_like(variance, np.inf)
    nonfinite = np.zeros(variance.shape, np.int64)
    for i, v in enumerate(values):
        g_all = np.asarray(grads(jnp.asarray(v, dtype)), np.float64)
        for j in range(horizons.size):
            ok = np.all(np.isfinite(g_all[:, j]), axis=1)
            nonfinite[i, j] = int(np.sum(~ok))
            if np.sum(ok) >= 2:
                gs = g_all[ok, j]
                variance[i, j] = float(np.sum(np.var(gs, axis=0, ddof=1)))
                mean_norm[i, j] = float(np.linalg.norm(np.mean(gs, axis=0)))
    opt_of = _star_of(theta, dtype, **star_kwargs)
    vals = jnp.asarray(values, dtype)
    ks = jnp.stack([jax.random.key(seed + 1)] * values.size)
    _, _, points = _nqm_rollout(opt_of, problem, num_steps, ks, vals, every)
    rho = _radii(opt_of, problem, vals, points)[0]
    rho_med = _nan_reduce(np.nanmedian, rho, 1)
    rates = np.array([log_slope(horizons, var) for var in variance])
    with np.errstate(all="ignore"):
        predicted = np.where(rho_med > 1, 4 * np.log(rho_med), 0.0)
    return MetagradRecord(
        values,
        horizons,
        rho_med,
        variance,
        mean_norm,
        nonfinite,
        rates,
        predicted,
        int(samples),
    )
