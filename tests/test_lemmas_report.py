"""stability.lemmas.report and format_report, on a stand-in claim module."""

import types

import pytest

from stability import lemmas
from stability.lemmas import ClaimResult
from stability.lemmas._claim import check_search


def _claim(seen):
    """A claim whose conclusion holds on draws below 0.5; it records every draw."""

    def conclusion(x):
        seen.append(x)
        return x < 0.5

    return types.SimpleNamespace(
        NAME="stand_in",
        TITLE="Stand-in",
        STATEMENT="x < 1/2.",
        DROPS={},
        sample=lambda rng: float(rng.random()),
        conclusion=conclusion,
        hypotheses=lambda x: {"unit_interval": 0 <= x < 1},
    )


def test_report_checks_distinct_instances_and_counts_them(monkeypatch):
    seen = []
    monkeypatch.setattr(lemmas, "claims", lambda: [_claim(seen)])
    (row,) = lemmas.report(num_instances=50, seed=3)
    assert len(seen) == len(set(seen)) == 50  # one stream of draws, not one draw
    assert row.instances_checked == 50
    assert row.conclusion_held == sum(x < 0.5 for x in seen)
    assert 0 < row.conclusion_held < 50 and not row.holds
    assert row.hypotheses == ("unit_interval",)


def test_format_report_says_failed_unless_every_instance_held():
    def row(held):
        return ClaimResult("c", "Claim", "S.", ("h",), 10, held, {})

    assert "conclusion holds on 10/10" in lemmas.format_report([row(10)])
    failed = lemmas.format_report([row(9)])
    assert "conclusion FAILED on 9/10" in failed and "holds" not in failed
    assert "## Claim (`c`)" in failed
    assert row(10).holds and not row(9).holds


def test_report_uses_the_seed_for_instances_and_searches(monkeypatch):
    seen, searched = [], []
    claim = _claim(seen)
    claim.DROPS = {"unit_interval": "sufficiency"}

    def counterexample(drop, *, kind, seed):
        searched.append((drop, kind, seed))
        return None

    claim.counterexample = counterexample
    monkeypatch.setattr(lemmas, "claims", lambda: [claim])
    (row,) = lemmas.report(num_instances=5, seed=3)
    assert searched == [("unit_interval", "sufficiency", 3)]
    assert row.counterexamples["unit_interval"][0] == "sufficiency"
    assert row.counterexamples["unit_interval"][1] is None
    first = list(seen)
    seen.clear()
    lemmas.report(num_instances=5, seed=4)
    assert len(seen) == 5 and not set(seen) & set(first)  # other seed, other draws


def test_format_report_says_which_counterexamples_were_found():
    row = ClaimResult(
        "c",
        "Claim",
        "S.",
        ("h", "g"),
        10,
        10,
        {
            "h": ("sufficiency", (1.0,), "x=1.0"),
            "g": ("necessity", None, "none found within budget"),
        },
    )
    text = lemmas.format_report([row])
    assert "- drop `h` (sufficiency): counterexample found: x=1.0" in text
    assert "- drop `g` (necessity): counterexample NOT found: none found" in text


def test_claims_skips_modules_that_do_not_exist(monkeypatch):
    monkeypatch.setattr(lemmas, "CLAIM_MODULES", ("nominal", "no_such_claim"))
    assert [m.__name__ for m in lemmas.claims()] == ["stability.lemmas.nominal"]


def test_check_search_arguments():
    drops = {"h": "sufficiency", "g": "necessity"}
    assert check_search(drops, "g", None, 1) == "necessity"
    assert check_search(drops, "h", "sufficiency", 5) == "sufficiency"
    for budget in (0, -1, 2.5):
        with pytest.raises(ValueError, match="budget"):
            check_search(drops, "h", None, budget)
    with pytest.raises(ValueError, match="kind"):
        check_search(drops, "h", "necessity", 1)
    with pytest.raises(ValueError, match="drop"):
        check_search(drops, "f", None, 1)
