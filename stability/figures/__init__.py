"""The paper's figures: one module per figure, a registry, and the runner.

Each ``figNN`` module computes its records with :mod:`stability.analyses`,
:mod:`stability.problems`, :mod:`stability.lemmas` and :mod:`stability.lopt`, and
exposes four functions::

    record = fig05.compute(Quality(full=False))  # arrays and the checks behind them
    fig = fig05.draw(record)                      # a matplotlib Figure
    fig05.numbers(record)                         # {quantity: formatted value}
    fig05.caption(record)                         # one paragraph

:data:`FIGURES` maps a figure id to its :class:`FigureSpec`; :func:`render` builds
one figure and saves it, :func:`format_report` writes ``REPORT.md``. The command
``stability reproduce`` (:mod:`stability.reproduce`) runs them; the learned-
optimizer records the figures draw are found or rerun by :mod:`.records`.

A new figure is a module ``figNN.py`` with those four functions and one line in
:data:`FIGURES` (plus a thin ``figures/figNN_name.py`` script).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from stability.figures._base import Drawn as Drawn
from stability.figures._base import NotAvailable as NotAvailable
from stability.figures._base import Quality as Quality
from stability.figures._base import fmt as fmt
from stability.figures._runner import FigureResult as FigureResult
from stability.figures._runner import format_report as format_report
from stability.figures._runner import lemma_report as lemma_report
from stability.figures._runner import render as render


class FigureSpec(NamedTuple):
    """A registered figure: its id, file name, title and module."""

    id: str
    name: str  # the file name, ``figNN_name``
    title: str
    module: str  # the module with compute, draw, numbers and caption

    def load(self):
        """The figure's module, imported on first use."""
        return importlib.import_module(self.module)

    def build(self, quality: Quality) -> Drawn:
        """Compute, draw and describe the figure at ``quality``."""
        mod = self.load()
        record = mod.compute(quality)
        return Drawn(mod.draw(record), mod.caption(record), mod.numbers(record))


def _spec(fid: str, name: str, title: str) -> tuple[str, FigureSpec]:
    return fid, FigureSpec(fid, f"{fid}_{name}", title, f"stability.figures.{fid}")


FIGURES: dict[str, FigureSpec] = dict(
    [
        _spec("fig01", "eigenvalues", "Eigenvalues of the NQM closed loop"),
        _spec("fig02", "regions", "Stability regions with exact boundaries"),
        _spec("fig03", "robust", "Robust stability under multiplicative uncertainty"),
        _spec("fig04", "meta_gradients", "Meta-gradient growth with the horizon"),
        _spec("fig05", "nqm_losses", "Exact NQM losses against simulation"),
        _spec("fig06", "meta_training", "Meta-training curves"),
        _spec("fig07", "long_horizon", "Long-horizon stability of learned optimizers"),
        _spec("fig08", "generalization", "Out-of-distribution generalisation"),
        _spec("fig09", "linearized_star", "Linearised STAR against observed training"),
        _spec(
            "fig10",
            "certified",
            "Certified convergence on F(mu, L) against quadratics",
        ),
        _spec(
            "fig11",
            "anatomy",
            "STAR's update split into its two terms along training",
        ),
        _spec(
            "fig12",
            "edge_of_stability",
            "Gradient descent and Adam at the edge of stability on a real network",
        ),
        _spec(
            "fig13",
            "star_past_horizon",
            "STAR's real training step past its horizon",
        ),
    ]
)


def resolve(names) -> list[str]:
    """Figure ids for ``--only`` names (``fig01`` or ``fig01_eigenvalues``); all of
    them when ``names`` is empty.

    >>> resolve(["fig05_nqm_losses", "fig01"])
    ['fig05', 'fig01']
    """
    if not names:
        return list(FIGURES)
    ids = []
    for name in names:
        fid = name.split("_", 1)[0]
        if fid not in FIGURES or name not in (fid, FIGURES[fid].name):
            known = ", ".join(FIGURES)
            raise ValueError(f"--only: unknown figure {name!r} (known: {known})")
        if fid not in ids:
            ids.append(fid)
    return ids
