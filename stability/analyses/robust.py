r"""Worst-case (robust) stability: the largest spectral radius over a set of systems.

Two uncertainty sets are handled.

**Curvature intervals.** For the per-mode families of
:mod:`stability.analyses.regions`, :func:`worst_case_curvature` returns
:math:`\max_{h \in [h_{\min}, h_{\max}]} \rho(h)`. For ``gd``, ``nominal`` (with or
without the idealised preconditioner), ``heavy_ball`` and ``ema_momentum`` the answer is
exact and costs two evaluations, by the following argument.

Each of these blocks has characteristic polynomial :math:`z - s` or
:math:`z^2 - s z + q`, where :math:`q` (the decay) does not depend on :math:`h` and
:math:`s` is affine in :math:`x = \text{lr}\, h` (affine in :math:`\sqrt h` for the
preconditioned nominal family):

- gd / nominal: :math:`s = 1 - x`;
- heavy ball: :math:`s = 1 + \beta - x`, :math:`q = \beta`;
- EMA momentum: :math:`s = 1 + \beta - (1 - \beta) x`, :math:`q = \beta`.

The largest root modulus of :math:`z^2 - s z + q` is a nondecreasing function of
:math:`|s|` alone: on real roots (:math:`s^2 \ge 4q`) it is
:math:`(|s| + \sqrt{s^2 - 4q})/2`, increasing in :math:`|s|`; on a complex pair
(:math:`s^2 < 4q`, so :math:`q > 0`) it is :math:`\sqrt q`, constant, and the two
branches meet at :math:`|s| = 2\sqrt q`. The map :math:`h \mapsto |s(h)|` is convex
(absolute value of an affine function), so :math:`\rho` is quasi-convex in :math:`h`
(its sublevel sets are intervals); for the preconditioned family the argument is
:math:`\sqrt h`, a monotone reparametrisation, which keeps sublevel sets intervals. A
quasi-convex function attains its maximum over an interval at an endpoint:

.. math:: \max_{h \in [h_{\min}, h_{\max}]} \rho(h) = \max(\rho(h_{\min}),
   \rho(h_{\max})).

AggMo's block has degree :math:`k + 1` and no such structure; its worst case is found
by dense sampling (linear and geometric grids) followed by bounded scalar maximisation
around each sampled local maximum. That result is a lower bound on the supremum, exact
up to the refinement tolerance unless a peak is narrower than the grid spacing.

**Multiplicative uncertainty.** :func:`worst_case_multiplicative` searches the box
:math:`\{\Delta = \mathrm{diag}(d) : d_{\min} \le d_i \le d_{\max}\}` for the largest
:math:`\rho(I - (\alpha I + \Delta \tilde P) H)`: every vertex of the box (or a random
subset when there are too many), random interior points, and a projected pattern-search
ascent from the best candidates. The open box :math:`0 < d_i` of Lemma 3 has the same
supremum as its closure (``d_min = 0``) because :math:`\rho` is continuous. A search
gives a lower bound on the supremum: a value above 1 certifies instability (the
returned :math:`\Delta` is a witness), a value at most 1 is evidence, not proof.

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 4 (Lemma 3).
  S. Boyd & L. Vandenberghe, *Convex Optimization*, Cambridge University Press, 2004,
  Section 3.4 (quasi-convex functions).
"""

import itertools
from typing import NamedTuple

import numpy as np
import scipy.optimize

from stability._validation import (
    as_float_array,
    check_betas,
    check_int,
    check_lr,
    check_scalar,
    check_spd,
    check_square,
)
from stability.analyses.regions import FAMILY_ARGS, mode_radius
from stability.optimizers import FAMILIES

# families whose rho is quasi-convex in the curvature (see the module docstring)
ENDPOINT_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.endpoint)


class CurvatureWorstCase(NamedTuple):
    """The worst curvature of a per-mode family over ``[h_min, h_max]``.

    Attributes:
      family: the optimizer family.
      curvature: the curvature where the largest radius was found.
      rho: that radius.
      exact: True when the endpoint argument applies (the value is the maximum);
        False for the sampled search (a lower bound on the supremum).
      interval: ``(h_min, h_max)``.
      num_evaluated: how many curvatures were evaluated.
    """

    family: str
    curvature: float
    rho: float
    exact: bool
    interval: tuple
    num_evaluated: int

    @property
    def stable(self) -> bool:
        """Every curvature of the interval is stable (``rho < 1``)."""
        return self.rho < 1


class MultiplicativeWorstCase(NamedTuple):
    """The worst diagonal :math:`\\Delta` found over the box.

    Attributes:
      delta: the diagonal ``d`` of the worst :math:`\\Delta` found, shape ``(n,)``.
      rho: its spectral radius.
      vertex_delta: the worst vertex of the box, shape ``(n,)``.
      vertex_rho: its spectral radius.
      num_evaluated: how many :math:`\\Delta` were evaluated.
      all_vertices: whether every vertex of the box was evaluated.
    """

    delta: np.ndarray
    rho: float
    vertex_delta: np.ndarray
    vertex_rho: float
    num_evaluated: int
    all_vertices: bool

    @property
    def stable(self) -> bool:
        """No :math:`\\Delta` found with ``rho >= 1``."""
        return self.rho < 1


def _family_radius(family, curvature, precondition, betas, params):
    return np.asarray(
        mode_radius(
            family,
            precondition=precondition,
            betas=betas,
            curvature=curvature,
            **params,
        ),
        dtype=float,
    )


def worst_case_curvature(
    family: str,
    h_min,
    h_max,
    *,
    precondition: bool = False,
    betas=None,
    num_samples: int = 4097,
    num_refine: int = 5,
    **params,
) -> CurvatureWorstCase:
    r"""Largest spectral radius of a per-mode family over a curvature interval.

    Args:
      family: one of ``"gd"``, ``"nominal"``, ``"heavy_ball"``, ``"ema_momentum"``
        (exact, endpoint argument) or ``"aggmo"`` (dense sampling and refinement).
      h_min, h_max: the interval, ``0 < h_min <= h_max``.
      precondition: idealise the output preconditioner as ``H^{-1/2}`` (``nominal``).
      betas: AggMo's decays (default ``(0.9, 0.99, 0.999)``).
      num_samples: grid size of the sampled search (half linear, half geometric).
      num_refine: how many sampled local maxima are refined.
      **params: the family's scalar parameters besides ``curvature``
        (``lr``; ``alpha`` and ``p``; ``beta``), as in
        :func:`stability.analyses.mode_radius`.

    Returns:
      a :class:`CurvatureWorstCase`.

    >>> w = worst_case_curvature("heavy_ball", 0.1, 10.0, lr=0.1, beta=0.5)
    >>> w.exact, w.curvature, round(w.rho, 6)
    (True, 0.1, 0.979574)

    References:
      Harrison, Metz & Sohl-Dickstein, NeurIPS 2022, Section 4.
    """
    if family not in FAMILY_ARGS:
        raise ValueError(
            f"family: expected one of {tuple(FAMILY_ARGS)}, got {family!r}"
        )
    h_min = check_scalar("h_min", h_min, low=0.0, low_open=True)
    h_max = check_scalar("h_max", h_max, low=h_min)
    if "curvature" in params:
        raise ValueError("curvature: given by the interval [h_min, h_max]")
    for name, value in params.items():
        params[name] = check_scalar(name, value)
    if family == "aggmo":
        betas = check_betas("betas", (0.9, 0.99, 0.999) if betas is None else betas)
    num_samples = check_int("num_samples", num_samples, low=3)
    num_refine = check_int("num_refine", num_refine, low=0)
    interval = (h_min, h_max)

    def rho(h):
        return _family_radius(family, h, precondition, betas, params)

    if family in ENDPOINT_FAMILIES:
        ends = np.array([h_min, h_max])
        r = rho(ends)
        i = int(np.argmax(r))
        return CurvatureWorstCase(
            family, float(ends[i]), float(r[i]), True, interval, 2
        )

    half = num_samples // 2
    grid = np.unique(
        np.concatenate(
            [
                np.linspace(h_min, h_max, num_samples - half),
                np.geomspace(h_min, h_max, half),
            ]
        )
    )
    r = rho(grid)
    count = grid.size
    # sampled local maxima (endpoints included), best first
    left = np.concatenate([[-np.inf], r[:-1]])
    right = np.concatenate([r[1:], [-np.inf]])
    peaks = np.flatnonzero((r >= left) & (r >= right))
    peaks = peaks[np.argsort(-r[peaks])][:num_refine]
    best_h, best_r = float(grid[np.argmax(r)]), float(np.max(r))
    for i in peaks:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        if hi <= lo:
            continue
        res = scipy.optimize.minimize_scalar(
            lambda h: -float(rho(h)),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-12 * hi},
        )
        count += int(res.nfev)
        if -res.fun > best_r:
            best_h, best_r = float(res.x), float(-res.fun)
    return CurvatureWorstCase(family, best_h, best_r, False, interval, count)


def multiplicative_radius(hessian, P_tilde, alpha, d):
    r"""Spectral radius of :math:`I - (\alpha I + \mathrm{diag}(d) \tilde P) H` for a
    batch of diagonals ``d`` of shape ``(..., n)``; returns shape ``(...)``.

    >>> import numpy as np
    >>> h = np.diag([1.0, 4.0])
    >>> multiplicative_radius(h, np.eye(2), 0.1, np.array([[0.1, 0.1], [0.4, 0.4]]))
    array([0.8, 1. ])
    """
    h, p, alpha = _check_system(hessian, P_tilde, alpha)
    d = as_float_array("d", d)
    n = h.shape[0]
    if d.ndim < 1 or d.shape[-1] != n:
        raise ValueError(f"d: expected shape (..., {n}), got {d.shape}")
    return _radius(h, p, alpha, d)


def _check_system(hessian, P_tilde, alpha):
    h = check_spd("hessian", hessian)
    p = check_square("P_tilde", P_tilde, n=h.shape[0])
    return h, p, check_lr("alpha", alpha)


def _radius(h, p, alpha, d):
    # spec(A) = 1 - spec(KH): eigenvalues of the gain KH, not of A = I - KH, keep
    # their accuracy when A is close to I (small Delta with small alpha), where the
    # eigenvalues of A cluster at 1 and can be nearly defective.
    n = h.shape[0]
    k = alpha * np.eye(n) + d[..., :, None] * p
    mu = np.linalg.eigvals(k @ h)
    return np.max(np.abs(1 - mu), axis=-1)


def _vertices(n, d_min, d_max, max_vertices, rng):
    if 2**n <= max_vertices:
        corners = np.array(list(itertools.product((0.0, 1.0), repeat=n)))
        full = True
    else:
        corners = rng.integers(0, 2, size=(max_vertices, n)).astype(float)
        full = False
    return d_min + (d_max - d_min) * corners, full


def _pattern_ascent(f, d, value, d_min, d_max, steps):
    """Projected coordinate pattern search: try +-step on each coordinate, move to
    the best improvement, halve the step when none improves."""
    n = d.size
    step = 0.25 * (d_max - d_min)
    count = 0
    moves = np.concatenate([np.eye(n), -np.eye(n)])
    for _ in range(steps):
        if step <= 1e-9 * d_max:
            break
        trial = np.clip(d + step * moves, d_min, d_max)
        r = f(trial)
        count += trial.shape[0]
        j = int(np.argmax(r))
        if r[j] > value + 1e-12 * max(1.0, value):  # ignore rounding-level gains
            d, value = trial[j], float(r[j])
        else:
            step *= 0.5
    return d, value, count


def worst_case_multiplicative(
    hessian,
    P_tilde,
    alpha,
    d_max,
    *,
    d_min=0.0,
    num_samples: int = 128,
    num_starts: int = 4,
    ascent_steps: int = 60,
    max_vertices: int = 4096,
    seed: int = 0,
) -> MultiplicativeWorstCase:
    r"""Largest :math:`\rho(I - (\alpha I + \Delta \tilde P) H)` found over
    :math:`\Delta = \mathrm{diag}(d)`, :math:`d_{\min} \le d_i \le d_{\max}`.

    Candidates: every vertex of the box (``2^n`` of them; ``max_vertices`` random
    vertices beyond that), the scaled identity :math:`d_{\max} I`, ``num_samples``
    uniform interior points, then a projected pattern-search ascent from the
    ``num_starts`` best candidates. Deterministic for a given ``seed``.

    Args:
      hessian: SPD ``(n, n)``.
      P_tilde: the learned term before the uncertainty, ``(n, n)``.
      alpha: nominal step, ``>= 0``.
      d_max: upper end of the box, ``> 0``.
      d_min: lower end, ``0 <= d_min <= d_max`` (0: the closure of ``0 < d_i``).

    Returns:
      a :class:`MultiplicativeWorstCase`; ``rho > 1`` certifies that the set contains
      an unstable system (``delta`` is one).

    >>> import numpy as np
    >>> w = worst_case_multiplicative(np.diag([1.0, 4.0]), np.eye(2), 0.1, 0.5)
    >>> w.delta.tolist(), round(w.rho, 12)
    ([0.0, 0.5], 1.4)

    References:
      Harrison, Metz & Sohl-Dickstein, NeurIPS 2022, Lemma 3.
    """
    h, p, alpha = _check_system(hessian, P_tilde, alpha)
    d_max = check_scalar("d_max", d_max, low=0.0, low_open=True)
    d_min = check_scalar("d_min", d_min, low=0.0, high=d_max)
    for name, value, low in (
        ("num_samples", num_samples, 0),
        ("num_starts", num_starts, 0),
        ("ascent_steps", ascent_steps, 0),
        ("max_vertices", max_vertices, 1),
    ):
        check_int(name, value, low=low)
    n = h.shape[0]
    rng = np.random.default_rng(seed)

    def f(d):
        return _radius(h, p, alpha, d)

    verts, full = _vertices(n, d_min, d_max, max_vertices, rng)
    vr = f(verts)
    iv = int(np.argmax(vr))
    interior = d_min + (d_max - d_min) * rng.uniform(size=(num_samples, n))
    cands = np.concatenate([verts, np.full((1, n), d_max), interior])
    cr = np.concatenate([vr, f(cands[len(verts) :])])
    count = cands.shape[0]
    best = int(np.argmax(cr))
    best_d, best_r = cands[best].copy(), float(cr[best])
    for j in np.argsort(-cr)[:num_starts]:
        d, value, used = _pattern_ascent(
            f, cands[j].copy(), float(cr[j]), d_min, d_max, ascent_steps
        )
        count += used
        if value > best_r + 1e-12 * max(1.0, best_r):
            best_d, best_r = d, value
    return MultiplicativeWorstCase(
        best_d, best_r, verts[iv].copy(), float(vr[iv]), count, full
    )
