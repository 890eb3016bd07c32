"""Certified regions (records from :func:`stability.analyses.certified_region`): where
a rate below 1 is certified on every function of :math:`F(\\mu, L)`, where only the
quadratics of the class are stable (the band in between), and where even a quadratic
diverges.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from stability.plotting._style import PALETTE, UNSTABLE
from stability.plotting.regions import axis_label, grid_axes

# cell classes, in drawing order
CLASSES = (
    ("unstable on a quadratic", UNSTABLE),
    ("stable on quadratics, not certified", PALETTE["orange"]),
    ("certified on F(μ, L)", PALETTE["blue"]),
    ("solver failed", PALETTE["black"]),
)


def classes(record) -> np.ndarray:
    """Each cell's class, an index into :data:`CLASSES`."""
    out = np.zeros(np.shape(record.rho), int)
    out[np.asarray(record.rho) < 1] = 1
    out[np.asarray(record.certified)] = 2
    out[np.asarray(record.solver_failed)] = 3
    return out


def certified_region(record, ax=None, *, x=None, y=None, title=None, legend=True):
    """Draw a 2-D certified region beside its quadratic region: certified cells,
    the band stable on every quadratic of the class but not certified, cells
    unstable on some quadratic (and any cell where the solver failed).

    Args:
      record: a :class:`~stability.analyses.CertifiedRegion` with two axes.
      ax: Axes to draw on (default: current).
      x, y: which axis names go on the horizontal and vertical axes (default: the
        second and the first).
      title: Axes title (default: the class and the multipliers).
      legend: add a legend of the classes present.

    Returns:
      the Axes.
    """
    ax = plt.gca() if ax is None else ax
    x, y, transpose = grid_axes(record, x, y)
    cls = classes(record)
    cls = cls.T if transpose else cls
    xs, ys = np.asarray(record.axes[x]), np.asarray(record.axes[y])
    cmap = ListedColormap([c for _, c in CLASSES])
    norm = BoundaryNorm(np.arange(len(CLASSES) + 1) - 0.5, cmap.N)
    mesh = ax.pcolormesh(xs, ys, cls, cmap=cmap, norm=norm, shading="auto")
    mesh.set_rasterized(True)
    ax.set_xlim(xs.min(), xs.max())
    ax.set_ylim(ys.min(), ys.max())
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    if title is None:
        title = (
            f"{record.family}: F({record.mu:g}, {record.L:g}), "
            f"{record.multipliers.replace('_', '-')}"
        )
    ax.set_title(title)
    if legend:
        present = np.unique(cls)
        handles = [Patch(facecolor=CLASSES[i][1], label=CLASSES[i][0]) for i in present]
        ax.legend(
            handles=handles,
            loc="upper right",
            fontsize=6.5,
            frameon=True,
            framealpha=0.85,
            edgecolor="none",
        )
    return ax
