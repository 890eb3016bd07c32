r"""Certified convergence rates over every smooth strongly convex function.

The rest of :mod:`stability.analyses` speaks about quadratics: a spectral radius of a
linear loop. This module certifies a rate for the whole class :math:`F(\mu, L)` of
:math:`\mu`-strongly convex, :math:`L`-smooth functions, with a small semidefinite
program (integral quadratic constraints, Lessard, Recht & Packard 2016).

**The loop.** A linear time-invariant optimizer acting on the gradient is a state-space
triple ``(A, B, C)``:

.. math:: \xi_{k+1} = A \xi_k + B u_k, \qquad y_k = C \xi_k, \qquad
   u_k = \nabla f(y_k).

Every per-mode family of the toolkit is one, with a scalar gradient channel
(:func:`state_space`); on :math:`\mathbb{R}^d` it acts as ``A ⊗ I_d`` and the
certificate below carries over unchanged. A triple with ``m`` input channels acts on
functions of :math:`\mathbb{R}^m` (a learned linear term as a full matrix, for
instance).

**The certificate.** Shift to a fixed point :math:`\xi_\star` (:math:`C \xi_\star =
y_\star`, the minimiser, :math:`u_\star = 0`). With ``multipliers="sector"`` the
certificate is LRP's Theorem 4 with the sector IQC: a matrix :math:`P \succeq I` and
:math:`\lambda \ge 0` such that

.. math:: \begin{bmatrix} A^T P A - \rho^2 P & A^T P B \\ B^T P A & B^T P B
   \end{bmatrix} + \lambda \begin{bmatrix} C & 0 \\ 0 & I \end{bmatrix}^T
   \begin{bmatrix} -2\mu L & \mu + L \\ \mu + L & -2 \end{bmatrix}
   \begin{bmatrix} C & 0 \\ 0 & I \end{bmatrix} \preceq 0,

the sector condition being :math:`(u - \mu y)^T (L y - u) \ge 0` (with the shift).
With ``multipliers="zames_falb"`` (the default, the strongest here) the function
values enter: the :math:`\rho`-weighted off-by-one IQC of LRP (a Zames–Falb
multiplier) telescopes :math:`f(y_k) - f(y_{k+1})` and :math:`f(y_k) - f_\star`
with weights :math:`\rho^{-2k}`, which is the same as a Lyapunov function with a
function-value term. That form is used here, with the generalisation of Taylor, Van
Scoy & Lessard (2018): the Lyapunov function

.. math:: V_k = w_k^T P w_k + c\,(f(y_k) - f_\star), \qquad
   w_k = (\xi_k - \xi_\star, u_k), \quad c \ge 0,

and :math:`V_{k+1} \le \rho^2 V_k` shown from a non-negative combination of the
interpolation inequalities of :math:`F(\mu, L)` (Taylor, Hendrickx & Glineur 2017)
among the three points :math:`y_k, y_{k+1}, y_\star` (six inequalities, one weight
each; the off-by-one IQC uses the pairs :math:`(k, k{+}1)` and :math:`(k, \star)`,
the sector IQC the sum of :math:`(k, \star)` and :math:`(\star, k)`, so a
certificate of either is one of these). Function values enter linearly and their
coefficients must cancel. The scale is fixed by :math:`V_k \ge \|\xi_k -
\xi_\star\|^2`, itself shown from the two inequalities between :math:`y_k` and
:math:`y_\star` (weights ``"lower:k,*"``, ``"lower:*,k"``). Then

.. math:: \|\xi_k - \xi_\star\|^2 \le K \rho^{2k} \|\xi_0 - \xi_\star\|^2,

with :math:`K` from :math:`\|u_0\| \le L \|C (\xi_0 - \xi_\star)\|` and
:math:`f(y_0) - f_\star \le \tfrac{L}{2} \|C (\xi_0 - \xi_\star)\|^2` (valid, not
tight). With the sector multiplier :math:`K` is the condition number of :math:`P`.

:func:`certified_rate` bisects on :math:`\rho` between the quadratic rate (no
certificate can beat the worst quadratic of the class, since quadratics with
curvature in :math:`[\mu, L]` belong to it) and 1; :func:`certified_region` makes one
feasibility solve per grid cell at a target rate just below 1. Solutions are checked
in float64 after the solver returns (the largest eigenvalue of the LMI, the weights'
signs and the cancelled function-value coefficients, to a relative ``1e-7``); a
solution that fails the check counts as infeasible, so a rate is only ever reported
from a checked certificate. Solver failures are reported as such, never as a rate.

Needs the ``robust`` extra (``pip install -e ".[robust]"``: cvxpy and Clarabel).

References:
  L. Lessard, B. Recht & A. Packard, "Analysis and design of optimization algorithms
  via integral quadratic constraints", SIAM J. Optim. 26(1), 2016 (Theorem 4, the
  sector IQC (Lemma 6) and the weighted off-by-one IQC; the heavy-ball
  counterexample of Section 4.6).
  A. Taylor, J. Hendrickx & F. Glineur, "Smooth strongly convex interpolation and
  exact worst-case performance of first-order methods", Math. Program. 161, 2017
  (Theorem 4, the interpolation inequalities).
  A. Taylor, B. Van Scoy & L. Lessard, "Lyapunov functions for first-order methods:
  tight automated convergence guarantees", ICML 2018.
"""

import itertools
import math
import warnings
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.optimize

from stability._validation import (
    as_float_array,
    check_beta,
    check_betas,
    check_lr,
    check_scalar,
)
from stability.analyses.regions import split_grid
from stability.optimizers import modes

MULTIPLIERS = ("zames_falb", "sector")
# family -> its hyperparameters (defaults where it has one)
FAMILY_PARAMS = {
    "gd": ("lr",),
    "nominal": ("alpha", "p", "preconditioner"),
    "heavy_ball": ("lr", "beta"),
    "ema_momentum": ("lr", "beta"),
    "nesterov": ("lr", "beta"),
    "aggmo": ("lr", "betas"),
}
_DEFAULTS = {"nominal": {"p": 0.0, "preconditioner": 1.0}}
# optimizers of the toolkit that are not linear time-invariant, and why
_NOT_LTI = {
    "adam_aggmo": "its preconditioner 1/sqrt(v) depends on the gradients",
    "adam": "its preconditioner depends on the gradients",
    "preconditioned": "freeze the preconditioner as a scalar gain: "
    "family 'nominal' with preconditioner=c",
    "star": "a learned nonlinear update",
    "small_fc_lopt": "a learned nonlinear update",
}
_TOL = 1e-7  # relative tolerance of the float64 check of a solver's certificate


class CertifiedRate(NamedTuple):
    """A rate certified for every function of :math:`F(\\mu, L)`.

    Attributes:
      rate: the smallest certified :math:`\\rho` found by bisection (within ``tol``
        above it the LMI was feasible and checked); ``inf`` when none below 1 is;
        ``nan`` when the solver failed.
      certified: a rate below 1 was certified.
      status: ``"certified"``, ``"not_certified"`` or ``"solver_failed"``.
      solver_status: the solver's own word for the last solve (cvxpy's status), or
        why no solve was needed.
      message: one line saying what happened.
      multipliers: ``"zames_falb"`` or ``"sector"``.
      quadratic_rate: the worst spectral radius over curvatures in ``[mu, L]``, a
        lower bound on any certified rate.
      quadratic_exact: True when ``quadratic_rate`` is the exact maximum (endpoint
        argument), False when found by dense sampling and refinement.
      gap: ``rate - quadratic_rate``.
      system: the ``(A, B, C)`` analysed.
      P: the certificate's Lyapunov matrix, over ``(xi - xi_*, u)`` for
        ``zames_falb`` and over ``xi - xi_*`` for ``sector`` (``None`` when nothing
        was certified).
      function_weight: ``c``, the weight of :math:`f(y_k) - f_\\star` in the
        Lyapunov function (0 for the sector multiplier).
      weights: the multiplier weights, ``{name: value}``: ``"sector"``, or
        ``"k,*"``, ``"*,k"``, ``"k+1,*"``, ``"*,k+1"``, ``"k,k+1"``, ``"k+1,k"`` for
        the interpolation inequality between those points (first point's value on
        the left), and ``"lower:k,*"``, ``"lower:*,k"`` for the two that show
        ``V >= |xi - xi_*|^2``.
      constant: ``K`` of the bound
        :math:`\\|\\xi_k - \\xi_\\star\\|^2 \\le K \\rho^{2k}
        \\|\\xi_0 - \\xi_\\star\\|^2` (a valid, not a tight, constant).
      residual: the largest eigenvalue of the LMI at the certificate, relative to
        its terms' size (``<= 1e-7`` for an accepted one; ``nan`` without one).
      mu, L: the class.
      family: the family name, or ``None`` for a raw ``(A, B, C)``.
      hyperparameters: the family's hyperparameters.
      num_solves: how many SDPs were solved.
      resolution: how far below ``rate`` the LMI is known to be infeasible
        (``tol`` unless the solver failed while the bisection refined a rate, which
        ``message`` then says; 0 when no solve was needed).
    """

    rate: float
    certified: bool
    status: str
    solver_status: str
    message: str
    multipliers: str
    quadratic_rate: float
    quadratic_exact: bool
    gap: float
    system: tuple
    P: np.ndarray | None
    function_weight: float
    weights: dict
    constant: float
    residual: float
    mu: float
    L: float
    family: str | None
    hyperparameters: dict
    num_solves: int
    resolution: float


class CertifiedRegion(NamedTuple):
    """Certified and quadratic stability on a grid of hyperparameters.

    Attributes:
      family: the optimizer family.
      axes: the grid axes in order, ``{name: 1-D array}``; every array below has
        shape ``tuple(len(a) for a in axes.values())``.
      fixed: the hyperparameters held fixed.
      mu, L: the class :math:`F(\\mu, L)`.
      target: the rate tested in each cell (just below 1).
      multipliers: ``"zames_falb"`` or ``"sector"``.
      rho: the worst spectral radius over curvatures in ``[mu, L]`` (the quadratic
        rate), so the record draws like a :class:`~stability.analyses.StabilityRegion`.
      certified: a certificate of rate ``target`` was found and checked.
      solver_failed: the solver failed in that cell (never counted as certified).
      num_solves: how many SDPs were solved (cells with ``rho >= target`` need none).
    """

    family: str
    axes: dict
    fixed: dict
    mu: float
    L: float
    target: float
    multipliers: str
    rho: np.ndarray
    certified: np.ndarray
    solver_failed: np.ndarray
    num_solves: int

    @property
    def quadratic_stable(self) -> np.ndarray:
        """Every quadratic of the class converges (``rho < 1``)."""
        return self.rho < 1

    @property
    def band(self) -> np.ndarray:
        """Stable on every quadratic but not certified on the class."""
        return self.quadratic_stable & ~self.certified


# ----------------------------------------------------------------------------------
# families as state-space triples
# ----------------------------------------------------------------------------------


def _family_params(family, hyperparameters):
    if family in _NOT_LTI:
        raise ValueError(
            f"family: {family!r} is not linear time-invariant ({_NOT_LTI[family]})"
        )
    if family not in FAMILY_PARAMS:
        raise ValueError(
            f"family: expected one of {tuple(FAMILY_PARAMS)} or an (A, B, C) "
            f"triple, got {family!r}"
        )
    params = _DEFAULTS.get(family, {}) | dict(hyperparameters)
    names = FAMILY_PARAMS[family]
    missing = [k for k in names if k not in params]
    extra = [k for k in params if k not in names]
    if missing or extra:
        raise ValueError(
            f"{family}: takes {names}; missing {missing}, unexpected {extra}"
        )
    out = {}
    for name, value in params.items():
        if name == "betas":
            out[name] = check_betas(name, value)
        elif name == "beta":
            out[name] = check_beta(name, value)
        elif name in ("lr", "alpha"):
            out[name] = check_lr(name, value)
        elif name == "preconditioner":
            out[name] = check_scalar(name, value, low=0.0, low_open=True)
        else:
            out[name] = check_scalar(name, value)
    return out


def state_space(family: str, **hyperparameters):
    """The ``(A, B, C)`` triple of a per-mode family acting on a scalar gradient.

    States: ``gd`` and ``nominal`` ``(phi,)``; ``heavy_ball``, ``ema_momentum`` and
    ``nesterov`` ``(phi, m)``; ``aggmo`` ``(phi, m_1, ..., m_k)``; the gradient is
    taken at ``phi`` (``C = e_1``). ``nominal`` is
    ``phi' = phi - preconditioner * (alpha + p) g``: the nominal step, a scalar
    learned linear term ``p`` and an output preconditioner frozen as a gain.

    >>> a, b, c = state_space("heavy_ball", lr=0.5, beta=0.5)
    >>> a.tolist(), b.ravel().tolist(), c.tolist()
    ([[1.0, -0.25], [0.0, 0.5]], [-0.5, 1.0], [[1.0, 0.0]])
    """
    p = _family_params(family, hyperparameters)
    if family in ("gd", "nominal"):
        if family == "gd":
            step = p["lr"]
        else:
            step = p["preconditioner"] * (p["alpha"] + p["p"])
        return np.array([[1.0]]), np.array([[-step]]), np.array([[1.0]])
    a = p["lr"]
    if family == "aggmo":
        betas = np.array(p["betas"])
        k = betas.size
        A = np.zeros((k + 1, k + 1))
        A[0, 0] = 1.0
        A[0, 1:] = -a * betas / k
        A[1:, 1:] = np.diag(betas)
        B = np.concatenate([[-a * np.mean(1 - betas)], 1 - betas])[:, None]
    else:
        b = p["beta"]
        # m' = b m + w u ; phi' = phi - a (d m + e u)
        w = 1 - b if family == "ema_momentum" else 1.0
        d = b * b if family == "nesterov" else b
        e = (1 + b) if family == "nesterov" else w
        A = np.array([[1.0, -a * d], [0.0, b]])
        B = np.array([[-a * e], [w]])
    C = np.zeros((1, A.shape[0]))
    C[0, 0] = 1.0
    return A, B, C


def _check_system(system):
    try:
        A, B, C = system
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"system: expected a family name or an (A, B, C) triple, got {system!r}"
        ) from err
    A = as_float_array("A", A, ndim=2)
    B = as_float_array("B", B, ndim=2)
    C = as_float_array("C", C, ndim=2)
    n = A.shape[0]
    if A.shape != (n, n) or n == 0:
        raise ValueError(f"A: must be square and non-empty, got shape {A.shape}")
    if B.shape[0] != n:
        raise ValueError(f"B: expected {n} rows (A is {n}x{n}), got shape {B.shape}")
    m = B.shape[1]
    if m == 0:
        raise ValueError("B: needs at least one column (the gradient's channels)")
    if C.shape != (m, n):
        raise ValueError(
            f"C: expected shape ({m}, {n}) (y has the gradient's {m} channels), "
            f"got {C.shape}"
        )
    # every point must be the output of a fixed point of the gradient-free loop
    kernel = scipy.linalg.null_space(np.eye(n) - A, rcond=1e-10)
    if kernel.shape[1] == 0 or np.linalg.matrix_rank(C @ kernel, tol=1e-10) < m:
        raise ValueError(
            "system: (A, B, C) has no fixed point at every minimiser (C must map "
            "the null space of I - A onto the outputs); it is not an optimizer"
        )
    return A, B, C


# ----------------------------------------------------------------------------------
# the quadratic rate (lower bound)
# ----------------------------------------------------------------------------------


def _worst_sampled(rho, mu, L, num=2049, refine=5):
    half = num // 2
    grid = np.unique(
        np.concatenate([np.linspace(mu, L, num - half), np.geomspace(mu, L, half)])
    )
    r = rho(grid)
    left = np.concatenate([[-np.inf], r[:-1]])
    right = np.concatenate([r[1:], [-np.inf]])
    peaks = np.flatnonzero((r >= left) & (r >= right))
    best = float(np.max(r))
    for i in peaks[np.argsort(-r[peaks])][:refine]:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = scipy.optimize.minimize_scalar(
            lambda h: -float(rho(np.array([h]))[0]),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-12 * hi},
        )
        best = max(best, -float(res.fun))
    return best


def _quadratic_rate(family, params, system, mu, L):
    """(worst radius over h in [mu, L], exact?)."""
    ends = np.array([mu, L])
    if family in ("gd", "nominal", "heavy_ball", "ema_momentum"):
        # quasi-convex in h: the maximum is at an endpoint (see analyses.robust)
        step = -float(system[1][0, 0]) if family in ("gd", "nominal") else params["lr"]
        x = step * ends
        if family in ("gd", "nominal"):
            r = modes.gd_radius(x, xp=np)
        elif family == "heavy_ball":
            r = modes.heavy_ball_radius(x, params["beta"], xp=np)
        else:
            r = modes.ema_momentum_radius(x, params["beta"], xp=np)
        return float(np.max(r)), True
    if family == "nesterov":

        def rho(h):
            return modes.nesterov_radius(params["lr"] * h, params["beta"], xp=np)

    else:
        A, B, C = system
        BC = B @ C  # the gradient h y on every channel

        def rho(h):
            mats = A[None] + np.asarray(h)[:, None, None] * BC[None]
            return np.max(np.abs(np.linalg.eigvals(mats)), axis=-1)

    return _worst_sampled(rho, mu, L), False


# ----------------------------------------------------------------------------------
# the LMI
# ----------------------------------------------------------------------------------


def _sym(m):
    return 0.5 * (m + m.T)


def _interpolation(xi, gi, xj, gj, mu, L):
    """Quadratic part ``Q`` of ``q_ij = f_i - f_j - v^T Q v >= 0`` (Taylor et al.)."""
    X, G = xi - xj, gi - gj
    k = 1.0 / (2.0 * (1.0 - mu / L))
    return _sym(gj.T @ X) + k * (
        G.T @ G / L + mu * X.T @ X - (2 * mu / L) * _sym(G.T @ X)
    )


def _unit(rows, cols, at):
    e = np.zeros((rows, cols))
    e[:, at : at + rows] = np.eye(rows)
    return e


class _Matrices:
    """The certificate's constant matrices for one ``(A, B, C)`` and its check.

    Quadratic forms over the basis ``v = (xi_k, u_k, u_{k+1})`` (shifted to the
    fixed point); ``sector`` uses ``(xi_k, u_k)`` only.
    """

    def __init__(self, A, B, C, mu, L, multipliers):
        n, m = B.shape
        zf = multipliers == "zames_falb"
        N = n + (2 * m if zf else m)
        E, u0 = _unit(n, N, 0), _unit(m, N, n)
        nxt = A @ E + B @ u0
        x0 = C @ E
        self.Q, self.fcoef = {}, {}  # name -> quadratic part, (coef of f_k, f_k+1)
        if zf:
            u1 = _unit(m, N, n + m)
            # the Lyapunov function sees (xi, u) now and next
            self.now, self.next = np.vstack([E, u0]), np.vstack([nxt, u1])
            zero = np.zeros((m, N))
            pts = {"k": (x0, u0, 0), "k+1": (C @ nxt, u1, 1), "*": (zero, zero, None)}
            for i, j in itertools.permutations(pts, 2):
                (xi, gi, fi), (xj, gj, fj) = pts[i], pts[j]
                self.Q[f"{i},{j}"] = _interpolation(xi, gi, xj, gj, mu, L)
                coef = [0.0, 0.0]
                if fi is not None:
                    coef[fi] += 1.0
                if fj is not None:
                    coef[fj] -= 1.0
                self.fcoef[f"{i},{j}"] = coef
            # V_k >= |xi_k|^2 from the two inequalities between y_k and y_*,
            # over the basis w = (xi_k, u_k)
            w_x, w_u = C @ _unit(n, n + m, 0), _unit(m, n + m, n)
            w0 = np.zeros((m, n + m))
            self.Qpos = [
                _interpolation(w_x, w_u, w0, w0, mu, L),
                _interpolation(w0, w0, w_x, w_u, mu, L),
            ]
            self.state = np.zeros((n + m, n + m))
            self.state[:n, :n] = np.eye(n)
        else:
            self.now, self.next = E, nxt
            # (u - mu y)^T (L y - u) >= 0, i.e. q = -v^T Q v with this Q
            self.Q["sector"] = -_sym((u0 - mu * x0).T @ (L * x0 - u0))
            self.fcoef["sector"] = [0.0, 0.0]
        self.names = list(self.Q)
        self.coef = np.array([self.fcoef[k] for k in self.names])  # (names, 2)
        self.zf, self.n, self.m, self.mu, self.L, self.C = zf, n, m, mu, L, C

    def check(self, rho, P, lam, c=0.0, nu=None):
        """The certificate checked in float64, or None when it fails the check."""
        if P is None or lam is None or (self.zf and (c is None or nu is None)):
            return None
        P = _sym(np.asarray(P, float))
        lam = np.asarray(lam, float)
        c = float(c)
        parts = [self.next.T @ P @ self.next, rho * rho * (self.now.T @ P @ self.now)]
        parts += [lam[i] * self.Q[q] for i, q in enumerate(self.names)]
        scale = 1.0 + sum(np.linalg.norm(t, 2) for t in parts)
        lmi = parts[0] - parts[1] - sum(parts[2:])
        residual = float(np.max(np.linalg.eigvalsh(_sym(lmi)))) / scale
        ok = residual <= _TOL and min(lam.min(), c) >= -_TOL * scale
        norm_c = np.linalg.norm(self.C, 2) ** 2
        if self.zf:
            nu = np.asarray(nu, float)
            f_k = -rho * rho * c + self.coef[:, 0] @ lam
            f_k1 = c + self.coef[:, 1] @ lam
            pos = P - self.state + nu[0] * self.Qpos[0] + nu[1] * self.Qpos[1]
            ok = ok and max(abs(f_k), abs(f_k1), abs(c - nu[0] + nu[1])) <= _TOL * scale
            ok = ok and nu.min() >= -_TOL * scale
            ok = ok and np.linalg.eigvalsh(_sym(pos))[0] >= -_TOL * scale
            # V_0 <= K |xi_0|^2 from |u| <= L |C xi| and f - f_* <= L/2 |C xi|^2
            d = np.concatenate([np.ones(self.n), np.full(self.m, self.L * norm_c**0.5)])
            top = max(float(np.linalg.eigvalsh(P * np.outer(d, d))[-1]), 0.0)
            constant = 2 * top + c * self.L * norm_c / 2
        else:
            eig = np.linalg.eigvalsh(P)
            ok = ok and eig[0] >= 1 - 1e-6
            constant = float(eig[-1] / eig[0])
        if not ok:
            return None
        weights = dict(zip(self.names, lam.tolist(), strict=True))
        if self.zf:
            weights |= {"lower:k,*": float(nu[0]), "lower:*,k": float(nu[1])}
        return {
            "P": P,
            "c": c,
            "weights": weights,
            "constant": float(constant),
            "residual": residual,
        }


class _Lmi:
    """The certificate's SDP for loops with ``n`` states and ``m`` gradient
    channels: the system and ``rho^2`` are parameters (cvxpy's DPP), so the problem
    is compiled once and each solve only swaps numbers.

    It is solved for ``f / L`` in ``F(mu / L, 1)`` (the same loop with ``B L``),
    which is better conditioned; :meth:`_original` maps the certificate back.
    """

    def __init__(self, n, m, multipliers):
        import cvxpy as cp

        eye, zeros = np.eye(n), np.zeros((n, m))
        t = _Matrices(eye, zeros, zeros.T, 0.5, 1.0, multipliers)  # shapes only
        self.zf, self.names = t.zf, t.names
        self.names_kind = multipliers
        k, N = t.now.shape
        self.rho2 = cp.Parameter(nonneg=True)
        self.knext = cp.Parameter((N * N, k * k))  # vec(next^T P next) = K vec(P)
        self.qmat = cp.Parameter((N * N, len(t.names)))  # columns vec(Q_i)
        self.P = cp.Variable((k, k), symmetric=True)
        self.lam = cp.Variable(len(t.names), nonneg=True)
        vec_p = cp.vec(self.P, order="F")
        know = np.kron(t.now.T, t.now.T)
        lmi = self.knext @ vec_p - self.rho2 * (know @ vec_p) - self.qmat @ self.lam
        lmi = cp.reshape(lmi, (N, N), order="F")
        cons = [0.5 * (lmi + lmi.T) << 0]
        if self.zf:
            self.c = cp.Variable(nonneg=True)
            self.nu = cp.Variable(2, nonneg=True)
            self.qpos = cp.Parameter((k * k, 2))
            cons += [
                -self.rho2 * self.c + t.coef[:, 0] @ self.lam == 0,
                self.c + t.coef[:, 1] @ self.lam == 0,
                self.c - self.nu[0] + self.nu[1] == 0,
            ]
            pos = self.P - t.state + cp.reshape(self.qpos @ self.nu, (k, k), order="F")
            cons.append(0.5 * (pos + pos.T) >> 0)
        else:
            self.c = self.nu = None
            cons.append(self.P >> np.eye(n))
        self.problem = cp.Problem(cp.Minimize(0), cons)

    def set(self, A, B, C, mu, L):
        """Load one system and class; returns ``self``."""
        self.scale = L
        self.mats = mats = _Matrices(A, B * L, C, mu / L, 1.0, self.names_kind)
        self.knext.value = np.kron(mats.next.T, mats.next.T)
        self.qmat.value = np.stack(
            [mats.Q[q].ravel(order="F") for q in self.names], axis=1
        )
        if self.zf:
            self.qpos.value = np.stack([q.ravel(order="F") for q in mats.Qpos], 1)
        return self

    def solve(self, rho, solver, fallback=True):
        """(feasible?, solver status, certificate dict or None); raises
        ``_SolverFailed``. Where Clarabel fails (it can, on the boundary of the
        feasible set) SCS is tried, if ``fallback``, before the failure is
        reported."""
        import cvxpy as cp

        self.rho2.value = rho * rho
        tried = []
        chain = (solver, "SCS") if solver == "CLARABEL" and fallback else (solver,)
        for name in chain:
            try:
                with warnings.catch_warnings():
                    # an inaccurate status is handled here: its solution is checked
                    warnings.filterwarnings("ignore", "Solution may be inaccurate")
                    self.problem.solve(solver=name)
            except cp.error.SolverError as err:
                tried.append(f"{name}: {err}")
                continue
            status = self.problem.status
            if status in ("infeasible", "infeasible_inaccurate"):
                return False, status, None
            if status in ("optimal", "optimal_inaccurate"):
                break
            tried.append(f"{name}: status {status}")
        else:
            raise _SolverFailed("; ".join(tried))
        values = [self.P.value, self.lam.value]
        if self.zf:
            values += [self.c.value, self.nu.value]
        cert = self.mats.check(rho, *values)
        if cert is not None:
            cert = self._original(cert)
        return cert is not None, status, cert

    def _original(self, cert):
        """The certificate for f itself: every inequality of f / L is 1/L times
        that of f (1/L^2 for the sector's), u = L u_scaled."""
        s, n, m = self.scale, self.mats.n, self.mats.m
        if self.zf:
            d = np.concatenate([np.ones(n), np.full(m, 1 / s)])
            return cert | {
                "P": cert["P"] * np.outer(d, d),
                "c": cert["c"] / s,
                "weights": {k: v / s for k, v in cert["weights"].items()},
            }
        return cert | {"weights": {k: v / s**2 for k, v in cert["weights"].items()}}


class _SolverFailed(Exception):
    pass


_LMIS = {}  # (n, m, multipliers) -> compiled _Lmi


def _lmi(A, B, C, mu, L, multipliers):
    key = (*B.shape, multipliers)
    if key not in _LMIS:
        if len(_LMIS) > 32:
            _LMIS.clear()
        _LMIS[key] = _Lmi(*key)
    return _LMIS[key].set(A, B, C, mu, L)


def check_certificate(record: CertifiedRate) -> bool:
    """Check a record's certificate again, in float64 and in the function's own units
    (independently of the solver's scaled problem): the LMI at ``record.rate``, the
    weights' signs, the cancelled function-value coefficients and the lower bound
    :math:`V \\ge \\|\\xi - \\xi_\\star\\|^2`, each to a relative ``1e-7``.

    >>> check_certificate(certified_rate("gd", mu=1.0, L=4.0, lr=0.25))
    True
    """
    if record.P is None:
        return False
    mats = _Matrices(*record.system, record.mu, record.L, record.multipliers)
    lam = [record.weights[k] for k in mats.names]
    nu = [record.weights.get(k) for k in ("lower:k,*", "lower:*,k")]
    c = record.function_weight if mats.zf else 0.0
    nu = nu if mats.zf else None
    return mats.check(record.rate, record.P, lam, c, nu) is not None


def _check_class(mu, L):
    mu = check_scalar("mu", mu, low=0.0, low_open=True)
    L = check_scalar("L", L)
    if not L > mu:
        raise ValueError(f"L: must be > mu = {mu}, got {L}")
    return mu, L


def _check_options(multipliers, solver):
    if multipliers not in MULTIPLIERS:
        raise ValueError(
            f"multipliers: expected one of {MULTIPLIERS}, got {multipliers!r}"
        )
    if solver not in ("CLARABEL", "SCS"):
        raise ValueError(f"solver: expected 'CLARABEL' or 'SCS', got {solver!r}")
    try:
        import cvxpy  # noqa: F401
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "certified rates need cvxpy and Clarabel: pip install -e '.[robust]'"
        ) from err


def _resolve(family_or_system, hyperparameters):
    if isinstance(family_or_system, str):
        params = _family_params(family_or_system, hyperparameters)
        return family_or_system, params, state_space(family_or_system, **params)
    if hyperparameters:
        raise ValueError(
            f"hyperparameters: an (A, B, C) triple takes none, got "
            f"{sorted(hyperparameters)}"
        )
    return None, {}, _check_system(family_or_system)


def certified_rate(
    family_or_system,
    *,
    mu,
    L,
    multipliers: str = "zames_falb",
    tol: float = 1e-7,
    solver: str = "CLARABEL",
    **hyperparameters,
) -> CertifiedRate:
    r"""The smallest rate certified for every function of :math:`F(\mu, L)`.

    Args:
      family_or_system: a family of :data:`FAMILY_PARAMS` (``"gd"``,
        ``"nominal"``, ``"heavy_ball"``, ``"ema_momentum"``, ``"nesterov"``,
        ``"aggmo"``) or an ``(A, B, C)`` triple (shapes ``(n, n)``, ``(n, m)``,
        ``(m, n)``) acting on the gradient (see the module docstring).
      mu, L: the class, ``0 < mu < L``.
      multipliers: ``"zames_falb"`` (default; sector plus the weighted off-by-one
        IQC) or ``"sector"``.
      tol: the bisection's resolution on :math:`\rho`.
      solver: ``"CLARABEL"`` (default) or ``"SCS"``.
      **hyperparameters: the family's (``lr``; ``beta``; ``betas``; ``alpha``,
        ``p`` and ``preconditioner`` for ``nominal``).

    Returns:
      a :class:`CertifiedRate`.

    >>> r = certified_rate("gd", mu=1.0, L=4.0, lr=0.25)
    >>> r.status, round(r.rate, 6), r.quadratic_rate
    ('certified', 0.75, 0.75)
    """
    mu, L = _check_class(mu, L)
    _check_options(multipliers, solver)
    tol = check_scalar("tol", tol, low=0.0, high=0.1, low_open=True)
    family, params, system = _resolve(family_or_system, hyperparameters)
    q_rate, q_exact = _quadratic_rate(family, params, system, mu, L)

    def record(rate, status, solver_status, message, cert, solves, resolution):
        cert = cert or {}
        return CertifiedRate(
            rate=rate,
            certified=status == "certified",
            status=status,
            solver_status=solver_status,
            message=message,
            multipliers=multipliers,
            quadratic_rate=q_rate,
            quadratic_exact=q_exact,
            gap=rate - q_rate,
            system=system,
            P=cert.get("P"),
            function_weight=cert.get("c", math.nan),
            weights=cert.get("weights", {}),
            constant=cert.get("constant", math.nan),
            residual=cert.get("residual", math.nan),
            mu=mu,
            L=L,
            family=family,
            hyperparameters=params,
            num_solves=solves,
            resolution=resolution,
        )

    if not q_rate < 1 - tol:
        return record(
            math.inf,
            "not_certified",
            "not solved",
            f"a quadratic of the class already has rate {q_rate:.6g} >= 1 - tol",
            None,
            0,
            0.0,
        )
    lmi = _lmi(*system, mu, L, multipliers)
    solves, best, last, note = 0, None, "", ""
    lo, hi = q_rate, 1.0 - tol  # infeasible below lo; hi to be tested
    try:
        for rho in (min(lo + tol, hi), hi):
            ok, last, cert = lmi.solve(rho, solver)
            solves += 1
            if ok:
                best, hi = (rho, cert), rho
                break
            lo = rho
        else:
            return record(
                math.inf,
                "not_certified",
                last,
                f"no certificate with rate {hi:.6g} ({multipliers} multipliers)",
                None,
                solves,
                hi - lo,
            )
    except _SolverFailed as err:
        return record(
            math.nan,
            "solver_failed",
            str(err),
            f"solver failed: {err}",
            None,
            solves,
            math.nan,
        )
    while hi - lo > tol:
        rho = 0.5 * (lo + hi)
        try:
            # a certificate is in hand: a failure only ends the refinement
            ok, last, cert = lmi.solve(rho, solver, fallback=False)
        except _SolverFailed as err:
            last, note = str(err), f"; refinement stopped, {err} at {rho:.9g}"
            break
        solves += 1
        if ok:
            best, hi = (rho, cert), rho
        else:
            lo = rho
    rate, cert = best
    return record(
        rate,
        "certified",
        last,
        f"rate {rate:.6g} certified ({multipliers} multipliers); quadratic rate "
        f"{q_rate:.6g}{note}",
        cert,
        solves,
        hi - lo,
    )


def _grid(family, grid):
    """Split ``grid`` into axes and fixed values; ``betas`` may hold one 1-D axis,
    named ``betas[i]``."""
    flat = {}  # in the caller's order, each decay of ``betas`` under its own name
    for name, value in grid.items():
        if name == "betas":
            flat.update({f"betas[{i}]": b for i, b in enumerate(value)})
        else:
            flat[name] = value
    axes, fixed = split_grid(flat)
    if "betas" in grid:
        decays = [f"betas[{i}]" for i in range(len(grid["betas"]))]
        fixed["betas"] = tuple(fixed.pop(k, None) for k in decays)
    if not 1 <= len(axes) <= 2:
        raise ValueError(f"grid: expected one or two 1-D axes, got {list(axes)}")
    return axes, fixed


def certified_region(
    family: str,
    *,
    mu,
    L,
    target: float = 1 - 1e-6,
    multipliers: str = "zames_falb",
    solver: str = "CLARABEL",
    **grid,
) -> CertifiedRegion:
    r"""Where a rate ``target`` (just below 1) is certified on :math:`F(\mu, L)`,
    beside the quadratic region, on a grid of ``family``'s hyperparameters.

    One feasibility solve per cell (no bisection); cells whose quadratic rate is
    already at least ``target`` need none.

    Args:
      family: a family of :data:`FAMILY_PARAMS`.
      mu, L: the class, ``0 < mu < L``.
      target: the rate tested, in ``(0, 1)``.
      multipliers, solver: as in :func:`certified_rate`.
      **grid: the hyperparameters, each a scalar or a 1-D array (an axis; one or
        two axes, in keyword order); ``betas`` is a tuple whose entries may include
        one 1-D array (the axis ``betas[i]``).

    Returns:
      a :class:`CertifiedRegion`.

    >>> import numpy as np
    >>> r = certified_region("gd", mu=1.0, L=4.0, lr=np.array([0.25, 0.49, 0.6]))
    >>> r.certified.tolist(), r.quadratic_stable.tolist()
    ([True, True, False], [True, True, False])
    """
    mu, L = _check_class(mu, L)
    _check_options(multipliers, solver)
    target = check_scalar(
        "target", target, low=0.0, high=1.0, low_open=True, high_open=True
    )
    if not isinstance(family, str) or family not in FAMILY_PARAMS:
        _family_params(family if isinstance(family, str) else repr(family), {})
    axes, fixed = _grid(family, grid)
    shape = tuple(a.size for a in axes.values())
    rho = np.empty(shape)
    certified = np.zeros(shape, bool)
    failed = np.zeros(shape, bool)
    solves = 0
    for idx in itertools.product(*(range(s) for s in shape)):
        values = {k: a[i] for (k, a), i in zip(axes.items(), idx, strict=True)}
        params = {k: v for k, v in fixed.items() if k != "betas"}
        params |= {k: v for k, v in values.items() if not k.startswith("betas[")}
        if "betas" in fixed:
            params["betas"] = tuple(
                values[f"betas[{i}]"] if b is None else b
                for i, b in enumerate(fixed["betas"])
            )
        params = _family_params(family, params)
        system = state_space(family, **params)
        rho[idx], _ = _quadratic_rate(family, params, system, mu, L)
        if not rho[idx] < target:
            continue
        solves += 1
        try:
            lmi = _lmi(*system, mu, L, multipliers)
            certified[idx], _, _ = lmi.solve(target, solver)
        except _SolverFailed:
            failed[idx] = True
    return CertifiedRegion(
        family, axes, fixed, mu, L, target, multipliers, rho, certified, failed, solves
    )


# ----------------------------------------------------------------------------------
# a lower bound from the other side: trajectories that do not converge
# ----------------------------------------------------------------------------------


class Counterexample(NamedTuple):
    """The search's best one-dimensional function of :math:`F(\\mu, L)` for a loop.

    The function is piecewise quadratic with its minimiser at 0: its gradient is
    continuous and piecewise linear, ``g(0) = 0``, with slope ``slopes[i]`` between
    ``breakpoints[i - 1]`` and ``breakpoints[i]`` (``-inf`` and ``inf`` at the
    ends); every slope lies in ``[mu, L]``, so the function is in the class.

    Attributes:
      found: the trajectory does not converge: after ``steps`` steps it is still
        at least ``1e-3`` of its starting distance from the minimiser (a rate below
        1 would have shrunk it by ``rate**steps``) and it repeats with a period.
      breakpoints, slopes: the function, as above.
      y0: the starting point (the optimizer's state starts at the fixed point
        whose output is ``y0``: zero momentum).
      trajectory: the points ``y_k`` where the gradient was taken, ``steps + 1``.
      period: the period of the trajectory's second half (0 if none up to 64, or
        up to a third of that half, was found).
      distance_ratio: ``|y_steps| / |y_0|``.
      num_trials: how many (function, start) pairs were simulated.
    """

    found: bool
    breakpoints: np.ndarray
    slopes: np.ndarray
    y0: float
    trajectory: np.ndarray
    period: int
    distance_ratio: float
    num_trials: int

    def gradient(self, y):
        """The function's gradient at ``y`` (any shape)."""
        return _pw_gradient(np.asarray(y, float), self.breakpoints, self.slopes)

    def value(self, y):
        """The function at ``y``, with ``f(0) = 0``."""
        y = np.asarray(y, float)
        out = np.empty(y.shape)
        for idx in np.ndindex(y.shape):
            t = float(y[idx])
            # f(t) = int_0^t g: trapezoids between the knots strictly inside (0, t)
            bp = self.breakpoints
            knots = np.sort(bp[bp * (bp - t) < 0])
            pts = np.concatenate([[0.0], knots if t >= 0 else knots[::-1], [t]])
            g = self.gradient(pts)
            out[idx] = np.sum(0.5 * (g[1:] + g[:-1]) * np.diff(pts))
        return out


def _pw_gradient(y, breakpoints, slopes):
    """Gradient of the piecewise quadratic, batched: ``y`` shape ``(T,)`` with
    ``breakpoints`` ``(T, K-1)`` and ``slopes`` ``(T, K)``, or unbatched."""
    bp = np.asarray(breakpoints, float)
    sl = np.asarray(slopes, float)
    if bp.ndim == 1:
        bp = np.broadcast_to(bp, y.shape + bp.shape)
        sl = np.broadcast_to(sl, y.shape + sl.shape)
    lo = np.concatenate([np.full(bp.shape[:-1] + (1,), -np.inf), bp], axis=-1)
    hi = np.concatenate([bp, np.full(bp.shape[:-1] + (1,), np.inf)], axis=-1)
    t = y[..., None]
    # signed length of [0, y] inside each piece
    inside = np.clip(t, lo, hi) - np.clip(0.0, lo, hi)
    return np.sum(sl * inside, axis=-1)


def counterexample_search(
    family_or_system,
    *,
    mu,
    L,
    num_trials: int = 4096,
    num_pieces: int = 3,
    steps: int = 600,
    seed: int = 0,
    **hyperparameters,
) -> Counterexample:
    r"""Search one-dimensional piecewise-quadratic functions of :math:`F(\mu, L)`
    for a trajectory of the loop that does not converge.

    Each trial draws ``num_pieces`` slopes from ``{mu, L}`` (the extremes, where
    counterexamples live), breakpoints uniform on ``[-1, 4]`` and a start uniform on
    ``[-6, 6]``; all trials are simulated at once for ``steps`` steps. A found
    trajectory shows that no rate below 1 holds on the class, whatever the
    certificate: the converse of :func:`certified_rate`.

    Args:
      family_or_system, mu, L, **hyperparameters: as in :func:`certified_rate`
        (a triple must have one gradient channel).
      num_trials, num_pieces, steps, seed: the search's size and its seed.

    Returns:
      a :class:`Counterexample` (the trial farthest from the minimiser at the end).
    """
    from stability._validation import check_int

    mu, L = _check_class(mu, L)
    num_trials = check_int("num_trials", num_trials, low=1)
    num_pieces = check_int("num_pieces", num_pieces, low=1)
    steps = check_int("steps", steps, low=6)
    seed = check_int("seed", seed, low=0)
    _, _, (A, B, C) = _resolve(family_or_system, hyperparameters)
    if B.shape[1] != 1:
        raise ValueError(f"B: the search is one-dimensional, got {B.shape[1]} inputs")
    rng = np.random.default_rng(seed)
    slopes = np.where(rng.random((num_trials, num_pieces)) < 0.5, mu, L)
    bp = np.sort(rng.uniform(-1.0, 4.0, (num_trials, num_pieces - 1)), axis=-1)
    y0 = rng.uniform(-6.0, 6.0, num_trials)
    # start at the fixed point whose output is y0 (zero momentum for the families)
    kernel = scipy.linalg.null_space(np.eye(A.shape[0]) - A, rcond=1e-10)
    start = kernel @ np.linalg.lstsq(C @ kernel, np.ones(1), rcond=None)[0]
    xi = y0[:, None] * start[None, :]
    ys = np.empty((steps + 1, num_trials))
    for k in range(steps + 1):
        y = xi @ C[0]
        ys[k] = y
        xi = xi @ A.T + _pw_gradient(y, bp, slopes)[:, None] * B[:, 0][None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(ys[-1]) / np.abs(ys[0])
    ratio = np.where(np.isfinite(ratio), ratio, -1.0)
    best = int(np.argmax(ratio))
    traj = ys[:, best]
    tail = traj[traj.size // 2 :]  # the second half, where a cycle has settled
    scale = max(float(np.max(np.abs(tail))), 1e-300)
    period = 0
    for p in range(1, min(64, tail.size // 3) + 1):
        if np.max(np.abs(tail[p:] - tail[:-p])) <= 1e-9 * scale:
            period = p
            break
    found = bool(ratio[best] >= 1e-3 and period > 0)
    return Counterexample(
        found,
        bp[best],
        slopes[best],
        float(y0[best]),
        traj,
        period,
        float(ratio[best]),
        num_trials,
    )
