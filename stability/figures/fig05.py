"""fig05: the exact expected NQM loss (moment recursion) and the stationary loss
(Lyapunov equation) against simulated training runs of linear optimizers."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stability.figures._base import Quality, fmt


class Case(NamedTuple):
    label: str
    losses: np.ndarray  # simulated losses, seeds x steps
    exact: np.ndarray  # exact expected loss per step
    stationary: float
    scores: np.ndarray  # |simulated mean - exact| / s.e. per step


class Record(NamedTuple):
    steps: int
    seeds: int
    cases: list  # one Case per panel


def compute(quality: Quality) -> Record:
    import jax

    from stability import operators, optimizers, problems
    from stability.analyses import checks

    lam = problems.spectra.power_law(10, 1.0, 1.0)
    diag = problems.NoisyQuadratic.from_eigenvalues(lam, noise_var=0.02)
    dense = problems.rotated(diag, problems.random_rotation(10, seed=2))
    p_sym = np.random.default_rng(4).standard_normal((10, 10))
    p_sym = 0.3 * (p_sym + p_sym.T) / np.sqrt(40)
    setups = [
        ("gradient descent, a = 1.2", diag, optimizers.gd(1.2)),
        ("heavy ball, a = 0.5, β = 0.8", diag, optimizers.heavy_ball(0.5, 0.8)),
        ("AggMo, a = 10, β = (.9, .99, .999)", diag, optimizers.aggmo(10.0)),
        (
            "nominal + symmetric P, α = 0.8,\nrotated (dense) H",
            dense,
            optimizers.nominal_linear(0.8, p_sym),
        ),
    ]
    steps = quality.pick(200, 400)
    seeds = quality.pick(256, 4096)
    cases = []
    for k, (label, prob, opt) in enumerate(setups):
        loop = operators.closed_loop(opt, prob)
        exact = np.asarray(problems.expected_losses(prob, loop, steps))
        stat = problems.stationary_loss(prob, loop)
        sim = problems.simulate(
            prob, opt, steps, key=jax.random.key(k), num_seeds=seeds
        )
        losses = np.asarray(sim.losses)
        scores = checks.standard_scores(losses, exact)
        cases.append(Case(label, losses, exact, stat, scores))
    return Record(steps, seeds, cases)


def draw(record: Record):
    from matplotlib.lines import Line2D

    from stability import plotting

    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.4, sharex=True)
        for k, (case, ax) in enumerate(zip(record.cases, axes.ravel(), strict=True)):
            plotting.loss_band(
                ax,
                case.losses,
                exact=case.exact,
                stationary=case.stationary,
                color=plotting.CYCLE[k],
                label="simulated mean ± 2 s.e.",
            )
            ax.set_yscale("log")
            ax.set_title(f"({'abcd'[k]}) {case.label}")
            if k % 2 == 0:
                ax.set_ylabel("loss")
            if k >= 2:
                ax.set_xlabel("step t")
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
            f"NQM, n = 10, h_i = 1/i, noise variance 0.02, x0 = 1; {record.seeds} "
            "seeds",
            fontsize=9,
        )
    return fig


def numbers(record: Record) -> dict:
    out = {}
    for case in record.cases:
        short = case.label.split(",")[0]
        out[f"{short}: max |sim - exact| / s.e."] = fmt(case.scores.max(), 3)
        out[f"{short}: fraction of steps within 3 s.e."] = fmt(
            np.mean(case.scores < 3), 3
        )
        out[f"{short}: stationary loss"] = fmt(case.stationary, 5)
        out[f"{short}: exact loss at T = {record.steps}"] = fmt(case.exact[-1], 5)
    return out


def caption(record: Record) -> str:
    return (
        "Exact expected loss from the moment recursion (dashed) against the mean of "
        "sampled training runs (band: 2 standard errors of the mean) and the "
        "stationary loss from the discrete Lyapunov equation (dotted), for linear "
        "optimizers taken through their real optax update functions."
    )
