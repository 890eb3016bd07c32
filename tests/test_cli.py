import json
import subprocess
import sys

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
