r"""Adaptive nominal terms: a time-varying nominal step :math:`\alpha_t`.

With a schedule :math:`\alpha_0, \alpha_1, \dots` the update
:math:`\phi' = \phi - (\alpha_t I + P)\nabla l` has the time-varying closed loop

.. math:: A_t = A(\alpha_t) = I - (\alpha_t I + P) H, \qquad
   \phi_T - \xi\text{-terms} = A_{T-1} \cdots A_1 A_0 \, \phi_0 ,

so stability of the schedule is a question about *products* of the :math:`A_t`, i.e.
about the joint spectral radius :math:`\hat\rho(\{A(\alpha)\})
= \lim_k \max_{\text{words of length } k} \|A_{i_k}\cdots A_{i_1}\|^{1/k}`,
bracketed by :func:`jsr_bounds`. Stability of every factor is not enough in general.

**P symmetric.** :math:`K_t = \alpha_t I + P` is symmetric, so with
:math:`R = H^{1/2}` each :math:`R A_t R^{-1} = I - R K_t R` is symmetric:
:math:`\|A_t\|_H = \rho(A_t)` in the norm :math:`\|x\|_H = \|H^{1/2} x\|`, a common
quadratic Lyapunov function. Every product of stable factors contracts:
:math:`\|A_{i_k} \cdots A_{i_1}\|_H \le \prod_j \rho(A_{i_j}) < 1`, and the joint
spectral radius of the set equals :math:`\max_i \rho(A_i)`.
The stable set of :math:`\alpha` is the interval
:math:`(-\lambda_{\min}(P),\ \lambda_{\min}(2H^{-1} - P))` (Loewner order, Theorem 1),
so a monotone decay between two stable values never leaves it.

**P commuting with H.** All :math:`A_t` commute, so they are simultaneously
triangularisable: the eigenvalues of a product are products of eigenvalues, and
:math:`\rho(A_{i_k}\cdots A_{i_1}) \le \prod_j \rho(A_{i_j}) < 1`. The stable set is an
intersection of intervals (one per shared eigenpair), hence an interval.

**Any P.** If :math:`\alpha_t \to \alpha_\infty` with :math:`\rho(A(\alpha_\infty)) < 1`
the schedule is asymptotically stable: after some :math:`t_0` the factors lie in a
neighbourhood where one norm contracts them all, so the product decays after a finite
transient (:func:`transient` measures it).

**False without the structure.** For a non-symmetric :math:`P` that does not commute
with :math:`H`: switching between two individually stable steps can diverge
(:func:`counterexample` finds 2x2 and 3x3 cases with :math:`\rho(A_1 A_2) > 1`), and the
stable set of :math:`\alpha` can be disconnected, so that a monotone decay between two
stable values crosses an unstable window (:func:`disconnected_counterexample`).

The exact expected loss of a schedule needs a moment recursion with a different
transition per step (:func:`time_varying_expected_losses`); :func:`compare_schedules`
measures what a decaying schedule buys on a noisy quadratic.

Numerics: products are formed from the balanced factors :math:`H^{1/2} A_t H^{-1/2}`
(one similarity for all, so every word keeps its spectrum; for symmetric ``P`` they are
symmetric contractions and no conditioning of ``H`` leaks in). Stable means
:math:`\rho < 1 + 10^{-9}` (:data:`~stability.lemmas._claim.SLACK`, for rounding);
counterexamples break it by at least ``1e-6`` (``MARGIN``).

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 4.
  G.-C. Rota & G. Strang, "A note on the joint spectral radius", Indag. Math. 22
  (1960).
  R. Jungers, *The Joint Spectral Radius: Theory and Applications*, Springer, 2009,
  Chapter 1 (bounds from products of bounded length, common quadratic norms).
  D. Liberzon, *Switching in Systems and Control*, Birkhäuser, 2003, Section 2.2
  (commuting systems, common Lyapunov functions).
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from stability._validation import (
    as_float_array,
    check_int,
    check_lr,
    check_spd,
    check_square,
)
from stability.lemmas import _claim, _deprecated
from stability.lemmas._claim import DEFAULT_BUDGET, MARGIN, SLACK, claim_of, first_found
from stability.lemmas.samplers import commuting_matrix, random_hessian, sample_size
from stability.lemmas.structure import (
    commutes,
    is_symmetric,
    shared_eigenpairs,
    spd_power,
)
from stability.operators import ClosedLoop
from stability.problems import (
    NoisyQuadratic,
    expected_losses,
    random_rotation,
    schedules,
)

NAME = "adaptive"
TITLE = "Adaptive nominal terms: time-varying alpha_t"
STATEMENT = """\
A_t = I - (alpha_t I + P) H, H SPD, alpha_t >= 0. If P is symmetric, or P commutes
with H, and the schedule's end values min(alpha_t) and max(alpha_t) give stable loops,
then every alpha between them gives a stable loop and every product of the A_t is
stable (P symmetric: a contraction in ||x||_H = ||H^{1/2} x||, so the joint spectral
radius is max_t rho(A_t); commuting: rho of a product is at most the product of the
rho's). For any P, a monotone schedule converging to a stable limit is asymptotically
stable after a finite transient. False for a non-symmetric P not commuting with H:
switching between two stable steps can diverge, and the stable set of alpha can be
disconnected so that a decay crosses an unstable window. The conclusion is checked on
33 steps between the ends and on every product of up to 4 factors drawn from the
schedule's values."""

_WINDOW_MARGIN = 1e-2  # a disconnected stable set, clearly: rho < 0.99 and > 1.01
_WINDOW_GRID = np.linspace(0.0, 4.0, 81)  # the steps a disconnected set is sought on
DEPTH = 4  # longest product the conclusion checks
GRID = 33  # steps between the schedule's ends the conclusion checks
MAX_WORDS = 2000  # cap on the number of products the conclusion forms
SCHEDULE_KINDS = ("constant", "linear", "exponential", "inverse", "step")


class Instance(NamedTuple):
    """``H`` (SPD, ``(n, n)``), ``P`` (``(n, n)``) and the schedule's values
    ``alphas`` (``(m,)``, in schedule order; ``alphas[t]`` is the step at time t)."""

    H: np.ndarray
    P: np.ndarray
    alphas: np.ndarray


def make_instance(*, H, P, alphas) -> Instance:
    """Validated :class:`Instance`; ``ValueError`` names the bad argument.

    >>> inst = make_instance(H=np.diag([1.0, 0.1]), P=np.diag([0.2, 1.0]),
    ...                      alphas=[1.0, 0.5, 0.25])
    >>> all(hypotheses(inst).values()), conclusion(inst)
    (True, True)
    """
    h = check_spd("H", H)
    p = check_square("P", P, n=h.shape[0])
    a = as_float_array("alphas", alphas)
    a = a.reshape(1) if a.ndim == 0 else a
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alphas: expected a non-empty 1-D schedule, got {a.shape}")
    if np.any(a < 0):
        raise ValueError("alphas: nominal steps must be >= 0")
    return Instance(h, p, a)


# ---------------------------------------------------------------------------------
# loops, products and the joint spectral radius


def transitions(H, P, alphas) -> np.ndarray:
    """The closed loops ``A(alpha) = I - (alpha I + P) H`` of every value of
    ``alphas``, shape ``(m, n, n)`` (float64 NumPy)."""
    inst = make_instance(H=H, P=P, alphas=alphas)
    return _transitions(inst.H, inst.P, inst.alphas)


def _transitions(H, P, alphas):
    n = H.shape[0]
    k = alphas[:, None, None] * np.eye(n) + P
    return np.eye(n) - k @ H


def _balanced(H, P, alphas):
    """``H^{1/2} A(alpha) H^{-1/2} = I - H^{1/2} (alpha I + P) H^{1/2}``."""
    n = H.shape[0]
    r = spd_power(H, 0.5)
    k = alphas[:, None, None] * np.eye(n) + P
    return np.eye(n) - r @ k @ r


def _radius(m):
    return np.max(np.abs(np.linalg.eigvals(m)), axis=-1)


def words(matrices, depth):
    """Every product ``M_{i_k} ... M_{i_1}`` of ``1 <= k <= depth`` factors from
    ``matrices`` (``(m, n, n)``): a list whose entry ``k - 1`` has shape
    ``(m**k, n, n)``."""
    depth = check_int("depth", depth, low=1)
    out = [np.asarray(matrices)]
    for _ in range(depth - 1):
        prev = out[-1]
        out.append((out[0][:, None] @ prev[None]).reshape(-1, *prev.shape[1:]))
    return out


def _depth_for(m, depth, cap=MAX_WORDS):
    total, d = 0, 0
    while d < depth and total + m ** (d + 1) <= cap:
        d += 1
        total += m**d
    return max(d, 1)


def jsr_bounds(matrices, depth: int = DEPTH, *, weight=None):
    r"""Bounds on the joint spectral radius of a finite set of matrices:

    .. math:: \max_{k \le d} \max_{|w| = k} \rho(M_w)^{1/k} \;\le\; \hat\rho
        \;\le\; \min_{k \le d} \max_{|w| = k} \|W M_w W^{-1}\|_2^{1/k}.

    Args:
      matrices: shape ``(m, n, n)``.
      depth: longest product ``d`` (``m**d`` words at the last level).
      weight: optional invertible ``W`` (``(n, n)``) defining the norm
        :math:`\|x\|_W = \|W x\|`; ``H^{1/2}`` makes the bounds meet at ``d = 1``
        for the loops of a symmetric ``P``.

    Returns:
      ``(lower, upper)`` floats.

    >>> a = np.array([[[0.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [2.0, 0.0]]])
    >>> [round(b, 6) for b in jsr_bounds(a, 4)]
    [2.0, 2.0]
    """
    mats = as_float_array("matrices", matrices, ndim=3)
    if mats.shape[1] != mats.shape[2] or mats.shape[0] == 0:
        raise ValueError(f"matrices: expected shape (m, n, n), got {mats.shape}")
    check_int("depth", depth, low=1)
    if weight is not None:
        w = check_square("weight", weight, n=mats.shape[1])
        mats = w @ mats @ np.linalg.inv(w)
    lower, upper = 0.0, np.inf
    for k, level in enumerate(words(mats, int(depth)), start=1):
        lower = max(lower, float(np.max(_radius(level))) ** (1 / k))
        upper = min(
            upper, float(np.max(np.linalg.norm(level, 2, axis=(1, 2)))) ** (1 / k)
        )
    return lower, upper


def product_radii(instance: Instance, depth: int = DEPTH) -> list:
    """``rho`` of every product of up to ``depth`` factors drawn from the distinct
    values of the schedule (fewer levels if that would exceed 2000 products): a list
    whose entry ``k - 1`` holds the ``m**k`` radii of the words of length ``k``."""
    values = np.unique(instance.alphas)
    b = _balanced(instance.H, instance.P, values)
    return [_radius(w) for w in words(b, _depth_for(values.size, depth))]


# ---------------------------------------------------------------------------------
# the stable set of alpha


def stable_interval(H, P):
    r"""The exact stable set of the nominal step, ``(lo, hi)`` with ``lo >= 0``,
    for structured ``P``:

    - symmetric: :math:`0 \prec \alpha I + P \prec 2H^{-1}` iff
      :math:`-\lambda_{\min}(P) < \alpha < \lambda_{\min}(2H^{-1} - P)`;
    - commuting with ``H`` and diagonalizable with real eigenvalues: on each shared
      eigenpair :math:`-p_i < \alpha < 2/h_i - p_i`.

    ``None`` if the set is empty; ``ValueError`` for other ``P``.

    >>> stable_interval(np.diag([2.0, 1.0]), np.diag([0.5, -0.25]))
    (0.25, 0.5)
    """
    h = check_spd("H", H)
    p = check_square("P", P, n=h.shape[0])
    if is_symmetric(p):
        ps = 0.5 * (p + p.T)
        lo = -float(np.linalg.eigvalsh(ps)[0])
        hi = float(np.linalg.eigvalsh(2 * np.linalg.inv(h) - ps)[0])
    elif commutes(h, p):
        curv, pv = shared_eigenpairs(h, p)
        lo, hi = float(np.max(-pv)), float(np.min(2 / curv - pv))
    else:
        raise ValueError(
            "P: the stable set is an interval only for symmetric P or P commuting "
            "with H; scan a grid with stable_alphas"
        )
    lo = max(lo, 0.0)
    return (lo, hi) if hi > lo else None


def stable_alphas(H, P, alphas) -> np.ndarray:
    """Whether ``A(alpha)`` is stable (``rho < 1``) for each value of ``alphas``, a
    boolean array: the stable set on a grid, for any ``P``."""
    inst = make_instance(H=H, P=P, alphas=alphas)
    return _radius(_balanced(inst.H, inst.P, inst.alphas)) < 1


# ---------------------------------------------------------------------------------
# the claim


def bounds(instance: Instance) -> dict:
    """The numbers the claim gives: the schedule's range, the largest factor radius
    and the joint spectral radius bounds in the ``H``-norm (``jsr_upper ==
    rho_max`` for symmetric ``P``)."""
    values = np.unique(instance.alphas)
    b = _balanced(instance.H, instance.P, values)
    lower, upper = jsr_bounds(b, _depth_for(values.size, DEPTH))
    return {
        "alpha_min": float(values[0]),
        "alpha_max": float(values[-1]),
        "rho_max": float(np.max(_radius(b))),
        "jsr_lower": lower,
        "jsr_upper": upper,
    }


def hypotheses(instance: Instance) -> dict:
    """Named hypotheses and whether they hold:

    - ``P_symmetric_or_commuting``: ``P`` symmetric or ``PH = HP``;
    - ``ends_stable``: the loops at ``min(alphas)`` and ``max(alphas)`` are stable.
    """
    h, p, a = instance
    ends = np.array([a.min(), a.max()])
    return {
        "P_symmetric_or_commuting": bool(is_symmetric(p) or commutes(h, p)),
        "ends_stable": bool(np.all(_radius(_balanced(h, p, ends)) < 1)),
    }


def conclusion(instance: Instance) -> bool:
    """Every step on a grid of :data:`GRID` values between the schedule's ends (the
    ends included) gives a stable loop, and every product of up to :data:`DEPTH`
    factors drawn from the schedule's values is stable (``rho < 1 + 1e-9``)."""
    h, p, a = instance
    between = np.linspace(a.min(), a.max(), GRID)
    if np.any(_radius(_balanced(h, p, between)) >= 1 + SLACK):
        return False
    return all(bool(np.all(r < 1 + SLACK)) for r in product_radii(instance))


def sample(rng, *, n=None, kappa=None, kind=None, length=None) -> Instance:
    """A random instance satisfying every hypothesis.

    ``H`` with ``n`` (1 to 8) eigenvalues spanning condition number ``kappa`` (up to
    1e6); ``P`` symmetric in a random basis (``kind="symmetric"``) or non-symmetric
    commuting with ``H`` (``"commuting"``, blocks on repeated eigenvalues), built so
    that some nominal step is stable; a schedule of ``length`` (1 to 4) values decaying
    (linearly or geometrically) between two points inside the exact stable interval.
    """
    n, kappa = sample_size(rng, n, kappa)
    kind = ("symmetric", "commuting")[rng.integers(2)] if kind is None else kind
    if length is None:
        length = int(rng.integers(1, 5))
    else:
        length = check_int("length", length, low=1)
    top = 10 ** rng.uniform(-2, 2)
    alpha_c = (2 / top) * rng.uniform(0, 1)
    if kind == "symmetric":
        H, _, _ = random_hessian(rng, n, kappa, top)
        r_inv = spd_power(H, -0.5)
        u = random_rotation(n, rng)
        s = rng.uniform(0.02, 1.98, n)  # spec of H^{1/2} K H^{1/2} at alpha_c
        K = r_inv @ ((u * s) @ u.T) @ r_inv
        P = 0.5 * (K + K.T) - alpha_c * np.eye(n)
    elif kind == "commuting":
        H, h, q = random_hessian(rng, n, kappa, top, repeated=True)
        s = rng.uniform(0.02, 1.98, n)  # (alpha_c + p_i) h_i
        P = commuting_matrix(rng, h, q, s / h - alpha_c)
    else:
        raise ValueError(f"kind: expected 'symmetric' or 'commuting', got {kind!r}")
    lo, hi = stable_interval(H, P)
    f_lo, f_hi = np.sort(rng.uniform(0.02, 0.98, 2))
    a_lo, a_hi = lo + f_lo * (hi - lo), lo + f_hi * (hi - lo)
    if rng.random() < 0.5 and a_lo > 0:
        alphas = np.geomspace(a_hi, a_lo, length)
    else:
        alphas = np.linspace(a_hi, a_lo, length)
    return make_instance(H=H, P=P, alphas=alphas)


DROPS = {"P_symmetric_or_commuting": "sufficiency"}


def _unstructured_pair(rng):
    """A non-normal ``P`` and two steps from its stable set on a coarse grid."""
    n = int(rng.integers(2, 4))
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 2), 1.0)
    P = rng.standard_normal((n, n)) * np.exp(rng.uniform(-2, 1))
    grid = np.linspace(0.0, 3.0, 31)
    ok = np.flatnonzero(_radius(_transitions(H, P, grid)) < 1 - MARGIN)
    if ok.size < 2:
        return None
    i, j = np.sort(rng.choice(ok, 2, replace=False))
    return make_instance(H=H, P=P, alphas=[grid[j], grid[i]])


def _product_diverges(instance, kind):
    """A product of at most :data:`DEPTH` factors has ``rho > 1 + MARGIN``."""
    radii = product_radii(instance, DEPTH)
    return max(float(np.max(r)) for r in radii) > 1 + MARGIN


def counterexample(drop, *, kind=None, seed=0, budget=DEFAULT_BUDGET):
    """Seeded random search for an instance satisfying every hypothesis except
    ``drop`` that breaks the claim. ``"P_symmetric_or_commuting"`` (sufficiency): a
    non-normal ``P`` and a two-value schedule ``(a_1, a_2)``, each loop stable, with a
    product of at most four factors of spectral radius above ``1 + 1e-6`` (so periodic
    switching diverges). Same seed, same instance; None if the budget runs out.

    >>> inst = counterexample("P_symmetric_or_commuting", seed=0)
    >>> hypotheses(inst)["ends_stable"], conclusion(inst)
    (True, False)
    """
    return _claim.counterexample(CLAIM, drop, kind=kind, seed=seed, budget=budget)


def disconnected_counterexample(*, seed=0, budget=5000):
    """Seeded search for a non-symmetric, non-commuting ``P`` whose stable set of
    ``alpha`` is disconnected: an instance with schedule ``(a_hi, a_mid, a_lo)``,
    decaying, whose end values are stable (``rho < 0.99``) while ``a_mid`` is not
    (``rho > 1.01``): a monotone decay between two stable steps crosses an unstable
    window.

    >>> inst = disconnected_counterexample(seed=0)
    >>> stable_alphas(inst.H, inst.P, inst.alphas).tolist()
    [True, False, True]
    """
    check_int("budget", budget, low=1)

    def disconnected(inst):
        return hypotheses(inst)["ends_stable"] and not conclusion(inst)

    return first_found(_window, disconnected, seed=seed, budget=budget)


def _window(rng):
    """A random non-normal ``P`` and, where its stable set on ``_WINDOW_GRID`` has
    an unstable window between two stable steps, the schedule ``(a_hi, a_mid,
    a_lo)`` across the window's worst point; None otherwise."""
    n = int(rng.integers(2, 4))
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 2), 1.0)
    P = rng.standard_normal((n, n)) * np.exp(rng.uniform(-2, 1))
    grid = _WINDOW_GRID
    r = _radius(_transitions(H, P, grid))
    ok = np.flatnonzero(r < 1 - _WINDOW_MARGIN)
    if ok.size < 2:
        return None
    inside = np.arange(ok[0], ok[-1] + 1)
    bad = inside[r[inside] > 1 + _WINDOW_MARGIN]
    if bad.size == 0:
        return None
    mid = bad[np.argmax(r[bad])]
    hi, lo = ok[ok > mid][0], ok[ok < mid][-1]
    return make_instance(H=H, P=P, alphas=grid[[hi, mid, lo]])


# ---------------------------------------------------------------------------------
# schedules, transients and the exact expected loss of a time-varying loop


def decay_schedule(start, end, num_steps, kind: str = "exponential") -> np.ndarray:
    """A nominal-step schedule of ``num_steps`` values from ``start`` to ``end``.

    ``kind``: ``"constant"`` (``start`` throughout), ``"linear"``, ``"exponential"``
    (geometric), ``"inverse"`` (``start / (1 + c t)`` reaching ``end`` at the last
    step) or ``"step"`` (``start`` for the first half, ``end`` after).

    >>> decay_schedule(1.0, 0.25, 3).tolist()
    [1.0, 0.5, 0.25]
    """
    start = check_lr("start", start)
    end = check_lr("end", end)
    check_int("num_steps", num_steps, low=1)
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"kind: expected one of {SCHEDULE_KINDS}, got {kind!r}")
    t = np.arange(num_steps, dtype=float)
    last = max(num_steps - 1, 1)
    if kind == "constant":
        return np.full(num_steps, start)
    if kind == "linear":
        return start + (end - start) * t / last
    if kind == "step":
        return np.where(t < num_steps / 2, start, end)
    if start == 0 or end == 0:
        name = "start" if start == 0 else "end"
        raise ValueError(f"{name}: a {kind!r} schedule needs start, end > 0")
    if kind == "exponential":
        return start * (end / start) ** (t / last)
    return start / (1 + (start / end - 1) * t / last)


def schedule_loop(H, P, alphas) -> ClosedLoop:
    """The time-varying loop of a schedule: ``transition`` of shape ``(T, n, n)``
    holding ``A(alpha_t)`` and ``noise_gain`` ``(T, n, n)`` holding ``I - A(alpha_t)``
    (what
    :func:`stability.problems.schedules.time_varying_expected_losses` takes)."""
    inst = make_instance(H=H, P=P, alphas=alphas)
    a = _transitions(inst.H, inst.P, inst.alphas)
    return ClosedLoop(a, np.eye(inst.H.shape[0]) - a)


def transient(H, P, alphas) -> np.ndarray:
    r"""Spectral norms :math:`\|A_{t-1} \cdots A_0\|_2` of the state-transition
    products of a schedule, ``t = 0 .. T`` (shape ``(T + 1,)``, starting at 1): the
    transient amplification of the mean error :math:`E\phi_t = A_{t-1}\cdots A_0
    \phi_0`."""
    a = transitions(H, P, alphas)
    out = [1.0]
    phi = np.eye(a.shape[1])
    for m in a:
        phi = m @ phi
        out.append(float(np.linalg.norm(phi, 2)))
    return np.asarray(out)


class ScheduleComparison(NamedTuple):
    """Exact expected losses of a schedule against its two constant end points.

    Attributes:
      steps: ``0 .. T - 1``.
      schedule: the nominal steps ``alpha_t``.
      scheduled: :math:`E l_t` along the schedule.
      constant_start, constant_end: :math:`E l_t` at the constant steps
        ``schedule[0]`` and ``schedule[-1]``.
      radii: :math:`\\rho(A(\\alpha_t))` per step.
    """

    steps: np.ndarray
    schedule: np.ndarray
    scheduled: np.ndarray
    constant_start: np.ndarray
    constant_end: np.ndarray
    radii: np.ndarray

    @property
    def final(self) -> dict:
        """The last expected loss of each run."""
        return {
            "scheduled": float(self.scheduled[-1]),
            "constant_start": float(self.constant_start[-1]),
            "constant_end": float(self.constant_end[-1]),
        }

    @property
    def mean(self) -> dict:
        """The average expected loss (the meta-loss) of each run."""
        return {
            "scheduled": float(np.mean(self.scheduled)),
            "constant_start": float(np.mean(self.constant_start)),
            "constant_end": float(np.mean(self.constant_end)),
        }


def compare_schedules(problem: NoisyQuadratic, P, schedule) -> ScheduleComparison:
    """The exact expected losses of a nominal-step ``schedule`` with learned term
    ``P`` on ``problem``, against constant steps at its first and last values (from
    :func:`stability.problems.expected_losses`).

    A decaying schedule takes the fast early progress of a large step and the low
    noise floor of a small one.

    >>> from stability.problems import NoisyQuadratic
    >>> p = NoisyQuadratic.from_eigenvalues([1.0, 0.1], noise_var=0.1, x0=[3.0, 3.0])
    >>> c = compare_schedules(p, np.zeros((2, 2)), decay_schedule(1.5, 0.1, 200))
    >>> c.final["scheduled"] < c.final["constant_start"]
    True
    >>> c.mean["scheduled"] < c.mean["constant_end"]
    True
    """
    h = problem.hessian
    inst = make_instance(H=h, P=P, alphas=schedule)
    T = int(inst.alphas.size)
    scheduled = schedules.time_varying_expected_losses(
        problem, schedule_loop(h, inst.P, inst.alphas)
    )
    ends = []
    for alpha in (inst.alphas[0], inst.alphas[-1]):
        a = _transitions(h, inst.P, np.array([alpha]))[0]
        loop = ClosedLoop(jnp.asarray(a), jnp.asarray(np.eye(h.shape[0]) - a))
        ends.append(np.asarray(expected_losses(problem, loop, T, method="dense")))
    radii = _radius(_balanced(h, inst.P, inst.alphas))
    return ScheduleComparison(
        np.arange(T), inst.alphas, np.asarray(scheduled), ends[0], ends[1], radii
    )


def __getattr__(name):
    return _deprecated.moved(__name__, name)


CLAIM = claim_of(
    __name__,
    searches={"P_symmetric_or_commuting": _unstructured_pair},
    breaks=_product_diverges,
)
