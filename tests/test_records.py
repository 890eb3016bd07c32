"""Compact meta-training and evaluation records (``stability.lopt._records``)."""

import csv
import json

import numpy as np
import pytest

from stability.lopt import _records
from stability.lopt.meta_train import _LOG_FIELDS


def _fake_run(path, steps=95, best=(20, 60)):
    path.mkdir()
    fields = _LOG_FIELDS
    with open(path / "log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for s in range(1, steps + 1):
            loss = float("nan") if s == 7 else -0.1 * s
            w.writerow([s, loss, 1.0, int(s == 7), int(s >= 7), 0, 0, 0, 2.0, 0.5 * s])
    with open(path / "eval.jsonl", "w") as f:
        for s in range(0, steps + 1, 20):
            f.write(
                json.dumps(
                    {
                        "step": s,
                        "objective": -s / 10,
                        "train_loss": 1.0,
                        "test_accuracy": 0.5,
                        "best": s in best,  # each new best is flagged
                        "wall_s": s,
                    }
                )
                + "\n"
            )
    (path / "theta.json").write_text(
        json.dumps(
            {
                "command": "stability meta-train --steps 95",
                "config": {"task": "t"},
                "date": "2026-11-23",
                "git_commit": "abc",
            }
        )
    )


def test_running_mean_against_a_loop():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    got = _records.running_mean(x, 3)
    want = []
    for i in range(x.size):
        w = x[max(0, i - 2) : i + 1]
        want.append(np.nanmean(w))
    np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="window"):
        _records.running_mean(x, 0)


def test_meta_training_round_trip(tmp_path):
    _fake_run(tmp_path / "a", best=(20, 60))
    rec = _records.compact_meta_training({"a": tmp_path / "a"}, every=10, window=5)
    _records._write_json(rec, tmp_path / "records" / _records.META_TRAINING)
    back = _records.load("meta_training", tmp_path / "records")
    run = back["runs"]["a"]
    np.testing.assert_array_equal(run["curve"]["step"], [*range(10, 100, 10), 95])
    assert np.isnan(run["curve"]["meta_loss"]).sum() == 0  # step 7 is not kept
    # the trailing mean skips the NaN at step 7: steps 6, 8, 9, 10 at step 10
    np.testing.assert_allclose(run["curve"]["meta_loss_smooth"][0], -0.1 * 33 / 4)
    assert run["curve"]["skipped_total"][-1] == 1
    assert run["best_step"] == 60 and run["wall_s"] == 47.5  # the last best
    assert run["command"].startswith("stability meta-train")
    np.testing.assert_array_equal(run["eval"]["step"], [0, 20, 40, 60, 80])
    with pytest.raises(ValueError, match="every"):
        _records.compact_meta_training({"a": tmp_path / "a"}, every=0)


def test_records_command_writes_the_compact_record(tmp_path, capsys):
    from stability.cli import records

    _fake_run(tmp_path / "a", best=(20, 60))
    out = tmp_path / "mt.json"
    argv = ["meta-training", f"a={tmp_path / 'a'}", "--every", "10", "--window", "5"]
    assert records.main([*argv, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (")
    want = _records.compact_meta_training({"a": tmp_path / "a"}, every=10, window=5)
    _records._write_json(want, tmp_path / "want.json")
    assert out.read_text() == (tmp_path / "want.json").read_text()
    with pytest.raises(SystemExit) as exc:
        records.main(["meta-training", "no-equals-sign"])
    assert exc.value.code == 2
    assert "expected NAME=RUN_DIR" in capsys.readouterr().err


def test_evaluation_round_trip(tmp_path):
    d = tmp_path / "ev"
    d.mkdir()
    rows = [{"optimizer": "star", "task": "t", "multiple": 1, "train_loss_mean": 0.5}]
    info = {
        "tasks": [
            {
                "task": "t",
                "base_horizon": 10,
                "learned": {
                    "star": {
                        "command": "c",
                        "date": "d",
                        "git_commit": "g",
                        "config": {},
                        "metrics": {"huge": 1},
                    }
                },
            }
        ]
    }
    (d / "eval.json").write_text(json.dumps({"rows": rows, "info": info}))
    loss = np.array([[1.0, 0.5, 0.0, np.inf], [1.0, 0.25, 0.1, 0.1], [np.nan] * 4])
    np.savez(
        d / "curves.npz",
        **{
            "t/star/steps": np.arange(1, 5) * 10,
            "t/star/train_loss": loss,
            "t/star/initial_loss": np.array([2.0, 4.0, 3.0]),
            "t/star/diverged_step": np.array([40, -1, 0]),
        },
    )
    rec = _records.compact_evaluation(d, points=10)
    _records._write_json(rec, tmp_path / "r" / _records.EVALUATION)
    back = _records.load("evaluation", tmp_path / "r")
    c = back["curves"]["t/star"]
    np.testing.assert_array_equal(c["step"], [10, 20, 30, 40])
    # geometric mean over seeds of the positive, finite losses
    want = [1.0, np.sqrt(0.125), 0.1]  # stored to 6 significant digits
    np.testing.assert_allclose(c["loss_geomean"][:3], want, rtol=5e-6)
    assert np.isnan(c["loss_max"][3])  # inf is written as null
    assert c["initial_loss"] == 3.0
    # None (null, read back as NaN): never; 0: diverged at the first step
    np.testing.assert_array_equal(c["diverged_step"], [40, np.nan, 0])
    assert back["rows"] == rows
    assert "metrics" not in back["tasks"]["t"]["learned"]["star"]


def _fake_evaluation(d, tasks, loss):
    d.mkdir()
    rows = [{"optimizer": "star", "task": t, "multiple": 1} for t in tasks]
    info = {"tasks": [{"task": t, "learned": {}} for t in tasks]}
    tuning = [{"task": t, "family": "adam"} for t in tasks]
    costs = {f"{t}/star: held-out runs": loss for t in tasks} | {"total": loss}
    (d / "eval.json").write_text(
        json.dumps({"rows": rows, "info": info, "tuning": tuning, "costs": costs})
    )
    curves = {}
    for t in tasks:
        curves |= {
            f"{t}/star/steps": np.arange(1, 4),
            f"{t}/star/train_loss": np.full((1, 3), loss),
            f"{t}/star/initial_loss": np.ones(1),
            f"{t}/star/diverged_step": -np.ones(1),
        }
    np.savez(d / "curves.npz", **curves)


def test_evaluations_merge_task_by_task(tmp_path):
    _fake_evaluation(tmp_path / "a", ["t"], 0.5)
    _fake_evaluation(tmp_path / "b", ["t", "u"], 0.25)
    rec = _records.compact_evaluation([tmp_path / "a", tmp_path / "b"])
    assert list(rec["tasks"]) == ["t", "u"]
    assert [r["task"] for r in rec["rows"]] == ["t", "u"]
    assert [r["task"] for r in rec["tuning"]] == ["t", "u"]
    # t comes whole from the first directory, u from the second
    assert rec["curves"]["t/star"]["loss_min"][0] == 0.5
    assert rec["curves"]["u/star"]["loss_min"][0] == 0.25
    assert rec["costs"] == {
        "t/star: held-out runs": 0.5,
        "total": 0.75,  # both directories' wall times: each gave a task
        "u/star: held-out runs": 0.25,
    }
    with pytest.raises(ValueError, match="^eval_dirs:"):
        _records.compact_evaluation([])


def test_load_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="name"):
        _records.load("curves")
    with pytest.raises(FileNotFoundError):
        _records.load("evaluation", tmp_path)


def test_shipped_records_match_the_shipped_thetas():
    """The records come from the runs that produced the shipped thetas."""
    thetas = _records.RECORDS_DIR.parent / "thetas"
    mt = _records.load("meta_training")
    for name, run in mt["runs"].items():
        sidecar = json.loads((thetas / f"{name}.json").read_text())
        assert run["git_commit"] == sidecar["git_commit"], name
        assert run["config"] == sidecar["config"], name
        assert run["best_step"] == sidecar["metrics"]["best_step"], name
    ev = _records.load("evaluation")
    learned = ev["tasks"]["digits_mlp"]["learned"]
    assert set(learned) == set(mt["runs"])
    for name, meta in learned.items():
        assert meta["config"] == mt["runs"][name]["config"], name
