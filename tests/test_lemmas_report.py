"""stability.lemmas.report and format_report, on a stand-in claim module."""

import types

from stability import lemmas
from stability.lemmas import ClaimResult


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
