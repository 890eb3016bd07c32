"""What every figure module shares: the run's quality, the "not available" status,
and the number formatting of the report."""

from __future__ import annotations

from typing import Any, NamedTuple


class Quality(NamedTuple):
    """Quick (small grids, few seeds, short horizons) or full (publication)."""

    full: bool = False
    # --full: folder where meta-training and evaluation are rerun (None: use the
    # records shipped in stability/lopt/records/)
    lopt_runs: str | None = None

    @property
    def name(self) -> str:
        return "full" if self.full else "quick"

    def pick(self, quick, full):
        """``full`` in full mode, ``quick`` otherwise.

        >>> Quality(full=False).pick(100, 400), Quality(full=True).pick(100, 400)
        (100, 400)
        """
        return full if self.full else quick

    @property
    def dpi(self) -> int:
        return self.pick(110, 200)


class NotAvailable(Exception):  # noqa: N818 (a status, not an error)
    """A figure whose inputs do not exist yet; the message says which and why."""


class Drawn(NamedTuple):
    """A built figure: the matplotlib figure, a one-paragraph caption, and the key
    numbers behind it (name -> formatted value)."""

    figure: Any
    caption: str
    numbers: dict


def fmt(x, digits=4) -> str:
    """A float in a compact, report-friendly form.

    >>> fmt(0.5), fmt(12345.0), fmt(2e-5, 3), fmt(float("nan"))
    ('0.5', '1.234e+04', '2.00e-05', 'nan')
    """
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def optional_module(name, needed_for):
    """Import ``name``, or raise :class:`NotAvailable` if it is not installed (an
    optional extra)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise NotAvailable(f"{needed_for} needs {name}, not in this build") from err
        raise
