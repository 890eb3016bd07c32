"""stability.analyses.robust: worst case over curvature intervals (exact endpoint
argument, sampled for AggMo) and over the multiplicative uncertainty box."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stability.analyses import mode_radius, spectral_radius
from stability.analyses import robust as ra
from stability.lemmas import samplers
from stability.operators import nominal_closed_loop

DENSE = 20001


def _dense_max(family, h_min, h_max, precondition=False, betas=None, **params):
    grid = np.concatenate(
        [np.linspace(h_min, h_max, DENSE), np.geomspace(h_min, h_max, DENSE)]
    )
    r = np.asarray(
        mode_radius(
            family, precondition=precondition, betas=betas, curvature=grid, **params
        )
    )
    return float(r.max())


intervals = st.tuples(st.floats(-3, 2), st.floats(0, 4)).map(
    lambda t: (10 ** t[0], 10 ** (t[0] + t[1]))
)


@st.composite
def endpoint_cases(draw):
    family = draw(st.sampled_from(ra.ENDPOINT_FAMILIES))
    if family == "nominal":
        params = dict(alpha=draw(st.floats(0, 3)), p=draw(st.floats(-2, 3)))
        pre = draw(st.booleans())
    else:
        params = dict(lr=draw(st.floats(1e-3, 3)))
        pre = False
        if family != "gd":
            params["beta"] = draw(st.floats(-0.99, 0.99))
    return family, pre, params


@given(endpoint_cases(), intervals)
def test_endpoint_argument_is_exact(case, interval):
    family, pre, params = case
    h_min, h_max = interval
    w = ra.worst_case_curvature(family, h_min, h_max, precondition=pre, **params)
    assert w.exact and w.curvature in (h_min, h_max)
    dense = _dense_max(family, h_min, h_max, precondition=pre, **params)
    assert w.rho >= dense - 1e-12 * max(1.0, dense)
    ends = [
        float(mode_radius(family, precondition=pre, curvature=h, **params))
        for h in (h_min, h_max)
    ]
    assert w.rho == pytest.approx(max(ends), rel=1e-14)


@given(endpoint_cases())
def test_rho_is_quasi_convex_along_the_curvature(case):
    """No interior strict local maximum on a dense grid (the argument behind the
    endpoint rule)."""
    family, pre, params = case
    grid = np.geomspace(1e-3, 1e3, 4001)
    r = np.asarray(
        mode_radius(family, precondition=pre, curvature=grid, **params), dtype=float
    )
    # a quasi-convex sequence decreases, then increases
    k = int(np.argmin(r))
    assert np.all(np.diff(r[: k + 1]) <= 1e-12) and np.all(np.diff(r[k:]) >= -1e-12)


@pytest.mark.parametrize(
    "betas, lr, interval",
    [
        ((0.9, 0.99, 0.999), 1.0, (1e-3, 110.0)),
        ((0.9, 0.99, 0.999), 0.5, (0.1, 150.0)),
        ((0.5, 0.9, 0.99), 0.1, (1e-2, 50.0)),
        ((-0.5, 0.3), 1.0, (0.01, 3.0)),
        ((0.0, 0.95), 2.0, (0.001, 1.0)),
    ],
)
def test_aggmo_sampled_worst_case_against_dense_sampling(betas, lr, interval):
    w = ra.worst_case_curvature("aggmo", *interval, betas=betas, lr=lr)
    assert not w.exact and interval[0] <= w.curvature <= interval[1]
    dense = _dense_max("aggmo", *interval, betas=betas, lr=lr)
    assert w.rho >= dense - 1e-10
    at = float(mode_radius("aggmo", betas=betas, lr=lr, curvature=w.curvature))
    assert at == pytest.approx(w.rho, rel=1e-12)


def test_aggmo_worst_case_bounds_the_stability_edge():
    # the default betas' edge is x* ~ 103.169: an interval reaching past it is unstable
    inside = ra.worst_case_curvature("aggmo", 1.0, 103.0, lr=1.0)
    past = ra.worst_case_curvature("aggmo", 1.0, 103.4, lr=1.0)
    assert inside.stable and not past.stable


def test_worst_case_at_rho_one_is_not_stable():
    # gd with lr = 1 on [1, 2]: rho(2) = |1 - 2| = 1 exactly, the edge is not stable
    w = ra.worst_case_curvature("gd", 1.0, 2.0, lr=1.0)
    assert w.curvature == 2.0 and w.rho == 1.0
    assert not w.stable


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(family="sgd", h_min=0.1, h_max=1.0, lr=1.0), "family"),
        (dict(family="gd", h_min=0.0, h_max=1.0, lr=1.0), "h_min"),
        (dict(family="gd", h_min=2.0, h_max=1.0, lr=1.0), "h_max"),
        (dict(family="gd", h_min=0.1, h_max=np.inf, lr=1.0), "h_max"),
        (dict(family="gd", h_min=0.1, h_max=1.0, lr=np.nan), "lr"),
        (dict(family="gd", h_min=0.1, h_max=1.0, lr=1.0, curvature=1.0), "curvature"),
        (dict(family="gd", h_min=0.1, h_max=1.0), "missing"),
        (dict(family="heavy_ball", h_min=0.1, h_max=1.0, lr=1.0, beta=1.0), "beta"),
        (dict(family="aggmo", h_min=0.1, h_max=1.0, lr=1.0, num_samples=2), "num_s"),
        (dict(family="aggmo", h_min=0.1, h_max=1.0, lr=1.0, num_refine=-1), "num_r"),
        (dict(family="aggmo", h_min=0.1, h_max=1.0, lr=1.0, num_refine=2.5), "num_r"),
        (dict(family="aggmo", h_min=0.1, h_max=1.0, lr=1.0, betas=0.9), "betas"),
        (dict(family="gd", h_min=0.1, h_max=1.0, lr=-0.1), "lr: must be >= 0"),
    ],
)
def test_curvature_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ra.worst_case_curvature(**kwargs)


# ----- multiplicative uncertainty ----------------------------------------------------


def _system(rng, n, symmetric):
    H, _, _ = samplers.random_hessian(rng, n, 10 ** rng.uniform(0, 3))
    P = rng.standard_normal((n, n))
    if symmetric:
        P = 0.5 * (P + P.T)
    return H, P, float(rng.uniform(0, 2)), float(10 ** rng.uniform(-1, 1))


@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_multiplicative_radius_matches_the_closed_loop(seed, n):
    rng = np.random.default_rng(seed)
    H, P, alpha, d_max = _system(rng, n, symmetric=False)
    d = rng.uniform(0, d_max, (5, n))
    got = ra.multiplicative_radius(H, P, alpha, d)
    ref = [
        float(
            spectral_radius(nominal_closed_loop(H, np.diag(di) @ P, alpha).transition)
        )
        for di in d
    ]
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", range(12))
def test_worst_case_box_against_dense_grid(seed):
    """2x2: the search is at least the maximum over a 201x201 grid of the box."""
    rng = np.random.default_rng(seed)
    H, P, alpha, d_max = _system(rng, 2, symmetric=seed % 2 == 0)
    w = ra.worst_case_multiplicative(H, P, alpha, d_max, seed=seed)
    g = np.linspace(0, d_max, 201)
    d = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dense = float(ra.multiplicative_radius(H, P, alpha, d).max())
    assert w.rho >= dense - 1e-12
    assert w.rho == pytest.approx(
        float(ra.multiplicative_radius(H, P, alpha, w.delta[None])[0]), rel=1e-12
    )
    assert np.all((w.delta >= 0) & (w.delta <= d_max))
    assert w.all_vertices and w.vertex_rho <= w.rho


@pytest.mark.parametrize("seed", range(4))
def test_worst_case_box_covers_vertices_and_is_deterministic(seed):
    rng = np.random.default_rng(seed)
    n = 4
    H, P, alpha, d_max = _system(rng, n, symmetric=True)
    w = ra.worst_case_multiplicative(H, P, alpha, d_max, seed=seed)
    verts = d_max * np.array(list(itertools.product((0.0, 1.0), repeat=n)))
    assert w.vertex_rho == pytest.approx(
        float(ra.multiplicative_radius(H, P, alpha, verts).max()), rel=1e-14
    )
    again = ra.worst_case_multiplicative(H, P, alpha, d_max, seed=seed)
    np.testing.assert_array_equal(w.delta, again.delta)
    assert w.rho == again.rho


def test_worst_case_box_samples_vertices_beyond_the_cap():
    rng = np.random.default_rng(0)
    H, P, alpha, d_max = _system(rng, 6, symmetric=True)
    w = ra.worst_case_multiplicative(H, P, alpha, d_max, max_vertices=16)
    assert not w.all_vertices and np.isfinite(w.rho)


def test_worst_case_box_with_a_lower_end():
    H = np.diag([1.0, 4.0])
    w = ra.worst_case_multiplicative(H, np.eye(2), 0.1, 0.5, d_min=0.2)
    assert np.all(w.delta >= 0.2) and w.rho == pytest.approx(1.4)


def test_worst_case_box_ascent_stays_above_the_lower_end():
    # rho(d) = |1 - d| on [0.2, 0.5] grows as d shrinks: the worst case is the lower
    # end, rho = 0.8, and the ascent must not step below it
    w = ra.worst_case_multiplicative([[1.0]], [[1.0]], 0.0, 0.5, d_min=0.2)
    assert 0.2 <= w.delta[0] <= 0.5
    assert w.delta[0] == 0.2 and w.rho == pytest.approx(0.8, rel=1e-15)


def test_worst_case_box_ascent_finds_an_edge_maximum():
    """num_samples=0 leaves the vertices as the only candidates; on this system the
    worst Delta lies inside an edge of the box, so only the pattern ascent finds it."""
    n = 5
    H, P, alpha, d_max = _system(np.random.default_rng(1388), n, symmetric=False)
    w = ra.worst_case_multiplicative(H, P, alpha, d_max, num_samples=0)

    def rho(d):  # numpy, independent of the module
        k = alpha * np.eye(n) + np.diag(d) @ P
        return float(np.max(np.abs(np.linalg.eigvals(np.eye(n) - k @ H))))

    verts = d_max * np.array(list(itertools.product((0.0, 1.0), repeat=n)))
    worst_vertex = max(rho(v) for v in verts)
    assert w.vertex_rho == pytest.approx(worst_vertex, rel=1e-12)
    assert w.rho == pytest.approx(rho(w.delta), rel=1e-12)
    assert w.rho > 1.01 * worst_vertex
    # one coordinate strictly inside, and the search is the maximum along that edge
    inner = np.flatnonzero((w.delta > 0) & (w.delta < d_max))
    assert inner.size == 1
    line = []
    for t in np.linspace(0, d_max, 2001):
        d = w.delta.copy()
        d[inner[0]] = t
        line.append(rho(d))
    assert w.rho >= max(line) - 1e-12


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([[1.0, 0.1], [0.0, 1.0]], np.eye(2), 0.1, 1.0), {}, "hessian: must be sym"),
        ((np.eye(2), np.eye(3), 0.1, 1.0), {}, "P_tilde: expected shape"),
        ((np.eye(2), np.eye(2), 0.1, 0.0), {}, "d_max: must be >"),
        ((np.eye(2), np.eye(2), 0.1, -2.0), {}, "d_max: must be >"),
        ((np.eye(2), np.eye(2), -0.1, 1.0), {}, "alpha"),
        ((np.eye(2), [[np.nan, 0], [0, 1]], 0.1, 1.0), {}, "P_tilde: contains"),
        ((np.eye(2), np.eye(2), 0.1, np.inf), {}, "d_max"),
        ((np.eye(2), np.eye(2), 0.1, 1.0), dict(d_min=2.0), "d_min"),
        ((np.eye(2), np.eye(2), 0.1, 1.0), dict(num_samples=-1), "num_samples"),
    ],
)
def test_multiplicative_bad_inputs(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ra.worst_case_multiplicative(*args, **kwargs)


def test_multiplicative_radius_bad_d():
    with pytest.raises(ValueError, match="d: expected shape"):
        ra.multiplicative_radius(np.eye(2), np.eye(2), 0.1, np.ones(3))
    with pytest.raises(ValueError, match="d: contains"):
        ra.multiplicative_radius(np.eye(2), np.eye(2), 0.1, [np.nan, 1.0])
