"""The common shape of a claim: every lemma module exposes the same names, so the
report and the tests treat them alike.

A claim module defines

- ``NAME`` (short id), ``TITLE`` and ``STATEMENT`` (the exact, corrected statement,
  with its hypotheses; see ``shared/CLAIMS.md``);
- ``Instance``: a NamedTuple of the claim's matrices and scalars;
- ``make_instance(**fields) -> Instance``: validated construction (``ValueError``
  naming the argument on bad input);
- ``bounds(instance) -> dict[str, float]``: the numbers the claim gives;
- ``hypotheses(instance) -> dict[str, bool]``: each named hypothesis and whether it
  holds;
- optionally ``hypothesis_status(instance) -> dict[str, str]``: the same hypotheses
  three-valued, :data:`HOLDS`, :data:`FAILS` or :data:`UNDECIDED` (within rounding);
  ``hypotheses`` is then ``status == HOLDS``, so an undecided hypothesis never counts
  as holding;
- ``conclusion(instance) -> bool``: what the claim promises, checked exactly (spectral
  radius or the exact moments); optionally ``conclusion_status`` three-valued;
- ``sample(rng, **options) -> Instance``: a random instance satisfying every
  hypothesis (what the report and the property tests check);
- ``DROPS: dict[str, str]``: for each hypothesis that can be dropped, the kind of
  failure its counterexample shows (``"sufficiency"``: bounds hold, conclusion
  fails; ``"necessity"``: conclusion holds, bounds fail);
- ``counterexample(drop, *, kind, seed, budget) -> Instance | None``: a seeded search
  for an instance satisfying every hypothesis but ``drop`` that breaks the claim.
"""

import numbers
from typing import NamedTuple

KINDS = ("sufficiency", "necessity")

# Three-valued outcomes of a test done in floating point. A hypothesis HOLDS only when
# it holds with a margin that provably covers the rounding (a certified perturbation
# bound), FAILS only when it fails by such a margin, and is UNDECIDED in between.
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
VERDICTS = (HOLDS, FAILS, UNDECIDED)


def verdict(value, error, threshold=0.0) -> str:
    """``value >= threshold`` three-valued, for an estimate ``value`` within ``error``
    of the exact number: HOLDS if ``value - error >= threshold``, FAILS if
    ``value + error < threshold``, else UNDECIDED (also for a NaN or infinite
    error)."""
    if not error < float("inf") or value != value:
        return UNDECIDED
    if value - error >= threshold:
        return HOLDS
    if value + error < threshold:
        return FAILS
    return UNDECIDED


def either(*verdicts) -> str:
    """Three-valued "or": HOLDS if any holds, FAILS if all fail, else UNDECIDED."""
    if HOLDS in verdicts:
        return HOLDS
    return FAILS if all(v == FAILS for v in verdicts) else UNDECIDED


def hypothesis_status(module, instance) -> dict:
    """A claim's hypotheses three-valued: ``module.hypothesis_status`` where the
    module has one, else its boolean ``hypotheses`` as HOLDS / FAILS."""
    if hasattr(module, "hypothesis_status"):
        return module.hypothesis_status(instance)
    return {k: HOLDS if v else FAILS for k, v in module.hypotheses(instance).items()}


def conclusion_status(module, instance) -> str:
    """A claim's conclusion three-valued (``module.conclusion_status`` where it
    exists, else its boolean ``conclusion``)."""
    if hasattr(module, "conclusion_status"):
        return module.conclusion_status(instance)
    return HOLDS if module.conclusion(instance) else FAILS


class ClaimResult(NamedTuple):
    """One row of :func:`stability.lemmas.report`."""

    name: str
    title: str
    statement: str
    hypotheses: tuple
    instances_checked: int
    conclusion_held: int
    counterexamples: dict  # drop -> (kind, instance or None, summary str)
    # drawn instances with a hypothesis or the conclusion undecided within rounding
    # (never counted as holding, not among instances_checked); per family drawn
    undecided: dict = {}

    @property
    def holds(self) -> bool:
        return self.conclusion_held == self.instances_checked


def check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    return kind


def check_search(drops, drop, kind, budget):
    """Validate the arguments of a ``counterexample`` search; returns the kind.

    ``kind=None`` means the kind that dropping ``drop`` gives (``drops[drop]``).
    """
    if drop not in drops:
        raise ValueError(f"drop: expected one of {tuple(drops)}, got {drop!r}")
    kind = drops[drop] if kind is None else check_kind(kind)
    if kind != drops[drop]:
        raise ValueError(
            f"kind: dropping {drop!r} gives a {drops[drop]!r} counterexample, "
            f"not {kind!r}"
        )
    if not isinstance(budget, numbers.Integral) or budget < 1:
        raise ValueError(f"budget: must be a positive integer, got {budget!r}")
    return kind
