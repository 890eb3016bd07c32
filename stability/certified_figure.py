"""The certified-rate figure: regions certified on every function of F(mu, L) beside
the quadratic regions, and the heavy-ball cycle that explains the band between them.

A figure builder in the form ``stability reproduce`` registers (it returns the
figure, a caption and the key numbers, the fields of ``reproduce.Drawn``)::

    from stability.certified_figure import figure
    fig, caption, numbers = figure(reproduce.Quality(full=False))

Needs the ``robust`` extra (cvxpy and Clarabel). Float64 is assumed switched on by
the caller, as ``stability reproduce`` does.
"""

import math
import time

import numpy as np

MU, L = 1.0, 25.0  # kappa = 25, the class of LRP's heavy-ball counterexample


def _polyak(mu, L):
    k = L / mu
    return 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, (
        (math.sqrt(k) - 1) / (math.sqrt(k) + 1)
    ) ** 2


def _fractions(reg):
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


def figure(quality):
    """Build the figure at ``quality`` (anything with ``pick(quick, full)``, such as
    ``reproduce.Quality``); returns ``(figure, caption, numbers)``."""
    from stability import analyses, plotting
    from stability.analyses import certified

    m = quality.pick(16, 50)
    numbers = {}
    start = time.perf_counter()
    a_p, b_p = _polyak(MU, L)
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
    polyak = analyses.certified_rate("heavy_ball", mu=MU, L=L, lr=a_p, beta=b_p)
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

    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=6.4)
        ax = plotting.certified_region(
            regions["heavy_ball"],
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
            regions["aggmo"],
            axes[0, 1],
            x="betas[1]",
            y="lr",
            title="(b) AggMo, decays (0.5, β₂)",
            legend=False,
        )
        ax.set_xlabel("second decay β₂")
        ax = plotting.certified_region(
            regions["nominal"],
            axes[1, 0],
            x="p",
            y="alpha",
            title="(c) nominal + learned linear term",
            legend=False,
        )
        ax = axes[1, 1]
        ys = np.abs(cycle.trajectory[:61])
        ax.semilogy(
            np.arange(ys.size),
            ys,
            marker=".",
            markersize=3,
            label=f"heavy ball (Polyak): period {cycle.period}",
        )
        # the same function and start: gradient descent with step 2/(mu + L),
        # certified at (kappa - 1)/(kappa + 1), for contrast
        y, gd = cycle.y0, []
        for _ in range(ys.size):
            gd.append(abs(y))
            y = y - gd_step * float(cycle.gradient(y))
        ax.semilogy(
            np.arange(ys.size),
            np.maximum(gd, 1e-300),
            label=f"GD, step 2/(μ + L): certified rate {gd_rate.rate:.3f}",
        )
        ax.set_xlabel("step k")
        ax.set_ylabel("|y_k − y*|")
        ax.set_title("(d) heavy ball cycles on a function of F(1, 25)")
        ax.legend(loc="lower left", fontsize=6.5)

    for name, reg in regions.items():
        numbers[f"{name} cells ({m}x{m})"] = _fractions(reg)
    numbers["regions: SDP solves, seconds"] = (
        f"{sum(r.num_solves for r in regions.values())}, {seconds:.1f}"
    )
    numbers["heavy ball, Polyak (kappa 25): quadratic rate, certified"] = (
        f"{polyak.quadratic_rate:.6f}, {polyak.status}"
    )
    classical = math.sqrt(1 - 1 / math.sqrt(k))
    numbers["Nesterov (kappa 25): quadratic, certified, sqrt(1 - 1/sqrt(kappa))"] = (
        f"{nest.quadratic_rate:.6f}, {nest.rate:.6f}, {classical:.6f}"
    )
    numbers["heavy-ball cycle: period, breakpoints, slopes"] = (
        f"{cycle.period}, {np.round(cycle.breakpoints, 4).tolist()}, "
        f"{cycle.slopes.tolist()}"
    )
    caption = (
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
    return fig, caption, numbers
