r"""Lemma 2: output preconditioning, idealised as :math:`H^{-1/2}`.

The update :math:`\phi' = \phi - C(\alpha I + P)\nabla l` with the preconditioner
applied to the output, :math:`C = H^{-1/2}` (Adam's :math:`1/\sqrt{v}` at its ideal),
has closed loop

.. math:: A = I - H^{-1/2} K H, \qquad K = \alpha I + P,

and :math:`H^{1/2} A H^{-1/2} = I - K H^{1/2}`: it is Theorem 1
(:mod:`stability.lemmas.nominal`) with :math:`H` replaced by :math:`H^{1/2}`, whose top
eigenvalue is :math:`\sqrt L`. So, for :math:`P` symmetric or commuting with :math:`H`
(diagonalizable, real eigenvalues),

.. math:: -\alpha \le \lambda_{\min}(P), \quad \lambda_{\max}(P) \le 2/\sqrt{L} -
   \alpha \quad\Longrightarrow\quad \rho(A) \le 1,

exactly per shared eigenpair :math:`0 < (\alpha + p_i)\sqrt{h_i} < 2`. The upper bound
is looser than Theorem 1's :math:`2/L - \alpha` only when :math:`L > 1`
(:math:`2/\sqrt L > 2/L \iff L > 1`), and the lower bound is still needed: the
preconditioner does nothing for a negative :math:`K`. The same counterexamples as
Theorem 1 apply when the hypothesis on :math:`P` is dropped.

**Input versus output.** Input preconditioning :math:`A_{\text{in}} = I - K C H`
(the learned term sees preconditioned gradients) against output preconditioning
:math:`A_{\text{out}} = I - C K H` (:func:`input_vs_output`). Their spectra coincide

- when :math:`C = H^{-1/2}` exactly: :math:`I - K H^{1/2}` and :math:`I - H^{-1/2} K H`
  are similar (through :math:`H^{1/2}`);
- when :math:`C` commutes with :math:`H`, for every :math:`P`:
  :math:`\mathrm{spec}(CKH) = \mathrm{spec}(KHC) = \mathrm{spec}(KCH)`;
- when :math:`C` and :math:`K` are both symmetric, whatever :math:`H`:
  :math:`\mathrm{spec}(KCH) = \mathrm{spec}((KCH)^T) = \mathrm{spec}(HCK) =
  \mathrm{spec}(CKH)`.

So "output preconditioning is more robust" is false as a spectral statement of the
linear model. They can differ only with an approximate, non-commuting :math:`C` and a
non-symmetric :math:`K` (e.g. Adam's diagonal :math:`C = \mathrm{diag}(H)^{-1/2}`
with a non-normal learned term), or a non-symmetric :math:`C`; and then which one is
stable depends on which side the error sits: for symmetric :math:`K`, input
preconditioning with :math:`C` has exactly the spectrum of output preconditioning with
:math:`C^T`, so an error :math:`E` placed outside (:math:`C = E H^{-1/2}`) for one is
placed inside (:math:`C^T = H^{-1/2} E^T`) for the other. :func:`comparison_search`
finds instances of both directions (one stable, the other not). Any real advantage of
output preconditioning comes from the nonlinear, normalised MLP, not from this model.

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Lemma 2.
  R. A. Horn & C. R. Johnson, *Matrix Analysis*, 2nd ed., 2013, Theorem 1.3.22
  (:math:`AB` and :math:`BA` have the same eigenvalues).
"""

import functools
from typing import NamedTuple

import mpmath
import numpy as np

from stability._validation import check_int, check_scalar, check_spd, check_square
from stability.analyses import spectral_radius
from stability.lemmas import _claim, _exact, nominal, samplers
from stability.lemmas._claim import (
    DEFAULT_BUDGET,
    HOLDS,
    MARGIN,
    SLACK,
    UNDECIDED,
    claim_of,
    first_found,
    radius_breaks,
    verdict,
)
from stability.lemmas.structure import spd_power
from stability.problems import random_rotation

NAME = "preconditioning"
TITLE = "Lemma 2: output preconditioning idealised as H^{-1/2}"
STATEMENT = """\
A = I - H^{-1/2} (alpha I + P) H is similar to I - (alpha I + P) H^{1/2}: Theorem 1 with
H replaced by H^{1/2}. For P symmetric, or commuting with H and diagonalizable with real
eigenvalues: -alpha <= lambda_min(P) and lambda_max(P) <= 2/sqrt(L) - alpha imply
rho(A) <= 1 (strict: < 1). The upper bound is looser than Theorem 1's only when L > 1;
the lower bound is still needed. Input preconditioning I - (alpha I + P) C H has the
same spectrum as output preconditioning for C = H^{-1/2}, for any C commuting with H,
and for symmetric C and P; with an approximate preconditioner either can win, depending
on which side the error sits."""

Instance = nominal.Instance
make_instance = nominal.make_instance
WINNERS = ("output", "input")
PRECONDITIONERS = ("diagonal", "left_error", "right_error")


def ideal_preconditioner(H):
    """:math:`H^{-1/2}`."""
    return spd_power(check_spd("H", H), -0.5)


def diagonal_preconditioner(H):
    """:math:`\\mathrm{diag}(H)^{-1/2}`: the diagonal approximation an Adam-like
    second moment estimates."""
    return np.diag(np.diag(check_spd("H", H)) ** -0.5)


def _root(instance):
    """:math:`H^{1/2}` computed at 50 digits from the exact float ``H`` and rounded
    to float64 (exactly symmetric)."""
    return _root_of(instance.H.tobytes(), instance.H.shape[0])


@functools.lru_cache(maxsize=256)
def _root_of(data, n):
    H = np.frombuffer(data).reshape(n, n)
    with mpmath.workdps(_exact.DIGITS):
        r = np.array(_exact.mp_sqrt_spd(H).tolist(), dtype=float)
    r = 0.5 * (r + r.T)
    r.setflags(write=False)
    return r


def _root_error(instance):
    """Bound on the distance of the float :math:`H^{1/2}` from the exact one: the
    rounding of its entries (and the symmetrisation) to float64."""
    r = _root(instance)
    return 2 * _exact.EPS * np.linalg.norm(r)


def bounds(instance) -> dict:
    """Lemma 2's bounds, Theorem 1's upper bound for comparison, and the extreme
    eigenvalues of P."""
    _, lam = nominal.real_spectrum(instance.P)
    top = float(np.linalg.eigvalsh(instance.H)[-1])
    return {
        "lower": -instance.alpha,
        "upper": 2 / np.sqrt(top) - instance.alpha,
        "upper_theorem1": 2 / top - instance.alpha,
        "lambda_min_P": float(lam[0]),
        "lambda_max_P": float(lam[-1]),
    }


def hypothesis_status(instance) -> dict:
    """Named hypotheses of Lemma 2, three-valued (Theorem 1's
    :func:`~stability.lemmas.nominal.status_on` on the float :math:`H^{1/2}`, its
    distance from the exact root included in the certificate):

    - ``H_spd``;
    - ``P_real_spectrum``: P diagonalizable with real eigenvalues;
    - ``P_symmetric_or_commuting``: P symmetric, or commuting with H (real spectrum);
    - ``lower_bound``: ``-alpha <= lambda_min(P)``;
    - ``upper_bound``: ``lambda_max(P) <= 2/sqrt(L) - alpha``.
    """
    # Theorem 1 on H^{1/2}: P commutes with H iff it commutes with H^{1/2}
    status = nominal.status_on(
        _root(instance), instance.P, instance.alpha, h_err=_root_error(instance)
    )
    status["H_spd"] = nominal.hypothesis_status(
        nominal.Instance(instance.H, np.zeros_like(instance.P), 0.0)
    )["H_spd"]
    return status


def hypotheses(instance) -> dict:
    """Each hypothesis of :func:`hypothesis_status` and whether it holds (undecided
    counts as not holding)."""
    return {k: v == HOLDS for k, v in hypothesis_status(instance).items()}


def _float_radius(instance):
    """``(rho, err)`` of the similar loop ``I - K H^{1/2}`` in float64, the error bar
    including the float root's distance from the exact one."""
    n = instance.H.shape[0]
    k = instance.alpha * np.eye(n) + instance.P
    root = _root(instance)
    if np.array_equal(instance.P, instance.P.T):
        s = np.linalg.eigvalsh(spd_power(root, 0.5) @ k @ spd_power(root, 0.5))
        rho = float(np.max(np.abs(1 - s)))
        cond = np.sqrt(np.linalg.cond(root))
        # Ostrowski: the float fourth root is exact for a root perturbed by a
        # relative eps cond(root) (see nominal._float_loop_radius)
        err = _exact.rounding(n) * (
            np.linalg.norm(k) * np.linalg.norm(root) + 1 + cond**2 * np.max(np.abs(s))
        )
    else:
        w, v = np.linalg.eig(np.eye(n) - k @ root)
        rho, cond = float(np.max(np.abs(w))), np.linalg.cond(v)
        err = cond * _exact.rounding(n) * (np.linalg.norm(k) * np.linalg.norm(root) + 1)
    err = err + cond * np.linalg.norm(k) * _root_error(instance)
    return rho, float(err) if np.isfinite(err) else np.inf


@_exact.with_digits
def _mp_loop(instance):
    """``I - K H^{1/2}`` at 50 digits, the root from the exact float ``H``."""
    n = instance.H.shape[0]
    k = _exact.mp_matrix(instance.alpha * np.eye(n)) + _exact.mp_matrix(instance.P)
    return mpmath.eye(n) - k * _exact.mp_sqrt_spd(instance.H)


def radius(instance) -> float:
    """:math:`\rho(I - H^{-1/2} K H)`, from the similar ``I - K H^{1/2}``: float64
    when its error bar is below :math:`10^{-12}`, else from 50-digit eigenvalues
    (the root computed at 50 digits from the exact float ``H``)."""
    rho, err = _float_radius(instance)
    if np.array_equal(instance.P, instance.P.T) or err <= 1e-12 * max(rho, 1.0):
        return rho
    with mpmath.workdps(_exact.DIGITS):
        return _exact.mp_radius(_mp_loop(instance))


def conclusion_status(instance) -> str:
    """``rho(A) <= 1 + SLACK``: float64 when the float radius is farther from the
    threshold than its error bar, else at 50 digits (:func:`exact_status`)."""
    rho, err = _float_radius(instance)
    v = verdict(1 + SLACK - rho, err)
    return v if v != UNDECIDED else exact_status(instance)


@_exact.with_digits
def exact_status(instance) -> str:
    """``rho(A) < 1 + SLACK`` at 50 digits with no float shortcut, the root from the
    exact float ``H``: for exactly symmetric ``P`` the eigenvalues of the symmetric
    :math:`H^{1/4} K H^{1/4}` (``mpmath.eigsy``, error below :math:`10^{-40}`),
    otherwise those of ``I - K H^{1/2}`` with a Bauer--Fike bar
    (:func:`stability.lemmas._exact.radius_verdict`); ``"undecided"`` only within
    the bar."""
    target = 1 + mpmath.mpf(SLACK)
    if not np.array_equal(instance.P, instance.P.T):
        return _exact.radius_verdict(_mp_loop(instance), target)
    n = instance.H.shape[0]
    w, q = mpmath.eigsy(_exact.mp_matrix(instance.H))
    quarter = q * mpmath.diag([mpmath.root(w[i], 4) for i in range(n)]) * q.T
    k = _exact.mp_matrix(instance.alpha * np.eye(n) + instance.P)
    s, _ = mpmath.eigsy(quarter * k * quarter)
    rho = max(abs(1 - s[i]) for i in range(n))
    err = 1e-40 * (float(mpmath.mnorm(k, "f")) * float(max(w)) ** 0.5 + 1)
    return verdict(float(target - rho), err)


def exact_conclusion(instance) -> bool:
    """Whether :func:`exact_status` holds (the reference
    :func:`stability.lemmas.audit` checks against)."""
    return exact_status(instance) == HOLDS


def conclusion(instance) -> bool:
    """``rho(A) <= 1`` up to a slack of 1e-9, decided at 50 digits near the threshold
    (:func:`conclusion_status`)."""
    return conclusion_status(instance) == HOLDS


def per_direction_condition(H, P, alpha) -> nominal.DirectionCondition:
    r"""Exact condition :math:`-\alpha < p_i < 2/\sqrt{h_i} - \alpha` per shared
    eigenpair of a ``P`` commuting with ``H`` (``curvature`` holds :math:`h_i`).

    >>> c = per_direction_condition(np.diag([4.0, 0.25]), np.diag([0.6, 3.0]), 0.5)
    >>> c.upper.tolist(), c.strict.tolist()
    ([3.5, 0.5], [True, False])
    """
    inst = make_instance(H=H, P=P, alpha=alpha)
    c = nominal.per_direction_condition(_root(inst), inst.P, inst.alpha)
    return c._replace(curvature=c.curvature**2)


def _lift(instance):
    """A Theorem-1 instance on ``H'`` as a Lemma-2 instance on ``H = H'^2``."""
    H = spd_power(instance.H, 2.0)
    return make_instance(H=0.5 * (H + H.T), P=instance.P, alpha=instance.alpha)


def sample(rng, *, n=None, kappa=None, kind=None, boundary=None):
    """A random instance satisfying every hypothesis: a Theorem-1 sample on
    :math:`H^{1/2}` (condition number ``sqrt(kappa)``, so ``H`` has ``kappa``, up to
    1e6; ``L`` log-uniform on ``[1e-4, 1e4]``), lifted to ``H``."""
    if kappa is None:
        kappa = 10 ** rng.uniform(0, 6)
    else:
        kappa = check_scalar("kappa", kappa, low=1.0)
    base = nominal.sample(rng, n=n, kappa=np.sqrt(kappa), kind=kind, boundary=boundary)
    return _lift(base)


HARD_FAMILIES = {
    name: (lambda rng, draw=draw: _lift(draw(rng)))
    for name, draw in nominal.HARD_FAMILIES.items()
}

DROPS = dict(nominal.DROPS)


def _lifted(search):
    return lambda rng: _lift(search(rng))


SEARCHES = {drop: _lifted(fn) for drop, fn in nominal.SEARCHES.items()}


def counterexample(drop, *, kind=None, seed=0, budget=DEFAULT_BUDGET):
    """Seeded search for an instance satisfying every hypothesis but ``drop`` that
    breaks the claim (kinds as in :data:`DROPS`): Theorem 1's searches on
    :math:`H^{1/2}`, lifted.

    >>> inst = counterexample("lower_bound", seed=0)
    >>> hypotheses(inst)["lower_bound"], radius(inst) > 1
    (False, True)
    """
    return _claim.counterexample(CLAIM, drop, kind=kind, seed=seed, budget=budget)


# ---------------------------------------------------------------------------------
# input versus output preconditioning


class PreconditionerComparison(NamedTuple):
    """Spectra of output (``I - C K H``) and input (``I - K C H``) preconditioning.

    ``winner`` is ``"output"`` or ``"input"`` (the smaller spectral radius, by more
    than 1e-9 relative) or ``"tie"``.
    """

    rho_output: float
    rho_input: float
    eig_output: np.ndarray
    eig_input: np.ndarray
    winner: str


def input_vs_output(H, P, alpha, C) -> PreconditionerComparison:
    """Compare output and input preconditioning with preconditioner ``C``.

    >>> h = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> p = np.array([[0.1, 0.3], [-0.2, 0.0]])
    >>> exact = input_vs_output(h, p, 0.2, ideal_preconditioner(h))
    >>> exact.winner, bool(np.allclose(exact.eig_output, exact.eig_input))
    ('tie', True)
    """
    inst = make_instance(H=H, P=P, alpha=alpha)
    n = inst.H.shape[0]
    c = check_square("C", C, n=n)
    k = inst.alpha * np.eye(n) + inst.P
    out = np.eye(n) - c @ k @ inst.H
    inp = np.eye(n) - k @ c @ inst.H
    e_out = np.sort_complex(np.linalg.eigvals(out))
    e_in = np.sort_complex(np.linalg.eigvals(inp))
    r_out = float(spectral_radius(out))
    r_in = float(spectral_radius(inp))
    tol = 1e-9 * max(1.0, r_out, r_in)
    winner = (
        "output" if r_out < r_in - tol else "input" if r_in < r_out - tol else "tie"
    )
    return PreconditionerComparison(r_out, r_in, e_out, e_in, winner)


class ComparisonInstance(NamedTuple):
    """An input-versus-output instance: ``H``, ``P``, ``alpha`` and ``C``."""

    H: np.ndarray
    P: np.ndarray
    alpha: float
    C: np.ndarray


def _draw_comparison(rng, preconditioner):
    n = int(rng.integers(2, 4))
    top = 10 ** rng.uniform(-1, 1)
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 2), top)
    alpha = (2 / np.sqrt(top)) * rng.uniform(0, 1)
    p = rng.uniform(-alpha, 2 / np.sqrt(top) - alpha, n)
    if preconditioner == "diagonal":
        # a symmetric C needs a non-symmetric K to make a difference
        c = diagonal_preconditioner(H)
        v = rng.standard_normal((n, n))
        P = v @ np.diag(p) @ np.linalg.inv(v)
    else:
        e = np.eye(n) + 0.3 * rng.standard_normal((n, n))
        root_inv = spd_power(H, -0.5)
        c = e @ root_inv if preconditioner == "left_error" else root_inv @ e
        r = random_rotation(n, rng)
        P = (r * p) @ r.T
        P = 0.5 * (P + P.T)
    return ComparisonInstance(H, P, float(alpha), c)


def comparison_search(
    winner: str,
    *,
    preconditioner: str = "diagonal",
    seed: int = 0,
    budget: int = DEFAULT_BUDGET,
):
    """Seeded search for an instance where ``winner`` (``"output"`` or ``"input"``)
    preconditioning is stable (``rho < 1 - 1e-6``) and the other is unstable
    (``rho > 1 + 1e-6``). ``preconditioner``: ``"diagonal"`` (``diag(H)^{-1/2}``,
    non-normal P), ``"left_error"`` (``E H^{-1/2}``, symmetric P) or
    ``"right_error"`` (``H^{-1/2} E``, symmetric P). None if the budget runs out.

    >>> found = comparison_search("output", seed=0)
    >>> cmp = input_vs_output(*found)
    >>> cmp.winner, cmp.rho_output < 1 < cmp.rho_input
    ('output', True)
    """
    if winner not in WINNERS:
        raise ValueError(f"winner: expected one of {WINNERS}, got {winner!r}")
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(
            f"preconditioner: expected one of {PRECONDITIONERS}, got {preconditioner!r}"
        )
    check_int("budget", budget, low=1)

    def wins(cand):
        cmp = input_vs_output(*cand)
        good, bad = (
            (cmp.rho_output, cmp.rho_input)
            if winner == "output"
            else (cmp.rho_input, cmp.rho_output)
        )
        return good < 1 - MARGIN and bad > 1 + MARGIN

    def draw(rng):
        return _draw_comparison(rng, preconditioner)

    return first_found(draw, wins, seed=seed, budget=budget)


def looser_than_theorem1(L) -> bool:
    """Whether Lemma 2's upper bound ``2/sqrt(L) - alpha`` exceeds Theorem 1's
    ``2/L - alpha``: exactly when ``L > 1``."""
    L = check_scalar("L", L, low=0.0, low_open=True)
    return bool(2 / np.sqrt(L) > 2 / L)


CLAIM = claim_of(__name__, searches=SEARCHES, breaks=radius_breaks(radius))
