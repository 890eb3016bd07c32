r"""Theorem 1: nominal terms shift the region of stability.

The update :math:`\phi' = \phi - (\alpha I + P)\nabla l` on the quadratic with Hessian
:math:`H` (SPD, :math:`L = \lambda_{\max}(H)`) has closed loop

.. math:: A = I - K H, \qquad K = \alpha I + P,

and stable means :math:`\rho(A) < 1`. The bounds are

.. math:: -\alpha \le \lambda_{\min}(P), \qquad
   \lambda_{\max}(P) \le 2/L - \alpha.

**When they suffice.** If :math:`P` is symmetric, :math:`KH` is similar to the
symmetric :math:`S = H^{1/2} K H^{1/2}` (through :math:`H^{1/2}`), so
:math:`\mathrm{spec}(A) = 1 - \mathrm{spec}(S)` is real. The bounds say
:math:`0 \preceq K \preceq (2/L) I`, hence :math:`0 \preceq S \preceq (2/L) H
\preceq 2 I` and :math:`\rho(A) \le 1`; strict bounds give :math:`\rho < 1`. If
:math:`P` commutes with :math:`H` and is diagonalizable with real eigenvalues, the two
are simultaneously diagonalizable: on each shared eigenpair :math:`(h_i, p_i)` the loop
is the scalar :math:`1 - (\alpha + p_i) h_i`, and :math:`0 \le (\alpha + p_i) h_i \le
(2/L) h_i \le 2`.

**Exact conditions.** Symmetric :math:`P`: stable iff :math:`0 \prec \alpha I + P \prec
2 H^{-1}` (iff :math:`\mathrm{spec}(S) \subset (0, 2)`); the lower bound is necessary,
the upper bound only sufficient (a large eigenvalue of :math:`P` in a direction of small
curvature is harmless). Commuting :math:`P`: stable iff :math:`-\alpha < p_i < 2/h_i -
\alpha` on every shared eigenpair (:func:`per_direction_condition`). Any :math:`P`:
stable iff every eigenvalue :math:`\mu` of :math:`KH` has :math:`|1 - \mu| < 1`. The
summaries' "iff" is true in one sense: for symmetric :math:`P` the bounds hold iff the
loop is (marginally) stable for *every* SPD :math:`H` with :math:`\lambda_{\max}(H)
\le L` (:func:`destabilising_hessian` builds the bad :math:`H` otherwise).

**When they fail.** For a non-symmetric :math:`P` with real eigenvalues that does not
commute with :math:`H` the bounds are neither sufficient nor necessary: a non-normal
:math:`P` with its eigenvalues strictly inside the bounds can give :math:`\rho > 1`
(the search :func:`counterexample` finds 2x2 instances). If an odd number of
:math:`P`'s eigenvalues lie below :math:`-\alpha` then :math:`\det(KH) < 0` and
:math:`A` has a real eigenvalue above 1, whatever :math:`P`.

**The seed summary's wording.** "rho(A) <= 1 if lambda_min(P) >= -1/alpha and
lambda_max(P) <= 1/alpha" is false if alpha is the nominal step (``reading="literal"``;
:math:`P = 0` with :math:`\alpha L > 2` already breaks it). It is Theorem 1 when the
symbol :math:`\alpha_s` of the summary stands for :math:`L` and the nominal step is
:math:`1/\alpha_s` (``reading="reparametrised"``): Theorem 1 at :math:`\alpha = 1/L`
reads :math:`-1/L \le \lambda_{\min}(P)`, :math:`\lambda_{\max}(P) \le 2/L - 1/L =
1/L`. More generally, with nominal step :math:`1/\alpha_s` the summary's bounds imply
Theorem 1's iff :math:`\alpha_s \ge L` and coincide with them iff :math:`\alpha_s = L`.
:func:`to_seed_alpha` and :func:`from_seed_alpha` map between the parametrisations.

Numerics: the conclusion is :math:`\rho(A) \le 1 + 10^{-9}`, computed from structured
quantities where they exist (``eigvalsh`` of :math:`S` for symmetric :math:`P`, per-pair
products for commuting :math:`P`), and from
:func:`stability.analyses.spectral_radius` of the dense :math:`A` otherwise. Bounds are
checked with a relative tolerance of :math:`10^{-12}` (rounding of the eigenvalues).

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Theorem 1.
  R. A. Horn & C. R. Johnson, *Matrix Analysis*, 2nd ed., Cambridge University Press,
  2013, Theorem 1.3.21 (commuting diagonalizable matrices) and Section 7.7 (Loewner
  order).
"""

from typing import NamedTuple

import numpy as np

from stability._validation import (
    check_flag,
    check_int,
    check_scalar,
    check_spd,
    check_square,
)
from stability.analyses import spectral_radius
from stability.lemmas._claim import check_kind
from stability.operators import nominal_closed_loop

NAME = "nominal"
TITLE = "Theorem 1: nominal terms shift the region of stability"
STATEMENT = """\
A = I - (alpha I + P) H with H SPD, L = lambda_max(H), alpha >= 0. If P is symmetric,
or P commutes with H and is diagonalizable with real eigenvalues, then
-alpha <= lambda_min(P) and lambda_max(P) <= 2/L - alpha imply rho(A) <= 1 (strict
bounds: rho(A) < 1). Exact for symmetric P: stable iff 0 < alpha I + P < 2 H^{-1}
(Loewner); the lower bound is necessary, the upper bound is not. Exact for commuting P:
-alpha < p_i < 2/h_i - alpha on each shared eigenpair. For a non-symmetric P that does
not commute with H the bounds are neither sufficient nor necessary. The seed's
"-1/alpha <= lambda(P) <= 1/alpha" is Theorem 1 only when its alpha stands for L and the
nominal step is 1/L."""

SLACK = 1e-9  # relative slack on rho <= 1 (CLAIMS.md, "At rho = 1")
BOUND_RTOL = 1e-12  # rounding tolerance on the eigenvalue bounds
SYMMETRY_RTOL = 1e-10
COMMUTE_RTOL = 1e-9
REAL_RTOL = 1e-9
MAX_EIGVEC_COND = 1e8  # beyond this, P is treated as not diagonalizable
SAMPLE_KINDS = ("symmetric", "shared_basis", "commuting")


class Instance(NamedTuple):
    """``H`` (SPD, ``(n, n)``), ``P`` (``(n, n)``) and the nominal step ``alpha``."""

    H: np.ndarray
    P: np.ndarray
    alpha: float


def make_instance(*, H, P, alpha) -> Instance:
    """Validated :class:`Instance`; ``ValueError`` names the bad argument.

    >>> inst = make_instance(H=[[2.0, 0.0], [0.0, 1.0]], P=[[0.1, 0.0], [0.0, 0.2]],
    ...                      alpha=0.5)
    >>> conclusion(inst), all(hypotheses(inst).values())
    (True, True)
    """
    h = check_spd("H", H)
    p = check_square("P", P, n=h.shape[0])
    a = check_scalar("alpha", alpha, low=0.0)
    return Instance(h, p, a)


# ---------------------------------------------------------------------------------
# linear algebra shared by Theorem 1, Lemma 2 and Lemma 3


def spd_power(H, power):
    """:math:`H^{\\text{power}}` of an SPD matrix through its eigendecomposition."""
    power = check_scalar("power", power)
    w, q = np.linalg.eigh(check_spd("H", H))
    return (q * w**power) @ q.T


def is_symmetric(P, rtol=SYMMETRY_RTOL):
    P = check_square("P", P)
    scale = max(float(np.max(np.abs(P))), 1e-300)
    return bool(np.max(np.abs(P - P.T)) <= rtol * scale)


def commutes(H, P, rtol=COMMUTE_RTOL):
    """``||PH - HP||_F <= rtol ||P||_F ||H||_F``."""
    H = check_square("H", H)
    P = check_square("P", P, n=H.shape[0])
    scale = np.linalg.norm(P) * np.linalg.norm(H)
    return bool(np.linalg.norm(P @ H - H @ P) <= rtol * max(scale, 1e-300))


def real_spectrum(P):
    """``(ok, eigenvalues)``: whether ``P`` is (numerically) diagonalizable with real
    eigenvalues, and its eigenvalues (real parts, ascending)."""
    P = check_square("P", P)
    if is_symmetric(P):
        return True, np.linalg.eigvalsh(0.5 * (P + P.T))
    w, v = np.linalg.eig(P)
    scale = max(float(np.max(np.abs(w))), float(np.max(np.abs(P))), 1e-300)
    real = bool(np.max(np.abs(w.imag)) <= REAL_RTOL * scale)
    cond = np.linalg.cond(v)
    ok = real and bool(np.isfinite(cond) and cond <= MAX_EIGVEC_COND)
    return ok, np.sort(w.real)


def symmetric_or_commuting(H, P):
    """P symmetric, or P commutes with H and is diagonalizable with real
    eigenvalues."""
    return is_symmetric(P) or (commutes(H, P) and real_spectrum(P)[0])


def shared_eigenpairs(H, P):
    """``(h, p)``: the curvature and the eigenvalue of ``P`` on each shared eigenpair
    of a ``P`` that commutes with ``H`` (diagonalizable, real eigenvalues).

    In ``H``'s eigenbasis ``Q``, ``B = Q^T P Q`` is block diagonal over the eigenspaces
    of ``H`` (``(h_i - h_j) B_ij = (Q^T (HP - PH) Q)_ij = 0``); the eigenvalues of each
    block pair with that eigenspace's curvature.
    """
    if not commutes(H, P):
        raise ValueError("P: must commute with H")
    w, q = np.linalg.eigh(H)
    b = q.T @ P @ q
    edges = np.flatnonzero(np.diff(w) > 1e-9 * w[-1]) + 1
    hs, ps = [], []
    for idx in np.split(np.arange(w.size), edges):
        block = b[np.ix_(idx, idx)]
        ok, p = real_spectrum(block)
        if not ok:
            raise ValueError("P: must be diagonalizable with real eigenvalues")
        hs.append(np.full(idx.size, w[idx].mean()))
        ps.append(p)
    return np.concatenate(hs), np.concatenate(ps)


def closed_loop_radius(H, P, alpha):
    r""":math:`\rho(I - (\alpha I + P) H)`, from ``eigvalsh`` of
    :math:`S = H^{1/2} K H^{1/2}` for symmetric ``P``, from the shared eigenpairs for
    commuting ``P``, and from :func:`stability.analyses.spectral_radius` of the dense
    closed loop otherwise."""
    H, P, alpha = make_instance(H=H, P=P, alpha=alpha)
    n = H.shape[0]
    if is_symmetric(P):
        r = spd_power(H, 0.5)
        k = alpha * np.eye(n) + 0.5 * (P + P.T)
        s = np.linalg.eigvalsh(r @ k @ r)
        return float(np.max(np.abs(1 - s)))
    if commutes(H, P) and real_spectrum(P)[0]:
        h, p = shared_eigenpairs(H, P)
        return float(np.max(np.abs(1 - (alpha + p) * h)))
    return float(spectral_radius(nominal_closed_loop(H, P, alpha).transition))


class DirectionCondition(NamedTuple):
    """Theorem 1 per shared eigenpair (ascending curvature).

    Attributes:
      curvature, p: the shared eigenpairs ``(h_i, p_i)``.
      lower, upper: ``-alpha`` and ``2/h_i - alpha``.
      strict: ``lower < p < upper`` per pair; the loop is stable iff all hold.
      non_strict: ``lower <= p <= upper`` (to rounding); ``rho <= 1`` iff all hold.
      rho: the spectral radius ``max_i |1 - (alpha + p_i) h_i|``.
    """

    curvature: np.ndarray
    p: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    strict: np.ndarray
    non_strict: np.ndarray
    rho: float

    @property
    def stable(self) -> bool:
        return bool(np.all(self.strict))


def per_direction_condition(H, P, alpha) -> DirectionCondition:
    r"""The exact condition :math:`-\alpha < p_i < 2/h_i - \alpha` on each shared
    eigenpair of a ``P`` that commutes with ``H`` (``ValueError`` otherwise).

    >>> c = per_direction_condition(np.diag([1.0, 4.0]), np.diag([1.2, 0.1]), 0.5)
    >>> c.upper.tolist(), c.strict.tolist(), c.stable
    ([1.5, 0.0], [True, False], False)
    """
    inst = make_instance(H=H, P=P, alpha=alpha)
    h, p = shared_eigenpairs(inst.H, inst.P)
    order = np.argsort(h, kind="stable")
    h, p = h[order], p[order]
    lower = np.full_like(h, -inst.alpha)
    upper = 2 / h - inst.alpha
    tol = BOUND_RTOL * np.maximum(np.abs(upper), inst.alpha + np.abs(p) + 1e-300)
    return DirectionCondition(
        h,
        p,
        lower,
        upper,
        (p > lower) & (p < upper),
        (p >= lower - tol) & (p <= upper + tol),
        float(np.max(np.abs(1 - (inst.alpha + p) * h))),
    )


# ---------------------------------------------------------------------------------
# the claim


def bounds(instance: Instance) -> dict:
    """Theorem 1's bounds and the extreme eigenvalues of P they constrain (real parts
    when P has complex eigenvalues)."""
    _, lam = real_spectrum(instance.P)
    top = float(np.linalg.eigvalsh(instance.H)[-1])
    return {
        "lower": -instance.alpha,
        "upper": 2 / top - instance.alpha,
        "lambda_min_P": float(lam[0]),
        "lambda_max_P": float(lam[-1]),
    }


def _bound_tol(b):
    scale = max(abs(b["lower"]), abs(b["upper"]), abs(b["lambda_min_P"]))
    return BOUND_RTOL * max(scale, abs(b["lambda_max_P"]), 1e-300)


def hypotheses(instance: Instance) -> dict:
    """Named hypotheses of Theorem 1 and whether they hold:

    - ``H_spd``: H symmetric positive definite;
    - ``P_real_spectrum``: P diagonalizable with real eigenvalues (the paper's);
    - ``P_symmetric_or_commuting``: P symmetric, or P commutes with H (and has a real
      spectrum) — the hypothesis the paper omits;
    - ``lower_bound``: ``-alpha <= lambda_min(P)``;
    - ``upper_bound``: ``lambda_max(P) <= 2/L - alpha``.
    """
    h, p = instance.H, instance.P
    b = bounds(instance)
    tol = _bound_tol(b)
    return {
        "H_spd": bool(is_symmetric(h) and np.linalg.eigvalsh(h)[0] > 0),
        "P_real_spectrum": real_spectrum(p)[0],
        "P_symmetric_or_commuting": symmetric_or_commuting(h, p),
        "lower_bound": b["lambda_min_P"] >= b["lower"] - tol,
        "upper_bound": b["lambda_max_P"] <= b["upper"] + tol,
    }


def radius(instance: Instance) -> float:
    """:math:`\\rho(A)` of the instance (see :func:`closed_loop_radius`)."""
    return closed_loop_radius(instance.H, instance.P, instance.alpha)


def conclusion(instance: Instance) -> bool:
    """``rho(A) <= 1`` up to a relative slack of 1e-9."""
    return radius(instance) <= 1 + SLACK


# ---------------------------------------------------------------------------------
# sampling and searches


def random_orthogonal(rng, n):
    """A Haar-distributed orthogonal matrix."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def random_curvatures(rng, n, kappa, top=1.0, *, repeated=False):
    """``n`` log-uniform eigenvalues on ``[top/kappa, top]`` with both ends attained
    (when ``n >= 2``), descending; ``repeated`` draws fewer distinct values and repeats
    them (eigenspaces of dimension > 1)."""
    m = int(rng.integers(1, n + 1)) if repeated else n
    u = rng.uniform(size=m)
    if m >= 2:
        u[0], u[1] = 0.0, 1.0
    else:
        u[0] = 0.0
    values = top * np.exp(-u * np.log(kappa))
    if repeated:
        values = np.concatenate([values, rng.choice(values, n - m)])
    return np.sort(values)[::-1]


def sample_size(rng, n=None, kappa=None) -> tuple[int, float]:
    """A sampler's dimension and condition number: each given one checked (``n >= 1``,
    ``kappa >= 1``), each missing one drawn, ``n`` uniform on 1..8 then ``kappa``
    log-uniform on ``[1, 1e6]``."""
    n = int(rng.integers(1, 9)) if n is None else check_int("n", n, low=1)
    if kappa is None:
        return n, 10 ** rng.uniform(0, 6)
    return n, check_scalar("kappa", kappa, low=1.0)


def random_hessian(rng, n, kappa, top=1.0, *, repeated=False):
    """``(H, h, Q)`` with ``H = Q diag(h) Q^T``, ``h`` from :func:`random_curvatures`
    and ``Q`` Haar-orthogonal."""
    h = random_curvatures(rng, n, kappa, top, repeated=repeated)
    q = random_orthogonal(rng, n)
    H = (q * h) @ q.T
    return 0.5 * (H + H.T), h, q


def _well_conditioned(rng, m, max_cond=50.0):
    while True:
        v = np.eye(m) + 0.5 * rng.standard_normal((m, m))
        if np.linalg.cond(v) <= max_cond:
            return v


def commuting_matrix(rng, h, q, p):
    """A generally non-symmetric ``P`` commuting with ``H = Q diag(h) Q^T`` with
    eigenvalue ``p_i`` on direction ``i``: non-symmetric blocks on repeated ``h``."""
    n = h.size
    b = np.zeros((n, n))
    for value in np.unique(h):
        idx = np.flatnonzero(h == value)
        v = _well_conditioned(rng, idx.size)
        b[np.ix_(idx, idx)] = v @ np.diag(p[idx]) @ np.linalg.inv(v)
    return q @ b @ q.T


def draw_in_interval(rng, lo, hi, n, boundary):
    p = rng.uniform(lo, hi, n)
    if boundary:
        hit = rng.random(n) < 0.5
        hit[rng.integers(n)] = True
        p = np.where(hit, np.where(rng.random(n) < 0.5, lo, hi), p)
    return p


def _scale_and_step(rng):
    top = 10 ** rng.uniform(-2, 2)
    alpha = 0.0 if rng.random() < 0.1 else (2 / top) * rng.uniform(0, 1.5)
    return top, alpha


def sample(rng, *, n=None, kappa=None, kind=None, boundary=None) -> Instance:
    """A random instance satisfying every hypothesis.

    ``H = Q diag(h) Q^T`` with ``n`` (1 to 8) log-uniform eigenvalues spanning
    condition number ``kappa`` (up to 1e6) and ``L`` log-uniform on ``[1e-2, 1e2]``;
    ``alpha`` up to ``3/L``; ``P``'s eigenvalues inside the bounds, some exactly on
    them when ``boundary``. ``kind``: ``"symmetric"`` (random eigenbasis),
    ``"shared_basis"`` (symmetric, H's eigenbasis) or ``"commuting"`` (non-symmetric
    blocks on repeated eigenvalues of H).
    """
    n, kappa = sample_size(rng, n, kappa)
    kind = SAMPLE_KINDS[rng.integers(3)] if kind is None else kind
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"kind: expected one of {SAMPLE_KINDS}, got {kind!r}")
    boundary = (
        bool(rng.random() < 0.3)
        if boundary is None
        else check_flag("boundary", boundary)
    )
    top, alpha = _scale_and_step(rng)
    H, h, q = random_hessian(rng, n, kappa, top, repeated=kind == "commuting")
    p = draw_in_interval(rng, -alpha, 2 / top - alpha, n, boundary)
    if kind == "symmetric":
        r = random_orthogonal(rng, n)
        P = (r * p) @ r.T
    elif kind == "shared_basis":
        P = (q * p) @ q.T
    else:
        P = commuting_matrix(rng, h, q, p)
    if kind != "commuting":
        P = 0.5 * (P + P.T)
    return make_instance(H=H, P=P, alpha=alpha)


DROPS = {
    "P_symmetric_or_commuting": "sufficiency",
    "lower_bound": "sufficiency",
    "upper_bound": "necessity",
}

DEFAULT_BUDGET = 2000


def _search_symmetric_drop(rng):
    """Non-normal 2x2 P with real eigenvalues strictly inside the bounds."""
    n = 2
    top = 10 ** rng.uniform(-1, 1)
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 3), top)
    alpha = (2 / top) * rng.uniform(0, 1)
    lo, hi = -alpha, 2 / top - alpha
    margin = 0.01 * (hi - lo)
    p = rng.uniform(lo + margin, hi - margin, n)
    v = rng.standard_normal((n, n)) * np.exp(rng.uniform(-2, 2, (n, n)))
    return make_instance(H=H, P=v @ np.diag(p) @ np.linalg.inv(v), alpha=alpha)


def _search_lower_drop(rng):
    """Symmetric P with eigenvalues up to one bound-width below ``-alpha``."""
    n = int(rng.integers(1, 4))
    top = 10 ** rng.uniform(-1, 1)
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 3), top)
    alpha = (2 / top) * rng.uniform(0, 1)
    lo, hi = -alpha, 2 / top - alpha
    r = random_orthogonal(rng, n)
    p = rng.uniform(lo - (hi - lo), hi, n)
    P = (r * p) @ r.T
    return make_instance(H=H, P=0.5 * (P + P.T), alpha=alpha)


def _search_upper_drop(rng):
    """Symmetric P near H's eigenbasis, each eigenvalue inside its own direction's
    bound ``2/h_i - alpha`` (looser than ``2/L - alpha`` away from the top)."""
    n = int(rng.integers(2, 4))
    top = 10 ** rng.uniform(-1, 1)
    H, h, q = random_hessian(rng, n, 10 ** rng.uniform(1, 4), top)
    alpha = (2 / top) * rng.uniform(0, 1)
    p = rng.uniform(-alpha, 2 / h - alpha)
    tilt = random_orthogonal(rng, n)
    mix = 10 ** rng.uniform(-4, 0)
    # a rotation between I and a random one (polar factor of I + mix * tilt)
    u, _, vt = np.linalg.svd(np.eye(n) + mix * tilt)
    r = q @ (u @ vt)
    P = (r * p) @ r.T
    return make_instance(H=H, P=0.5 * (P + P.T), alpha=alpha)


SEARCHES = {
    "P_symmetric_or_commuting": _search_symmetric_drop,
    "lower_bound": _search_lower_drop,
    "upper_bound": _search_upper_drop,
}

_MARGIN = 1e-6  # counterexamples break the claim by this much, not by rounding


def is_counterexample(hypotheses_fn, radius_fn, instance, drop, kind) -> bool:
    """Every hypothesis but ``drop`` holds, ``drop`` fails, and the conclusion fails
    clearly (``kind="sufficiency"``: ``rho > 1 + 1e-6``) or holds clearly
    (``"necessity"``: ``rho < 1 - 1e-6``)."""
    hyp = hypotheses_fn(instance)
    if hyp[drop] or not all(v for k, v in hyp.items() if k != drop):
        return False
    rho = radius_fn(instance)
    if kind == "sufficiency":
        return rho > 1 + _MARGIN
    return rho < 1 - _MARGIN


def run_search(claim, drop, kind, seed, budget):
    """Draw ``budget`` candidates from ``claim.searches[drop]`` with
    ``np.random.default_rng(seed)`` and return the first counterexample, or None.

    ``claim`` is a :class:`Search` of the claim's functions."""
    if drop not in claim.drops:
        raise ValueError(f"drop: expected one of {tuple(claim.drops)}, got {drop!r}")
    kind = claim.drops[drop] if kind is None else check_kind(kind)
    if kind != claim.drops[drop]:
        raise ValueError(
            f"kind: dropping {drop!r} gives a {claim.drops[drop]!r} counterexample, "
            f"not {kind!r}"
        )
    check_int("budget", budget, low=1)
    rng = np.random.default_rng(seed)
    for _ in range(int(budget)):
        inst = claim.searches[drop](rng)
        if is_counterexample(claim.hypotheses, claim.radius, inst, drop, kind):
            return inst
    return None


class Search(NamedTuple):
    """What :func:`run_search` needs from a claim."""

    drops: dict
    searches: dict
    hypotheses: object
    radius: object


def counterexample(drop, *, kind=None, seed=0, budget=DEFAULT_BUDGET):
    """Seeded random search for an instance satisfying every hypothesis except
    ``drop`` that breaks the claim: ``"P_symmetric_or_commuting"`` (sufficiency: a
    non-normal P, eigenvalues strictly inside the bounds, ``rho > 1``),
    ``"lower_bound"`` (sufficiency) or ``"upper_bound"`` (necessity: stable although
    ``lambda_max(P) > 2/L - alpha``). Same seed, same instance; None if the budget
    runs out.

    >>> inst = counterexample("P_symmetric_or_commuting", seed=0)
    >>> hypotheses(inst)["P_symmetric_or_commuting"], radius(inst) > 1
    (False, True)
    """
    claim = Search(DROPS, SEARCHES, hypotheses, radius)
    return run_search(claim, drop, kind, seed, budget)


# ---------------------------------------------------------------------------------
# the two other readings of the claim


def destabilising_hessian(P, alpha, L, *, floor=None):
    r"""For a symmetric ``P`` violating a bound, an SPD ``H`` with
    :math:`\lambda_{\max}(H) = L` and :math:`\rho > 1`; None if both bounds hold (to
    rounding).

    With :math:`u` the eigenvector of the violating eigenvalue :math:`p`,
    :math:`H = L u u^T + f (I - u u^T)` gives :math:`S u = L(\alpha + p) u`, outside
    :math:`[0, 2]`. So for symmetric ``P`` the bounds hold iff the loop is marginally
    stable for every SPD ``H`` with :math:`\lambda_{\max}(H) \le L` (the "iff" of
    the summaries, read over all curvatures).
    """
    p = check_square("P", P)
    if not is_symmetric(p):
        raise ValueError("P: must be symmetric")
    alpha = check_scalar("alpha", alpha, low=0.0)
    L = check_scalar("L", L, low=0.0, low_open=True)
    if floor is None:
        floor = 1e-3 * L
    else:  # H SPD with lambda_max(H) = L
        floor = check_scalar("floor", floor, low=0.0, low_open=True, high=L)
    w, v = np.linalg.eigh(0.5 * (p + p.T))
    tol = BOUND_RTOL * max(alpha, 2 / L, float(np.max(np.abs(w))))
    if w[0] < -alpha - tol:
        u = v[:, 0]
    elif w[-1] > 2 / L - alpha + tol:
        u = v[:, -1]
    else:
        return None
    n = p.shape[0]
    uu = np.outer(u, u)
    return L * uu + floor * (np.eye(n) - uu)


SEED_READINGS = ("literal", "reparametrised")


def to_seed_alpha(alpha):
    """The seed summary's :math:`\\alpha_s` for nominal step ``alpha`` in the
    reparametrised reading (nominal step :math:`1/\\alpha_s`)."""
    return 1 / check_scalar("alpha", alpha, low=0.0, low_open=True)


def from_seed_alpha(alpha_seed):
    """The nominal step :math:`1/\\alpha_s` for the summary's :math:`\\alpha_s`; with
    :math:`\\alpha_s = L` the summary's bounds are Theorem 1's."""
    return 1 / check_scalar("alpha_seed", alpha_seed, low=0.0, low_open=True)


def seed_premise(instance: Instance, reading: str = "literal") -> bool:
    """The summary's premise ``-1/a_s <= lambda(P) <= 1/a_s`` (real spectrum) with
    ``a_s = alpha`` (``"literal"``) or ``a_s = 1/alpha = L`` (``"reparametrised"``:
    the instance must have ``alpha = 1/L``)."""
    if reading not in SEED_READINGS:
        raise ValueError(f"reading: expected one of {SEED_READINGS}, got {reading!r}")
    if instance.alpha <= 0:
        return False
    ok, lam = real_spectrum(instance.P)
    top = float(np.linalg.eigvalsh(instance.H)[-1])
    if reading == "literal":
        a_s = instance.alpha
    else:
        a_s = to_seed_alpha(instance.alpha)
        if abs(a_s - top) > 1e-12 * top:
            return False
    tol = BOUND_RTOL * max(1 / a_s, float(np.max(np.abs(lam))))
    return ok and lam[0] >= -1 / a_s - tol and lam[-1] <= 1 / a_s + tol


def seed_wording_holds(instance: Instance, reading: str = "literal") -> bool:
    """Whether the summary's implication (premise => ``rho(A) <= 1``) holds on the
    instance."""
    return (not seed_premise(instance, reading)) or conclusion(instance)


def _search_seed(rng, reading):
    n = int(rng.integers(1, 4))
    top = 10 ** rng.uniform(-1, 1)
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 3), top)
    if reading == "literal":
        alpha = (2 / top) * 10 ** rng.uniform(-1, 1)
    else:
        alpha = from_seed_alpha(float(np.linalg.eigvalsh(H)[-1]))
    bound = 1 / _seed_symbol(alpha, reading)
    r = random_orthogonal(rng, n)
    p = draw_in_interval(rng, -bound, bound, n, rng.random() < 0.3)
    P = (r * p) @ r.T
    return make_instance(H=H, P=0.5 * (P + P.T), alpha=alpha)


def _seed_symbol(alpha, reading):
    """The summary's alpha_s: the nominal step itself, or 1/step (= L)."""
    return alpha if reading == "literal" else to_seed_alpha(alpha)


def seed_counterexample(reading="literal", *, seed=0, budget=DEFAULT_BUDGET):
    """Seeded search over symmetric ``P`` for an instance where the summary's premise
    holds and ``rho(A) > 1 + 1e-6``. Finds one for ``"literal"``; for
    ``"reparametrised"`` (Theorem 1 at ``alpha = 1/L``) there is none to find.

    >>> seed_counterexample("literal") is not None
    True
    >>> seed_counterexample("reparametrised", budget=200) is None
    True
    """
    if reading not in SEED_READINGS:
        raise ValueError(f"reading: expected one of {SEED_READINGS}, got {reading!r}")
    rng = np.random.default_rng(seed)
    for _ in range(int(budget)):
        inst = _search_seed(rng, reading)
        if seed_premise(inst, reading) and radius(inst) > 1 + _MARGIN:
            return inst
    return None
