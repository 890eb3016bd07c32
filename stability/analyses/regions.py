"""Stability regions on grids and the largest stable learning rate, from the exact
per-mode closed forms of :mod:`stability.optimizers.modes`."""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability._validation import (
    as_float_array,
    check_betas,
    check_flag,
    check_scalar,
)
from stability.optimizers import modes

# family -> the grid arguments it takes (besides static options)
FAMILY_ARGS = {
    "gd": ("lr", "curvature"),
    "nominal": ("alpha", "p", "curvature"),
    "heavy_ball": ("lr", "curvature", "beta"),
    "ema_momentum": ("lr", "curvature", "beta"),
    "aggmo": ("lr", "curvature"),
}


class StabilityRegion(NamedTuple):
    """A stability region on a grid.

    Attributes:
      family: the optimizer family (a key of :data:`FAMILY_ARGS`).
      axes: the grid axes in order, ``{name: 1-D array}``; ``rho`` has shape
        ``tuple(len(a) for a in axes.values())``.
      fixed: the arguments held fixed (scalars, ``betas``, ``precondition``).
      rho: spectral radius of the per-mode closed loop at each grid point.
    """

    family: str
    axes: dict
    fixed: dict
    rho: np.ndarray

    @property
    def stable(self) -> np.ndarray:
        return self.rho < 1


@partial(jax.jit, static_argnames=("family", "precondition", "betas"))
def _rho(family, args, *, precondition=False, betas=None):
    if family == "nominal":
        h = jnp.sqrt(args["curvature"]) if precondition else args["curvature"]
        return modes.gd_radius((args["alpha"] + args["p"]) * h)
    x = args["lr"] * args["curvature"]
    if family == "gd":
        return modes.gd_radius(x)
    if family == "heavy_ball":
        return modes.heavy_ball_radius(x, args["beta"])
    if family == "ema_momentum":
        return modes.ema_momentum_radius(x, args["beta"])
    block, _ = modes.aggmo_block(x, betas)
    return jnp.max(jnp.abs(jnp.linalg.eigvals(block)), axis=-1)


def _check_family(family):
    if family not in FAMILY_ARGS:
        raise ValueError(
            f"family: expected one of {tuple(FAMILY_ARGS)}, got {family!r}"
        )


def mode_radius(family: str, *, precondition=False, betas=None, **args):
    """Spectral radius of the per-mode block, broadcasting over array arguments.

    >>> float(mode_radius("heavy_ball", lr=1.0, curvature=0.5, beta=0.25))
    0.5
    """
    _check_family(family)
    missing = set(FAMILY_ARGS[family]) - set(args)
    extra = set(args) - set(FAMILY_ARGS[family])
    if missing or extra:
        raise ValueError(
            f"{family}: takes {FAMILY_ARGS[family]}; missing {sorted(missing)}, "
            f"unexpected {sorted(extra)}"
        )
    precondition = check_flag("precondition", precondition)
    if precondition and family != "nominal":
        raise ValueError(
            f"precondition: only the nominal family takes it, not {family}"
        )
    if family == "aggmo":
        betas = check_betas("betas", (0.9, 0.99, 0.999) if betas is None else betas)
    elif betas is not None:
        raise ValueError(f"betas: only the aggmo family takes them, not {family}")
    arrays = {k: as_float_array(k, v) for k, v in args.items()}
    if "beta" in arrays and np.any(np.abs(arrays["beta"]) >= 1):
        raise ValueError("beta: decays must lie in (-1, 1)")
    # step sizes are non-negative; the idealised preconditioner needs h >= 0
    for name in ("lr", "alpha") + (("curvature",) if precondition else ()):
        if name in arrays and np.any(arrays[name] < 0):
            raise ValueError(f"{name}: must be >= 0")
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    return _rho(family, arrays, precondition=precondition, betas=betas)


def stability_region(family: str, *, precondition=False, betas=None, **grid):
    """Spectral radius of ``family``'s per-mode loop on the grid spanned by the 1-D
    array arguments (in keyword order); scalar arguments are held fixed.

    Args:
      family: ``"gd"`` (``lr``, ``curvature``), ``"nominal"`` (``alpha``, ``p``,
        ``curvature``; ``precondition=True`` idealises the output preconditioner as
        ``H^{-1/2}``), ``"heavy_ball"`` and ``"ema_momentum"`` (``lr``, ``curvature``,
        ``beta``), ``"aggmo"`` (``lr``, ``curvature``; ``betas`` fixed).
      **grid: each argument a scalar or a 1-D array (an axis).

    Returns:
      a :class:`StabilityRegion`.

    >>> import numpy as np
    >>> r = stability_region("gd", lr=np.array([0.5, 1.5, 2.5]), curvature=1.0)
    >>> r.stable.tolist()
    [True, True, False]
    """
    _check_family(family)
    axes, fixed = {}, {}
    for name, value in grid.items():
        arr = as_float_array(name, value)
        if arr.ndim == 1:
            axes[name] = arr
        elif arr.ndim == 0:
            fixed[name] = float(arr)
        else:
            raise ValueError(
                f"{name}: expected a scalar or a 1-D axis, got {arr.shape}"
            )
    mesh = np.meshgrid(*axes.values(), indexing="ij") if axes else []
    args = dict(zip(axes, mesh, strict=True)) | fixed
    rho = np.asarray(
        mode_radius(family, precondition=precondition, betas=betas, **args)
    )
    if precondition:
        fixed["precondition"] = True
    if family == "aggmo":
        fixed["betas"] = tuple(betas) if betas is not None else (0.9, 0.99, 0.999)
    return StabilityRegion(family, axes, fixed, rho)


def max_stable_learning_rate(
    family: str, curvature=1.0, *, rtol: float = 1e-15, **params
) -> float:
    """The largest ``lr`` such that every step size in ``(0, lr)`` is stable, by
    bisection along the learning-rate ray (``alpha`` for the ``nominal`` family).

    Exact to ``rtol`` for the closed forms; it assumes the stable set along the ray
    is an interval starting at 0, true for every family here with decays in [0, 1).

    >>> round(max_stable_learning_rate("heavy_ball", 1.0, beta=0.5), 12)
    3.0
    """
    _check_family(family)
    curvature = check_scalar("curvature", curvature, low=0.0, low_open=True)
    rtol = check_scalar("rtol", rtol, low=0.0, high=1.0, low_open=True, high_open=True)
    ray = "alpha" if family == "nominal" else "lr"
    if ray in params:
        raise ValueError(f"{ray}: is the ray searched along, not a parameter")
    params = {
        k: v if k in ("betas", "precondition") else check_scalar(k, v)
        for k, v in params.items()
    }

    def stable(t):
        return float(mode_radius(family, curvature=curvature, **{ray: t}, **params)) < 1

    lo, hi = 0.0, 1.0 / curvature
    for _ in range(2000):
        if not stable(hi):
            break
        lo, hi = hi, 2 * hi
    else:
        return float("inf")
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return lo
