"""Stability regions on grids and the stable learning rates, from the exact per-mode
blocks of :mod:`stability.optimizers.modes`.

Cells whose radius lies within rounding of 1 are *marginal* and never stable (the policy
of :mod:`stability.analyses.spectral`); a region records them beside ``rho``.
"""

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
from stability.analyses import spectral
from stability.optimizers import FAMILIES, modes

# family -> the grid arguments it takes (besides static options), from the registry
FAMILY_ARGS = {name: f.grid for name, f in FAMILIES.items()}


class _RegionFields(NamedTuple):
    family: str
    axes: dict
    fixed: dict
    rho: np.ndarray
    marginal: np.ndarray


class StabilityRegion(_RegionFields):
    """A stability region on a grid.

    Attributes:
      family: the optimizer family (a key of :data:`stability.optimizers.FAMILIES`).
      axes: the grid axes in order, ``{name: 1-D array}``; ``rho`` has shape
        ``tuple(len(a) for a in axes.values())``.
      fixed: the arguments held fixed (scalars, ``betas``, ``precondition``).
      rho: spectral radius of the per-mode closed loop at each grid point.
      marginal: where ``rho`` is within rounding of 1 (:func:`stability.analyses.
        is_marginal`'s tolerance on each cell's block); such cells are not stable.
        A record built by hand without it gets the tolerance of a block of norm
        ``rho``.
    """

    __slots__ = ()

    def __new__(cls, family, axes, fixed, rho, marginal=None):
        rho = np.asarray(rho)
        if marginal is None:
            marginal = np.abs(rho - 1) <= spectral.MARGIN * np.finfo(float).eps * rho
        return super().__new__(
            cls, family, axes, fixed, rho, np.asarray(marginal, dtype=bool)
        )

    @property
    def stable(self) -> np.ndarray:
        """``rho < 1`` and not marginal."""
        return (self.rho < 1) & ~self.marginal


@partial(jax.jit, static_argnames=("family", "precondition", "betas"))
def _classify(family, args, *, precondition=False, betas=None):
    """``(rho, marginal)`` of the per-mode blocks, from the kernel that
    :func:`stability.analyses.spectral_radius` runs on JAX batches."""
    if family == "nominal":
        h = jnp.sqrt(args["curvature"]) if precondition else args["curvature"]
        block, _ = modes.gd_block((args["alpha"] + args["p"]) * h)
    else:
        x = args["lr"] * args["curvature"]
        params = {"betas": betas} if family == "aggmo" else {}
        if "beta" in args:
            params["beta"] = args["beta"]
        block, _ = modes.block(family, x, **params)
    rho, marginal, _ = spectral._classify(block, jnp, False)
    return rho, marginal


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
    return _mode_classify(family, precondition=precondition, betas=betas, **args)[0]


def _mode_classify(family: str, *, precondition=False, betas=None, **args):
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
    return _classify(family, arrays, precondition=precondition, betas=betas)


def split_grid(grid: dict) -> tuple[dict, dict]:
    """``{name: scalar or 1-D array}`` -> ``(axes, fixed)``: the 1-D float arrays and
    the floats; anything else raises ValueError naming the argument."""
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
    return axes, fixed


def stability_region(family: str, *, precondition=False, betas=None, **grid):
    """Spectral radius of ``family``'s per-mode loop on the grid spanned by the 1-D
    array arguments (in keyword order); scalar arguments are held fixed.

    Args:
      family: ``"gd"`` (``lr``, ``curvature``), ``"nominal"`` (``alpha``, ``p``,
        ``curvature``; ``precondition=True`` idealises the output preconditioner as
        ``H^{-1/2}``), ``"heavy_ball"`` and ``"ema_momentum"`` (``lr``, ``curvature``,
        ``beta``), ``"aggmo"`` (``lr``, ``curvature``; ``betas`` fixed), ``"nesterov"``
        (``lr``, ``curvature``, ``beta``).
      **grid: each argument a scalar or a 1-D array (an axis).

    Returns:
      a :class:`StabilityRegion`.

    >>> import numpy as np
    >>> r = stability_region("gd", lr=np.array([0.0, 0.5, 1.5, 2.5]), curvature=1.0)
    >>> r.stable.tolist(), r.marginal.tolist()
    ([False, True, True, False], [True, False, False, False])
    """
    _check_family(family)
    axes, fixed = split_grid(grid)
    # each axis along its own dimension; the kernel broadcasts them to the grid
    k = len(axes)
    args = {
        name: axis.reshape([-1 if j == i else 1 for j in range(k)])
        for i, (name, axis) in enumerate(axes.items())
    } | fixed
    rho, marginal = (
        np.asarray(a)
        for a in _mode_classify(family, precondition=precondition, betas=betas, **args)
    )
    if precondition:
        fixed["precondition"] = True
    if family == "aggmo":
        fixed["betas"] = tuple(betas) if betas is not None else (0.9, 0.99, 0.999)
    return StabilityRegion(family, axes, fixed, rho, marginal)


def _ray(family, curvature, rtol, params):
    """Validated arguments of the learning-rate ray: its name, ``x = c1 t + c0``, and
    the block's other parameters."""
    _check_family(family)
    curvature = check_scalar("curvature", curvature, low=0.0, low_open=True)
    rtol = check_scalar("rtol", rtol, low=0.0, high=1.0, low_open=True, high_open=True)
    ray = FAMILIES[family].step
    if ray in params:
        raise ValueError(f"{ray}: is the ray searched along, not a parameter")
    params = {
        k: v if k in ("betas", "precondition") else check_scalar(k, v)
        for k, v in params.items()
    }
    mode_radius(family, curvature=curvature, **{ray: 0.0}, **params)  # validates
    if family != "nominal":
        return ray, curvature, 0.0, params, rtol
    h = np.sqrt(curvature) if params.get("precondition", False) else curvature
    return ray, h, params["p"] * h, params, rtol


def _crossings(family, c1, c0, params):
    """Every ``t >= 0`` where an eigenvalue of the block can sit on the unit circle.

    The characteristic polynomial is affine in ``x`` for every family (``x`` enters
    one column of the block): ``p(z; x) = a(z) + x b(z)``. A root on the circle,
    ``z = e^{i theta}``, needs ``x = -a(z)/b(z)`` real, i.e. a root on the circle of
    ``z^d [a(z) b(1/z) - a(1/z) b(z)]``; each gives one candidate ``x``.
    """
    others = {k: v for k, v in params.items() if k in ("beta", "betas")}
    if family == "aggmo":
        others["betas"] = others.get("betas") or (0.9, 0.99, 0.999)

    def coeffs(x):
        return FAMILIES[family].characteristic(x, **others)

    a = coeffs(0.0)
    b = coeffs(1.0) - a
    curve = coeffs(2.0) - a - 2 * b  # zero when the coefficients are affine in x
    if np.max(np.abs(curve)) > 1e-9 * (1 + np.max(np.abs(a)) + np.max(np.abs(b))):
        raise NotImplementedError(
            f"{family}: characteristic polynomial not affine in x = lr h; the "
            "crossing search assumes it"
        )
    resultant = np.polysub(np.polymul(a, b[::-1]), np.polymul(a[::-1], b))
    zs = [1.0, -1.0]
    if np.any(resultant):
        roots = np.roots(np.trim_zeros(resultant, "f"))
        zs += [z for z in roots if abs(abs(z) - 1) < 1e-6]
    ts = []
    for z in zs:
        bz = np.polyval(b, z)
        if abs(bz) > 1e-300:
            x = float(np.real(-np.polyval(a, z) / bz))
            # a crossing within rounding of the ray's start is the start itself
            if abs(x - c0) > 64 * np.finfo(float).eps * (1 + abs(c0)):
                ts.append((x - c0) / c1)
    return sorted({t for t in ts if np.isfinite(t) and t > 0})


def stable_learning_rates(
    family: str, curvature=1.0, *, rtol: float = 1e-16, **params
) -> list[tuple[float, float]]:
    """The whole stable set along the learning-rate ray ``lr > 0`` (``alpha >= 0`` for
    the ``nominal`` family) as sorted disjoint open intervals ``(lo, hi)``; ``hi`` is
    ``inf`` when no step size is too large, and the list is empty when none is stable.

    Exact candidates for the ends come from the unit-circle crossings of the per-mode
    characteristic polynomial (see ``_crossings``); between consecutive candidates
    stability cannot change, so one per-mode radius per gap decides it (marginal
    counts as unstable); each end is then refined by bisection on the closed-form
    radius to ``rtol`` (the default, below float64's epsilon, bisects to the last
    float). An end at the ray's start is exactly 0.

    >>> def show(intervals):
    ...     return [(round(lo, 12), round(hi, 12)) for lo, hi in intervals]
    >>> show(stable_learning_rates("nominal", 1.0, p=-0.5))   # alpha in (0.5, 2.5)
    [(0.5, 2.5)]
    >>> show(stable_learning_rates("heavy_ball", 2.0, beta=0.5))
    [(0.0, 1.5)]
    """
    ray, c1, c0, params, rtol = _ray(family, curvature, rtol, params)
    cuts = _crossings(family, c1, c0, params)

    def classify(ts, strict=True):
        rho, marginal = _mode_classify(
            family, curvature=curvature, **{ray: np.asarray(ts)}, **params
        )
        return np.asarray(rho < 1) & ~(np.asarray(marginal) & strict)

    ends = [0.0, *cuts]
    probes = [0.5 * (lo + hi) for lo, hi in zip(ends, ends[1:], strict=False)]
    probes.append(2 * ends[-1] + 1.0 / c1)
    stable = classify(probes)

    def refine(lo, hi):
        """Bisection for the end between stable ``lo`` and unstable ``hi`` (or the
        reverse) on ``rho < 1`` itself, the best estimate of where the exact radius
        crosses 1: returns the last probe on the stable side."""
        good, bad = (lo, hi) if classify([lo])[0] else (hi, lo)
        while abs(bad - good) > rtol * max(abs(bad), abs(good)):
            mid = 0.5 * (good + bad)
            if mid in (good, bad):
                break
            good, bad = (mid, bad) if classify([mid], strict=False)[0] else (good, mid)
        return good

    intervals = []
    for i, ok in enumerate(stable):
        if not ok:
            continue
        lo = 0.0 if i == 0 else refine(probes[i - 1], probes[i])
        hi = float("inf") if i == len(probes) - 1 else refine(probes[i], probes[i + 1])
        if i > 0 and stable[i - 1]:
            lo = intervals.pop()[0]  # no end between two stable gaps: merge
        intervals.append((float(lo), float(hi)))
    return intervals


def max_stable_learning_rate(
    family: str, curvature=1.0, *, rtol: float = 1e-16, **params
) -> float:
    """The ``lr`` such that the stable set along the learning-rate ray (``alpha`` for
    the ``nominal`` family) is exactly ``(0, lr)``, to ``rtol``.

    Raises a ``ValueError`` when the stable set has another shape: small steps are
    unstable (e.g. a nominal family with ``p < 0`` needs ``alpha > -p``), or
    stability returns at larger steps; :func:`stable_learning_rates` gives the whole
    set then. ``inf`` when every positive step is stable.

    >>> round(max_stable_learning_rate("heavy_ball", 1.0, beta=0.5), 12)
    3.0
    """
    intervals = stable_learning_rates(family, curvature, rtol=rtol, **params)
    if len(intervals) != 1 or intervals[0][0] != 0.0:
        ray = FAMILIES[family].step
        raise ValueError(
            f"{family}: the stable set in {ray} is {intervals}, not one interval "
            f"(0, {ray}); see stable_learning_rates"
        )
    return intervals[0][1]
