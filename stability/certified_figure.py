"""Deprecated: the certified-rate figure is :mod:`stability.figures.fig10`.

``figure(quality)`` (returning ``(figure, caption, numbers)``), ``MU`` and ``L``
still import from here, with a ``DeprecationWarning``, for one release.
"""

import importlib
import warnings

_MOVED = ("figure", "MU", "L")


def _build(quality):
    from stability.figures import fig10

    record = fig10.compute(quality)
    return fig10.draw(record), fig10.caption(record), fig10.numbers(record)


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"stability.certified_figure.{name} is deprecated; use "
        "stability.figures.fig10 (compute, draw, caption, numbers)",
        DeprecationWarning,
        stacklevel=2,
    )
    if name == "figure":
        return _build
    return getattr(importlib.import_module("stability.figures.fig10"), name)
