"""stability.plotting: what the drawn artists hold."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stability.plotting.curves import loss_band  # noqa: E402


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
