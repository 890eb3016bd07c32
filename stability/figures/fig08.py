"""fig08: out-of-distribution generalisation, the final training loss of the
learned optimizers on other tasks at 1x and 10x the meta-training horizon, against
tuned Adam and the nominal term, from the evaluation record."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stability.figures import records
from stability.figures._base import Quality, fmt
from stability.figures.records import LOSS_FLOOR, lopt_style

MULTIPLES = (1, 10)


class Record(NamedTuple):
    tasks: list  # the tasks evaluated, in the record's order
    missing: list  # the tasks of the registry the record does not hold
    order: list  # the optimizers evaluated, in the order of LOPT_STYLE
    rows: dict  # (task, multiple, optimizer) -> table row
    note: str  # which records: shipped or rerun


def compute(quality: Quality) -> Record:
    from stability.lopt.tasks import task_names

    rec = records.lopt_record("evaluation", quality, "out-of-distribution evaluation")
    tasks = list(rec["tasks"])
    missing = [t for t in task_names() if t not in rec["tasks"]]
    order = [
        n for n in records.LOPT_STYLE if any(r["optimizer"] == n for r in rec["rows"])
    ]
    rows = {(r["task"], r["multiple"], r["optimizer"]): r for r in rec["rows"]}
    return Record(tasks, missing, order, rows, records.records_note(quality))


def _tasks_at(record: Record) -> dict:
    """The tasks evaluated at each multiple, in the record's order."""
    return {
        m: [t for t in record.tasks if any(k[:2] == (t, m) for k in record.rows)]
        for m in MULTIPLES
    }


def draw(record: Record):
    from stability import plotting

    at = _tasks_at(record)
    with plotting.style():
        fig, axes = plotting.figure(
            1,
            2,
            width=7.4,
            height=3.6,
            sharey=True,
            gridspec_kw={"width_ratios": [max(len(at[m]), 1) for m in MULTIPLES]},
        )
        offsets = np.linspace(-0.32, 0.32, len(record.order))
        for ax, mult, tag in zip(axes[0], MULTIPLES, "ab", strict=True):
            for off, name in zip(offsets, record.order, strict=True):
                label, colour, marker = lopt_style(name)
                small = name.startswith("star_")
                for i, task in enumerate(at[mult]):
                    row = record.rows.get((task, mult, name))
                    if row is None:
                        continue
                    div = row["diverged"] > 0
                    ax.plot(
                        i + off,
                        max(row["train_loss_mean"] or LOSS_FLOOR, LOSS_FLOOR),
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
        records.legend_below(fig, axes[0, 0])
    return fig


def numbers(record: Record) -> dict:
    out = {"tasks evaluated": ", ".join(record.tasks)}
    if record.missing:
        out["tasks not in the shipped evaluation (CPU cost)"] = ", ".join(
            record.missing
        )
    rows = record.rows
    for task in record.tasks:
        for mult in MULTIPLES:
            s, ad = rows.get((task, mult, "star")), rows.get((task, mult, "adam"))
            if s is None or ad is None:
                continue
            wins = s["diverged"] == 0 and s["train_loss_mean"] < ad["train_loss_mean"]
            sfc = rows.get((task, mult, "small_fc_lopt"))
            out[f"{task} {mult}x: STAR / small_fc_lopt / tuned Adam"] = (
                f"{fmt(s['train_loss_mean'])} ({s['diverged']} div) / "
                + (
                    f"{fmt(sfc['train_loss_mean'])} ({sfc['diverged']} div)"
                    if sfc
                    else "-"
                )
                + f" / {fmt(ad['train_loss_mean'])}: STAR "
                + ("wins" if wins else "loses")
            )
    return out


def caption(record: Record) -> str:
    return (
        "Final training loss of the learned optimizers (meta-trained on "
        "digits_mlp at T = 1000) on other activations, depths and data, at 1x and "
        "10x T, against Adam and the nominal term with tuned steps; hollow markers: "
        "at least one of the held-out seeds diverged; small markers: STAR "
        "ablations. Within the CPU budget not every optimizer ran on every task, "
        "and (b) has only the tasks evaluated at 10x (benchmarks/RESULTS.md says "
        "what each costs)." + record.note
    )
