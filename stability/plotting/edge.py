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
    task, three rows: the loss on the training split (a cross at each run's event);
    the step radius minus 1 against the flag ``1/T`` (dotted); the preconditioned
    sharpness over the nominal term's threshold against 1 (dotted). Log scales; grey
    dotted verticals at the horizon ``T`` and ``10 T`` where the runs reach them.

    Args:
      record: a ``HorizonRecord`` of :mod:`stability.lopt.edge_horizon`.
      ax: a ``(3, tasks)`` array of Axes (default: a new figure's).
    Returns:
      the array of Axes.
    """
    tasks = list(dict.fromkeys(r.task for r in record.runs))
    if ax is None:
        ax = plt.subplots(3, len(tasks), squeeze=False, layout="constrained")[1]
    ax = np.asarray(ax).reshape(3, len(tasks))
    labels = list(dict.fromkeys(r.label for r in record.runs))
    last = max(r.run.checkpoints[-1].step for r in record.runs)
    for col, task in enumerate(tasks):
        for r in (r for r in record.runs if r.task == task):
            color = CYCLE[labels.index(r.label) % len(CYCLE)]
            steps, loss = _series(r.run, "step"), _series(r.run, "loss")
            ax[0, col].plot(steps, loss, color=color, label=r.label)
            if r.event is not None:
                at = np.flatnonzero((steps == r.event) & np.isfinite(loss))
                if at.size:
                    ax[0, col].plot(r.event, loss[at[0]], "x", color=color)
            rho = _series(r.run, "step_radius")
            margin = _series(r.run, "preconditioned_sharpness") / _series(
                r.run, "threshold"
            )
            ax[1, col].plot(steps, rho - 1, color=color, marker=".", markersize=3)
            ax[2, col].plot(steps, margin, color=color, marker=".", markersize=3)
        ax[1, col].axhline(1 / record.horizon, color="black", linestyle=":")
        ax[2, col].axhline(1.0, color="black", linestyle=":")
        ax[2, col].set_ylim(bottom=1e-4)
        for a in ax[:, col]:
            a.set_yscale("log")
            for t in (record.horizon, 10 * record.horizon):
                if t <= last:
                    a.axvline(t, color="0.6", linestyle=":", linewidth=0.9)
        ax[0, col].set_title(f"{task}: training loss (x: its event)")
        ax[1, col].set_title("step radius - 1 (dotted: 1/T)")
        ax[2, col].set_title("preconditioned sharpness / threshold")
        ax[2, col].set_xlabel("step")
        ax[0, col].legend(loc="best", fontsize=6.5)
    return ax
