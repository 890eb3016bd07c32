"""stability.plotting: what the drawn artists hold."""

import matplotlib

matplotlib.use("Agg")

import types  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from stability.plotting import PALETTE  # noqa: E402
from stability.plotting.curves import loss_band  # noqa: E402
from stability.plotting.regions import boundary, region  # noqa: E402
from stability.plotting.spectra import eigenvalues, radius_bars  # noqa: E402


def test_loss_band_is_the_mean_plus_minus_two_standard_errors():
    losses = np.array([[1.0, 2, 4], [3, 2, 8], [2, 5, 6], [2, 3, 6]])
    fig, ax = plt.subplots()
    try:
        loss_band(ax, losses, exact=[2.0, 3.0, 6.0])
        mean, line = losses.mean(0), ax.lines[0]
        np.testing.assert_allclose(line.get_ydata(), mean)
        se = losses.std(0, ddof=1) / np.sqrt(4)  # of the mean over 4 seeds
        (band,) = ax.collections
        vertices = band.get_paths()[0].vertices
        for x in range(3):
            ys = vertices[np.isclose(vertices[:, 0], x), 1]
            np.testing.assert_allclose(
                [ys.min(), ys.max()], mean[x] + np.array([-2, 2]) * se[x]
            )
    finally:
        plt.close(fig)


def _region_record():
    # rho on a (3 lr) x (2 beta) grid; rho = 1 exactly is unstable
    return types.SimpleNamespace(
        axes={"lr": np.array([0.1, 0.2, 0.3]), "beta": np.array([0.0, 0.5])},
        rho=np.array([[0.5, 1.0], [0.9, 1.2], [0.999, 0.0]]),
    )


def test_region_colours_one_minus_rho_and_greys_rho_at_least_one():
    record = _region_record()
    unstable = np.array([[False, True], [False, True], [False, False]])
    gap = np.array([[0.5, 0.0], [0.1, 0.0], [1e-3, 1.0]])  # 1 - rho where stable
    for x, y, flip in (("beta", "lr", False), ("lr", "beta", True)):
        fig, ax = plt.subplots()
        try:
            region(record, ax, x=x, y=y, colorbar=False)
            grey, colour = ax.collections
            want_unstable, want_gap = (unstable.T, gap.T) if flip else (unstable, gap)
            np.testing.assert_array_equal(
                ~np.ma.getmaskarray(grey.get_array()), want_unstable
            )
            values = colour.get_array()
            np.testing.assert_array_equal(np.ma.getmaskarray(values), want_unstable)
            np.testing.assert_allclose(values.filled(0.0), want_gap, atol=1e-12)
            assert ax.get_xlim() == (record.axes[x].min(), record.axes[x].max())
        finally:
            plt.close(fig)


def test_boundary_drops_points_non_finite_in_x_or_y():
    fig, ax = plt.subplots()
    try:
        boundary(ax, [0.0, 1.0, np.inf, 3.0], [1.0, 2.0, 3.0, np.nan])
        (line,) = ax.lines
        np.testing.assert_array_equal(line.get_xdata(), [0.0, 1.0])
        np.testing.assert_array_equal(line.get_ydata(), [1.0, 2.0])
    finally:
        plt.close(fig)


def test_radius_bars_mark_radii_at_or_above_one():
    fig, ax = plt.subplots()
    try:
        radius_bars(["a", "b", "c"], [0.5, 1.0, 1.2], ax)
        hatched = [p.get_hatch() == "///" for p in ax.patches]
        assert hatched == [False, True, True]
        red = to_rgba(PALETTE["vermillion"])
        assert [p.get_facecolor() == red for p in ax.patches] == hatched
    finally:
        plt.close(fig)


def test_eigenvalues_cross_only_points_strictly_outside_and_circle_max_modulus():
    fig, ax = plt.subplots()
    try:
        eigenvalues(np.array([1.0, 0.3, 1.2j]), ax)
        inside, outside = ax.collections
        np.testing.assert_allclose(inside.get_offsets(), [[1.0, 0.0], [0.3, 0.0]])
        np.testing.assert_allclose(outside.get_offsets(), [[0.0, 1.2]])
        unit, radius = ax.lines[:2]  # the unit circle, then |z| = rho, dashed
        np.testing.assert_allclose(np.hypot(*radius.get_data()), 1.2)
        np.testing.assert_allclose(ax.get_xlim(), (-1.26, 1.26))  # 1.05 rho
    finally:
        plt.close(fig)
