r"""``stability reproduce``: regenerate every figure and the lemma report.

The figures are a registry of functions in this module, so the command works from a
plain ``pip install``. Each figure function computes its records with
:mod:`stability.analyses`, :mod:`stability.problems`, :mod:`stability.lemmas` and
:mod:`stability.lopt`, draws them with :mod:`stability.plotting`, and returns the
figure with the key numbers behind it. ``figures/figNN_name.py`` are thin scripts
calling :func:`script_main` for one figure. Calling pattern::

    stability reproduce [--quick | --full [--shipped-records]] [--out DIR]
                        [--only fig01 fig02 ...]

    from stability import reproduce
    reproduce.main(["--quick", "--out", "/tmp/figs", "--only", "fig02"])

``--quick`` (the default) shrinks grids, seeds and horizons; ``--full`` is
publication quality and reruns the meta-training and the evaluation behind fig06-08
(:func:`rerun_lopt_records`, about an hour on 2 cores, resumable) unless
``--shipped-records`` says to draw the records shipped in ``stability/lopt/records/``
(as the committed renders in ``figures/`` do). Images (PNG and PDF) and
``REPORT.md`` go into ``--out`` (default ``figures/``). Figures whose inputs do not
exist are reported as not available, with the reason, and never drawn from stand-in
data. The exit status is 1 if any figure (or the lemma report) failed, else 0.

Float64 is switched on when a run starts (:func:`run`), never at import.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import pathlib
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

DEFAULT_OUT = "figures"


class Quality(NamedTuple):
    """Quick (small grids, few seeds, short horizons) or full (publication)."""

    full: bool = False
    # --full: folder where meta-training and evaluation are rerun (None: use the
    # records shipped in stability/lopt/records/)
    lopt_runs: str | None = None

    @property
    def name(self) -> str:
        return "full" if self.full else "quick"

    def pick(self, quick, full):
        """``full`` in full mode, ``quick`` otherwise.

        >>> Quality(full=False).pick(100, 400), Quality(full=True).pick(100, 400)
        (100, 400)
        """
        return full if self.full else quick

    @property
    def dpi(self) -> int:
        return self.pick(110, 200)


class NotAvailable(Exception):  # noqa: N818 (a status, not an error)
    """A figure whose inputs do not exist yet; the message says which and why."""


class Drawn(NamedTuple):
    """What a figure function returns: the matplotlib figure, a one-paragraph
    caption, and the key numbers behind it (name -> formatted value)."""

    figure: Any
    caption: str
    numbers: dict


class FigureSpec(NamedTuple):
    id: str
    name: str
    title: str
    build: Callable[[Quality], Drawn]


class FigureResult(NamedTuple):
    """One row of the report."""

    id: str
    name: str
    title: str
    status: str  # "ok", "not available" or "failed"
    seconds: float
    files: tuple
    caption: str
    numbers: dict
    reason: str


FIGURES: dict[str, FigureSpec] = {}


def _register(fid, name, title):
    def wrap(fn):
        FIGURES[fid] = FigureSpec(fid, f"{fid}_{name}", title, fn)
        return fn

    return wrap


def _fmt(x, digits=4):
    """A float in a compact, report-friendly form."""
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


# ----------------------------------------------------------------------------------
# fig01: eigenvalues of the NQM closed loop
# ----------------------------------------------------------------------------------


@_register("fig01", "eigenvalues", "Eigenvalues of the NQM closed loop")
def _fig01(q: Quality) -> Drawn:
    import numpy as np

    from stability import analyses, operators, plotting, problems

    n = 24
    lam = problems.spectra.log_uniform(n, 1e-2, 1.0)
    rot = problems.random_rotation(n, seed=1)
    hess = rot @ np.diag(lam) @ rot.T
    top = float(lam.max())
    # The stand-in for a learned linear term: a Gaussian, non-symmetric matrix that
    # does not commute with H, of the size of the Newton step 1/lambda_max(H).
    p = np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n) / top
    alpha = 1.0 / top
    precond = rot @ np.diag(lam**-0.5) @ rot.T  # idealised output preconditioner
    shrinks = (1.0, 0.6, 0.3)
    w = shrinks[-1]

    def spectrum(alpha_, p_, c=None):
        loop = operators.nominal_closed_loop(hess, p_, alpha_, c)
        z = analyses.eigenvalues(np.asarray(loop.transition))
        return z, float(np.max(np.abs(z)))

    panels = [
        ("(a) black box alone\n$A = I - PH$", spectrum(0.0, p)),
        ("(b) with a nominal term\n$A = I - (\\alpha I + P)H$", spectrum(alpha, p)),
        (
            f"(c) weight decay: $P \\to wP$\n$A = I - wPH$, $w = {w}$",
            spectrum(0.0, w * p),
        ),
        (
            "(d) output preconditioner\n$A = I - H^{-1/2}PH$",
            spectrum(0.0, p, precond),
        ),
        (
            f"(e) all combined, $w = {w}$\n$A = I - H^{{-1/2}}(\\alpha I + wP)H$",
            spectrum(alpha, w * p, precond),
        ),
    ]
    labels = [
        "(a) black box",
        "(b) + nominal",
        "(c) weight decay",
        "(d) precond.",
        "(e) combined",
    ]
    with plotting.style():
        fig, axes = plotting.figure(2, 3, width=7.4, height=6.0)
        flat = axes.ravel()
        lim = 1.05 * max(1.0, *(r for _, (_, r) in panels))
        for i, (title, (z, r)) in enumerate(panels):
            ax = flat[i]
            if i == 2:  # the path of the eigenvalues as w shrinks toward 0
                for s, mk, shade in zip(shrinks[:-1], "s^", ("0.7", "0.45"), strict=1):
                    zs, _ = spectrum(0.0, s * p)
                    ax.scatter(
                        zs.real,
                        zs.imag,
                        s=8,
                        marker=mk,
                        color=shade,
                        zorder=2,
                        label=f"w = {s}",
                    )
            plotting.eigenvalues(
                z,
                ax,
                title=f"{title}\nρ = {r:.3f}",
                limits=(-lim, lim),
                zoom=(0.55, 1.5, -0.45, 0.45),
            )
            if i == 2:
                ax.legend(
                    loc="lower left", handletextpad=0.1, borderpad=0.1, fontsize=6.5
                )
            if i % 3:
                ax.set_ylabel("")
        plotting.radius_bars(
            labels, [r for _, (_, r) in panels], flat[5], title="(f) spectral radius ρ"
        )
        fig.suptitle(
            f"NQM closed loop, n = {n}: spec(H) log-uniform in [0.01, 1], random "
            f"basis; P Gaussian, non-symmetric, ‖P‖₂ = {np.linalg.norm(p, 2):.2f};\n"
            f"α = 1/λmax(H) = {alpha:g}; weight decay = shrinkage w; exact "
            "preconditioner; crosses: |z| > 1; dashed circle: radius ρ",
            fontsize=8.5,
        )
    radii = {lab: r for lab, (_, (_, r)) in zip(labels, panels, strict=True)}
    numbers = {f"rho {k}": _fmt(v, 5) for k, v in radii.items()}
    numbers["eigenvalues outside the unit circle (a)"] = str(
        int(np.sum(np.abs(panels[0][1][0]) > 1))
    )
    caption = (
        "Eigenvalues of A for one random non-symmetric learned term P on a rotated "
        "24-dimensional NQM, against the unit circle (insets: the window "
        "[0.55, 1.5] x [-0.45, 0.45] around z = 1). A black box alone has "
        "eigenvalues outside the circle; the nominal "
        "term alpha*H pulls them in; shrinking P (weight decay) moves every "
        "eigenvalue toward z = 1 along a straight line (1 - w*mu) but does not "
        "stabilise on its own; nor does the exact output preconditioner; the nominal "
        "term, shrinkage and preconditioner together are stable."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig02: stability regions with exact boundaries
# ----------------------------------------------------------------------------------


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


def _disagreement(numeric_stable, exact_stable):
    """Cells where the numeric region and the exact boundary disagree."""
    import numpy as np

    return int(np.sum(numeric_stable != exact_stable)), int(numeric_stable.size)


def _aggmo_decays(b):
    """AggMo decays ``(b, 1 - (1 - b)/10, 1 - (1 - b)/100)``: b = 0.9 gives the
    default ``(0.9, 0.99, 0.999)``. Exact for sympy rationals."""
    return (b, 1 - (1 - b) / 10, 1 - (1 - b) / 100)


@_register("fig02", "regions", "Stability regions with exact boundaries")
def _fig02(q: Quality) -> Drawn:
    import numpy as np
    import sympy

    from stability import analyses, plotting
    from stability.analyses import symbolic
    from stability.optimizers import modes

    m = q.pick(161, 481)
    numbers = {}
    checks = {}
    a_sym = sympy.Symbol("alpha", positive=True)
    h_sym = sympy.Symbol("h", positive=True)
    p_sym = sympy.Symbol("p", real=True)
    beta = symbolic.BETA

    with plotting.style():
        fig, axes = plotting.figure(3, 2, width=7.4, height=8.4)
        draw = dict(colorbar=False)

        # (a) gradient descent: lr x curvature
        lrs = np.geomspace(1e-2, 1e2, m)
        hs = np.geomspace(1e-2, 1e2, m)
        reg = analyses.stability_region("gd", lr=lrs, curvature=hs)
        b = symbolic.stability_boundary("gd")
        x_star = float(b.x_star)
        ax = plotting.region(
            reg,
            axes[0, 0],
            x="curvature",
            y="lr",
            xscale="log",
            yscale="log",
            title="(a) gradient descent",
            **draw,
        )
        plotting.boundary(ax, hs, x_star / hs, label=f"exact: $ah = {b.x_star}$")
        ax.legend(loc="lower left")
        exact = lrs[:, None] * hs[None, :] < x_star
        checks["gd"] = _disagreement(reg.stable, exact)
        numbers["gd: exact stable range of x = a h"] = f"{b.lower} < x < {b.x_star}"

        # (b) learned eigenvalue p x curvature, shifted by a nominal term
        alpha = 0.5
        hs = np.geomspace(0.25, 8.0, m)
        ps = np.linspace(-1.5, 4.0, m)
        nom = symbolic.stability_boundary(
            "nominal", alpha=a_sym, p=p_sym, h=h_sym, variable=p_sym
        )
        upper = _lambdified(nom.x_star, a_sym, h_sym)
        lower = _lambdified(nom.lower, a_sym, h_sym)
        reg = analyses.stability_region("nominal", alpha=alpha, p=ps, curvature=hs)
        ax = plotting.region(
            reg,
            axes[0, 1],
            x="curvature",
            y="p",
            xscale="log",
            title=f"(b) nominal + learned term, α = {alpha}",
            **draw,
        )
        plotting.boundary(
            ax,
            hs,
            upper(alpha, hs),
            label=f"exact: $p <$ {_tex(nom.x_star, expand=True)}",
        )
        plotting.boundary(
            ax,
            hs,
            np.full_like(hs, lower(alpha, hs)),
            label=f"exact: $p >$ {_tex(nom.lower, expand=True)}",
            linestyle="--",
        )
        plotting.boundary(
            ax,
            hs,
            upper(0.0, hs),
            color="black",
            linestyle=":",
            label="no nominal term: $0 < p < 2/h$",
        )
        ax.axhline(0.0, color="black", linestyle=":", linewidth=1.6)
        ax.legend(loc="upper right")
        exact = (ps[:, None] > -alpha) & (ps[:, None] < 2 / hs[None, :] - alpha)
        checks["nominal"] = _disagreement(reg.stable, exact)
        numbers["nominal: exact stable band"] = f"{nom.lower} < p < {nom.x_star}"

        # (c) preconditioned versus not
        pre = symbolic.stability_boundary(
            "preconditioned", alpha=a_sym, p=p_sym, h=h_sym, variable=p_sym
        )
        upper_pre = _lambdified(pre.x_star, a_sym, h_sym)
        reg = analyses.stability_region(
            "nominal", alpha=alpha, p=ps, curvature=hs, precondition=True
        )
        ax = plotting.region(
            reg,
            axes[1, 0],
            x="curvature",
            y="p",
            xscale="log",
            title=f"(c) output-preconditioned by $H^{{-1/2}}$, α = {alpha}",
            **draw,
        )
        plotting.boundary(
            ax,
            hs,
            upper_pre(alpha, hs),
            label=f"exact: $p <$ {_tex(pre.x_star, expand=True)}",
        )
        plotting.boundary(
            ax,
            hs,
            np.full_like(hs, -alpha),
            linestyle="--",
            label=f"exact: $p >$ {_tex(pre.lower, expand=True)}",
        )
        plotting.boundary(
            ax,
            hs,
            upper(alpha, hs),
            color="black",
            linestyle=":",
            label="no preconditioner: $p < 2/h - \\alpha$",
        )
        ax.legend(loc="upper right")
        exact = (ps[:, None] > -alpha) & (
            ps[:, None] < 2 / np.sqrt(hs[None, :]) - alpha
        )
        checks["preconditioned"] = _disagreement(reg.stable, exact)
        numbers["preconditioned: exact stable band"] = f"{pre.lower} < p < {pre.x_star}"

        # (d) heavy ball and (e) EMA momentum: lr x momentum at h = 1
        for (i, j), family, sym_family, lr_axis, betas, scale, name in (
            (
                (1, 1),
                "heavy_ball",
                "heavy_ball",
                np.linspace(0.01, 4.5, m),
                np.linspace(-0.95, 0.99, m),
                "linear",
                "(d) heavy ball",
            ),
            (
                (2, 0),
                "ema_momentum",
                "ema",
                np.geomspace(0.1, 1e3, m),
                np.linspace(0.0, 0.99, m),
                "log",
                "(e) EMA momentum",
            ),
        ):
            reg = analyses.stability_region(
                family, lr=lr_axis, curvature=1.0, beta=betas
            )
            bd = symbolic.stability_boundary(sym_family)
            xs = _lambdified(bd.x_star, beta)(betas)
            ax = plotting.region(
                reg,
                axes[i, j],
                x="beta",
                y="lr",
                yscale=scale,
                title=f"{name}, curvature h = 1",
                **draw,
            )
            plotting.boundary(ax, betas, xs, label=f"exact: $ah =$ {_tex(bd.x_star)}")
            ax.legend(loc="upper left")
            exact = lr_axis[:, None] < xs[None, :]
            checks[family] = _disagreement(reg.stable, exact)
            numbers[f"{family}: exact x* = a h"] = str(sympy.factor(bd.x_star))
            numbers[f"{family}: parameter conditions"] = ", ".join(
                f"{c} > 0" for c in bd.parameter_conditions
            )

        # (f) AggMo: lr x first decay b
        lrs = np.geomspace(1.0, 2e3, m)
        bs = np.linspace(0.5, 0.98, m)
        blocks, _ = modes.aggmo_block(lrs[:, None], _aggmo_decays(bs[None, :]))
        rho = np.asarray(analyses.spectral_radius(np.asarray(blocks)))
        reg = analyses.StabilityRegion(
            "aggmo",
            {"lr": lrs, "beta": bs},
            {"curvature": 1.0, "betas": "(b, 1 - (1 - b)/10, 1 - (1 - b)/100)"},
            rho,
        )
        # The crossing at z = -1 (p(-1) = 0, linear in x) derived once with a
        # symbolic b gives the curve; the full exact boundary (every Jury condition,
        # real-root isolation) at a few rational b confirms no other root crosses
        # first.
        b_sym = sympy.Symbol("b", positive=True)
        char = symbolic.characteristic_polynomial("aggmo", betas=_aggmo_decays(b_sym))
        (x_minus1,) = sympy.solve(char.as_expr().subs(symbolic.Z, -1), symbolic.X)
        x_curve = _lambdified(x_minus1, b_sym)(bs)
        b_exact = [sympy.Rational(k, 100) for k in range(50, 99, q.pick(12, 3))]
        x_exact = np.array(
            [
                float(
                    symbolic.stability_boundary("aggmo", betas=_aggmo_decays(b_)).x_star
                )
                for b_ in b_exact
            ]
        )
        b_float = np.array([float(b_) for b_ in b_exact])
        block_only = 2.0 / np.mean([1 - d for d in _aggmo_decays(bs)], axis=0)
        ax = plotting.region(
            reg,
            axes[2, 1],
            x="beta",
            y="lr",
            yscale="log",
            title="(f) AggMo, curvature h = 1,\n"
            "decays (b, 1 − (1−b)/10, 1 − (1−b)/100)",
            **draw,
        )
        ax.set_xlabel("first decay b")
        plotting.boundary(ax, bs, x_curve, label="exact: root at z = −1, p(−1) = 0")
        plotting.boundary(
            ax,
            b_float,
            x_exact,
            marker="o",
            linestyle="none",
            color="black",
            label="exact x* from all Jury conditions",
        )
        plotting.boundary(
            ax,
            bs,
            block_only,
            color="black",
            linestyle=":",
            label="parameter block alone: 2/mean(1 − b_i)",
        )
        ax.legend(loc="upper left")
        blocks, _ = modes.aggmo_block(lrs[:, None], _aggmo_decays(b_float[None, :]))
        rho_at = np.asarray(analyses.spectral_radius(np.asarray(blocks)))
        checks["aggmo"] = _disagreement(rho_at < 1, lrs[:, None] < x_exact[None, :])
        numbers["aggmo: max |x*(Jury) - x*(p(-1) = 0)| / x* at the checked b"] = _fmt(
            np.max(np.abs(x_exact / _lambdified(x_minus1, b_sym)(b_float) - 1))
        )
        numbers["aggmo: x* where p(-1) = 0, decays (b, ...)"] = str(
            sympy.factor(x_minus1)
        )
        ref = symbolic.stability_boundary("aggmo", betas=(0.9, 0.99, 0.999))
        numbers["aggmo (0.9, 0.99, 0.999): exact x*"] = (
            f"{ref.x_star} = {ref.digits[:18]} (crossing {ref.crossing})"
        )
        numbers["aggmo (0.9, 0.99, 0.999): x* by bisection on the numeric radius"] = (
            _fmt(analyses.max_stable_learning_rate("aggmo", 1.0), 15)
        )
        plotting.rho_colorbar(fig, axes, fraction=0.04, aspect=40)
        fig.suptitle(
            "Per-mode closed loop: spectral radius on a grid (colour; grey: unstable)"
            f" and exact Jury boundaries (lines).\nGrids {m} × {m}; AggMo: full "
            f"exact boundary at {len(b_exact)} rational b (dots)",
            fontsize=8.5,
        )
    for key, (bad, total) in checks.items():
        numbers[f"{key}: grid cells disagreeing with the exact boundary"] = (
            f"{bad} / {total}"
        )
    caption = (
        "Numeric stability regions (spectral radius of the closed-form per-mode block "
        "on a grid) with the exact boundaries derived symbolically from the Jury "
        "conditions drawn over them. (b) a nominal term shifts the band of stable "
        "learned eigenvalues down by alpha; (c) the idealised output preconditioner "
        "replaces 2/h by 2/sqrt(h), looser only where h > 1; (d)-(f) momentum "
        "loosens the upper limit; AggMo's joint boundary (103.17 for the default "
        "decays) is about twice what its parameter block alone suggests."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig03: robust stability under multiplicative uncertainty
# ----------------------------------------------------------------------------------


@_register("fig03", "robust", "Robust stability under multiplicative uncertainty")
def _fig03(q: Quality) -> Drawn:
    import numpy as np

    from stability import analyses, operators, plotting, problems
    from stability.analyses import robust
    from stability.lemmas import robust as lemma

    numbers = {}
    m = q.pick(161, 401)
    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=6.2)

        # (a) one mode: worst case over 0 < d <= d_max of |1 - (alpha + d p) h|
        alpha, h = 0.5, 1.0
        p_tilde = np.linspace(-2.0, 4.0, m)
        d = np.linspace(1e-3, 3.0, m)
        rho = np.asarray(
            analyses.mode_radius(
                "nominal", alpha=alpha, p=d[:, None] * p_tilde[None, :], curvature=h
            )
        )
        worst = np.maximum.accumulate(rho, axis=0)  # worst over d' <= d_max
        reg = analyses.StabilityRegion(
            "nominal",
            {"d_max": d, "p": p_tilde},
            {"alpha": alpha, "curvature": h},
            worst,
        )
        ax = plotting.region(
            reg,
            axes[0, 0],
            x="p",
            y="d_max",
            title=f"(a) one mode, h = {h:g}, α = {alpha}: worst\ncase over "
            "0 < d ≤ d_max",
            colorbar_label=None,
        )
        ax.set_xlabel("learned eigenvalue p̃ (P = d p̃)")
        ax.set_ylabel("uncertainty bound d_max")
        with np.errstate(divide="ignore"):
            plotting.boundary(
                ax, (2 / h - alpha) / d, d, label="Lemma 3: d_max p̃ = 2/h − α"
            )
            plotting.boundary(
                ax, -alpha / d, d, linestyle="--", label="Lemma 3: d_max p̃ = −α"
            )
        ax.legend(
            loc="upper right",
            fontsize=6.5,
            facecolor="white",
            frameon=True,
            framealpha=0.85,
            edgecolor="none",
        )
        exact = (d[:, None] * p_tilde[None, :] > -alpha) & (
            d[:, None] * p_tilde[None, :] < 2 / h - alpha
        )
        exact &= np.logical_and.accumulate(exact, axis=0)
        bad, cells = _disagreement(reg.stable, exact)
        numbers["(a) cells disagreeing with Lemma 3"] = f"{bad} / {cells}"

        # (b) worst case over diagonal Delta against d_max: symmetric P~ commuting
        # with H (Lemma 3 holds) versus a non-symmetric P~ with the same real
        # eigenvalues (it does not)
        n = 4
        lam = np.array([1.0, 0.5, 0.25, 0.1])
        hess = np.diag(lam)
        ev = np.array([2.0, 1.5, 0.8, 0.3])
        alpha = 0.5
        basis = np.eye(n) + 0.8 * np.random.default_rng(7).standard_normal((n, n))
        pt_sym = np.diag(ev)
        pt_non = basis @ np.diag(ev) @ np.linalg.inv(basis)
        # Lemma 3 at d_max = 1 gives the bounds on P~; the largest d_max they allow
        # is where lambda_max(P~) meets (2/L - alpha)/d_max (all eig(P~) > 0 here)
        inst = {
            key: lemma.make_instance(H=hess, P_tilde=mat, alpha=alpha, d_max=1.0)
            for key, mat in (("sym", pt_sym), ("non", pt_non))
        }
        b1 = lemma.bounds(inst["sym"])
        d_star = float(b1["upper"] / b1["lambda_max_P_tilde"])
        for key, label in (("sym", "symmetric"), ("non", "non-symmetric")):
            hyp = lemma.hypotheses(inst[key])
            numbers[f"(b) Lemma 3 hypotheses, {label} P~"] = ", ".join(
                f"{k}={'yes' if v else 'no'}"
                for k, v in hyp.items()
                if k in ("P_symmetric", "commuting")
            )
        ratio = np.linspace(0.05, 1.6, q.pick(32, 80))
        search = dict(
            num_samples=q.pick(32, 128),
            num_starts=q.pick(2, 4),
            ascent_steps=q.pick(30, 60),
        )

        def worst(mat):
            return list(
                [
                    robust.worst_case_multiplicative(
                        hess, mat, alpha, r * d_star, **search
                    )
                    for r in ratio
                ]
            )

        curves = {
            "symmetric P̃, commutes with H": worst(pt_sym),
            "non-symmetric P̃, same eigenvalues": worst(pt_non),
        }
        uniform = np.array(
            [
                float(
                    robust.multiplicative_radius(
                        hess, pt_non, alpha, np.full(n, r * d_star)
                    )
                )
                for r in ratio
            ]
        )
        ax = axes[0, 1]
        for (key, rec), mk in zip(curves.items(), "os", strict=True):
            ax.plot(ratio, [w.rho for w in rec], marker=mk, markersize=2.5, label=key)
        ax.plot(
            ratio,
            uniform,
            color=plotting.CYCLE[1],
            linestyle=":",
            label="non-symmetric, Δ = d_max I only",
        )
        ax.axhline(1.0, color="black", linewidth=0.9)
        ax.axvline(
            1.0, color="0.4", linestyle="--", linewidth=1.0, label="Lemma 3 bound"
        )
        ax.set_xlabel("d_max / Lemma 3 bound")
        ax.set_ylabel("worst ρ over diagonal 0 ≤ Δ ≤ d_max")
        ax.set_ylim(0.85, 1.6)
        ax.set_title(
            "(b) n = 4, H = diag(1, .5, .25, .1),\n"
            f"eig(P̃) = (2, 1.5, .8, .3), α = {alpha}",
        )
        ax.legend(loc="upper left", fontsize=6.5)
        for key, rec in curves.items():
            r = np.array([w.rho for w in rec])
            hit = np.flatnonzero(r >= 1.0)
            numbers[f"(b) first d_max / bound with worst rho >= 1, {key}"] = (
                _fmt(ratio[hit[0]], 3) if hit.size else "none"
            )
        hit = np.flatnonzero(
            np.array([w.rho for w in curves["non-symmetric P̃, same eigenvalues"]])
            >= 1.0
        )
        if hit.size:
            wit = curves["non-symmetric P̃, same eigenvalues"][hit[0]]
            numbers["(b) witness Delta (non-symmetric)"] = (
                f"diag{tuple(np.round(wit.delta, 4).tolist())}, rho = {wit.rho:.4f}"
            )
        numbers["(b) Lemma 3 bound d_max"] = _fmt(d_star)

        # (c) cancellation: P = (1 - eps)(H^-1 - alpha I)
        n = 8
        lam = problems.spectra.log_uniform(n, 0.1, 1.0)
        rot = problems.random_rotation(n, seed=5)
        hess = rot @ np.diag(lam) @ rot.T
        top = float(lam.max())
        eps = np.linspace(-1.0, 1.0, q.pick(41, 101))
        ax = axes[1, 0]
        products = (0.5, 1.5, 3.0, 10.0)
        worst_gap = 0.0
        for k, al in enumerate(products):
            a = al / top
            cancel = np.linalg.inv(hess) - a * np.eye(n)
            numeric = np.array(
                [
                    float(
                        analyses.spectral_radius(
                            np.asarray(
                                operators.nominal_closed_loop(
                                    hess, (1 - e) * cancel, a
                                ).transition
                            )
                        )
                    )
                    for e in eps[::4]
                ]
            )
            exact = np.abs(eps) / lemma.inverse_tolerated_error(hess, a)
            ax.plot(eps, exact, color=plotting.CYCLE[k], label=f"α L = {al:g}")
            worst_gap = max(worst_gap, float(np.max(np.abs(numeric - exact[::4]))))
            ax.plot(
                eps[::4],
                numeric,
                linestyle="none",
                marker="o",
                markersize=3,
                color=plotting.CYCLE[k],
            )
        ax.axhline(1.0, color="black", linewidth=0.9)
        ax.set_ylim(0, 3)
        ax.set_xlabel("relative error ε of the cancellation, Δ = (1 − ε) I")
        ax.set_ylabel("ρ(A)")
        ax.set_title(
            "(c) learned term cancels the nominal one:\n"
            "P = Δ(H⁻¹ − αI); lines exact ε·max|1 − α h|, dots eig"
        )
        ax.legend(loc="upper center", ncol=2)
        numbers["(c) max |eig - closed form| of rho"] = _fmt(worst_gap)

        # (d) tolerated relative error against alpha L: the lemma's closed form
        # for P* = H^-1 against its exact interval (generalized eigenvalues)
        al = np.geomspace(0.2, 100, q.pick(25, 61))
        inv = np.linalg.inv(hess)
        tol_exact = np.array([lemma.inverse_tolerated_error(hess, x / top) for x in al])
        sample = al[:: q.pick(4, 5)]
        tol_interval = np.array(
            [lemma.tolerated_error(hess, inv, x / top) for x in sample]
        )
        ax = axes[1, 1]
        ax.plot(al, tol_exact, label="closed form 1 / max|1 − α h_i|")
        ax.plot(
            sample,
            tol_interval,
            linestyle="none",
            marker="o",
            markersize=3.5,
            label="exact error interval",
        )
        ax.plot(
            al[al > 2],
            1 / (al[al > 2] - 1),
            color="black",
            linestyle=":",
            label="1/(α L − 1)",
        )
        ax.axhline(1.0, color="0.6", linewidth=0.8)
        ax.axvline(2.0, color="0.6", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("α L (nominal step × largest curvature)")
        ax.set_ylabel("tolerated relative error |ε|")
        ax.set_title(f"(d) fragility of cancellation\nn = {n}, spec(H) in [0.1, 1]")
        ax.legend(loc="lower left")
        fig.suptitle("Robust stability: P = Δ P̃ with unknown 0 < Δ ≤ d_max", fontsize=9)
    numbers["(d) tolerated relative error at alpha L = 10 (exact)"] = _fmt(
        lemma.inverse_tolerated_error(hess, 10 / top)
    )
    numbers["(d) max |closed form - exact interval| tolerance"] = _fmt(
        np.max(np.abs(tol_interval - tol_exact[:: q.pick(4, 5)]))
    )
    caption = (
        "(a) For one mode the worst case over d in (0, d_max] matches Lemma 3's two "
        "hyperbolas exactly. (b) H diagonal, Delta diagonal (searched over the "
        "closed box by stability.analyses.robust): a symmetric P~ reaches rho = 1 "
        "exactly at the Lemma 3 bound; a non-symmetric P~ with the same real "
        "eigenvalues is unstable before it, and its worst Delta is not d_max*I: the "
        "lemma needs symmetry. (c)-(d) A learned term that cancels the nominal term, "
        "P = (1 - eps)(H^-1 - alpha I), leaves alpha*eps*H behind: the tolerated "
        "relative error is 1/(alpha L - 1) once alpha L > 2 "
        "(stability.lemmas.robust), so cancelling a large nominal step is fragile."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig04: meta-gradient growth
# ----------------------------------------------------------------------------------


def _optional_module(name, needed_for):
    """Import ``name``, or raise :class:`NotAvailable` if it does not exist yet."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise NotAvailable(f"{needed_for} needs {name}, not in this build") from err
        raise


@_register("fig04", "meta_gradients", "Meta-gradient growth with the horizon")
def _fig04(q: Quality) -> Drawn:
    import numpy as np
    from matplotlib.lines import Line2D

    from stability import plotting, problems

    metagrad = _optional_module(
        "stability.lemmas.metagrad", "the meta-gradient measurement"
    )
    lam = np.array([1.0, 0.5, 0.25, 0.1])
    prob = problems.NoisyQuadratic.from_eigenvalues(lam, noise_var=0.01)
    alpha = 0.5
    horizons = np.unique(np.geomspace(1, q.pick(150, 400), q.pick(16, 32)).astype(int))
    seeds = q.pick(256, 2048)
    records = []
    for target in (0.95, 1.0, 1.03):
        k = (1.0 + target) / lam.max()  # the top mode's eigenvalue is 1 - k L = -rho
        records.append(
            metagrad.gradient_growth(
                prob, (k - alpha) * np.eye(4), alpha, horizons, num_seeds=seeds
            )
        )
    rates = metagrad.rate_vs_rho(
        np.linspace(0.9, 1.1, q.pick(9, 21)),
        np.arange(20, 201, 20),
        num_seeds=q.pick(32, 256),
    )
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(1, 3, width=7.4, height=3.2)
        t = horizons.astype(float)
        for k, rec in enumerate(records):
            color = plotting.CYCLE[k]
            if rec.rho > 1:
                law = rec.rho ** (2 * t)
            elif np.isclose(rec.rho, 1.0):
                law = t**2
            else:
                law = np.ones_like(t)
            for ax, values, power in (
                (axes[0, 0], rec.grad_norms, 1),
                (axes[0, 1], rec.mc_variances, 2),
            ):
                ref = law**power * values[-1] / law[-1] ** power
                plotting.growth(
                    ax,
                    t,
                    values,
                    color=color,
                    label=f"ρ = {rec.rho:.2f}",
                    reference=ref,
                )
            tag = f"rho = {rec.rho:.2f}"
            numbers[f"{tag}: ||dL/dP|| at T = {horizons[-1]}"] = _fmt(
                rec.grad_norms[-1]
            )
            numbers[f"{tag}: sampled variance at T = {horizons[-1]}"] = _fmt(
                rec.mc_variances[-1]
            )
            numbers[f"{tag}: fitted rate / predicted 2 log max(rho, 1)"] = (
                f"{_fmt(rec.rate, 3)} / {_fmt(rec.predicted_rate, 3)}"
            )
            numbers[f"{tag}: fitted polynomial degree"] = _fmt(rec.degree, 3)
        guide = Line2D([], [], color="0.4", linestyle="--", label="predicted law")
        axes[0, 0].set_title("(a) exact ‖dL/dP‖")
        axes[0, 0].set_ylabel("‖dL/dP‖_F")
        axes[0, 1].set_title(f"(b) variance, {seeds} sampled unrolls")
        axes[0, 1].set_ylabel("Σ Var(ĝ_ij)")
        for ax in axes[0, :2]:
            ax.set_xlabel("horizon T")
            handles, _ = ax.get_legend_handles_labels()
            ax.legend(handles=[*handles, guide], loc="upper left", fontsize=6.5)
        ax = axes[0, 2]
        ax.plot(rates.rhos, rates.predicted, color="black", label="2 log max(ρ, 1)")
        ax.plot(
            rates.rhos,
            2 * rates.predicted,
            color="black",
            linestyle=":",
            label="4 log max(ρ, 1)",
        )
        ax.plot(
            rates.rhos,
            rates.rates,
            marker="o",
            linestyle="none",
            markersize=3.5,
            color=plotting.CYCLE[0],
            label="fitted, ‖dL/dP‖",
        )
        ax.plot(
            rates.rhos,
            rates.variance_rates,
            marker="s",
            linestyle="none",
            markersize=3.5,
            color=plotting.CYCLE[1],
            label="fitted, variance",
        )
        ax.axvline(1.0, color="0.6", linewidth=0.8)
        ax.set_xlabel("ρ (one mode, eigenvalue −ρ)")
        ax.set_ylabel("growth rate per step")
        ax.set_title("(c) rate, T = 20 … 200")
        ax.legend(loc="upper left", fontsize=6.5)
        fig.suptitle(
            "L(P) = (1/T) Σ_{t<T} E l_t; (a, b): H = diag(1, .5, .25, .1), noise "
            "variance 0.01, x0 = 1, A = I − (αI + P)H,\nα = 0.5, P = (1 + ρ − α)I "
            "so the top mode has eigenvalue −ρ; laws ρ^{2T}, T², const (norm), "
            "squared (variance)",
            fontsize=8,
        )
    err = np.abs(rates.rates - rates.predicted)[rates.rhos > 1.0]
    numbers["(c) max |fitted - predicted rate| for rho > 1"] = _fmt(err.max(), 3)
    caption = (
        "Exact meta-gradient norm (jax.grad through the moment recursion) and the "
        "variance of the meta-gradient over sampled unrolls, against the horizon, "
        "measured by stability.lemmas.metagrad. Below rho = 1 both level off; at "
        "rho = 1 (eigenvalue -1, noise-driven) they grow polynomially (norm like T^2 "
        "asymptotically); above 1 the norm grows like rho^(2T) and the variance like "
        "rho^(4T). (c) fitted exponential rates against the prediction."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig05: exact expected loss against simulation
# ----------------------------------------------------------------------------------


@_register("fig05", "nqm_losses", "Exact NQM losses against simulation")
def _fig05(q: Quality) -> Drawn:
    import jax
    import numpy as np

    from stability import operators, optimizers, plotting, problems

    lam = problems.spectra.power_law(10, 1.0, 1.0)
    diag = problems.NoisyQuadratic.from_eigenvalues(lam, noise_var=0.02)
    dense = problems.rotated(diag, problems.random_rotation(10, seed=2))
    p_sym = np.random.default_rng(4).standard_normal((10, 10))
    p_sym = 0.3 * (p_sym + p_sym.T) / np.sqrt(40)
    cases = [
        ("gradient descent, a = 1.2", diag, optimizers.gd(1.2)),
        ("heavy ball, a = 0.5, β = 0.8", diag, optimizers.heavy_ball(0.5, 0.8)),
        ("AggMo, a = 10, β = (.9, .99, .999)", diag, optimizers.aggmo(10.0)),
        (
            "nominal + symmetric P, α = 0.8,\nrotated (dense) H",
            dense,
            optimizers.nominal_linear(0.8, p_sym),
        ),
    ]
    steps = q.pick(200, 400)
    seeds = q.pick(256, 4096)
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.4, sharex=True)
        for k, ((label, prob, opt), ax) in enumerate(
            zip(cases, axes.ravel(), strict=True)
        ):
            loop = operators.closed_loop(opt, prob)
            exact = np.asarray(problems.expected_losses(prob, loop, steps))
            stat = problems.stationary_loss(prob, loop)
            sim = problems.simulate(
                prob, opt, steps, key=jax.random.key(k), num_seeds=seeds
            )
            losses = np.asarray(sim.losses)
            plotting.loss_band(
                ax,
                losses,
                exact=exact,
                stationary=stat,
                color=plotting.CYCLE[k],
                label="simulated mean ± 2 s.e.",
            )
            ax.set_yscale("log")
            ax.set_title(f"({'abcd'[k]}) {label}")
            z = _standard_scores(losses, exact)
            short = label.split(",")[0]
            numbers[f"{short}: max |sim - exact| / s.e."] = _fmt(z.max(), 3)
            numbers[f"{short}: fraction of steps within 3 s.e."] = _fmt(
                np.mean(z < 3), 3
            )
            numbers[f"{short}: stationary loss"] = _fmt(stat, 5)
            numbers[f"{short}: exact loss at T = {steps}"] = _fmt(exact[-1], 5)
            if k % 2 == 0:
                ax.set_ylabel("loss")
            if k >= 2:
                ax.set_xlabel("step t")
        from matplotlib.lines import Line2D

        axes[0, 0].legend(
            handles=[
                Line2D(
                    [], [], color=plotting.CYCLE[0], label="simulated mean ± 2 s.e."
                ),
                Line2D([], [], color="black", linestyle="--", label="exact E l_t"),
                Line2D([], [], color="0.35", linestyle=":", label="stationary loss"),
            ],
            loc="upper right",
        )
        fig.suptitle(
            f"NQM, n = 10, h_i = 1/i, noise variance 0.02, x0 = 1; {seeds} seeds",
            fontsize=9,
        )
    caption = (
        "Exact expected loss from the moment recursion (dashed) against the mean of "
        "sampled training runs (band: 2 standard errors of the mean) and the "
        "stationary loss from the discrete Lyapunov equation (dotted), for linear "
        "optimizers taken through their real optax update functions."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# Learned-optimizer figures (need meta-trained thetas and evaluation records)
# ----------------------------------------------------------------------------------


_LOPT_STYLE = {  # name -> (label, colour key, marker)
    "star": ("STAR", "blue", "o"),
    "small_fc_lopt": ("small_fc_lopt", "vermillion", "s"),
    "star_no_nominal": ("STAR, no nominal", "green", "^"),
    "star_no_precond": ("STAR, no precond.", "orange", "v"),
    "star_wd0": ("STAR, weight decay 0", "purple", "D"),
    "star_bounded": ("STAR, blackbox bounded", "sky", "*"),
    "star_bounded_tuned": ("STAR bounded, nominal tuned", "#2b8cbe", "p"),
    "adam": ("Adam (lr tuned)", "black", "P"),
    "nominal": ("nominal only (tuned)", "#7f7f7f", "X"),
}
_LOSS_FLOOR = 1e-12  # training losses of exactly 0 (float32 underflow) drawn here


def _lopt_style(name):
    from stability import plotting

    label, colour, marker = _LOPT_STYLE.get(name, (name, "black", "o"))
    return label, plotting.PALETTE.get(colour, colour), marker


# The runs behind the shipped records (stability/lopt/records/README.md); --full
# reruns them into OUT/lopt_runs (a meta-training resumes where it stopped, an
# evaluation keeps the tasks it finished).
_PAPER = ["--blackbox-bound", "none"]  # the paper's STAR: the blackbox term unbounded
LOPT_RUNS = (  # (name, stability meta-train arguments)
    ("star", ["--optimizer", "star", *_PAPER]),
    ("small_fc_lopt", ["--optimizer", "small_fc_lopt"]),
    ("star_no_nominal", ["--optimizer", "star", "--no-nominal"]),
    ("star_no_precond", ["--optimizer", "star", "--no-precondition", *_PAPER]),
    ("star_wd0", ["--optimizer", "star", "--weight-decay", "0", *_PAPER]),
    ("star_bounded", ["--optimizer", "star"]),  # today's default recipe
)
LOPT_META_ARGS = ["--steps", "3000", "--no-progress"]
LOPT_EVAL_ARGS = [  # every run's kept theta, on the cheap tasks
    "--task",
    "digits_mlp,digits_mlp_tanh,digits_mlp_gelu,digits_mlp_deep,mnist1d_mlp",
]
_REST = ("star", "small_fc_lopt", "star_bounded")
LOPT_EVAL_REST_ARGS = [  # _REST only, on the expensive tasks
    "--task",
    "digits_mlp_wide,mnist_mlp,mnist_cnn,mnist1d_cnn,text_lstm,text_transformer",
]


@contextlib.contextmanager
def _x64_off():
    """Run as a plain ``stability meta-train`` / ``evaluate`` runs: without x64.

    The analysis figures switch ``jax_enable_x64`` on for the whole process; PES
    meta-training is chaotic, so under x64 (a few promoted constants) it would follow
    another trajectory than the command recorded in the sidecars."""
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def _run_cli(argv: list) -> None:
    """``stability ARGV`` in this process, without x64; raises when it fails."""
    from stability import cli

    with _x64_off():
        rc = cli.main(argv)
    if rc == 130:  # the command was interrupted: stop, do not go on to the next
        raise KeyboardInterrupt
    if rc != 0:
        raise RuntimeError(f"stability {' '.join(argv)} failed")


def rerun_lopt_records(folder) -> pathlib.Path:
    """Meta-train the five learned optimizers, evaluate them against the tuned
    baselines and condense both into records, all under ``folder``; return the
    records folder. About an hour on 2 CPU cores with the default arguments.
    Rerun after an interruption, it redoes nothing finished: meta-training resumes
    from its checkpoints, and an evaluation keeps the tasks it completed."""
    from stability.lopt import _records

    folder = pathlib.Path(folder)
    records = folder / "records"
    done = [records / _records.META_TRAINING, records / _records.EVALUATION]
    if all(p.exists() for p in done):
        return records
    thetas = []
    for name, extra in LOPT_RUNS:
        run_dir = folder / "meta_training" / name
        if not (run_dir / "best_theta.npz").exists():  # meta-train's last file
            resume = ["--resume"] if (run_dir / "checkpoint.npz").exists() else []
            argv = ["meta-train", *extra, *LOPT_META_ARGS, "--out", str(run_dir)]
            _run_cli(argv + resume)
        thetas.append(run_dir / "best_theta.npz")
    evaluated = [
        *_evaluate(folder / "evaluation", thetas, LOPT_EVAL_ARGS),
        *_evaluate(
            folder / "evaluation_rest",
            [t for t in thetas if t.parent.name in _REST],
            LOPT_EVAL_REST_ARGS,
        ),
    ]
    runs = {n: folder / "meta_training" / n for n, _ in LOPT_RUNS}
    _records._write_json(_records.compact_meta_training(runs), done[0])
    _records._write_json(_records.compact_evaluation(evaluated), done[1])
    return records


def _evaluate(out: pathlib.Path, thetas: list, args: list) -> list:
    """``stability evaluate`` of ``thetas`` with ``args`` into ``out``, resumably;
    return the directories that together hold its tasks, in order.

    ``evaluate`` rewrites ``eval.json`` after each task, so an interrupted run
    leaves the tasks it finished there. They are kept; the missing tasks run into
    the first of ``OUT``, ``OUT-2``, ``OUT-3``, ... that has no ``eval.json``.
    """
    i = args.index("--task") + 1
    wanted = args[i].split(",")
    dirs, have = [], set()
    for k in itertools.count(1):
        d = out if k == 1 else out.with_name(f"{out.name}-{k}")
        if not (d / "eval.json").exists():
            break
        dirs.append(d)
        with open(d / "eval.json") as f:
            have.update(t["task"] for t in json.load(f)["info"]["tasks"])
    missing = [t for t in wanted if t not in have]
    if missing:
        argv = ["evaluate", "--theta", str(thetas[0])]
        for t in thetas[1:]:
            argv += ["--extra", str(t)]
        rest = [*args[:i], ",".join(missing), *args[i + 1 :]]
        _run_cli([*argv, *rest, "--out", str(d)])
        dirs.append(d)
    return dirs


RECORD_FIGURES = ("fig06", "fig07", "fig08")  # drawn from the learned-opt records


def _lopt_record(name, q: Quality, what):
    """A record: the shipped one (``stability/lopt/records/``), or with ``--full``
    one rerun into ``q.lopt_runs``; NotAvailable when the shipped one is missing."""
    from stability.lopt import _records

    if q.lopt_runs is not None:
        return _records.load(name, rerun_lopt_records(q.lopt_runs))
    try:
        record = _records.load(name)
    except FileNotFoundError:
        raise NotAvailable(
            f"{what} needs stability/lopt/records/{name}.json (see "
            "python -m stability.lopt._records); it is not there"
        ) from None
    if name == "evaluation":  # the bounded STAR was evaluated on its own, later
        try:
            record = _with_optimizers(record, _records.load("evaluation_bounded"))
        except FileNotFoundError:
            pass
    return record


def _with_optimizers(record: dict, extra: dict) -> dict:
    """``record`` plus the rows and curves of ``extra``'s optimizers that ``record``
    lacks (on the tasks both hold; the baselines of the two are the same runs)."""
    have = {r["optimizer"] for r in record["rows"]}
    tasks = set(record["tasks"]) & set(extra["tasks"])
    rows = [
        r for r in extra["rows"] if r["optimizer"] not in have and r["task"] in tasks
    ]
    names = {(r["task"], r["optimizer"]) for r in rows}
    curves = {
        k: v
        for k, v in extra["curves"].items()
        if (k.split("/", 1)[0], k.split("/", 1)[1].split("@")[0]) in names
    }
    out = dict(
        record, rows=record["rows"] + rows, curves={**record["curves"], **curves}
    )
    out["tasks"] = {
        t: {**v, "learned": {**v.get("learned", {}), **extra["tasks"][t]["learned"]}}
        if t in tasks
        else v
        for t, v in record["tasks"].items()
    }
    return out


def _records_note(q: Quality) -> str:
    if q.lopt_runs is not None:
        return f" Records rerun by this --full run in {q.lopt_runs}."
    return (
        " Drawn from the records shipped in stability/lopt/records/ (--full reruns "
        "the meta-training and the evaluation)."
    )


def _standard_scores(losses, exact):
    """``|mean - exact| / s.e.`` per step: the seeds' mean loss against the exact
    expectation, in standard errors of that mean (``losses``: seeds x steps)."""
    import numpy as np

    losses = np.asarray(losses, float)
    se = losses.std(0, ddof=1) / np.sqrt(losses.shape[0])
    return np.abs(losses.mean(0) - np.asarray(exact)) / se


def _first_spike(losses, window=50, factor=100):
    """Means of the consecutive ``window``-step windows of ``losses``, and the first
    step of the first window, from the third on, whose mean exceeds ``factor`` times
    the lowest mean of the windows before it (``None`` if none does). Window means
    average the noise out."""
    import numpy as np

    losses = np.asarray(losses, float)
    means = losses[: losses.size // window * window].reshape(-1, window).mean(axis=1)
    best = np.minimum.accumulate(means)
    spike = np.flatnonzero(means[2:] > factor * best[1:-1])
    return means, (int(spike[0] + 2) * window if spike.size else None)


def _first_step(at, flags, start):
    """The first of the increasing steps ``at`` that is ``>= start`` and where
    ``flags`` holds, or ``None``."""
    import numpy as np

    hits = np.flatnonzero((np.asarray(at) >= start) & np.asarray(flags, bool))
    return int(at[hits[0]]) if hits.size else None


@_register("fig06", "meta_training", "Meta-training curves")
def _fig06(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting

    rec = _lopt_record("meta_training", q, "meta-training curves")
    runs = rec["runs"]
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(1, 2, width=7.4, height=3.0)
        a, b = axes[0]
        for name, run in runs.items():
            label, colour, marker = _lopt_style(name)
            c, ev = run["curve"], run["eval"]
            a.plot(c["step"], c["meta_loss_smooth"], color=colour, label=label)
            b.semilogy(
                ev["step"],
                ev["train_loss"],
                color=colour,
                marker=marker,
                markersize=2.5,
                linewidth=1.0,
                label=label,
            )
            kept = run["best_step"] is not None
            if kept:
                i = int(np.flatnonzero(ev["step"] == run["best_step"])[0])
                b.plot(
                    ev["step"][i],
                    ev["train_loss"][i],
                    marker="*",
                    markersize=9,
                    color=colour,
                    markeredgecolor="black",
                    markeredgewidth=0.5,
                )
            numbers[f"{name}: wall time (s) for {int(c['step'][-1])} outer steps"] = (
                _fmt(run["wall_s"], 3)
            )
            smooth = c["meta_loss_smooth"]
            first = smooth[min(rec["window"] // rec["every"], smooth.size) - 1]
            key = f"{name}: meta-loss, mean of first / last {rec['window']} steps"
            numbers[key] = f"{_fmt(first)} / {_fmt(smooth[-1])}"
            if kept:
                select = run["config"].get("select", "objective")
                numbers[
                    f"{name}: held-out train loss at T / meta-loss, start -> kept "
                    f"(step {run['best_step']}, by {select})"
                ] = (
                    f"{_fmt(ev['train_loss'][0])} / {_fmt(ev['objective'][0])} -> "
                    f"{_fmt(ev['train_loss'][i])} / {_fmt(ev['objective'][i])}"
                )
            numbers[f"{name}: meta-gradients skipped / inner runs reset"] = (
                f"{int(c['skipped_total'][-1])} / {int(c['diverged_total'][-1])}"
            )
        cfg = (
            runs["star"]["config"]
            if "star" in runs
            else next(iter(runs.values()))["config"]
        )
        a.set_title(f"(a) meta-loss, trailing mean of {rec['window']} outer steps")
        a.set_xlabel("outer step")
        a.set_ylabel("meta-loss (mean log train loss)")
        b.set_title("(b) held-out train loss at T (★ kept)")
        b.set_xlabel("outer step")
        b.set_ylabel("training-split loss at step T")
        a.legend(loc="upper right", fontsize=6.5)
    caption = (
        f"Meta-training on {cfg['task']} with {cfg['estimator'].upper()}: horizon "
        f"T = {cfg['horizon']}, truncation {cfg['truncation']}, "
        f"{cfg['population']} antithetic pairs, sigma {cfg['sigma']}, AdamW lr "
        f"{cfg['outer_lr']}, weight decay {cfg['weight_decay']} (0 for the wd-0 "
        f"ablation), nominal step {_fmt(cfg['nominal_stepsize'], 3)}. Meta-loss: "
        "mean log training loss over each truncation. Held-out: mean over "
        f"{cfg['eval_seeds']} held-out episodes every {cfg['eval_every']} outer "
        "steps. Each run keeps (★) the theta with the lowest held-out training loss "
        "at T (runs older than that rule kept the lowest held-out meta-loss); the "
        "shipped thetas are these kept thetas." + _records_note(q)
    )
    return Drawn(fig, caption, numbers)


def _eval_rows(rec, task):
    return [r for r in rec["rows"] if r["task"] == task]


def _eval_curve(rec, task, row):
    """The held-out curve behind a table row (tuned baselines have one per value)."""
    name = row["optimizer"]
    key = f"{task}/{name}"
    if key not in rec["curves"]:
        key = f"{task}/{name}@{row['hyperparameter']:.3g}"
    return rec["curves"].get(key)


def _mark_diverged(ax, curve, colour):
    import numpy as np

    for d in curve["diverged_step"]:
        if not np.isfinite(d):  # this seed never diverged
            continue
        i = min(int(np.searchsorted(curve["step"], d)), curve["step"].size - 1)
        y = curve["loss_geomean"][i]
        y = y if np.isfinite(y) and y > 0 else curve["initial_loss"]
        ax.plot(d, y, marker="x", color=colour, markersize=6, markeredgewidth=1.4)


@_register("fig07", "long_horizon", "Long-horizon stability of learned optimizers")
def _fig07(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting

    rec = _lopt_record("evaluation", q, "training curves past the horizon")
    task = "digits_mlp"
    rows = _eval_rows(rec, task)
    if not rows:
        raise NotAvailable(f"the shipped evaluation has no {task} rows")
    proto = rec["tasks"][task]
    base = proto["base_horizon"]
    multiples = sorted({r["multiple"] for r in rows})
    main = ("star", "star_bounded", "small_fc_lopt", "adam", "nominal")
    order = [n for n in _LOPT_STYLE if any(r["optimizer"] == n for r in rows)]
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(1, 2, width=7.4, height=3.2)
        a, b = axes[0]
        for name in main:
            longest = max(
                (r for r in rows if r["optimizer"] == name),
                key=lambda r: r["multiple"],
                default=None,
            )
            if longest is None:
                continue
            curve = _eval_curve(rec, task, longest)
            label, colour, _ = _lopt_style(name)
            if name in ("adam", "nominal"):
                label += f", {_fmt(longest['hyperparameter'], 3)}"
            lo = np.maximum(curve["loss_min"], _LOSS_FLOOR)
            hi = np.maximum(curve["loss_max"], _LOSS_FLOOR)
            a.fill_between(curve["step"], lo, hi, color=colour, alpha=0.18, linewidth=0)
            a.plot(
                curve["step"],
                np.maximum(curve["loss_geomean"], _LOSS_FLOOR),
                color=colour,
                label=label,
                linewidth=1.1,
            )
            _mark_diverged(a, curve, colour)
        init = float(
            np.mean(
                [
                    c["initial_loss"]
                    for k, c in rec["curves"].items()
                    if k.startswith(f"{task}/")
                ]
            )
        )
        a.axhline(init, color="0.3", linestyle=":", linewidth=1.0)
        a.text(
            25,
            init * 1.6,
            "initial loss",
            fontsize=6.5,
            color="0.3",
        )
        for m in multiples:
            a.axvline(m * base, color="0.75", linewidth=0.8, zorder=0)
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("inner step t")
        a.set_ylabel("training-split loss")
        a.set_title(
            f"(a) {task}, {len(proto['held_out_seeds'])} held-out seeds "
            "(band: min–max, ×: diverged)"
        )
        a.legend(loc="lower left", fontsize=6.5)
        offsets = np.linspace(-0.3, 0.3, len(order))
        for off, name in zip(offsets, order, strict=True):
            label, colour, marker = _lopt_style(name)
            for r in rows:
                if r["optimizer"] != name:
                    continue
                x = np.log10(r["multiple"]) + off * 0.5
                y = max(r["train_loss_mean"] or _LOSS_FLOOR, _LOSS_FLOOR)
                div = r["diverged"] > 0
                b.plot(
                    x,
                    y,
                    marker=marker,
                    linestyle="none",
                    markersize=5,
                    color=colour,
                    markerfacecolor="none" if div else colour,
                    label=label if r["multiple"] == multiples[0] else None,
                )
                numbers[
                    f"{name} at {r['multiple']}x: final train loss (diverged seeds)"
                ] = f"{_fmt(r['train_loss_mean'])} ({r['diverged']}/{r['seeds']})"
        b.set_yscale("log")
        b.set_xticks(
            [np.log10(m) for m in multiples],
            [f"{m}x\n(T = {m * base:,})" for m in multiples],
        )
        b.set_ylabel("final training loss (mean over seeds)")
        b.set_title("(b) end of each horizon (hollow: a seed diverged)")
        fig.legend(
            *b.get_legend_handles_labels(),
            loc="outside lower center",
            ncol=4,
            fontsize=6.5,
        )
    caption = (
        f"Inner training on {task} past the meta-training horizon T = {base}: the "
        "meta-trained STAR and small_fc_lopt (kept by a held-out evaluation at T) "
        "against Adam and the "
        "nominal term alone, each with its step tuned per horizon on separate seeds "
        f"over {len(proto['grid'])} half-decade values. A run diverged when its "
        "training-split loss rose above its initial value or went non-finite; "
        f"losses of 0 (float32 underflow) are drawn at {_LOSS_FLOOR:g}."
        + _records_note(q)
    )
    return Drawn(fig, caption, numbers)


@_register("fig08", "generalization", "Out-of-distribution generalisation")
def _fig08(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting
    from stability.lopt.tasks import task_names

    rec = _lopt_record("evaluation", q, "out-of-distribution evaluation")
    tasks = list(rec["tasks"])
    missing = [t for t in task_names() if t not in rec["tasks"]]
    order = [n for n in _LOPT_STYLE if any(r["optimizer"] == n for r in rec["rows"])]
    numbers = {"tasks evaluated": ", ".join(tasks)}
    if missing:
        numbers["tasks not in the shipped evaluation (CPU cost)"] = ", ".join(missing)
    multiples = (1, 10)
    rows = {(r["task"], r["multiple"], r["optimizer"]): r for r in rec["rows"]}
    at = {  # the tasks evaluated at each multiple, in the record's order
        m: [t for t in tasks if any(k[:2] == (t, m) for k in rows)] for m in multiples
    }
    with plotting.style():
        fig, axes = plotting.figure(
            1,
            2,
            width=7.4,
            height=3.6,
            sharey=True,
            gridspec_kw={"width_ratios": [max(len(at[m]), 1) for m in multiples]},
        )
        offsets = np.linspace(-0.32, 0.32, len(order))
        for ax, mult, tag in zip(axes[0], multiples, "ab", strict=True):
            for off, name in zip(offsets, order, strict=True):
                label, colour, marker = _lopt_style(name)
                small = name.startswith("star_")
                for i, task in enumerate(at[mult]):
                    row = rows.get((task, mult, name))
                    if row is None:
                        continue
                    y = max(row["train_loss_mean"] or _LOSS_FLOOR, _LOSS_FLOOR)
                    div = row["diverged"] > 0
                    ax.plot(
                        i + off,
                        y,
                        marker=marker,
                        linestyle="none",
                        markersize=3.5 if small else 5.5,
                        color=colour,
                        markerfacecolor="none" if div else colour,
                        alpha=0.7 if small else 1.0,
                        label=label if i == 0 else None,
                    )
            ax.set_xticks(
                range(len(at[mult])),
                [t.replace("digits_mlp", "digits") for t in at[mult]],
                rotation=40,
                ha="right",
                rotation_mode="anchor",
                fontsize=7,
            )
            ax.set_yscale("log")
            ax.set_title(f"({tag}) at {mult}x the meta-training horizon")
        axes[0, 0].set_ylabel("final training loss (mean over seeds)")
        fig.legend(
            *axes[0, 0].get_legend_handles_labels(),
            loc="outside lower center",
            ncol=4,
            fontsize=6.5,
        )
    for task in tasks:
        for mult in multiples:
            s, ad = rows.get((task, mult, "star")), rows.get((task, mult, "adam"))
            if s is None or ad is None:
                continue
            verdict = (
                "wins"
                if (s["diverged"] == 0 and s["train_loss_mean"] < ad["train_loss_mean"])
                else "loses"
            )
            sfc = rows.get((task, mult, "small_fc_lopt"))
            numbers[f"{task} {mult}x: STAR / small_fc_lopt / tuned Adam"] = (
                f"{_fmt(s['train_loss_mean'])} ({s['diverged']} div) / "
                + (
                    f"{_fmt(sfc['train_loss_mean'])} ({sfc['diverged']} div)"
                    if sfc
                    else "-"
                )
                + f" / {_fmt(ad['train_loss_mean'])}: STAR {verdict}"
            )
    caption = (
        "Final training loss of the learned optimizers (meta-trained on "
        "digits_mlp at T = 1000) on other activations, depths and data, at 1x and "
        "10x T, against Adam and the nominal term with tuned steps; hollow markers: "
        "at least one of the held-out seeds diverged; small markers: STAR "
        "ablations. Within the CPU budget not every optimizer ran on every task, "
        "and (b) has only the tasks evaluated at 10x (benchmarks/RESULTS.md says "
        "what each costs)." + _records_note(q)
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig09: linearised STAR along an NQM trajectory
# ----------------------------------------------------------------------------------


@_register("fig09", "linearized_star", "Linearised STAR against observed training")
def _fig09(q: Quality) -> Drawn:
    import numpy as np

    from stability import analyses, plotting, problems
    from stability.lopt.dynamics import linearized_star_along_trajectory
    from stability.lopt.evaluate import learned_optimizer
    from stability.lopt.io import SHIPPED_THETAS

    n = 8
    lam = problems.spectra.log_uniform(n, 1e-2, 1.0)
    steps = q.pick(6000, 20000)
    stride = q.pick(20, 10)
    x_star = analyses.max_stable_learning_rate("aggmo", 1.0)
    panels = [  # (title, theta (None: zero output layer), nominal step, noise var.,
        # other STAR options)
        ("nominal term alone", None, 1.0, 0.0, {}),
        ("nominal term alone", None, 1.0, 1e-4, {}),
    ]
    shipped = SHIPPED_THETAS / "star.npz"
    if shipped.exists():
        lo = learned_optimizer(shipped)
        if lo.label != "star":  # an ablation would need its own switches here
            raise ValueError(f"{shipped}: expected plain STAR, got {lo.label}")
        nominal = float(lo.nominal_stepsize)
        panels.append(("meta-trained STAR", lo.theta, nominal, 0.0, {}))
    bounded = SHIPPED_THETAS / "star_bounded.npz"
    if bounded.exists():
        lo = learned_optimizer(bounded)
        options = {"blackbox_bound": lo.metadata["config"]["blackbox_bound"]}
        nominal = float(lo.nominal_stepsize)
        panels.append(("bounded STAR", lo.theta, nominal, 0.0, options))
    numbers = {}
    with plotting.style():
        fig, axes = plotting.figure(2, len(panels), width=9.2, height=5.0, sharex="col")
        for col, (title, theta, nominal, var, options) in enumerate(panels):
            prob = problems.NoisyQuadratic.from_eigenvalues(lam, noise_var=var)
            rec = linearized_star_along_trajectory(
                theta,
                prob,
                steps,
                nominal_stepsize=nominal,
                every=stride,
                seed=col,
                **options,
            )
            losses, at, rho, dim = rec.loss[0], rec.steps, rec.rho[0], rec.dim
            v = rec.second_moment[0]
            # frozen second moment: per mode an AggMo block with lr a / sqrt(v + 1e-6)
            margin = np.max(nominal * lam[None, :] / np.sqrt(v + 1e-6), axis=1) / x_star
            top, bottom = axes[0, col], axes[1, col]
            noise_label = "noiseless" if var == 0 else f"noise var. {var:g}"
            top.plot(np.arange(steps), np.maximum(losses, 1e-300), linewidth=0.6)
            top.set_yscale("log")
            top.set_title(
                f"({'abcd'[col]}) {title}, a = {nominal:.3g}\n{noise_label}: loss",
                fontsize=8,
            )
            plotting.radius_trace(bottom, at, rho, label="ρ, linearised joint step")
            bottom.plot(
                at,
                margin,
                color=plotting.PALETTE["vermillion"],
                linestyle="--",
                linewidth=1.1,
                label="nominal part, frozen v:\nmax_i a h_i/√(v_i+1e-6) / x*",
            )
            bottom.set_yscale("log")
            bottom.set_ylim(0.005 if col >= 2 else 0.08, 12)
            bottom.set_xlabel("step t")
            unstable = rho >= 1.0
            plotting.shade(bottom, at, unstable, label="ρ ≥ 1")
            plotting.shade(top, at, unstable)
            bottom.set_title(f"({'efgh'[col]}) ρ of the {dim} × {dim} Jacobian")
            if col == 0:
                top.set_ylabel("loss l_t")
                bottom.set_ylabel("ρ  /  margin")
                bottom.legend(loc="upper left", fontsize=6)
            tag = f"{title}, {noise_label}"
            late = at >= 100
            first = _first_step(at, unstable, start=100)
            numbers[f"{tag}: first step (>= 100) with rho >= 1"] = (
                "none" if first is None else str(first)
            )
            numbers[f"{tag}: fraction of checkpoints (t >= 100) with rho >= 1"] = _fmt(
                np.mean(unstable[late]), 3
            )
            numbers[f"{tag}: median / max rho (t >= 100)"] = (
                f"{_fmt(np.median(rho[late]))} / {_fmt(np.max(rho[late]))}"
            )
            means, spike = _first_spike(losses[:steps])
            numbers[f"{tag}: first loss spike (50-step mean > 100x best so far)"] = (
                f"steps {spike}-{spike + 49}" if spike is not None else "none"
            )
            numbers[f"{tag}: lowest 50-step mean loss (steps) / final loss"] = (
                f"{_fmt(means.min())} ({int(np.argmin(means)) * 50}-"
                f"{int(np.argmin(means)) * 50 + 49}) / {_fmt(losses[-1])}"
            )
        fig.suptitle(
            f"NQM n = {n}, spec(H) log-uniform in [0.01, 1], x0 = 1; AggMo limit "
            f"x* = {x_star:.3f}; shaded: checkpoints with ρ ≥ 1",
            fontsize=8,
        )
    if not shipped.exists():
        numbers["meta-trained STAR"] = (
            "not drawn: stability/lopt/thetas/star.npz absent"
        )
    caption = (
        "STAR linearised by jax.jacfwd of one real step over (parameters, momenta, "
        "second moment, Adafactor accumulators) every few steps along its own "
        "trajectory, next to the observed loss. (a, b) STAR with a zero output layer "
        "is exactly its nominal AdamAggMo term: noiseless, the second moment decays "
        "geometrically, the effective step a/sqrt(v) grows past the AggMo limit x* "
        "and the loss spikes where rho crosses 1; with gradient noise v stays bounded "
        "away from zero and the loop stays stable. (c) The shipped STAR (meta-trained "
        "on digits_mlp) at its own nominal step: its nominal part alone stays far "
        "inside the limit, yet the learned term makes the joint step unstable at "
        "most checkpoints of the noiseless run and the loss climbs from its minimum "
        "to a plateau instead of converging. The climb is bounded and far slower "
        "than rho^t: the learned "
        "term's inputs are normalised by their own RMS, so its step does not shrink "
        "with the gradient and the linearisation, exact for one step, overstates the "
        "growth over many (the prediction and the observation disagree here in rate, "
        "not in direction). (d) The shipped bounded STAR (its blackbox term at most "
        "its nominal term per tensor): the joint step is stable at almost every "
        "checkpoint and the loss converges. The joint radius never drops below "
        "0.999, the slowest accumulator decay."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# Running, reporting, command line
# ----------------------------------------------------------------------------------
# fig10: certified rates on F(mu, L) against quadratic stability
# ----------------------------------------------------------------------------------


@_register("fig10", "certified", "Certified convergence on F(mu, L) against quadratics")
def _fig10(q: Quality) -> Drawn:
    _optional_module("cvxpy", "fig10")
    from stability.certified_figure import figure

    return Drawn(*figure(q))


# ----------------------------------------------------------------------------------
# fig11: what STAR's update is made of, out to 100x the meta-training horizon
# ----------------------------------------------------------------------------------

# (name, theta file in stability/lopt/thetas/ or a --full run, nominal term alone)
ANATOMY_RUNS = (
    ("star", "star", False),
    ("star_no_precond", "star_no_precond", False),
    ("nominal", "star", True),
)


def _anatomy_record(q: Quality) -> dict:
    """The shipped anatomy record, or with ``--full`` one recomputed (100,000 steps,
    3 held-out seeds) from the thetas of the rerun meta-training."""
    import json

    shipped = pathlib.Path(__file__).parent / "lopt" / "records" / "anatomy.json"
    if q.lopt_runs is None:
        if not shipped.exists():
            raise NotAvailable(
                "fig11 needs stability/lopt/records/anatomy.json "
                "(python -m stability.lopt.anatomy); it is not there"
            )
        return json.loads(shipped.read_text())
    from stability.lopt import anatomy

    folder = rerun_lopt_records(q.lopt_runs).parent / "meta_training"
    out = pathlib.Path(q.lopt_runs) / "anatomy.json"
    if not out.exists():
        argv = [str(out)] + [
            f"{name}={'nominal:' if alone else ''}{folder / run / 'best_theta.npz'}"
            for name, run, alone in ANATOMY_RUNS
        ]
        with _x64_off():
            anatomy.main(argv)
    return json.loads(out.read_text())


@_register("fig11", "anatomy", "STAR's update split into its two terms along training")
def _fig11(q: Quality) -> Drawn:
    import numpy as np

    from stability import plotting
    from stability.lopt.anatomy import from_json

    raw = _anatomy_record(q)
    runs = {k: from_json(v) for k, v in raw["runs"].items()}
    base = 1000  # the meta-training horizon of the shipped runs
    numbers = {}

    def geo(x):
        with np.errstate(divide="ignore"):
            return np.exp(np.mean(np.log(np.maximum(x, _LOSS_FLOOR)), axis=0))

    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.6)
        (a, b), (c, d) = axes
        for name, rec in runs.items():
            label, colour, _ = _lopt_style(name)
            if name == "nominal":
                label = f"nominal term alone, {_fmt(rec.config['nominal_stepsize'], 3)}"
            t = np.maximum(rec.steps, 1)
            lo = np.maximum(rec.loss.min(0), _LOSS_FLOOR)
            hi = np.maximum(rec.loss.max(0), _LOSS_FLOOR)
            a.fill_between(t, lo, hi, color=colour, alpha=0.15, linewidth=0)
            a.plot(t, geo(rec.loss), color=colour, label=label, linewidth=1.1)
            if name != "nominal":
                ratio = np.median(rec.ratio, axis=0)
                b.plot(t, np.median(rec.blackbox_norm, 0), color=colour, linewidth=1.1)
                b.plot(t, np.median(rec.nominal_norm, 0), color=colour, linestyle="--")
                numbers[f"{name}: |f_b| / |f_g| at T, 10T, 100T (median)"] = ", ".join(
                    _fmt(ratio[np.searchsorted(rec.steps, m * base - 1)], 3)
                    for m in (1, 10, 100)
                )
            c.plot(t, np.median(rec.cos_total, 0), color=colour, linewidth=1.1)
            d.plot(t, np.median(rec.param_norm, 0), color=colour, linewidth=1.1)
            first = [
                int(rec.steps[np.argmax(f)]) if f.any() else None for f in rec.diverged
            ]
            numbers[f"{name}: loss at T, 10T, 100T (geometric mean)"] = ", ".join(
                _fmt(geo(rec.loss[:, np.searchsorted(rec.steps, m * base - 1)]))
                for m in (1, 10, 100)
            )
            numbers[f"{name}: first step above the initial loss, per seed"] = ", ".join(
                "never" if f is None else f"{f:,}" for f in first
            )
        init = float(np.mean(next(iter(runs.values())).initial_loss))
        a.axhline(init, color="0.3", linestyle=":", linewidth=1.0)
        for ax in (a, b, c, d):
            ax.set_xscale("log")
            for m in (1, 10, 100):
                ax.axvline(m * base, color="0.8", linewidth=0.8, zorder=0)
            ax.set_xlabel("inner step t")
        a.set_yscale("log")
        b.set_yscale("log")
        a.set_ylabel("training-split loss")
        a.set_title("(a) digits_mlp, 3 held-out seeds (band: min–max)")
        a.legend(loc="lower left", fontsize=6.5)
        b.set_ylabel("norm of the term (median)")
        b.set_title("(b) blackbox |f_b| (solid), nominal |f_g| (dashed)")
        c.set_ylabel("cos(step, gradient)")
        c.axhline(0, color="0.5", linewidth=0.8)
        c.set_title("(c) alignment of the step with the gradient")
        d.set_yscale("log")
        d.set_ylabel("parameter norm |p|")
        d.set_title("(d) parameter norm")
    caption = (
        f"STAR's step split into its output-preconditioned blackbox term f_b and its "
        f"nominal term f_g along training on digits_mlp out to {raw['steps']:,} "
        "steps (100x the meta-training horizon T; grey lines at T, 10T, 100T), for "
        "the shipped STAR, STAR without output preconditioning and the nominal term "
        "alone at the shipped nominal step. The nominal term shrinks with the "
        "gradient; the blackbox term, divided by sqrt(v + 1e-6), does not, so past T "
        "the step stops following the gradient and the parameters drift. From "
        "stability/lopt/records/anatomy.json (python -m stability.lopt.anatomy)."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------
# fig12: gradient descent and Adam at the edge of stability on a real network
# ----------------------------------------------------------------------------------


@_register(
    "fig12",
    "edge_of_stability",
    "Gradient descent and Adam at the edge of stability on a real network",
)
def _fig12(q: Quality) -> Drawn:
    from stability import plotting
    from stability.lopt.edge import adam_edge_of_stability, gd_edge_of_stability

    # quick: half the steps, half as many checkpoints; Adam's smallest lr (4e-3)
    # only reaches its edge near step 1600, too late for a median over 1000-2000
    steps, every = q.pick(2000, 4000), q.pick(40, 20)
    gd = gd_edge_of_stability(steps=steps, every=every)
    adam = adam_edge_of_stability(
        q.pick((8e-3, 1.6e-2), (4e-3, 8e-3, 1.6e-2)), steps=steps, every=every
    )
    numbers = {}
    for name, rec, what in (
        ("GD", gd, "sharpness / (2 / lr)"),
        ("Adam", adam, "preconditioned sharpness / (38 / lr)"),
    ):
        numbers[f"{name}: late median {what}, per lr"] = ", ".join(
            f"{r.info['lr']:g}: {_fmt(x, 4)}"
            for r, x in zip(rec.runs, rec.ratios, strict=True)
        )
    numbers["GD: sharpness at step 0"] = _fmt(gd.runs[0].checkpoints[0].sharpness, 4)
    numbers["Adam: raw sharpness at step 0 and at the end, per lr"] = ", ".join(
        f"{r.info['lr']:g}: {_fmt(r.checkpoints[0].sharpness, 4)} -> "
        f"{_fmt(r.checkpoints[-1].sharpness, 4)}"
        for r in adam.runs
    )
    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.6)
        (a, b), (c, d) = axes
        panels = (
            (a, c, gd, "GD", "sharpness", "2/lr", "upper right"),
            (b, d, adam, "Adam", "preconditioned sharpness", "38/lr", "lower right"),
        )
        for top, bottom, rec, name, quantity, edge, where in panels:
            plotting.edge(rec, top)
            plotting.edge_loss(rec, bottom)
            top.set_title(
                f"({'a' if name == 'GD' else 'b'}) {name}, full batch; dashed: {edge}"
            )
            top.set_ylabel(quantity)
            handles, _ = top.get_legend_handles_labels()
            top.legend(
                handles,
                [
                    f"{r.info['lr']:g}: {_fmt(x, 4)}"
                    for r, x in zip(rec.runs, rec.ratios, strict=True)
                ],
                title="lr: late median / threshold",
                title_fontsize=6,
                fontsize=6,
                loc=where,
            )
            bottom.set_title(
                f"({'c' if name == 'GD' else 'd'}) {name}: training loss (MSE)"
            )
            bottom.legend(loc="best", fontsize=6.5)
    caption = (
        f"Full-batch training of digits_mlp_tanh (500 examples, squared error) for "
        f"{steps:,} steps. (a) Gradient descent: the sharpness (top Hessian "
        "eigenvalue, Lanczos every "
        f"{every} steps) drops from about 25, climbs back by progressive sharpening "
        "and hovers at 2/lr (dashed) while the loss (c) keeps falling, unevenly "
        "(Cohen et al., 2021). (b) Adam (b1 = 0.9): the preconditioned sharpness "
        "(top eigenvalue of D^(-1/2) H D^(-1/2), D = sqrt(v_hat) + eps) hovers at "
        "38/lr (Cohen et al., 2022). Legends: the median over the second half of "
        "training divided by the threshold; 1 is the edge. From "
        "stability.lopt.edge (gd_edge_of_stability, adam_edge_of_stability)."
    )
    return Drawn(fig, caption, numbers)


# ----------------------------------------------------------------------------------


def resolve(names) -> list[str]:
    """Figure ids for ``--only`` names (``fig01`` or ``fig01_eigenvalues``); all of
    them when ``names`` is empty.

    >>> resolve(["fig05_nqm_losses", "fig01"])
    ['fig05', 'fig01']
    """
    if not names:
        return list(FIGURES)
    ids = []
    for name in names:
        fid = name.split("_", 1)[0]
        if fid not in FIGURES or name not in (fid, FIGURES[fid].name):
            known = ", ".join(FIGURES)
            raise ValueError(f"--only: unknown figure {name!r} (known: {known})")
        if fid not in ids:
            ids.append(fid)
    return ids


def render(fid: str, out: pathlib.Path, quality: Quality) -> FigureResult:
    """Build one figure, save it as PNG and PDF into ``out``, and return its row."""
    import matplotlib.pyplot as plt

    from stability import plotting

    spec = FIGURES[fid]
    start = time.perf_counter()
    try:
        drawn = spec.build(quality)
        files = tuple(
            str(p)
            for p in plotting.save(drawn.figure, out / spec.name, dpi=quality.dpi)
        )
        status, reason = "ok", ""
        caption, numbers = drawn.caption, drawn.numbers
    except NotAvailable as err:
        status, reason, files, caption, numbers = "not available", str(err), (), "", {}
    except Exception as err:  # a failed figure must not stop the others
        status, files, caption, numbers = "failed", (), "", {}
        reason = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        plt.close("all")
    return FigureResult(
        fid,
        spec.name,
        spec.title,
        status,
        time.perf_counter() - start,
        files,
        caption,
        numbers,
        reason,
    )


def _lemma_report(quality: Quality) -> tuple[str, str]:
    """The lemma report as Markdown, and an error line ('' if it ran)."""
    try:
        from stability import lemmas

        rows = lemmas.report(num_instances=quality.pick(20, 200))
    except Exception as err:
        traceback.print_exc()
        return "", f"{type(err).__name__}: {err}"
    if not rows:
        return "# Lemma report\n\nNo claim module exists yet.\n", ""
    return lemmas.format_report(rows), ""


def format_report(results, lemma_text, lemma_error, quality, seconds) -> str:
    """``REPORT.md``: every figure's status, caption, key numbers and files, then
    what was skipped and why, then the lemma report."""
    ok = [r for r in results if r.status == "ok"]
    skipped = [r for r in results if r.status == "not available"]
    failed = [r for r in results if r.status == "failed"]
    lines = [
        "# `stability reproduce` report",
        "",
        f"Quality: **{quality.name}**. Wall time {seconds:.1f} s. "
        f"{len(ok)} figure(s) drawn, {len(skipped)} not yet available, "
        f"{len(failed)} failed.",
        "",
        "| figure | status | time (s) |",
        "|---|---|---|",
    ]
    for r in results:
        lines.append(f"| `{r.name}` | {r.status} | {r.seconds:.1f} |")
    lines.append("")
    for r in results:
        lines += [f"## `{r.name}`: {r.title}", ""]
        if r.status == "ok":
            lines += [r.caption, "", "| quantity | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in r.numbers.items()]
            files = ", ".join(f"`{pathlib.Path(f).name}`" for f in r.files)
            lines += ["", f"Files: {files}", ""]
        else:
            lines += [f"**{r.status}**: {r.reason}", ""]
    lines += ["## Skipped and failed", ""]
    if not skipped and not failed:
        lines.append("Nothing was skipped.")
    for r in skipped + failed:
        lines.append(f"- `{r.name}` ({r.status}): {r.reason}")
    if lemma_error:
        lines.append(f"- lemma report (failed): {lemma_error}")
    lines.append("")
    text = "\n".join(lines)
    if lemma_text:
        # demote the lemma report's headings one level under this report
        demoted = "\n".join(
            "#" + ln if ln.startswith("#") else ln for ln in lemma_text.splitlines()
        )
        text += "\n" + demoted + "\n"
    return text


def _check_arguments(args) -> None:
    """Check parsed arguments before anything runs.

    Raises:
      ValueError: naming the flag: ``--shipped-records`` without ``--full``, an
        unknown ``--only`` name, an ``--out`` that is empty, a file or unwritable.
    """
    from stability.cli import writable_dir

    if getattr(args, "shipped_records", False) and not getattr(args, "full", False):
        raise ValueError("--shipped-records: only --full takes it")
    resolve(getattr(args, "only", None))
    writable_dir("--out", getattr(args, "out", DEFAULT_OUT))


def _add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    quick_out = f"{DEFAULT_OUT}/quick"

    class Mode(argparse.Action):  # --quick / --full; a default --out follows it
        def __call__(self, parser, namespace, values, option_string=None):
            namespace.full = self.const
            if not getattr(namespace, "out_given", False):
                namespace.out = DEFAULT_OUT if self.const else quick_out

    class Out(argparse.Action):  # --out DIR, which then stays whatever the mode
        def __call__(self, parser, namespace, values, option_string=None):
            namespace.out = values
            namespace.out_given = True

    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="full",
        action=Mode,
        nargs=0,
        const=False,
        help="small grids and runs, a few minutes on 2 cores (default)",
    )
    mode.add_argument(
        "--full",
        dest="full",
        action=Mode,
        nargs=0,
        const=True,
        help="publication quality",
    )
    p.set_defaults(full=False)
    p.add_argument(
        "--out",
        action=Out,
        default=quick_out,
        metavar="DIR",
        help=f"output folder for images and REPORT.md (default: {quick_out}/ "
        f"with --quick, {DEFAULT_OUT}/ with --full; the committed renders in "
        f"{DEFAULT_OUT}/ are full quality, so quick ones go elsewhere unless "
        "--out says so)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="figure ids to run, e.g. fig01 fig05 (default: all)",
    )
    p.add_argument(
        "--shipped-records",
        action="store_true",
        help="with --full: draw fig06-08 from the shipped meta-training and "
        "evaluation records instead of rerunning them (about an hour on 2 cores)",
    )
    p.add_argument(
        "--no-lemmas",
        dest="lemmas",
        action="store_false",
        help="leave the lemma report out",
    )
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``reproduce`` on an ``argparse`` sub-parser set (for the CLI)."""
    p = subparsers.add_parser(
        "reproduce",
        help="regenerate every figure and the lemma report",
        description=__doc__.split("\n\n")[0],
    )
    _add_arguments(p)

    def checked_run(args) -> int:
        _check_arguments(args)  # a ValueError: one line from the CLI, exit 2
        return run(args)

    p.set_defaults(run=checked_run)
    return p


def _enable_x64():
    import jax

    jax.config.update("jax_enable_x64", True)


def run(args) -> int:
    """Run the figures named in ``args`` and write ``REPORT.md``; 0 if none failed."""
    from tqdm.auto import tqdm

    ids = resolve(getattr(args, "only", None))
    out = pathlib.Path(getattr(args, "out", DEFAULT_OUT))
    full = bool(getattr(args, "full", False))
    rerun = full and not getattr(args, "shipped_records", False)
    quality = Quality(full, str(out / "lopt_runs") if rerun else None)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    needs_records = [fid for fid in ids if fid in RECORD_FIGURES]
    rerun_failed = ""
    if rerun and needs_records:  # once for the three figures, before x64 is on
        try:
            rerun_lopt_records(quality.lopt_runs)
        except Exception as err:
            traceback.print_exc()
            rerun_failed = f"rerunning the records failed: {type(err).__name__}: {err}"
    _enable_x64()
    results = []
    bar = tqdm(ids, desc=f"reproduce ({quality.name})", unit="fig", file=sys.stderr)
    for fid in bar:
        bar.set_postfix_str(FIGURES[fid].name)
        if rerun_failed and fid in needs_records:
            spec = FIGURES[fid]
            results.append(
                FigureResult(
                    fid, spec.name, spec.title, "failed", 0.0, (), "", {}, rerun_failed
                )
            )
            continue
        results.append(render(fid, out, quality))
    bar.close()
    lemma_text, lemma_error = "", ""
    if getattr(args, "lemmas", True):
        lemma_text, lemma_error = _lemma_report(quality)
    seconds = time.perf_counter() - start
    report = format_report(results, lemma_text, lemma_error, quality, seconds)
    (out / "REPORT.md").write_text(report)
    for r in results:
        extra = f" ({r.reason})" if r.reason else ""
        print(f"{r.name}: {r.status} in {r.seconds:.1f} s{extra}", file=sys.stderr)
    print(f"wrote {out / 'REPORT.md'} in {seconds:.1f} s", file=sys.stderr)
    failed = any(r.status == "failed" for r in results) or bool(lemma_error)
    return 1 if failed else 0


def main(argv=None) -> int:
    """``stability reproduce`` as a function: ``main(["--quick", "--out", d])``."""
    parser = _add_arguments(
        argparse.ArgumentParser(prog="stability reproduce", description=__doc__)
    )
    args = parser.parse_args(argv)
    try:
        _check_arguments(args)
    except ValueError as err:
        parser.error(str(err))
    return run(args)


def script_main(fid: str, argv=None) -> int:
    """Entry point of ``figures/figNN_name.py``: one figure, ``--quick`` or default
    (full quality; fig06-08 from the shipped records), ``--out DIR`` (default: the
    script's own folder). Prints the key numbers; exit status 1 if the figure
    failed."""
    spec = FIGURES[fid]
    p = argparse.ArgumentParser(prog=f"{spec.name}.py", description=spec.title)
    p.add_argument("--quick", action="store_true", help="small grids and runs")
    p.add_argument("--out", default=None, help="output folder")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out) if args.out else pathlib.Path(sys.argv[0]).parent
    _enable_x64()
    quality = Quality(full=not args.quick)
    out.mkdir(parents=True, exist_ok=True)
    r = render(fid, out, quality)
    print(f"# {r.name} ({quality.name}): {r.status} in {r.seconds:.1f} s")
    if r.reason:
        print(r.reason)
    for k, v in r.numbers.items():
        print(f"{k}: {v}")
    for f in r.files:
        print(f"wrote {f}")
    return 1 if r.status == "failed" else 0


if __name__ == "__main__":
    raise SystemExit(main())
