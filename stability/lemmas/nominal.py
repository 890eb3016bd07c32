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

**The seed summary's wording** of Theorem 1 is read two ways in
:mod:`stability.lemmas.seed_wording`: false literally, Theorem 1 reparametrised.

Numerics: the conclusion is :math:`\rho(A) \le 1 + 10^{-9}` (:data:`SLACK`). It is
decided in float64 when the float radius is farther from :math:`1 + 10^{-9}` than its
error bar (``eigvalsh`` of :math:`S` for exactly symmetric :math:`P`; otherwise
``eig`` of :math:`A` with a Bauer--Fike bar from the eigenvector condition number),
and otherwise exactly: :math:`A` built from the float inputs is a rational matrix, and
the Schur--Cohn test on its exact characteristic polynomial decides whether every
eigenvalue lies inside :math:`|z| < 1 + 10^{-9}` (:mod:`stability.lemmas._exact`).

The hypotheses are three-valued (:func:`hypothesis_status`): ``"holds"`` only with a
margin that provably covers the rounding, ``"fails"`` only by such a margin,
``"undecided"`` in between (never counted as holding). A tolerance on "commutes" or
"diagonalizable" cannot stand in for the hypothesis: near a defective eigenvalue a
perturbation of size :math:`d` moves eigenvalues by about :math:`\sqrt d`, and
:math:`H = \mathrm{diag}(1, 1 - 5\cdot 10^{-10})`, :math:`\alpha = 0`, a nearly
defective :math:`P` with eigenvalues 2 and 1.999999 commutes to :math:`1.2\cdot
10^{-10}` relative and has :math:`\rho = 1.0000219`. So the structure hypothesis is
certified (:func:`structure`): it holds when :math:`P` is exactly symmetric, or lies
within a perturbation of a symmetric :math:`P` or of a :math:`P` exactly commuting with
(a block-clustered) :math:`H` whose Bauer--Fike shift of the loop's eigenvalues,
:math:`\beta = \kappa(V) \|\Delta\|`, is at most :math:`10^{-9}/2`; the bounds hold with
tolerance :math:`t = 10^{-9}/(4L)` beyond their error bars. Then every eigenvalue of
:math:`A` is within :math:`\beta` of some :math:`1 - (\alpha + p_i)\bar h_i` with
:math:`(\alpha + p_i)\bar h_i \in [-tL, 2 + tL]`, so :math:`\rho(A) \le 1 + tL + \beta
< 1 + 10^{-9}`: whatever :func:`hypothesis_status` accepts satisfies the conclusion
exactly. "Diagonalizable with real eigenvalues" (the paper's ``P_real_spectrum``)
holds when the eigenvalues are certified real and distinct (discs of the Bauer--Fike
radius pairwise disjoint and meeting the real axis), fails when one is certified
non-real, and is undecided otherwise (a cluster may be a Jordan block).

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Theorem 1.
  R. A. Horn & C. R. Johnson, *Matrix Analysis*, 2nd ed., Cambridge University Press,
  2013, Theorem 1.3.21 (commuting diagonalizable matrices) and Section 7.7 (Loewner
  order).
"""

from fractions import Fraction
from typing import NamedTuple

import mpmath
import numpy as np

from stability._validation import (
    check_scalar,
    check_spd,
    check_square,
)
from stability.analyses import spectral_radius
from stability.lemmas import _claim, _deprecated, _exact, samplers
from stability.lemmas._claim import (
    DEFAULT_BUDGET,
    FAILS,
    HOLDS,
    SLACK,
    UNDECIDED,
    claim_of,
    radius_breaks,
    verdict,
)
from stability.lemmas.structure import (
    commutes,
    is_symmetric,
    real_spectrum,
    shared_eigenpairs,
    spd_power,
    spd_status,
    structure,
)
from stability.operators import nominal_closed_loop
from stability.problems import random_rotation

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

BOUND_RTOL = 1e-12  # rounding tolerance on the eigenvalue bounds
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


def status_on(H, P, alpha, *, h_err=0.0) -> dict:
    """Theorem 1's hypotheses on ``(H, P, alpha)``, three-valued (the bounds with
    tolerance ``SLACK / (4 L)`` beyond their error bars); Lemma 2 calls it on
    :math:`H^{1/2}`."""
    s = structure(H, P, alpha, h_err=h_err)
    top = float(np.linalg.eigvalsh(H)[-1])
    t = SLACK / (4 * top)
    lo, hi = -alpha, 2 / top - alpha
    err = s.lam_err + _exact.rounding(H.shape[0]) * (abs(lo) + abs(hi))
    return {
        "H_spd": spd_status(H),
        "P_real_spectrum": s.real,
        "P_symmetric_or_commuting": s.status,
        "lower_bound": verdict(s.lam[0] - lo, err, -t),
        "upper_bound": verdict(hi - s.lam[-1], err, -t),
    }


def hypothesis_status(instance: Instance) -> dict:
    """Named hypotheses of Theorem 1, each ``"holds"``, ``"fails"`` or
    ``"undecided"`` within rounding (see the module's numerics paragraph):

    - ``H_spd``: H symmetric positive definite;
    - ``P_real_spectrum``: P diagonalizable with real eigenvalues (the paper's);
    - ``P_symmetric_or_commuting``: P symmetric, or P commutes with H (and has a real
      spectrum) — the hypothesis the paper omits; certified by :func:`structure`;
    - ``lower_bound``: ``-alpha <= lambda_min(P)``;
    - ``upper_bound``: ``lambda_max(P) <= 2/L - alpha``.
    """
    return status_on(instance.H, instance.P, instance.alpha)


def hypotheses(instance: Instance) -> dict:
    """Each hypothesis of :func:`hypothesis_status` and whether it holds (undecided
    counts as not holding)."""
    return {k: v == HOLDS for k, v in hypothesis_status(instance).items()}


def _float_loop_radius(H, P, alpha):
    """``(rho, err)`` in float64: ``eigvalsh`` of ``S`` for exactly symmetric ``H``
    and ``P``, else ``eig`` of the dense loop (:func:`stability.lemmas._exact.
    float_radius`)."""
    n = H.shape[0]
    k = alpha * np.eye(n) + P
    if np.array_equal(P, P.T) and np.array_equal(H, H.T):
        r = spd_power(H, 0.5)
        s = np.linalg.eigvalsh(r @ k @ r)
        w = np.linalg.eigvalsh(H)
        # the root is exact for H + E, ||E|| ~ eps L: by Ostrowski the eigenvalues of
        # S move by a relative ||H^{-1/2} E H^{-1/2}|| ~ eps cond(H)
        err = _exact.rounding(n) * (
            np.linalg.norm(k) * w[-1] + 1 + w[-1] / w[0] * np.max(np.abs(s))
        )
        return float(np.max(np.abs(1 - s))), err
    return _exact.float_radius(np.eye(n) - k @ H)


def _exact_loop(instance):
    n = instance.H.shape[0]
    return np.eye(n) - (instance.alpha * np.eye(n) + instance.P) @ instance.H


def radius(instance: Instance) -> float:
    """:math:`\\rho(A)` of the instance: ``eigvalsh`` of ``S`` for exactly symmetric
    ``P`` (relative error at most about ``eps cond(H)``, Ostrowski); otherwise
    float64 ``eig`` of ``A`` when its Bauer--Fike error bar is below
    :math:`10^{-12}`, else 50-digit eigenvalues of the exact ``A`` (a nearly
    defective loop, where float ``eig`` is off by about the square root of the
    rounding)."""
    rho, err = _float_loop_radius(instance.H, instance.P, instance.alpha)
    if np.array_equal(instance.P, instance.P.T) or err <= 1e-12 * max(rho, 1.0):
        return rho
    return _mp_radius(instance.H, instance.P, instance.alpha)


@_exact.with_digits
def _mp_radius(H, P, alpha):
    n = H.shape[0]
    k = _exact.mp_matrix(alpha * np.eye(n)) + _exact.mp_matrix(P)
    return _exact.mp_radius(mpmath.eye(n) - k * _exact.mp_matrix(H))


def conclusion_status(instance: Instance) -> str:
    """``rho(A) <= 1 + SLACK``: in float64 when the float radius is farther from the
    threshold than its error bar, else exactly (Schur--Cohn on the rational
    characteristic polynomial of ``A``; the threshold circle itself counts as
    failing). Never undecided."""
    rho, err = _float_loop_radius(instance.H, instance.P, instance.alpha)
    v = verdict(1 + SLACK - rho, err)
    if v != UNDECIDED:
        return v
    target = Fraction(1) + Fraction(SLACK)
    return HOLDS if _exact.exact_radius_below(_exact_loop(instance), target) else FAILS


def exact_conclusion(instance: Instance) -> bool:
    """``rho(A) < 1 + SLACK`` in exact rational arithmetic, with no float shortcut
    (the reference :func:`stability.lemmas.audit` checks against)."""
    target = Fraction(1) + Fraction(SLACK)
    return _exact.exact_radius_below(_exact_loop(instance), target)


def conclusion(instance: Instance) -> bool:
    """``rho(A) <= 1`` up to a slack of 1e-9, decided exactly near the threshold
    (:func:`conclusion_status`)."""
    return conclusion_status(instance) == HOLDS


# ---------------------------------------------------------------------------------
# sampling and searches


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
    n, kappa, kind, boundary = samplers.sample_options(
        rng, n, kappa, kind, SAMPLE_KINDS, boundary
    )
    top, alpha = _scale_and_step(rng)
    H, h, q = samplers.random_hessian(rng, n, kappa, top, repeated=kind == "commuting")
    p = samplers.draw_in_interval(rng, -alpha, 2 / top - alpha, n, boundary)
    if kind == "symmetric":
        r = random_rotation(n, rng)
        P = (r * p) @ r.T
    elif kind == "shared_basis":
        P = (q * p) @ q.T
    else:
        P = samplers.commuting_matrix(rng, h, q, p)
    if kind != "commuting":
        P = 0.5 * (P + P.T)
    return make_instance(H=H, P=P, alpha=alpha)


def _near_bound(rng, lo, hi, n):
    """``n`` values in ``[lo, hi]``, each on a bound or within a relative 1e-6 of
    one about half the time."""
    p = rng.uniform(lo, hi, n)
    side = np.where(rng.random(n) < 0.5, lo, hi)
    close = side + np.sign((lo + hi) / 2 - side) * (hi - lo) * 10 ** rng.uniform(
        -12, -6, n
    )
    pick = rng.random(n)
    return np.where(pick < 0.3, side, np.where(pick < 0.6, close, p))


def sample_nearly_repeated(rng) -> Instance:
    """A hard instance: curvatures repeated up to a relative ``1e-12`` to ``1e-6``
    and a non-symmetric ``P`` commuting with the *unperturbed* ``H`` (so it commutes
    with the drawn ``H`` only approximately), eigenvalues on or near the bounds."""
    n = int(rng.integers(2, 7))
    top = 10 ** rng.uniform(-2, 2)
    alpha = 0.0 if rng.random() < 0.3 else (2 / top) * rng.uniform(0, 1.5)
    h = samplers.random_curvatures(rng, n, 10 ** rng.uniform(0, 4), top, repeated=True)
    q = random_rotation(n, rng)
    p = _near_bound(rng, -alpha, 2 / top - alpha, n)
    P = samplers.commuting_matrix(rng, h, q, p)
    bumped = h * (1 - np.where(rng.random(n) < 0.5, 10 ** rng.uniform(-12, -6, n), 0))
    bumped[0] = top
    H = (q * bumped) @ q.T
    return make_instance(H=0.5 * (H + H.T), P=P, alpha=alpha)


def sample_nearly_defective(rng) -> Instance:
    """A hard instance (the family of the nominal/Lemma 2 counterexamples to loose
    tolerances): a 2x2 block of ``P`` with eigenvalues ``p`` and ``p - d`` (``d``
    from 1e-9 to 1e-3 of the bound width, ``p`` on or next to a bound) and
    eigenvector condition number about ``1/d``, on two curvatures equal up to a
    relative ``0`` to ``1e-8``; further directions of ``H`` with diagonal ``P``."""
    n = int(rng.integers(2, 5))
    top = 10 ** rng.uniform(-1, 1)
    alpha = 0.0 if rng.random() < 0.3 else (2 / top) * rng.uniform(0, 1)
    lo, hi = -alpha, 2 / top - alpha
    width = hi - lo
    d = width * 10 ** rng.uniform(-9, -3)
    edge = hi if rng.random() < 0.7 else lo + d
    p = edge - d * rng.uniform(0, 2) * (rng.random() < 0.5)
    v = np.array([[1.0, 1.0], [0.0, d / width]])
    block = v @ np.diag([p, p - d]) @ np.linalg.inv(v)
    rest = samplers.random_curvatures(rng, n, 10 ** rng.uniform(0, 3), top)[: n - 2]
    gap = 0.0 if rng.random() < 0.3 else 10 ** rng.uniform(-12, -8)
    h = np.concatenate([[top, top * (1 - gap)], rest])
    B = np.zeros((n, n))
    B[:2, :2] = block
    B[2:, 2:] = np.diag(rng.uniform(lo, hi, n - 2))
    q = np.eye(n) if rng.random() < 0.5 else random_rotation(n, rng)
    H = (q * h) @ q.T
    return make_instance(H=0.5 * (H + H.T), P=q @ B @ q.T, alpha=alpha)


HARD_FAMILIES = {
    "nearly_repeated": sample_nearly_repeated,
    "nearly_defective": sample_nearly_defective,
}


DROPS = {
    "P_symmetric_or_commuting": "sufficiency",
    "lower_bound": "sufficiency",
    "upper_bound": "necessity",
}


def _search_symmetric_drop(rng):
    """Non-normal 2x2 P with real eigenvalues strictly inside the bounds."""
    n = 2
    top = 10 ** rng.uniform(-1, 1)
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3), top)
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
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3), top)
    alpha = (2 / top) * rng.uniform(0, 1)
    lo, hi = -alpha, 2 / top - alpha
    r = random_rotation(n, rng)
    p = rng.uniform(lo - (hi - lo), hi, n)
    P = (r * p) @ r.T
    return make_instance(H=H, P=0.5 * (P + P.T), alpha=alpha)


def _search_upper_drop(rng):
    """Symmetric P near H's eigenbasis, each eigenvalue inside its own direction's
    bound ``2/h_i - alpha`` (looser than ``2/L - alpha`` away from the top)."""
    n = int(rng.integers(2, 4))
    top = 10 ** rng.uniform(-1, 1)
    H, h, q = samplers.random_hessian(rng, n, 10 ** rng.uniform(1, 4), top)
    alpha = (2 / top) * rng.uniform(0, 1)
    p = rng.uniform(-alpha, 2 / h - alpha)
    tilt = random_rotation(n, rng)
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
    return _claim.counterexample(CLAIM, drop, kind=kind, seed=seed, budget=budget)


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


# ---------------------------------------------------------------------------------
# other sufficient forms


def weyl_margins(H, P, alpha) -> tuple[float, float]:
    r"""The Weyl-type sufficient form for symmetric ``P``: ``(lower, upper)`` margins
    of :math:`\lambda_{\min}(H^{1/2} P H^{1/2}) \ge -\alpha \lambda_{\min}(H)` and
    :math:`\lambda_{\max}(H^{1/2} P H^{1/2}) \le 2 - \alpha L` (both hold iff both
    margins are :math:`\ge 0`). Then :math:`\rho(A) \le 1`: by Weyl's inequalities
    :math:`S = \alpha H + H^{1/2} P H^{1/2}` has :math:`\lambda_{\min}(S) \ge \alpha
    \lambda_{\min}(H) + \lambda_{\min}(H^{1/2}PH^{1/2}) \ge 0` and
    :math:`\lambda_{\max}(S) \le \alpha L + \lambda_{\max}(H^{1/2}PH^{1/2}) \le 2`.
    The naive :math:`-\alpha L \le \lambda(H^{1/2}PH^{1/2})` is not enough
    (:func:`naive_weyl_counterexample`): the shift :math:`\alpha H` is only
    :math:`\alpha\lambda_{\min}(H)` in the direction of least curvature.

    >>> lo, hi = weyl_margins(np.diag([1.0, 0.1]), np.diag([0.5, 1.0]), 0.5)
    >>> round(lo, 6), round(hi, 6)
    (0.15, 1.0)
    """
    h = check_spd("H", H)
    p = check_square("P", P, n=h.shape[0])
    if not np.array_equal(p, p.T):
        raise ValueError("P: must be symmetric")
    alpha = check_scalar("alpha", alpha, low=0.0)
    r = spd_power(h, 0.5)
    m = np.linalg.eigvalsh(r @ p @ r)
    w = np.linalg.eigvalsh(h)
    return float(m[0] + alpha * w[0]), float(2 - alpha * w[-1] - m[-1])


def naive_weyl_counterexample() -> Instance:
    r"""``H = diag(1, 0.1)``, ``alpha = 1``, ``P = diag(0, -10)``: the eigenvalues of
    :math:`H^{1/2} P H^{1/2} = \mathrm{diag}(0, -1)` lie in :math:`[-\alpha L,
    2 - \alpha L] = [-1, 1]`, yet :math:`S = \mathrm{diag}(1, -0.9)` and
    :math:`\rho(A) = 1.9`.

    >>> radius(naive_weyl_counterexample())
    1.9
    """
    return make_instance(H=np.diag([1.0, 0.1]), P=np.diag([0.0, -10.0]), alpha=1.0)


def contraction_norm(H, P, alpha) -> float:
    r""":math:`\|I - H^{1/2} K H^{1/2}\|_2`, for any ``P``. At most 1 is sufficient
    for :math:`\rho(A) \le 1` (below 1 for :math:`< 1`): :math:`H^{1/2} A H^{-1/2} = I
    - H^{1/2} K H^{1/2}`, and a spectral radius is at most any induced norm. Not
    necessary: a non-normal ``A`` can be stable with a norm above 1.

    >>> round(contraction_norm(np.eye(2), [[0.5, 0.4], [-0.4, 0.5]], 0.0), 6)
    0.640312
    """
    h = check_spd("H", H)
    p = check_square("P", P, n=h.shape[0])
    alpha = check_scalar("alpha", alpha, low=0.0)
    r = spd_power(h, 0.5)
    n = h.shape[0]
    return float(np.linalg.norm(np.eye(n) - r @ (alpha * np.eye(n) + p) @ r, 2))


def __getattr__(name):
    return _deprecated.moved(__name__, name)


CLAIM = claim_of(__name__, searches=SEARCHES, breaks=radius_breaks(radius))
