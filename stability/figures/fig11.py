"""fig11: what STAR's update is made of (blackbox and nominal terms, alignment with
the gradient, parameter norm) out to 100x the meta-training horizon, from the
anatomy record."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stability.figures import records
from stability.figures._base import Quality, fmt
from stability.figures.records import LOSS_FLOOR, lopt_style

BASE = 1000  # the meta-training horizon of the shipped runs
MULTIPLES = (1, 10, 100)


class Record(NamedTuple):
    steps: int  # inner steps of each run
    runs: dict  # name -> lopt.anatomy record


def compute(quality: Quality) -> Record:
    from stability.lopt.anatomy import from_json

    raw = records.anatomy_record(quality)
    return Record(raw["steps"], {k: from_json(v) for k, v in raw["runs"].items()})


def _geo(x):
    """Geometric mean over seeds, losses of 0 at the floor."""
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(np.maximum(x, LOSS_FLOOR)), axis=0))


def _at_multiples(rec) -> np.ndarray:
    """Indices of the checkpoints at T, 10T and 100T."""
    return np.array([np.searchsorted(rec.steps, m * BASE - 1) for m in MULTIPLES])


def _label_axes(a, b, c, d) -> None:
    for ax in (a, b, c, d):
        ax.set_xscale("log")
        for m in MULTIPLES:
            ax.axvline(m * BASE, color="0.8", linewidth=0.8, zorder=0)
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


def draw(record: Record):
    from stability import plotting

    with plotting.style():
        fig, axes = plotting.figure(2, 2, width=7.4, height=5.6)
        (a, b), (c, d) = axes
        for name, rec in record.runs.items():
            label, colour, _ = lopt_style(name)
            if name == "nominal":
                label = f"nominal term alone, {fmt(rec.config['nominal_stepsize'], 3)}"
            t = np.maximum(rec.steps, 1)
            lo = np.maximum(rec.loss.min(0), LOSS_FLOOR)
            hi = np.maximum(rec.loss.max(0), LOSS_FLOOR)
            a.fill_between(t, lo, hi, color=colour, alpha=0.15, linewidth=0)
            a.plot(t, _geo(rec.loss), color=colour, label=label, linewidth=1.1)
            if name != "nominal":
                b.plot(t, np.median(rec.blackbox_norm, 0), color=colour, linewidth=1.1)
                b.plot(t, np.median(rec.nominal_norm, 0), color=colour, linestyle="--")
            c.plot(t, np.median(rec.cos_total, 0), color=colour, linewidth=1.1)
            d.plot(t, np.median(rec.param_norm, 0), color=colour, linewidth=1.1)
        init = float(np.mean(next(iter(record.runs.values())).initial_loss))
        a.axhline(init, color="0.3", linestyle=":", linewidth=1.0)
        _label_axes(a, b, c, d)
    return fig


def numbers(record: Record) -> dict:
    out = {}
    for name, rec in record.runs.items():
        at = _at_multiples(rec)
        if name != "nominal":
            ratio = np.median(rec.ratio, axis=0)
            out[f"{name}: |f_b| / |f_g| at T, 10T, 100T (median)"] = ", ".join(
                fmt(ratio[i], 3) for i in at
            )
        first = [
            int(rec.steps[np.argmax(f)]) if f.any() else None for f in rec.diverged
        ]
        out[f"{name}: loss at T, 10T, 100T (geometric mean)"] = ", ".join(
            fmt(_geo(rec.loss[:, i])) for i in at
        )
        out[f"{name}: first step above the initial loss, per seed"] = ", ".join(
            "never" if f is None else f"{f:,}" for f in first
        )
    return out


def caption(record: Record) -> str:
    return (
        f"STAR's step split into its output-preconditioned blackbox term f_b and its "
        f"nominal term f_g along training on digits_mlp out to {record.steps:,} "
        "steps (100x the meta-training horizon T; grey lines at T, 10T, 100T), for "
        "the shipped STAR, STAR without output preconditioning and the nominal term "
        "alone at the shipped nominal step. The nominal term shrinks with the "
        "gradient; the blackbox term, divided by sqrt(v + 1e-6), does not, so past T "
        "the step stops following the gradient and the parameters drift. From "
        "stability/lopt/records/anatomy.json (python -m stability.lopt.anatomy)."
    )
