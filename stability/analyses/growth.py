r"""Growth with the horizon: :func:`fit_growth` (exponential rate and polynomial
degree over the upper half of the horizons; :mod:`stability.lopt.dynamics` fits all
of them with :func:`log_slope`) and the meta-gradients of a linear learned term on the
noisy quadratic it is applied to, exact (``jax.grad`` through
:func:`stability.problems.expected_losses`) and from sampled unrolls, with their
growth records. Why they grow like :math:`\rho^{2T}` is proved in
:mod:`stability.lemmas.metagrad`.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability._validation import (
    as_float_array,
    check_int,
    check_lr,
    check_scalar,
    check_square,
)
from stability.operators import ClosedLoop
from stability.problems import NoisyQuadratic, expected_losses


def horizons_array(horizons) -> np.ndarray:
    """``horizons`` as a 1-D integer array of positive integers; ``ValueError``
    naming ``horizons`` otherwise."""
    taus = np.asarray(horizons)
    if taus.ndim != 1 or taus.size == 0 or np.any(taus < 1) or np.any(taus % 1):
        raise ValueError("horizons: expected a 1-D array of positive integers")
    return taus.astype(int)


def log_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``x`` over the finite positive
    ``y``; nan with fewer than two such points.

    >>> round(log_slope([0.0, 1.0, 2.0], np.exp([1.0, 3.0, 5.0])), 12)
    2.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(x[ok], np.log(y[ok]), 1)[0])


def fit_growth(horizons, values):
    """``(rate, degree)``: slopes of ``log values`` against ``T`` and against
    ``log T`` over the upper half of the horizons (at least two points).

    >>> rate, degree = fit_growth([1, 2, 4, 8], [1.0, 4.0, 16.0, 64.0])
    >>> round(degree, 12)
    2.0
    """
    taus = horizons_array(horizons).astype(float)
    values = np.asarray(values, float)
    if values.shape != taus.shape:
        raise ValueError(f"values: expected shape {taus.shape}, got {values.shape}")
    tail = slice(min(taus.size // 2, taus.size - 2), None)
    return log_slope(taus[tail], values[tail]), log_slope(
        np.log(taus[tail]), values[tail]
    )


def meta_loss(P, problem: NoisyQuadratic, alpha, num_steps: int):
    r"""The exact meta-loss :math:`L_T(P) = \frac1T \sum_{t<T} E\, l_t` from
    :func:`stability.problems.expected_losses` (dense, differentiable in ``P``).

    >>> p = NoisyQuadratic.from_eigenvalues([1.0], noise_var=0.0, x0=[1.0])
    >>> round(float(meta_loss(jnp.zeros((1, 1)), p, 0.5, 2)), 6)
    0.3125
    """
    P = jnp.asarray(P)
    n = problem.dim
    if P.shape != (n, n):
        raise ValueError(f"P: expected shape {(n, n)}, got {P.shape}")
    if not isinstance(alpha, jax.Array):  # a traced alpha cannot be checked
        check_lr("alpha", alpha)
    K = alpha * jnp.eye(n, dtype=P.dtype) + P
    G = K @ jnp.asarray(problem.hessian, P.dtype)
    loop = ClosedLoop(jnp.eye(n, dtype=P.dtype) - G, G)
    return jnp.mean(expected_losses(problem, loop, num_steps, method="dense"))


def _cumulative_means(losses, horizons):
    return (jnp.cumsum(losses) / jnp.arange(1, losses.size + 1))[horizons - 1]


@partial(jax.jit, static_argnames=("num_steps",))
def _exact_grads(P, problem, alpha, horizons, num_steps):
    def losses_at(P):
        n = P.shape[0]
        G = (alpha * jnp.eye(n, dtype=P.dtype) + P) @ problem.hessian
        loop = ClosedLoop(jnp.eye(n, dtype=P.dtype) - G, G)
        return _cumulative_means(
            expected_losses(problem, loop, num_steps, method="dense"), horizons
        )

    return jax.jacrev(losses_at)(P)


def meta_gradients(problem: NoisyQuadratic, P, alpha, horizons) -> np.ndarray:
    """``jax.grad`` (reverse mode, one pass for all horizons) of the exact meta-loss
    through :func:`stability.problems.expected_losses`: ``dL_tau/dP`` for each
    ``tau`` of ``horizons``, shape ``(len(horizons), n, n)``."""
    taus = horizons_array(horizons)
    P, alpha = _check_term(problem, P, alpha)
    dtype = jnp.zeros(()).dtype
    prob = _as_jax(problem, dtype)
    grads = _exact_grads(
        jnp.asarray(P, dtype),
        prob,
        jnp.asarray(alpha, dtype),
        jnp.asarray(taus),
        int(taus.max()),
    )
    return np.asarray(grads)


def _check_term(problem, P, alpha):
    return check_square("P", P, n=problem.dim), check_lr("alpha", alpha)


def _as_jax(problem, dtype):
    return NoisyQuadratic(*(jnp.asarray(np.asarray(a), dtype) for a in problem))


@partial(jax.jit, static_argnames=("num_steps",))
def _sampled_grads(P, problem, factor, alpha, horizons, keys, num_steps):
    n = P.shape[0]

    def losses(P, key):
        K = alpha * jnp.eye(n, dtype=P.dtype) + P
        h = problem.hessian

        def step(phi, key_t):
            xi = factor @ jax.random.normal(key_t, (n,), P.dtype)
            d = phi - xi
            g = h @ d
            return phi - K @ g, 0.5 * d @ g

        return jax.lax.scan(step, problem.x0, jax.random.split(key, num_steps))[1]

    def grads(key):
        return jax.jacrev(lambda P: _cumulative_means(losses(P, key), horizons))(P)

    return jax.vmap(grads)(keys)


def sampled_meta_gradients(
    problem: NoisyQuadratic, P, alpha, horizons, *, num_seeds: int = 256, seed=0
) -> np.ndarray:
    r"""Meta-gradients of sampled unrolls, :math:`\nabla_P \frac1\tau \sum_{t<\tau}
    l_t(\phi_t)` with :math:`\phi_{t+1} = \phi_t - (\alpha I + P) H (\phi_t - \xi_t)`
    (``lax.scan`` with ``P`` traced, ``jax.grad`` by reverse mode, ``vmap`` over
    seeds): shape ``(num_seeds, len(horizons), n, n)``. Unbiased for
    :func:`meta_gradients` (the noise does not depend on ``P``)."""
    taus = horizons_array(horizons)
    P, alpha = _check_term(problem, P, alpha)
    check_int("num_seeds", num_seeds, low=2)
    dtype = jnp.zeros(()).dtype
    keys = jax.random.split(jax.random.key(seed), int(num_seeds))
    grads = _sampled_grads(
        jnp.asarray(P, dtype),
        _as_jax(problem, dtype),
        jnp.asarray(problem.noise_factor(), dtype),
        jnp.asarray(alpha, dtype),
        jnp.asarray(taus),
        keys,
        int(taus.max()),
    )
    return np.asarray(grads)


# ---------------------------------------------------------------------------------
# growth records


class GrowthRecord(NamedTuple):
    """How the meta-gradient grows with the horizon (for plotting).

    Attributes:
      horizons: the horizons ``T``.
      grad_norms: exact :math:`\\|\\nabla_P L_T\\|_F` (``jax.grad`` through
        ``expected_losses``).
      mc_variances: total variance :math:`\\sum_{ij} \\mathrm{Var}(\\hat g_{ij})` of
        the sampled meta-gradient across seeds.
      mc_grad_norms: norm of the seed-mean of the sampled meta-gradients.
      rho: :math:`\\rho(A)`.
      rate: fitted exponential rate, slope of :math:`\\log \\|\\nabla L_T\\|` in ``T``
        over the upper half of the horizons (predicted ``2 log rho`` for rho > 1, 0
        below).
      degree: fitted polynomial degree, slope of :math:`\\log\\|\\nabla L_T\\|` in
        :math:`\\log T` over the same horizons (1 at eigenvalue +1, 2 at -1).
      variance_rate: slope of :math:`\\log` variance in ``T`` (``4 log rho``).
      predicted_rate: :math:`2 \\log \\max(\\rho, 1)`.
    """

    horizons: np.ndarray
    grad_norms: np.ndarray
    mc_variances: np.ndarray
    mc_grad_norms: np.ndarray
    rho: float
    rate: float
    degree: float
    variance_rate: float
    predicted_rate: float


def gradient_growth(
    problem: NoisyQuadratic, P, alpha, horizons, *, num_seeds: int = 256, seed=0
) -> GrowthRecord:
    """Measure the meta-gradient at each horizon, exactly and from ``num_seeds``
    sampled unrolls, and fit its growth (a :class:`GrowthRecord`).

    Run under ``jax_enable_x64``: unstable loops overflow float32 quickly.

    >>> p = NoisyQuadratic.from_eigenvalues([1.0], noise_var=1.0, x0=[1.0])
    >>> rec = gradient_growth(p, [[2.2]], 0.0, [10, 20, 30, 40], num_seeds=16)
    >>> round(rec.rho, 6), round(rec.rate / rec.predicted_rate, 1)
    (1.2, 1.0)
    """
    taus = horizons_array(horizons)
    P = np.asarray(P, float)
    n = problem.dim
    A = np.eye(n) - (alpha * np.eye(n) + P) @ problem.hessian
    rho = float(np.max(np.abs(np.linalg.eigvals(A))))
    exact = meta_gradients(problem, P, alpha, taus)
    sampled = sampled_meta_gradients(
        problem, P, alpha, taus, num_seeds=num_seeds, seed=seed
    )
    norms = np.linalg.norm(exact.reshape(taus.size, -1), axis=1)
    var = np.sum(np.var(sampled, axis=0, ddof=1).reshape(taus.size, -1), axis=1)
    mc_norms = np.linalg.norm(sampled.mean(0).reshape(taus.size, -1), axis=1)
    rate, degree = fit_growth(taus, norms)
    var_rate, _ = fit_growth(taus, var)
    return GrowthRecord(
        taus,
        norms,
        var,
        mc_norms,
        rho,
        rate,
        degree,
        var_rate,
        2 * float(np.log(max(rho, 1.0))),
    )


def one_mode(eigenvalue, *, curvature=1.0, alpha=0.5, noise_var=1.0, x0=1.0):
    """``(problem, P)`` of a one-dimensional loop with ``A = eigenvalue``: curvature
    ``h``, ``P = (1 - eigenvalue)/h - alpha``.

    >>> problem, P = one_mode(-1.0)
    >>> float(1 - (0.5 + P[0, 0]) * problem.hessian[0, 0])
    -1.0
    """
    eigenvalue = check_scalar("eigenvalue", eigenvalue)
    alpha = check_lr("alpha", alpha)
    problem = NoisyQuadratic.from_eigenvalues([curvature], noise_var, [x0])
    return problem, np.array([[(1 - eigenvalue) / curvature - alpha]])


class RateRecord(NamedTuple):
    """Fitted growth rate against the spectral radius (for plotting).

    Attributes:
      rhos: spectral radii (one-mode loops with eigenvalue ``sign * rho``).
      rates: fitted exponential rates of the exact meta-gradient norm.
      degrees: fitted polynomial degrees.
      variance_rates: fitted exponential rates of the Monte-Carlo variance.
      predicted: :math:`2\\log\\max(\\rho, 1)`.
    """

    rhos: np.ndarray
    rates: np.ndarray
    degrees: np.ndarray
    variance_rates: np.ndarray
    predicted: np.ndarray


def rate_vs_rho(rhos, horizons, *, sign=-1.0, num_seeds=64, seed=0) -> RateRecord:
    """:func:`gradient_growth` of one-mode loops with eigenvalue ``sign * rho`` for
    each ``rho`` of ``rhos``, collected into a :class:`RateRecord`."""
    rhos = as_float_array("rhos", rhos, ndim=1)
    if sign not in (-1.0, 1.0, -1, 1):
        raise ValueError(f"sign: expected +1 or -1, got {sign!r}")
    recs = []
    for r in rhos:
        problem, P = one_mode(sign * r)
        recs.append(
            gradient_growth(problem, P, 0.5, horizons, num_seeds=num_seeds, seed=seed)
        )
    return RateRecord(
        rhos,
        np.array([r.rate for r in recs]),
        np.array([r.degree for r in recs]),
        np.array([r.variance_rate for r in recs]),
        np.array([r.predicted_rate for r in recs]),
    )
