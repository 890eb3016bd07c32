"""The edge of stability along training: the sharpness (or preconditioned sharpness)
against the optimizer's threshold, and the loss.

Records come from :mod:`stability.lopt.edge`: a run (``checkpoints`` and ``info``)
or a reproduction over learning rates (``runs``, ``ratios``, ``quantity``,
``title``); nothing here computes them.
"""

import matplotlib.pyplot as plt
import numpy as np

from stability.plotting._style import CYCLE, PALETTE

_NAMES = {
    "sharpness": "sharpness",
    "preconditioned_sharpness": "preconditioned sharpness",
}


def _series(run, field):
    return np.array(
        [
            np.nan if getattr(c, field) is None else getattr(c, field)
            for c in run.checkpoints
        ],
        dtype=float,
    )


def _runs(record):
    return list(record.runs) if hasattr(record, "runs") else [record]


def _label(run, i):
    """``lr X`` when the run says its learning rate (``track_task`` does, a bare
    ``track`` does not), else its optimizer's name or its place."""
    lr = run.info.get("lr")
    if lr is not None:
        return f"lr {lr:.3g}"
    return str(run.info.get("optimizer", f"run {i + 1}"))


def _axes(ax):
    return plt.subplots()[1] if ax is None else ax


def edge(record, ax=None):
    """The quantity that matters for each run (``info['quantity']``) against its
    threshold (dashed, same colour), log scale. A single run of an adaptive
    optimizer also shows its raw sharpness (thin grey); a reproduction labels each
    run with its learning rate and its late median over the threshold.

    Args:
      record: an ``EdgeRun`` or an ``EdgeReproduction``.
      ax: Axes to draw on (default: a new figure's).
    Returns:
      the Axes.
    """
    ax = _axes(ax)
    runs = _runs(record)
    ratios = getattr(record, "ratios", [None] * len(runs))
    for i, (run, ratio) in enumerate(zip(runs, ratios, strict=True)):
        color = CYCLE[i % len(CYCLE)]
        quantity = run.info["quantity"]
        steps = _series(run, "step")
        label = _label(run, i)
        if ratio is not None and np.isfinite(ratio):
            label += f" (late median / threshold {ratio:.3f})"
        ax.plot(steps, _series(run, quantity), color=color, label=label)
        thresh = run.info.get("threshold")
        if thresh is not None:
            ax.axhline(thresh, color=color, linestyle="--", linewidth=1.0)
        if len(runs) == 1 and quantity != "sharpness":
            ax.plot(
                steps,
                _series(run, "sharpness"),
                color="0.6",
                linewidth=0.9,
                label="sharpness (raw)",
            )
        radius = _series(run, "step_radius")
        if len(runs) == 1 and np.any(np.isfinite(radius)):
            twin = ax.twinx()
            twin.plot(steps, radius, color=PALETTE["green"], linewidth=0.9)
            twin.axhline(1.0, color=PALETTE["green"], linestyle=":", linewidth=0.9)
            twin.set_ylabel("step radius", color=PALETTE["green"])
    quantity = runs[0].info["quantity"]
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{_NAMES[quantity]} (dashed: threshold)")
    if hasattr(record, "title"):
        ax.set_title(record.title)
    ax.legend(loc="best")
    return ax


def edge_loss(record, ax=None):
    """The loss at each checkpoint of each run (log scale); a diverged run ends in
    a cross.

    Args:
      record: an ``EdgeRun`` or an ``EdgeReproduction``.
      ax: Axes to draw on (default: a new figure's).
    Returns:
      the Axes.
    """
    ax = _axes(ax)
    for i, run in enumerate(_runs(record)):
        color = CYCLE[i % len(CYCLE)]
        steps, loss = _series(run, "step"), _series(run, "loss")
        ax.plot(steps, loss, color=color, label=_label(run, i))
        if run.checkpoints and run.checkpoints[-1].diverged:
            last = np.flatnonzero(np.isfinite(loss))
            if last.size:
                ax.plot(steps[last[-1]], loss[last[-1]], "x", color=color)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    return ax


def edge_horizon(record, ax=None):
    """STAR and its nominal term past the meta-training horizon, one column per
    task: the loss on the training split (top; a cross at each run's event), and
    below, per run, the step radius (solid) and the preconditioned sharpness over
    the nominal term's threshold (dashed), both against 1 (dotted black); grey
    dotted verticals at the horizon ``T`` and ``10 T``.

    Args:
      record: a ``HorizonRecord`` of :mod:`stability.lopt.edge_horizon`.
      ax: a ``(2, tasks)`` array of Axes (default: a new figure's).
    Returns:
      the array of Axes.
    """
    tasks = list(dict.fromkeys(r.task for r in record.runs))
    if ax is None:
        ax = plt.subplots(2, len(tasks), squeeze=False, layout="constrained")[1]
    ax = np.asarray(ax).reshape(2, len(tasks))
    labels = list(dict.fromkeys(r.label for r in record.runs))
    for col, task in enumerate(tasks):
        top, bottom = ax[0, col], ax[1, col]
        for r in (r for r in record.runs if r.task == task):
            color = CYCLE[labels.index(r.label) % len(CYCLE)]
            steps, loss = _series(r.run, "step"), _series(r.run, "loss")
            top.plot(steps, loss, color=color, label=r.label)
            if r.event is not None:
                at = np.flatnonzero((steps == r.event) & np.isfinite(loss))
                if at.size:
                    top.plot(r.event, loss[at[0]], "x", color=color, markersize=7)
            margin = _series(r.run, "preconditioned_sharpness") / _series(
                r.run, "threshold"
            )
            bottom.plot(steps, _series(r.run, "step_radius"), color=color)
            bottom.plot(steps, margin, color=color, linestyle="--", linewidth=1.0)
        bottom.axhline(1.0, color="black", linestyle=":", linewidth=0.9)
        for a in (top, bottom):
            a.set_yscale("log")
            for t in (record.horizon, 10 * record.horizon):
                if t <= max(r.run.checkpoints[-1].step for r in record.runs):
                    a.axvline(t, color="0.6", linestyle=":", linewidth=0.9)
        top.set_title(f"{task}: training loss (x: diverged or climbed 10x)")
        bottom.set_title("step radius (solid), psharp / threshold (dashed)")
        bottom.set_xlabel("step")
        top.legend(loc="best", fontsize=6.5)
    return ax
