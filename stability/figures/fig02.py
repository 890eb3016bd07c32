"""fig02: numeric stability regions of the per-mode closed loop with the exact Jury
boundaries, derived symbolically, drawn over them and checked cell by cell."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from stability.figures._base import Quality, fmt

ALPHA = 0.5  # the nominal step of panels (b) and (c)
# (d) and (e): (axes position, family, lr scale, title)
MOMENTUM = (
    ((1, 1), "heavy_ball", "linear", "(d) heavy ball"),
    ((2, 0), "ema_momentum", "log", "(e) EMA momentum"),
)


class Panel(NamedTuple):
    region: Any  # analyses.StabilityRegion
    curves: dict  # name -> (x, y) of an exact boundary
    tex: dict  # name -> the boundary's expression as mathtext


class Record(NamedTuple):
    m: int  # grid points per axis
    panels: dict  # "gd", "nominal", "preconditioned", "heavy_ball", ... -> Panel
    exact: dict  # the exact boundaries in words, as the report prints them
    checks: dict  # family -> (grid cells disagreeing with the exact boundary, cells)
    aggmo_checked: int  # rational b at which AggMo's full boundary was derived


def _lambdified(expr, *symbols):
    import sympy

    return sympy.lambdify(symbols, expr, modules="numpy")


def _tex(expr, *, expand=False) -> str:
    """A sympy expression as matplotlib mathtext: expanded into a sum, or factored
    with as few minus signs as possible (``2(beta + 1)/(1 - beta)``)."""
    import sympy

    if expand:
        return f"${sympy.latex(sympy.expand(expr))}$"
    num, den = sympy.fraction(sympy.together(expr))
    options = [
        (sympy.latex(sympy.factor(sign * num)), sympy.latex(sympy.factor(sign * den)))
        for sign in (1, -1)
    ]
    top, bottom = min(
        options, key=lambda nd: (nd[1].startswith("-"), "".join(nd).count("-"))
    )
    if bottom == "1":
        return f"${top}$"
    return f"$\\dfrac{{{top}}}{{{bottom}}}$"


def aggmo_decays(b):
    """AggMo decays ``(b, 1 - (1 - b)/10, 1 - (1 - b)/100)``: b = 0.9 gives the
    default ``(0.9, 0.99, 0.999)``. Exact for sympy rationals.

    >>> aggmo_decays(0.5)
    (0.5, 0.95, 0.995)
    """
    return (b, 1 - (1 - b) / 10, 1 - (1 - b) / 100)


def _gd(m, exact, checks) -> Panel:
    from stability import analyses
    from stability.analyses import checks as check
    from stability.analyses import symbolic

    lrs = np.geomspace(1e-2, 1e2, m)
    hs = np.geomspace(1e-2, 1e2, m)
    reg = analyses.stability_region("gd", lr=lrs, curvature=hs)
    b = symbolic.stability_boundary("gd")
    x_star = float(b.x_star)
    checks["gd"] = check.disagreement(reg.stable, lrs[:, None] * hs[None, :] < x_star)
    exact["gd: exact stable range of x = a h"] = f"{b.lower} < x < {b.x_star}"
    return Panel(reg, {"exact": (hs, x_star / hs)}, {"exact": f"{b.x_star}"})


def _nominal(m, exact, checks) -> tuple[Panel, Panel]:
    """(b) the band of stable learned eigenvalues p with a nominal term, and (c)
    the same with the output preconditioned by H^(-1/2)."""
    import sympy

    from stability import analyses
    from stability.analyses import checks as check
    from stability.analyses import symbolic

    a_sym = sympy.Symbol("alpha", positive=True)
    h_sym = sympy.Symbol("h", positive=True)
    p_sym = sympy.Symbol("p", real=True)
    hs = np.geomspace(0.25, 8.0, m)
    ps = np.linspace(-1.5, 4.0, m)
    out = []
    for family, precondition in (("nominal", False), ("preconditioned", True)):
        bd = symbolic.stability_boundary(
            "nominal",
            alpha=a_sym,
            p=p_sym,
            h=h_sym,
            precondition=precondition,
            variable=p_sym,
        )
        upper = _lambdified(bd.x_star, a_sym, h_sym)
        reg = analyses.stability_region(
            "nominal", alpha=ALPHA, p=ps, curvature=hs, precondition=precondition
        )
        if precondition:
            lower = np.full_like(hs, -ALPHA)
            # the band without the preconditioner, from panel (b)
            other = ("no_precond", out[0].curves["upper"])
            top = 2 / np.sqrt(hs[None, :])
        else:
            lower = np.full_like(hs, _lambdified(bd.lower, a_sym, h_sym)(ALPHA, hs))
            other = ("no_nominal", (hs, upper(0.0, hs)))
            top = 2 / hs[None, :]
        curves = {"upper": (hs, upper(ALPHA, hs)), "lower": (hs, lower)}
        curves[other[0]] = other[1]
        tex = {
            "upper": _tex(bd.x_star, expand=True),
            "lower": _tex(bd.lower, expand=True),
        }
        band = (ps[:, None] > -ALPHA) & (ps[:, None] < top - ALPHA)
        checks[family] = check.disagreement(reg.stable, band)
        exact[f"{family}: exact stable band"] = f"{bd.lower} < p < {bd.x_star}"
        out.append(Panel(reg, curves, tex))
    return tuple(out)


def _momentum(m, exact, checks) -> dict:
    """(d) heavy ball and (e) EMA momentum: lr x momentum at h = 1."""
    import sympy

    from stability import analyses
    from stability.analyses import checks as check
    from stability.analyses import symbolic

    grids = {
        "heavy_ball": (np.linspace(0.01, 4.5, m), np.linspace(-0.95, 0.99, m)),
        "ema_momentum": (np.geomspace(0.1, 1e3, m), np.linspace(0.0, 0.99, m)),
    }
    panels = {}
    for _, family, _, _ in MOMENTUM:
        lr_axis, betas = grids[family]
        reg = analyses.stability_region(family, lr=lr_axis, curvature=1.0, beta=betas)
        bd = symbolic.stability_boundary(family)
        xs = _lambdified(bd.x_star, symbolic.BETA)(betas)
        checks[family] = check.disagreement(reg.stable, lr_axis[:, None] < xs[None, :])
        exact[f"{family}: exact x* = a h"] = str(sympy.factor(bd.x_star))
        exact[f"{family}: parameter conditions"] = ", ".join(
            f"{c} > 0" for c in bd.parameter_conditions
        )
        panels[family] = Panel(reg, {"exact": (betas, xs)}, {"exact": _tex(bd.x_star)})
    return panels


def _aggmo(q, m, exact, checks) -> tuple[Panel, int]:
    """(f) AggMo, lr x first decay b, at h = 1.

    The crossing at z = -1 (p(-1) = 0, linear in x) derived once with a symbolic b
    gives the curve; the full exact boundary (every Jury condition, real-root
    isolation) at a few rational b confirms no other root crosses first."""
    import sympy

    from stability import analyses
    from stability.analyses import checks as check
    from stability.analyses import symbolic
    from stability.optimizers import modes

    lrs = np.geomspace(1.0, 2e3, m)
    bs = np.linspace(0.5, 0.98, m)
    blocks, _ = modes.aggmo_block(lrs[:, None], aggmo_decays(bs[None, :]))
    rho = np.asarray(analyses.spectral_radius(np.asarray(blocks)))
    reg = analyses.StabilityRegion(
        "aggmo",
        {"lr": lrs, "beta": bs},
        {"curvature": 1.0, "betas": "(b, 1 - (1 - b)/10, 1 - (1 - b)/100)"},
        rho,
    )
    b_sym = sympy.Symbol("b", positive=True)
    char = symbolic.characteristic_polynomial("aggmo", betas=aggmo_decays(b_sym))
    (x_minus1,) = sympy.solve(char.as_expr().subs(symbolic.Z, -1), symbolic.X)
    curve = _lambdified(x_minus1, b_sym)
    b_exact = [sympy.Rational(k, 100) for k in range(50, 99, q.pick(12, 3))]
    x_exact = np.array(
        [
            float(symbolic.stability_boundary("aggmo", betas=aggmo_decays(b_)).x_star)
            for b_ in b_exact
        ]
    )
    b_float = np.array([float(b_) for b_ in b_exact])
    block_only = 2.0 / np.mean([1 - d for d in aggmo_decays(bs)], axis=0)
    blocks, _ = modes.aggmo_block(lrs[:, None], aggmo_decays(b_float[None, :]))
    rho_at = np.asarray(analyses.spectral_radius(np.asarray(blocks)))
    checks["aggmo"] = check.disagreement(rho_at < 1, lrs[:, None] < x_exact[None, :])
    exact["aggmo: max |x*(Jury) - x*(p(-1) = 0)| / x* at the checked b"] = fmt(
        np.max(np.abs(x_exact / curve(b_float) - 1))
    )
    exact["aggmo: x* where p(-1) = 0, decays (b, ...)"] = str(sympy.factor(x_minus1))
    ref = symbolic.stability_boundary("aggmo", betas=(0.9, 0.99, 0.999))
    exact["aggmo (0.9, 0.99, 0.999): exact x*"] = (
        f"{ref.x_star} = {ref.digits[:18]} (crossing {ref.crossing})"
    )
    exact["aggmo (0.9, 0.99, 0.999): x* by bisection on the numeric radius"] = fmt(
        analyses.max_stable_learning_rate("aggmo", 1.0), 15
    )
    curves = {
        "minus1": (bs, curve(bs)),
        "jury": (b_float, x_exact),
        "block": (bs, block_only),
    }
    return Panel(reg, curves, {}), len(b_exact)


def compute(quality: Quality) -> Record:
    m = quality.pick(161, 481)
    exact, checks = {}, {}
    panels = {"gd": _gd(m, exact, checks)}
    panels["nominal"], panels["preconditioned"] = _nominal(m, exact, checks)
    panels.update(_momentum(m, exact, checks))
    panels["aggmo"], checked = _aggmo(quality, m, exact, checks)
    return Record(m, panels, exact, checks, checked)


# (b) and (c): (panel, axes position, title, the dotted reference and its label)
_BANDS = (
    (
        "nominal",
        (0, 1),
        f"(b) nominal + learned term, α = {ALPHA}",
        ("no_nominal", "no nominal term: $0 < p < 2/h$"),
    ),
    (
        "preconditioned",
        (1, 0),
        f"(c) output-preconditioned by $H^{{-1/2}}$, α = {ALPHA}",
        ("no_precond", "no preconditioner: $p < 2/h - \\alpha$"),
    ),
)


def _draw_bands(axes, record: Record) -> None:
    from stability import plotting

    for key, (i, j), title, (other, other_label) in _BANDS:
        panel = record.panels[key]
        ax = plotting.region(
            panel.region,
            axes[i, j],
            x="curvature",
            y="p",
            xscale="log",
            title=title,
            colorbar=False,
        )
        plotting.boundary(
            ax, *panel.curves["upper"], label=f"exact: $p <$ {panel.tex['upper']}"
        )
        plotting.boundary(
            ax,
            *panel.curves["lower"],
            label=f"exact: $p >$ {panel.tex['lower']}",
            linestyle="--",
        )
        plotting.boundary(
            ax, *panel.curves[other], color="black", linestyle=":", label=other_label
        )
        if key == "nominal":
            ax.axhline(0.0, color="black", linestyle=":", linewidth=1.6)
        ax.legend(loc="upper right")


def _draw_aggmo(ax, panel: Panel) -> None:
    from stability import plotting

    ax = plotting.region(
        panel.region,
        ax,
        x="beta",
        y="lr",
        yscale="log",
        title="(f) AggMo, curvature h = 1,\ndecays (b, 1 − (1−b)/10, 1 − (1−b)/100)",
        colorbar=False,
    )
    ax.set_xlabel("first decay b")
    plotting.boundary(
        ax, *panel.curves["minus1"], label="exact: root at z = −1, p(−1) = 0"
    )
    plotting.boundary(
        ax,
        *panel.curves["jury"],
        marker="o",
        linestyle="none",
        color="black",
        label="exact x* from all Jury conditions",
    )
    plotting.boundary(
        ax,
        *panel.curves["block"],
        color="black",
        linestyle=":",
        label="parameter block alone: 2/mean(1 − b_i)",
    )
    ax.legend(loc="upper left")


def draw(record: Record):
    from stability import plotting

    m = record.m
    with plotting.style():
        fig, axes = plotting.figure(3, 2, width=7.4, height=8.4)
        gd = record.panels["gd"]
        ax = plotting.region(
            gd.region,
            axes[0, 0],
            x="curvature",
            y="lr",
            xscale="log",
            yscale="log",
            title="(a) gradient descent",
            colorbar=False,
        )
        plotting.boundary(
            ax, *gd.curves["exact"], label=f"exact: $ah = {gd.tex['exact']}$"
        )
        ax.legend(loc="lower left")
        _draw_bands(axes, record)
        for (i, j), family, scale, name in MOMENTUM:
            panel = record.panels[family]
            ax = plotting.region(
                panel.region,
                axes[i, j],
                x="beta",
                y="lr",
                yscale=scale,
                title=f"{name}, curvature h = 1",
                colorbar=False,
            )
            plotting.boundary(
                ax, *panel.curves["exact"], label=f"exact: $ah =$ {panel.tex['exact']}"
            )
            ax.legend(loc="upper left")
        _draw_aggmo(axes[2, 1], record.panels["aggmo"])
        plotting.rho_colorbar(fig, axes, fraction=0.04, aspect=40)
        fig.suptitle(
            "Per-mode closed loop: spectral radius on a grid (colour; grey: unstable)"
            f" and exact Jury boundaries (lines).\nGrids {m} × {m}; AggMo: full "
            f"exact boundary at {record.aggmo_checked} rational b (dots)",
            fontsize=8.5,
        )
    return fig


def numbers(record: Record) -> dict:
    out = dict(record.exact)
    for key, (bad, total) in record.checks.items():
        out[f"{key}: grid cells disagreeing with the exact boundary"] = (
            f"{bad} / {total}"
        )
    return out


def caption(record: Record) -> str:
    return (
        "Numeric stability regions (spectral radius of the closed-form per-mode block "
        "on a grid) with the exact boundaries derived symbolically from the Jury "
        "conditions drawn over them. (b) a nominal term shifts the band of stable "
        "learned eigenvalues down by alpha; (c) the idealised output preconditioner "
        "replaces 2/h by 2/sqrt(h), looser only where h > 1; (d)-(f) momentum "
        "loosens the upper limit; AggMo's joint boundary (103.17 for the default "
        "decays) is about twice what its parameter block alone suggests."
    )
