r"""Lemma 3: robust stability under multiplicative uncertainty, and the fragility of
cancellation.

**Multiplicative uncertainty.** The learned term is known up to a diagonal gain,
:math:`P = \Delta \tilde P` with :math:`\Delta = \mathrm{diag}(d)`,
:math:`0 < d_i \le d_{\max}`, and the loop :math:`A(\Delta) = I - (\alpha I + \Delta
\tilde P) H` must be stable for every such :math:`\Delta`. The paper's bounds are
Theorem 1's divided by :math:`d_{\max}`:

.. math:: -\alpha/d_{\max} \le \lambda_{\min}(\tilde P), \qquad
   \lambda_{\max}(\tilde P) \le (2/L - \alpha)/d_{\max}.

They need one more hypothesis in every case, :math:`\alpha \le 2/L`: as
:math:`\Delta \to 0` the loop tends to :math:`I - \alpha H`. With it they are
sufficient

- when :math:`\tilde P` is symmetric and commutes with :math:`H` (for any SPD
  :math:`\Delta \preceq d_{\max} I`, not only diagonal); then robust stability holds
  iff :math:`\alpha \le 2/L` and :math:`-\alpha \le d_{\max} p_i \le 2/h_i - \alpha`
  on every shared eigenpair (:func:`per_pair_condition`);
- when :math:`\Delta` commutes with :math:`H` (here: :math:`H` diagonal) and
  :math:`\tilde P` is symmetric. Proof: :math:`\Delta^{-1/2} K H \Delta^{1/2} =
  (\alpha I + \Delta^{1/2} \tilde P \Delta^{1/2}) H`, a symmetric :math:`K'`, and
  :math:`\min(0, d_{\max}\lambda_{\min}(\tilde P)) \le \lambda(\Delta^{1/2} \tilde P
  \Delta^{1/2}) \le \max(0, d_{\max}\lambda_{\max}(\tilde P))`; with
  :math:`\alpha \le 2/L` Theorem 1 applies to :math:`K'`.

They fail otherwise: for a symmetric (even PSD) :math:`\tilde P` that does not commute
with a non-diagonal :math:`H`, and for non-symmetric :math:`\tilde P`
(:func:`counterexample`). The robust conclusion is checked by
:func:`stability.analyses.robust.worst_case_multiplicative` over the closure of the box
(vertices, interior samples, local ascent); a value above 1 is a certificate (the
returned :math:`\Delta`), a value at most 1 is evidence backed by the proof above.

**Cancellation is fragile.** A learned term that cancels the nominal one,
:math:`P = \Delta(P^* - \alpha I)` with :math:`\Delta = (1 - \epsilon) I`, leaves
:math:`\alpha(I - \Delta) = \alpha\epsilon I` behind:

.. math:: A(\epsilon) = I - \alpha\epsilon H - (1 - \epsilon) P^* H.

For :math:`P^* = H^{-1}`, :math:`A = \epsilon(I - \alpha H)` and
:math:`\rho = |\epsilon| \max_i |1 - \alpha h_i|`: the tolerated relative error is at
least 1 while :math:`\alpha L \le 2` and exactly :math:`1/(\alpha L - 1)` beyond, so
cancelling a large nominal term is fatal at a relative error of about
:math:`1/(\alpha L)` (:func:`inverse_tolerated_error`). For symmetric :math:`P^*` the
stable set of :math:`\epsilon` is an interval (:math:`S(\epsilon) = (1-\epsilon) S^* +
\alpha\epsilon H` is affine, so :math:`\lambda_{\min}` is concave and
:math:`\lambda_{\max}` convex) whose ends solve generalized symmetric eigenproblems
(:func:`error_interval`). At the upper edge of stability (:math:`S^* = H^{1/2} P^*
H^{1/2}` has the simple eigenvalue 2 with unit eigenvector :math:`u`),

.. math:: \rho(\epsilon) = 1 - \epsilon\,(2 - \alpha\, u^T H u) + O(\epsilon^2),

so the stability margin lost per unit of error is :math:`\pm(2 - \alpha u^T H u)`:
undershoot (:math:`\epsilon > 0`) stabilises iff :math:`\alpha u^T H u < 2`, and
overshoot then destabilises (:func:`margin_sensitivity`, general first-order
perturbation of the active eigenvalues).

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Lemma 3 and Section 4.
  T. Kato, *Perturbation Theory for Linear Operators*, Springer, 1966, Chapter II
  (first-order perturbation of semisimple eigenvalues).
  K. Zhou, J. C. Doyle & K. Glover, *Robust and Optimal Control*, Prentice Hall, 1996,
  Chapter 9 (multiplicative uncertainty).
"""

from typing import NamedTuple

import numpy as np
import scipy.linalg

from stability._validation import (
    as_float_array,
    check_int,
    check_scalar,
    check_spd,
    check_square,
)
from stability.analyses import spectral_radius
from stability.analyses.robust import worst_case_multiplicative
from stability.lemmas import _claim, nominal, samplers, structure
from stability.lemmas._claim import SLACK, claim_of, radius_breaks
from stability.problems import random_rotation

NAME = "robust"
TITLE = "Lemma 3: robust stability under multiplicative uncertainty"
STATEMENT = """\
P = Delta P~ with Delta = diag(d), 0 < d_i <= d_max, A = I - (alpha I + P) H. If
alpha <= 2/L (omitted by the paper, needed in every case), P~ is symmetric, and P~
commutes with H or H is diagonal (Delta commutes with H), then
-alpha/d_max <= lambda_min(P~) and lambda_max(P~) <= (2/L - alpha)/d_max imply
rho(A) <= 1 for every such Delta. For P~ symmetric commuting with H it is exact per
pair: -alpha <= d_max p_i <= 2/h_i - alpha. False for a symmetric P~ not commuting
with a non-diagonal H, and for non-symmetric P~. Cancelling the nominal term,
P = (1 - eps)(P* - alpha I), leaves alpha eps I; for P* = H^{-1} the tolerated relative
error is >= 1 while alpha L <= 2 and 1/(alpha L - 1) beyond."""

DEFAULT_BUDGET = 1000  # this claim's searches succeed within fewer draws
SAMPLE_KINDS = ("commuting", "diagonal")


class Instance(NamedTuple):
    """``H`` (SPD), ``P_tilde`` (``(n, n)``), the nominal step ``alpha`` and the
    uncertainty bound ``d_max``."""

    H: np.ndarray
    P_tilde: np.ndarray
    alpha: float
    d_max: float


def make_instance(*, H, P_tilde, alpha, d_max) -> Instance:
    """Validated :class:`Instance`; ``ValueError`` names the bad argument.

    >>> inst = make_instance(H=np.diag([2.0, 1.0]), P_tilde=np.diag([0.2, -0.1]),
    ...                      alpha=0.5, d_max=2.0)
    >>> conclusion(inst), all(hypotheses(inst).values())
    (True, True)
    """
    h = check_spd("H", H)
    p = check_square("P_tilde", P_tilde, n=h.shape[0])
    a = check_scalar("alpha", alpha, low=0.0)
    d = check_scalar("d_max", d_max, low=0.0, low_open=True)
    return Instance(h, p, a, d)


def _top(h):
    return float(np.linalg.eigvalsh(h)[-1])


def is_diagonal(H, rtol=1e-12):
    off = H - np.diag(np.diag(H))
    return bool(np.max(np.abs(off)) <= rtol * float(np.max(np.abs(H))))


def bounds(instance: Instance) -> dict:
    """Lemma 3's bounds on P~, the extra ``alpha <= 2/L`` and P~'s extreme
    eigenvalues (real parts)."""
    _, lam = structure.real_spectrum(instance.P_tilde)
    top = _top(instance.H)
    return {
        "lower": -instance.alpha / instance.d_max,
        "upper": (2 / top - instance.alpha) / instance.d_max,
        "alpha_max": 2 / top,
        "lambda_min_P_tilde": float(lam[0]),
        "lambda_max_P_tilde": float(lam[-1]),
    }


def hypotheses(instance: Instance) -> dict:
    """Named hypotheses of Lemma 3:

    - ``H_spd``;
    - ``nominal_stable``: ``alpha <= 2/L`` (the paper omits it);
    - ``P_symmetric``: P~ symmetric;
    - ``commuting``: P~ commutes with H, or H is diagonal (so every diagonal Delta
      commutes with H);
    - ``lower_bound``: ``-alpha/d_max <= lambda_min(P~)``;
    - ``upper_bound``: ``lambda_max(P~) <= (2/L - alpha)/d_max``.
    """
    h, p = instance.H, instance.P_tilde
    b = bounds(instance)
    scale = max(abs(v) for v in b.values())
    tol = nominal.BOUND_RTOL * max(scale, 1e-300)
    return {
        "H_spd": bool(structure.is_symmetric(h) and np.linalg.eigvalsh(h)[0] > 0),
        "nominal_stable": instance.alpha <= b["alpha_max"] * (1 + nominal.BOUND_RTOL),
        "P_symmetric": structure.is_symmetric(p),
        "commuting": structure.commutes(h, p) or is_diagonal(h),
        "lower_bound": b["lambda_min_P_tilde"] >= b["lower"] - tol,
        "upper_bound": b["lambda_max_P_tilde"] <= b["upper"] + tol,
    }


def worst_case(instance: Instance, *, seed: int = 0, **options):
    """:func:`stability.analyses.robust.worst_case_multiplicative` over the closure
    of the box ``0 <= d_i <= d_max``; ``options`` are passed on."""
    return worst_case_multiplicative(
        instance.H,
        instance.P_tilde,
        instance.alpha,
        instance.d_max,
        seed=seed,
        **options,
    )


def radius(instance: Instance) -> float:
    """The largest spectral radius found over the uncertainty set."""
    return worst_case(instance).rho


def conclusion(instance: Instance) -> bool:
    """No ``Delta`` in the box with ``rho > 1`` (relative slack 1e-9)."""
    return radius(instance) <= 1 + SLACK


class PairCondition(NamedTuple):
    """Lemma 3 per shared eigenpair of a symmetric P~ commuting with H.

    Attributes:
      curvature, p: the shared eigenpairs ``(h_i, p_i)`` (ascending curvature).
      lower, upper: ``-alpha`` and ``2/h_i - alpha`` (bounds on ``d_max p_i``).
      holds: ``lower <= d_max p_i <= upper`` per pair (to rounding).
      nominal_stable: ``alpha <= 2/L``.
    """

    curvature: np.ndarray
    p: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    holds: np.ndarray
    nominal_stable: bool

    @property
    def robust(self) -> bool:
        """Robustly (marginally) stable over every SPD ``Delta <= d_max I``."""
        return bool(self.nominal_stable and np.all(self.holds))


def per_pair_condition(H, P_tilde, alpha, d_max) -> PairCondition:
    """The exact robust condition for a symmetric P~ commuting with H
    (``ValueError`` otherwise).

    >>> c = per_pair_condition(np.diag([1.0, 4.0]), np.diag([1.0, 0.1]), 0.25, 1.5)
    >>> c.upper.tolist(), c.holds.tolist(), c.robust
    ([1.75, 0.25], [True, True], True)
    """
    inst = make_instance(H=H, P_tilde=P_tilde, alpha=alpha, d_max=d_max)
    if not structure.is_symmetric(inst.P_tilde):
        raise ValueError("P_tilde: must be symmetric")
    h, p = structure.shared_eigenpairs(inst.H, inst.P_tilde)
    order = np.argsort(h, kind="stable")
    h, p = h[order], p[order]
    lower = np.full_like(h, -inst.alpha)
    upper = 2 / h - inst.alpha
    dp = inst.d_max * p
    tol = nominal.BOUND_RTOL * np.maximum(np.abs(upper) + inst.alpha, np.abs(dp))
    nominal_ok = inst.alpha * h[-1] <= 2 * (1 + nominal.BOUND_RTOL)
    return PairCondition(
        h, p, lower, upper, (dp >= lower - tol) & (dp <= upper + tol), nominal_ok
    )


def exact_verdict(instance: Instance):
    r"""Exact robust (marginal) stability over every :math:`0 \preceq \Delta
    \preceq d_{\max} I` where a certificate exists, else None.

    - P~ symmetric, commuting with H: :func:`per_pair_condition`.
    - P~ symmetric, H diagonal (:math:`\Delta` commutes with :math:`H`): robust iff
      :math:`\alpha \le 2/L` and the single system :math:`\Delta = d_{\max} I` has
      :math:`\rho \le 1`. With :math:`\Delta^{1/2} = d_{\max}^{1/2} T`,
      :math:`0 \preceq T \preceq I` diagonal, and :math:`G = d_{\max} H^{1/2}
      \tilde P H^{1/2}`, the loop is similar to :math:`I - S(T)`,
      :math:`S(T) = \alpha H + T G T`, and

      .. math:: S(T) = T S(I) T + \alpha H (I - T^2), \qquad
         2I - S(T) = T (2I - S(I)) T + (I - T^2)(2I - \alpha H),

      both sums of PSD terms when :math:`0 \preceq S(I) \preceq 2I` and
      :math:`\alpha H \preceq 2I`. So the worst case *for the verdict* is
      :math:`\Delta = d_{\max} I`; the largest :math:`\rho` over the box is often
      attained elsewhere.
    """
    h, p = instance.H, instance.P_tilde
    if not structure.is_symmetric(p):
        return None
    if structure.commutes(h, p):
        return per_pair_condition(h, p, instance.alpha, instance.d_max).robust
    if not is_diagonal(h):
        return None
    top = _top(h)
    if instance.alpha > (2 / top) * (1 + nominal.BOUND_RTOL):
        return False
    rho = nominal.closed_loop_radius(h, instance.d_max * p, instance.alpha)
    return rho <= 1 + SLACK


def sample(rng, *, n=None, kappa=None, kind=None, boundary=None) -> Instance:
    """A random instance satisfying every hypothesis: ``n`` (1 to 8), ``H`` with
    log-uniform eigenvalues of condition number ``kappa`` (up to 1e6) and ``L``
    log-uniform on ``[1e-2, 1e2]``, ``alpha`` in ``[0, 2/L]`` (ends included),
    ``d_max`` log-uniform on ``[0.1, 10]``. ``kind``: ``"commuting"`` (P~ symmetric in
    H's eigenbasis) or ``"diagonal"`` (H diagonal, P~ symmetric in a random basis).
    ``boundary`` puts some eigenvalues of P~ exactly on the bounds."""
    n, kappa, kind, boundary = samplers.sample_options(
        rng, n, kappa, kind, SAMPLE_KINDS, boundary
    )
    top = 10 ** rng.uniform(-2, 2)
    u = rng.random()
    alpha = (2 / top) * (0.0 if u < 0.1 else 1.0 if u < 0.2 else rng.uniform())
    d_max = 10 ** rng.uniform(-1, 1)
    H, h, q = samplers.random_hessian(rng, n, kappa, top)
    lo, hi = -alpha / d_max, (2 / top - alpha) / d_max
    p = samplers.draw_in_interval(rng, lo, hi, n, boundary)
    if kind == "diagonal":
        H = np.diag(h)
        q = random_rotation(n, rng)
    P = (q * p) @ q.T
    return make_instance(H=H, P_tilde=0.5 * (P + P.T), alpha=alpha, d_max=d_max)


DROPS = {
    "nominal_stable": "sufficiency",
    "P_symmetric": "sufficiency",
    "commuting": "sufficiency",
    "lower_bound": "sufficiency",
    "upper_bound": "necessity",
}


def _commuting_symmetric(rng, n, kappa, lo_of, hi_of, alpha_of):
    top = 10 ** rng.uniform(-1, 1)
    H, h, q = samplers.random_hessian(rng, n, kappa, top)
    alpha = alpha_of(top)
    d_max = 10 ** rng.uniform(-1, 1)
    p = rng.uniform(lo_of(alpha, d_max, h, top), hi_of(alpha, d_max, h, top))
    P = (q * p) @ q.T
    return make_instance(H=H, P_tilde=0.5 * (P + P.T), alpha=alpha, d_max=d_max)


def _search_nominal(rng):
    """alpha beyond 2/L; P~ negative, inside the (then negative) bounds."""
    return _commuting_symmetric(
        rng,
        int(rng.integers(1, 4)),
        10 ** rng.uniform(0, 2),
        lambda a, d, h, top: np.full(h.size, -a / d),
        lambda a, d, h, top: np.full(h.size, (2 / top - a) / d),
        lambda top: (2 / top) * rng.uniform(1.05, 3),
    )


def _search_symmetric(rng):
    """H diagonal, non-normal P~ with real eigenvalues strictly inside the bounds."""
    n = 2
    top = 10 ** rng.uniform(-1, 1)
    h = samplers.random_curvatures(rng, n, 10 ** rng.uniform(0, 3), top)
    alpha = (2 / top) * rng.uniform(0, 1)
    d_max = 10 ** rng.uniform(-1, 1)
    lo, hi = -alpha / d_max, (2 / top - alpha) / d_max
    margin = 0.01 * (hi - lo)
    p = rng.uniform(lo + margin, hi - margin, n)
    v = rng.standard_normal((n, n)) * np.exp(rng.uniform(-2, 2, (n, n)))
    P = v @ np.diag(p) @ np.linalg.inv(v)
    return make_instance(H=np.diag(h), P_tilde=P, alpha=alpha, d_max=d_max)


def _search_commuting(rng):
    """Symmetric P~ (PSD half the time) in a random basis, eigenvalues at the ends of
    the bounds, non-diagonal H: the diagonal Delta no longer commutes with H."""
    n = int(rng.integers(2, 5))
    top = 10 ** rng.uniform(-1, 1)
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3), top)
    alpha = (2 / top) * rng.uniform(0, 1) * rng.choice([1.0, 0.01])
    d_max = 10 ** rng.uniform(-1, 1)
    lo, hi = -alpha / d_max, (2 / top - alpha) / d_max
    if rng.random() < 0.5:
        p = np.where(rng.random(n) < 0.5, hi, 0.0)
    else:
        p = np.where(rng.random(n) < 0.5, hi, lo)
    r = random_rotation(n, rng)
    P = (r * p) @ r.T
    return make_instance(H=H, P_tilde=0.5 * (P + P.T), alpha=alpha, d_max=d_max)


def _search_lower(rng):
    """Commuting symmetric P~ with eigenvalues up to one bound-width below the lower
    bound."""
    return _commuting_symmetric(
        rng,
        int(rng.integers(1, 4)),
        10 ** rng.uniform(0, 2),
        lambda a, d, h, top: np.full(h.size, (-a - 2 / top) / d),
        lambda a, d, h, top: np.full(h.size, (2 / top - a) / d),
        lambda top: (2 / top) * rng.uniform(0, 1),
    )


def _search_upper(rng):
    """Commuting symmetric P~ inside the exact per-pair condition
    ``-alpha <= d_max p_i <= 2/h_i - alpha``, looser than the upper bound away from
    the top curvature."""
    return _commuting_symmetric(
        rng,
        int(rng.integers(2, 4)),
        10 ** rng.uniform(1, 3),
        lambda a, d, h, top: np.full(h.size, -a / d),
        lambda a, d, h, top: (2 / h - a) / d,
        lambda top: (2 / top) * rng.uniform(0.2, 0.8),
    )


SEARCHES = {
    "nominal_stable": _search_nominal,
    "P_symmetric": _search_symmetric,
    "commuting": _search_commuting,
    "lower_bound": _search_lower,
    "upper_bound": _search_upper,
}


def counterexample(drop, *, kind=None, seed=0, budget=DEFAULT_BUDGET):
    """Seeded search for an instance satisfying every hypothesis but ``drop`` that
    breaks the claim (kinds as in :data:`DROPS`); the worst ``Delta`` is
    ``worst_case(instance).delta``. Same seed, same instance; None if the budget runs
    out.

    >>> inst = counterexample("commuting", seed=0)
    >>> hypotheses(inst)["commuting"], worst_case(inst).rho > 1
    (False, True)
    """
    return _claim.counterexample(CLAIM, drop, kind=kind, seed=seed, budget=budget)


# ---------------------------------------------------------------------------------
# cancellation fragility


def _check_fragility(H, P_star, alpha):
    h = check_spd("H", H)
    p = check_square("P_star", P_star, n=h.shape[0])
    return h, p, check_scalar("alpha", alpha, low=0.0)


def fragility(H, P_star, alpha, eps):
    r"""Spectral radius of the cancelling loop
    :math:`A(\epsilon) = I - \alpha\epsilon H - (1 - \epsilon) P^* H`, i.e.
    :math:`P = (1 - \epsilon)(P^* - \alpha I)`; ``eps`` a scalar or an array.

    >>> h = np.diag([1.0, 3.0])
    >>> fragility(h, np.linalg.inv(h), 1.0, 0.5)  # |eps| max |1 - alpha h_i|
    1.0
    """
    h, p, alpha = _check_fragility(H, P_star, alpha)
    eps = as_float_array("eps", eps)
    n = h.shape[0]
    e = eps[..., None, None]
    if structure.is_symmetric(p):
        r = structure.spd_power(h, 0.5)
        s_star = r @ (0.5 * (p + p.T)) @ r
        s = np.linalg.eigvalsh((1 - e) * s_star + alpha * e * h)
        rho = np.max(np.abs(1 - s), axis=-1)
    else:
        a = np.eye(n) - alpha * e * h - (1 - e) * (p @ h)
        rho = np.asarray(spectral_radius(a))
    return float(rho) if np.ndim(rho) == 0 else rho


def inverse_tolerated_error(H, alpha) -> float:
    r"""Closed form for :math:`P^* = H^{-1}`: :math:`\rho = |\epsilon| \max_i
    |1 - \alpha h_i|`, so the loop is stable iff
    :math:`|\epsilon| < 1/\max_i|1 - \alpha h_i|` — at least 1 while
    :math:`\alpha L \le 2`, and :math:`1/(\alpha L - 1)` beyond.

    >>> inverse_tolerated_error(np.diag([1.0, 4.0]), 2.0)
    0.14285714285714285
    """
    h = np.linalg.eigvalsh(check_spd("H", H))
    alpha = check_scalar("alpha", alpha, low=0.0)
    worst = float(np.max(np.abs(1 - alpha * h)))
    return np.inf if worst == 0 else 1 / worst


def error_interval(H, P_star, alpha, *, eps_max=1e6, num_grid=2000):
    r"""The interval :math:`(\epsilon_-, \epsilon_+) \ni 0` of relative errors for
    which the cancelling loop stays stable; ``(0, 0)`` if it is unstable at 0.

    Symmetric :math:`P^*`: exact. With :math:`S^* = H^{1/2} P^* H^{1/2}` and
    :math:`D = \alpha H - S^*`, :math:`S(\epsilon) = S^* + \epsilon D` leaves
    :math:`(0, 2)` where :math:`\det(S^* - c I + \epsilon D) = 0`, :math:`c \in \{0,
    2\}`; :math:`S^* - cI` is definite, so these :math:`\epsilon` are :math:`-1/\mu`
    for the generalized eigenvalues :math:`D v = \mu (S^* - c I) v`. Non-symmetric
    :math:`P^*`: first crossing of :math:`\rho = 1` on a geometric grid of
    ``num_grid`` points up to ``eps_max`` on each side, refined by bisection (windows
    narrower than the grid can be missed).
    """
    h, p, alpha = _check_fragility(H, P_star, alpha)
    # the grid runs from 1e-8 up to eps_max and needs both ends
    eps_max = check_scalar("eps_max", eps_max, low=1e-8, low_open=True)
    num_grid = check_int("num_grid", num_grid, low=2)
    if fragility(h, p, alpha, 0.0) >= 1:
        return (0.0, 0.0)
    if structure.is_symmetric(p):
        r = structure.spd_power(h, 0.5)
        s_star = r @ (0.5 * (p + p.T)) @ r
        d = alpha * h - s_star
        roots = []
        n = h.shape[0]
        for c, sign in ((0.0, 1.0), (2.0, -1.0)):
            b = sign * (s_star - c * np.eye(n))  # positive definite
            mu = scipy.linalg.eigh(d, b, eigvals_only=True)
            mu = mu[np.abs(mu) > 1e-15 * max(1.0, float(np.max(np.abs(mu))))]
            roots.append(-sign / mu)  # det(S* - cI + eps D) = 0
        roots = np.concatenate(roots)
        pos, neg = roots[roots > 0], roots[roots < 0]
        return (
            float(neg.max()) if neg.size else -np.inf,
            float(pos.min()) if pos.size else np.inf,
        )

    def first_crossing(sign):
        grid = sign * np.geomspace(1e-8, eps_max, num_grid)
        unstable = np.asarray(fragility(h, p, alpha, grid)) >= 1
        if not unstable.any():
            return sign * np.inf
        i = int(np.argmax(unstable))
        lo, hi = (0.0 if i == 0 else grid[i - 1]), grid[i]
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            lo, hi = (lo, mid) if fragility(h, p, alpha, mid) >= 1 else (mid, hi)
        return float(hi)

    return (first_crossing(-1.0), first_crossing(1.0))


def tolerated_error(H, P_star, alpha, **options) -> float:
    """The largest ``e`` such that every relative error ``|eps| < e`` keeps the
    cancelling loop stable (``min(-eps_-, eps_+)`` of :func:`error_interval`).

    >>> h = np.diag([1.0, 4.0])
    >>> round(tolerated_error(h, np.linalg.inv(h), 2.0), 12)
    0.142857142857
    """
    lo, hi = error_interval(H, P_star, alpha, **options)
    return float(min(-lo, hi))


class MarginSensitivity(NamedTuple):
    """First-order change of the cancelling loop's spectral radius at ``eps = 0``.

    Attributes:
      rho: the radius at ``eps = 0``.
      undershoot: ``d rho / d eps`` as ``eps -> 0+`` (the learned term too small):
        margin lost per unit of undershoot.
      overshoot: ``d rho / d|eps|`` as ``eps -> 0-`` (too large): margin lost per
        unit of overshoot.
    """

    rho: float
    undershoot: float
    overshoot: float


def margin_sensitivity(H, P_star, alpha, *, rtol=1e-9) -> MarginSensitivity:
    r"""Margin lost per unit of relative error, from first-order perturbation theory.

    For symmetric :math:`P^*`, the eigenvalues of :math:`S(\epsilon) = (1-\epsilon)
    S^* + \alpha\epsilon H` near an eigenvalue :math:`s` of :math:`S^*` with
    eigenvectors :math:`W` move as :math:`s + \epsilon(\alpha\mu - s)`,
    :math:`\mu \in \mathrm{spec}(W^T H W)`; each active branch of
    :math:`\rho = \max|1 - s|` then has slope :math:`\mathrm{sign}(1 - s)(s - \alpha
    \mu)` (and :math:`\pm|s - \alpha\mu|` at :math:`s = 1`). The one-sided
    derivatives of the maximum are the largest (``eps -> 0+``) and smallest
    (``eps -> 0-``) branch slopes. At the upper edge (simple :math:`s = 2`, unit
    eigenvector :math:`u`): ``undershoot`` :math:`= -(2 - \alpha u^T H u)`,
    ``overshoot`` :math:`= 2 - \alpha u^T H u`.

    >>> h = np.diag([1.0, 4.0])
    >>> m = margin_sensitivity(h, np.diag([0.5, 0.5]), 0.25)  # s = (0.5, 2)
    >>> m.rho, m.undershoot, m.overshoot
    (1.0, -1.0, 1.0)
    """
    h, p, alpha = _check_fragility(H, P_star, alpha)
    rtol = check_scalar("rtol", rtol, low=0.0)
    if not structure.is_symmetric(p):
        raise ValueError("P_star: must be symmetric")
    r = structure.spd_power(h, 0.5)
    s, w = np.linalg.eigh(r @ (0.5 * (p + p.T)) @ r)
    dist = np.abs(1 - s)
    rho = float(np.max(dist))
    active = np.flatnonzero(dist >= rho - rtol * max(rho, 1.0))
    plus, minus = [], []
    edges = np.flatnonzero(np.diff(s[active]) > rtol * max(1.0, float(np.max(s)))) + 1
    for group in np.split(active, edges):
        sv = float(np.mean(s[group]))
        wg = w[:, group]
        mu = np.linalg.eigvalsh(wg.T @ h @ wg)
        slopes = sv - alpha * mu
        if abs(1 - sv) <= rtol:
            plus += list(np.abs(slopes))
            minus += list(-np.abs(slopes))
        else:
            branch = np.sign(1 - sv) * slopes
            plus += list(branch)
            minus += list(branch)
    return MarginSensitivity(rho, float(max(plus)), -float(min(minus)))


CLAIM = claim_of(__name__, searches=SEARCHES, breaks=radius_breaks(radius))
