"""The registry of linear optimizer families: one place that says, per family, which
optax factory builds it, which hyperparameters it takes and how they are checked, and
its per-mode forms (block, closed-form radius, characteristic polynomial, state-space
triple).

Analyses read it instead of keeping their own lists of names::

    from stability.optimizers import FAMILIES

    fam = FAMILIES["heavy_ball"]
    params = fam.check(lr=0.1, beta=0.9)           # validated, defaults filled in
    A, B, C = fam.state_space(**params)            # acts on the gradient
    block, gain = fam.block(0.1 * 2.0, beta=0.9)   # per mode, x = lr * h
    fam.characteristic(0.2, beta=0.9)              # det(z I - block), highest first

``FAMILIES`` is a read-only mapping; iterating it gives the names, in a fixed order.
"""

import dataclasses
import types
from collections.abc import Callable, Mapping

import numpy as np
import optax

from stability._validation import check_beta, check_betas, check_lr, check_scalar
from stability.optimizers import linear, modes


def _positive(name, value):
    return check_scalar(name, value, low=0.0, low_open=True)


@dataclasses.dataclass(frozen=True)
class Family:
    """One linear optimizer family and its per-mode forms.

    Attributes:
      name: the family's name (its key in :data:`FAMILIES`).
      factory: the optax factory of the real optimizer.
      hyperparameters: ``{name: check}`` of the per-mode hyperparameters, in order;
        each check is ``check(name, value) -> value`` and raises ``ValueError``
        naming the argument.
      defaults: values used for hyperparameters that are not given.
      step: the step-size hyperparameter (the ray of
        :func:`stability.analyses.stable_learning_rates`).
      grid: the arguments of :func:`stability.analyses.stability_region`.
      block_params: what the per-mode block takes besides ``x = step * h``.
      block: ``block(x, **block_params) -> (block, noise_gain)``, the per-mode
        closed loop (:mod:`stability.optimizers.modes`).
      radius: the closed-form spectral radius of the block,
        ``radius(x, **block_params, xp=jnp)``, or None when there is none.
      state_space: ``state_space(**hyperparameters) -> (A, B, C)``, the optimizer as
        a linear system acting on a scalar gradient.
      endpoint: the per-mode radius is quasi-convex in the curvature, so its worst
        case over an interval sits at an end (:mod:`stability.analyses.robust`).
    """

    name: str
    factory: Callable[..., optax.GradientTransformation]
    hyperparameters: Mapping[str, Callable]
    defaults: Mapping[str, float]
    step: str
    grid: tuple[str, ...]
    block_params: tuple[str, ...]
    block: Callable
    radius: Callable | None
    state_space: Callable
    endpoint: bool

    def check(self, **hyperparameters) -> dict:
        """The hyperparameters validated, with :attr:`defaults` filled in.

        >>> FAMILIES["nominal"].check(alpha=0.5)
        {'p': 0.0, 'preconditioner': 1.0, 'alpha': 0.5}
        """
        params = dict(self.defaults) | hyperparameters
        names = tuple(self.hyperparameters)
        missing = [k for k in names if k not in params]
        extra = [k for k in params if k not in names]
        if missing or extra:
            raise ValueError(
                f"{self.name}: takes {names}; missing {missing}, unexpected {extra}"
            )
        return {k: self.hyperparameters[k](k, v) for k, v in params.items()}

    def characteristic(self, x, **block_params) -> np.ndarray:
        """Coefficients of the block's characteristic polynomial at one ``x``,
        highest degree first, in float64.

        >>> FAMILIES["heavy_ball"].characteristic(1.0, beta=0.5).tolist()
        [1.0, -0.5, 0.5]
        """
        return modes.characteristic(self.block(x, **block_params)[0])


_MOMENTUM = {"lr": check_lr, "beta": check_beta}
_FAMILIES = (
    Family(
        "gd",
        linear.gd,
        {"lr": check_lr},
        {},
        "lr",
        ("lr", "curvature"),
        (),
        modes.gd_block,
        modes.gd_radius,
        modes.gd_state_space,
        True,
    ),
    Family(
        "nominal",
        linear.nominal_linear,
        {"alpha": check_lr, "p": check_scalar, "preconditioner": _positive},
        {"p": 0.0, "preconditioner": 1.0},
        "alpha",
        ("alpha", "p", "curvature"),
        (),
        modes.gd_block,
        modes.gd_radius,
        modes.nominal_state_space,
        True,
    ),
    Family(
        "heavy_ball",
        linear.heavy_ball,
        _MOMENTUM,
        {},
        "lr",
        ("lr", "curvature", "beta"),
        ("beta",),
        modes.heavy_ball_block,
        modes.heavy_ball_radius,
        modes.heavy_ball_state_space,
        True,
    ),
    Family(
        "ema_momentum",
        linear.ema_momentum,
        _MOMENTUM,
        {},
        "lr",
        ("lr", "curvature", "beta"),
        ("beta",),
        modes.ema_momentum_block,
        modes.ema_momentum_radius,
        modes.ema_momentum_state_space,
        True,
    ),
    Family(
        "nesterov",
        linear.nesterov,
        _MOMENTUM,
        {},
        "lr",
        ("lr", "curvature", "beta"),
        ("beta",),
        modes.nesterov_block,
        modes.nesterov_radius,
        modes.nesterov_state_space,
        False,
    ),
    Family(
        "aggmo",
        linear.aggmo,
        {"lr": check_lr, "betas": check_betas},
        {},
        "lr",
        ("lr", "curvature"),
        ("betas",),
        modes.aggmo_block,
        None,
        modes.aggmo_state_space,
        False,
    ),
)

FAMILIES: Mapping[str, Family] = types.MappingProxyType({f.name: f for f in _FAMILIES})
"""name -> :class:`Family`, for every linear family with a per-mode closed form."""
