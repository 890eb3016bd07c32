"""``stability evaluate --resume``: what an ``--out`` folder already holds, whether
the cells recorded there can be continued with the settings given now, and one
task's recorded table joined with the cells run for it."""

import hashlib
import json
import pathlib


def _sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def settings(args, learned, files) -> dict:
    """What the recorded cells depend on besides the task and the optimizer."""
    keys = ("profile", "horizons", "seeds", "tuning_seeds", "screen")
    keys += ("base_horizon", "nominal_stepsize", "keep", "grid", "record_every")
    keys += ("tune_learned",)
    settings = {k: getattr(args, k) for k in keys}
    settings["thetas"] = {
        lo.label: _sha256(f) for lo, f in zip(learned, files, strict=True)
    }
    return json.loads(json.dumps(settings))  # tuples as lists, as read back


def recorded(out: pathlib.Path):
    """The tables of the tasks recorded in ``out`` (``{task: EvaluationTable}``),
    their settings and wall time.

    Raises:
      ValueError: naming the file, if ``eval.json`` or ``curves.npz`` is corrupt.
    """
    import numpy as np

    from stability.lopt import evaluate as ev

    path = out / "eval.json"
    try:
        record = json.loads(path.read_text())
        infos = record["info"]["tasks"]
        settings = record["info"].get("settings")
        rows, tuning, costs = record["rows"], record["tuning"], record["costs"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"--resume: {path} is not an evaluation record ({err})"
        ) from None
    try:
        with np.load(out / "curves.npz") as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        arrays = {}
    except Exception as err:  # BadZipFile, EOFError, ...: a corrupt file
        raise ValueError(
            f"--resume: cannot read {out / 'curves.npz'} ({err})"
        ) from None
    tables = {}
    for info in infos:
        task = info["task"]
        prefix = f"{task}/"
        mine = [k[len(prefix) :] for k in arrays if k.startswith(prefix)]
        curves = {}
        for name in sorted({k.rsplit("/", 1)[0] for k in mine}):
            keys = {f: f"{prefix}{name}/{f}" for f in ev.TrainRecord._fields}
            if not all(k in arrays for k in keys.values()):
                raise ValueError(
                    f"--resume: {out / 'curves.npz'} lacks fields of {task}/{name}"
                )
            fields = {f: arrays[k] for f, k in keys.items()}
            fields["seconds"] = float(fields["seconds"])
            curves[name] = ev.TrainRecord(**fields)
        tuned = {
            (task, t["family"]): ev.TuneResult(
                t["family"],
                tuple(t["grid"]),
                tuple(t["horizons"]),
                np.asarray(t["scores"], np.float64),
                tuple(t["best"]),
                t["seconds"],
            )
            for t in tuning
            if t.get("task") == task
        }
        tables[task] = ev.EvaluationTable(
            [_nan_for_null(r) for r in rows if r["task"] == task],
            curves,
            tuned,
            {k[len(prefix) :]: v for k, v in costs.items() if k.startswith(prefix)},
            info,
        )
    return tables, settings, float(costs.get("total") or 0.0)


def _nan_for_null(row: dict) -> dict:
    """A row read back from JSON: its non-finite numbers (written as null) NaN
    again; a learned optimizer's missing hyperparameter stays None."""
    return {
        k: float("nan") if v is None and k != "hyperparameter" else v
        for k, v in row.items()
    }


def check_resume(out, old, new) -> str | None:
    """Why the cells recorded with settings ``old`` cannot be continued with
    ``new`` (None if they can)."""
    if old is None:
        return (
            f"--resume: {out / 'eval.json'} records no settings (an older version "
            "wrote it); rerun with --overwrite"
        )
    for key, value in new.items():
        if key != "thetas" and old.get(key) != value:
            return (
                f"--resume: {out} was evaluated with {key} {old.get(key)}, now "
                f"{value}; give the same settings, --overwrite or another --out"
            )
    for label, digest in new["thetas"].items():
        if old.get("thetas", {}).get(label, digest) != digest:
            return (
                f"--resume: the {label} theta is not the one evaluated in {out}; "
                "use --overwrite or another --out"
            )
    return None


def join(old, new):
    """One task's recorded table ``old`` with the cells ``new`` ran for it."""
    from stability.lopt import evaluate as ev

    if old is None:
        return new
    info = dict(old.info)
    info["learned"] = {**old.info.get("learned", {}), **new.info.get("learned", {})}
    return ev.EvaluationTable(
        old.rows + new.rows,
        {**old.curves, **new.curves},
        {**old.tuning, **new.tuning},
        {**old.costs, **new.costs},
        info,
    )
