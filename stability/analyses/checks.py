"""Checks of a measurement against its prediction, and events in a recorded trace.

The figures put a numeric result beside an exact one and report how far apart they
are; these are the comparisons they use, as plain NumPy on float64 arrays:

- :func:`disagreement`: grid cells where a numeric stability region and an exact
  boundary disagree;
- :func:`standard_scores`: a sampled mean against its exact expectation, in
  standard errors;
- :func:`first_spike` and :func:`first_step`: where a loss trace first jumps, and
  the first checkpoint at which a condition holds.
"""

from __future__ import annotations

import numpy as np


def disagreement(numeric_stable, exact_stable) -> tuple[int, int]:
    """Cells where a numeric region and an exact boundary disagree, and all cells.

    Args:
      numeric_stable: boolean grid, stable cells of the numeric region.
      exact_stable: boolean grid of the same shape, stable by the exact boundary.
    Returns:
      ``(cells that differ, cells in all)``; wrong either way counts.

    >>> disagreement(np.array([True, False, True]), np.array([True, True, True]))
    (1, 3)
    """
    numeric_stable = np.asarray(numeric_stable)
    return int(np.sum(numeric_stable != exact_stable)), int(numeric_stable.size)


def standard_scores(losses, exact) -> np.ndarray:
    """``|mean - exact| / s.e.`` per step: the seeds' mean loss against the exact
    expectation, in standard errors of that mean.

    Args:
      losses: sampled losses, shape ``(seeds, steps)``.
      exact: the exact expected loss per step, shape ``(steps,)``.
    Returns:
      the scores, shape ``(steps,)``.

    >>> standard_scores([[1.0], [3.0]], [1.0])
    array([1.])
    """
    losses = np.asarray(losses, float)
    se = losses.std(0, ddof=1) / np.sqrt(losses.shape[0])
    return np.abs(losses.mean(0) - np.asarray(exact)) / se


def first_spike(losses, window=50, factor=100) -> tuple[np.ndarray, int | None]:
    """Means of the consecutive ``window``-step windows of ``losses``, and the first
    step of the first window, from the third on, whose mean exceeds ``factor`` times
    the lowest mean of the windows before it (``None`` if none does). Window means
    average the noise out; a trailing partial window is dropped.

    >>> means, spike = first_spike([1.0, 1.0, 0.1, 0.1, 50.0, 50.0], window=2)
    >>> means.tolist(), spike
    ([1.0, 0.1, 50.0], 4)
    """
    losses = np.asarray(losses, float)
    means = losses[: losses.size // window * window].reshape(-1, window).mean(axis=1)
    best = np.minimum.accumulate(means)
    spike = np.flatnonzero(means[2:] > factor * best[1:-1])
    return means, (int(spike[0] + 2) * window if spike.size else None)


def first_step(at, flags, start) -> int | None:
    """The first of the increasing steps ``at`` that is ``>= start`` and where
    ``flags`` holds, or ``None``.

    >>> first_step([0, 10, 20, 30], [True, False, True, True], start=5)
    20
    """
    hits = np.flatnonzero((np.asarray(at) >= start) & np.asarray(flags, bool))
    return int(at[hits[0]]) if hits.size else None
