"""The paper's claims as code: bounds, exact hypotheses, conclusions, counterexample
searches and a report. See :mod:`stability.lemmas._claim` for the common shape."""

import importlib

import numpy as np

from stability.lemmas._claim import KINDS as KINDS
from stability.lemmas._claim import ClaimResult as ClaimResult

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
    """The claim modules that exist, in order."""
    found = []
    for name in CLAIM_MODULES:
        try:
            found.append(importlib.import_module(f"stability.lemmas.{name}"))
        except ModuleNotFoundError as err:
            if err.name != f"stability.lemmas.{name}":
                raise
    return found


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


def report(num_instances: int = 200, seed: int = 0) -> list[ClaimResult]:
    """Check every claim on ``num_instances`` random instances satisfying its
    hypotheses and search a counterexample for each droppable hypothesis."""
    rows = []
    for module in claims():
        rng = np.random.default_rng(seed)
        held = 0
        for _ in range(num_instances):
            held += bool(module.conclusion(module.sample(rng)))
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
                num_instances,
                held,
                found,
            )
        )
    return rows


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
        for drop, (kind, inst, summary) in r.counterexamples.items():
            verdict = "found" if inst is not None else "NOT found"
            out.append(f"- drop `{drop}` ({kind}): counterexample {verdict}: {summary}")
        out.append("")
    return "\n".join(out)
