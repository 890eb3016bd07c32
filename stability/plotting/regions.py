"""Stability regions (records from :func:`stability.analyses.stability_region`) and
exact boundaries drawn over them.

Colour encodes the spectral radius on a logarithmic scale in ``1 - rho`` (so that
0.9, 0.99, 0.999 are equally far apart: the convergence time ``1/(1 - rho)``), clipped
at ``1 - rho = 1e-4``; unstable cells (``rho >= 1``) are flat grey.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.ticker import NullFormatter

from stability.plotting._style import PALETTE, REGION_CMAP, UNSTABLE

_LABELS = {
    "lr": "learning rate a",
    "curvature": "curvature h",
    "beta": "momentum β",
    "alpha": "nominal step α",
    "p": "learned eigenvalue p",
}
GAP_FLOOR = 1e-4  # smallest 1 - rho the colour scale resolves
RHO_LABEL = "spectral radius ρ (grey: ρ ≥ 1)"


def axis_label(name):
    """The axis label used for a grid argument of a region record."""
    return _LABELS.get(name, name)


def _norm():
    return LogNorm(vmin=GAP_FLOOR, vmax=1.0, clip=True)


def grid_axes(record, x=None, y=None) -> tuple[str, str, bool]:
    """``(x, y, transpose)`` for drawing a 2-D record's grid: the axis names on the
    horizontal and vertical axes (default: the second and the first) and whether its
    ``(axis_0, axis_1)`` arrays must be transposed so that rows follow ``y``."""
    names = list(record.axes)
    if len(names) != 2:
        raise ValueError(f"record: expected a 2-D region, got axes {names}")
    y = names[0] if y is None else y
    x = names[1] if x is None else x
    if {x, y} != set(names):
        raise ValueError(f"x, y: must name the record's axes {names}, got {x}, {y}")
    return x, y, names.index(x) == 0


def region(
    record,
    ax=None,
    *,
    x=None,
    y=None,
    xscale="linear",
    yscale="linear",
    title=None,
    colorbar=True,
    colorbar_label=RHO_LABEL,
):
    """Draw a 2-D stability region: the spectral radius where the loop is stable
    (colour, logarithmic in ``1 - rho``) and a flat grey where it is not.

    Args:
      record: a :class:`~stability.analyses.StabilityRegion` (anything with ``axes``,
        a dict of two 1-D grids, and ``rho`` of shape ``(len(axis_0), len(axis_1))``).
      ax: Axes to draw on (default: current).
      x, y: which grid names go on the horizontal and vertical axes (default: the
        second and the first).
      xscale, yscale: ``"linear"`` or ``"log"``.
      title: Axes title.
      colorbar: add a colour bar for rho beside this Axes (see
        :func:`rho_colorbar` for one bar shared by several).
      colorbar_label: its label.

    Returns:
      the Axes.
    """
    ax = plt.gca() if ax is None else ax
    x, y, transpose = grid_axes(record, x, y)
    rho = np.asarray(record.rho, float)
    rho = rho.T if transpose else rho
    stable = rho < 1.0
    xs, ys = np.asarray(record.axes[x]), np.asarray(record.axes[y])
    grey = ax.pcolormesh(
        xs,
        ys,
        np.where(stable, np.nan, 1.0),
        cmap=ListedColormap([UNSTABLE]),
        shading="auto",
    )
    gap = np.ma.masked_where(~stable, np.maximum(1.0 - rho, GAP_FLOOR))
    mesh = ax.pcolormesh(xs, ys, gap, cmap=REGION_CMAP, norm=_norm(), shading="auto")
    for m in (grey, mesh):
        m.set_rasterized(True)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    for axis, scale in ((ax.xaxis, xscale), (ax.yaxis, yscale)):
        if scale == "log":
            axis.set_minor_formatter(NullFormatter())
    ax.set_xlim(xs.min(), xs.max())
    ax.set_ylim(ys.min(), ys.max())
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    if title is not None:
        ax.set_title(title)
    if colorbar:
        rho_colorbar(ax.figure, ax, label=colorbar_label)
    return ax


def rho_colorbar(fig, axes, *, label=RHO_LABEL, **kwargs):
    """One colour bar for the regions drawn on ``axes`` (an Axes or an array of
    them), ticked in rho; ``kwargs`` go to ``Figure.colorbar``. Returns the
    Colorbar. ``label=None`` puts a short "ρ" on top instead of a side label."""
    kwargs.setdefault("pad", 0.02)
    kwargs.setdefault("fraction", 0.05)
    axes = np.asarray(axes).ravel().tolist() if not isinstance(axes, plt.Axes) else axes
    bar = fig.colorbar(ScalarMappable(_norm(), REGION_CMAP), ax=axes, **kwargs)
    ticks = [1.0, 1e-1, 1e-2, 1e-3, 1e-4]
    bar.set_ticks(ticks, labels=["0", "0.9", "0.99", "0.999", "≥ 0.9999"])
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    bar.ax.invert_yaxis()  # rho grows upward
    if label:
        bar.set_label(label)
    else:  # a compact title instead of a side label, for tight grids
        bar.ax.set_title("ρ", fontsize=8)
    return bar


def boundary(ax, x, y, *, label=None, color=None, linestyle="-", marker=None):
    """Draw an exact boundary curve ``(x, y)`` over a region and return ``ax``.

    Non-finite points are dropped (a boundary that leaves the plot)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    ax.plot(
        x[keep],
        y[keep],
        color=PALETTE["vermillion"] if color is None else color,
        linestyle=linestyle,
        marker=marker,
        markersize=3,
        linewidth=1.6,
        label=label,
    )
    return ax
