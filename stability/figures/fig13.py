"""fig13: STAR, the bounded STAR and the nominal term past the meta-training horizon
on a real network (digits_mlp, and digits_mlp_deep where STAR diverges): the real
step's spectral radius and the preconditioned sharpness against the nominal term's
threshold, measured by :mod:`stability.lopt.edge_horizon` (fig09's question, asked
of the network instead of the NQM)."""

from __future__ import annotations

from stability.figures._base import Quality


def compute(quality: Quality):
    from stability.lopt.edge_horizon import compute as past_horizon

    return past_horizon(quality.pick("quick", "full"))


def draw(record):
    from stability import plotting

    tasks = len(dict.fromkeys(r.task for r in record.runs))
    with plotting.style():
        fig, axes = plotting.figure(
            3, tasks, width=7.4 if tasks > 1 else 4.2, height=6.6
        )
        plotting.edge_horizon(record, axes)
    return fig


def numbers(record) -> dict:
    from stability.lopt.edge_horizon import summary

    return summary(record)


def caption(record) -> str:
    tasks = ", ".join(dict.fromkeys(r.task for r in record.runs))
    return (
        f"Training {tasks} past STAR's meta-training horizon T = {record.horizon:,} "
        "on minibatches of 128, measured on the full training split: the paper's "
        "STAR, the bounded STAR (blackbox term at most the nominal term's RMS) and "
        "the nominal AdamAggMo term alone at the same step. Top: training loss (a "
        "cross, its event: where it diverges or first climbs 10x above its best). "
        "Middle: the "
        "spectral radius of the real training step's Jacobian over parameters and "
        "optimizer state minus 1, against 1/T (dotted). Bottom: the preconditioned "
        "sharpness over the nominal term's threshold (the exact AdamAggMo boundary "
        "at the theta's learned decays), against 1. In the full run (30x T on "
        "digits_mlp, 10x T on the deep MLP) neither criterion marks where the loss "
        "diverges: flat directions hold the radius at or above 1 for the learned "
        "optimizers whether they converge or not, and the threshold fires only at "
        "isolated spikes. Compare fig09, where the NQM linearisation "
        "separates the two STARs."
    )
