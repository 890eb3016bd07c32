"""The jitted, restarted Lanczos of stability.lopt.edge_lanczos against the dense
Hessian and against stability.analyses.lanczos."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from stability.analyses import lanczos
from stability.lopt.edge_lanczos import top_hessian_eigenpair
from stability.operators import hessian_operator


def _loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return 0.5 * jnp.mean(jnp.sum((h @ params["w2"] - y) ** 2, axis=-1))


def _problem(seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    params = {
        "w1": jax.random.normal(k[0], (5, 8)),
        "b1": 0.1 * jax.random.normal(k[1], (8,)),
        "w2": jax.random.normal(k[2], (8, 3)) / 2,
    }
    batch = (jax.random.normal(k[3], (20, 5)), jax.random.normal(k[4], (20, 3)))
    return params, batch


def _dense_top(params, batch, d=None):
    flat, unravel = ravel_pytree(params)
    h = np.asarray(jax.hessian(lambda f: _loss(unravel(f), batch))(flat))
    if d is not None:
        s = 1 / np.sqrt(ravel_pytree(d)[0])
        h = s[:, None] * h * s[None, :]
    return np.linalg.eigvalsh(h)[-1], h


@pytest.mark.parametrize("preconditioned", [False, True])
def test_matches_the_dense_top_eigenvalue_with_a_true_residual(preconditioned):
    params, batch = _problem()
    d = None
    if preconditioned:
        d = jax.tree.map(lambda p: 0.5 + jnp.abs(p), params)
    top, h = _dense_top(params, batch, d)
    pairs = top_hessian_eigenpair(
        _loss, params, batch, preconditioner=d, tol=1e-8, max_iter=400, block=12
    )
    assert pairs.converged
    lam, x = pairs.eigenvalues[0], pairs.eigenvectors[:, 0]
    assert lam == pytest.approx(top, rel=1e-7)
    assert np.linalg.norm(h @ x - lam * x) <= 1e-6 * abs(lam)
    ref = lanczos(hessian_operator(_loss, params, batch, preconditioner=d), tol=1e-8)
    assert lam == pytest.approx(ref.eigenvalues[0], rel=1e-7)


def test_warm_start_needs_one_block_and_bad_input_is_named():
    params, batch = _problem()
    cold = top_hessian_eigenpair(_loss, params, batch, tol=1e-6, block=6)
    warm = top_hessian_eigenpair(
        _loss, params, batch, v0=cold.eigenvectors, tol=1e-6, block=6
    )
    assert warm.converged and warm.matvecs == 6 <= cold.matvecs
    capped = top_hessian_eigenpair(_loss, params, batch, tol=1e-14, max_iter=4, block=2)
    assert not capped.converged and capped.matvecs == 4
    for kw, name in (
        ({"v0": np.ones(67)}, "v0"),
        ({"v0": np.zeros(72)}, "v0"),
        ({"tol": 0.0}, "tol"),
        ({"block": 0}, "block"),
        ({"preconditioner": jax.tree.map(jnp.zeros_like, params)}, "preconditioner"),
    ):
        with pytest.raises(ValueError, match=name):
            top_hessian_eigenpair(_loss, params, batch, **kw)
