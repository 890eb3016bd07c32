"""The common shape of a claim, and the one counterexample search every claim uses.

A claim module defines

- ``NAME`` (short id), ``TITLE`` and ``STATEMENT`` (the exact, corrected statement,
  with its hypotheses; the module docstring gives the proof and cites the paper);
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
  for an instance satisfying every hypothesis but ``drop`` that breaks the claim,
  which runs :func:`counterexample` on the module's :class:`Claim`;
- last, ``CLAIM = claim_of(__name__, searches=..., breaks=...)``: the :class:`Claim`
  gathering these names with the counterexample searches.
"""

import sys
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from stability._validation import check_int

KINDS = ("sufficiency", "necessity")
SLACK = 1e-9  # stable means rho < 1 + SLACK: an allowance for rounding at rho = 1
MARGIN = 1e-6  # a counterexample breaks the claim by this much, not by rounding
DEFAULT_BUDGET = 2000  # candidates a counterexample search draws unless told otherwise

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
    check_int("budget", budget, low=1)
    return kind


def three_valued(value) -> str:
    """A hypothesis's value as HOLDS / FAILS / UNDECIDED (booleans map to the first
    two)."""
    if value is True or value == HOLDS:
        return HOLDS
    if value is False or value == FAILS:
        return FAILS
    return value


def radius_breaks(radius: Callable) -> Callable:
    """The usual way a spectral claim breaks: ``radius(instance) > 1 + MARGIN`` for a
    ``"sufficiency"`` counterexample (the loop diverges although the bounds hold),
    ``< 1 - MARGIN`` for ``"necessity"`` (stable although a bound fails)."""

    def breaks(instance, kind):
        rho = radius(instance)
        return rho > 1 + MARGIN if kind == "sufficiency" else rho < 1 - MARGIN

    return breaks


class Claim(NamedTuple):
    """One claim of the paper as one object: what the report checks and what
    :func:`counterexample` searches.

    Attributes:
      name, title, statement: as the module's ``NAME``, ``TITLE``, ``STATEMENT``.
      hypotheses: ``instance -> {name: status}``, three-valued (booleans allowed).
      conclusion: ``instance -> bool``, what the claim promises.
      bounds: ``instance -> dict``, the numbers the claim gives.
      sample: ``rng -> instance`` satisfying every hypothesis.
      drops: ``{hypothesis: kind}`` for each hypothesis whose counterexample is
        searched.
      searches: ``{hypothesis: rng -> instance or None}``, the candidates drawn when
        that hypothesis is dropped (None: no candidate this draw).
      breaks: ``(instance, kind) -> bool``: the candidate breaks the claim clearly
        (beyond rounding), in the way ``kind`` says.
      budget: the default number of candidates a search draws.
      families: the hard instance families beside ``sample`` (``HARD_FAMILIES``).
    """

    name: str
    title: str
    statement: str
    hypotheses: Callable
    conclusion: Callable
    bounds: Callable
    sample: Callable
    drops: Mapping
    searches: Mapping
    breaks: Callable
    budget: int = DEFAULT_BUDGET
    families: Mapping = {}


def claim_of(module: str, *, searches: Mapping, breaks: Callable) -> Claim:
    """The :class:`Claim` of the claim module named ``module``, from the names it
    defines (called at its end): ``NAME``, ``TITLE``, ``STATEMENT``,
    ``hypothesis_status`` (else ``hypotheses``), ``conclusion``, ``bounds``,
    ``sample``, ``DROPS``, and where it has them ``DEFAULT_BUDGET`` and
    ``HARD_FAMILIES``; ``searches`` and ``breaks`` are its counterexample search."""
    m = sys.modules[module]
    return Claim(
        m.NAME,
        m.TITLE,
        m.STATEMENT,
        hypotheses=getattr(m, "hypothesis_status", None) or m.hypotheses,
        conclusion=m.conclusion,
        bounds=m.bounds,
        sample=m.sample,
        drops=m.DROPS,
        searches=searches,
        breaks=breaks,
        budget=getattr(m, "DEFAULT_BUDGET", DEFAULT_BUDGET),
        families=getattr(m, "HARD_FAMILIES", {}),
    )


def counterexample(claim: Claim, drop, *, kind=None, seed=0, budget=None):
    """Seeded search for an instance satisfying every hypothesis of ``claim`` except
    ``drop`` that breaks it: draw up to ``budget`` (default ``claim.budget``)
    candidates from ``claim.searches[drop]`` with ``np.random.default_rng(seed)``
    and return the first where ``drop`` fails, every other hypothesis holds and
    ``claim.breaks`` (the kind given by ``claim.drops[drop]``; ``kind``, if given,
    must agree). A hypothesis that is undecided within rounding is neither held nor
    failed, so such a candidate is passed over. Same seed, same instance; None if
    the budget runs out."""
    budget = claim.budget if budget is None else budget
    kind = check_search(claim.drops, drop, kind, budget)

    def found(inst):
        return only_dropped(claim.hypotheses(inst), drop) and claim.breaks(inst, kind)

    return first_found(claim.searches[drop], found, seed=seed, budget=budget)


def first_found(draw: Callable, accept: Callable, *, seed, budget: int):
    """The first of up to ``budget`` candidates ``draw(rng)`` (None: no candidate
    this draw), ``rng = np.random.default_rng(seed)``, for which ``accept`` holds;
    None if the budget runs out. The loop of every seeded search in the lemmas."""
    rng = np.random.default_rng(seed)
    for _ in range(int(budget)):
        inst = draw(rng)
        if inst is not None and accept(inst):
            return inst
    return None


def only_dropped(hypotheses: Mapping, drop) -> bool:
    """Whether hypothesis ``drop`` fails and every other one holds (values booleans
    or three-valued; an undecided one is neither held nor failed)."""
    status = {k: three_valued(v) for k, v in hypotheses.items()}
    others = (v for k, v in status.items() if k != drop)
    return status[drop] == FAILS and all(v == HOLDS for v in others)
