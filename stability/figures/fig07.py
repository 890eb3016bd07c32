"""fig07: inner training past the meta-training horizon on digits_mlp, the learned
optimizers against tuned Adam and the nominal term, from the evaluation record."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stability.figures import records
from stability.figures._base import NotAvailable, Quality, fmt
from stability.figures.records import LOSS_FLOOR, lopt_style

TASK = "digits_mlp"
MAIN = ("star", "star_bounded", "small_fc_lopt", "adam", "nominal")  # panel (a)


class Record(NamedTuple):
    evaluation: dict  # the condensed evaluation record (lopt._records)
    rows: list  # its table rows on TASK
    order: list  # the optimizers evaluated on TASK, in the order of LOPT_STYLE
    note: str  # which records: shipped or rerun


def compute(quality: Quality) -> Record:
    rec = records.lopt_record("evaluation", quality, "training curves past the horizon")
    rows = [r for r in rec["rows"] if r["task"] == TASK]
    if not rows:
        raise NotAvailable(f"the shipped evaluation has no {TASK} rows")
    order = [n for n in records.LOPT_STYLE if any(r["optimizer"] == n for r in rows)]
    return Record(rec, rows, order, records.records_note(quality))


def _curve(rec, task, row):
    """The held-out curve behind a table row (tuned baselines have one per value)."""
    name = row["optimizer"]
    key = f"{task}/{name}"
    if key not in rec["curves"]:
        key = f"{task}/{name}@{row['hyperparameter']:.3g}"
    return rec["curves"].get(key)


def _mark_diverged(ax, curve, colour):
    for d in curve["diverged_step"]:
        if not np.isfinite(d):  # this seed never diverged
            continue
        i = min(int(np.searchsorted(curve["step"], d)), curve["step"].size - 1)
        y = curve["loss_geomean"][i]
        y = y if np.isfinite(y) and y > 0 else curve["initial_loss"]
        ax.plot(d, y, marker="x", color=colour, markersize=6, markeredgewidth=1.4)


def _draw_curves(a, record: Record, multiples, base):
    rec, rows = record.evaluation, record.rows
    for name in MAIN:
        longest = max(
            (r for r in rows if r["optimizer"] == name),
            key=lambda r: r["multiple"],
            default=None,
        )
        if longest is None:
            continue
        curve = _curve(rec, TASK, longest)
        label, colour, _ = lopt_style(name)
        if name in ("adam", "nominal"):
            label += f", {fmt(longest['hyperparameter'], 3)}"
        lo = np.maximum(curve["loss_min"], LOSS_FLOOR)
        hi = np.maximum(curve["loss_max"], LOSS_FLOOR)
        a.fill_between(curve["step"], lo, hi, color=colour, alpha=0.18, linewidth=0)
        a.plot(
            curve["step"],
            np.maximum(curve["loss_geomean"], LOSS_FLOOR),
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
                if k.startswith(f"{TASK}/")
            ]
        )
    )
    a.axhline(init, color="0.3", linestyle=":", linewidth=1.0)
    a.text(25, init * 1.6, "initial loss", fontsize=6.5, color="0.3")
    for m in multiples:
        a.axvline(m * base, color="0.75", linewidth=0.8, zorder=0)
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("inner step t")
    a.set_ylabel("training-split loss")
    seeds = len(rec["tasks"][TASK]["held_out_seeds"])
    a.set_title(f"(a) {TASK}, {seeds} held-out seeds (band: min–max, ×: diverged)")
    a.legend(loc="lower left", fontsize=6.5)


def draw(record: Record):
    from stability import plotting

    base = record.evaluation["tasks"][TASK]["base_horizon"]
    multiples = sorted({r["multiple"] for r in record.rows})
    with plotting.style():
        fig, axes = plotting.figure(1, 2, width=7.4, height=3.2)
        a, b = axes[0]
        _draw_curves(a, record, multiples, base)
        offsets = np.linspace(-0.3, 0.3, len(record.order))
        for off, name in zip(offsets, record.order, strict=True):
            label, colour, marker = lopt_style(name)
            for r in record.rows:
                if r["optimizer"] != name:
                    continue
                div = r["diverged"] > 0
                b.plot(
                    np.log10(r["multiple"]) + off * 0.5,
                    max(r["train_loss_mean"] or LOSS_FLOOR, LOSS_FLOOR),
                    marker=marker,
                    linestyle="none",
                    markersize=5,
                    color=colour,
                    markerfacecolor="none" if div else colour,
                    label=label if r["multiple"] == multiples[0] else None,
                )
        b.set_yscale("log")
        b.set_xticks(
            [np.log10(m) for m in multiples],
            [f"{m}x\n(T = {m * base:,})" for m in multiples],
        )
        b.set_ylabel("final training loss (mean over seeds)")
        b.set_title("(b) end of each horizon (hollow: a seed diverged)")
        records.legend_below(fig, b)
    return fig


def numbers(record: Record) -> dict:
    out = {}
    for name in record.order:
        for r in record.rows:
            if r["optimizer"] == name:
                out[
                    f"{name} at {r['multiple']}x: final train loss (diverged seeds)"
                ] = f"{fmt(r['train_loss_mean'])} ({r['diverged']}/{r['seeds']})"
    return out


def caption(record: Record) -> str:
    proto = record.evaluation["tasks"][TASK]
    return (
        f"Inner training on {TASK} past the meta-training horizon "
        f"T = {proto['base_horizon']}: the "
        "meta-trained STAR and small_fc_lopt (kept by a held-out evaluation at T) "
        "against Adam and the "
        "nominal term alone, each with its step tuned per horizon on separate seeds "
        f"over {len(proto['grid'])} half-decade values. A run diverged when its "
        "training-split loss rose above its initial value or went non-finite; "
        f"losses of 0 (float32 underflow) are drawn at {LOSS_FLOOR:g}." + record.note
    )
