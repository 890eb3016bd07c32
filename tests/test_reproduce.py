"""`stability reproduce`: the figure registry, the report, the exit status, the CLI
wiring and the thin figure scripts.

One quick end-to-end run of every figure is in the default suite, and each
``figures/figNN_name.py`` also runs once as its own process (``--quick``; about 35 s
on 2 workers), which checks every script file, not only the shared entry point.
Every run writes into ``tmp_path``, never into the committed ``figures/``.
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest

from stability import figures, reproduce
from stability.figures import records

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIGURE_DIR = ROOT / "figures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _check_image(path: pathlib.Path):
    assert path.exists(), path
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 10_000  # a drawn figure, not an empty canvas
    else:
        assert data.startswith(b"%PDF")


def _section(report: str, name: str) -> str:
    match = re.search(rf"## `{name}`.*?(?=\n## |\Z)", report, flags=re.S)
    assert match, f"no section for {name}"
    return match.group(0)


def test_registry_and_scripts_match():
    ids = list(figures.FIGURES)
    assert ids == [f"fig{i:02d}" for i in range(1, 14)]
    scripts = sorted(p.stem for p in FIGURE_DIR.glob("fig*.py"))
    assert scripts == sorted(spec.name for spec in figures.FIGURES.values())
    for spec in figures.FIGURES.values():
        assert (
            f'script_main("{spec.id}")' in (FIGURE_DIR / f"{spec.name}.py").read_text()
        )


def test_resolve_names():
    assert figures.resolve(None) == list(figures.FIGURES)
    assert figures.resolve(["fig05", "fig01_eigenvalues", "fig05"]) == [
        "fig05",
        "fig01",
    ]
    for bad in ("fig99", "fig01_regions", "eigenvalues"):
        with pytest.raises(ValueError, match="--only"):
            figures.resolve([bad])


def _keep_records(monkeypatch, *fids):
    """Spy on the ``compute`` of figures ``fids``: their records land in the dict
    returned, by figure id."""
    from stability import figures

    kept = {}
    for fid in fids:
        mod = figures.FIGURES[fid].load()

        def spy(quality, fid=fid, compute=mod.compute):
            kept[fid] = compute(quality)
            return kept[fid]

        monkeypatch.setattr(mod, "compute", spy)
    return kept


def test_quick_end_to_end(tmp_path, monkeypatch):
    """Every figure in quick mode through ``main``: images, numbers, skips, lemmas."""
    from stability.figures import fig05

    records = _keep_records(monkeypatch, "fig02", "fig05")
    rc = reproduce.main(["--quick", "--out", str(tmp_path)])
    assert rc == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "Quality: **quick**" in report
    for spec in figures.FIGURES.values():
        section = _section(report, spec.name)
        for suffix in (".png", ".pdf"):
            _check_image(tmp_path / f"{spec.name}{suffix}")
        rows = re.findall(r"^\| (?!quantity|---)(.+?) \| (.+?) \|$", section, re.M)
        assert len(rows) >= 3, section
    assert "## Skipped and failed" in report
    assert "Nothing was skipped." in report
    # the key numbers agree with the exact results they are checked against
    regions = records["fig02"]
    assert (0, 25921) in regions.checks.values()
    assert any("15116438/146521" in v for v in regions.exact.values())
    fractions = [np.mean(case.scores < 3) for case in records["fig05"].cases]
    assert len(fractions) == 4 and min(fractions) > 0.9
    shown = fig05.numbers(records["fig05"])
    assert sum("within 3 s.e." in k for k in shown) == 4  # and the report has them
    assert "# Lemma report" in report or "## Lemma report" in report


def test_failed_figure_sets_exit_status(tmp_path, monkeypatch, capsys):
    from stability.figures import fig01

    def broken(quality):
        raise RuntimeError("deliberately broken")

    monkeypatch.setattr(fig01, "compute", broken)
    rc = reproduce.main(["--out", str(tmp_path), "--only", "fig01", "--no-lemmas"])
    assert rc == 1
    report = (tmp_path / "REPORT.md").read_text()
    assert "| `fig01_eigenvalues` | failed |" in report
    assert "deliberately broken" in report
    assert "deliberately broken" in capsys.readouterr().err


def _no_records(monkeypatch, tmp_path):
    from stability.lopt import _records

    monkeypatch.setattr(_records, "RECORDS_DIR", tmp_path / "no-records")


def test_not_available_is_not_a_failure(tmp_path, monkeypatch):
    _no_records(monkeypatch, tmp_path)
    rc = reproduce.main(["--out", str(tmp_path), "--only", "fig06", "fig08"])
    assert rc == 0
    report = (tmp_path / "REPORT.md").read_text()
    for name in ("fig06_meta_training", "fig08_generalization"):
        assert f"| `{name}` | not available |" in report
        assert "stability/lopt/records/" in _section(report, name)
    assert not list(tmp_path.glob("*.png"))


def test_add_parser_and_run(tmp_path, monkeypatch):
    _no_records(monkeypatch, tmp_path)
    parser = argparse.ArgumentParser(prog="stability")
    sub = parser.add_subparsers(dest="command", required=True)
    reproduce.add_parser(sub)
    args = parser.parse_args(
        ["reproduce", "--only", "fig07", "--out", str(tmp_path), "--no-lemmas"]
    )
    assert args.full is False
    assert args.run(args) == 0
    assert (tmp_path / "REPORT.md").exists()
    full = parser.parse_args(["reproduce", "--full"])
    assert full.full is True and full.out == reproduce.DEFAULT_OUT
    with pytest.raises(SystemExit):
        parser.parse_args(["reproduce", "--quick", "--full"])


def test_stability_cli_reproduce(tmp_path, monkeypatch):
    from stability import cli

    _no_records(monkeypatch, tmp_path)
    rc = cli.main(["reproduce", "--only", "fig06", "--out", str(tmp_path)])
    assert rc == 0
    assert "fig06_meta_training" in (tmp_path / "REPORT.md").read_text()


def _run_script(name, out):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(FIGURE_DIR / f"{name}.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=out,
        timeout=600,
    )


# Every script is the same two lines (test_registry_and_scripts_match checks that each
# names its figure) and test_quick_end_to_end computes every figure, so the default
# run executes two cheap scripts; `pytest -m slow` runs them all.
_SCRIPTS_BY_DEFAULT = ("fig01", "fig06")


@pytest.mark.parametrize(
    "fid",
    [
        pytest.param(f, marks=() if f in _SCRIPTS_BY_DEFAULT else pytest.mark.slow)
        for f in figures.FIGURES
    ],
)
def test_figure_script(fid, tmp_path):
    spec = figures.FIGURES[fid]
    proc = _run_script(spec.name, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"# {spec.name} (quick): ")
    if "not available" in first:
        assert not list(tmp_path.glob("*.png"))
        return
    assert ": ok in " in first
    for suffix in (".png", ".pdf"):
        _check_image(tmp_path / f"{spec.name}{suffix}")
    numbers = [ln for ln in proc.stdout.splitlines()[1:] if ": " in ln]
    assert len(numbers) >= 3


def test_learned_figures_report_the_shipped_records(tmp_path, monkeypatch):
    """fig06-08 draw the shipped records and report their numbers, not others."""
    from stability.figures import fig06, fig07, fig08
    from stability.lopt import _records

    kept = _keep_records(monkeypatch, "fig06", "fig07", "fig08")
    rc = reproduce.main(
        ["--out", str(tmp_path), "--only", "fig06", "fig07", "fig08", "--no-lemmas"]
    )
    assert rc == 0
    mt = _records.load("meta_training")
    shown = fig06.numbers(kept["fig06"])
    for name, run in mt["runs"].items():
        assert f"{name}: wall time (s) for 3000 outer steps" in shown
        kept_key = [k for k in shown if k.startswith(f"{name}: held-out")]
        assert kept_key[0].endswith(
            f"(step {run['best_step']}, by {run['config']['select']})"
        )
    ev = _records.load("evaluation")
    shown = fig07.numbers(kept["fig07"])
    for row in ev["rows"]:
        if row["task"] != "digits_mlp":
            continue
        value = figures.fmt(row["train_loss_mean"])
        key = f"{row['optimizer']} at {row['multiple']}x"
        assert shown[f"{key}: final train loss (diverged seeds)"].startswith(
            f"{value} ("
        )
    shown = fig08.numbers(kept["fig08"])
    for task in ev["tasks"]:
        assert f"{task} 1x: STAR / small_fc_lopt / tuned Adam" in shown
    for suffix in (".png", ".pdf"):
        for name in (
            "fig06_meta_training",
            "fig07_long_horizon",
            "fig08_generalization",
        ):
            _check_image(tmp_path / f"{name}{suffix}")


def _fake_cli(calls, tmp_path):
    """A stand-in for ``stability.cli.main`` that records each command and writes
    the files the real one would (the shipped runs' records, unchanged)."""
    import shutil

    from test_records import _fake_run

    def fake(argv):
        import jax

        assert not jax.config.jax_enable_x64  # as a plain `stability meta-train`
        calls.append(list(argv))
        out = pathlib.Path(argv[argv.index("--out") + 1])
        if argv[0] == "meta-train":
            if out.exists():
                shutil.rmtree(out)
            _fake_run(out)
            for name in ("theta.npz", "best_theta.npz", "checkpoint.npz"):
                (out / name).write_bytes(b"")
        else:
            from test_records import _fake_evaluation

            tasks = argv[argv.index("--task") + 1].split(",")
            _fake_evaluation(out, tasks, 1.0)
        return 0

    return fake


def test_full_reruns_meta_training_and_evaluation(tmp_path, monkeypatch):
    """--full's pipeline: every meta-training run of LOPT_RUNS (resumed when
    interrupted), an evaluation of their kept thetas on the cheap tasks and of the
    _REST ones (STAR, the bounded STAR, small_fc_lopt) on the rest, records
    condensed; nothing redone after."""
    from stability import cli

    calls = []
    monkeypatch.setattr(cli, "main", _fake_cli(calls, tmp_path))
    folder = tmp_path / "lopt_runs"
    interrupted = folder / "meta_training" / "star_wd0"
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint.npz").write_bytes(b"")
    import jax

    jax.config.update("jax_enable_x64", True)  # as the analysis figures leave it
    kept_records = records.rerun_lopt_records(folder)
    assert jax.config.jax_enable_x64
    names = [name for name, _ in records.LOPT_RUNS]
    n = len(names)
    assert [c[0] for c in calls] == ["meta-train"] * n + ["evaluate"] * 2
    for call, (name, extra) in zip(calls[:n], records.LOPT_RUNS, strict=True):
        assert call[1 : 1 + len(extra)] == extra
        assert call[call.index("--out") + 1] == str(folder / "meta_training" / name)
        assert ("--resume" in call) == (name == "star_wd0")
    kept = [str(folder / "meta_training" / n / "best_theta.npz") for n in names]
    rest = [k for k, name in zip(kept, names, strict=True) if name in records.REST]
    assert len(rest) == 3
    for evaluate, thetas in zip(calls[n:], (kept, rest), strict=True):
        assert evaluate[evaluate.index("--theta") + 1] == thetas[0]
        extra = [evaluate[i + 1] for i, a in enumerate(evaluate) if a == "--extra"]
        assert extra == thetas[1:]
    from stability.lopt import _records
    from stability.lopt.tasks import task_names

    assert set(_records.load("meta_training", kept_records)["runs"]) == set(names)
    evaluation = _records.load("evaluation", kept_records)
    assert sorted(evaluation["tasks"]) == sorted(task_names())  # every task, once
    assert len(evaluation["rows"]) == len(task_names())
    calls.clear()
    assert records.rerun_lopt_records(folder) == kept_records
    assert calls == []


def test_a_rerun_after_an_interruption_redoes_only_what_was_unfinished(
    tmp_path, monkeypatch
):
    """Interrupted: one meta-training after its final theta but before its kept one,
    the first evaluation after two of its tasks, the second before any. The rerun
    resumes the meta-training, evaluates the three missing tasks into a sibling
    directory, and the records hold every task once, with the wall time of all
    three evaluations."""
    import json
    import shutil

    from stability import cli
    from stability.lopt import _records
    from stability.lopt.tasks import task_names

    calls = []
    monkeypatch.setattr(cli, "main", _fake_cli(calls, tmp_path))
    folder = tmp_path / "lopt_runs"
    (folder / "meta_training").mkdir(parents=True)
    kept_records = records.rerun_lopt_records(folder)
    shutil.rmtree(kept_records)
    (folder / "meta_training" / "star_wd0" / "best_theta.npz").unlink()
    first = folder / "evaluation" / "eval.json"
    table = json.loads(first.read_text())
    cheap = records.LOPT_EVAL_ARGS[1].split(",")
    table["info"]["tasks"] = table["info"]["tasks"][:2]
    table["rows"] = [r for r in table["rows"] if r["task"] in cheap[:2]]
    first.write_text(json.dumps(table))
    shutil.rmtree(folder / "evaluation_rest")
    calls.clear()

    assert records.rerun_lopt_records(folder) == kept_records
    assert [c[0] for c in calls] == ["meta-train", "evaluate", "evaluate"]
    assert "--resume" in calls[0]
    assert calls[0][calls[0].index("--out") + 1].endswith("star_wd0")
    resumed, rest = calls[1:]
    assert resumed[resumed.index("--task") + 1] == ",".join(cheap[2:])
    assert resumed[resumed.index("--out") + 1] == str(folder / "evaluation-2")
    assert rest[rest.index("--task") + 1] == records.LOPT_EVAL_REST_ARGS[1]
    assert rest[rest.index("--out") + 1] == str(folder / "evaluation_rest")
    evaluation = _records.load("evaluation", kept_records)
    assert sorted(r["task"] for r in evaluation["rows"]) == sorted(task_names())
    assert evaluation["costs"]["total"] == 3.0  # 1 s per evaluation directory


def test_full_uses_the_rerun_records(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        records, "rerun_lopt_records", lambda folder: seen.append(folder) or 1 / 0
    )
    rc = reproduce.main(
        ["--full", "--out", str(tmp_path), "--only", "fig06", "--no-lemmas"]
    )
    assert rc == 1 and seen == [str(tmp_path / "lopt_runs")]
    seen.clear()
    rc = reproduce.main(
        [
            "--full",
            "--shipped-records",
            "--out",
            str(tmp_path),
            "--only",
            "fig06",
            "--no-lemmas",
        ]
    )
    assert rc == 0 and seen == []
    assert "shipped in stability/lopt/records/" in (tmp_path / "REPORT.md").read_text()


def test_a_failed_rerun_is_tried_once_for_all_three_figures(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        records, "rerun_lopt_records", lambda folder: seen.append(folder) or 1 / 0
    )
    argv = ["--full", "--out", str(tmp_path), "--no-lemmas", "--only"]
    assert reproduce.main([*argv, *records.RECORD_FIGURES]) == 1
    assert seen == [str(tmp_path / "lopt_runs")]
    report = (tmp_path / "REPORT.md").read_text()
    assert "3 failed" in report
    for fid in records.RECORD_FIGURES:
        name = figures.FIGURES[fid].name
        assert f"`{name}` (failed): rerunning the records failed" in report


@pytest.mark.slow
def test_full_pipeline_for_real_on_a_tiny_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(
        records,
        "LOPT_META_ARGS",
        [
            "--steps",
            "2",
            "--horizon",
            "20",
            "--truncation",
            "10",
            "--population",
            "1",
            "--eval-seeds",
            "1",
            "--eval-every",
            "1",
            "--checkpoint-every",
            "1",
            "--no-progress",
        ],
    )
    monkeypatch.setattr(
        records,
        "LOPT_EVAL_ARGS",
        [
            "--task",
            "digits_mlp",
            "--horizons",
            "1,2",
            "--seeds",
            "1",
            "--tuning-seeds",
            "1",
            "--grid",
            "0.01,0.1",
        ],
    )
    monkeypatch.setattr(
        records,
        "LOPT_EVAL_REST_ARGS",
        ["--task", "digits_mlp_tanh", "--horizons", "1", "--seeds", "1"]
        + ["--tuning-seeds", "1", "--grid", "0.1"],
    )
    rc = reproduce.main(
        [
            "--full",
            "--out",
            str(tmp_path),
            "--only",
            "fig06",
            "fig07",
            "fig08",
            "--no-lemmas",
        ]
    )
    report = (tmp_path / "REPORT.md").read_text()
    assert rc == 0, report
    assert "Records rerun by this --full run" in report
    for name in ("fig06_meta_training", "fig07_long_horizon", "fig08_generalization"):
        _check_image(tmp_path / f"{name}.png")


def test_fig06_reports_the_first_window_and_the_final_totals(tmp_path, monkeypatch):
    """The meta-loss "of the first W steps" is the trailing mean at step W, and the
    skipped / reset counts are each run's final totals (the shipped runs have none:
    a record with some is made from them)."""
    import json

    from stability.figures import fig06
    from stability.lopt import _records

    shipped = json.loads((_records.RECORDS_DIR / _records.META_TRAINING).read_text())
    curve = shipped["runs"]["star"]["curve"]
    n = len(curve["step"])
    curve["skipped_total"] = [0] * (n // 2) + [2] * (n - n // 2 - 1) + [3]
    curve["diverged_total"] = [1] * (n - 1) + [5]
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / _records.META_TRAINING).write_text(json.dumps(shipped))
    monkeypatch.setattr(records, "rerun_lopt_records", lambda runs: folder)
    rec = fig06.compute(figures.Quality(full=True, lopt_runs=str(tmp_path)))
    shown = fig06.numbers(rec)
    assert shown["star: meta-gradients skipped / inner runs reset"] == "3 / 5"
    window = shipped["window"]
    for name, run in _records.load("meta_training", folder)["runs"].items():
        c = run["curve"]
        (first,) = c["meta_loss_smooth"][c["step"] == window]
        last = c["meta_loss_smooth"][-1]
        key = f"{name}: meta-loss, mean of first / last {window} steps"
        assert shown[key] == f"{figures.fmt(first)} / {figures.fmt(last)}"


def test_an_extra_evaluation_adds_only_its_own_optimizers():
    def rec(names, tasks):
        return {
            "rows": [{"task": t, "optimizer": n} for t in tasks for n in names],
            "curves": {f"{t}/{n}@0.1": {"step": [1]} for t in tasks for n in names},
            "tasks": {t: {"learned": {n: {} for n in names}} for t in tasks},
        }

    main = rec(["star", "adam"], ["a", "b"])
    extra = rec(["star_bounded", "adam"], ["a", "c"])
    out = records.with_optimizers(main, extra)
    assert sorted((r["task"], r["optimizer"]) for r in out["rows"]) == [
        ("a", "adam"),
        ("a", "star"),
        ("a", "star_bounded"),
        ("b", "adam"),
        ("b", "star"),
    ]
    assert (
        "a/star_bounded@0.1" in out["curves"]
        and "c/star_bounded@0.1" not in out["curves"]
    )
    assert set(out["tasks"]["a"]["learned"]) == {"star", "adam", "star_bounded"}
    assert main["rows"] != out["rows"]  # the shipped record itself is untouched


def test_an_extra_meta_training_record_adds_only_its_own_runs():
    main = {"every": 10, "window": 50, "runs": {"star": 1, "star_wd0": 2}}
    extra = {"every": 10, "window": 50, "runs": {"star": 9, "star_bounded": 3}}
    out = records.with_runs(main, extra)
    assert out["runs"] == {"star": 1, "star_wd0": 2, "star_bounded": 3}
    assert main["runs"] == {"star": 1, "star_wd0": 2}  # untouched
    with pytest.raises(ValueError, match="extra"):
        records.with_runs(main, dict(extra, window=20))


def test_fig06_draws_the_bounded_run_beside_the_shipped_ones():
    from stability.figures import fig06

    rec = fig06.compute(figures.Quality())
    assert set(rec.meta_training["runs"]) == {
        "star",
        "small_fc_lopt",
        "star_no_nominal",
        "star_no_precond",
        "star_wd0",
        "star_bounded",
    }
    assert "star_bounded: 8 episodes, blackbox term bounded" in fig06.caption(rec)
