"""Eigenvalues in the complex plane against the unit circle, and radii as bars."""

import matplotlib.pyplot as plt
import numpy as np

from stability.plotting._style import PALETTE


def unit_circle(ax, *, radius=1.0, **kwargs):
    """Draw the circle ``|z| = radius`` (default: the unit circle, the stability
    boundary of a discrete-time loop) and return ``ax``."""
    t = np.linspace(0.0, 2.0 * np.pi, 721)
    kwargs.setdefault("color", PALETTE["black"])
    kwargs.setdefault("linewidth", 1.0)
    ax.plot(radius * np.cos(t), radius * np.sin(t), **kwargs)
    return ax


def eigenvalues(
    values,
    ax=None,
    *,
    title=None,
    label=None,
    color=None,
    marker="o",
    show_radius=True,
    limits=None,
    zoom=None,
):
    """Scatter complex eigenvalues over the unit circle.

    Eigenvalues strictly outside the unit circle are drawn as vermillion crosses (a
    shape as well as a colour, for colour-blind readers); the circle of radius
    ``rho = max |z|`` is dashed when ``show_radius``.

    Args:
      values: complex array of any shape (flattened).
      ax: Axes to draw on (default: current).
      title: Axes title.
      label: legend label for the stable eigenvalues.
      color: colour of the stable eigenvalues.
      marker: marker of the stable eigenvalues.
      show_radius: draw the spectral-radius circle.
      limits: ``(lo, hi)`` for both axes; default fits the points and the circle.
      zoom: ``(x0, x1, y0, y1)``: add an inset magnifying that window (e.g. the
        cluster of slow modes near ``z = 1``), upper left.

    Returns:
      the Axes (the inset, if any, is ``ax.child_axes[0]``).
    """
    ax = plt.gca() if ax is None else ax
    z = np.asarray(values).ravel().astype(complex)
    rho = float(np.max(np.abs(z))) if z.size else 0.0
    unit_circle(ax)
    if show_radius and z.size:
        unit_circle(ax, radius=rho, color="0.45", linestyle=(0, (3, 2)), linewidth=0.8)
    ax.axhline(0.0, color="0.8", linewidth=0.6, zorder=0)
    ax.axvline(0.0, color="0.8", linewidth=0.6, zorder=0)
    outside = np.abs(z) > 1.0
    ax.scatter(
        z.real[~outside],
        z.imag[~outside],
        s=14,
        marker=marker,
        color=PALETTE["blue"] if color is None else color,
        edgecolor="white",
        linewidth=0.3,
        label=label,
        zorder=3,
    )
    if np.any(outside):
        ax.scatter(
            z.real[outside],
            z.imag[outside],
            s=22,
            marker="x",
            color=PALETTE["vermillion"],
            linewidth=1.1,
            label="|z| > 1",
            zorder=4,
        )
    if limits is None:
        r = max(1.05, 1.05 * rho)
        limits = (-r, r)
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    ax.set_aspect("equal")
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    if title is not None:
        ax.set_title(title)
    if zoom is not None:
        x0, x1, y0, y1 = zoom
        inset = ax.inset_axes([0.01, 0.58, 0.4, 0.41])
        eigenvalues(
            z,
            inset,
            color=color,
            marker=marker,
            show_radius=show_radius,
            limits=(x0, x1),
        )
        inset.set_ylim(y0, y1)
        inset.set_aspect("auto")
        inset.set_xlabel("")
        inset.set_ylabel("")
        inset.tick_params(labelleft=False, labelbottom=False, length=0)
        for side in ("top", "right"):
            inset.spines[side].set_visible(True)
        ax.indicate_inset_zoom(inset, edgecolor="0.5")
    return ax


def radius_bars(labels, radii, ax=None, *, title=None, xlabel="spectral radius ρ"):
    """Horizontal bars of spectral radii with the stability threshold ``rho = 1``;
    bars at or above 1 are vermillion and hatched, the others blue.

    Returns:
      the Axes.
    """
    ax = plt.gca() if ax is None else ax
    radii = np.asarray(radii, float)
    pos = np.arange(len(radii))[::-1]
    unstable = radii >= 1.0
    colors = np.where(unstable, PALETTE["vermillion"], PALETTE["blue"])
    bars = ax.barh(pos, radii, color=colors, height=0.6)
    for bar, bad in zip(bars, unstable, strict=True):
        if bad:
            bar.set_hatch("///")
            bar.set_edgecolor("white")
    for y, r in zip(pos, radii, strict=True):
        ax.text(r + 0.02, y, f"{r:.3f}", va="center", fontsize=7.5)
    ax.axvline(1.0, color=PALETTE["black"], linewidth=1.0)
    ax.set_yticks(pos, labels)
    ax.set_xlim(0.0, max(1.25, 1.18 * float(radii.max(initial=0.0))))
    ax.set_xlabel(xlabel)
    if title is not None:
        ax.set_title(title)
    return ax
