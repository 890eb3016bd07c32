"""fig04: the meta-gradient and its sampled variance against the unroll horizon,
below, at and above rho = 1, measured by :mod:`stability.lemmas.metagrad`."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from stability.figures._base import Quality, fmt


class Record(NamedTuple):
    horizons: np.ndarray
    seeds: int  # sampled unrolls behind each variance
    growth: list  # metagrad.gradient_growth records at rho = 0.95, 1, 1.03
    rates: Any  # metagrad.rate_vs_rho: fitted rates against rho


def compute(quality: Quality) -> Record:
    from stability import problems
    from stability.lemmas import metagrad

    q = quality
    lam = np.array([1.0, 0.5, 0.25, 0.1])
    prob = problems.NoisyQuadratic.from_eigenvalues(lam, noise_var=0.01)
    alpha = 0.5
    horizons = np.unique(np.geomspace(1, q.pick(150, 400), q.pick(16, 32)).astype(int))
    seeds = q.pick(256, 2048)
    growth = []
    for target in (0.95, 1.0, 1.03):
        k = (1.0 + target) / lam.max()  # the top mode's eigenvalue is 1 - k L = -rho
        growth.append(
            metagrad.gradient_growth(
                prob, (k - alpha) * np.eye(4), alpha, horizons, num_seeds=seeds
            )
        )
    rates = metagrad.rate_vs_rho(
        np.linspace(0.9, 1.1, q.pick(9, 21)),
        np.arange(20, 201, 20),
        num_seeds=q.pick(32, 256),
    )
    return Record(horizons, seeds, growth, rates)


def _draw_rates(ax, rates) -> None:
    from stability import plotting

    ax.plot(rates.rhos, rates.predicted, color="black", label="2 log max(ρ, 1)")
    ax.plot(
        rates.rhos,
        2 * rates.predicted,
        color="black",
        linestyle=":",
        label="4 log max(ρ, 1)",
    )
    fitted = (
        (rates.rates, "o", "fitted, ‖dL/dP‖"),
        (rates.variance_rates, "s", "fitted, variance"),
    )
    for k, (values, marker, label) in enumerate(fitted):
        ax.plot(
            rates.rhos,
            values,
            marker=marker,
            linestyle="none",
            markersize=3.5,
            color=plotting.CYCLE[k],
            label=label,
        )
    ax.axvline(1.0, color="0.6", linewidth=0.8)
    ax.set_xlabel("ρ (one mode, eigenvalue −ρ)")
    ax.set_ylabel("growth rate per step")
    ax.set_title("(c) rate, T = 20 … 200")
    ax.legend(loc="upper left", fontsize=6.5)


def draw(record: Record):
    from matplotlib.lines import Line2D

    from stability import plotting

    with plotting.style():
        fig, axes = plotting.figure(1, 3, width=7.4, height=3.2)
        t = record.horizons.astype(float)
        for k, rec in enumerate(record.growth):
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
        guide = Line2D([], [], color="0.4", linestyle="--", label="predicted law")
        axes[0, 0].set_title("(a) exact ‖dL/dP‖")
        axes[0, 0].set_ylabel("‖dL/dP‖_F")
        axes[0, 1].set_title(f"(b) variance, {record.seeds} sampled unrolls")
        axes[0, 1].set_ylabel("Σ Var(ĝ_ij)")
        for ax in axes[0, :2]:
            ax.set_xlabel("horizon T")
            handles, _ = ax.get_legend_handles_labels()
            ax.legend(handles=[*handles, guide], loc="upper left", fontsize=6.5)
        _draw_rates(axes[0, 2], record.rates)
        fig.suptitle(
            "L(P) = (1/T) Σ_{t<T} E l_t; (a, b): H = diag(1, .5, .25, .1), noise "
            "variance 0.01, x0 = 1, A = I − (αI + P)H,\nα = 0.5, P = (1 + ρ − α)I "
            "so the top mode has eigenvalue −ρ; laws ρ^{2T}, T², const (norm), "
            "squared (variance)",
            fontsize=8,
        )
    return fig


def numbers(record: Record) -> dict:
    out = {}
    last = record.horizons[-1]
    for rec in record.growth:
        tag = f"rho = {rec.rho:.2f}"
        out[f"{tag}: ||dL/dP|| at T = {last}"] = fmt(rec.grad_norms[-1])
        out[f"{tag}: sampled variance at T = {last}"] = fmt(rec.mc_variances[-1])
        out[f"{tag}: fitted rate / predicted 2 log max(rho, 1)"] = (
            f"{fmt(rec.rate, 3)} / {fmt(rec.predicted_rate, 3)}"
        )
        out[f"{tag}: fitted polynomial degree"] = fmt(rec.degree, 3)
    rates = record.rates
    err = np.abs(rates.rates - rates.predicted)[rates.rhos > 1.0]
    out["(c) max |fitted - predicted rate| for rho > 1"] = fmt(err.max(), 3)
    return out


def caption(record: Record) -> str:
    return (
        "Exact meta-gradient norm (jax.grad through the moment recursion) and the "
        "variance of the meta-gradient over sampled unrolls, against the horizon, "
        "measured by stability.lemmas.metagrad. Below rho = 1 both level off; at "
        "rho = 1 (eigenvalue -1, noise-driven) they grow polynomially (norm like T^2 "
        "asymptotically); above 1 the norm grows like rho^(2T) and the variance like "
        "rho^(4T). (c) fitted exponential rates against the prediction."
    )
