r"""Weight decay on the learned term pulls its eigenvalues toward zero.

Meta-learning a linear learned term :math:`P` by minimising the exact meta-loss
:math:`L_T(P) = \frac1T\sum_{t<T} E\, l_t` of the loop :math:`A = I - (\alpha I + P)H`,
with an L2 penalty (weight decay) :math:`\frac\lambda2 \|P\|_F^2`:

.. math:: P_\lambda = \arg\min_P \; L_T(P) + \tfrac\lambda2 \|P\|_F^2 .

**Norms shrink, always.** For global minimisers,
:math:`L_T(P_\lambda) + \frac\lambda2\|P_\lambda\|^2 \le L_T(P_0) + \frac\lambda2
\|P_0\|^2` and :math:`L_T(P_0) \le L_T(P_\lambda)` give
:math:`\|P_\lambda\|_F \le \|P_0\|_F` (for every global minimiser :math:`P_0`).

**Eigenvalues shrink when the problem is per mode.** If ``H`` and the noise are
diagonal and ``P`` is restricted to diagonal matrices (it commutes with ``H``), the
penalised meta-loss separates into one-dimensional problems, and the same argument per
mode gives :math:`|p_{\lambda,i}| \le |p_{0,i}|`: every eigenvalue of :math:`P` moves
toward zero. Each one-dimensional problem is a polynomial in
:math:`a = 1 - (\alpha + p) h`,

.. math:: f(a) = \frac{h}{2T}\Big[x_0^2 \sum_{t<T} a^{2t}
   + \sigma^2 (1-a)^2 \sum_{k<T-1} (T-1-k) a^{2k} + T\sigma^2\Big]
   + \frac\lambda2 \Big(\frac{1-a}{h} - \alpha\Big)^2 ,

minimised exactly (real critical points from the roots of :math:`f'`, Newton-polished,
compared with the ends of the interval that must hold the minimiser). Both the
mean and the noise terms grow with :math:`|a|` beyond 1, and the penalty grows away
from :math:`a = 1 - \alpha h`, so the minimiser lies in
:math:`[\min(-1, 1-\alpha h), \max(1, 1-\alpha h)]`; when the nominal term alone is
stable (:math:`\alpha h < 2`) this is :math:`[-1, 1]`: the exact minimiser of a
finite-horizon per-mode meta-loss is never unstable, penalised or not.

**False for a dense learned term.** With ``P`` a full matrix (not commuting with
``H``) the shrinkage acts on the entries of ``P`` through the meta-loss's curvature,
not on its eigenvalues: :math:`\rho(P_\lambda) > \rho(P_0)` happens (found at
``T = 2``, where the meta-loss is a convex quadratic in ``P`` and its minimisers are
exact linear solves).

**What it does in meta-training.**
:func:`stability.lopt.linear_term.meta_train_stability` meta-trains a dense
``P`` by gradient descent on the exact meta-loss of a small batch of random rotated
quadratics at a short horizon, where overshooting is cheap, and reports the fraction
of runs whose ``P`` is stable on held-out quadratics for each penalty.

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 5 (weight decay
  on the learned optimizer).
  A. N. Tikhonov & V. Y. Arsenin, *Solutions of Ill-Posed Problems*, Winston, 1977
  (norm of the regularised minimiser).
"""

from typing import NamedTuple

import numpy as np
from numpy.polynomial import polynomial as npoly

from stability._validation import check_int, check_lr, check_scalar, check_spd
from stability.lemmas import _claim, _deprecated
from stability.lemmas._claim import claim_of
from stability.lemmas.samplers import random_hessian, sample_size
from stability.problems import noisy_quadratic

NAME = "weight_decay"
TITLE = "Weight decay on the learned term"
STATEMENT = """\
P_lambda = argmin_P L_T(P) + (lambda/2) ||P||_F^2 with L_T the exact meta-loss of
A = I - (alpha I + P) H on the noisy quadratic (global minimisers). Always
||P_lambda||_F <= ||P_0||_F. If H and the noise are diagonal and P is restricted to
diagonal matrices (P commutes with H), the problem separates per mode and every
eigenvalue shrinks: |p_lambda,i| <= |p_0,i| (so the sorted eigenvalue magnitudes and
the spectral radius of P do not grow); the minimisers then satisfy |a_i| <= 1 whenever
alpha h_i < 2. False for a dense P: the spectral radius of P_lambda can exceed that of
P_0."""

PARAMETRISATIONS = ("diagonal", "dense")
MAX_DIAGONAL_HORIZON = 24  # keeps the per-mode polynomials' degree below 48
RTOL = 1e-7  # relative tolerance on the magnitude comparison (optimisation rounding)
_GROWTH = 1e-3  # the counterexample's spectral radius of P grows by this, relatively
DEFAULT_BUDGET = 500  # each draw minimises two meta-losses


class Instance(NamedTuple):
    """A noisy quadratic (``H``, ``noise_cov``, ``x0``), the nominal step ``alpha``,
    the meta-training horizon ``horizon``, the weight-decay ``penalty`` and the
    ``parametrisation`` of ``P`` (``"diagonal"``: diagonal ``P`` on a diagonal
    problem; ``"dense"``: a full matrix, horizon 2 only)."""

    H: np.ndarray
    noise_cov: np.ndarray
    x0: np.ndarray
    alpha: float
    horizon: int
    penalty: float
    parametrisation: str


def make_instance(
    *, H, alpha, horizon, penalty, noise_cov=0.0, x0=None, parametrisation="diagonal"
) -> Instance:
    """Validated :class:`Instance`; ``ValueError`` names the bad argument.

    ``"diagonal"`` needs diagonal ``H`` and ``noise_cov`` and ``2 <= horizon <= 24``;
    ``"dense"`` needs ``horizon == 2`` (there the meta-loss is a convex quadratic and
    its minimisers exact).

    >>> inst = make_instance(H=np.diag([1.0, 0.1]), alpha=0.5, horizon=4, penalty=0.1,
    ...                      noise_cov=[0.1, 0.1])
    >>> hypotheses(inst), conclusion(inst)
    ({'per_mode': True}, True)
    """
    problem = noisy_quadratic(check_spd("H", H), noise_cov, x0)
    alpha = check_lr("alpha", alpha)
    penalty = check_scalar("penalty", penalty, low=0.0)
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(
            f"parametrisation: expected one of {PARAMETRISATIONS}, "
            f"got {parametrisation!r}"
        )
    check_int("horizon", horizon, low=2)
    if parametrisation == "dense" and horizon != 2:
        raise ValueError("horizon: the dense parametrisation is exact only at 2")
    if parametrisation == "diagonal":
        if horizon > MAX_DIAGONAL_HORIZON:
            raise ValueError(f"horizon: at most {MAX_DIAGONAL_HORIZON}, got {horizon}")
        if not problem.is_diagonal:
            raise ValueError(
                "H: the diagonal parametrisation needs diagonal H and noise"
            )
    return Instance(
        problem.hessian,
        problem.noise_cov,
        problem.x0,
        alpha,
        int(horizon),
        penalty,
        parametrisation,
    )


# ---------------------------------------------------------------------------------
# exact minimisers


def mode_polynomial(h, x0, var, horizon):
    r"""Ascending coefficients in :math:`a = 1 - (\alpha + p) h` of the per-mode
    meta-loss :math:`\frac1T \sum_{t<T} E\, l_t` (curvature ``h``, start ``x0``, noise
    variance ``var``; ``horizon >= 2`` as in :func:`make_instance`)."""
    h = check_scalar("h", h, low=0.0, low_open=True)
    x0 = check_scalar("x0", x0)
    var = check_scalar("var", var, low=0.0)
    T = check_int("horizon", horizon, low=2)
    mean = np.zeros(2 * T - 1)
    mean[::2] = 1.0  # sum_{t<T} a^{2t}
    noise = np.zeros(max(2 * T - 3, 1))
    noise[::2] = T - 1 - np.arange(T - 1)
    noise = npoly.polymul(noise, [1.0, -2.0, 1.0])  # (1 - a)^2 sum (T-1-k) a^{2k}
    total = npoly.polyadd(x0**2 * mean, var * noise)
    total = npoly.polyadd(total, [T * var])
    return 0.5 * h / T * total


def _mode_minimiser(h, x0, var, horizon, alpha, penalty):
    """The exact global minimiser ``p`` of one mode's penalised meta-loss (the
    smallest in magnitude among ties)."""
    f = mode_polynomial(h, x0, var, horizon)
    # (lambda/2) ((1 - a)/h - alpha)^2 as a polynomial in a
    lin = np.array([1 / h - alpha, -1 / h])
    F = npoly.polyadd(f, 0.5 * penalty * npoly.polymul(lin, lin))
    c = 1 - alpha * h  # the penalty's minimiser in a
    lo, hi = min(-1.0, c), max(1.0, c)
    dF, d2F = npoly.polyder(F), npoly.polyder(F, 2)
    cands = [lo, hi]
    if np.any(dF):
        scale = np.max(np.abs(dF))
        roots = npoly.polyroots(dF / scale) if dF.size > 1 else np.array([])
        for z in roots:
            if abs(z.imag) <= 1e-6 * (1 + abs(z.real)):
                a = z.real
                for _ in range(3):  # Newton polish on F'
                    d2 = npoly.polyval(a, d2F)
                    if d2 == 0:
                        break
                    a = a - npoly.polyval(a, dF) / d2
                if lo <= a <= hi:
                    cands.append(a)
    cands = np.asarray(cands)
    values = npoly.polyval(cands, F)
    best = values.min()
    tie = values <= best + 1e-14 * max(abs(best), 1e-300)
    p = (1 - cands[tie]) / h - alpha
    return float(p[np.argmin(np.abs(p))])


def _dense_minimiser(inst, penalty):
    """Exact minimiser at horizon 2: ``(1/2) H P C + lambda P = (1/2)(H x x^T H -
    alpha H C)`` with ``C = H (x x^T + Sigma) H`` (minimum norm when singular)."""
    H, S, x = inst.H, inst.noise_cov, inst.x0
    n = H.shape[0]
    C = H @ (np.outer(x, x) + S) @ H
    rhs = 0.5 * (H @ np.outer(x, x) @ H - inst.alpha * H @ C)
    M = 0.5 * np.kron(H, C.T) + penalty * np.eye(n * n)  # row-major vec(H P C)
    vec = np.linalg.lstsq(M, rhs.reshape(-1), rcond=None)[0]
    return vec.reshape(n, n)


def minimiser(instance: Instance, penalty=None) -> np.ndarray:
    """The exact global minimiser ``P_lambda`` (``(n, n)``) of the penalised exact
    meta-loss, at the instance's penalty or at ``penalty`` if given.

    >>> inst = make_instance(H=np.eye(1), alpha=0.0, horizon=2, penalty=0.0)
    >>> minimiser(inst).tolist()  # noiseless: one step to the optimum, a = 0
    [[1.0]]
    """
    lam = (
        instance.penalty
        if penalty is None
        else check_scalar("penalty", penalty, low=0.0)
    )
    if instance.parametrisation == "dense":
        return _dense_minimiser(instance, lam)
    h = np.diag(instance.H)
    var = np.diag(instance.noise_cov)
    p = [
        _mode_minimiser(
            h[i], instance.x0[i], var[i], instance.horizon, instance.alpha, lam
        )
        for i in range(h.size)
    ]
    return np.diag(p)


def meta_loss(instance: Instance, P) -> float:
    """The exact (unpenalised) meta-loss :math:`L_T(P)` of the instance, float64
    NumPy (the moment recursion of :func:`stability.problems.expected_losses`)."""
    H, S, x = instance.H, instance.noise_cov, instance.x0
    n = H.shape[0]
    G = (instance.alpha * np.eye(n) + np.asarray(P, float)) @ H
    A, Q = np.eye(n) - G, G @ S @ G.T
    m, C, total = x.astype(float), np.zeros((n, n)), 0.0
    base = np.trace(H @ S)
    for _ in range(instance.horizon):
        total += 0.5 * (m @ H @ m + np.sum(H * C) + base)
        m, C = A @ m, A @ C @ A.T + Q
    return total / instance.horizon


def _magnitudes(P):
    return np.sort(np.abs(np.linalg.eigvals(P)))[::-1]


# ---------------------------------------------------------------------------------
# the claim


def bounds(instance: Instance) -> dict:
    """Spectral radius and Frobenius norm of the penalised and unpenalised minimisers,
    and the closed-loop radius at the penalised one."""
    p_lam, p_0 = minimiser(instance), minimiser(instance, 0.0)
    n = instance.H.shape[0]
    A = np.eye(n) - (instance.alpha * np.eye(n) + p_lam) @ instance.H
    return {
        "penalty": instance.penalty,
        "rho_P_penalised": float(_magnitudes(p_lam)[0]),
        "rho_P_unpenalised": float(_magnitudes(p_0)[0]),
        "norm_P_penalised": float(np.linalg.norm(p_lam)),
        "norm_P_unpenalised": float(np.linalg.norm(p_0)),
        "rho_A_penalised": float(np.max(np.abs(np.linalg.eigvals(A)))),
    }


def hypotheses(instance: Instance) -> dict:
    """Named hypotheses and whether they hold:

    - ``per_mode``: diagonal ``H`` and noise with ``P`` restricted to diagonal matrices
      (``P`` commutes with ``H``; the meta-loss separates per mode).
    """
    return {"per_mode": instance.parametrisation == "diagonal"}


def _shrinks(p_lam, p_0):
    big, small = _magnitudes(p_0), _magnitudes(p_lam)
    tol = RTOL * (big + np.max(big, initial=0.0) * 1e-3) + 1e-300
    return bool(np.all(small <= big + tol))


def conclusion(instance: Instance) -> bool:
    """The sorted eigenvalue magnitudes of ``P_lambda`` are at most those of ``P_0``
    (elementwise, to a relative 1e-7 for the rounding of the minimisation)."""
    return _shrinks(minimiser(instance), minimiser(instance, 0.0))


def sample(rng, *, n=None, kappa=None) -> Instance:
    """A random instance satisfying every hypothesis: diagonal ``H`` with ``n`` (1 to
    8) eigenvalues spanning condition number ``kappa`` (up to 1e6), ``x0`` Gaussian
    (scaled by :math:`h^{-1/2}` half the time), noise variances log-uniform or zero,
    ``alpha`` up to ``3/L``, horizon 2 to 12, penalty log-uniform on
    ``[1e-6, 1e2]``."""
    n, kappa = sample_size(rng, n, kappa)
    top = 10 ** rng.uniform(-2, 2)
    _, h, _ = random_hessian(rng, n, kappa, top)
    x0 = rng.standard_normal(n)
    if rng.random() < 0.5:
        x0 = x0 / np.sqrt(h)
    var = np.zeros(n) if rng.random() < 0.3 else 10 ** rng.uniform(-3, 1, n) / h
    return make_instance(
        H=np.diag(h),
        alpha=(3 / top) * rng.uniform(0, 1),
        horizon=int(rng.integers(2, 13)),
        penalty=10 ** rng.uniform(-6, 2),
        noise_cov=var,
        x0=x0,
    )


DROPS = {"per_mode": "sufficiency"}


def _dense_candidate(rng):
    n = int(rng.integers(2, 4))
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 2), 1.0)
    F = rng.standard_normal((n, n)) * 10 ** rng.uniform(-2, 0)
    return make_instance(
        H=H,
        alpha=rng.uniform(0, 2),
        horizon=2,
        penalty=10 ** rng.uniform(-3, 1),
        noise_cov=F @ F.T,
        x0=rng.standard_normal(n),
        parametrisation="dense",
    )


def counterexample(drop, *, kind=None, seed=0, budget=DEFAULT_BUDGET):
    """Seeded random search for an instance satisfying every hypothesis except
    ``drop`` that breaks the claim. ``"per_mode"`` (sufficiency): a dense ``P`` on a
    rotated quadratic at horizon 2 whose penalised minimiser has a spectral radius
    larger than the unpenalised one by more than 0.1%. Same seed, same instance; None
    if the budget runs out.

    >>> inst = counterexample("per_mode", seed=0)
    >>> b = bounds(inst)
    >>> b["rho_P_penalised"] > b["rho_P_unpenalised"], conclusion(inst)
    (True, False)
    """
    return _claim.counterexample(CLAIM, drop, kind=kind, seed=seed, budget=budget)


def _radius_grows(instance, kind):
    """The penalised minimiser's spectral radius exceeds the unpenalised one's by
    more than :data:`_GROWTH`, relatively."""
    r_lam = _magnitudes(minimiser(instance))[0]
    r_0 = _magnitudes(minimiser(instance, 0.0))[0]
    return r_lam > (1 + _GROWTH) * r_0


def __getattr__(name):
    return _deprecated.moved(__name__, name)


CLAIM = claim_of(
    __name__, searches={"per_mode": _dense_candidate}, breaks=_radius_grows
)
