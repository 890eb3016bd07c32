"""fig12: gradient descent and Adam at the edge of stability on a real network
(full-batch digits_mlp_tanh): sharpness against 2/lr and preconditioned sharpness
against 38/lr, measured by :mod:`stability.lopt.edge`."""

from __future__ import annotations

from typing import Any, NamedTuple

from stability.figures._base import Quality, fmt


class Record(NamedTuple):
    steps: int
    every: int  # steps between two sharpness measurements
    gd: Any  # lopt.edge record of gradient descent
    adam: Any  # lopt.edge record of Adam


def compute(quality: Quality) -> Record:
    from stability.lopt.edge import adam_edge_of_stability, gd_edge_of_stability

    # quick: half the steps, half as many checkpoints; Adam's smallest lr (4e-3)
    # only reaches its edge near step 1600, too late for a median over 1000-2000
    steps, every = quality.pick(2000, 4000), quality.pick(40, 20)
    gd = gd_edge_of_stability(steps=steps, every=every)
    adam = adam_edge_of_stability(
        quality.pick((8e-3, 1.6e-2), (4e-3, 8e-3, 1.6e-2)), steps=steps, every=every
    )
    return Record(steps, every, gd, adam)


def _per_lr(rec) -> list[str]:
    """``lr: late median / threshold`` per run."""
    return [
        f"{r.info['lr']:g}: {fmt(x, 4)}"
        for r, x in zip(rec.runs, rec.ratios, strict=True)
    ]


def draw(record: Record):
    from stability import plotting

    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.6)
        (a, b), (c, d) = axes
        panels = (
            (a, c, record.gd, "GD", "sharpness", "2/lr", "upper right"),
            (
                b,
                d,
                record.adam,
                "Adam",
                "preconditioned sharpness",
                "38/lr",
                "lower right",
            ),
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
                _per_lr(rec),
                title="lr: late median / threshold",
                title_fontsize=6,
                fontsize=6,
                loc=where,
            )
            bottom.set_title(
                f"({'c' if name == 'GD' else 'd'}) {name}: training loss (MSE)"
            )
            bottom.legend(loc="best", fontsize=6.5)
    return fig


def numbers(record: Record) -> dict:
    gd, adam = record.gd, record.adam
    out = {
        "GD: late median sharpness / (2 / lr), per lr": ", ".join(_per_lr(gd)),
        "Adam: late median preconditioned sharpness / (38 / lr), per lr": ", ".join(
            _per_lr(adam)
        ),
        "GD: sharpness at step 0": fmt(gd.runs[0].checkpoints[0].sharpness, 4),
    }
    out["Adam: raw sharpness at step 0 and at the end, per lr"] = ", ".join(
        f"{r.info['lr']:g}: {fmt(r.checkpoints[0].sharpness, 4)} -> "
        f"{fmt(r.checkpoints[-1].sharpness, 4)}"
        for r in adam.runs
    )
    return out


def caption(record: Record) -> str:
    return (
        f"Full-batch training of digits_mlp_tanh (500 examples, squared error) for "
        f"{record.steps:,} steps. (a) Gradient descent: the sharpness (top Hessian "
        "eigenvalue, Lanczos every "
        f"{record.every} steps) drops from about 25, climbs back by progressive "
        "sharpening "
        "and hovers at 2/lr (dashed) while the loss (c) keeps falling, unevenly "
        "(Cohen et al., 2021). (b) Adam (b1 = 0.9): the preconditioned sharpness "
        "(top eigenvalue of D^(-1/2) H D^(-1/2), D = sqrt(v_hat) + eps) hovers at "
        "38/lr (Cohen et al., 2022). Legends: the median over the second half of "
        "training divided by the threshold; 1 is the edge. From "
        "stability.lopt.edge (gd_edge_of_stability, adam_edge_of_stability)."
    )
