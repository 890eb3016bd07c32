"""Curves against time or horizon: exact versus sampled losses, meta-gradient growth,
spectral radius along a trajectory."""

import numpy as np

from stability.plotting._style import PALETTE


def loss_band(
    ax,
    losses,
    *,
    exact=None,
    stationary=None,
    label=None,
    color=None,
    band_se=2.0,
    steps=None,
):
    """Sampled losses (mean over seeds and a band of ``band_se`` standard errors of
    the mean) against the exact expected loss, and the stationary loss.

    Args:
      ax: Axes to draw on.
      losses: sampled losses, shape ``(num_seeds, num_steps)`` (e.g.
        ``SimulationRecord.losses``).
      exact: exact expected losses, shape ``(num_steps,)`` (dashed black line).
      stationary: the stationary loss (dotted horizontal line), or None.
      label: legend label of the sampled mean.
      color: colour of the mean and band.
      band_se: half-width of the band in standard errors.
      steps: step indices, default ``0 .. num_steps - 1``.

    Returns:
      the Axes.
    """
    losses = np.asarray(losses, float)
    steps = np.arange(losses.shape[1]) if steps is None else np.asarray(steps)
    mean = losses.mean(axis=0)
    se = losses.std(axis=0, ddof=1) / np.sqrt(losses.shape[0])
    (line,) = ax.plot(steps, mean, color=color, label=label, linewidth=1.2)
    ax.fill_between(
        steps,
        np.maximum(mean - band_se * se, np.finfo(float).tiny),
        mean + band_se * se,
        color=line.get_color(),
        alpha=0.25,
        linewidth=0,
    )
    if exact is not None:
        ax.plot(
            steps,
            np.asarray(exact),
            color=PALETTE["black"],
            linestyle="--",
            linewidth=1.0,
        )
    if stationary is not None and np.isfinite(stationary):
        ax.axhline(stationary, color="0.35", linestyle=":", linewidth=1.2)
    return ax


def growth(
    ax,
    horizons,
    values,
    *,
    label=None,
    color=None,
    marker="o",
    reference=None,
    reference_label=None,
):
    """Values against horizon on log axes, with an optional reference curve (the
    predicted growth law) drawn as a thin dashed line in the same colour.

    Returns:
      the Axes.
    """
    horizons = np.asarray(horizons, float)
    (line,) = ax.plot(
        horizons,
        np.asarray(values, float),
        marker=marker,
        markersize=3.5,
        linestyle="none",
        color=color,
        label=label,
    )
    if reference is not None:
        ax.plot(
            horizons,
            np.asarray(reference, float),
            color=line.get_color(),
            linestyle="--",
            linewidth=0.9,
            label=reference_label,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    return ax


def radius_trace(ax, steps, radii, *, label=None, color=None, linestyle="-"):
    """Spectral radius along a trajectory with the threshold ``rho = 1``; returns
    ``ax``. Steps where ``rho >= 1`` are shaded."""
    steps = np.asarray(steps, float)
    radii = np.asarray(radii, float)
    ax.plot(steps, radii, color=color, linestyle=linestyle, label=label)
    ax.axhline(1.0, color=PALETTE["black"], linewidth=0.9)
    return ax


def shade(ax, steps, mask, *, color=None, label=None):
    """Shade the step intervals where ``mask`` is true (e.g. ``rho >= 1``)."""
    steps = np.asarray(steps, float)
    mask = np.asarray(mask, bool)
    color = PALETTE["vermillion"] if color is None else color
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    for i, (start, stop) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        hi = steps[min(stop, len(steps) - 1)]
        ax.axvspan(
            steps[start],
            hi,
            color=color,
            alpha=0.15,
            linewidth=0,
            label=label if i == 0 else None,
        )
    return ax


def bars(ax, labels, values, *, color=None, log=False, xlabel=None):
    """Horizontal bars with their values written beside them; returns ``ax``."""
    values = np.asarray(values, float)
    pos = np.arange(len(values))[::-1]
    ax.barh(pos, values, color=PALETTE["blue"] if color is None else color, height=0.6)
    ax.set_yticks(pos, labels)
    if log:
        ax.set_xscale("log")
    if xlabel:
        ax.set_xlabel(xlabel)
    return ax
