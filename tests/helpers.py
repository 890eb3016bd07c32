"""Shared test tolerances (one table per dtype) and the optimizer registry."""

import numpy as np

from stability import optimizers

TOL = {
    np.dtype("float64"): dict(rtol=1e-10, atol=1e-12),
    np.dtype("float32"): dict(rtol=1e-5, atol=1e-6),
}

# name -> (factory of lr, per-mode family, family params): every linear optimizer whose
# closed form is in stability.optimizers.modes, built by the registry's factories.
_CASES = {
    "gd": ("gd", {}),
    "heavy_ball": ("heavy_ball", {"beta": 0.7}),
    "heavy_ball_neg": ("heavy_ball", {"beta": -0.4}),
    "ema_momentum": ("ema_momentum", {"beta": 0.9}),
    "aggmo": ("aggmo", {"betas": (0.5, 0.9, 0.99)}),
}
LINEAR_OPTIMIZERS = {
    name: (
        lambda lr, f=family, kw=params: optimizers.FAMILIES[f].factory(lr, **kw),
        family,
        params,
    )
    for name, (family, params) in _CASES.items()
}
