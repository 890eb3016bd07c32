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
