r"""A lower bound from the other side of a certified rate: one-dimensional
piecewise-quadratic functions of :math:`F(\mu, L)` on which a linear loop does not
converge.
"""

from typing import NamedTuple

import numpy as np
import scipy.linalg

from stability._validation import check_int
from stability.analyses.lti import _check_class, _resolve


class Counterexample(NamedTuple):
    """The search's best one-dimensional function of :math:`F(\\mu, L)` for a loop.

    The function is piecewise quadratic with its minimiser at 0: its gradient is
    continuous and piecewise linear, ``g(0) = 0``, with slope ``slopes[i]`` between
    ``breakpoints[i - 1]`` and ``breakpoints[i]`` (``-inf`` and ``inf`` at the
    ends); every slope lies in ``[mu, L]``, so the function is in the class.

    Attributes:
      found: the trajectory does not converge: after ``steps`` steps it is still
        at least ``1e-3`` of its starting distance from the minimiser (a rate below
        1 would have shrunk it by ``rate**steps``) and it repeats with a period.
      breakpoints, slopes: the function, as above.
      y0: the starting point (the optimizer's state starts at the fixed point
        whose output is ``y0``: zero momentum).
      trajectory: the points ``y_k`` where the gradient was taken, ``steps + 1``.
      period: the period of the trajectory's second half (0 if none up to 64, or
        up to a third of that half, was found).
      distance_ratio: ``|y_steps| / |y_0|``.
      num_trials: how many (function, start) pairs were simulated.
    """

    found: bool
    breakpoints: np.ndarray
    slopes: np.ndarray
    y0: float
    trajectory: np.ndarray
    period: int
    distance_ratio: float
    num_trials: int

    def gradient(self, y):
        """The function's gradient at ``y`` (any shape)."""
        return _pw_gradient(np.asarray(y, float), self.breakpoints, self.slopes)

    def value(self, y):
        """The function at ``y``, with ``f(0) = 0``."""
        y = np.asarray(y, float)
        out = np.empty(y.shape)
        for idx in np.ndindex(y.shape):
            t = float(y[idx])
            # f(t) = int_0^t g: trapezoids between the knots strictly inside (0, t)
            bp = self.breakpoints
            knots = np.sort(bp[bp * (bp - t) < 0])
            pts = np.concatenate([[0.0], knots if t >= 0 else knots[::-1], [t]])
            g = self.gradient(pts)
            out[idx] = np.sum(0.5 * (g[1:] + g[:-1]) * np.diff(pts))
        return out


def _pw_gradient(y, breakpoints, slopes):
    """Gradient of the piecewise quadratic, batched: ``y`` shape ``(T,)`` with
    ``breakpoints`` ``(T, K-1)`` and ``slopes`` ``(T, K)``, or unbatched."""
    bp = np.asarray(breakpoints, float)
    sl = np.asarray(slopes, float)
    if bp.ndim == 1:
        bp = np.broadcast_to(bp, y.shape + bp.shape)
        sl = np.broadcast_to(sl, y.shape + sl.shape)
    lo = np.concatenate([np.full(bp.shape[:-1] + (1,), -np.inf), bp], axis=-1)
    hi = np.concatenate([bp, np.full(bp.shape[:-1] + (1,), np.inf)], axis=-1)
    t = y[..., None]
    # signed length of [0, y] inside each piece
    inside = np.clip(t, lo, hi) - np.clip(0.0, lo, hi)
    return np.sum(sl * inside, axis=-1)


def counterexample_search(
    family_or_system,
    *,
    mu,
    L,
    num_trials: int = 4096,
    num_pieces: int = 3,
    steps: int = 600,
    seed: int = 0,
    **hyperparameters,
) -> Counterexample:
    r"""Search one-dimensional piecewise-quadratic functions of :math:`F(\mu, L)`
    for a trajectory of the loop that does not converge.

    Each trial draws ``num_pieces`` slopes from ``{mu, L}`` (the extremes, where
    counterexamples live), breakpoints uniform on ``[-1, 4]`` and a start uniform on
    ``[-6, 6]``; all trials are simulated at once for ``steps`` steps. A found
    trajectory shows that no rate below 1 holds on the class, whatever the
    certificate: the converse of :func:`certified_rate`.

    Args:
      family_or_system, mu, L, **hyperparameters: as in :func:`certified_rate`
        (a triple must have one gradient channel).
      num_trials, num_pieces, steps, seed: the search's size and its seed.

    Returns:
      a :class:`Counterexample` (the trial farthest from the minimiser at the end).
    """
    mu, L = _check_class(mu, L)
    num_trials = check_int("num_trials", num_trials, low=1)
    num_pieces = check_int("num_pieces", num_pieces, low=1)
    steps = check_int("steps", steps, low=6)
    seed = check_int("seed", seed, low=0)
    _, _, (A, B, C) = _resolve(family_or_system, hyperparameters)
    if B.shape[1] != 1:
        raise ValueError(f"B: the search is one-dimensional, got {B.shape[1]} inputs")
    rng = np.random.default_rng(seed)
    slopes = np.where(rng.random((num_trials, num_pieces)) < 0.5, mu, L)
    bp = np.sort(rng.uniform(-1.0, 4.0, (num_trials, num_pieces - 1)), axis=-1)
    y0 = rng.uniform(-6.0, 6.0, num_trials)
    # start at the fixed point whose output is y0 (zero momentum for the families)
    kernel = scipy.linalg.null_space(np.eye(A.shape[0]) - A, rcond=1e-10)
    start = kernel @ np.linalg.lstsq(C @ kernel, np.ones(1), rcond=None)[0]
    xi = y0[:, None] * start[None, :]
    ys = np.empty((steps + 1, num_trials))
    for k in range(steps + 1):
        y = xi @ C[0]
        ys[k] = y
        xi = xi @ A.T + _pw_gradient(y, bp, slopes)[:, None] * B[:, 0][None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(ys[-1]) / np.abs(ys[0])
    ratio = np.where(np.isfinite(ratio), ratio, -1.0)
    best = int(np.argmax(ratio))
    traj = ys[:, best]
    tail = traj[traj.size // 2 :]  # the second half, where a cycle has settled
    scale = max(float(np.max(np.abs(tail))), 1e-300)
    period = 0
    for p in range(1, min(64, tail.size // 3) + 1):
        if np.max(np.abs(tail[p:] - tail[:-p])) <= 1e-9 * scale:
            period = p
            break
    found = bool(ratio[best] >= 1e-3 and period > 0)
    return Counterexample(
        found,
        bp[best],
        slopes[best],
        float(y0[best]),
        traj,
        period,
        float(ratio[best]),
        num_trials,
    )
