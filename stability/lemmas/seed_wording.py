r"""The seed summary's wording of Theorem 1 and its two readings.

"rho(A) <= 1 if lambda_min(P) >= -1/alpha and lambda_max(P) <= 1/alpha" is false if
alpha is the nominal step (``reading="literal"``; :math:`P = 0` with :math:`\alpha L >
2` already breaks it). It is Theorem 1 when the
symbol :math:`\alpha_s` of the summary stands for :math:`L` and the nominal step is
:math:`1/\alpha_s` (``reading="reparametrised"``): Theorem 1 at :math:`\alpha = 1/L`
reads :math:`-1/L \le \lambda_{\min}(P)`, :math:`\lambda_{\max}(P) \le 2/L - 1/L =
1/L`. More generally, with nominal step :math:`1/\alpha_s` the summary's bounds imply
Theorem 1's iff :math:`\alpha_s \ge L` and coincide with them iff :math:`\alpha_s = L`.
:func:`to_seed_alpha` and :func:`from_seed_alpha` map between the parametrisations.

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Theorem 1.
"""

import numpy as np

from stability._validation import check_scalar
from stability.lemmas import samplers
from stability.lemmas._claim import DEFAULT_BUDGET, MARGIN, first_found
from stability.lemmas.nominal import (
    BOUND_RTOL,
    Instance,
    conclusion,
    make_instance,
    radius,
    real_spectrum,
)
from stability.problems import random_rotation

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
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3), top)
    if reading == "literal":
        alpha = (2 / top) * 10 ** rng.uniform(-1, 1)
    else:
        alpha = from_seed_alpha(float(np.linalg.eigvalsh(H)[-1]))
    bound = 1 / _seed_symbol(alpha, reading)
    r = random_rotation(n, rng)
    p = samplers.draw_in_interval(rng, -bound, bound, n, rng.random() < 0.3)
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

    def draw(rng):
        return _search_seed(rng, reading)

    def breaks(inst):
        return seed_premise(inst, reading) and radius(inst) > 1 + MARGIN

    return first_found(draw, breaks, seed=seed, budget=budget)
