"""Stability on real networks: operators on a loss, eigen-solvers, the tracker and the
``stability edge`` command (issue 27). Tiny networks, float64 where it checks maths."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from stability.analyses import arnoldi, lanczos, mode_radius
from stability.lopt import init_theta, star, zero_output_layer
from stability.lopt.edge import EDGE_OPTIMIZERS, edge_optimizer, track
from stability.operators import (
    diagonal_preconditioner,
    hessian_operator,
    hvp,
    step_jacobian,
    threshold,
    training_step,
)


def _mlp_loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    out = h @ params["w2"]
    return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))


def _problem(seed=0, dtype=jnp.float64):
    k = jax.random.split(jax.random.key(seed), 5)
    params = {
        "w1": jax.random.normal(k[0], (3, 4), dtype),
        "b1": 0.1 * jax.random.normal(k[1], (4,), dtype),
        "w2": jax.random.normal(k[2], (4, 2), dtype) / 2,
    }
    batch = (
        jax.random.normal(k[3], (6, 3), dtype),
        jax.random.normal(k[4], (6, 2), dtype),
    )
    return params, batch


def _dense(op):
    return op.matmat(np.eye(op.shape[0]))


def _dense_hessian(params, batch):
    flat, unravel = ravel_pytree(params)
    return np.asarray(
        jax.jit(jax.hessian(lambda f: _mlp_loss(unravel(f), batch)))(flat)
    )


# -- operators ------------------------------------------------------------------------


def test_hvp_matches_dense_hessian():
    params, batch = _problem()
    h = _dense_hessian(params, batch)
    np.testing.assert_allclose(
        _dense(hessian_operator(_mlp_loss, params, batch)), h, rtol=1e-10, atol=1e-12
    )
    v = jax.tree.map(jnp.ones_like, params)
    got = ravel_pytree(hvp(_mlp_loss, params, batch, v))[0]
    np.testing.assert_allclose(got, h @ np.ones(h.shape[0]), rtol=1e-10, atol=1e-12)


def _adam_state(params, batch, steps=3, **kw):
    opt = optax.adam(0.01, **kw)
    state = opt.init(params)
    update = jax.jit(opt.update)
    for _ in range(steps):
        grads = jax.grad(_mlp_loss)(params, batch)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state, updates


def test_adam_preconditioner_is_the_denominator_optax_divides_by():
    params, batch = _problem()
    _, state, updates = _adam_state(params, batch, b1=0.9, b2=0.99, eps=1e-3)
    d = diagonal_preconditioner(state, "adam", b2=0.99, eps=1e-3)
    mu, t = state[0].mu, int(state[0].count)
    expected = jax.tree.map(lambda m, d: -0.01 * m / (1 - 0.9**t) / d, mu, d)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_star_preconditioner_is_its_output_preconditioner():
    params, batch = _problem()
    opt = star(zero_output_layer(init_theta(jax.random.key(1))), nominal_stepsize=0.1)
    state = opt.init(params)
    grads = jax.grad(_mlp_loss)(params, batch)
    updates, state = jax.jit(opt.update)(grads, state, params)
    d = diagonal_preconditioner(state)  # auto finds STAR's second moment
    # the untrained STAR is its nominal term: -alpha mean_i(m_i) / D
    mean_m = jax.tree.map(lambda *m: sum(m) / 3, *state.momentum)
    expected = jax.tree.map(lambda m, d: -0.1 * m / d, mean_m, d)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_preconditioned_hessian_matches_dense():
    params, batch = _problem()
    params, state, _ = _adam_state(params, batch)
    h = _dense_hessian(params, batch)
    d = ravel_pytree(diagonal_preconditioner(state, "adam"))[0]
    s = np.diag(1 / np.sqrt(np.asarray(d)))
    op = hessian_operator(
        _mlp_loss, params, batch, preconditioner=diagonal_preconditioner(state)
    )
    np.testing.assert_allclose(_dense(op), s @ h @ s, rtol=1e-9, atol=1e-9)


def _own_flat_step(loss, opt, params, state, batch, fields):
    """An independent flattening of one step over params and ``fields`` of the
    state's first element (the test's own bookkeeping, not the library's)."""
    inner = (
        state[0]
        if isinstance(state, tuple) and not hasattr(state, "_fields")
        else state
    )
    parts = (params, tuple(getattr(inner, f) for f in fields))
    z, unravel = ravel_pytree(parts)

    def step(z):
        p, values = unravel(z)
        new_inner = inner._replace(**dict(zip(fields, values, strict=True)))
        s = new_inner if inner is state else (new_inner, *state[1:])
        updates, s2 = opt.update(jax.grad(loss)(p, batch), s, p)
        s2_inner = s2 if inner is state else s2[0]
        out = (
            optax.apply_updates(p, updates),
            tuple(getattr(s2_inner, f) for f in fields),
        )
        return ravel_pytree(out)[0]

    return step, z


@pytest.mark.parametrize("kind", ["adam", "star"])
def test_step_jacobian_matches_jacfwd(kind):
    params, batch = _problem()
    if kind == "adam":
        opt = optax.adam(0.05)
        params, state, _ = _adam_state(params, batch)
        fields = ("mu", "nu")
    else:
        theta = init_theta(jax.random.key(2))  # random output layer: the MLP acts
        opt = star(theta, nominal_stepsize=0.05)
        # a state away from zero without compiling an update: random accumulators
        # (second moments positive), the count past the first step
        leaves, treedef = jax.tree.flatten(opt.init(params))
        keys = jax.random.split(jax.random.key(3), len(leaves))
        state = treedef.unflatten(
            [
                x + 5
                if x.dtype == jnp.int32
                else jnp.abs(jax.random.normal(k, x.shape))
                for k, x in zip(keys, leaves, strict=True)
            ]
        )
        state = state._replace(
            momentum=jax.tree.map(lambda m: m - 0.5, state.momentum)  # signed momenta
        )
        fields = ("momentum", "second_moment", "row", "col", "full")
    jac, z = step_jacobian(_mlp_loss, opt, params, state, batch)
    step, z_own = _own_flat_step(_mlp_loss, opt, params, state, batch, fields)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(z_own))
    dense = np.asarray(jax.jit(jax.jacfwd(step))(z_own))
    assert jac.shape == dense.shape
    np.testing.assert_allclose(_dense(jac), dense, rtol=1e-8, atol=1e-10)
    # the library's step is the real step
    lib_step, _ = training_step(_mlp_loss, opt, params, state, batch)
    np.testing.assert_allclose(jax.jit(lib_step)(z), jax.jit(step)(z_own), rtol=1e-12)


# -- eigen-solvers --------------------------------------------------------------------


def test_lanczos_matches_eigh_with_true_residuals_and_warm_start():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((80, 80)))
    lam = np.concatenate([[10.0, 9.0, 8.5], rng.uniform(-3, 5, 77)])
    a = (q * lam) @ q.T
    pairs = lanczos(a, k=3, tol=1e-9)
    assert pairs.converged
    np.testing.assert_allclose(
        pairs.eigenvalues, np.linalg.eigvalsh(a)[::-1][:3], rtol=1e-10
    )
    true = np.linalg.norm(
        a @ pairs.eigenvectors - pairs.eigenvectors * pairs.eigenvalues, axis=0
    )
    np.testing.assert_allclose(pairs.residuals, true, rtol=1e-3, atol=1e-12)
    assert np.all(pairs.relative_residuals <= 1e-9)
    # a warm start from a slightly moved operator's vectors converges faster
    b = a + 1e-4 * np.diag(rng.standard_normal(80))
    cold = lanczos(b, k=1, tol=1e-6)
    warm = lanczos(b, k=1, tol=1e-6, v0=pairs.eigenvectors[:, :1])
    assert warm.converged and cold.converged
    assert warm.matvecs < cold.matvecs
    np.testing.assert_allclose(
        warm.eigenvalues[0], np.linalg.eigvalsh(b)[-1], rtol=1e-9
    )


def test_lanczos_works_in_a_float32_operators_precision():
    import scipy.sparse.linalg

    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((300, 300)))
    lam = np.concatenate([[10.0, 9.0], rng.uniform(-3, 8, 298)])
    a = (q * lam) @ q.T
    op = scipy.sparse.linalg.aslinearoperator(a.astype(np.float32))
    pairs = lanczos(op, k=2, tol=1e-4)
    assert pairs.converged and pairs.eigenvectors.dtype == np.float32
    np.testing.assert_allclose(pairs.eigenvalues, [10.0, 9.0], rtol=1e-5)
    # the residual read off the tridiagonal matrix is the true one, to float32
    # rounding, and within the tolerance
    x = pairs.eigenvectors.astype(float)
    true = np.linalg.norm(a @ x - x * pairs.eigenvalues, axis=0)
    np.testing.assert_allclose(pairs.residuals, true, rtol=0.05, atol=1e-5)
    assert np.all(true <= 1e-4 * pairs.eigenvalues + 1e-5)
    # the Hessian of float32 parameters is a float32 operator, of float64 ones float64
    params, batch = _problem()
    assert hessian_operator(_mlp_loss, params, batch).dtype == np.float64
    params32, batch32 = _problem(dtype=jnp.float32)
    assert hessian_operator(_mlp_loss, params32, batch32).dtype == np.float32


def test_lanczos_keeps_its_vectors_semi_orthogonal_on_a_long_run():
    # the top eigenvalue converges in a few steps, the next two need over a
    # hundred: without reorthogonalisation the top one comes back as ghost copies
    # (10, 10, 10); kept semi-orthogonal, the three are right and their vectors
    # orthonormal to sqrt(eps)
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((500, 500)))
    lam = np.concatenate([[10.0], np.linspace(0.0, 1.0, 499)])
    a = (q * lam) @ q.T
    pairs = lanczos(a, k=3, tol=1e-10, max_iter=400)
    assert pairs.converged and pairs.matvecs > 100
    np.testing.assert_allclose(
        pairs.eigenvalues, [10.0, 1.0, 1.0 - 1 / 498], rtol=1e-12
    )
    gram = pairs.eigenvectors.T @ pairs.eigenvectors
    np.testing.assert_allclose(gram, np.eye(3), atol=np.sqrt(np.finfo(float).eps))


def test_lanczos_stops_at_max_iter_unconverged():
    a = np.diag(np.linspace(1.0, 2.0, 200))
    pairs = lanczos(a, tol=1e-12, max_iter=3)
    assert pairs.matvecs == 3 and not pairs.converged


@pytest.mark.parametrize("n", [30, 120])  # dense path and ARPACK
def test_arnoldi_matches_eig_with_residuals(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    pairs = arnoldi(a, k=4)
    ref = np.linalg.eigvals(a)
    ref = ref[np.argsort(-np.abs(ref))][:4]
    np.testing.assert_allclose(np.abs(pairs.eigenvalues), np.abs(ref), rtol=1e-8)
    true = np.linalg.norm(
        a @ pairs.eigenvectors - pairs.eigenvectors * pairs.eigenvalues, axis=0
    )
    np.testing.assert_allclose(pairs.residuals, true, rtol=1e-6, atol=1e-13)
    assert pairs.converged and np.all(pairs.residuals < 1e-6)


# -- thresholds -----------------------------------------------------------------------


def test_thresholds_known_formulas_and_the_modes_boundary():
    assert threshold("gd", 0.1) == pytest.approx(20.0)
    assert threshold("heavy_ball", 0.1, beta=0.9) == pytest.approx(38.0)
    assert threshold("adam", 1e-3, beta=0.9) == pytest.approx(38_000.0)
    assert threshold("ema_momentum", 0.5, beta=0.5) == pytest.approx(12.0)
    betas = (0.9, 0.99, 0.999)
    x_star = threshold("aggmo", 1.0, betas=betas)
    assert x_star == pytest.approx(103.169, abs=1e-3)
    for family, kw in [
        ("gd", {}),
        ("heavy_ball", {"beta": 0.7}),
        ("ema_momentum", {"beta": 0.9}),
        ("aggmo", {}),
    ]:
        edge = threshold(family, 0.2, **kw) if family != "aggmo" else x_star / 0.2
        kw = {"betas": betas} if family == "aggmo" else kw
        inside = float(mode_radius(family, lr=0.2, curvature=edge * (1 - 1e-6), **kw))
        outside = float(mode_radius(family, lr=0.2, curvature=edge * (1 + 1e-6), **kw))
        assert inside < 1 < outside, family


def test_star_threshold_uses_the_learned_decays():
    theta = zero_output_layer(init_theta(jax.random.key(0)))
    theta["momentum_decays"] = jnp.array([0.02, -0.05, 0.01], jnp.float32)
    setup = edge_optimizer("star", lr=0.01, theta=theta)
    one_minus = 1 - np.float32([0.9, 0.99, 0.999])
    betas = 1 - one_minus * np.exp(10 * np.float32([0.02, -0.05, 0.01]))
    assert setup.threshold == pytest.approx(
        threshold("aggmo", 0.01, betas=betas), rel=1e-6
    )
    assert setup.threshold != pytest.approx(threshold("aggmo", 0.01), rel=1e-3)
    nominal = edge_optimizer("nominal", lr=0.01)
    assert nominal.threshold == pytest.approx(threshold("aggmo", 0.01), rel=1e-6)


# -- the tracker ----------------------------------------------------------------------


def _quadratic(params, batch):
    return 0.5 * jnp.sum(batch * params**2)


def test_track_measures_the_sharpness_and_threshold():
    curv = jnp.array([1.0, 3.0, 7.0])
    run = track(
        _quadratic,
        jnp.ones(3),
        optax.sgd(0.1),
        curv,
        steps=10,
        every=5,
        threshold=threshold("gd", 0.1),
        step_radius=True,
    )
    assert [c.step for c in run.checkpoints] == [0, 5, 10]
    for c in run.checkpoints:
        assert c.sharpness == pytest.approx(7.0, rel=1e-6)
        assert c.threshold == pytest.approx(20.0)
        assert c.step_radius == pytest.approx(0.9, rel=1e-8)  # max |1 - 0.1 h|
        assert c.preconditioned_sharpness is None and not c.diverged


def test_track_adam_preconditioned_sharpness():
    params, batch = _problem()
    run = track(
        _mlp_loss,
        params,
        optax.adam(1e-3),
        batch,
        steps=4,
        every=2,
        preconditioner="adam",
        threshold=threshold("adam", 1e-3, beta=0.9),
    )
    assert run.checkpoints[0].preconditioned_sharpness is None
    last = run.checkpoints[-1]
    assert last.preconditioned_sharpness > last.sharpness > 0
    assert run.info["quantity"] == "preconditioned_sharpness"


def test_track_stops_cleanly_on_divergence():
    curv = jnp.array([1.0, 30.0])
    run = track(_quadratic, jnp.ones(2), optax.sgd(0.1), curv, steps=10_000, every=3)
    assert run.checkpoints[-1].diverged
    assert not any(c.diverged for c in run.checkpoints[:-1])
    assert run.checkpoints[0].step == 0 and run.checkpoints[
        0
    ].sharpness == pytest.approx(30)
    assert run.checkpoints[-1].step < 10_000  # stopped early
    # a loss that blows up to inf within a chunk is recorded at that step
    run = track(_quadratic, jnp.ones(2), optax.sgd(0.1), curv, steps=10_000, every=5000)
    last = run.checkpoints[-1]
    assert last.diverged and last.sharpness is None and 0 < last.step < 5000
    assert not np.isfinite(last.loss)


# -- bad input ------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    params, batch = _problem()
    with pytest.raises(ValueError, match="^loss_fn: must return a scalar"):
        hessian_operator(lambda p, b: p["w1"], params, batch)
    with pytest.raises(ValueError, match="^batch:"):
        hessian_operator(_mlp_loss, params, (jnp.ones((6, 5)), batch[1]))
    with pytest.raises(ValueError, match="^state: holds no Adam"):
        diagonal_preconditioner(optax.sgd(0.1).init(params), "adam")
    with pytest.raises(ValueError, match="^state: Adam has taken no step"):
        diagonal_preconditioner(optax.adam(0.1).init(params), "adam")
    with pytest.raises(ValueError, match="^state:"):
        track(
            _mlp_loss,
            params,
            optax.sgd(0.1),
            batch,
            steps=2,
            every=1,
            preconditioner="adam",
        )
    root_loss = lambda p, b: jnp.sum(b * jnp.sqrt(p))  # noqa: E731
    op = hessian_operator(root_loss, jnp.array([1.0, 0.0]), jnp.ones(2))
    with pytest.raises(ValueError, match="^params: the Hessian-vector product"):
        op.matvec(np.ones(2))
    with pytest.raises(ValueError, match="^preconditioner:"):
        hessian_operator(_mlp_loss, params, batch, preconditioner=jnp.ones(3))
    with pytest.raises(ValueError, match="^every:"):
        track(_mlp_loss, params, optax.sgd(0.1), batch, steps=2, every=0)
    with pytest.raises(ValueError, match="^beta:"):
        threshold("adam", 0.1)
    with pytest.raises(ValueError, match="^beta:"):
        edge_optimizer("gd", beta=0.5)
    with pytest.raises(ValueError, match="^optimizer:"):
        edge_optimizer("sgd")


# -- the command ----------------------------------------------------------------------


def _main(argv):
    from stability.cli import ArgumentParser
    from stability.cli import edge as _cli_edge

    parser = ArgumentParser(prog="stability")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=ArgumentParser
    )
    _cli_edge.add_parser(sub)
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_writes_jsonl_and_png(tmp_path, capsys):
    assert set(EDGE_OPTIMIZERS) == {"gd", "heavy_ball", "adam", "nominal", "star"}
    out = tmp_path / "run"
    argv = [
        "edge",
        "--task",
        "digits_mlp",
        "--optimizer",
        "adam",
        "--loss",
        "mse",
        "--steps",
        "4",
        "--every",
        "2",
        "--batch",
        "16",
        "--out",
        str(out),
    ]
    assert _main(argv) == 0
    lines = [json.loads(x) for x in (out / "edge.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 2, 4]
    for field in (
        "loss",
        "sharpness",
        "preconditioned_sharpness",
        "threshold",
        "step_radius",
        "diverged",
    ):
        assert all(field in r for r in lines)
    assert lines[0]["preconditioned_sharpness"] is None
    assert lines[-1]["preconditioned_sharpness"] > 0
    assert lines[-1]["threshold"] == pytest.approx(38 / 1e-3)
    assert lines[-1]["step_radius"] is None
    assert (out / "edge.png").stat().st_size > 0


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--optimizer", "gd", "--beta", "0.5"], "--beta"),
        (["--optimizer", "gd", "--theta", "x.npz"], "--theta"),
        (["--optimizer", "star", "--theta", "/nonexistent.npz"], "--theta"),
        (["--optimizer", "gd", "--lr", "-1"], "--lr"),
        (["--optimizer", "adam", "--beta", "1.5"], "--beta"),
        (["--optimizer", "gd", "--full-batch", "--batch", "4"], "--batch"),
        (["--optimizer", "sgd"], "--optimizer"),
        (["--optimizer", "gd", "--every", "0"], "--every"),
    ],
)
def test_cli_bad_options_one_line_exit_2(tmp_path, capsys, extra, needle):
    argv = [
        "edge",
        "--task",
        "digits_mlp",
        "--steps",
        "2",
        "--every",
        "1",
        "--out",
        str(tmp_path / "o"),
        *extra,
    ]
    try:
        code = _main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1


def test_cli_unknown_task(tmp_path, capsys):
    code = _main(
        [
            "edge",
            "--task",
            "nope",
            "--optimizer",
            "gd",
            "--steps",
            "2",
            "--every",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--task" in err and len(err.splitlines()) == 1
