import json
import subprocess
import sys

import numpy as np
import pytest

from stability import cli
from stability.cli import region


def test_region_command_writes_json(tmp_path, capsys):
    out = tmp_path / "region.json"
    rc = cli.main(
        [
            "region",
            "--family",
            "heavy_ball",
            "--lr",
            "0:4:41",
            "--curvature",
            "1",
            "--beta",
            "0.5",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    assert "stable fraction" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["family"] == "heavy_ball" and len(record["rho"]) == 41
    # rho = 1 up to rounding at lr = 0 and on the edge lr h = 2 (1 + beta) = 3:
    # marginal, not stable
    marginal = [i for i, m in enumerate(record["marginal"]) if m]
    assert marginal == [0, 30] and not any(record["stable"][i] for i in marginal)
    assert record["stable"][1:30] == [True] * 29


def test_region_command_values_on_a_2d_grid(tmp_path, capsys):
    out = tmp_path / "region.json"
    argv = "region --family heavy_ball --lr 0.5:3.5:4 --curvature 0.5:1:3 --beta 0.5"
    assert cli.main([*argv.split(), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["axes"] == {"lr": [0.5, 1.5, 2.5, 3.5], "curvature": [0.5, 0.75, 1.0]}
    # heavy ball per mode: the roots of z^2 - (1 + beta - lr h) z + beta
    expected = [
        [max(abs(np.roots([1.0, -(1.5 - a * h), 0.5]))) for h in (0.5, 0.75, 1.0)]
        for a in (0.5, 1.5, 2.5, 3.5)
    ]
    np.testing.assert_allclose(record["rho"], expected, rtol=1e-12)
    printed = capsys.readouterr().out
    fraction = float(printed.split("stable fraction ")[1].split(",")[0])
    assert fraction == pytest.approx(np.mean(np.asarray(expected) < 1), abs=1e-4)
    assert "grid (4, 3)" in printed


@pytest.mark.parametrize(
    "command, names",
    [
        ("region --family nope", "--family"),
        ("region --family gd --lr x", "--lr"),
        ("region --family heavy_ball --lr 1 --curvature 1 --beta 2", "beta:"),
        ("no-such-command", "no-such-command"),
        ("region --family aggmo --lr 1 --curvature 1 --betas a,b", "--betas"),
        ("region --family gd --lr 1 --curvature 1 --precondition", "precondition:"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(command, names, capsys):
    try:
        rc = cli.main(command.split())
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1 and names in err


def test_module_entry_point():
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "stability",
            "region",
            "--family",
            "gd",
            "--lr",
            "1.5",
            "--curvature",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "gd: grid ()" in res.stdout


# -- stability region: flags by family, --help, --plot, start-up (issue 24) ----------


def _status(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    "command, flag",
    [
        ("region --family nominal --alpha 1 --p 0 --curvature 1 --lr 0:4:5", "--lr"),
        ("region --family aggmo --lr 1 --curvature 1 --beta 0.5", "--beta"),
        ("region --family gd --lr 1 --curvature 1 --beta 0.9", "--beta"),
        ("region --family heavy_ball --lr 1 --curvature 1 --beta 0.5 --p 1", "--p"),
        ("region --family gd --lr 1 --curvature 1 --betas 0.5", "--betas"),
        ("region --family nominal --alpha 1 --p 0", "--curvature"),
    ],
)
def test_region_refuses_flags_its_family_does_not_take(command, flag, capsys):
    rc, err = _status(command.split(), capsys)
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith(
        f"stability region: error: {flag}"
    )


def test_region_flag_table_is_the_analyses_table():
    from stability.analyses.regions import FAMILY_ARGS

    assert region.REGION_FAMILIES == FAMILY_ARGS


def test_region_names_moved_to_the_region_module_are_deprecated_aliases():
    from stability.cli import bench

    for name in ("REGION_FAMILIES", "MAX_GRID_COST", "PLOT_FORMATS"):
        with pytest.warns(DeprecationWarning, match=f"stability.cli.region.{name}"):
            assert getattr(cli, name) is getattr(region, name)
    with pytest.warns(DeprecationWarning, match="stability.cli.bench.BENCHMARKS"):
        assert cli.BENCHMARKS is bench.BENCHMARKS
    assert not hasattr(cli, "NO_SUCH_NAME")


def test_region_help_explains_every_flag_and_its_families(capsys):
    with pytest.raises(SystemExit):
        cli.main(["region", "--help"])
    text = capsys.readouterr().out
    parser = cli._parser(("region",))._subparsers._group_actions[0].choices["region"]
    for action in parser._actions:
        assert action.help, action.option_strings
    for family, flags in region.REGION_FAMILIES.items():
        line = next(x for x in text.splitlines() if x.startswith(f"  {family} "))
        assert all(f"--{f}" in line for f in flags)
        assert ("--betas" in line) == (family == "aggmo")
        assert ("--precondition" in line) == (family == "nominal")
    assert "--plot FILE" in text


@pytest.mark.parametrize(
    "grid, shape",
    [("--lr 0:3:7 --curvature 1", (7,)), ("--lr 0:3:7 --curvature 0.5:1:3", (7, 3))],
)
def test_region_plot_draws_1d_and_2d_grids(grid, shape, tmp_path, capsys):
    png, record = tmp_path / "r.png", tmp_path / "r.json"
    argv = ["region", "--family", "gd", *grid.split(), "--plot", str(png)]
    assert cli.main([*argv, "--json", str(record)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.asarray(json.loads(record.read_text())["rho"]).shape == shape


def test_region_checks_the_grid_size_before_computing(monkeypatch, capsys):
    from stability import analyses

    def never(*args, **kwargs):
        raise AssertionError("computed")

    monkeypatch.setattr(analyses, "stability_region", never)
    argv = "region --family heavy_ball --lr 0:4:100000 --beta 0:0.9:1000 --curvature 1"
    rc, err = _status(argv.split(), capsys)
    assert rc == 2 and "--lr, --beta: a grid of 100,000,000 points" in err


def test_help_and_argument_errors_import_no_heavy_module():
    """``stability --help``, ``region --help``, ``reproduce --help`` and a region
    argument error answer without importing JAX, NumPy or matplotlib."""
    code = (
        "import sys\n"
        "from stability import cli\n"
        "for argv in (['--help'], ['region', '--help'], ['reproduce', '--help'],\n"
        "             ['region', '--family', 'gd', '--lr', '0:3:0']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('jax', 'numpy', 'matplotlib') if m in sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout + res.stderr


@pytest.mark.parametrize(
    "command", ["reproduce", "evaluate", "edge", "bench", "meta-train"]
)
def test_command_help_imports_no_jax(command):
    """``stability COMMAND --help`` builds its parser (the task list included)
    without importing JAX."""
    code = (
        "import sys\n"
        "from stability import cli\n"
        "try:\n"
        f"    cli.main([{command!r}, '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('jax' in sys.modules)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert res.stdout.strip().splitlines()[-1] == "False", res.stdout + res.stderr


# -- stability region --certified, nesterov, stability edge (issues 27 and 28) -------


def test_region_certified_writes_the_analysis_record(tmp_path, capsys):
    from stability import analyses

    out = tmp_path / "c.json"
    argv = "region --family heavy_ball --lr 0.1:0.3:3 --beta 0:0.8:3 --certified "
    argv += f"--mu 1 --smoothness 10 --json {out}"
    assert cli.main(argv.split()) == 0
    printed = capsys.readouterr().out
    record = json.loads(out.read_text())
    direct = analyses.certified_region(
        "heavy_ball",
        mu=1.0,
        L=10.0,
        lr=np.linspace(0.1, 0.3, 3),
        beta=np.linspace(0, 0.8, 3),
    )
    assert record["axes"] == {"lr": [0.1, 0.2, 0.3], "beta": [0.0, 0.4, 0.8]}
    assert (record["mu"], record["L"]) == (1.0, 10.0)
    assert record["multipliers"] == "zames_falb" and record["target"] == direct.target
    np.testing.assert_array_equal(record["rho"], direct.rho)
    np.testing.assert_array_equal(record["certified"], direct.certified)
    np.testing.assert_array_equal(record["band"], direct.band)
    counts = record["counts"]
    # heavy ball has a band stable on every quadratic of F(1, 10), not certified
    assert counts["band"] > 0 and counts["certified"] > 0
    assert sum(counts[k] for k in ("certified", "band", "unstable")) == 9
    assert f"certified {counts['certified']}," in printed
    assert f"not certified) {counts['band']}," in printed
    assert f"diverges) {counts['unstable']}," in printed
    assert "solver failures 0" in printed and "grid (3, 3)" in printed


def test_region_certified_gd_is_certified_exactly_where_quadratics_converge(
    tmp_path, capsys
):
    out, png = tmp_path / "c.json", tmp_path / "c.png"
    argv = "region --family gd --lr 0.1:0.6:6 --certified --mu 1 --smoothness 4 "
    argv += f"--multipliers sector --target 0.999 --json {out} --plot {png}"
    assert cli.main(argv.split()) == 0
    record = json.loads(out.read_text())
    # gd on F(1, 4) converges for lr < 2 / L = 0.5, at rate max|1 - lr h| < 0.999
    assert record["certified"] == [True] * 4 + [False] * 2
    assert record["quadratic_stable"] == record["certified"]
    assert record["multipliers"] == "sector" and record["target"] == 0.999
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "command, flag",
    [
        (
            "--family gd --lr 0:1:3 --curvature 1 --certified --mu 1 --smoothness 2",
            "--curvature",
        ),
        (
            "--family nominal --alpha 0:1:3 --p 0 --precondition --certified --mu 1 "
            "--smoothness 2",
            "--precondition",
        ),
        ("--family gd --lr 0:1:3 --certified --smoothness 2", "--mu"),
        ("--family gd --lr 0:1:3 --certified --mu 1", "--smoothness"),
        ("--family gd --lr 0:1:3 --certified --mu 2 --smoothness 2", "--smoothness"),
        ("--family gd --lr 0:1:3 --curvature 1 --mu 1", "--mu"),
        ("--family gd --lr 0:1:3 --curvature 1 --target 0.9", "--target"),
        ("--family gd --lr 0:1:3 --curvature 1 --multipliers sector", "--multipliers"),
        ("--family gd --lr 0.1 --certified --mu 1 --smoothness 2", "--certified"),
        (
            "--family heavy_ball --lr 0:1:101 --beta 0:0.9:100 --certified --mu 1 "
            "--smoothness 2",
            "--lr, --beta",
        ),
    ],
)
def test_region_certified_refuses_bad_flags_before_computing(
    command, flag, monkeypatch, capsys
):
    from stability import analyses

    def never(*args, **kwargs):
        raise AssertionError("computed")

    monkeypatch.setattr(analyses, "certified_region", never)
    rc, err = _status(["region", *command.split()], capsys)
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith(
        f"stability region: error: {flag}"
    ), err


@pytest.mark.parametrize("value", ["0", "1", "x", "nan"])
def test_region_certified_target_is_a_rate_below_one(value, capsys):
    argv = "region --family gd --lr 0:1:3 --certified --mu 1 --smoothness 2 --target"
    rc, err = _status([*argv.split(), value], capsys)
    assert rc == 2 and len(err.splitlines()) == 1
    assert "argument --target: expected a number in (0, 1)" in err


def test_region_certified_without_cvxpy_names_the_extra(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "cvxpy" else real(name, *a),
    )
    argv = "region --family gd --lr 0:1:3 --certified --mu 1 --smoothness 2"
    rc, err = _status(argv.split(), capsys)
    assert rc == 2 and len(err.splitlines()) == 1
    assert "pip install -e '.[robust]'" in err


def test_region_nesterov_is_the_closed_form_radius(tmp_path, capsys):
    from stability.optimizers import modes

    out = tmp_path / "n.json"
    argv = "region --family nesterov --lr 0.25:2.75:4 --curvature 1 --beta 0.2:0.8:3"
    assert cli.main([*argv.split(), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    lr, beta = np.linspace(0.25, 2.75, 4)[:, None], np.linspace(0.2, 0.8, 3)
    expected = np.asarray(modes.nesterov_radius(lr, beta, xp=np), float)
    np.testing.assert_allclose(record["rho"], expected, rtol=1e-12)
    # stable iff 0 < lr h < 2 (1 + beta) / (1 + 2 beta)
    assert record["stable"] == (lr < 2 * (1 + beta) / (1 + 2 * beta)).tolist()


def test_edge_is_a_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["edge", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--task" in text and "--optimizer" in text
    rc, err = _status(["edge", "--task", "nope", "--optimizer", "gd"], capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and "--steps" in err
