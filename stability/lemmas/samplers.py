"""Random instances for the claims: curvature spectra, Hessians in random bases,
matrices commuting with a Hessian, values in an interval. Every sampler draws from the
NumPy ``Generator`` it is given, so the same seed gives the same instance."""

import numpy as np

from stability._validation import check_flag, check_int, check_scalar
from stability.problems import random_rotation


def random_curvatures(rng, n, kappa, top=1.0, *, repeated=False):
    """``n`` log-uniform eigenvalues on ``[top/kappa, top]`` with both ends attained
    (when ``n >= 2``), descending; ``repeated`` draws fewer distinct values and repeats
    them (eigenspaces of dimension > 1)."""
    m = int(rng.integers(1, n + 1)) if repeated else n
    u = rng.uniform(size=m)
    if m >= 2:
        u[0], u[1] = 0.0, 1.0
    else:
        u[0] = 0.0
    values = top * np.exp(-u * np.log(kappa))
    if repeated:
        values = np.concatenate([values, rng.choice(values, n - m)])
    return np.sort(values)[::-1]


def sample_size(rng, n=None, kappa=None) -> tuple[int, float]:
    """A sampler's dimension and condition number: each given one checked (``n >= 1``,
    ``kappa >= 1``), each missing one drawn, ``n`` uniform on 1..8 then ``kappa``
    log-uniform on ``[1, 1e6]``."""
    n = int(rng.integers(1, 9)) if n is None else check_int("n", n, low=1)
    if kappa is None:
        return n, 10 ** rng.uniform(0, 6)
    return n, check_scalar("kappa", kappa, low=1.0)


def random_hessian(rng, n, kappa, top=1.0, *, repeated=False):
    """``(H, h, Q)`` with ``H = Q diag(h) Q^T``, ``h`` from :func:`random_curvatures`
    and ``Q`` Haar-orthogonal."""
    h = random_curvatures(rng, n, kappa, top, repeated=repeated)
    q = random_rotation(n, rng)
    H = (q * h) @ q.T
    return 0.5 * (H + H.T), h, q


def _well_conditioned(rng, m, max_cond=50.0):
    while True:
        v = np.eye(m) + 0.5 * rng.standard_normal((m, m))
        if np.linalg.cond(v) <= max_cond:
            return v


def commuting_matrix(rng, h, q, p):
    """A generally non-symmetric ``P`` commuting with ``H = Q diag(h) Q^T`` with
    eigenvalue ``p_i`` on direction ``i``: non-symmetric blocks on repeated ``h``."""
    n = h.size
    b = np.zeros((n, n))
    for value in np.unique(h):
        idx = np.flatnonzero(h == value)
        v = _well_conditioned(rng, idx.size)
        b[np.ix_(idx, idx)] = v @ np.diag(p[idx]) @ np.linalg.inv(v)
    return q @ b @ q.T


def draw_in_interval(rng, lo, hi, n, boundary):
    """``n`` values uniform on ``[lo, hi]``; when ``boundary``, about half of them
    (at least one) moved onto an end."""
    p = rng.uniform(lo, hi, n)
    if boundary:
        hit = rng.random(n) < 0.5
        hit[rng.integers(n)] = True
        p = np.where(hit, np.where(rng.random(n) < 0.5, lo, hi), p)
    return p


def sample_options(rng, n, kappa, kind, kinds, boundary):
    """``(n, kappa, kind, boundary)`` of a sampler: :func:`sample_size`, then ``kind``
    checked against ``kinds`` or drawn uniformly from them, then ``boundary`` checked
    or drawn true with probability 0.3."""
    n, kappa = sample_size(rng, n, kappa)
    kind = kinds[rng.integers(len(kinds))] if kind is None else kind
    if kind not in kinds:
        raise ValueError(f"kind: expected one of {kinds}, got {kind!r}")
    if boundary is None:
        return n, kappa, kind, bool(rng.random() < 0.3)
    return n, kappa, kind, check_flag("boundary", boundary)
