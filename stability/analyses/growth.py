"""Growth of a measured quantity with the horizon: exponential rate and polynomial
degree fitted over the upper half of the horizons.

Owns :func:`fit_growth`, shared by the meta-gradient measurements
(:mod:`stability.lemmas.metagrad`) and the learned-optimizer dynamics
(:mod:`stability.lopt.dynamics`).
"""

import numpy as np


def horizons_array(horizons) -> np.ndarray:
    """``horizons`` as a 1-D integer array of positive integers; ``ValueError``
    naming ``horizons`` otherwise."""
    taus = np.asarray(horizons)
    if taus.ndim != 1 or taus.size == 0 or np.any(taus < 1) or np.any(taus % 1):
        raise ValueError("horizons: expected a 1-D array of positive integers")
    return taus.astype(int)


def log_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``x`` over the finite positive
    ``y``; nan with fewer than two such points.

    >>> round(log_slope([0.0, 1.0, 2.0], np.exp([1.0, 3.0, 5.0])), 12)
    2.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(x[ok], np.log(y[ok]), 1)[0])


def fit_growth(horizons, values):
    """``(rate, degree)``: slopes of ``log values`` against ``T`` and against
    ``log T`` over the upper half of the horizons (at least two points).

    >>> rate, degree = fit_growth([1, 2, 4, 8], [1.0, 4.0, 16.0, 64.0])
    >>> round(degree, 12)
    2.0
    """
    taus = horizons_array(horizons).astype(float)
    values = np.asarray(values, float)
    if values.shape != taus.shape:
        raise ValueError(f"values: expected shape {taus.shape}, got {values.shape}")
    tail = slice(min(taus.size // 2, taus.size - 2), None)
    return log_slope(taus[tail], values[tail]), log_slope(
        np.log(taus[tail]), values[tail]
    )
