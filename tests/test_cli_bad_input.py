"""Bad input to the command line, tried as a new user would (issue 24).

The CLI promises one line on stderr and exit code 2 for every error, checked before
any computation where the command can, and nothing already written lost. Each case
below was tried on the command line; the tests hold every one of them.

Outcome "2" is one line on stderr naming the flag or file, and exit code 2.

==============================================  ======================================
case                                            outcome
==============================================  ======================================
region --family nominal ... --lr 0:4:5          2: --lr: nominal does not take it
region --family aggmo ... --beta 0.5            2: --beta: aggmo does not take it
region --family gd ... --beta 0.9               2: --beta: gd does not take it
region --family gd ... --betas / --precondition 2: only aggmo / nominal takes it
region --family gd (no grid flags)              2: --lr, --curvature: gd needs a value
region --lr 0:3:0, 0:3, nan, x, 0:3:1e9         2: argument --lr: NUM >= 1, finite
region grid of 1e8 or 1.6e15 points             2: over the grid limit, not computed
region --plot on a 0-D grid, --plot x.txt       2: --plot: 1-D or 2-D / .png .pdf .svg
region --json /sys/x.json, under a file, ""     2: --json: cannot write, not computed
region --json a folder                          2: --json: a folder, not a file
region --json an existing file, bad --beta      2, the existing file kept as it was
region --beta 2 (checked by the analysis)       2: beta: decays must lie in (-1, 1)
region --certified with --curvature/--precond. 2: --certified replaces the curvature
region --certified without --mu / --smoothness  2: --mu / --smoothness needs a value
region --mu, --target, ... without --certified  2: --mu: only --certified takes it
region --certified --smoothness <= --mu         2: --smoothness: must be > --mu
region --certified --target 1, 0, x             2: argument --target: in (0, 1)
region --certified, cvxpy missing               2: names pip install -e '.[robust]'
edge --task nope, --steps 0, --out a file       2: --task / --steps / --out
evaluate --out holding eval.json, no flag       2: --out: already holds results
evaluate --resume, folder empty or missing      2: --resume: holds no eval.json
evaluate --resume, other --seeds               2: --resume: evaluated with seeds 1
evaluate --resume, another theta, same label    2: --resume: the star theta is not ...
evaluate --resume, corrupt eval.json            2: --resume: not an evaluation record
evaluate --resume --overwrite                   2: not allowed together
evaluate --out "", /sys/x, a file, under one    2: --out: ..., before any computation
evaluate --theta empty, truncated, bad CRC      2: FILE: cannot read a theta (...)
evaluate --theta a text file, a bare .npy       2: FILE: cannot read a theta (...)
evaluate --theta with a corrupt sidecar         2: FILE.json: not a valid JSON sidecar
evaluate --theta missing.npz                    2: --theta: no such file
evaluate --task nope, --baselines sgd           2: --task / --baselines, not computed
evaluate --keep -1                              2: --keep, not computed
evaluate --theta A --extra A                    2: --extra: two labelled 'star'
evaluate, interrupted (Ctrl-C)                  130; finished tasks kept in eval.json
reproduce --shipped-records (no --full)         2: only --full takes it
reproduce --out "", /sys/x, a file              2: --out: ...
reproduce --only nope                           2: --only: unknown figure 'nope'
reproduce (no --out)                            0; quick renders in figures/quick/
bench regions --n 0, --control-sample 0, --n x  2: argument --n: a positive integer
bench meta_train --task nope, --population 0    2: --task / --population
bench step --only nope, --repeats 0             2: --only / --repeats
no-such-command, unknown flag                   2: argparse's message
load_theta on each corrupt theta above (API)    ValueError naming the file
load_metadata, corrupt or non-object sidecar    ValueError naming the sidecar
==============================================  ======================================

Also: a fuzz test over argument lists of every sub-command (hypothesis, bounded),
with the long-running work replaced by stubs, asserts exit codes in {0, 2} and no
traceback.
"""

import json
import pathlib
import subprocess
import types
import warnings
import zipfile

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stability import cli
from stability.lopt import evaluate as ev
from stability.lopt import init_theta, zero_output_layer
from stability.lopt.io import load_metadata, load_theta, save_theta

ON_LINUX = pathlib.Path("/sys/kernel").is_dir()


def _status(argv, capsys):
    """Exit status of ``stability ARGV`` and its stderr (stdout discarded)."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse errors and --help
        rc = exc.code
    except KeyboardInterrupt:  # must not stop the test session
        rc = "KeyboardInterrupt escaped"
    return rc, capsys.readouterr().err.strip()


def _one_line_error(rc, err, *needles):
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "error:" in err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture(scope="module")
def thetas(tmp_path_factory):
    """A valid STAR theta (with a meta-training config) and broken ones."""
    d = tmp_path_factory.mktemp("thetas")
    good = d / "star.npz"
    theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    save_theta(good, theta, {"config": {"horizon": 4, "nominal_stepsize": 0.03}})
    data = good.read_bytes()
    with zipfile.ZipFile(good) as z:  # flip a byte inside the first member's data
        info = z.infolist()[0]
    at = info.header_offset + 30 + len(info.filename) + 100
    broken = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "bad_crc": data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :],
        "text": b"not a theta\n",
    }
    paths = {"good": good}
    for name, content in broken.items():
        paths[name] = d / f"{name}.npz"
        paths[name].write_bytes(content)
    paths["npy"] = d / "npy.npz"
    with open(paths["npy"], "wb") as f:
        np.save(f, np.zeros(3))
    side = d / "sidecar"
    side.mkdir()
    paths["bad_sidecar"] = side / "star.npz"
    paths["bad_sidecar"].write_bytes(data)
    (side / "star.json").write_text('{"config": {"horizon": ')
    paths["list_sidecar"] = d / "list.npz"
    paths["list_sidecar"].write_bytes(data)
    (d / "list.json").write_text("[1, 2]")
    return paths


# -- load_theta, load_metadata -------------------------------------------------------


@pytest.mark.parametrize("name", ["empty", "truncated", "bad_crc", "text", "npy"])
def test_load_theta_on_a_corrupt_file_raises_value_error_naming_it(name, thetas):
    with pytest.raises(ValueError, match="cannot read a theta") as info:
        load_theta(thetas[name])
    assert str(thetas[name]) in str(info.value)
    assert "allow_pickle" not in str(info.value)


def test_load_theta_still_reads_a_good_theta_and_reports_a_missing_one(thetas):
    with warnings.catch_warnings():  # its sidecar configures the optimizer
        warnings.simplefilter("ignore")
        assert set(load_theta(thetas["good"])) >= {"mlp", "momentum_decays"}
    with pytest.raises(FileNotFoundError):
        load_theta(thetas["good"].with_name("missing.npz"))


@pytest.mark.parametrize("name", ["bad_sidecar", "list_sidecar"])
def test_load_metadata_on_a_corrupt_sidecar_names_it(name, thetas):
    with pytest.raises(ValueError) as info:
        load_metadata(thetas[name])
    assert str(thetas[name].with_suffix(".json")) in str(info.value)


# -- one line, exit 2: the bad-input table ---------------------------------------


class _Stop(Exception):
    pass


@pytest.fixture
def no_work(monkeypatch):
    """Every long-running entry point raises if reached: the checks must come
    first."""
    from stability import analyses, reproduce

    def never(*args, **kwargs):
        raise AssertionError("the computation started")

    monkeypatch.setattr(ev, "evaluate", never)
    monkeypatch.setattr(analyses, "stability_region", never)
    monkeypatch.setattr(reproduce, "run", never)


REGION = "region --family gd --lr 1 --curvature 1"
CASES = [
    (f"{REGION} --json /sys/x.json", ["--json", "/sys/x.json"]),
    (f"{REGION} --json ", ["--json", "file name"]),
    ("region --family gd --lr 0:3:0 --curvature 1", ["--lr", "NUM"]),
    ("region --family gd --lr 0:3 --curvature 1", ["--lr"]),
    ("region --family gd --lr nan --curvature 1", ["--lr", "finite"]),
    ("region --family gd --lr 0:3:1e9 --curvature 1", ["--lr"]),
    ("region --family gd --lr 0:1:40000000 --curvature 0:1:40000000", ["grid"]),
    (f"{REGION} --plot x.png", ["--plot", "1-D or 2-D"]),
    ("region --family gd --lr 0:1:3 --curvature 1 --plot x.txt", ["--plot", ".png"]),
    (f"{REGION} --precondition", ["--precondition", "nominal"]),
    ("region --family heavy_ball --lr 1 --curvature 1", ["--beta", "needs"]),
    ("reproduce --shipped-records", ["--shipped-records", "--full"]),
    ("reproduce --out ", ["--out", "folder name"]),
    ("reproduce --out /sys/x", ["--out", "/sys/x"]),
    ("reproduce --only nope", ["--only", "nope"]),
    ("evaluate --task digits_mlp --out /sys/x", ["--out", "/sys/x"]),
    ("evaluate --task digits_mlp --out ", ["--out", "folder name"]),
    ("evaluate --task nope", ["--task", "nope"]),
    ("evaluate --task digits_mlp --baselines sgd", ["--baselines", "sgd"]),
    ("evaluate --task digits_mlp --keep -1", ["--keep"]),
    ("evaluate --task digits_mlp --resume --overwrite", ["--overwrite"]),
    ("evaluate --task digits_mlp --theta missing.npz", ["--theta", "missing.npz"]),
    ("no-such-command", ["no-such-command"]),
    ("region --family gd --no-such-flag", ["--no-such-flag"]),
]


@pytest.mark.parametrize("command, needles", CASES)
def test_bad_input_is_one_line_exit_2_before_any_computation(
    command, needles, no_work, tmp_path, monkeypatch, capsys
):
    if "/sys/" in command and not ON_LINUX:
        pytest.skip("needs /sys")
    monkeypatch.chdir(tmp_path)
    argv = command.split(" ")
    rc, err = _status([a for a in argv if a or argv.index(a) == len(argv) - 1], capsys)
    _one_line_error(rc, err, *needles)


@pytest.mark.parametrize("flag", ["--json", "--plot", "--out"])
def test_an_output_under_a_file_or_at_a_folder_is_refused(
    flag, no_work, tmp_path, capsys
):
    file = tmp_path / "file.txt"
    file.write_text("keep me")
    grid = ["--family", "gd", "--lr", "0:1:3", "--curvature", "1"]
    for bad in (file / "sub.png", tmp_path):
        if flag == "--out":
            if bad == tmp_path:  # a folder is what --out wants
                bad = file
            argv = ["reproduce", "--out", str(bad)]
        else:
            argv = ["region", *grid, flag, str(bad)]
        rc, err = _status(argv, capsys)
        _one_line_error(rc, err, flag)
    assert file.read_text() == "keep me"


def test_a_failed_region_keeps_an_existing_json(tmp_path, capsys):
    out = tmp_path / "region.json"
    out.write_text("earlier result")
    argv = ["region", "--family", "heavy_ball", "--lr", "0:1:3", "--curvature", "1"]
    rc, err = _status([*argv, "--beta", "2", "--json", str(out)], capsys)
    _one_line_error(rc, err, "beta")
    assert out.read_text() == "earlier result"


@pytest.mark.parametrize(
    "name, needle",
    [
        ("empty", "cannot read a theta"),
        ("truncated", "cannot read a theta"),
        ("bad_crc", "Bad CRC"),
        ("text", "cannot read a theta"),
        ("npy", "cannot read a theta"),
        ("bad_sidecar", "star.json: not a valid JSON sidecar"),
    ],
)
def test_evaluate_with_a_corrupt_theta_is_one_line(
    name, needle, thetas, no_work, tmp_path, capsys
):
    argv = ["evaluate", "--theta", str(thetas[name]), "--task", "digits_mlp"]
    rc, err = _status([*argv, "--out", str(tmp_path / "out")], capsys)
    _one_line_error(rc, err, needle)
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_two_optimizers_with_one_label(
    thetas, no_work, tmp_path, capsys
):
    argv = ["evaluate", "--theta", str(thetas["good"]), "--extra", str(thetas["good"])]
    rc, err = _status([*argv, "--task", "digits_mlp", "--out", str(tmp_path)], capsys)
    _one_line_error(rc, err, "--extra", "'star'")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["regions", "--n", "0"], "--n"),
        (["regions", "--control-sample", "0"], "--control-sample"),
        (["regions", "--n", "x"], "--n"),
        (["meta_train", "--population", "0"], "--population"),
        (["meta_train", "--task", "nope"], "--task"),
    ],
)
def test_bench_bad_arguments_are_one_line(argv, needle, capsys):
    if not (pathlib.Path(cli.__file__).parents[2] / "benchmarks").is_dir():
        pytest.skip("benchmarks live in a source checkout")
    rc, err = _status(["bench", *argv], capsys)
    _one_line_error(rc, err, needle)


# -- evaluate: --out with results, --resume per (task, optimizer) cell ----------------


def _fake_evaluate(calls, fail_on=None):
    """A stand-in for ``evaluate.evaluate``: one row and curve per optimizer,
    recording which (task, optimizers) it was asked for."""

    def fake(theta, task, horizons, seeds, *, extra=(), baselines=(), **kwargs):
        learned = ([theta] if theta is not None else []) + list(extra)
        names = [lo.label for lo in learned] + list(baselines)
        if task == fail_on:
            raise KeyboardInterrupt
        calls.append((task, tuple(names)))
        base = kwargs["base_horizon"]
        fields = {f: np.full((1, 2), len(calls), float) for f in ev.TrainRecord._fields}
        fields["seconds"] = 0.25
        rows = [
            {
                "optimizer": n,
                "task": task,
                "horizon": base,
                "multiple": 1,
                "hyperparameter": None if n == "star" else 1e-3,
                "seeds": seeds,
                "train_loss_mean": float("nan") if n == "adam" else 1.0 + len(calls),
                "train_loss_std": 0.0,
                "test_accuracy_mean": 0.5,
                "diverged": 0,
            }
            for n in names
        ]
        tuning = {
            (task, b): ev.TuneResult(b, (1e-3,), (base,), np.ones((1, 1)), (1e-3,), 0.1)
            for b in baselines
        }
        info = {"task": task, "learned": {lo.label: {} for lo in learned}}
        costs = {f"{n}: held-out runs": 0.25 for n in names}
        curves = {n: ev.TrainRecord(**fields) for n in names}
        return ev.EvaluationTable(rows, curves, tuning, costs, info)

    return fake


def _evaluate_argv(theta, out, tasks, baselines="none", *more):
    argv = ["evaluate", "--theta", str(theta), "--task", tasks, "--horizons", "1"]
    return [*argv, "--seeds", "1", "--baselines", baselines, "--out", str(out), *more]


def test_evaluate_refuses_an_out_holding_results(thetas, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(ev, "evaluate", _fake_evaluate(calls))
    out = tmp_path / "out"
    assert cli.main(_evaluate_argv(thetas["good"], out, "digits_mlp")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rc, err = _status(_evaluate_argv(thetas["good"], out, "digits_mlp_tanh"), capsys)
    _one_line_error(rc, err, "--out", "already holds results", "--resume")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert len(calls) == 1
    argv = _evaluate_argv(thetas["good"], out, "digits_mlp_tanh", "none", "--overwrite")
    assert cli.main(argv) == 0
    record = json.loads((out / "eval.json").read_text())
    assert [t["task"] for t in record["info"]["tasks"]] == ["digits_mlp_tanh"]


def test_evaluate_resume_runs_only_the_missing_cells(
    thetas, tmp_path, monkeypatch, capsys
):
    calls = []
    out = tmp_path / "out"
    theta = thetas["good"]
    # interrupted in its second task: the first is recorded
    monkeypatch.setattr(ev, "evaluate", _fake_evaluate(calls, "digits_mlp_tanh"))
    argv = _evaluate_argv(theta, out, "digits_mlp,digits_mlp_tanh")
    assert _status(argv, capsys)[0] == 130
    monkeypatch.setattr(ev, "evaluate", _fake_evaluate(calls))
    argv = _evaluate_argv(theta, out, "digits_mlp,digits_mlp_tanh", "adam", "--resume")
    assert cli.main(argv) == 0
    assert calls == [
        ("digits_mlp", ("star",)),
        ("digits_mlp", ("adam",)),  # the recorded star cell is kept
        ("digits_mlp_tanh", ("star", "adam")),
    ]
    record = json.loads((out / "eval.json").read_text())
    cells = [(r["task"], r["optimizer"]) for r in record["rows"]]
    assert cells == [
        ("digits_mlp", "star"),
        ("digits_mlp", "adam"),
        ("digits_mlp_tanh", "star"),
        ("digits_mlp_tanh", "adam"),
    ]
    assert record["rows"][0]["train_loss_mean"] == 2.0  # from the first run
    with np.load(out / "curves.npz") as z:
        assert z["digits_mlp/star/train_loss"][0, 0] == 1.0  # first run's curve
        assert {k.rsplit("/", 1)[0] for k in z.files} == {f"{t}/{n}" for t, n in cells}
    assert {(t["task"], t["family"]) for t in record["tuning"]} == {
        ("digits_mlp", "adam"),
        ("digits_mlp_tanh", "adam"),
    }
    capsys.readouterr()
    assert cli.main(argv) == 0  # everything recorded: nothing runs
    assert len(calls) == 3
    assert "| digits_mlp | adam |" in capsys.readouterr().out  # NaN loss read back


def test_evaluate_resume_refuses_other_settings_or_an_empty_folder(
    thetas, tmp_path, monkeypatch, capsys
):
    calls = []
    monkeypatch.setattr(ev, "evaluate", _fake_evaluate(calls))
    out = tmp_path / "out"
    rc, err = _status(
        _evaluate_argv(thetas["good"], out, "digits_mlp", "none", "--resume"), capsys
    )
    _one_line_error(rc, err, "--resume", "no eval.json")
    assert cli.main(_evaluate_argv(thetas["good"], out, "digits_mlp")) == 0
    argv = _evaluate_argv(thetas["good"], out, "digits_mlp", "none", "--resume")
    rc, err = _status([*argv, "--seeds", "2"], capsys)
    _one_line_error(rc, err, "--resume", "seeds 1, now 2")
    other = tmp_path / "other" / "star.npz"
    theta = zero_output_layer(init_theta(jax.random.key(1), heads=3))
    save_theta(other, theta, {"config": {"horizon": 4, "nominal_stepsize": 0.03}})
    rc, err = _status(
        _evaluate_argv(other, out, "digits_mlp", "none", "--resume"), capsys
    )
    _one_line_error(rc, err, "--resume", "star theta")
    (out / "eval.json").write_text('{"rows": [')
    rc, err = _status(argv, capsys)
    _one_line_error(rc, err, "--resume", "eval.json is not an evaluation record")
    assert len(calls) == 1


# -- reproduce: quick renders do not replace the committed full-quality ones ----------


def test_reproduce_quick_renders_default_outside_the_committed_figures(monkeypatch):
    from stability import reproduce

    seen = []
    monkeypatch.setattr(reproduce, "run", lambda args: seen.append(args.out) or 0)
    for argv in (
        [],
        ["--quick"],
        ["--full"],
        ["--out", "x", "--full"],
        ["--quick", "--out", "figures"],
    ):
        assert cli.main(["reproduce", *argv]) == 0
        assert reproduce.main(argv) == 0
    quick = f"{reproduce.DEFAULT_OUT}/quick"
    pairs = [quick, quick, reproduce.DEFAULT_OUT, "x", reproduce.DEFAULT_OUT]
    assert seen == [x for x in pairs for _ in range(2)]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"{quick}/fig01_eigenvalues.png"],
        cwd=pathlib.Path(reproduce.__file__).parent.parent,
        capture_output=True,
    )
    assert ignored.returncode in (0, 128)  # ignored (128: not a git checkout)


# -- fuzz: every sub-command, exit 0 or 2, never a traceback -------------------------

GENERIC = ["0", "1", "-1", "0.5", "2", "1e-3", "nan", "inf", "x", "", "0:1:3"]
GENERIC += ["0:3:0", "1:2", "0.1,0.2", "a,b", "none", "all", "/sys/x"]
VALUES = {
    "--family": ["gd", "nominal", "heavy_ball", "ema_momentum", "aggmo", "nesterov"]
    + ["sgd"],
    "--lr": ["0:4:3", "1", "-1", "0:3:0"],
    "--curvature": ["1", "0:1:2", "-1"],
    "--beta": ["0.5", "0:0.9:2", "1", "-2"],
    "--alpha": ["1", "0:2:2"],
    "--p": ["0", "-0.5:0.5:2"],
    "--betas": ["0.5,0.9", "1.5", "x"],
    "--task": ["digits_mlp", "digits_mlp,digits_mlp_tanh", "nope", "all"],
    "--baselines": ["adam", "nominal", "none", "sgd", "adam,nominal"],
    "--only": ["fig01", "fig02_regions", "nope"],
    "--optimizer": ["star", "small_fc_lopt", "adam", "gd", "heavy_ball", "nominal"],
    "--estimator": ["es", "pes", "x"],
    "--mu": ["1", "0", "4"],
    "--smoothness": ["4", "1", "-1"],
    "--target": ["0.9", "1", "0"],
    "--multipliers": ["zames_falb", "sector", "x"],
    "--steps": ["2", "0"],
    "--every": ["1", "0"],
    "--batch": ["8", "0"],
    "--loss": ["ce", "mse", "x"],
}
BENCH_TOKENS = ["regions", "step", "meta_train", "nope", "--n", "--help", "-h"]
GRIDS = {  # a valid region command line per family
    "gd": "--lr 0:4:3 --curvature 1",
    "nominal": "--alpha 0:1:2 --p 0 --curvature 1",
    "heavy_ball": "--lr 0:4:3 --curvature 1 --beta 0:0.9:2",
    "ema_momentum": "--lr 1 --curvature 0:1:3 --beta 0.5",
    "aggmo": "--lr 0:4:3 --curvature 1",
    "nesterov": "--lr 0:2:3 --curvature 1 --beta 0.5",
}
CERTIFIED = "--certified --mu 1 --smoothness 4"  # replaces --curvature in GRIDS
BASE = {
    "region": ["--family", "gd", "--lr", "0:4:3", "--curvature", "1"],
    "evaluate": ["--task", "digits_mlp", "--horizons", "1", "--seeds", "1"],
    "reproduce": ["--only", "fig01"],
    "meta-train": ["--steps", "2"],
    "bench": ["regions"],
    "edge": "--task digits_mlp --optimizer gd --steps 2 --every 1 --out e".split(),
}


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory, thetas):
    d = tmp_path_factory.mktemp("fuzz")
    (d / "a_file").write_text("x")
    return d


def _stubs(mp, thetas):
    """Replace the long-running work by stubs (parsing and checks stay real)."""
    import runpy

    from stability import analyses, reproduce
    from stability.lopt import edge
    from stability.lopt import meta_train as mt

    real_region = analyses.stability_region
    real_certified = analyses.certified_region

    def small(grid):  # at most 2 points per axis
        return {k: v[:2] if np.ndim(v) else v for k, v in grid.items()}

    def small_region(family, **grid):  # the real analysis on the small grid
        return real_region(family, **small(grid))

    def small_certified(family, **grid):
        return real_certified(family, **small(grid))

    def fake_track_task(
        task,
        optimizer="gd",
        *,
        lr=None,
        beta=None,
        theta=None,
        loss="ce",
        steps,
        every,
        batch_size=None,
        callback=None,
        **kwargs,
    ):  # the real optimizer set-up, no training
        setup = edge.edge_optimizer(optimizer, lr=lr, beta=beta, theta=theta)
        points = [
            edge.EdgeCheckpoint(
                s, 1.0 / (1 + s), 2.0, None, setup.threshold, None, False
            )
            for s in sorted({0, steps})
        ]
        for point in points:
            callback(point)
        info = dict(setup.info, quantity="sharpness", threshold=setup.threshold)
        info |= {"task": task.name, "loss": loss, "batch": batch_size or "full"}
        return edge.EdgeRun(points, info)

    def fake_meta_train(config, out, **kwargs):
        return types.SimpleNamespace(
            config=config,
            best_score=float("nan"),
            best_step=0,
            steps=config.steps,
            skipped=0,
            diverged=0,
            out_dir=out,
        )

    mp.setattr(analyses, "stability_region", small_region)
    mp.setattr(analyses, "certified_region", small_certified)
    mp.setattr(edge, "track_task", fake_track_task)
    mp.setattr(ev, "evaluate", _fake_evaluate([]))
    mp.setattr(reproduce, "run", lambda args: 0)
    mp.setattr(mt, "meta_train", fake_meta_train)
    mp.setattr(runpy, "run_path", lambda *args, **kwargs: None)


def _options(command):
    parser = cli._parser((command,))._subparsers._group_actions[0].choices[command]
    return [
        (a.option_strings[-1], a.nargs == 0)
        for a in parser._actions
        if a.option_strings and a.option_strings[-1] != "--help"
    ]


@pytest.mark.parametrize(
    "command", ["region", "evaluate", "reproduce", "meta-train", "bench", "edge"]
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_every_command_exits_0_or_2_without_traceback(
    command, data, thetas, fuzz_dir, capsys
):
    options = _options(command)
    outputs = ["", "/sys/x.png", str(fuzz_dir / "a_file"), str(fuzz_dir / "a_file/x")]
    outputs += [str(fuzz_dir / "o"), str(fuzz_dir / "p.png"), str(fuzz_dir / "r.json")]
    inputs = [str(thetas[k]) for k in ("good", "truncated", "text", "bad_sidecar")]
    pools = {"--theta": inputs, "--extra": inputs, "--out": outputs}
    pools |= {"--json": outputs, "--plot": outputs}
    argv = [command]
    if command == "region" and data.draw(st.booleans(), "valid grid"):
        family = data.draw(st.sampled_from(sorted(GRIDS)), "family")
        grid = GRIDS[family]
        if data.draw(st.booleans(), "certified"):
            grid = grid.replace("--curvature 1", CERTIFIED)
        argv += ["--family", family, *grid.split()]
        for flag in ("--json", "--plot"):
            if data.draw(st.booleans(), flag):
                argv += [flag, data.draw(st.sampled_from(outputs), f"{flag} file")]
    elif data.draw(st.booleans(), "base"):
        argv += BASE[command]
    for _ in range(data.draw(st.integers(0, 4), "count")):
        if not options:  # bench: a benchmark name and its script's arguments
            argv.append(data.draw(st.sampled_from(BENCH_TOKENS + GENERIC), "token"))
            continue
        flag, is_switch = data.draw(st.sampled_from(options), "flag")
        argv.append(flag)
        if not is_switch:
            pool = pools.get(flag, VALUES.get(flag, []))
            if not pool or data.draw(st.integers(0, 3), "odd value") == 0:
                pool = GENERIC + inputs + outputs
            argv.append(data.draw(st.sampled_from(pool), "value"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(fuzz_dir)
        _stubs(mp, thetas)
        capsys.readouterr()
        rc, err = _status(argv, capsys)
    assert rc in (0, 2), (argv, rc, err)
    assert "Traceback" not in err, (argv, err)
    if rc == 2:
        assert len(err.splitlines()) == 1, (argv, err)
