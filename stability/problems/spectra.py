"""Eigenvalue spectra for building noisy quadratics (largest first)."""

import numpy as np

from stability._validation import check_int, check_scalar


def uniform(n, low=1.0, high=None):
    """``n`` equally spaced eigenvalues on ``[low, high]`` (all ``low`` if no high)."""
    n = check_int("n", n, low=1)
    low = check_scalar("low", low, low=0.0, low_open=True)
    high = low if high is None else check_scalar("high", high, low=low)
    return np.linspace(high, low, n)


def power_law(n, scale=1.0, exponent=1.0):
    """``scale / i**exponent`` for ``i = 1..n``: the classic ``1/i`` NQM spectrum."""
    n = check_int("n", n, low=1)
    scale = check_scalar("scale", scale, low=0.0, low_open=True)
    exponent = check_scalar("exponent", exponent, low=0.0)
    return scale / np.arange(1, n + 1) ** exponent


def two_level(n, high=1.0, low=1e-2, fraction_high=0.5):
    """A fraction ``fraction_high`` of the eigenvalues at ``high``, the rest at
    ``low``."""
    n = check_int("n", n, low=1)
    low = check_scalar("low", low, low=0.0, low_open=True)
    high = check_scalar("high", high, low=low)
    frac = check_scalar("fraction_high", fraction_high, low=0.0, high=1.0)
    k = int(round(frac * n))
    return np.concatenate([np.full(k, high), np.full(n - k, low)])


def log_uniform(n, low=1e-3, high=1.0, *, seed=None):
    """Eigenvalues log-spaced on ``[low, high]``, or drawn log-uniformly if ``seed``."""
    n = check_int("n", n, low=1)
    low = check_scalar("low", low, low=0.0, low_open=True)
    high = check_scalar("high", high, low=low)
    if seed is None:
        return np.geomspace(high, low, n)
    u = np.random.default_rng(seed).uniform(size=n)
    return np.sort(np.exp(np.log(low) + u * np.log(high / low)))[::-1]
