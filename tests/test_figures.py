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


@pytest.mark.parametrize(
    "old, new",
    [
        ("_disagreement", checks.disagreement),
        ("_standard_scores", checks.standard_scores),
        ("_first_spike", checks.first_spike),
        ("_first_step", checks.first_step),
    ],
)
def test_moved_reproduce_names_warn_and_still_work(old, new):
    from stability import reproduce

    with pytest.warns(DeprecationWarning, match=old):
        assert getattr(reproduce, old) is new
