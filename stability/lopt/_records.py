r"""Compact records of meta-training runs and evaluations, shipped for the figures.

A ``stability meta-train`` run directory holds a per-outer-step ``log.csv`` (about
250 KB for 3000 steps), ``eval.jsonl`` and the theta sidecar; a ``stability
evaluate`` directory holds ``eval.json`` and a ``curves.npz`` of every held-out run
(MBs). The figures need much less: this module condenses both into small JSON files
(``stability/lopt/records/``) so that ``stability reproduce`` draws the learned-
optimizer figures without meta-training or evaluating anything. Non-finite numbers
are written as ``null``.

Regenerate the shipped records from fresh runs with (:mod:`stability.cli.records`)::

    python -m stability.lopt._records meta-training NAME=RUN_DIR ... --out FILE
    python -m stability.lopt._records evaluation EVAL_DIR --out FILE
"""

from __future__ import annotations

import csv
import json
import pathlib
import warnings

import numpy as np

from stability.lopt.io import atomic_write, json_safe

RECORDS_DIR = pathlib.Path(__file__).with_name("records")
META_TRAINING = "meta_training.json"
EVALUATION = "evaluation.json"
EVALUATION_BOUNDED = "evaluation_bounded.json"
META_TRAINING_BOUNDED = "meta_training_bounded.json"


def _write_json(obj, path) -> None:
    """Write ``obj`` as compact JSON, atomically; the entries of NumPy arrays (the
    curves) rounded to 6 significant digits, other numbers kept exact."""
    text = json.dumps(json_safe(obj, 6), separators=(",", ":"), allow_nan=False)
    text += "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


def _array(values) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], np.float64)


def load(name: str, directory=None) -> dict:
    """A shipped record (``"meta_training"``, ``"evaluation"``, or the bounded
    STAR's ``"meta_training_bounded"`` and ``"evaluation_bounded"``) as a dict,
    with its curves as float64 arrays (``null`` -> NaN).

    Raises:
      FileNotFoundError: if the record is not there.
    """
    files = {
        "meta_training": META_TRAINING,
        "evaluation": EVALUATION,
        "evaluation_bounded": EVALUATION_BOUNDED,
        "meta_training_bounded": META_TRAINING_BOUNDED,
    }
    if name not in files:
        raise ValueError(f"name must be one of {sorted(files)}, got {name!r}")
    path = pathlib.Path(directory or RECORDS_DIR) / files[name]
    with open(path) as f:
        record = json.load(f)
    for run in record.get("runs", {}).values():
        for key in ("curve", "eval"):
            for field, values in run.get(key, {}).items():
                run[key][field] = _array(values)
    for curve in record.get("curves", {}).values():
        for field, values in curve.items():
            if isinstance(values, list):
                curve[field] = _array(values)
    return record


def running_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean of the finite entries among the last ``window`` (fewer at the
    start; NaN where none of them is finite)."""
    x = np.asarray(x, np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    ok = np.isfinite(x)
    total = np.cumsum(np.where(ok, x, 0.0))
    count = np.cumsum(ok)
    lag_t = np.concatenate([np.zeros(window), total[:-window]])[: x.size]
    lag_c = np.concatenate([np.zeros(window), count[:-window]])[: x.size]
    n = count - lag_c
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (total - lag_t) / n, np.nan)


def compact_meta_training(runs: dict, *, every: int = 10, window: int = 50) -> dict:
    """Condense meta-training run directories ``{name: run_dir}``.

    Per run: the sidecar of its final theta (command, config, date, commit, metrics),
    the wall time, the meta-loss every ``every`` outer steps (raw and its trailing
    mean over ``window`` steps), the meta-gradient norm and skip/divergence totals
    at the same steps, and every held-out evaluation (``eval.jsonl``).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    out = {"every": every, "window": window, "runs": {}}
    for name, run_dir in runs.items():
        run_dir = pathlib.Path(run_dir)
        with open(run_dir / "log.csv") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError(f"runs[{name!r}]: {run_dir / 'log.csv'} has no rows")
        col = {k: np.asarray([float(r[k]) for r in rows]) for k in rows[0]}
        smooth = running_mean(col["meta_loss"], window)
        keep = np.unique(
            np.r_[np.arange(every - 1, col["step"].size, every), col["step"].size - 1]
        )
        curve = {
            "step": col["step"][keep],
            "meta_loss": col["meta_loss"][keep],
            "meta_loss_smooth": smooth[keep],
            "grad_norm": col["grad_norm"][keep],
            "skipped_total": col["skipped_total"][keep],
            "diverged_total": col["diverged_total"][keep],
            "wall_s": col["wall_s"][keep],
        }
        evals = []
        if (run_dir / "eval.jsonl").exists():
            with open(run_dir / "eval.jsonl") as f:
                evals = [json.loads(line) for line in f if line.strip()]
        fields = ("step", "objective", "train_loss", "test_accuracy", "wall_s")
        ev = {k: [e.get(k) for e in evals] for k in fields}
        sidecar = {}
        for candidate in ("theta.json", "best_theta.json"):
            if (run_dir / candidate).exists():
                with open(run_dir / candidate) as f:
                    sidecar = json.load(f)
                break
        best = [e["step"] for e in evals if e.get("best")]
        out["runs"][name] = {
            "command": sidecar.get("command"),
            "config": sidecar.get("config"),
            "date": sidecar.get("date"),
            "git_commit": sidecar.get("git_commit"),
            "wall_s": float(col["wall_s"][-1]),
            "best_step": best[-1] if best else None,
            "curve": curve,
            "eval": ev,
        }
    return out


def _log_indices(n: int, points: int) -> np.ndarray:
    """About ``points`` indices into ``range(n)``, evenly spaced in log(index + 1)."""
    return np.unique(np.round(np.geomspace(1, n, points)).astype(int) - 1)


def compact_evaluation(eval_dirs, *, points: int = 100) -> dict:
    """Condense one or more ``stability evaluate --out`` directories.

    Keeps the table rows, the tuning scores, the costs and each task's protocol
    (horizons, seeds, grid, the learned optimizers' commands), and for every held-out
    curve the training-split loss over seeds (geometric mean, min and max, at about
    ``points`` log-spaced steps), the initial loss and the step at which each seed
    diverged (or None). With several directories a task is taken whole from the
    first directory that evaluated it (so one evaluation with ablations on a few
    tasks and another of the rest can make one record); the costs' ``total`` is then
    the summed wall time of the directories that gave a task.
    """
    if isinstance(eval_dirs, str | pathlib.Path):
        eval_dirs = [eval_dirs]
    if not eval_dirs:
        raise ValueError("eval_dirs: expected at least one directory")
    merged = None
    for d in eval_dirs:
        rec = _compact_one_evaluation(pathlib.Path(d), points)
        if merged is None:
            merged = rec
            continue
        new = [t for t in rec["tasks"] if t not in merged["tasks"]]
        merged["tasks"].update({t: rec["tasks"][t] for t in new})
        merged["rows"] += [r for r in rec["rows"] if r["task"] in new]
        merged["tuning"] += [r for r in rec["tuning"] if r.get("task") in new]
        for key in ("costs", "curves"):
            merged[key].update(
                {k: v for k, v in rec[key].items() if k.split("/", 1)[0] in new}
            )
        if new and "total" in rec["costs"]:  # wall time of every run that counts
            costs = merged["costs"]
            costs["total"] = costs.get("total", 0.0) + rec["costs"]["total"]
    return merged


def _compact_one_evaluation(eval_dir: pathlib.Path, points: int) -> dict:
    with open(eval_dir / "eval.json") as f:
        table = json.load(f)
    curves = {}
    with np.load(eval_dir / "curves.npz") as z:
        names = sorted({k.rsplit("/", 1)[0] for k in z.files})
        for name in names:
            steps = z[f"{name}/steps"]
            loss = np.asarray(z[f"{name}/train_loss"], np.float64)  # (seeds, n)
            idx = _log_indices(steps.size, points)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                pos = np.where(loss > 0, loss, np.nan)
                geo = np.exp(np.nanmean(np.log(pos), axis=0))
            diverged = np.asarray(z[f"{name}/diverged_step"]).astype(np.int64)
            curves[name] = {
                "step": steps[idx],
                "loss_geomean": geo[idx],
                "loss_min": np.min(loss, axis=0)[idx],
                "loss_max": np.max(loss, axis=0)[idx],
                "initial_loss": float(np.mean(z[f"{name}/initial_loss"])),
                "diverged_step": [int(d) if d >= 0 else None for d in diverged],
            }
    info = table.get("info", {})
    tasks = {}
    for t in info.get("tasks", []):
        t = dict(t)
        t["learned"] = {
            k: {f: v.get(f) for f in ("command", "date", "git_commit", "config")}
            for k, v in t.get("learned", {}).items()
        }
        tasks[t["task"]] = t
    return {
        "rows": table["rows"],
        "tuning": table.get("tuning", []),
        "costs": table.get("costs", {}),
        "tasks": tasks,
        "curves": curves,
    }


if __name__ == "__main__":  # the command lives in stability.cli.records
    from stability.cli.records import main

    raise SystemExit(main())
