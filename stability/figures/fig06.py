"""fig06: meta-training curves of the learned optimizers (meta-loss, held-out
training loss, the kept theta), from the meta-training record."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stability.figures import records
from stability.figures._base import Quality, fmt


class Record(NamedTuple):
    meta_training: dict  # the condensed meta-training record (lopt._records)
    note: str  # which records: shipped or rerun


def compute(quality: Quality) -> Record:
    rec = records.lopt_record("meta_training", quality, "meta-training curves")
    return Record(rec, records.records_note(quality))


def _kept_index(run) -> int | None:
    """The held-out checkpoint of the kept theta, or None if none was kept."""
    if run["best_step"] is None:
        return None
    return int(np.flatnonzero(run["eval"]["step"] == run["best_step"])[0])


def draw(record: Record):
    from stability import plotting

    rec = record.meta_training
    with plotting.style():
        fig, axes = plotting.figure(1, 2, width=7.4, height=3.0)
        a, b = axes[0]
        for name, run in rec["runs"].items():
            label, colour, marker = records.lopt_style(name)
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
            i = _kept_index(run)
            if i is not None:
                b.plot(
                    ev["step"][i],
                    ev["train_loss"][i],
                    marker="*",
                    markersize=9,
                    color=colour,
                    markeredgecolor="black",
                    markeredgewidth=0.5,
                )
        a.set_title(f"(a) meta-loss, trailing mean of {rec['window']} outer steps")
        a.set_xlabel("outer step")
        a.set_ylabel("meta-loss (mean log train loss)")
        b.set_title("(b) held-out train loss at T (★ kept)")
        b.set_xlabel("outer step")
        b.set_ylabel("training-split loss at step T")
        a.legend(loc="upper right", fontsize=6.5)
    return fig


def numbers(record: Record) -> dict:
    rec = record.meta_training
    out = {}
    for name, run in rec["runs"].items():
        c, ev = run["curve"], run["eval"]
        out[f"{name}: wall time (s) for {int(c['step'][-1])} outer steps"] = fmt(
            run["wall_s"], 3
        )
        smooth = c["meta_loss_smooth"]
        first = smooth[min(rec["window"] // rec["every"], smooth.size) - 1]
        key = f"{name}: meta-loss, mean of first / last {rec['window']} steps"
        out[key] = f"{fmt(first)} / {fmt(smooth[-1])}"
        i = _kept_index(run)
        if i is not None:
            select = run["config"].get("select", "objective")
            out[
                f"{name}: held-out train loss at T / meta-loss, start -> kept "
                f"(step {run['best_step']}, by {select})"
            ] = (
                f"{fmt(ev['train_loss'][0])} / {fmt(ev['objective'][0])} -> "
                f"{fmt(ev['train_loss'][i])} / {fmt(ev['objective'][i])}"
            )
        out[f"{name}: meta-gradients skipped / inner runs reset"] = (
            f"{int(c['skipped_total'][-1])} / {int(c['diverged_total'][-1])}"
        )
    return out


def _others(runs, cfg) -> str:
    """The runs whose held-out episodes or blackbox bound differ from ``cfg``'s."""
    notes = []
    for name, run in runs.items():
        c = run["config"]
        diff = []
        if c.get("eval_seeds") != cfg.get("eval_seeds"):
            diff.append(f"{c['eval_seeds']} episodes")
        if c.get("blackbox_bound") != cfg.get("blackbox_bound"):
            diff.append(
                f"blackbox term bounded by {c['blackbox_bound']:g}x the nominal"
            )
        if diff:
            notes.append(f"{name}: {', '.join(diff)}")
    return f" ({'; '.join(notes)})" if notes else ""


def caption(record: Record) -> str:
    runs = record.meta_training["runs"]
    cfg = (runs["star"] if "star" in runs else next(iter(runs.values())))["config"]
    return (
        f"Meta-training on {cfg['task']} with {cfg['estimator'].upper()}: horizon "
        f"T = {cfg['horizon']}, truncation {cfg['truncation']}, "
        f"{cfg['population']} antithetic pairs, sigma {cfg['sigma']}, AdamW lr "
        f"{cfg['outer_lr']}, weight decay {cfg['weight_decay']} (0 for the wd-0 "
        f"ablation), nominal step {fmt(cfg['nominal_stepsize'], 3)}. Meta-loss: "
        "mean log training loss over each truncation. Held-out: mean over "
        f"{cfg['eval_seeds']} held-out episodes every {cfg['eval_every']} outer "
        f"steps{_others(runs, cfg)}. Each run keeps (★) the theta with the lowest "
        "held-out training loss "
        "at T (runs older than that rule kept the lowest held-out meta-loss); the "
        "shipped thetas are these kept thetas." + record.note
    )
