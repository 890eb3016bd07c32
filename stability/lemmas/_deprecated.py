"""Old names of the lemma modules, served for one release with a
``DeprecationWarning`` that names the replacement.

A module opts in with ``def __getattr__(name): return _deprecated.moved(__name__,
name)``; :data:`MOVED` maps ``(module, old name)`` to the replacement's dotted name
and a function returning the object (imported late, so no cycle forms).
"""

import importlib
import warnings
from typing import NamedTuple

from stability.lemmas import _claim


class Search(NamedTuple):
    """Deprecated: what the old ``nominal.run_search`` took; a
    :class:`~stability.lemmas._claim.Claim` replaces it."""

    drops: dict
    searches: dict
    hypotheses: object
    radius: object


def run_search(claim, drop, kind, seed, budget):
    """Deprecated: :func:`stability.lemmas._claim.counterexample` on the claim's
    ``CLAIM``."""
    as_claim = _claim.Claim(
        "",
        "",
        "",
        hypotheses=claim.hypotheses,
        conclusion=None,
        bounds=None,
        sample=None,
        drops=claim.drops,
        searches=claim.searches,
        breaks=_claim.radius_breaks(claim.radius),
    )
    return _claim.counterexample(as_claim, drop, kind=kind, seed=seed, budget=budget)


def is_counterexample(hypotheses_fn, radius_fn, instance, drop, kind) -> bool:
    """Deprecated: ``only_dropped`` and ``radius_breaks`` of
    :mod:`stability.lemmas._claim`."""
    return _claim.only_dropped(hypotheses_fn(instance), drop) and _claim.radius_breaks(
        radius_fn
    )(instance, kind)


def random_orthogonal(rng, n):
    """Deprecated: ``stability.problems.random_rotation(n, rng)``."""
    from stability.problems import random_rotation

    return random_rotation(n, rng)


def _attr(path):
    module, _, name = path.rpartition(".")
    return lambda: getattr(importlib.import_module(module), name)


_HERE = "stability.lemmas._deprecated"
_SAMPLERS = (
    "random_curvatures",
    "sample_size",
    "random_hessian",
    "commuting_matrix",
    "draw_in_interval",
)
_STRUCTURE = (
    "SYMMETRY_RTOL",
    "COMMUTE_RTOL",
    "REAL_RTOL",
    "MAX_EIGVEC_COND",
    "CLUSTER_RTOL",
    "Structure",
    "spectrum_status",
    "symmetric_or_commuting",
)
_SEED = (
    "SEED_READINGS",
    "to_seed_alpha",
    "from_seed_alpha",
    "seed_premise",
    "seed_wording_holds",
    "seed_counterexample",
)
_GROWTH = (
    "fit_growth",
    "meta_loss",
    "meta_gradients",
    "sampled_meta_gradients",
    "GrowthRecord",
    "one_mode",
    "RateRecord",
)


def _same_names(old: str, new: str, names) -> dict:
    """Entries for ``names`` that moved unchanged from module ``old`` to ``new``."""
    return {(old, name): (f"{new}.{name}", f"{new}.{name}") for name in names}


# (module, old name) -> dotted name of the replacement (what the warning says) and
# where the object lives
MOVED = {
    ("stability.lemmas.nominal", "random_orthogonal"): (
        "stability.problems.random_rotation(n, rng)",
        f"{_HERE}.random_orthogonal",
    ),
    ("stability.lemmas.nominal", "Search"): (
        "stability.lemmas._claim.Claim",
        f"{_HERE}.Search",
    ),
    ("stability.lemmas.nominal", "run_search"): (
        "stability.lemmas._claim.counterexample",
        f"{_HERE}.run_search",
    ),
    ("stability.lemmas.nominal", "is_counterexample"): (
        "stability.lemmas._claim.only_dropped and radius_breaks",
        f"{_HERE}.is_counterexample",
    ),
    **_same_names("stability.lemmas.nominal", "stability.lemmas.samplers", _SAMPLERS),
    **_same_names("stability.lemmas.nominal", "stability.lemmas.structure", _STRUCTURE),
    **_same_names("stability.lemmas.nominal", "stability.lemmas.seed_wording", _SEED),
    **_same_names("stability.lemmas.metagrad", "stability.analyses.growth", _GROWTH),
    **_same_names(
        "stability.lemmas.adaptive",
        "stability.problems.schedules",
        ("time_varying_expected_losses",),
    ),
    **_same_names(
        "stability.lemmas.joint",
        "stability.optimizers.learned",
        ("learned_momentum",),
    ),
    **_same_names(
        "stability.lemmas.weight_decay",
        "stability.lopt.linear_term",
        ("meta_train_stability", "MetaTrainingRecord"),
    ),
}


def moved(module: str, name: str):
    """The object behind ``module.name`` if it moved (with a ``DeprecationWarning``),
    else ``AttributeError`` as for any missing attribute."""
    try:
        new, where = MOVED[module, name]
    except KeyError:
        raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
    warnings.warn(
        f"{module}.{name} is deprecated and will be removed in the next release; "
        f"use {new}",
        DeprecationWarning,
        stacklevel=3,
    )
    return _attr(where)()
