"""Stability regions (records from :func:`stability.analyses.stability_region`) and
exact boundaries drawn over them."""

import matplotlib.pyplot as plt
import numpy as np

from stability.plotting._style import PALETTE, REGION_CMAP, UNSTABLE

_LABELS = {
    "lr": "learning rate a",
    "curvature": "curvature h",
    "beta": "momentum β",
    "alpha": "nominal step α",
    "p": "learned eigenvalue p",
}


def axis_label(name):
    """The axis label used for a grid argument of a region record."""
    return _LABELS.get(name, name)


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
):
    """Draw a 2-D stability region: the spectral radius where the loop is stable
    (``rho < 1``, colour map from 0 to 1) and a flat grey where it is not.

    Args:
      record: a :class:`~stability.analyses.StabilityRegion` (anything with ``axes``,
        a dict of two 1-D grids, and ``rho`` of shape ``(len(axis_0), len(axis_1))``).
      ax: Axes to draw on (default: current).
      x, y: which grid names go on the horizontal and vertical axes (default: the
        second and the first).
      xscale, yscale: ``"linear"`` or ``"log"``.
      title: Axes title.
      colorbar: add a colour bar for rho.

    Returns:
      the Axes.
    """
    ax = plt.gca() if ax is None else ax
    names = list(record.axes)
    if len(names) != 2:
        raise ValueError(f"record: expected a 2-D region, got axes {names}")
    y = names[0] if y is None else y
    x = names[1] if x is None else x
    if {x, y} != set(names):
        raise ValueError(f"x, y: must name the record's axes {names}, got {x}, {y}")
    rho = np.asarray(record.rho, float)
    if names.index(x) == 0:
        rho = rho.T  # rows must follow y
    stable = np.ma.masked_where(~(rho < 1.0), rho)
    xs, ys = np.asarray(record.axes[x]), np.asarray(record.axes[y])
    ax.pcolormesh(
        xs, ys, np.where(rho < 1.0, np.nan, 1.0), cmap=_flat(UNSTABLE), shading="auto"
    )
    mesh = ax.pcolormesh(
        xs, ys, stable, cmap=REGION_CMAP, vmin=0.0, vmax=1.0, shading="auto"
    )
    mesh.set_rasterized(True)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    ax.set_xlim(xs.min(), xs.max())
    ax.set_ylim(ys.min(), ys.max())
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    if title is not None:
        ax.set_title(title)
    if colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax, pad=0.02, fraction=0.06)
        bar.set_label("ρ where stable (grey: ρ ≥ 1)")
    return ax


def _flat(color):
    from matplotlib.colors import ListedColormap

    return ListedColormap([color])


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
