"""Shared test tolerances (one table per dtype) and the optimizer registry."""

import numpy as np

from stability import optimizers

TOL = {
    np.dtype("float64"): dict(rtol=1e-10, atol=1e-12),
    np.dtype("float32"): dict(rtol=1e-5, atol=1e-6),
}

# name -> (factory of lr, per-mode family, family params): every linear optimizer whose
# closed form is in stability.optimizers.modes.
LINEAR_OPTIMIZERS = {
    "gd": (lambda lr: optimizers.gd(lr), "gd", {}),
    "heavy_ball": (
        lambda lr: optimizers.heavy_ball(lr, 0.7),
        "heavy_ball",
        {"beta": 0.7},
    ),
    "heavy_ball_neg": (
        lambda lr: optimizers.heavy_ball(lr, -0.4),
        "heavy_ball",
        {"beta": -0.4},
    ),
    "ema_momentum": (
        lambda lr: optimizers.ema_momentum(lr, 0.9),
        "ema_momentum",
        {"beta": 0.9},
    ),
    "aggmo": (
        lambda lr: optimizers.aggmo(lr, (0.5, 0.9, 0.99)),
        "aggmo",
        {"betas": (0.5, 0.9, 0.99)},
    ),
}
