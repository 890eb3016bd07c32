"""``stability.figures``: each figure's record and the numbers it reports, and the
checks behind them (``stability.analyses.checks``).

The end-to-end run of every figure, the report and the command are in
``test_reproduce.py``.
"""

import numpy as np
import pytest

from stability.analyses import checks


def test_standard_scores_are_in_standard_errors_of_the_mean():
    losses = np.array([[1.0, 4.0], [3.0, 8.0], [2.0, 6.0], [2.0, 6.0]])
    se = np.array([np.sqrt(2 / 3), np.sqrt(8 / 3)]) / 2  # sample s.d. / sqrt(4)
    np.testing.assert_allclose(
        checks.standard_scores(losses, [1.0, 7.0]), [1 / se[0], 1 / se[1]]
    )


def test_first_spike_is_a_window_mean_100x_the_best_before_it():
    def windows(*means):
        return np.repeat(means, 50) + np.tile([-0.5, 0.5], 25 * len(means))

    means, spike = checks.first_spike(windows(10, 1, 2, 50, 500, 1))
    np.testing.assert_allclose(means, [10, 1, 2, 50, 500, 1])
    assert spike == 200  # window 4: 500 > 100 x 1
    assert checks.first_spike(windows(10, 1, 150))[1] == 100
    assert checks.first_spike(windows(1000, 1, 99, 5))[1] is None
    assert checks.first_spike(np.ones(120))[0].size == 2  # whole windows only


def test_first_step_at_or_after_the_start():
    at = np.array([50, 100, 150, 200, 250])
    assert checks.first_step(at, [1, 0, 0, 1, 1], start=100) == 200
    assert checks.first_step(at, [1, 1, 0, 0, 1], start=100) == 100
    assert checks.first_step(at, [1, 0, 0, 0, 0], start=100) is None


def test_disagreement_counts_cells_wrong_either_way():
    numeric = np.array([[True, True], [False, False], [True, False]])
    exact = np.array([[True, False], [True, False], [True, False]])
    assert checks.disagreement(numeric, exact) == (2, 6)
    assert checks.disagreement(exact, exact) == (0, 6)


def test_every_registered_figure_has_the_four_functions():
    from stability import figures

    for fid, spec in figures.FIGURES.items():
        assert spec.name.startswith(f"{fid}_") and spec.title
        mod = spec.load()
        for fn in ("compute", "draw", "numbers", "caption"):
            assert callable(getattr(mod, fn)), (fid, fn)


_MOVED = [  # (module, old name, new module, new name)
    (
        "stability.reproduce",
        "_disagreement",
        "stability.analyses.checks",
        "disagreement",
    ),
    (
        "stability.reproduce",
        "_standard_scores",
        "stability.analyses.checks",
        "standard_scores",
    ),
    ("stability.reproduce", "_first_spike", "stability.analyses.checks", "first_spike"),
    ("stability.reproduce", "_first_step", "stability.analyses.checks", "first_step"),
    ("stability.reproduce", "_fmt", "stability.figures", "fmt"),
    ("stability.reproduce", "NotAvailable", "stability.figures", "NotAvailable"),
    ("stability.reproduce", "Drawn", "stability.figures", "Drawn"),
    ("stability.reproduce", "FigureSpec", "stability.figures", "FigureSpec"),
    (
        "stability.reproduce",
        "RECORD_FIGURES",
        "stability.figures.records",
        "RECORD_FIGURES",
    ),
    ("stability.reproduce", "LOPT_RUNS", "stability.figures.records", "LOPT_RUNS"),
    (
        "stability.reproduce",
        "LOPT_META_ARGS",
        "stability.figures.records",
        "LOPT_META_ARGS",
    ),
    (
        "stability.reproduce",
        "LOPT_EVAL_ARGS",
        "stability.figures.records",
        "LOPT_EVAL_ARGS",
    ),
    (
        "stability.reproduce",
        "LOPT_EVAL_REST_ARGS",
        "stability.figures.records",
        "LOPT_EVAL_REST_ARGS",
    ),
    (
        "stability.reproduce",
        "ANATOMY_RUNS",
        "stability.figures.records",
        "ANATOMY_RUNS",
    ),
    (
        "stability.reproduce",
        "rerun_lopt_records",
        "stability.figures.records",
        "rerun_lopt_records",
    ),
    ("stability.reproduce", "_REST", "stability.figures.records", "REST"),
    (
        "stability.reproduce",
        "_with_optimizers",
        "stability.figures.records",
        "with_optimizers",
    ),
    ("stability.certified_figure", "MU", "stability.figures.fig10", "MU"),
    ("stability.certified_figure", "L", "stability.figures.fig10", "L"),
]


@pytest.mark.parametrize("module, old, new_module, new", _MOVED)
def test_moved_names_warn_and_still_work(module, old, new_module, new):
    import importlib

    with pytest.warns(DeprecationWarning, match=old):
        value = getattr(importlib.import_module(module), old)
    assert value is getattr(importlib.import_module(new_module), new)


def test_the_old_certified_figure_builder_warns():
    with pytest.warns(DeprecationWarning, match="fig10"):
        from stability.certified_figure import figure
    assert callable(figure)


def test_reproduce_keeps_the_command_and_the_runner_names():
    from stability import figures, reproduce

    for name in ("run", "main", "script_main", "add_parser", "DEFAULT_OUT"):
        assert hasattr(reproduce, name)
    for name in ("Quality", "FIGURES", "FigureResult", "resolve", "render"):
        assert getattr(reproduce, name) is getattr(figures, name)
    assert reproduce.format_report is figures.format_report
