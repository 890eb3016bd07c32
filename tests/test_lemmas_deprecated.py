"""Names that moved out of the lemma modules stay importable for one release, with a
DeprecationWarning naming the new home, and behave as before."""

import importlib
import warnings

import numpy as np
import pytest

from stability.analyses import growth
from stability.lemmas import _claim, _deprecated, metagrad, nominal, samplers
from stability.problems import random_rotation

MOVED = sorted(_deprecated.MOVED)


@pytest.mark.parametrize("module, name", MOVED, ids=lambda x: x)
def test_moved_names_warn_and_point_at_their_new_home(module, name):
    new, where = _deprecated.MOVED[module, name]
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{name} is deprecated.*use "):
        obj = getattr(mod, name)
    owner, _, attr = where.rpartition(".")
    assert obj is getattr(importlib.import_module(owner), attr)
    if new == where:  # a plain move: the old name is the new object
        assert attr == name


def test_unknown_names_are_still_missing():
    with pytest.raises(AttributeError, match="no_such_name"):
        nominal.no_such_name  # noqa: B018


def test_figure_names_stay_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metagrad.gradient_growth is growth.gradient_growth
        assert metagrad.rate_vs_rho is growth.rate_vs_rho


def test_old_random_orthogonal_is_random_rotation_on_the_same_stream():
    with pytest.warns(DeprecationWarning, match="random_rotation"):
        old = nominal.random_orthogonal
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(old(a, 4), random_rotation(4, b))
    assert a.random() == b.random()  # the same draws were used


def test_old_search_api_finds_what_the_claim_finds():
    with pytest.warns(DeprecationWarning):
        search, run_search = nominal.Search, nominal.run_search
    with pytest.warns(DeprecationWarning):
        is_counterexample = nominal.is_counterexample
    old = search(
        nominal.DROPS, nominal.SEARCHES, nominal.hypothesis_status, nominal.radius
    )
    for drop, kind in nominal.DROPS.items():
        found = run_search(old, drop, None, 0, 300)
        new = _claim.counterexample(nominal.CLAIM, drop, seed=0, budget=300)
        assert found is not None and new is not None
        for x, y in zip(found, new, strict=True):
            np.testing.assert_array_equal(x, y)
        assert is_counterexample(
            nominal.hypothesis_status, nominal.radius, found, drop, kind
        )


def test_samplers_draw_as_before():
    """The sampler module's draws are the ones the report's numbers came from."""
    rng = np.random.default_rng(0)
    H, h, q = samplers.random_hessian(rng, 3, 100.0, 2.0)
    assert h[0] == 2.0 and np.isclose(h[-1], 0.02)
    np.testing.assert_allclose(H, (q * h) @ q.T, atol=1e-15)
