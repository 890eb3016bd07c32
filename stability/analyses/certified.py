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
from typing import NamedTuple

import numpy as np

from stability._validation import check_scalar
from stability.analyses.counterexample import Counterexample as Counterexample
from stability.analyses.counterexample import (
    counterexample_search as counterexample_search,
)
from stability.analyses.iqc import _LMIS as _LMIS
from stability.analyses.iqc import _Lmi as _Lmi
from stability.analyses.iqc import _lmi as _lmi
from stability.analyses.iqc import _Matrices as _Matrices
from stability.analyses.iqc import _SolverFailed as _SolverFailed
from stability.analyses.lti import FAMILY_PARAMS as FAMILY_PARAMS
from stability.analyses.lti import _check_class as _check_class
from stability.analyses.lti import _family_params as _family_params
from stability.analyses.lti import _quadratic_rate as _quadratic_rate
from stability.analyses.lti import _resolve as _resolve
from stability.analyses.lti import state_space as state_space
from stability.analyses.regions import split_grid

MULTIPLIERS = ("zames_falb", "sector")


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
    solves, best, last = 0, None, ""
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
    best, lo, hi, more, last, note = _refine(lmi, solver, best, lo, hi, tol, last)
    solves += more
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


def _refine(lmi, solver, best, lo, hi, tol, last):
    """Bisect between an infeasible ``lo`` and the certified ``hi`` down to ``tol``;
    returns ``(best, lo, hi, solves, last status, note)``."""
    solves, note = 0, ""
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
    return best, lo, hi, solves, last, note


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
