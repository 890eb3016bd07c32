"""``stability region``: the spectral radius of a per-mode optimizer loop on a grid,
or with ``--certified`` the rates certified on a class of functions.

The grid is checked (the flags its family takes, its size, a drawable ``--plot``)
and the outputs probed before JAX is imported.
"""

import argparse
import importlib.util
import pathlib

from stability.cli._args import positive_number, writable_file, write_atomic

#: family -> the grid flags it needs (the same as
#: ``stability.analyses.regions.FAMILY_ARGS``, kept here so that parsing does not
#: import JAX; a test holds the two equal)
REGION_FAMILIES = {
    "gd": ("lr", "curvature"),
    "nominal": ("alpha", "p", "curvature"),
    "heavy_ball": ("lr", "curvature", "beta"),
    "ema_momentum": ("lr", "curvature", "beta"),
    "aggmo": ("lr", "curvature"),
    "nesterov": ("lr", "curvature", "beta"),
}
#: option -> the only family that takes it
REGION_OPTIONS = {"betas": "aggmo", "precondition": "nominal"}
#: largest ``points x n^2`` of a region grid (``n`` the state size per mode: 1 for
#: gd and nominal, 2 for heavy_ball and ema_momentum, 1 + decays for aggmo): 4e7
#: allows a 10^7-point heavy-ball grid (about 1.5 GB) and a 2.5e6-point aggmo grid
#: with three decays (about 3 GB)
MAX_GRID_COST = 40_000_000
#: largest certified grid (``--certified``: one small semidefinite program per cell,
#: milliseconds each, so 10^4 cells take a minute or two)
MAX_CERTIFIED_POINTS = 10_000
#: flags that only ``--certified`` takes
CERTIFIED_FLAGS = ("mu", "smoothness", "target", "multipliers")
MULTIPLIERS = ("zames_falb", "sector")  # stability.analyses.certified.MULTIPLIERS
AGGMO_BETAS = (0.9, 0.99, 0.999)
PLOT_FORMATS = ("png", "pdf", "svg")

_REGION_HELP = {
    "lr": "learning rate a (gd, heavy_ball, ema_momentum, aggmo, nesterov)",
    "curvature": "curvature h of the mode (every family, not with --certified; "
    ">= 0 with --precondition)",
    "beta": "momentum decay in (-1, 1) (heavy_ball, ema_momentum, nesterov)",
    "alpha": "nominal step alpha >= 0 (nominal)",
    "p": "learned eigenvalue p of the nominal term (nominal)",
}
_REGION_EPILOG = """\
each grid flag is a NUMBER (held fixed) or START:STOP:NUM (an axis of NUM points);
every family needs all of its flags and refuses the others:
  gd            --lr --curvature
  nominal       --alpha --p --curvature [--precondition]
  heavy_ball    --lr --curvature --beta
  ema_momentum  --lr --curvature --beta
  aggmo         --lr --curvature [--betas, default 0.9,0.99,0.999]
  nesterov      --lr --curvature --beta
with --certified the curvature is replaced by the class F(mu, L) of every mu-strongly
convex, L-smooth function (--mu, --smoothness; not --curvature, not --precondition):
each cell is certified (rate --target on every function of the class, from a small
semidefinite program; needs pip install -e '.[robust]'), in the band (converges on
every quadratic of the class, not certified) or unstable (some quadratic diverges)
example: stability region --family heavy_ball --lr 0:4:400 --beta 0:0.99:100 \\
             --curvature 1 --plot region.png
         stability region --family heavy_ball --lr 0.02:0.6:5 --beta 0:0.9:5 \\
             --certified --mu 1 --smoothness 10"""


def _axis(text):
    """``start:stop:num`` -> a linspace of ``num >= 1`` points, or a single number."""
    parts = text.split(":")
    try:
        values = [float(x) for x in parts[:2]]
        num = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        parts = ()
    if len(parts) not in (1, 3):
        raise argparse.ArgumentTypeError(
            f"expected NUMBER or START:STOP:NUM, got {text!r}"
        )
    if not all(abs(v) < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    if not 1 <= num <= MAX_GRID_COST:
        raise argparse.ArgumentTypeError(
            f"NUM must be between 1 and {MAX_GRID_COST:,}, got {text!r}"
        )
    if len(parts) == 1:
        return values[0]
    import numpy as np

    return np.linspace(values[0], values[1], num)


def _rate(text):
    """``argparse`` type: a number in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _decays(text):
    """``b1,b2,...`` -> a tuple of floats."""
    try:
        return tuple(float(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_parser(sub):
    """Register ``region`` on an argparse sub-parser collection."""
    p = sub.add_parser(
        "region",
        help="stability region of a per-mode optimizer family",
        description="Spectral radius of a per-mode optimizer loop on a grid; prints\n"
        "the grid shape, the stable fraction and the range of rho. With --certified,\n"
        "the counts of certified, band and unstable cells on the class F(mu, L).",
        epilog=_REGION_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--family",
        required=True,
        choices=list(REGION_FAMILIES),
        help="optimizer family (the flags each takes are listed below)",
    )
    for name in ("lr", "curvature", "beta", "alpha", "p"):
        p.add_argument(
            f"--{name}",
            type=_axis,
            metavar="NUMBER|START:STOP:NUM",
            help=_REGION_HELP[name],
        )
    p.add_argument(
        "--betas",
        type=_decays,
        metavar="B1,B2,...",
        help="aggmo only: its momentum decays (default 0.9,0.99,0.999)",
    )
    p.add_argument(
        "--precondition",
        action="store_true",
        help="nominal only: idealise the output preconditioner as H^(-1/2)",
    )
    c = p.add_argument_group(
        "certified rates on F(mu, L) (--certified replaces --curvature)"
    )
    c.add_argument(
        "--certified",
        action="store_true",
        help="certify a rate on every mu-strongly convex, L-smooth function, cell "
        "by cell, beside the worst quadratic of the class",
    )
    c.add_argument(
        "--mu", type=positive_number, help="strong convexity mu > 0 (--certified)"
    )
    c.add_argument(
        "--smoothness",
        type=positive_number,
        metavar="L",
        help="smoothness L > mu (--certified)",
    )
    c.add_argument(
        "--target",
        type=_rate,
        help="rate certified in each cell, in (0, 1) (--certified; default "
        "1 - 1e-6: convergence)",
    )
    c.add_argument(
        "--multipliers",
        choices=MULTIPLIERS,
        help="zames_falb (default, the stronger) or sector (--certified)",
    )
    p.add_argument(
        "--json",
        dest="json_out",
        metavar="FILE",
        help="write the region record (axes, fixed values, rho and the stable "
        "and marginal grids; with --certified the class, the target and the "
        "certified, band, quadratic_stable and solver_failed grids) as JSON",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the region (a 1-D or 2-D grid) into FILE "
        f"({', '.join('.' + f for f in PLOT_FORMATS)})",
    )
    p.set_defaults(run=run)


def _region_grid(args) -> dict:
    """The grid arguments ``args`` gives its family, checked before computing.

    Raises:
      ValueError: naming the flag: one the family does not take, one it needs and
        is missing, a grid over :data:`MAX_GRID_COST`, a ``--plot`` the grid cannot
        give.
    """
    family, takes = args.family, REGION_FAMILIES[args.family]
    if args.certified:
        for name in ("curvature", "precondition"):
            if getattr(args, name) not in (None, False):
                raise ValueError(
                    f"--{name}: --certified replaces the curvature by the class "
                    "F(--mu, --smoothness)"
                )
        takes = tuple(t for t in takes if t != "curvature")
        missing = [f"--{n}" for n in ("mu", "smoothness") if getattr(args, n) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)}: --certified needs a value")
        if not args.smoothness > args.mu:
            raise ValueError(
                f"--smoothness: must be > --mu = {args.mu:g}, got {args.smoothness:g}"
            )
    else:
        for name in CERTIFIED_FLAGS:
            if getattr(args, name) is not None:
                raise ValueError(f"--{name}: only --certified takes it")
    for name in _REGION_HELP:
        if getattr(args, name) is not None and name not in takes:
            flags = " ".join(f"--{t}" for t in takes)
            raise ValueError(
                f"--{name}: --family {family} does not take it (it takes {flags})"
            )
    for name, only in REGION_OPTIONS.items():
        if getattr(args, name) not in (None, False) and family != only:
            raise ValueError(f"--{name}: only --family {only} takes it, not {family}")
    missing = [f"--{t}" for t in takes if getattr(args, t) is None]
    if missing:
        raise ValueError(f"{', '.join(missing)}: --family {family} needs a value")
    grid = {t: getattr(args, t) for t in takes}
    axes = {k: v.size for k, v in grid.items() if not isinstance(v, float)}
    points = 1
    for n in axes.values():
        points *= n
    betas = args.betas if args.betas is not None else AGGMO_BETAS
    size = {"gd": 1, "nominal": 1, "aggmo": 1 + len(betas)}.get(family, 2)
    limit = MAX_GRID_COST // size**2
    if args.certified:
        limit = MAX_CERTIFIED_POINTS
        if len(axes) not in (1, 2):
            raise ValueError(
                f"--certified: takes a 1-D or 2-D grid, got {len(axes)} axes "
                "(give one or two flags as START:STOP:NUM)"
            )
    if points > limit:
        shape = " x ".join(f"--{k} {n}" for k, n in axes.items())
        raise ValueError(
            f"{', '.join('--' + k for k in axes)}: a grid of {points:,} points "
            f"({shape}) is over the limit of {limit:,} for {family}"
            f"{' --certified' if args.certified else ''}; use fewer points"
        )
    if args.plot is not None:
        if len(axes) not in (1, 2):
            raise ValueError(
                f"--plot: draws a 1-D or 2-D grid, got {len(axes)} axes "
                "(give one or two flags as START:STOP:NUM)"
            )
        suffix = pathlib.Path(args.plot).suffix.lstrip(".").lower()
        if suffix not in PLOT_FORMATS:
            raise ValueError(
                f"--plot: expected a file ending in "
                f"{', '.join('.' + f for f in PLOT_FORMATS)}, got {args.plot!r}"
            )
    return grid


def _save(fig, path) -> None:
    """Write ``fig`` into ``path`` (format from its suffix), then close it."""
    import matplotlib.pyplot as plt

    fmt = pathlib.Path(path).suffix.lstrip(".").lower()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format=fmt), mode="wb")
    finally:
        plt.close(fig)


def _plot_region(region, path) -> None:
    """Draw a 1-D or 2-D region record into ``path`` (format from its suffix)."""
    from stability import plotting

    fixed = ", ".join(f"{k}={v}" for k, v in region.fixed.items())
    with plotting.style():
        fig, axes = plotting.figure(1, 1, width=5.0, height=3.6)
        ax = axes[0, 0]
        if len(region.axes) == 2:
            plotting.region(region, ax)
        else:
            ((name, values),) = region.axes.items()
            plotting.radius_trace(ax, values, region.rho)
            ax.set_xlabel(plotting.axis_label(name))
            ax.set_ylabel("spectral radius ρ")
        ax.set_title(f"{region.family}" + (f" ({fixed})" if fixed else ""))
        _save(fig, path)


def _plot_certified(region, path) -> None:
    """Draw a 1-D or 2-D certified region record into ``path``."""
    from stability import plotting

    with plotting.style():
        fig, axes = plotting.figure(1, 1, width=5.0, height=3.6)
        ax = axes[0, 0]
        if len(region.axes) == 2:
            plotting.certified_region(region, ax)
        else:
            ((name, values),) = region.axes.items()
            plotting.radius_trace(ax, values, region.rho, label="worst quadratic ρ")
            plotting.shade(
                ax,
                values,
                region.certified,
                color=plotting.PALETTE["blue"],
                label="certified on F(μ, L)",
            )
            ax.set_xlabel(plotting.axis_label(name))
            ax.set_ylabel("spectral radius ρ")
            ax.set_title(f"{region.family}: F({region.mu:g}, {region.L:g})")
            ax.legend(loc="best")
        _save(fig, path)


def _write_record(path, region, names, **extra) -> None:
    """Write ``region`` into ``path`` as JSON: its family, axes and fixed values,
    then its attributes ``names`` (arrays as lists) and ``extra``."""
    import json

    record = {
        "family": region.family,
        "axes": {k: v.tolist() for k, v in region.axes.items()},
        "fixed": region.fixed,
    }
    for name in names:
        value = getattr(region, name)
        record[name] = value.tolist() if hasattr(value, "tolist") else value
    record.update(extra)
    write_atomic(path, lambda f: json.dump(record, f))


def _run_certified(args, grid, json_out, plot_out):

    import numpy as np

    from stability import analyses

    if args.family == "aggmo":
        grid["betas"] = args.betas if args.betas is not None else AGGMO_BETAS
    options = {
        k: v
        for k, v in (("target", args.target), ("multipliers", args.multipliers))
        if v is not None
    }
    region = analyses.certified_region(
        args.family, mu=args.mu, L=args.smoothness, **options, **grid
    )
    counts = {
        "certified": int(np.sum(region.certified)),
        "band": int(np.sum(region.band)),
        "unstable": int(np.sum(~region.quadratic_stable)),
        "solver_failed": int(np.sum(region.solver_failed)),
    }
    print(
        f"{args.family} on F({region.mu:g}, {region.L:g}) ({region.multipliers}, "
        f"rate {region.target:.8g}): grid {region.rho.shape}, "
        f"certified {counts['certified']}, "
        f"band (converges on every quadratic, rate not certified) {counts['band']}, "
        f"unstable (some quadratic diverges) {counts['unstable']}, "
        f"solver failures {counts['solver_failed']} ({region.num_solves} solves)"
    )
    if json_out:
        names = ("mu", "L", "target", "multipliers", "rho", "certified", "band")
        names += ("quadratic_stable", "solver_failed", "num_solves")
        _write_record(json_out, region, names, counts=counts)
    if plot_out:
        _plot_certified(region, plot_out)
    return 0


def run(args):
    """Run ``stability region``; 0 on success (errors are raised to ``main``)."""
    grid = _region_grid(args)
    json_out, plot_out = (
        None if path is None else writable_file(flag, path)
        for flag, path in (("--json", args.json_out), ("--plot", args.plot))
    )
    if args.certified and importlib.util.find_spec("cvxpy") is None:
        raise ImportError(
            "--certified: needs cvxpy and Clarabel: pip install -e '.[robust]'"
        )

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from stability import analyses

    if args.certified:
        return _run_certified(args, grid, json_out, plot_out)

    region = analyses.stability_region(
        args.family, precondition=args.precondition, betas=args.betas, **grid
    )
    frac = float(np.mean(region.stable))
    print(
        f"{args.family}: grid {region.rho.shape}, stable fraction {frac:.4f}, "
        f"marginal (rho within rounding of 1, not stable) "
        f"{int(np.sum(region.marginal))}, "
        f"rho in [{region.rho.min():.6g}, {region.rho.max():.6g}]"
    )
    if json_out:
        _write_record(json_out, region, ("rho", "stable", "marginal"))
    if plot_out:
        _plot_region(region, plot_out)
    return 0
