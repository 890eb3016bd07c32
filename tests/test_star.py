"""STAR and small_fc_lopt: agreement with an independent NumPy reference, dtypes,
jit/vmap behaviour, meta-parameter checks, ablation switches and linearisation."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from star_reference import ReferenceOptimizer

from stability.lopt import (
    LOptState,
    _features,
    cpu_compiler_options,
    from_learned_optimization,
    init_theta,
    num_params,
    small_fc_lopt,
    star,
    theta_shapes,
    validate_theta,
    zero_output_layer,
)
from stability.lopt.theta import ADAFACTOR_DECAYS, MOMENTUM_DECAYS, RMS_DECAYS

# The package re-exports the function `star`, which shadows the module of that name.
star_module = importlib.import_module("stability.lopt.star")

SHAPES = {
    "w_tall": (64, 32),
    "w_wide": (32, 64),
    "bias": (32,),
    "scale": (),
    "conv": (3, 3, 8, 16),
    "conv_oihw": (16, 8, 3, 3),  # (out, in, kh, kw): neither factored axis is last
}
SMALL_SHAPES = {"w": (16, 8), "b": (5,), "s": ()}
TINY_SHAPES = {"w": (8, 6), "s": ()}  # one factored, one unfactored tensor
GRAD_SCALES = {
    "w_tall": 1.0,
    "w_wide": 0.1,
    "bias": 3.0,
    "scale": 0.5,
    "conv": 0.03,
    "conv_oihw": 0.3,
    "w": 1.0,
    "b": 0.2,
    "s": 2.0,
}
TOL = {np.float32: 1e-4, np.float64: 1e-10}
KINDS = {"small_fc_lopt": (small_fc_lopt, 2), "star": (star, 3)}  # constructor, heads


def random_theta(seed: int, heads: int) -> dict:
    """Initial theta plus noise: scale 0.3 on the MLP, 0.1 on the decay offsets."""
    theta = init_theta(jax.random.key(seed), heads)
    rng = np.random.default_rng(seed)
    out = {
        k: np.asarray(theta[k]) + 0.1 * rng.standard_normal(theta[k].shape)
        for k in ("momentum_decays", "rms_decays", "adafactor_decays")
    }
    out["mlp"] = {
        k: np.asarray(v) + 0.3 * rng.standard_normal(v.shape)
        for k, v in theta["mlp"].items()
    }
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), out)


def problem(shapes, steps, dtype, seed=0):
    """Initial parameters and a fixed gradient sequence, exactly representable in
    float32 so that both dtypes see the same numbers."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, np.float32).astype(dtype)
    params = {k: f32(0.1 * rng.standard_normal(s)) for k, s in shapes.items()}
    grads = [
        {k: f32(GRAD_SCALES[k] * rng.standard_normal(s)) for k, s in shapes.items()}
        for _ in range(steps)
    ]
    return params, grads


def run_ours(opt, params, grads, compiler_options=None):
    step = jax.jit(
        lambda p, s, g: _apply(opt, p, s, g), compiler_options=compiler_options
    )
    state = opt.init(params)
    path = []
    for g in grads:
        params, state = step(params, state, g)
        path.append(jax.tree.map(np.asarray, params))
    return path, state


def _apply(opt, params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state


def run_reference(ref, params, grads):
    path = []
    for g in grads:
        params = ref.step(params, g)
        path.append(params)
    return path


def assert_paths_close(ours, ref, p0, tol):
    worst = 0.0
    for t, (a, b) in enumerate(zip(ours, ref, strict=True)):
        for name in b:
            scale = np.max(np.abs(b[name] - np.asarray(p0[name], np.float64)))
            assert scale > 0, (t, name)
            err = np.max(np.abs(np.asarray(a[name], np.float64) - b[name])) / scale
            worst = max(worst, err)
            assert err <= tol, (
                f"step {t}, tensor {name}: relative error {err:.3g} > {tol}"
            )
    return worst


# -- agreement with the reference ------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["small_fc_lopt", "star"])
def test_matches_numpy_reference(kind, dtype):
    make, heads = KINDS[kind]
    theta = random_theta(1, heads)
    params, grads = problem(SHAPES, 50, dtype)
    opt, ref = make(theta), ReferenceOptimizer(theta, kind=kind)
    ours, state = run_ours(opt, params, grads)
    expected = run_reference(ref, params, grads)
    worst = assert_paths_close(ours, expected, params, TOL[dtype])
    print(f"{kind} {np.dtype(dtype).name}: worst relative error {worst:.3g}")
    assert int(state.count) == 50


@pytest.mark.parametrize("kind", ["small_fc_lopt", "star"])
def test_reassociated_sums_still_match_the_reference(kind):
    """Compiled with :func:`cpu_compiler_options` (LLVM may reorder sums, so the
    one-pass reduction is vectorised), float32 steps still meet the reference's
    tolerance, and a NaN gradient gives NaN exactly where it does by default."""
    make, heads = KINDS[kind]
    theta = random_theta(1, heads)
    params, grads = problem(SHAPES, 20, np.float32)
    options = cpu_compiler_options(vector_width=512)
    ours, _ = run_ours(make(theta), params, grads, options)
    expected = run_reference(ReferenceOptimizer(theta, kind=kind), params, grads)
    assert_paths_close(ours, expected, params, TOL[np.float32])

    bad = dict(grads[0], bias=grads[0]["bias"].copy())
    bad["bias"][3] = np.nan
    default, _ = run_ours(make(theta), params, [bad])
    fast, _ = run_ours(make(theta), params, [bad], options)
    for name in SHAPES:
        nan = np.isnan(default[0][name])
        np.testing.assert_array_equal(np.isnan(fast[0][name]), nan, err_msg=name)
    assert np.isnan(default[0]["bias"]).all()
    assert not np.isnan(default[0]["w_tall"]).any()


ABLATIONS = [
    {"precondition": False},
    {"nominal": False},
    {"aggregate_magnitudes": True},
    *({"nominal_estimator": e} for e in ("SGD", "SGDM", "AggMo", "Adam")),
    {"nominal_stepsize": 3e-2, "step_mult": 3e-3, "exp_mult": 0.1},
]


@pytest.mark.parametrize(
    "options", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
def test_ablations_match_reference(options):
    theta = random_theta(2, 3)
    params, grads = problem(TINY_SHAPES, 8, np.float64, seed=3)
    ours, _ = run_ours(star(theta, **options), params, grads)
    expected = run_reference(
        ReferenceOptimizer(theta, kind="star", **options), params, grads
    )
    assert_paths_close(ours, expected, params, TOL[np.float64])


def test_fused_and_dense_first_layer_agree():
    theta = random_theta(4, 3)
    params, grads = problem(SMALL_SHAPES, 3, np.float64, seed=5)
    config = star_module._Config(
        heads=3,
        step_mult=1e-3,
        exp_mult=1e-3,
        nominal_stepsize=1e-3,
        precondition=True,
        nominal=True,
    )
    fused = star_module._transformation(theta, config, _features.fused_heads)
    dense = star_module._transformation(theta, config, _features.dense_heads)
    a, _ = run_ours(fused, params, grads)
    b, _ = run_ours(dense, params, grads)
    for x, y in zip(a, b, strict=True):
        for k in x:
            np.testing.assert_allclose(x[k], y[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "shape",
    [
        (16, 8, 3),  # neither factored axis is the last one
        (8, 16, 3),
        (64, 32),  # the second-largest axis is the last
        (32, 64),  # the largest axis is the last
        (3, 3, 8, 16),
        (2, 3, 3, 8, 16),  # three leading axes merged for the reduction
        (3, 120_000),  # a long last axis (summed in pieces)
        (3, 4099),  # a prime last axis: the last piece is padded with zeros
        (1031, 7, 3),  # summed flat, padded
        (50_000,),
        (10_007,),
        (7,),
    ],
)
def test_fused_mean_squares_in_float32(shape):
    """The one-pass sums behind the fused normalisation, against float64 channel
    squares, for every placement of the factored axes and for long axes."""
    theta = random_theta(6, 3)
    decays = _features.decays_from_offsets(
        theta, np.float32, (MOMENTUM_DECAYS, RMS_DECAYS, ADAFACTOR_DECAYS)
    )
    rng = np.random.default_rng(11)
    p = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    acc = _features.init_leaf(p)
    time = _features.time_features(jnp.asarray(3), np.float32)
    step = jax.jit(_features.accumulate)
    for _ in range(3):
        scale = rng.uniform(0.1, 10.0, shape)
        g = jnp.asarray(rng.standard_normal(shape) * scale, jnp.float32)
        acc, feats = step(p, g, acc, decays, time)
    checked = 0
    for channel, mean_square in zip(feats.channels, feats.mean_squares, strict=True):
        if mean_square is None:  # a small row/column channel: reduced where used
            assert channel.size < p.size
            continue
        assert mean_square.dtype == jnp.float32
        x = np.broadcast_to(np.asarray(channel, np.float64), shape)
        np.testing.assert_allclose(float(mean_square), np.mean(x * x), rtol=2e-6)
        checked += 1
    assert checked == (16 if len(shape) >= 2 else 28)


@pytest.mark.parametrize("shape", [(3, 3, 8, 16), (2, 3, 3, 1031), (4, 5, 6)])
def test_one_pass_reduction_runs_over_three_axes(shape):
    """The variadic reduction sees (rows, pieces, piece) whatever the rank (its loop
    over the leading axes of a 4-D kernel was 30% slower per element); its sums come
    back in the tensor's leading shape, one per piece."""
    rng = np.random.default_rng(2)
    p, g, v, *m = (
        jnp.asarray(rng.standard_normal(shape), jnp.float32) for _ in range(6)
    )
    v = v * v
    inner = [jnp.asarray(rng.uniform(0.5, 2, shape[-1]), jnp.float32) for _ in range(3)]
    jaxpr = jax.make_jaxpr(_features._row_sums)(p, g, m, v, inner)
    (reduce,) = [e for e in jaxpr.eqns if e.primitive.name == "reduce"]
    assert {x.aval.ndim for x in reduce.invars[:16]} == {3}
    sums = _features._row_sums(p, g, m, v, inner)
    g, v, m0, m2, w2 = (np.asarray(x, np.float64) for x in (g, v, m[0], m[2], inner[2]))
    piece, pad = _features._pieces(shape[-1])
    for index, x in [(0, g * g), (6, m0 * m0 / (v + 1e-6)), (15, m2 * m2 * w2)]:
        x = np.pad(x, [(0, 0)] * (len(shape) - 1) + [(0, pad)])
        want = x.reshape(*shape[:-1], -1, piece).sum(-1)
        assert sums[index].shape == want.shape
        np.testing.assert_allclose(sums[index], want, rtol=1e-5)


@pytest.mark.parametrize(
    "length, expected",
    [
        (7, (7, 0)),
        (768, (768, 0)),
        (1024, (1024, 0)),
        (1025, (513, 1)),
        (1536, (768, 0)),
        (4099, (820, 1)),
        (120_000, (1017, 6)),
        (100_003, (1021, 55)),
    ],
)
def test_pieces_are_even_and_at_most_1024(length, expected):
    """Long axes are summed in equal pieces of at most 1024 elements, as few as
    possible, padded at the end: a prime length is not cut into pieces of 1."""
    piece, pad = _features._pieces(length)
    assert (piece, pad) == expected
    count = (length + pad) // piece
    assert piece <= 1024 and count * piece == length + pad and 0 <= pad < count


# -- dtypes ---------------------------------------------------------------------------


def test_float32_is_not_promoted_under_x64():
    assert jax.config.jax_enable_x64
    params, grads = problem(SMALL_SHAPES, 1, np.float32)
    opt = star(random_theta(0, 3))
    state = opt.init(params)
    jaxpr = str(jax.make_jaxpr(opt.update)(grads[0], state, params))
    assert "f64" not in jaxpr  # no constant or intermediate promotes to float64
    # a float64 theta is cast to the parameters' compute dtype
    theta64 = jax.tree.map(lambda x: x.astype(jnp.float64), random_theta(0, 3))
    updates, state = jax.jit(star(theta64).update)(grads[0], state, params)
    for leaf in jax.tree.leaves((updates, state)):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    assert state.count.dtype == jnp.int32


def test_bfloat16_params_float32_accumulators():
    theta = random_theta(0, 3)
    params32, grads = problem(SMALL_SHAPES, 3, np.float32)
    params16 = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), params32)
    exact = jax.tree.map(lambda x: x.astype(jnp.float32), params16)
    opt = star(theta)
    update = jax.jit(opt.update)
    s16, s32 = opt.init(params16), opt.init(exact)
    for g in grads:
        g16 = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), g)
        g32 = jax.tree.map(lambda x: x.astype(jnp.float32), g16)
        u16, s16 = update(g16, s16, params16)
        u32, s32 = update(g32, s32, exact)
        for k in u16:
            assert u16[k].dtype == jnp.bfloat16
            np.testing.assert_allclose(
                np.asarray(u16[k], np.float32),
                u32[k],
                rtol=1e-2,
                atol=1e-2 * np.abs(u32[k]).max(),
            )
        params16 = optax.apply_updates(params16, u16)
        exact = jax.tree.map(lambda x: x.astype(jnp.float32), params16)
        assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(params16))
    for field in LOptState._fields[1:]:
        for leaf in jax.tree.leaves(getattr(s16, field)):
            assert leaf.dtype == jnp.float32


# -- JAX transformations --------------------------------------------------------------


def test_jit_does_not_recompile():
    theta = random_theta(0, 3)
    params, grads = problem(SMALL_SHAPES, 3, np.float32)
    opt = star(theta)
    traces = []

    def step(p, s, g):
        traces.append(1)
        return _apply(opt, p, s, g)

    step = jax.jit(step, donate_argnums=(0, 1))
    state = opt.init(params)
    params = jax.tree.map(jnp.asarray, params)
    for g in grads:
        params, state = step(params, state, g)
    assert len(traces) == 1


def test_vmap_over_population_of_thetas():
    thetas = [random_theta(s, 3) for s in range(3)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *thetas)
    params, grads = problem(SMALL_SHAPES, 1, np.float32)
    state = star(thetas[0]).init(params)

    def member_update(theta):
        return star(theta).update(grads[0], state, params)

    updates, states = jax.jit(jax.vmap(member_update))(stacked)
    single = jax.jit(member_update)
    for i, theta in enumerate(thetas):
        u, s = single(theta)
        for k in u:
            np.testing.assert_allclose(updates[k][i], u[k], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            states.momentum[0]["w"][i], s.momentum[0]["w"], rtol=1e-6
        )


OIHW_SHAPES = {"conv_oihw": (16, 8, 3, 3), "w": (16, 8)}


def _oihw_step(seed=3):
    params, grads = problem(OIHW_SHAPES, 4, np.float64, seed=seed)
    opt = star(random_theta(seed, 3), nominal_stepsize=0.03)
    state = opt.init(params)
    for g in grads[:3]:  # away from the all-zero initial state
        params, state = _apply(opt, params, state, g)
    return opt, params, state, grads[3]


def test_kernels_laid_out_oihw_run_in_a_long_view_on_cpu():
    """On CPU a kernel whose last axis is not factored is computed in the view
    (out, in * kh * kw) inside a conditional that XLA keeps (a fusion barrier; if XLA
    ever folds its always-true predicate, the view's speed-up is gone)."""
    assert star_module._loop_view((16, 8, 3, 3)) == (16, 72)
    assert star_module._loop_view((8, 5, 3)) == (8, 15)
    for shape in [(3, 3, 8, 16), (16, 3, 3), (16, 8), (7,), (1,)]:
        assert star_module._loop_view(shape) is None, shape
    opt, params, _, _ = _oihw_step()
    on_cpu = jax.default_backend() == "cpu"  # elsewhere: no view, no conditional

    def hlo(p):
        step = jax.jit(lambda p, s, g: _apply(opt, p, s, g))
        return step.lower(p, opt.init(p), p).compile().as_text()

    assert ("conditional" in hlo({"k": params["conv_oihw"]})) == on_cpu
    assert "conditional" not in hlo({"k": jnp.zeros((3, 3, 8, 16))})


def test_step_and_meta_gradient_export_for_cuda_without_a_gpu():
    """GPU readiness, checked where there is no GPU: the jitted step of STAR and of
    small_fc_lopt over every kind of leaf (matrices, both kernel layouts, a vector, a
    scalar), and the theta-gradient of a loss after it (what meta-training runs),
    lower to StableHLO for CUDA with no custom call: plain XLA arithmetic, no solver
    library and no host callback (which would not lower at all)."""
    params, grads = problem(SHAPES, 1, np.float32)
    g = grads[0]

    def loss(theta, kind):
        opt = KINDS[kind][0](theta)
        new, _ = _apply(opt, params, opt.init(params), g)
        return sum(jnp.sum(x * x) for x in jax.tree.leaves(new))

    for kind, (make, heads) in KINDS.items():
        theta = random_theta(0, heads)
        opt = make(theta)
        step = jax.jit(lambda p, s, g, opt=opt: _apply(opt, p, s, g))
        meta = jax.jit(jax.grad(loss), static_argnums=1)
        for fn, args in [(step, (params, opt.init(params), g)), (meta, (theta, kind))]:
            exported = jax.export.export(fn, platforms=["cuda"])(*args)
            assert exported.platforms == ("cuda",)
            assert "custom_call" not in exported.mlir_module(), kind


def test_view_changes_no_number_and_no_derivative(monkeypatch):
    """The step, its derivatives (params and theta) and a vmap over members at
    different step counts (the conditional becomes a select) agree with the same
    computation in the parameter's own shape. In float64: in float32 the two loops
    contract multiply-adds differently (about 5e-6 relative on a few elements)."""
    opt, params, state, g = _oihw_step()
    theta = random_theta(5, 3)

    def results():
        def step(p, th):
            u, _ = star(th, nominal_stepsize=0.03).update(g, state, p)
            return u

        tangent = jax.tree.map(lambda x: 0.1 * jnp.ones_like(x), params)
        tangent_theta = jax.tree.map(lambda x: 0.01 * jnp.ones_like(x), theta)
        out, jvp = jax.jit(
            lambda p, th: jax.jvp(step, (p, th), (tangent, tangent_theta))
        )(params, theta)
        grad = jax.jit(
            jax.grad(lambda th: jnp.sum(step(params, th)["conv_oihw"] ** 2))
        )(theta)
        counts = jnp.asarray([0, 7, 2**31 - 1], jnp.int32)
        states = jax.vmap(lambda c: state._replace(count=c))(counts)
        batched = jax.jit(jax.vmap(lambda s: opt.update(g, s, params)))(states)
        return [out, jvp, grad, batched]

    viewed = results()
    monkeypatch.setattr(star_module, "_loop_view", lambda shape: None)
    plain = results()
    for a, b in zip(jax.tree.leaves(viewed), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_meta_gradient_through_steps_is_finite():
    # Reverse mode through the fused step differentiates the dense formulation
    # (custom_jvp): it must compile quickly and give finite theta-gradients.
    params, grads = problem({"w": (16, 8)}, 1, np.float64)

    def meta_loss(theta):
        opt = star(theta)
        p, s = params, opt.init(params)
        for g in grads:
            p, s = _apply(opt, p, s, g)
        return sum(jnp.sum(x**2) for x in jax.tree.leaves(p))

    theta = random_theta(0, 3)
    grad = jax.jit(jax.grad(meta_loss))(theta)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(grad))
    assert np.abs(np.asarray(grad["mlp"]["w2"])).max() > 0
    # and it is the derivative of the fused step: compare with a central difference
    direction = jax.tree.map(lambda x: jnp.ones_like(x) / np.sqrt(202), theta)
    theta64 = jax.tree.map(lambda x: x.astype(jnp.float64), theta)
    eps = 1e-6
    loss = jax.jit(meta_loss)
    plus = loss(jax.tree.map(lambda t, d: t + eps * d, theta64, direction))
    minus = loss(jax.tree.map(lambda t, d: t - eps * d, theta64, direction))
    along = sum(
        jnp.vdot(a, b)
        for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(direction), strict=True)
    )
    np.testing.assert_allclose(along, (plus - minus) / (2 * eps), rtol=1e-6)


def test_composes_with_optax_chain():
    theta = zero_output_layer(random_theta(0, 3))
    params, grads = problem(SMALL_SHAPES, 1, np.float32)
    opt = optax.chain(optax.clip_by_global_norm(1.0), star(theta))
    updates, _ = jax.jit(opt.update)(grads[0], opt.init(params), params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)


# -- meta-parameters ------------------------------------------------------------------


def test_parameter_counts_and_layout():
    key = jax.random.key(0)
    assert num_params(init_theta(key, 2)) == 197
    assert num_params(init_theta(key, 3)) == 202
    theta = init_theta(key, 3)
    shapes = jax.tree.map(lambda x: x.shape, theta)
    assert shapes == theta_shapes(3)
    assert np.all(np.asarray(theta["mlp"]["b0"]) == 0)
    assert np.abs(np.asarray(theta["mlp"]["w0"])).max() <= 2 / np.sqrt(39) + 1e-7


def _set(theta, path, value):
    theta = jax.tree.map(lambda x: x, theta)
    where = theta
    for k in path[:-1]:
        where = where[k]
    if value is None:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return theta


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("rms_decays",), None, "theta: missing key 'rms_decays'"),
        (("extra",), jnp.zeros(1), "theta: unexpected key 'extra'"),
        (
            ("mlp", "w0"),
            jnp.zeros((38, 4)),
            r"theta\['mlp'\]\['w0'\]: expected shape \(39, 4\)",
        ),
        (("mlp", "b1"), None, r"theta\['mlp'\]: missing key 'b1'"),
        (
            ("momentum_decays",),
            jnp.array([0.0, jnp.nan, 0.0]),
            r"theta\['momentum_decays'\]: contains non-finite",
        ),
        (
            ("mlp", "w2"),
            jnp.full((4, 3), jnp.inf),
            r"theta\['mlp'\]\['w2'\]: contains non-finite",
        ),
        (
            ("mlp", "b0"),
            jnp.zeros(4, jnp.int32),
            r"theta\['mlp'\]\['b0'\]: expected a float",
        ),
    ],
)
def test_validator_names_the_key(path, value, message):
    theta = _set(random_theta(0, 3), path, value)
    with pytest.raises(ValueError, match=message):
        validate_theta(theta)
    with pytest.raises(ValueError, match=message):
        star(theta)


def test_validator_heads_and_options():
    with pytest.raises(
        ValueError, match=r"theta\['mlp'\]\['w2'\]: expected shape \(4, 3\)"
    ):
        star(random_theta(0, 2))
    with pytest.raises(
        ValueError, match=r"theta\['mlp'\]\['w2'\]: expected shape \(4, 2\)"
    ):
        small_fc_lopt(random_theta(0, 3))
    with pytest.raises(ValueError, match="nominal_estimator"):
        star(random_theta(0, 3), nominal_estimator="Lion")
    with pytest.raises(ValueError, match="step_mult"):
        star(random_theta(0, 3), step_mult=-1.0)
    with pytest.raises(ValueError, match="precondition: expected True or False"):
        star(random_theta(0, 3), precondition="False")
    with pytest.raises(ValueError, match="heads"):
        init_theta(jax.random.key(0), 4)
    with pytest.raises(ValueError, match="key: expected one jax.random.key"):
        init_theta(0)
    opt = star(random_theta(0, 3))
    params = {"w": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params))
    with pytest.raises(ValueError, match="grads"):
        opt.update({"w": jnp.ones((2, 3))}, opt.init(params), params)
    f32 = {"w": jnp.ones((2, 2), jnp.float32)}  # a state initialised in float64
    with pytest.raises(ValueError, match="state: float64 accumulators"):
        opt.update(f32, opt.init(params), f32)
    ints = {"w": jnp.ones((2, 2), jnp.int32)}
    with pytest.raises(ValueError, match="params: expected floating"):
        opt.update(ints, opt.init(params), ints)
    empty = {"w": jnp.ones((0, 3)), "b": jnp.ones(2)}
    updates, _ = opt.update(empty, opt.init(empty), empty)
    assert updates["w"].shape == (0, 3)


def test_traced_theta_is_not_value_checked():
    theta = random_theta(0, 3)
    params = {"w": jnp.ones((2, 3))}

    @jax.jit
    def update(theta):
        opt = star(theta)
        return opt.update(params, opt.init(params), params)[0]["w"]

    bad = _set(theta, ("mlp", "w1"), jnp.full((4, 4), jnp.nan))
    assert np.all(np.isnan(update(bad)))  # shapes checked, values not
    with pytest.raises(ValueError, match=r"expected shape"):
        update(_set(theta, ("mlp", "w1"), jnp.zeros((4, 5))))


def test_from_learned_optimization():
    rng = np.random.default_rng(0)
    mlp = {
        "w0": rng.standard_normal((39, 4)),
        "b0": rng.standard_normal(4),
        "w1": rng.standard_normal((4, 4)),
        "b1": rng.standard_normal(4),
        "w2": rng.standard_normal((4, 4)),
        "b2": rng.standard_normal(4),
    }
    upstream = {
        "momentum_decays": rng.standard_normal(3),
        "rms_decays": rng.standard_normal(1),
        "adafactor_decays": rng.standard_normal(3),
        "nn": {"~": mlp},
    }
    theta = from_learned_optimization(upstream)
    assert num_params(theta) == 202
    np.testing.assert_allclose(theta["mlp"]["w2"], mlp["w2"][:, :3].astype(np.float32))
    np.testing.assert_allclose(theta["mlp"]["b2"], mlp["b2"][:3].astype(np.float32))
    np.testing.assert_allclose(theta["mlp"]["w0"], mlp["w0"].astype(np.float32))
    np.testing.assert_allclose(
        theta["rms_decays"], upstream["rms_decays"].astype(np.float32)
    )
    assert theta["mlp"]["w0"].dtype == jnp.float32
    two = dict(upstream, nn={"~": dict(mlp, w2=mlp["w2"][:, :2], b2=mlp["b2"][:2])})
    assert num_params(from_learned_optimization(two)) == 197
    with pytest.raises(ValueError, match="theta_upstream: missing key 'nn'"):
        from_learned_optimization({k: v for k, v in upstream.items() if k != "nn"})
    with pytest.raises(ValueError, match=r"\['~'\]: missing key 'b1'"):
        from_learned_optimization(
            dict(upstream, nn={"~": {k: v for k, v in mlp.items() if k != "b1"}})
        )


# -- the nominal term and the ablation switches ----------------------------------------


def nominal_only(grads, lr, estimator):
    """The nominal-only optimizer written out: EMAs with decays float32(0.9, ...)."""
    b = np.asarray([0.9, 0.99, 0.999], np.float32).astype(np.float64)
    b_v = float(np.float32(0.999))
    m = [np.zeros_like(grads[0]) for _ in range(3)]
    v = np.zeros_like(grads[0])
    out = []
    for g in grads:
        m = [b[i] * m[i] + (1 - b[i]) * g for i in range(3)]
        v = b_v * v + (1 - b_v) * g**2
        r = 1 / np.sqrt(v + 1e-6)
        est = {
            "SGD": g,
            "SGDM": m[0],
            "AggMo": sum(m) / 3,
            "Adam": m[0] * r,
            "AdamAggMo": sum(m) / 3 * r,
        }
        out.append(-lr * est[estimator])
    return out


@pytest.mark.parametrize("estimator", ["AdamAggMo", "SGD", "SGDM", "AggMo", "Adam"])
def test_zero_output_layer_is_the_nominal_term(estimator):
    # zero decay offsets: the decays are the initial ones, 0.9, 0.99, 0.999
    theta = zero_output_layer(init_theta(jax.random.key(0), 3))
    assert np.all(np.asarray(theta["mlp"]["w2"]) == 0)
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((6, 5)) for _ in range(5)]
    params = jnp.asarray(rng.standard_normal((6, 5)))
    opt = star(theta, nominal_stepsize=0.03, nominal_estimator=estimator)
    state = opt.init(params)
    update = jax.jit(opt.update)
    for g, expected in zip(grads, nominal_only(grads, 0.03, estimator), strict=True):
        updates, state = update(jnp.asarray(g), state, params)
        np.testing.assert_allclose(updates, expected, rtol=1e-12, atol=1e-15)
        params = params + updates
    off, _ = star(theta, nominal=False).update(jnp.asarray(g), state, params)
    assert np.all(np.asarray(off) == 0)
    small, _ = small_fc_lopt(
        zero_output_layer(init_theta(jax.random.key(0), 2))
    ).update(jnp.asarray(g), state, params)
    assert np.all(np.asarray(small) == 0)


def test_precondition_and_nominal_switches():
    theta = random_theta(0, 3)
    rng = np.random.default_rng(1)
    params = jnp.asarray(rng.standard_normal((8, 6)))
    g = jnp.asarray(rng.standard_normal((8, 6)))
    opts = {
        (pre, nom): star(theta, precondition=pre, nominal=nom)
        for pre in (True, False)
        for nom in (True, False)
    }
    state0 = opts[True, True].init(params)
    out = {key: jax.jit(opt.update)(g, state0, params) for key, opt in opts.items()}
    state = out[True, True][1]
    precond = 1 / np.sqrt(np.asarray(state.second_moment) + 1e-6)
    # preconditioning multiplies the blackbox term by (v + 1e-6)^(-1/2), only it
    np.testing.assert_allclose(
        out[True, False][0], out[False, False][0] * precond, rtol=1e-12
    )
    nominal_term = out[True, True][0] - out[True, False][0]
    np.testing.assert_allclose(
        out[False, True][0] - out[False, False][0], nominal_term, rtol=1e-10
    )
    assert np.abs(np.asarray(nominal_term)).min() > 0


def test_aggregated_magnitudes_are_per_tensor():
    theta = random_theta(0, 3)
    rng = np.random.default_rng(1)
    params = jnp.asarray(rng.standard_normal((8, 6)))
    g = jnp.asarray(rng.standard_normal((8, 6)))
    # With the nominal term alone, aggregation makes exp(exp_mult * m_g) one number.
    opt = star(
        theta,
        aggregate_magnitudes=True,
        nominal_estimator="SGD",
        exp_mult=0.5,
        step_mult=0.0,
    )
    updates, _ = opt.update(g, opt.init(params), params)
    ratio = np.asarray(updates) / np.asarray(g)
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-12)
    per_element = star(theta, nominal_estimator="SGD", exp_mult=0.5, step_mult=0.0)
    updates, _ = per_element.update(g, per_element.init(params), params)
    assert np.ptp(np.asarray(updates) / np.asarray(g)) > 1e-6


# -- linearisation ---------------------------------------------------------------------


def test_closed_loop_of_star_matches_finite_differences():
    from stability.operators import closed_loop
    from stability.operators.closed_loop import step_function
    from stability.problems import NoisyQuadratic

    n = 3
    problem_ = NoisyQuadratic.from_eigenvalues([2.0, 0.5, 0.1], 0.01, np.ones(n))
    opt = star(random_theta(0, 3), nominal_stepsize=0.01)
    params = jnp.asarray([1.0, -0.5, 0.25])
    state = opt.init(params)
    h = jnp.asarray(problem_.hessian)
    for _ in range(5):  # linearise away from the all-zero initial state
        params, state = _apply(opt, params, state, h @ params)
    loop = closed_loop(opt, problem_, params, state)
    accumulators = 3 * n + n + 3 * n  # momenta, second moment, unfactored Adafactor
    d = n + accumulators
    assert loop.transition.shape == (d, d)
    assert np.all(np.isfinite(loop.transition))
    step, z = step_function(opt, problem_, params, state)
    step = jax.jit(step)
    xi = jnp.zeros(n)
    # fourth-order central differences, steps relative to each coordinate's size:
    # some accumulators are ~1e-4 and enter through rsqrt(v + 1e-6).
    h = 1e-4 * np.maximum(np.abs(np.asarray(z)), 1e-3)
    columns = []
    for i, e in enumerate(np.eye(d)):
        f = [step(z + k * h[i] * e, xi) for k in (2, 1, -1, -2)]
        columns.append((-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h[i]))
    fd = np.stack(columns, axis=1)
    scale = np.abs(fd).max()
    np.testing.assert_allclose(loop.transition, fd, atol=1e-8 * scale, rtol=1e-6)


# -- checks and meta-parameter helpers, against their contracts ------------------------


@pytest.mark.parametrize("name", ["nominal_stepsize", "step_mult", "exp_mult"])
@pytest.mark.parametrize("value", [-1e-3, float("nan")])
def test_hyperparameters_must_be_finite_and_non_negative(name, value):
    with pytest.raises(ValueError, match=name):
        star(random_theta(0, 3), **{name: value})
    if name != "nominal_stepsize":
        with pytest.raises(ValueError, match=name):
            small_fc_lopt(random_theta(0, 2), **{name: value})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vector_width": 384}, "vector_width"),
        ({"vector_width": True}, "vector_width"),
        ({"reassociate": "yes"}, "reassociate"),
    ],
)
def test_cpu_compiler_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cpu_compiler_options(**kwargs)
    assert cpu_compiler_options(reassociate=False) == {}
    assert cpu_compiler_options()["xla_cpu_fast_math_honor_nans"] is True


def test_state_of_other_shapes_is_rejected():
    # the same dtype but a state initialised from a (1,) parameter would broadcast
    opt = star(random_theta(0, 3))
    params = {"w": jnp.ones(3)}
    state = opt.init({"w": jnp.ones(1)})
    with pytest.raises(ValueError, match=r"state: .* of shape \(1,\)"):
        opt.update(params, state, params)


def test_init_theta_scales_truncated_normals_by_fan_in():
    # haiku's TruncatedNormal(1/sqrt(fan_in)): z in [-2, 2], std of z about 0.88
    theta = init_theta(jax.random.key(3), 3)
    z = []
    for i, fan_in in enumerate((39, 4, 4)):
        zi = np.asarray(theta["mlp"][f"w{i}"], np.float64) * np.sqrt(fan_in)
        assert np.abs(zi).max() <= 2 + 1e-6, f"w{i}"
        z.append(zi.ravel())
        np.testing.assert_array_equal(theta["mlp"][f"b{i}"], 0)
    z = np.concatenate(z)  # 184 draws: the sample std is 0.88 +- 0.05
    assert 0.75 < np.std(z) < 1.0
    for name in ("momentum_decays", "rms_decays", "adafactor_decays"):
        np.testing.assert_array_equal(theta[name], 0)


def test_zero_output_layer_zeroes_w2_and_b2_of_a_copy():
    theta = random_theta(0, 3)
    before = jax.tree.map(np.array, theta)
    zeroed = zero_output_layer(theta)
    np.testing.assert_array_equal(zeroed["mlp"]["w2"], np.zeros((4, 3)))
    np.testing.assert_array_equal(zeroed["mlp"]["b2"], np.zeros(3))
    for name in ("w0", "b0", "w1", "b1"):
        np.testing.assert_array_equal(zeroed["mlp"][name], before["mlp"][name])
    np.testing.assert_array_equal(zeroed["rms_decays"], before["rms_decays"])
    # the argument is left as it was
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(a, b)


def test_validator_rejects_a_scalar_b2():
    theta = _set(random_theta(0, 3), ("mlp", "b2"), jnp.zeros(()))
    with pytest.raises(ValueError, match=r"theta\['mlp'\]\['b2'\]: expected shape"):
        validate_theta(theta)


# -- issue 24: a shipped theta builds the optimizer it was meta-trained as ----------


def _run(opt, steps=2):
    """Updates of ``opt`` over a few steps of a tiny least-squares task."""
    rng = np.random.default_rng(0)
    params = {
        k: jnp.asarray(rng.standard_normal(s), jnp.float32)
        for k, s in TINY_SHAPES.items()
    }
    state = opt.init(params)
    out = []
    for _ in range(steps):
        grads = jax.tree.map(lambda p: 2 * p + 0.1, params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(updates)
    return jax.tree.leaves(out)


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_load_optimizer_is_configured_from_the_sidecar():
    """``load_theta`` + ``star`` defaults would use nominal_stepsize 1e-3 (and keep
    preconditioning on for star_no_precond); ``load_optimizer`` reads the sidecar."""
    from stability.lopt import ThetaConfigWarning, load_optimizer, load_theta
    from stability.lopt.io import SHIPPED_THETAS, load_metadata

    path = SHIPPED_THETAS / "star.npz"
    assert load_metadata(path)["config"]["nominal_stepsize"] == pytest.approx(0.0316228)
    with pytest.warns(ThetaConfigWarning, match="load_optimizer"):
        theta = load_theta(path)
    got = _run(load_optimizer(path))
    assert _same(got, _run(star(theta, nominal_stepsize=0.03162277660168379)))
    assert not _same(got, _run(star(theta)))
    assert _same(
        _run(load_optimizer(path, nominal_stepsize=0.01)),
        _run(star(theta, nominal_stepsize=0.01)),
    )

    no_pre = SHIPPED_THETAS / "star_no_precond.npz"
    with pytest.warns(ThetaConfigWarning, match="'precondition': False"):
        theta = load_theta(no_pre)
    got = _run(load_optimizer(no_pre))
    step = load_metadata(no_pre)["config"]["nominal_stepsize"]
    assert _same(got, _run(star(theta, nominal_stepsize=step, precondition=False)))
    assert not _same(got, _run(star(theta, nominal_stepsize=step)))

    with pytest.raises(ValueError, match="^learning_rate: star takes no such option"):
        load_optimizer(path, learning_rate=0.1)


def test_load_optimizer_without_a_configuration(tmp_path):
    """A theta saved without metadata: STAR needs nominal_stepsize passed, and
    load_theta has nothing to warn about; small_fc_lopt needs nothing."""
    from stability.lopt import load_optimizer, load_theta, save_theta

    theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    save_theta(tmp_path / "bare.npz", theta)
    load_theta(tmp_path / "bare.npz")  # no warning (warnings are errors here)
    with pytest.raises(ValueError, match="^nominal_stepsize: .*bare.npz"):
        load_optimizer(tmp_path / "bare.npz")
    assert _same(
        _run(load_optimizer(tmp_path / "bare.npz", nominal_stepsize=0.05)),
        _run(star(theta, nominal_stepsize=0.05)),
    )
    save_theta(tmp_path / "fc.npz", init_theta(jax.random.key(1), heads=2))
    load_optimizer(tmp_path / "fc.npz")
    with pytest.raises(ValueError, match="^nominal_stepsize: small_fc_lopt takes no"):
        load_optimizer(tmp_path / "fc.npz", nominal_stepsize=0.1)
    save_theta(tmp_path / "odd.npz", theta, {"config": {"optimizer": "small_fc_lopt"}})
    with pytest.raises(ValueError, match="sidecar says 'small_fc_lopt'"):
        load_optimizer(tmp_path / "odd.npz", nominal_stepsize=0.1)
