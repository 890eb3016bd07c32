"""The notebooks (jupytext percent scripts in ``notebooks/``) run end to end in quick
mode, and each paired ``.ipynb`` holds the same cells as its script."""

import os
import pathlib
import subprocess
import sys

import pytest

NOTEBOOKS = sorted(
    (pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.py")
)


def test_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names == [
        "01_stability_regions",
        "02_lemmas",
        "03_star_dynamics",
        "04_track_your_network",
    ]


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(script, tmp_path):
    env = dict(os.environ, STABILITY_QUICK="1", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_pair_in_sync(script):
    jupytext = pytest.importorskip("jupytext")
    paired = script.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} missing: run jupytext --sync {script}"

    def cells(nb):
        return [(c.cell_type, c.source.strip()) for c in nb.cells]

    assert cells(jupytext.read(paired)) == cells(jupytext.read(script))
