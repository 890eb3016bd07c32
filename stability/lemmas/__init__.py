"""The paper's claims as code: bounds, exact hypotheses, conclusions, counterexample
searches and a report. Each claim module ends with its :class:`Claim`, and
:func:`counterexample` is the one search driver (:mod:`stability.lemmas._claim` gives
the common shape); :mod:`~stability.lemmas.samplers` draws the random instances
and :mod:`~stability.lemmas.structure` holds the linear algebra the claims share."""

import importlib

import numpy as np

from stability.lemmas._claim import FAILS, HOLDS, UNDECIDED, conclusion_status
from stability.lemmas._claim import KINDS as KINDS
from stability.lemmas._claim import Claim as Claim
from stability.lemmas._claim import ClaimResult as ClaimResult
from stability.lemmas._claim import counterexample as counterexample
from stability.lemmas._claim import hypothesis_status as hypothesis_status

# module names under stability.lemmas, in the paper's order
CLAIM_MODULES = (
    "nominal",
    "preconditioning",
    "robust",
    "adaptive",
    "joint",
    "metagrad",
    "weight_decay",
)


def claims():
    """The claim modules, in the paper's order; each ends with its ``CLAIM``."""
    return [
        importlib.import_module(f"stability.lemmas.{name}") for name in CLAIM_MODULES
    ]


def _summary(instance):
    if instance is None:
        return "none found within budget"
    parts = []
    for key, value in instance._asdict().items():
        arr = np.asarray(value)
        parts.append(
            f"{key}={np.array2string(arr, precision=4, separator=', ')}"
            if arr.size <= 16
            else f"{key}: shape {arr.shape}"
        )
    return "; ".join(parts)


def families(module) -> dict:
    """The instance families a claim is checked on: ``"sample"`` (its ``sample``)
    and its ``HARD_FAMILIES`` (samplers ``rng -> instance`` of instances at the edge
    of its hypotheses: nearly repeated curvatures, nearly defective ``P`` at the
    bounds, strongly non-normal stable loops), where it has them."""
    return {"sample": module.sample, **getattr(module, "HARD_FAMILIES", {})}


def classify(module, instance) -> str:
    """One drawn instance: ``"excluded"`` (a hypothesis fails), ``"undecided"`` (a
    hypothesis or the conclusion is undecided within rounding), ``"held"`` or
    ``"failed"`` (every hypothesis holds; the conclusion holds or fails)."""
    status = hypothesis_status(module, instance).values()
    if FAILS in status:
        return "excluded"
    if UNDECIDED in status:
        return "undecided"
    return {HOLDS: "held", FAILS: "failed", UNDECIDED: "undecided"}[
        conclusion_status(module, instance)
    ]


def report(num_instances: int = 200, seed: int = 0) -> list[ClaimResult]:
    """Check every claim on ``num_instances`` random instances of each of its
    :func:`families` and search a counterexample for each droppable hypothesis.

    An instance counts among ``instances_checked`` when every hypothesis holds;
    instances with an undecided hypothesis or conclusion are counted per family in
    ``undecided`` and never as holding; instances where a hypothesis fails (the hard
    families draw some) are left out."""
    rows = []
    for module in claims():
        checked = held = 0
        undecided = {}
        for family, draw in families(module).items():
            rng = np.random.default_rng(seed)
            undecided[family] = 0
            for _ in range(num_instances):
                outcome = classify(module, draw(rng))
                checked += outcome in ("held", "failed")
                held += outcome == "held"
                undecided[family] += outcome == "undecided"
        found = {}
        for drop, kind in module.DROPS.items():
            inst = module.counterexample(drop, kind=kind, seed=seed)
            found[drop] = (kind, inst, _summary(inst))
        names = tuple(module.hypotheses(module.sample(np.random.default_rng(seed))))
        rows.append(
            ClaimResult(
                module.NAME,
                module.TITLE,
                module.STATEMENT,
                names,
                checked,
                held,
                found,
                undecided,
            )
        )
    return rows


def audit(module, num_instances: int, seed: int = 0) -> dict:
    """Search for a false theorem within tolerance: draw ``num_instances`` from
    each of the claim's :func:`families` and count, per family, how the code
    classifies them (:func:`classify`) and ``"false"``: instances where every
    hypothesis holds and the claim's reference conclusion fails (its
    ``exact_conclusion``, rational or 50-digit with no float shortcut, where it has
    one; else its ``conclusion``). The claims promise zero of those."""
    out = {}
    reference = getattr(module, "exact_conclusion", module.conclusion)
    for family, draw in families(module).items():
        rng = np.random.default_rng(seed)
        counts = {"held": 0, "failed": 0, "undecided": 0, "excluded": 0, "false": 0}
        for _ in range(int(num_instances)):
            inst = draw(rng)
            outcome = classify(module, inst)
            counts[outcome] += 1
            if outcome in ("held", "failed") and not reference(inst):
                counts["false"] += 1
        out[family] = counts
    return out


def format_report(rows) -> str:
    """The report as Markdown."""
    out = ["# Lemma report", ""]
    for r in rows:
        status = "holds" if r.holds else "FAILED"
        out += [
            f"## {r.title} (`{r.name}`)",
            "",
            r.statement.strip(),
            "",
            f"- hypotheses: {', '.join(r.hypotheses)}",
            f"- conclusion {status} on {r.conclusion_held}/{r.instances_checked} "
            "random instances satisfying every hypothesis",
        ]
        if r.undecided:
            counts = ", ".join(f"{k} {v}" for k, v in r.undecided.items())
            out.append(
                f"- undecided within rounding (never counted as holding): {counts}"
            )
        for drop, (kind, inst, summary) in r.counterexamples.items():
            verdict = "found" if inst is not None else "NOT found"
            out.append(f"- drop `{drop}` ({kind}): counterexample {verdict}: {summary}")
        out.append("")
    return "\n".join(out)
