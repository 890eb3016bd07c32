r"""Meta-training a dense linear learned term on random noisy quadratics, and how
often the result is stable as the weight decay on it grows: the experiment behind the
weight-decay claim (:mod:`stability.lemmas.weight_decay`), which is about exact
minimisers and says why a dense term can lose stability.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability._validation import check_int, check_lr, check_scalar


class MetaTrainingRecord(NamedTuple):
    """Stability of meta-trained linear learned terms against the weight decay.

    Attributes:
      penalties: the weight decays ``lambda`` (``(k,)``).
      stable_fraction: per penalty, the fraction of meta-training runs whose ``P``
        gives a stable loop (``rho(A) < 1``) on every held-out quadratic.
      train_stable_fraction: the same on each run's own training quadratics.
      radii: ``(k, runs)``, the largest ``rho(A)`` over the held-out quadratics.
      train_radii: ``(k, runs)``, the largest over the run's training quadratics.
      p_radii: ``(k, runs)``, spectral radius of the learned ``P``.
      p_norms: ``(k, runs)``, Frobenius norm of ``P``.
      meta_losses: ``(k, runs)``, final normalised training meta-loss (no penalty;
        1 is the nominal term alone).
      setup: the experiment's settings.
    """

    penalties: np.ndarray
    stable_fraction: np.ndarray
    train_stable_fraction: np.ndarray
    radii: np.ndarray
    train_radii: np.ndarray
    p_radii: np.ndarray
    p_norms: np.ndarray
    meta_losses: np.ndarray
    setup: dict


def _tasks(rng, num, dim, low, high, noise):
    """``num`` random quadratics: ``H = Q diag(h) Q^T`` with ``h`` log-uniform on
    ``[low, high]`` and ``Q`` Haar-orthogonal, ``x0 = Q z / sqrt(h)`` (every mode
    starts at the same expected loss), noise ``Q diag(noise / h) Q^T``; arrays of
    shapes ``(num, dim, dim)``, ``(num, dim, dim)``, ``(num, dim)``."""
    h = np.exp(rng.uniform(np.log(low), np.log(high), (num, dim)))
    q, r = np.linalg.qr(rng.standard_normal((num, dim, dim)))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
    z = rng.standard_normal((num, dim))
    H = np.einsum("bij,bj,bkj->bik", q, h, q)
    S = np.einsum("bij,bj,bkj->bik", q, noise / h, q)
    x0 = np.einsum("bij,bj->bi", q, z / np.sqrt(h))
    return 0.5 * (H + H.transpose(0, 2, 1)), 0.5 * (S + S.transpose(0, 2, 1)), x0


def _task_meta_loss(P, H, S, x0, alpha, horizon):
    """The exact meta-loss of one task, the moment recursion unrolled (``horizon``
    is small and static)."""
    n = P.shape[0]
    G = (alpha * jnp.eye(n, dtype=P.dtype) + P) @ H
    A, Q = jnp.eye(n, dtype=P.dtype) - G, G @ S @ G.T
    m, C, total = x0, jnp.zeros_like(H), 0.0
    base = jnp.trace(H @ S)
    for _ in range(horizon):
        total = total + 0.5 * (m @ H @ m + jnp.sum(H * C) + base)
        m, C = A @ m, A @ C @ A.T + Q
    return total / horizon


@partial(jax.jit, static_argnames=("horizon", "meta_steps"))
def _meta_train(H, S, x0, penalties, alpha, meta_lr, *, horizon, meta_steps):
    """Gradient descent from ``P = 0`` on each run's penalised normalised meta-loss;
    ``H, S`` of shape ``(runs, tasks, n, n)``, ``x0`` ``(runs, tasks, n)``; returns
    ``P`` ``(penalties, runs, n, n)`` and the final normalised meta-losses."""
    n = H.shape[-1]
    losses = jax.vmap(_task_meta_loss, (None, 0, 0, 0, None, None))

    def run(H, S, x0, lam):
        base = losses(jnp.zeros((n, n), H.dtype), H, S, x0, alpha, horizon)

        def data(P):
            return jnp.mean(losses(P, H, S, x0, alpha, horizon) / base)

        grad = jax.grad(lambda P: data(P) + 0.5 * lam * jnp.sum(P * P))

        def step(P, _):
            return P - meta_lr * grad(P), None

        P = jax.lax.scan(step, jnp.zeros((n, n), H.dtype), None, length=meta_steps)[0]
        return P, data(P)

    per_penalty = jax.vmap(run, (0, 0, 0, None))
    return jax.vmap(per_penalty, (None, None, None, 0))(H, S, x0, penalties)


def _max_radius(P, alpha, H):
    n = P.shape[-1]
    A = np.eye(n) - (alpha * np.eye(n) + P)[..., None, :, :] @ H
    return np.max(np.abs(np.linalg.eigvals(A)), axis=(-1, -2))


def meta_train_stability(
    penalties=(0.0, 0.1, 0.5, 1.0),
    *,
    num_runs: int = 32,
    num_tasks: int = 8,
    dim: int = 4,
    horizon: int = 2,
    alpha: float = 1.0,
    curvature_range=(0.1, 1.0),
    noise: float = 0.0,
    meta_steps: int = 300,
    meta_lr: float = 0.1,
    num_test_tasks: int = 256,
    seed: int = 0,
) -> MetaTrainingRecord:
    r"""Meta-train a dense linear ``P`` for each penalty and measure how often it is
    stable.

    Each of ``num_runs`` runs draws ``num_tasks`` random rotated quadratics
    (:math:`\mathrm{dim}` eigenvalues log-uniform on ``curvature_range``, every mode
    starting at the same loss) and minimises by ``meta_steps`` steps of gradient
    descent from ``P = 0``

    .. math:: \frac1B \sum_j \frac{L_T^{(j)}(P)}{L_T^{(j)}(0)}
       + \frac\lambda2 \|P\|_F^2,

    :math:`L_T^{(j)}` the exact meta-loss at the short ``horizon``, where overshooting
    the stiff directions is cheap and a full matrix can fit the few training
    quadratics' eigenbases. The nominal step ``alpha`` is stable on its own
    (``alpha * max curvature < 2``), so ``P = 0`` is stable. Stability is then
    tested on ``num_test_tasks`` held-out quadratics from the same distribution (and
    on the run's own). The same runs (keys) are used for every penalty.

    Returns:
      a :class:`MetaTrainingRecord`.
    """
    lams = _check_penalties(penalties)
    setup = _check_setup(
        num_runs=num_runs,
        num_tasks=num_tasks,
        dim=dim,
        horizon=horizon,
        alpha=alpha,
        curvature_range=curvature_range,
        noise=noise,
        meta_steps=meta_steps,
        meta_lr=meta_lr,
        num_test_tasks=num_test_tasks,
        seed=seed,
    )
    low, high = setup["curvature_range"]
    dim, noise, alpha = setup["dim"], setup["noise"], setup["alpha"]
    rng = np.random.default_rng(seed)
    train = [
        _tasks(rng, setup["num_tasks"], dim, low, high, noise)
        for _ in range(setup["num_runs"])
    ]
    H_train, S_train, x_train = (np.stack(a) for a in zip(*train, strict=True))
    H_test = _tasks(rng, setup["num_test_tasks"], dim, low, high, noise)[0]
    dtype = jnp.zeros(()).dtype
    P, losses = _meta_train(
        *(jnp.asarray(a, dtype) for a in (H_train, S_train, x_train, lams)),
        jnp.asarray(alpha, dtype),
        jnp.asarray(setup["meta_lr"], dtype),
        horizon=setup["horizon"],
        meta_steps=setup["meta_steps"],
    )
    P, losses = np.asarray(P, float), np.asarray(losses, float)
    radii = np.stack([[_max_radius(p, alpha, H_test) for p in row] for row in P])
    train_radii = np.stack(
        [
            [_max_radius(p, alpha, h) for p, h in zip(row, H_train, strict=True)]
            for row in P
        ]
    )
    return MetaTrainingRecord(
        lams,
        np.mean(radii < 1, axis=1),
        np.mean(train_radii < 1, axis=1),
        radii,
        train_radii,
        np.max(np.abs(np.linalg.eigvals(P)), axis=-1),
        np.linalg.norm(P, axis=(-2, -1)),
        losses,
        setup,
    )


def _check_penalties(penalties):
    lams = np.asarray(penalties, float)
    if (
        lams.ndim != 1
        or lams.size == 0
        or np.any(lams < 0)
        or not np.all(np.isfinite(lams))
    ):
        raise ValueError("penalties: expected a 1-D array of non-negative numbers")
    return lams


def _check_setup(*, curvature_range, alpha, noise, meta_lr, seed, **counts):
    """The experiment's settings, validated (``ValueError`` naming the argument), as
    the record's ``setup``."""
    for name, value in counts.items():
        check_int(name, value, low=1)
    low, high = (
        check_scalar(f"curvature_range[{i}]", c, low=0.0, low_open=True)
        for i, c in enumerate(curvature_range)
    )
    if high < low:
        raise ValueError("curvature_range: expected (low, high) with low <= high")
    alpha = check_lr("alpha", alpha)
    noise = check_scalar("noise", noise, low=0.0)
    meta_lr = check_scalar("meta_lr", meta_lr, low=0.0, low_open=True)
    setup = {name: int(value) for name, value in counts.items()}
    return dict(
        num_runs=setup["num_runs"],
        num_tasks=setup["num_tasks"],
        dim=setup["dim"],
        horizon=setup["horizon"],
        alpha=alpha,
        curvature_range=(low, high),
        noise=noise,
        meta_steps=setup["meta_steps"],
        meta_lr=meta_lr,
        num_test_tasks=setup["num_test_tasks"],
        seed=seed,
    )
