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
- ``conclusion(instance) -> bool``: what the claim promises, checked exactly (spectral
  radius or the exact moments);
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


class ClaimResult(NamedTuple):
    """One row of :func:`stability.lemmas.report`."""

    name: str
    title: str
    statement: str
    hypotheses: tuple
    instances_checked: int
    conclusion_held: int
    counterexamples: dict  # drop -> (kind, instance or None, summary str)

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
