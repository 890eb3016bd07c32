import json
import subprocess
import sys

import numpy as np
import pytest

from stability import cli


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

    assert cli.REGION_FAMILIES == FAMILY_ARGS


def test_region_help_explains_every_flag_and_its_families(capsys):
    with pytest.raises(SystemExit):
        cli.main(["region", "--help"])
    text = capsys.readouterr().out
    parser = cli._parser(("region",))._subparsers._group_actions[0].choices["region"]
    for action in parser._actions:
        assert action.help, action.option_strings
    for family, flags in cli.REGION_FAMILIES.items():
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
