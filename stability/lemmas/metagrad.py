r"""Meta-gradient growth with the horizon.

The exact meta-loss of a linear learned term on the noisy quadratic is

.. math:: L_T(P) = \frac1T \sum_{t<T} E\, l_t, \qquad
   E\, l_t = \tfrac12 [m_t^T H m_t + \mathrm{tr}(H \Sigma_t)
   + \mathrm{tr}(H\Sigma_\xi)],

with :math:`m_t = A^t x_0`, :math:`\Sigma_{t+1} = A\Sigma_t A^T + G\Sigma_\xi G^T`,
:math:`A = I - KH`, :math:`G = KH`, :math:`K = \alpha I + P`. :math:`E\, l_t` is a
polynomial of degree :math:`2t` in the entries of :math:`P`, so its gradient has degree
:math:`2t - 1`, and the moments together with their :math:`P`-derivatives form a
block-triangular linear system driven by :math:`A` and :math:`A \otimes A`:

- :math:`\rho(A) < 1`: every term decays geometrically, :math:`L_T \to \ell_\infty`
  (the stationary loss) and :math:`\nabla L_T = \nabla\ell_\infty + D/T + o(1/T)`:
  bounded, convergent.
- :math:`\rho(A) > 1`: the moments grow like :math:`\rho^{2t}`, their derivatives like
  :math:`t\rho^{2t}`, and the average like :math:`\rho^{2T}`: the rate
  :math:`\log\|\nabla L_T\| / T \to 2\log\rho`; the Monte-Carlo variance of sampled
  meta-gradients grows like :math:`\rho^{4T}`.
- :math:`\rho(A) = 1` (diagonalizable): polynomial growth. An eigenvalue :math:`+1`
  stalls the mean (the noise gain vanishes there), :math:`dm_t \propto t`, and
  :math:`\|\nabla L_T\| \propto T`; an eigenvalue :math:`-1` makes the variance grow
  linearly, its derivative quadratically, and :math:`\|\nabla L_T\| \propto T^2`;
  Jordan blocks grow faster.

So the meta-gradient stays bounded as :math:`T` grows iff :math:`\rho(A) < 1`,
provided the start or the noise reaches an eigen-direction with :math:`|\lambda| \ge 1`.
Without that excitation it can stay bounded although :math:`\rho > 1`: with
:math:`x_0` in a stable invariant subspace (eigenvalue :math:`r`) and no noise, the
perturbed trajectory grows like :math:`\rho^t` but meets the mean only through
:math:`m_t^T H\, dm_t \sim (r\rho)^t`, summable when :math:`r\rho < 1`
(:func:`counterexample`).

The conclusion checks boundedness on three horizons :math:`T_c, 2T_c, 4T_c`
(bounded: :math:`\|\nabla L_{4T_c}\| \le 8 \max(\|\nabla L_{T_c}\|,
\|\nabla L_{2T_c}\|)`; for :math:`g_T = G + D/T` the ratio is at most 2, since
:math:`g_{4T} = \tfrac32 g_{2T} - \tfrac12 g_T`) with the exact gradient from a float64
forward-mode recursion. The horizon must resolve :math:`\rho`: :math:`T |\log\rho|
\ge \log(20 T)`. That alone does not make the transient small: :math:`\|A^t\|` can
exceed :math:`\rho^t` by many orders of magnitude for a non-normal :math:`A` (:math:`A
= \tfrac12 I + 10 N` with :math:`N` the 8x8 shift has :math:`\rho = 1/2` and
:math:`\max_t \|A^t\|_2 \approx 2.7\cdot 10^{8}`, so the gradient grows from
:math:`T = 8` to :math:`32` and converges only beyond :math:`T \approx 100`). So for a
stable loop the check horizon :math:`T_c` is the first of :math:`T, 2T, 4T, \dots` with
:math:`\|A^{T_c}\|_F \le 1/(20 T_c)`, computed from the powers of :math:`A` at 50
digits (:func:`settling_horizon`), at most :data:`MAX_HORIZON` (beyond, the hypothesis
``horizon_resolves`` fails); an unstable loop is checked at :math:`T`. Where float64
powers of :math:`A` leave the exact ones (a pseudospectrum at rounding level reaching
beyond the unit circle) the float64 recursion cannot show convergence and
``horizon_resolves`` is undecided. Whether
:math:`\rho < 1` is decided exactly near 1 (rational Schur--Cohn on the float
inputs), not by float ``eig``, which is off by :math:`\epsilon^{1/m}` on a Jordan
block of size :math:`m`. :func:`stability.analyses.growth.gradient_growth` (also
importable from here, as the figures do) measures the growth with ``jax.grad`` through
:func:`stability.problems.expected_losses` and through sampled unrolls, and fits the
rate.

At :math:`\rho = 1` with a Jordan block the growth is polynomial of higher degree: for
a block of size :math:`m` at eigenvalue :math:`\pm 1`, :math:`\|A^t\|` grows like
:math:`t^{m-1}`, the excited mean :math:`m_t` like :math:`t^{m-1}`, its
:math:`P`-derivative :math:`dm_t = \sum_{s<t} A^{t-1-s}\, dA\, A^s x_0` like
:math:`t^{2m-1}`, so :math:`m_t^T H dm_t \sim t^{3m-2}` and the averaged gradient
:math:`\|\nabla L_T\| \sim T^{3m-2}` (noise-free, :math:`x_0` exciting the top of
the chain): degree 1 for :math:`m = 1` (eigenvalue +1), 4 for a 2x2 block
(:func:`jordan_growth_degree`).

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 4.
  L. Metz, N. Maheswaranathan, J. Nixon, D. Freeman & J. Sohl-Dickstein,
  "Understanding and correcting pathologies in the training of learned optimizers",
  ICML 2019 (exploding meta-gradients and their variance).
  P. Vicol, L. Metz & J. Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
  Computation Graphs with Persistent Evolution Strategies", ICML 2021.
"""

import functools
from typing import NamedTuple

import mpmath
import numpy as np

from stability._validation import (
    check_flag,
    check_int,
    check_lr,
    check_spd,
    check_square,
)
from stability.analyses.growth import gradient_growth as gradient_growth
from stability.analyses.growth import horizons_array as _horizons
from stability.analyses.growth import rate_vs_rho as rate_vs_rho
from stability.lemmas import _claim, _deprecated, _exact
from stability.lemmas._claim import FAILS, HOLDS, UNDECIDED, claim_of
from stability.lemmas.samplers import random_hessian, sample_size
from stability.lemmas.structure import spd_power
from stability.problems import NoisyQuadratic, noisy_quadratic

NAME = "metagrad"
TITLE = "Meta-gradient growth with the horizon"
STATEMENT = """\
L_T(P) = (1/T) sum_{t<T} E l_t on the noisy quadratic, A = I - (alpha I + P) H. E l_t
is a polynomial of degree 2t in P, dL_T/dP of degree 2T - 3. If x0 or the noise reaches
an eigen-direction of A with |lambda| >= 1, then ||dL_T/dP|| stays bounded as T grows
iff rho(A) < 1: it converges for rho < 1, grows like rho^{2T} for rho > 1 (its
Monte-Carlo variance like rho^{4T}), and polynomially at rho = 1 (linearly at an
eigenvalue +1, mean-driven; quadratically at -1, noise-driven; faster for Jordan
blocks: T^{3m-2} for a block of size m, noise-free). Checked on horizons T_c, 2T_c,
4T_c with T |log rho| >= log(20 T) and, for rho < 1, T_c >= T the first doubling with
||A^{T_c}||_F <= 1/(20 T_c) (the transient of a non-normal A, not rho alone); without
the excitation the gradient can stay bounded although rho > 1."""

GROWTH_FACTOR = 8.0  # bounded: ||g_4T|| <= 8 max(||g_T||, ||g_2T||)
RESOLVE = 20.0  # horizon_resolves: T |log rho| >= log(RESOLVE * T)
EXCITE_RTOL = 1e-8
DEFAULT_BUDGET = 500  # each draw runs the gradient recursion to 4 T_c
HORIZONS = (8, 16, 32)  # the horizons sample() draws from
MAX_HORIZON = 4096  # largest check horizon T_c (the recursion runs to 4 T_c)


class Instance(NamedTuple):
    """A noisy quadratic (``H``, ``noise_cov``, ``x0``), a learned term ``P`` with
    nominal step ``alpha``, and the check horizon ``horizon`` (``T``; the conclusion
    also looks at ``2T`` and ``4T``)."""

    H: np.ndarray
    noise_cov: np.ndarray
    x0: np.ndarray
    P: np.ndarray
    alpha: float
    horizon: int


def make_instance(*, H, P, alpha, horizon, noise_cov=0.0, x0=None) -> Instance:
    """Validated :class:`Instance`; ``ValueError`` names the bad argument.
    ``noise_cov`` may be a matrix, variances or a scalar; ``x0`` defaults to ones.

    >>> inst = make_instance(H=np.eye(1), P=[[0.0]], alpha=0.5, horizon=16)
    >>> hypotheses(inst), conclusion(inst)
    ({'excited': True, 'horizon_resolves': True}, True)
    """
    problem = noisy_quadratic(check_spd("H", H), noise_cov, x0)
    n = problem.dim
    p = check_square("P", P, n=n)
    alpha = check_lr("alpha", alpha)
    check_int("horizon", horizon, low=1)
    return Instance(
        problem.hessian, problem.noise_cov, problem.x0, p, alpha, int(horizon)
    )


def problem_of(instance: Instance) -> NoisyQuadratic:
    """The instance's :class:`~stability.problems.NoisyQuadratic`."""
    return NoisyQuadratic(instance.H, instance.noise_cov, instance.x0)


def transition(instance: Instance) -> np.ndarray:
    """``A = I - (alpha I + P) H``."""
    n = instance.H.shape[0]
    return np.eye(n) - (instance.alpha * np.eye(n) + instance.P) @ instance.H


def radius(instance: Instance) -> float:
    """:math:`\\rho(A)`: float64 ``eig`` when its error bar is below 1e-12, else from
    50-digit eigenvalues of the exact ``A``."""
    A = transition(instance)
    rho, err = _exact.float_radius(A)
    if err <= 1e-12 * max(rho, 1.0):
        return rho
    with mpmath.workdps(_exact.DIGITS):
        return _exact.mp_radius(_exact.mp_matrix(A))


def radius_below(instance: Instance, r) -> bool:
    """:math:`\\rho(A) <` ``r``, exactly: float64 ``eig`` when it is farther from
    ``r`` than its error bar, else the rational Schur--Cohn test on the float matrix
    ``A = I - (alpha I + P) H`` (itself rounded once)."""
    A = transition(instance)
    return _radius_below(A.tobytes(), A.shape[0], float(r))


@functools.lru_cache(maxsize=1024)
def _radius_below(data, n, r):
    A = np.frombuffer(data).reshape(n, n)
    rho, err = _exact.float_radius(A)
    if abs(rho - r) > err:
        return bool(rho < r)
    return _exact.exact_radius_below(A, r)


def stable(instance: Instance) -> bool:
    """:math:`\\rho(A) < 1`, decided exactly near 1 (:func:`radius_below`)."""
    return radius_below(instance, 1.0)


def settling_horizon(instance: Instance):
    """The check horizon :math:`T_c`: for a stable loop the first of ``T, 2T, 4T,
    ...`` with :math:`\\|A^{T_c}\\|_F \\le 1/(20 T_c)` (the transient of a non-normal
    ``A`` has died out; powers at 50 digits), ``T`` for an unstable loop; None when
    that exceeds :data:`MAX_HORIZON` or float64 powers of ``A`` do not track the exact
    ones (see :func:`settling_status`).

    >>> A = 0.5 * np.eye(8) + 10 * np.eye(8, k=1)  # rho = 1/2, ||A^t|| up to 2.7e8
    >>> inst = make_instance(H=np.eye(8), P=np.eye(8) - A, alpha=0.0, horizon=8)
    >>> settling_horizon(inst)
    128
    """
    return _settle(instance)[0]


def settling_status(instance: Instance) -> str:
    """Whether the check horizon exists: ``"holds"`` (unstable, or the transient
    settles by :data:`MAX_HORIZON`), ``"fails"`` (it does not), ``"undecided"``
    (float64 powers of ``A`` leave the exact ones by more than 1e-6 relative on the
    way: the :math:`10^{-16}`-pseudospectrum of a strongly non-normal ``A`` reaches
    beyond the unit circle, so the float64 gradient recursion measures rounding, not
    the loop)."""
    return _settle(instance)[1]


def _settle(instance):
    T = instance.horizon
    if not stable(instance):
        return T, HOLDS
    A = transition(instance)
    return _settle_powers(A.tobytes(), A.shape[0], T)


@functools.lru_cache(maxsize=256)
def _settle_powers(data, n, T):
    A = np.frombuffer(data).reshape(n, n)
    with mpmath.workdps(_exact.DIGITS), np.errstate(all="ignore"):
        exact = _exact.mp_matrix(A) ** T
        approx = np.linalg.matrix_power(A, T)
        t = T
        while True:
            norm = float(mpmath.mnorm(exact, "f"))
            if not abs(np.linalg.norm(approx) - norm) <= 1e-6 * norm + 1e-300:
                return None, UNDECIDED
            if norm <= 1 / (RESOLVE * t):
                return t, HOLDS
            if 2 * t > MAX_HORIZON:
                return None, FAILS
            exact, approx, t = exact * exact, approx @ approx, 2 * t


# ---------------------------------------------------------------------------------
# exact meta-gradients


def gradient_norms(instance: Instance, horizons) -> np.ndarray:
    r"""Exact :math:`\|\partial L_\tau / \partial P\|_F` at each horizon ``tau`` of
    ``horizons`` (positive integers), by a float64 forward-mode recursion of the
    moments and their derivatives along every entry of ``P`` (NumPy, no compilation):

    .. math:: dm_{t+1} = dA\, m_t + A\, dm_t, \quad
       d\Sigma_{t+1} = dA \Sigma_t A^T + A \Sigma_t dA^T + A\, d\Sigma_t A^T
       + dQ,

    with :math:`dA = -E_{ij} H`, :math:`dQ = E_{ij} H \Sigma_\xi G^T + G \Sigma_\xi H
    E_{ji}` and :math:`d\,E l_t = m_t^T H\, dm_t + \tfrac12 \mathrm{tr}(H\, d\Sigma_t)`.
    Non-finite values (overflow) are reported as ``inf``.
    """
    taus = _horizons(horizons)
    H, S, x0, P, alpha = (
        instance.H,
        instance.noise_cov,
        instance.x0,
        instance.P,
        instance.alpha,
    )
    n = H.shape[0]
    K = alpha * np.eye(n) + P
    A, G = np.eye(n) - K @ H, K @ H
    Q = G @ S @ G.T
    E = np.eye(n * n).reshape(n * n, n, n)
    dA = -(E @ H)
    X = (E @ H) @ (S @ G.T)
    dQ = X + X.transpose(0, 2, 1)
    m, C = x0.astype(float), np.zeros((n, n))
    dm, dC = np.zeros((n * n, n)), np.zeros((n * n, n, n))
    total = np.zeros(n * n)
    out = np.full(taus.size, np.inf)
    want = {int(t): i for i, t in enumerate(taus)}
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(int(taus.max())):
            total = total + dm @ (H @ m) + 0.5 * np.einsum("ab,eab->e", H, dC)
            if t + 1 in want:
                norm = np.linalg.norm(total) / (t + 1)
                out[want[t + 1]] = norm if np.isfinite(norm) else np.inf
            Y = dA @ (C @ A.T)
            dC = Y + Y.transpose(0, 2, 1) + A @ dC @ A.T + dQ
            dm = dA @ m + dm @ A.T
            m, C = A @ m, A @ C @ A.T + Q
            if not np.all(np.isfinite(total)):
                break
    return out


# ---------------------------------------------------------------------------------
# the claim


def bounds(instance: Instance) -> dict:
    """The spectral radius, the exact gradient norms at ``T, 2T, 4T`` and the
    predicted exponential rate :math:`2\\log\\max(\\rho, 1)`."""
    T = instance.horizon
    g = gradient_norms(instance, [T, 2 * T, 4 * T])
    rho = radius(instance)
    return {
        "rho": rho,
        "grad_norm_T": float(g[0]),
        "grad_norm_2T": float(g[1]),
        "grad_norm_4T": float(g[2]),
        "predicted_rate": 2 * float(np.log(max(rho, 1.0))),
    }


def excited(instance: Instance) -> bool:
    """Whether ``x0`` or the injected noise :math:`G\\Sigma_\\xi G^T` reaches a left
    eigen-direction of ``A`` with :math:`|\\lambda| \\ge 1` (vacuously true when
    :math:`\\rho < 1`)."""
    A = transition(instance)
    lam, vl = np.linalg.eig(A.T)  # columns: left eigenvectors of A
    big = np.abs(lam) >= 1 - 1e-12
    if not np.any(big):
        return True
    n = A.shape[0]
    G = np.eye(n) - A
    Q = G @ instance.noise_cov @ G.T
    x0 = instance.x0
    for w in vl[:, big].T:
        w = w / np.linalg.norm(w)
        if abs(np.vdot(w, x0)) > EXCITE_RTOL * max(np.linalg.norm(x0), 1e-300):
            return True
        if np.real(np.vdot(w, Q @ w)) > EXCITE_RTOL * max(np.linalg.norm(Q), 1e-300):
            return True
    return False


def hypothesis_status(instance: Instance) -> dict:
    """Named hypotheses, three-valued:

    - ``excited``: ``x0`` or the noise reaches an eigen-direction with
      :math:`|\\lambda| \\ge 1` (see :func:`excited`);
    - ``horizon_resolves``: :math:`T |\\log\\rho| \\ge \\log(20 T)` (decided exactly
      near the edge), and for a stable loop a :func:`settling_horizon` within
      :data:`MAX_HORIZON`; undecided when float64 cannot follow the loop's powers
      (:func:`settling_status`).
    """
    T = instance.horizon
    # T |log rho| >= log(20 T): rho <= (20 T)^(-1/T) or rho >= (20 T)^(1/T)
    edge = (RESOLVE * T) ** (1 / T)
    resolves = radius_below(instance, 1 / edge) or not radius_below(instance, edge)
    return {
        "excited": HOLDS if excited(instance) else FAILS,
        "horizon_resolves": settling_status(instance) if resolves else FAILS,
    }


def hypotheses(instance: Instance) -> dict:
    """Each hypothesis of :func:`hypothesis_status` and whether it holds (undecided
    counts as not holding)."""
    return {k: v == HOLDS for k, v in hypothesis_status(instance).items()}


def bounded(instance: Instance) -> bool:
    """Observed boundedness: :math:`\\|\\nabla L_{4T_c}\\| \\le 8 \\max(\\|\\nabla
    L_{T_c}\\|, \\|\\nabla L_{2T_c}\\|)` (all finite) at the :func:`settling_horizon`
    ``T_c`` (``T`` when there is none within :data:`MAX_HORIZON`)."""
    T = settling_horizon(instance) or instance.horizon
    g = gradient_norms(instance, [T, 2 * T, 4 * T])
    return bool(np.all(np.isfinite(g)) and g[2] <= GROWTH_FACTOR * max(g[0], g[1]))


def conclusion(instance: Instance) -> bool:
    """The meta-gradient stays bounded (observed on ``T_c, 2T_c, 4T_c``) iff
    :math:`\\rho(A) < 1` (decided exactly, :func:`stable`)."""
    return bounded(instance) == stable(instance)


def jordan_growth_degree(m: int) -> int:
    """The degree :math:`3m - 2` of :math:`\\|\\nabla L_T\\|` in ``T`` for a noise-free
    loop whose ``A`` is a Jordan block of size ``m`` at eigenvalue 1 (``x0`` exciting
    the top of the chain): :math:`m_t \\sim t^{m-1}`, :math:`dm_t \\sim t^{2m-1}`, so
    :math:`m_t^T H\\, dm_t \\sim t^{3m-2}`; their average has the same degree."""
    m = check_int("m", m, low=1)
    return 3 * m - 2


def sample_non_normal(rng) -> Instance:
    """A hard instance: a strongly non-normal loop :math:`A = H^{-1/2} U (r I + c N)
    U^T H^{1/2}` with ``N`` the shift, ``U`` orthogonal (the identity half the
    time), ``n`` 2 to 8, ``c`` log-uniform on ``[1, 10]`` and ``r`` on ``[0.1, 0.9]``
    (stable, :math:`\\|A^t\\|` up to :math:`\\sim 10^{9}`) or ``[1.1, 1.5]``;
    ``x0`` Gaussian, the noise isotropic or zero; the horizon the smallest power of
    two from 8 that resolves ``r`` (:math:`T |\\log r| \\ge \\log 20T`)."""
    n = int(rng.integers(2, 9))
    top = 10 ** rng.uniform(-1, 1)
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 2), top)
    r = rng.uniform(0.1, 0.9) if rng.random() < 0.7 else rng.uniform(1.1, 1.5)
    B = r * np.eye(n) + 10 ** rng.uniform(0, 1) * np.eye(n, k=1)
    if rng.random() < 0.5:
        u, _ = np.linalg.qr(rng.standard_normal((n, n)))
        B = u @ B @ u.T
    A = spd_power(H, -0.5) @ B @ spd_power(H, 0.5)
    P = (np.eye(n) - A) @ np.linalg.inv(H)
    x0 = rng.standard_normal(n) / np.sqrt(top)
    S = 0.0 if rng.random() < 0.5 else 1e-2 * np.eye(n) / top
    T = 8
    while T * abs(np.log(r)) < np.log(RESOLVE * T):
        T *= 2
    return make_instance(H=H, P=P, alpha=0.0, horizon=T, noise_cov=S, x0=x0)


HARD_FAMILIES = {"non_normal": sample_non_normal}


def sample(rng, *, n=None, kappa=None, stable=None) -> Instance:
    """A random instance satisfying every hypothesis.

    ``H`` with ``n`` (1 to 8) eigenvalues spanning condition number ``kappa`` (up to
    1e6); ``A = H^{-1/2} B H^{1/2}`` with ``B`` a random (non-normal) matrix scaled to
    spectral radius in ``[0.1, 0.8]`` (``stable``) or ``[1.25, 1.8]``; ``alpha`` up
    to ``1/L`` and ``P`` solved from ``A``; ``x0`` Gaussian, the noise a random
    covariance or zero; the horizon the smallest of 8, 16, 32 that resolves
    :math:`\\rho`.
    """
    n, kappa = sample_size(rng, n, kappa)
    stable = (
        bool(rng.random() < 0.5) if stable is None else check_flag("stable", stable)
    )
    top = 10 ** rng.uniform(-2, 2)
    H, _, _ = random_hessian(rng, n, kappa, top)
    target = rng.uniform(0.1, 0.8) if stable else rng.uniform(1.25, 1.8)
    B = rng.standard_normal((n, n))
    B *= target / np.max(np.abs(np.linalg.eigvals(B)))
    r, r_inv = spd_power(H, 0.5), spd_power(H, -0.5)
    A = r_inv @ B @ r
    alpha = rng.uniform(0, 1 / top)
    P = (np.eye(n) - A) @ np.linalg.inv(H) - alpha * np.eye(n)
    x0 = rng.standard_normal(n) / np.sqrt(top)
    if rng.random() < 0.3:
        S = 0.0
    else:
        F = rng.standard_normal((n, n)) * 10 ** rng.uniform(-2, 0) / np.sqrt(top)
        S = F @ F.T
    rho = float(np.max(np.abs(np.linalg.eigvals(B))))
    T = next(
        (t for t in HORIZONS if t * abs(np.log(rho)) >= np.log(RESOLVE * t)),
        HORIZONS[-1],
    )
    return make_instance(H=H, P=P, alpha=alpha, horizon=T, noise_cov=S, x0=x0)


DROPS = {"excited": "necessity"}


def _unexcited(rng):
    """Block upper-triangular ``A`` (``H`` diagonal, ``alpha = 0``) whose first
    column is ``r e_1`` exactly; ``x0 = e_1`` sits in that stable invariant subspace,
    the rest of ``A`` has spectral radius ``rho`` in ``[2, 3]`` and ``r rho < 1``."""
    n = int(rng.integers(2, 5))
    h = np.sort(10 ** rng.uniform(-2, 0, n))[::-1]
    rho = rng.uniform(2.0, 3.0)
    r = rng.uniform(0.05, 0.9) / rho
    A22 = rng.standard_normal((n - 1, n - 1))
    A22 *= rho / np.max(np.abs(np.linalg.eigvals(A22)))
    A = np.zeros((n, n))
    A[0, 0], A[0, 1:], A[1:, 1:] = r, rng.standard_normal(n - 1), A22
    P = (np.eye(n) - A) / h[None, :]  # K = (I - A) H^{-1}, column by column
    x0 = np.zeros(n)
    x0[0] = 1.0
    return make_instance(H=np.diag(h), P=P, alpha=0.0, horizon=8, noise_cov=0.0, x0=x0)


def counterexample(drop, *, kind=None, seed=0, budget=DEFAULT_BUDGET):
    """Seeded random search for an instance satisfying every hypothesis except
    ``drop`` that breaks the claim. ``"excited"`` (necessity): ``rho(A) > 1`` and yet
    the meta-gradient stays bounded, because ``x0`` lies in a stable invariant
    subspace of ``A`` and there is no noise (block upper-triangular ``A``). Same seed,
    same instance; None if the budget runs out.

    >>> inst = counterexample("excited", seed=0)
    >>> radius(inst) > 1, bounded(inst)
    (True, True)
    """
    return _claim.counterexample(CLAIM, drop, kind=kind, seed=seed, budget=budget)


def _bounded_although_unstable(instance, kind):
    """The ``"excited"`` counterexample's break: ``rho > 1``, yet bounded."""
    return radius(instance) > 1 and not conclusion(instance)


def __getattr__(name):
    return _deprecated.moved(__name__, name)


CLAIM = claim_of(
    __name__, searches={"excited": _unexcited}, breaks=_bounded_although_unstable
)
