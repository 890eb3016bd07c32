"""stability.lemmas.report and format_report, on a stand-in claim module."""

import itertools
import types

import numpy as np
import pytest

from stability import lemmas
from stability.lemmas import ClaimResult
from stability.lemmas._claim import (
    MARGIN,
    Claim,
    check_search,
    counterexample,
    radius_breaks,
)


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


def test_claims_are_the_claim_modules_each_with_its_claim():
    modules = lemmas.claims()
    assert [m.NAME for m in modules] == list(lemmas.CLAIM_MODULES)
    for m in modules:
        assert isinstance(m.CLAIM, Claim)
        assert (m.CLAIM.name, m.CLAIM.title, m.CLAIM.statement) == (
            m.NAME,
            m.TITLE,
            m.STATEMENT,
        )
        assert dict(m.CLAIM.drops) == m.DROPS and set(m.CLAIM.searches) == set(m.DROPS)
        assert dict(m.CLAIM.families) == getattr(m, "HARD_FAMILIES", {})


def test_each_claim_module_searches_through_the_one_driver():
    from stability.lemmas import robust, weight_decay

    for module, drop in ((robust, "commuting"), (weight_decay, "per_mode")):
        found = lemmas.counterexample(module.CLAIM, drop, seed=1, budget=40)
        same = module.counterexample(drop, seed=1, budget=40)
        assert found is not None and repr(found) == repr(same)
        status = lemmas.hypothesis_status(module, found)
        assert status[drop] == "fails"


def test_claims_raises_on_a_module_that_does_not_exist(monkeypatch):
    monkeypatch.setattr(lemmas, "CLAIM_MODULES", ("nominal", "no_such_claim"))
    with pytest.raises(ModuleNotFoundError, match="no_such_claim"):
        lemmas.claims()


def _stand_in_claim(values, status, breaks=lambda x, kind: x > 0.5, budget=50):
    """A claim whose search draws ``values`` in turn (None: no candidate),
    ``status(x)`` the three-valued hypotheses."""
    draws = itertools.cycle(values)
    return Claim(
        "stand_in",
        "Stand-in",
        "x <= 1/2.",
        hypotheses=status,
        conclusion=lambda x: x <= 0.5,
        bounds=lambda x: {},
        sample=lambda rng: 0.0,
        drops={"h": "sufficiency"},
        searches={"h": lambda rng: next(draws)},
        breaks=breaks,
        budget=budget,
    )


def test_counterexample_driver_skips_undecided_and_missing_candidates():
    seen = []

    def status(x):
        seen.append(x)
        return {"h": "undecided" if x == 0.9 else "fails", "g": True}

    claim = _stand_in_claim([None, 0.9, 0.2, 0.7], status)
    assert counterexample(claim, "h", seed=0) == 0.7
    assert None not in seen and 0.9 in seen  # no candidate is never checked
    undecided = _stand_in_claim([0.9], status)
    assert counterexample(undecided, "h", seed=0) is None
    held = _stand_in_claim([0.7], lambda x: {"h": "fails", "g": "undecided"})
    assert counterexample(held, "h", seed=0) is None


def test_counterexample_driver_budget_and_seed():
    calls = []

    def breaks(x, kind):
        calls.append(kind)
        return False

    claim = _stand_in_claim([0.7], lambda x: {"h": False}, breaks, budget=7)
    assert counterexample(claim, "h") is None and calls == ["sufficiency"] * 7
    assert counterexample(claim, "h", budget=3) is None and len(calls) == 10
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="budget"):
            counterexample(claim, "h", budget=bad)
    with pytest.raises(ValueError, match="kind"):
        counterexample(claim, "h", kind="necessity")
    with pytest.raises(ValueError, match="drop"):
        counterexample(claim, "g")
    drawn = Claim(*claim[:8], {"h": lambda rng: float(rng.random())}, *claim[9:])
    drawn = drawn._replace(breaks=lambda x, kind: x > 0.5)
    first = [counterexample(drawn, "h", seed=s) for s in range(5)]
    assert first == [counterexample(drawn, "h", seed=s) for s in range(5)]
    assert all(x > 0.5 for x in first) and len(set(first)) > 1


def test_radius_breaks_by_the_margin():
    breaks = radius_breaks(lambda rho: rho)
    assert breaks(1 + 2 * MARGIN, "sufficiency") and not breaks(
        1 + MARGIN / 2, "sufficiency"
    )
    assert breaks(1 - 2 * MARGIN, "necessity") and not breaks(
        1 - MARGIN / 2, "necessity"
    )


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


def test_report_counts_undecided_instances_per_family_and_never_as_held(monkeypatch):
    """Draws whose hypothesis is undecided within rounding are counted per family
    (the claim's sample and its HARD_FAMILIES), never among the checked or held;
    draws where a hypothesis fails are left out."""

    def status(x):
        if x < 0.2:
            return {"margin": "fails"}
        return {"margin": "undecided" if x < 0.5 else "holds"}

    claim = types.SimpleNamespace(
        NAME="three_valued",
        TITLE="Three-valued",
        STATEMENT="x >= 1/2.",
        DROPS={},
        sample=lambda rng: float(rng.random()),
        HARD_FAMILIES={"edge": lambda rng: 0.5 * float(rng.random()) + 0.25},
        hypotheses=lambda x: {k: v == "holds" for k, v in status(x).items()},
        hypothesis_status=status,
        conclusion=lambda x: x >= 0.5,  # false on every undecided draw
    )
    monkeypatch.setattr(lemmas, "claims", lambda: [claim])
    (row,) = lemmas.report(num_instances=200, seed=0)
    draws = [float(np.random.default_rng(0).random(200)[i]) for i in range(200)]
    edge = [0.5 * x + 0.25 for x in draws]
    assert row.undecided == {
        "sample": sum(0.2 <= x < 0.5 for x in draws),
        "edge": sum(x < 0.5 for x in edge),
    }
    assert row.instances_checked == sum(x >= 0.5 for x in draws + edge)
    assert row.holds  # the undecided draws, where the conclusion fails, are not held
    text = lemmas.format_report([row])
    assert "undecided within rounding (never counted as holding): sample" in text
    assert f"edge {row.undecided['edge']}" in text


def test_report_of_the_real_claims_lists_undecided_on_the_hard_families():
    from stability.lemmas import nominal

    rows = {
        r.name: r
        for r in lemmas.report(num_instances=20, seed=0)
        if r.name in ("nominal", "preconditioning", "metagrad")
    }
    assert set(rows["nominal"].undecided) == {"sample", *nominal.HARD_FAMILIES}
    assert rows["nominal"].undecided["nearly_defective"] > 0
    assert all(r.holds for r in rows.values())
