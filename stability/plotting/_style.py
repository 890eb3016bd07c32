"""House style for figures: a colour-blind-safe palette, readable sizes, saving."""

import contextlib
import pathlib

import matplotlib as mpl
import matplotlib.pyplot as plt

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common
# colour-vision deficiencies. Ordered so that the first few contrast most.
PALETTE = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "orange": "#E69F00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
CYCLE = tuple(PALETTE[k] for k in ("blue", "vermillion", "green", "orange", "purple"))
UNSTABLE = "#d9d9d9"  # cells where rho >= 1
REGION_CMAP = "viridis"  # perceptually uniform, colour-blind safe

# Sized for a ~7 inch (700 px at README scale) figure.
RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.prop_cycle": mpl.cycler(color=CYCLE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
}


@contextlib.contextmanager
def style():
    """Apply the house style inside a ``with`` block (restores rcParams after)."""
    with mpl.rc_context(RC):
        yield


def figure(nrows=1, ncols=1, *, width=7.0, height=None, **kwargs):
    """A figure and its axes grid in the house style (call inside :func:`style`)."""
    height = height if height is not None else 2.6 * nrows
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kwargs)


def save(fig, stem, *, formats=("png", "pdf"), dpi=200):
    """Write ``fig`` as ``stem.png``, ``stem.pdf`` (...) and return the paths."""
    stem = pathlib.Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        # A fixed creation date keeps the committed PDFs byte-stable across renders.
        meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        fig.savefig(path, dpi=dpi, metadata=meta)
        paths.append(path)
    return paths


def panel_label(ax, text):
    """A bold panel letter, ``(a)``, in the upper-left corner outside the axes."""
    ax.text(
        -0.02,
        1.02,
        text,
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontweight="bold",
    )
    return ax
