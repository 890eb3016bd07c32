"""fig10: regions certified on every function of F(mu, L) beside the regions
stable on the class's quadratics, and the heavy-ball cycle that explains the band
between them. Needs the ``robust`` extra (cvxpy and Clarabel)."""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import numpy as np

from stability.figures._base import Quality, optional_module

MU, L = 1.0, 25.0  # kappa = 25, the class of LRP's heavy-ball counterexample


class Record(NamedTuple):
    m: int  # grid points per axis
    regions: dict  # family -> analyses.CertifiedRegion
    seconds: float  # the wall time of the regions' SDP solves
    polyak: Any  # certified_rate of heavy ball at Polyak's parameters
    nesterov: Any  # certified_rate of Nesterov's method at 1/L
    gd: Any  # certified_rate of gradient descent at 2/(mu + L)
    gd_trajectory: np.ndarray  # |y_k - y*| of that GD on the cycle's function
    cycle: Any  # the heavy-ball counterexample search


def polyak(mu, L) -> tuple[float, float]:
    """Polyak's heavy-ball step and momentum, optimal on the class's quadratics.

    >>> polyak(1.0, 25.0)
    (0.1111111111111111, 0.4444444444444444)
    """
    k = L / mu
    return 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, (
        (math.sqrt(k) - 1) / (math.sqrt(k) + 1)
    ) ** 2


def compute(quality: Quality) -> Record:
    optional_module("cvxpy", "fig10")
    from stability import analyses
    from stability.analyses import certified

    m = quality.pick(16, 50)
    start = time.perf_counter()
    a_p, b_p = polyak(MU, L)
    regions = {
        "heavy_ball": analyses.certified_region(
            "heavy_ball",
            mu=MU,
            L=L,
            lr=np.linspace(0.16 / m, 0.16, m),
            beta=np.linspace(0.0, 0.95, m),
        ),
        "aggmo": analyses.certified_region(
            "aggmo",
            mu=MU,
            L=L,
            lr=np.linspace(0.5 / m, 0.5, m),
            betas=(0.5, np.linspace(0.0, 0.98, m)),
        ),
        "nominal": analyses.certified_region(
            "nominal",
            mu=MU,
            L=L,
            alpha=np.linspace(0.0, 0.1, m),
            p=np.linspace(-0.05, 0.1, m),
        ),
    }
    seconds = time.perf_counter() - start
    rate = analyses.certified_rate("heavy_ball", mu=MU, L=L, lr=a_p, beta=b_p)
    k = L / MU
    nest = analyses.certified_rate(
        "nesterov",
        mu=MU,
        L=L,
        lr=1 / L,
        beta=(math.sqrt(k) - 1) / (math.sqrt(k) + 1),
    )
    gd_step = 2 / (MU + L)
    gd_rate = analyses.certified_rate("gd", mu=MU, L=L, lr=gd_step)
    cycle = certified.counterexample_search(
        "heavy_ball", mu=MU, L=L, lr=a_p, beta=b_p, num_trials=2048, steps=400
    )
    # the same function and start: gradient descent with step 2/(mu + L),
    # certified at (kappa - 1)/(kappa + 1), for contrast
    y, gd = cycle.y0, []
    for _ in range(np.abs(cycle.trajectory[:61]).size):
        gd.append(abs(y))
        y = y - gd_step * float(cycle.gradient(y))
    return Record(m, regions, seconds, rate, nest, gd_rate, np.asarray(gd), cycle)


def draw(record: Record):
    from stability import plotting

    a_p, b_p = polyak(MU, L)
    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=6.4)
        ax = plotting.certified_region(
            record.regions["heavy_ball"],
            axes[0, 0],
            x="beta",
            y="lr",
            title=f"(a) heavy ball on F({MU:g}, {L:g})",
        )
        ax.plot(
            [b_p],
            [a_p],
            marker="*",
            color="white",
            markeredgecolor="black",
            markersize=10,
            linestyle="none",
        )
        ax = plotting.certified_region(
            record.regions["aggmo"],
            axes[0, 1],
            x="betas[1]",
            y="lr",
            title="(b) AggMo, decays (0.5, β₂)",
            legend=False,
        )
        ax.set_xlabel("second decay β₂")
        ax = plotting.certified_region(
            record.regions["nominal"],
            axes[1, 0],
            x="p",
            y="alpha",
            title="(c) nominal + learned linear term",
            legend=False,
        )
        ax = axes[1, 1]
        ys = np.abs(record.cycle.trajectory[:61])
        ax.semilogy(
            np.arange(ys.size),
            ys,
            marker=".",
            markersize=3,
            label=f"heavy ball (Polyak): period {record.cycle.period}",
        )
        ax.semilogy(
            np.arange(ys.size),
            np.maximum(record.gd_trajectory, 1e-300),
            label=f"GD, step 2/(μ + L): certified rate {record.gd.rate:.3f}",
        )
        ax.set_xlabel("step k")
        ax.set_ylabel("|y_k − y*|")
        ax.set_title("(d) heavy ball cycles on a function of F(1, 25)")
        ax.legend(loc="lower left", fontsize=6.5)
    return fig


def _fractions(reg) -> str:
    cells = reg.rho.size
    return (
        f"{int(reg.certified.sum())} certified, {int(reg.band.sum())} band, "
        f"{int((~reg.quadratic_stable).sum())} unstable of {cells}"
        + (
            f", {int(reg.solver_failed.sum())} solver failures"
            if reg.solver_failed.any()
            else ""
        )
    )


def numbers(record: Record) -> dict:
    m, cycle = record.m, record.cycle
    out = {
        f"{name} cells ({m}x{m})": _fractions(r) for name, r in record.regions.items()
    }
    out["regions: SDP solves, seconds"] = (
        f"{sum(r.num_solves for r in record.regions.values())}, {record.seconds:.1f}"
    )
    out["heavy ball, Polyak (kappa 25): quadratic rate, certified"] = (
        f"{record.polyak.quadratic_rate:.6f}, {record.polyak.status}"
    )
    classical = math.sqrt(1 - 1 / math.sqrt(L / MU))
    out["Nesterov (kappa 25): quadratic, certified, sqrt(1 - 1/sqrt(kappa))"] = (
        f"{record.nesterov.quadratic_rate:.6f}, {record.nesterov.rate:.6f}, "
        f"{classical:.6f}"
    )
    out["heavy-ball cycle: period, breakpoints, slopes"] = (
        f"{cycle.period}, {np.round(cycle.breakpoints, 4).tolist()}, "
        f"{cycle.slopes.tolist()}"
    )
    return out


def caption(record: Record) -> str:
    return (
        f"Certified convergence on every μ-strongly convex, L-smooth function "
        f"(μ = {MU:g}, L = {L:g}; weighted off-by-one / Zames–Falb IQC, one SDP per "
        "cell at rate 1 − 1e-6) against stability on the class's quadratics. Blue: "
        "certified; orange: stable on every quadratic of the class but not certified; "
        "grey: some quadratic diverges. (a) Heavy ball: Polyak's quadratic-optimal "
        "parameters (star) lie in the band. (b) AggMo with decays (0.5, β₂). (c) A "
        "nominal step plus a scalar learned linear term is memoryless: certified "
        "exactly where every quadratic is stable, no band. (d) The band is real: a "
        "piecewise-quadratic function of the class, found by search, on which heavy "
        "ball with Polyak's parameters cycles (period 3), while gradient descent with "
        "step 2/(μ + L) converges at its certified rate (κ − 1)/(κ + 1)."
    )
