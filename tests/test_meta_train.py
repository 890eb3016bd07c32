"""Meta-training: resume bit for bit, fault tolerance, estimators, theta files, CLI,
and the population sharded over 4 devices.

Every test uses one tiny configuration (4 pairs, horizon 8, truncation 4) so that the
compiled programs are shared (``meta_train`` caches them; the estimator is a runtime
flag). The 4-device run is a subprocess started when the first test of this module
runs, so that it compiles while the other tests do.
"""

import dataclasses
import functools
import json
import os
import shlex
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stability.cli import main as cli_main
from stability.lopt import _unroll
from stability.lopt import meta_train as mt
from stability.lopt.io import (
    ThetaConfigWarning,
    atomic_write,
    json_safe,
    load_metadata,
    load_theta,
    save_theta,
    sidecar_path,
)
from stability.lopt.tasks import get_task
from stability.lopt.theta import init_theta

TINY = mt.MetaTrainConfig(
    steps=6,
    horizon=8,
    truncation=4,
    population=4,
    eval_every=3,
    eval_seeds=2,
    checkpoint_every=3,
)

_FOUR_DEVICES = textwrap.dedent(
    """
    import json, os
    import numpy as np
    import jax
    from stability.lopt import meta_train as mt
    from stability.lopt.io import flatten_theta
    config = mt.MetaTrainConfig(**json.loads(os.environ["TINY_CONFIG"]))
    out = mt.meta_gradient(config)
    grad = {k: v.tolist() for k, v in flatten_theta(out["grad"]).items()}
    print(json.dumps({"devices": out["devices"], "count": jax.device_count(),
                      "meta_loss": out["meta_loss"], "grad": grad}))
    """
)


@pytest.fixture(scope="module", autouse=True)
def four_device_run(request):
    """Start the 4-device meta-gradient in a subprocess; tests read it at the end."""
    selected = [i.name for i in request.session.items]
    if "test_four_devices_give_the_one_device_meta_gradient" not in selected:
        yield None
        return
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["TINY_CONFIG"] = json.dumps(TINY.to_dict())
    proc = subprocess.Popen(
        [sys.executable, "-c", _FOUR_DEVICES],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    if not proc.stdout.closed:
        proc.communicate()  # closes the pipes


def _log(path):
    """Log rows without the wall-clock field."""
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_s"}
        for line in path.read_text().splitlines()
    ]


def _assert_theta_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("task", "no_such_task"),
        ("optimizer", "adam"),
        ("estimator", "reinforce"),
        ("steps", -1),
        ("steps", 2.5),
        ("horizon", 0),
        ("truncation", 9),  # > horizon
        ("population", 0),
        ("population", True),
        ("sigma", 0.0),
        ("sigma", float("nan")),
        ("outer_lr", -1e-3),
        ("weight_decay", float("inf")),
        ("nominal_stepsize", 0.0),
        ("nominal", 1),
        ("precondition", "yes"),
        ("seed", -3),
        ("checkpoint_every", 0),
        ("eval_every", -1),
        ("eval_seeds", 0),
        ("clip", 0.0),
        ("select", "test_accuracy"),
        ("horizon_min", 0),
        ("horizon_min", 9),  # > horizon
        ("horizon_min", 2.5),
        ("final_weight", -0.1),
        ("final_weight", float("nan")),
        ("blackbox_penalty", -1.0),
        ("eval_horizon", 0),
        ("blackbox_bound", 0.0),
        ("blackbox_bound", -1.0),
        ("blackbox_bound", "fast"),
    ],
)
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=f"^{field}:"):
        dataclasses.replace(TINY, **{field: value})


def test_config_roundtrip_and_defaults():
    d = mt.MetaTrainConfig()
    assert (d.task, d.horizon, d.truncation, d.population) == (
        "digits_mlp",
        1000,
        50,
        8,
    )
    assert (d.sigma, d.outer_lr, d.weight_decay) == (0.01, 3e-4, 0.1)
    assert d.nominal_stepsize == mt.DEFAULT_NOMINAL_STEPSIZE
    # the blackbox bound applies to STAR with its nominal term, resolved at the start
    assert d.blackbox_bound == "auto"
    assert mt._resolve(d).blackbox_bound == mt.DEFAULT_BLACKBOX_BOUND == 1.0
    for other in ({"optimizer": "small_fc_lopt"}, {"nominal": False}):
        assert mt._resolve(dataclasses.replace(d, **other)).blackbox_bound is None
    c = dataclasses.replace(TINY, clip=float("inf"), nominal_stepsize=None)
    assert mt.MetaTrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="unknown field 'lr'"):
        mt.MetaTrainConfig.from_dict({"lr": 1.0})


# -- the run: resume, faults ---------------------------------------------------------


@pytest.mark.parametrize("select", mt.SELECTIONS)
def test_best_theta_is_the_held_out_minimum_of_the_selected_score(select, tmp_path):
    config = dataclasses.replace(
        TINY, eval_every=1, outer_lr=0.05, sigma=0.05, select=select
    )
    result = mt.meta_train(config, tmp_path, progress=False)
    rows = _log(tmp_path / "eval.jsonl")
    assert [r["step"] for r in rows] == list(range(7))
    scores = [r[select] for r in rows]
    i = int(np.argmin(scores))
    assert (result.best_step, result.best_score) == (rows[i]["step"], scores[i])
    # the flag marks each new running minimum
    assert [r["best"] for r in rows] == [
        s < min(scores[:k], default=np.inf) for k, s in enumerate(scores)
    ]
    again = mt.evaluate_theta(result.best_theta, result.config)
    np.testing.assert_allclose(again[select], scores[i], rtol=1e-5)


def test_resume_is_bit_for_bit(tmp_path):
    straight = mt.meta_train(TINY, tmp_path / "a", progress=False)
    assert straight.steps == 6 and straight.skipped == 0
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert {
        "checkpoint.npz",
        "log.jsonl",
        "log.csv",
        "eval.jsonl",
        "theta.npz",
        "theta.json",
        "best_theta.npz",
        "best_theta.json",
    } <= files
    assert not [f for f in files if f.endswith(".tmp")]

    b = tmp_path / "b"
    mt.meta_train(dataclasses.replace(TINY, steps=3), b, progress=False)
    saved = (b / "checkpoint.npz").read_bytes()  # the checkpoint at step 3
    # Run on to step 4 (log rows and a checkpoint at 4), then "kill" it: put the
    # step-3 checkpoint back, as if the process died before its next checkpoint.
    mt.meta_train(dataclasses.replace(TINY, steps=4), b, resume=True, progress=False)
    assert len(_log(b / "log.jsonl")) == 4
    with np.load(b / "checkpoint.npz") as f:  # 4 is no multiple of 3: saved anyway
        assert json.loads(str(f["host"]))["step"] == 4
    (b / "checkpoint.npz").write_bytes(saved)
    resumed = mt.meta_train(TINY, b, resume=True, progress=False)

    _assert_theta_equal(straight.theta, resumed.theta)
    _assert_theta_equal(straight.best_theta, resumed.best_theta)
    assert (straight.best_score, straight.best_step) == (
        resumed.best_score,
        resumed.best_step,
    )
    assert _log(tmp_path / "a" / "log.jsonl") == _log(b / "log.jsonl")
    assert [r["step"] for r in _log(b / "log.jsonl")] == [1, 2, 3, 4, 5, 6]
    # pair i starts at inner step 2i and moves 4 steps per outer step: with a
    # horizon of 8, two of the four pairs finish an episode at every outer step
    assert [r["episodes_total"] for r in _log(b / "log.jsonl")] == [2, 4, 6, 8, 10, 12]
    assert _log(tmp_path / "a" / "eval.jsonl") == _log(b / "eval.jsonl")
    csv_rows = (b / "log.csv").read_text().splitlines()
    assert csv_rows[0].startswith("step,meta_loss") and len(csv_rows) == 7
    with (
        np.load(tmp_path / "a" / "checkpoint.npz") as fa,
        np.load(b / "checkpoint.npz") as fb,
    ):
        for k in fa.files:
            if k.startswith(("state/", "best/")):
                np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)

    # a bare load of a configured theta says to use load_optimizer
    with pytest.warns(ThetaConfigWarning, match="load_optimizer"):
        best = load_theta(b / "best_theta.npz", heads=3)
    _assert_theta_equal(best, straight.best_theta)
    meta = load_metadata(b / "theta.npz")
    assert meta["config"]["horizon"] == 8 and meta["metrics"]["steps"] == 6
    assert {"command", "git_commit", "date"} <= set(meta)

    with pytest.raises(ValueError, match="^out_dir:"):
        mt.meta_train(TINY, b, progress=False)
    with pytest.raises(ValueError, match="^sigma:"):
        mt.meta_train(dataclasses.replace(TINY, sigma=0.02), b, resume=True)


@pytest.mark.parametrize("split", [1, 2, 4])
def test_resume_at_any_step_gives_the_one_shot_run(split, tmp_path):
    """A run stopped after ``split`` steps (its closing evaluation included, when
    ``split`` is no multiple of eval_every) and resumed to the end equals the run
    made in one go: thetas, kept theta, logs, evaluations."""
    straight = mt.meta_train(TINY, tmp_path / "a", progress=False)
    b = tmp_path / "b"
    mt.meta_train(dataclasses.replace(TINY, steps=split), b, progress=False)
    resumed = mt.meta_train(TINY, b, resume=True, progress=False)
    _assert_theta_equal(straight.theta, resumed.theta)
    _assert_theta_equal(straight.best_theta, resumed.best_theta)
    assert (straight.best_score, straight.best_step) == (
        resumed.best_score,
        resumed.best_step,
    )
    assert _log(tmp_path / "a" / "log.jsonl") == _log(b / "log.jsonl")
    assert _log(tmp_path / "a" / "eval.jsonl") == _log(b / "eval.jsonl")
    with pytest.raises(ValueError, match="^steps: the checkpoint .* at step 6"):
        mt.meta_train(dataclasses.replace(TINY, steps=5), b, resume=True)


@pytest.mark.parametrize("calls", [1, 9])
def test_ctrl_c_checkpoints_where_it_is_and_resumes_bit_for_bit(
    calls, tmp_path, monkeypatch
):
    """A SIGINT during the first held-out evaluation (``calls`` = 1) or during the
    outer steps is taken at the next safe point: a checkpoint, KeyboardInterrupt,
    and the resumed run equals the one made in one go."""
    import signal

    straight = mt.meta_train(TINY, tmp_path / "a", progress=False)
    count = []
    real = mt._float

    def float_then_interrupt(x):
        count.append(1)
        if len(count) == calls:
            os.kill(os.getpid(), signal.SIGINT)
        return real(x)

    monkeypatch.setattr(mt, "_float", float_then_interrupt)
    b = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        mt.meta_train(TINY, b, progress=False)
    monkeypatch.setattr(mt, "_float", real)
    assert (b / "checkpoint.npz").exists()
    with np.load(b / "checkpoint.npz") as f:
        stopped = json.loads(str(f["host"]))["step"]
    assert stopped < TINY.steps
    resumed = mt.meta_train(TINY, b, resume=True, progress=False)
    _assert_theta_equal(straight.theta, resumed.theta)
    _assert_theta_equal(straight.best_theta, resumed.best_theta)
    assert _log(tmp_path / "a" / "log.jsonl") == _log(b / "log.jsonl")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_closing_evaluation_is_logged_but_never_kept(tmp_path):
    config = dataclasses.replace(TINY, steps=4, eval_every=3, outer_lr=0.05)
    result = mt.meta_train(config, tmp_path, progress=False)
    rows = _log(tmp_path / "eval.jsonl")
    assert [(r["step"], r["final"]) for r in rows] == [
        (0, False),
        (3, False),
        (4, True),
    ]
    assert rows[-1]["best"] is False and result.best_step in (0, 3)


def test_cli_refuses_resume_without_checkpoint_and_a_blank_out(tmp_path, capsys):
    for argv in (
        ["--out", str(tmp_path / "missing"), "--resume"],
        ["--out", ""],
        ["--out", str(tmp_path), "--steps", "0"],
    ):
        assert cli_main(["meta-train", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "error" in err, err
    assert not (tmp_path / "missing").exists()


def test_blackbox_penalty_and_bound_need_the_nominal_term():
    for changes in ({"nominal": False}, {"optimizer": "small_fc_lopt"}):
        with pytest.raises(ValueError, match="^blackbox_penalty:"):
            dataclasses.replace(TINY, blackbox_penalty=1.0, **changes)
        with pytest.raises(ValueError, match="^blackbox_bound:"):
            dataclasses.replace(TINY, blackbox_bound=1.0, **changes)


LEVERS = dataclasses.replace(
    TINY,
    horizon_min=3,
    final_weight=0.5,
    blackbox_penalty=0.5,
    eval_horizon=12,
    blackbox_bound=0.5,
)


def test_levers_resume_bit_for_bit_and_survive_a_nan(tmp_path):
    """Randomised horizons, final weight, stability term and a longer evaluation
    together: a run split at step 3 equals the straight run, and a NaN
    meta-gradient is skipped as without them."""
    straight = mt.meta_train(LEVERS, tmp_path / "a", progress=False, fault_steps=[4])
    b = tmp_path / "b"
    mt.meta_train(dataclasses.replace(LEVERS, steps=3), b, progress=False)
    resumed = mt.meta_train(LEVERS, b, resume=True, progress=False, fault_steps=[4])
    _assert_theta_equal(straight.theta, resumed.theta)
    _assert_theta_equal(straight.best_theta, resumed.best_theta)
    rows = _log(b / "log.jsonl")
    assert rows == _log(tmp_path / "a" / "log.jsonl")
    assert [r["skipped"] for r in rows] == [0, 0, 0, 0, 1, 0]
    assert straight.skipped == 1
    assert load_metadata(b / "best_theta.npz")["config"]["blackbox_penalty"] == 0.5
    # the held-out evaluations run eval_horizon steps: the loss differs from the
    # same theta evaluated at the meta-training horizon
    long = mt.evaluate_theta(straight.theta, LEVERS)
    short = mt.evaluate_theta(
        straight.theta, dataclasses.replace(LEVERS, eval_horizon=None)
    )
    assert long["train_loss"] != short["train_loss"]


@pytest.mark.slow  # five compiled programs: about 90 s on 2 busy cores
def test_each_lever_changes_the_meta_gradient():
    base = mt.meta_gradient(TINY)
    for changes in (
        {"horizon_min": 2},
        {"final_weight": 1.0},
        {"blackbox_penalty": 1.0},
        {"blackbox_bound": 0.1},
    ):
        other = mt.meta_gradient(dataclasses.replace(TINY, **changes))
        diff = [
            float(np.max(np.abs(a - b)))
            for a, b in zip(
                jax.tree.leaves(base["grad"]),
                jax.tree.leaves(other["grad"]),
                strict=True,
            )
        ]
        assert max(diff) > 0, changes
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(other["grad"]))


def test_randomised_lengths_are_log_uniform_per_episode_key():
    task = get_task("digits_mlp")
    inner = _unroll.InnerLoop(task, None, 10_000, 1e9, horizon_min=100)
    keys = jax.vmap(lambda i: _unroll.unwrap(jax.random.key(i)))(jnp.arange(4000))
    lengths = np.asarray(jax.jit(jax.vmap(inner.length))(keys))
    assert lengths.min() >= 100 and lengths.max() <= 10_000
    # log-uniform: each decade holds about half the episodes
    share = np.mean(lengths < 1000)
    assert 0.46 < share < 0.54, share
    again = np.asarray(jax.vmap(inner.length)(keys[:5]))
    np.testing.assert_array_equal(again, lengths[:5])  # a function of the key
    fixed = _unroll.InnerLoop(task, None, 8, 1e9)
    assert int(fixed.length(keys[0])) == 8


def test_final_weight_weights_the_last_loss_of_a_finished_episode():
    program = mt._program(dataclasses.replace(TINY, final_weight=0.25))
    plain = mt._program(TINY)
    state = plain.init_state()
    metas = _unroll.member_thetas(
        state.theta, jax.tree.map(lambda x: jnp.zeros((4, *x.shape)), state.theta)
    )
    poison = jnp.zeros((4, 2), jnp.float32)
    _, a = plain.inner.truncation(metas, state.population, poison, 4)
    _, b = program.inner.truncation(metas, state.population, poison, 4)
    finished = np.asarray(a.done & ~a.diverged)
    assert finished.any() and not finished.all()
    ratio = np.asarray(b.losses) / np.asarray(a.losses)
    expected = np.where(finished, 1 + 0.25 * 8, 1.0)[..., None]
    np.testing.assert_allclose(ratio, np.broadcast_to(expected, ratio.shape), rtol=1e-6)


def test_nan_meta_gradient_is_skipped_and_the_pair_restarted(tmp_path):
    config = dataclasses.replace(TINY, steps=4, eval_every=0)
    result = mt.meta_train(config, tmp_path, progress=False, fault_steps=[1])
    rows = _log(tmp_path / "log.jsonl")
    assert [r["skipped"] for r in rows] == [0, 1, 0, 0]
    assert rows[1]["meta_loss"] is None and rows[1]["grad_norm"] is None
    assert rows[1]["theta_norm"] == rows[0]["theta_norm"]  # theta untouched
    assert rows[1]["diverged"] >= 1  # the poisoned pair restarted
    assert rows[2]["theta_norm"] != rows[1]["theta_norm"]  # and training goes on
    assert all(r["meta_loss"] is not None for r in (rows[0], rows[2], rows[3]))
    assert result.skipped == 1 and result.diverged >= 1
    for leaf in jax.tree.leaves(result.theta):
        assert np.all(np.isfinite(leaf))


# -- estimators --------------------------------------------------------------------


@functools.cache
def _jitted(program):
    return jax.jit(program.inner.update), jax.jit(program.inner.fresh)


def _reference_gradient(program, theta, eps, pop, acc, pes):
    """ES/PES of one truncation, member by member in plain Python loops."""
    inner, c = program.inner, program.config
    update, fresh = _jitted(program)
    theta = jax.tree.map(np.asarray, theta)
    eps = jax.tree.map(np.asarray, eps)
    acc = jax.tree.map(np.asarray, acc)
    pop = jax.tree.map(np.asarray, pop)
    total = None
    for i in range(c.population):
        e_i = jax.tree.map(lambda x, i=i: x[i], eps)
        metas = [
            jax.tree.map(lambda t, e, s=s: t + s * e, theta, e_i) for s in (1.0, -1.0)
        ]
        states = [
            (
                jax.tree.map(lambda x, i=i, s=s: x[i, s], pop.params),
                jax.tree.map(lambda x, i=i, s=s: x[i, s], pop.opt_state),
            )
            for s in (0, 1)
        ]
        step, key, rng = int(pop.step[i]), pop.episode_key[i], pop.rng[i]
        deltas, in_old, old = [], [], True
        for _ in range(c.truncation):
            batch = inner.batch(key, step)
            losses = []
            for s in (0, 1):
                loss, p, o = update(metas[s], *states[s], batch)
                states[s] = (p, o)
                losses.append(inner.normalize(loss))
            deltas.append(float(losses[0] - losses[1]))
            in_old.append(old)
            step += 1
            if step >= c.horizon:
                split = jax.random.split(_unroll.wrap(rng))
                rng, key = _unroll.unwrap(split[0]), _unroll.unwrap(split[1])
                states = [fresh(metas[0], key)] * 2
                step, old = 0, False
        scale = 1 / (2 * c.sigma**2)
        c_eps = np.mean(deltas) * scale
        c_acc = sum(d for d, o in zip(deltas, in_old, strict=True) if o)
        c_acc = c_acc / c.truncation * scale if pes else 0.0
        a_i = jax.tree.map(lambda x, i=i: x[i], acc)
        g_i = jax.tree.map(lambda e, a, ce=c_eps, ca=c_acc: ce * e + ca * a, e_i, a_i)
        total = g_i if total is None else jax.tree.map(np.add, total, g_i)
    return jax.tree.map(lambda x: x / c.population, total)


def _close(a, b, rtol):
    fa, fb = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)]) for t in (a, b))
    np.testing.assert_allclose(fa, fb, rtol=rtol, atol=rtol * np.max(np.abs(fb)))


def test_es_and_pes_match_a_member_by_member_reference():
    program = mt._program(TINY)
    c = program.config
    poison = jnp.zeros((c.population, 2), jnp.float32)
    state = program.init_state()
    # Pair i starts at inner step 2i: pairs 1 and 3 finish episodes mid-truncation.
    assert list(np.asarray(state.population.step)) == [0, 2, 4, 6]
    grads, eps = {}, {}
    for pes in (True, False):
        s = state
        for k in range(2):
            key = jax.random.fold_in(_unroll.key_streams(c.seed)["eps"], k)
            eps[k] = _unroll.perturbations(key, s.theta, c.population, c.sigma)
            expected = _reference_gradient(
                program, s.theta, eps[k], s.population, s.accumulator, pes
            )
            new, metrics = program.step(s, poison, pes)
            _close(metrics["grad"], expected, rtol=2e-3)
            grads[pes, k] = metrics["grad"]
            s = new
        if pes:
            # Pair 0 ends its episode at the last step of truncation 2 (nothing
            # to carry), pairs 1 and 2 start one inside it, pair 3 inside truncation
            # 1 and goes on through truncation 2.
            acc = np.asarray(s.accumulator["mlp"]["w0"])
            e1, e2 = (np.asarray(eps[k]["mlp"]["w0"]) for k in (0, 1))
            np.testing.assert_array_equal(acc[0], 0.0)
            np.testing.assert_allclose(acc[1:3], e2[1:3], rtol=1e-6)
            np.testing.assert_allclose(acc[3], e1[3] + e2[3], rtol=1e-6)
        else:
            assert all(
                np.all(np.asarray(a) == 0) for a in jax.tree.leaves(s.accumulator)
            )
    # First truncation: nothing accumulated yet, PES is ES (bit for bit).
    _assert_theta_equal(grads[True, 0], grads[False, 0])
    with pytest.raises(AssertionError):
        _assert_theta_equal(grads[True, 1], grads[False, 1])


# -- files and CLI ---------------------------------------------------------------------


def test_save_load_theta_roundtrip(tmp_path):
    theta = init_theta(jax.random.key(3), heads=3)
    save_theta(tmp_path / "t.npz", theta, {"config": {"sigma": 0.01}, "x": np.nan})
    back = load_theta(tmp_path / "t.npz")
    _assert_theta_equal(theta, back)
    assert back["mlp"]["w0"].dtype == np.float32
    assert load_metadata(tmp_path / "t.npz") == {"config": {"sigma": 0.01}, "x": None}
    with np.load(tmp_path / "t.npz") as f:
        assert "mlp/w0" in f.files and "momentum_decays" in f.files
    with pytest.raises(ValueError, match=r"theta\['mlp'\]\['w2'\]"):
        load_theta(tmp_path / "t.npz", heads=2)
    bad = dict(theta, mlp=dict(theta["mlp"], w1=np.zeros((4, 5), np.float32)))
    with pytest.raises(ValueError, match=r"theta\['mlp'\]\['w1'\]"):
        save_theta(tmp_path / "bad.npz", bad)
    np.savez(tmp_path / "bad.npz", **{"mlp/w0": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="missing key"):
        load_theta(tmp_path / "bad.npz")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_sidecar_is_the_archive_with_a_json_suffix(tmp_path):
    # x.npz -> x.json, beside the archive
    assert sidecar_path(tmp_path / "x.npz") == tmp_path / "x.json"
    save_theta(tmp_path / "t.npz", init_theta(jax.random.key(0), 2), {"a": 1})
    assert json.loads((tmp_path / "t.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.npz"]


def test_json_safe_and_atomic_write(tmp_path):
    assert json_safe({"b": True})["b"] is True  # not 1, which also == True
    x = {
        1: (np.float32(0.5), np.int64(3), np.bool_(True), None, "s"),
        "a": np.array([[1 / 3, np.nan], [np.inf, 2.0]]),
        "f": 1 / 3,
        "j": jnp.arange(2),
    }
    assert json_safe(x) == {
        "1": [0.5, 3, True, None, "s"],
        "a": [[1 / 3, None], [None, 2.0]],
        "f": 1 / 3,
        "j": [0, 1],
    }
    rounded = json_safe(x, array_digits=3)  # array entries only
    assert rounded["a"] == [[0.333, None], [None, 2.0]] and rounded["f"] == 1 / 3

    path = tmp_path / "out" / "x.json"
    atomic_write(path, lambda f: f.write("{}"), mode="w")
    assert path.read_text() == "{}" and path.stat().st_mode & 0o777 == 0o644

    def fail(f):
        f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(path, fail, mode="w")
    assert path.read_text() == "{}"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "x"],
        ["--population", "0"],
        ["--optimizer", "adam"],
        ["--sigma", "-1"],
        ["--truncation", "2000"],
        ["--nominal-stepsize", "fast"],
        ["--task", "nope"],
        [],  # --out missing
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(argv, tmp_path, capsys):
    if argv:
        argv = [*argv, "--out", str(tmp_path)]
    try:
        code = cli_main(["meta-train", *argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "error" in err


def test_cli_runs_and_resumes(tmp_path, capsys):
    argv = [
        "meta-train",
        "--out",
        str(tmp_path),
        "--horizon",
        "8",
        "--truncation",
        "4",
        "--population",
        "4",
        "--eval-every",
        "3",
        "--eval-seeds",
        "2",
        "--checkpoint-every",
        "3",
        "--estimator",
        "es",
    ]
    assert cli_main([*argv, "--steps", "2"]) == 0
    assert cli_main([*argv, "--steps", "3", "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 steps" in out
    assert [r["step"] for r in _log(tmp_path / "log.jsonl")] == [1, 2, 3]
    # the sidecar records the command that ran, also when it runs in-process
    sidecar = json.loads((tmp_path / "theta.json").read_text())
    assert sidecar["command"] == shlex.join(
        ["stability", *argv, "--steps", "3", "--resume", "--no-progress"]
    )
    assert cli_main([*argv, "--steps", "3"]) == 2  # would overwrite the run


class _Stop(Exception):
    """Raised by a stand-in for meta_train once it has seen its arguments."""


def _cli_config(argv, tmp_path, monkeypatch):
    """The configuration and keywords ``stability meta-train ARGV`` would run."""
    seen = {}

    def fake_meta_train(config, out_dir, **kwargs):
        seen.update(config=config, out_dir=out_dir, **kwargs)
        raise _Stop

    monkeypatch.setattr(mt, "meta_train", fake_meta_train)
    with pytest.raises(_Stop):
        cli_main(["meta-train", "--out", str(tmp_path), *argv])
    return seen


@pytest.mark.parametrize(
    "argv, changes",
    [
        ([], {}),
        (["--task", "digits_mlp_tanh"], {"task": "digits_mlp_tanh"}),
        (["--optimizer", "small_fc_lopt"], {"optimizer": "small_fc_lopt"}),
        (["--estimator", "es"], {"estimator": "es"}),
        (["--steps", "7"], {"steps": 7}),
        (["--horizon", "2000"], {"horizon": 2000}),
        (["--truncation", "20"], {"truncation": 20}),
        (["--population", "3"], {"population": 3}),
        (["--sigma", "0.05"], {"sigma": 0.05}),
        (["--outer-lr", "0.001"], {"outer_lr": 1e-3}),
        (["--weight-decay", "0.5"], {"weight_decay": 0.5}),
        (["--nominal-stepsize", "0.1"], {"nominal_stepsize": 0.1}),
        (["--nominal-stepsize", "auto"], {"nominal_stepsize": None}),
        (["--no-nominal"], {"nominal": False}),
        (["--no-precondition"], {"precondition": False}),
        (["--seed", "5"], {"seed": 5}),
        (["--checkpoint-every", "7"], {"checkpoint_every": 7}),
        (["--eval-every", "0"], {"eval_every": 0}),
        (["--eval-seeds", "4"], {"eval_seeds": 4}),
        (["--select", "objective"], {"select": "objective"}),
        (["--clip", "2.5"], {"clip": 2.5}),
        (["--horizon-min", "100"], {"horizon_min": 100}),
        (["--final-weight", "0.5"], {"final_weight": 0.5}),
        (["--blackbox-penalty", "0.3"], {"blackbox_penalty": 0.3}),
        (["--eval-horizon", "5000"], {"eval_horizon": 5000}),
        (["--blackbox-bound", "0.5"], {"blackbox_bound": 0.5}),
        (["--blackbox-bound", "none"], {"blackbox_bound": None}),
    ],
)
def test_cli_options_set_their_config_fields(argv, changes, tmp_path, monkeypatch):
    seen = _cli_config(argv, tmp_path, monkeypatch)
    # no option: MetaTrainConfig's defaults; each option changes its field alone
    assert seen["config"] == dataclasses.replace(mt.MetaTrainConfig(), **changes)
    assert str(seen["out_dir"]) == str(tmp_path)
    assert seen["resume"] is False and seen["progress"] is True


def test_cli_resume_and_progress_flags(tmp_path, monkeypatch):
    (tmp_path / "checkpoint.npz").write_bytes(b"")  # something to resume
    seen = _cli_config(["--resume", "--no-progress"], tmp_path, monkeypatch)
    assert seen["resume"] is True and seen["progress"] is False
    assert seen["config"] == mt.MetaTrainConfig()


# -- scale-out -----------------------------------------------------------------------


def test_four_devices_give_the_one_device_meta_gradient(four_device_run):
    one = mt.meta_gradient(TINY)
    assert one["devices"] == 1
    out, err = four_device_run.communicate(timeout=600)
    assert four_device_run.returncode == 0, err[-2000:]
    four = json.loads(out.strip().splitlines()[-1])
    assert four["count"] == 4 and four["devices"] == 4
    from stability.lopt.io import flatten_theta

    flat = flatten_theta(one["grad"])
    assert set(flat) == set(four["grad"])
    a = np.concatenate([np.ravel(flat[k]) for k in sorted(flat)])
    b = np.concatenate([np.ravel(four["grad"][k]) for k in sorted(flat)])
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.max(np.abs(a)))
    assert four["meta_loss"] == pytest.approx(one["meta_loss"], rel=1e-5)


def test_tune_nominal_stepsize_checks_its_grid():
    with pytest.raises(ValueError, match="grid: must be > 0"):
        mt.tune_nominal_stepsize(grid=-0.1)  # a scalar is a one-point grid
    with pytest.raises(ValueError, match="grid: needs at least one"):
        mt.tune_nominal_stepsize(grid=[])


def test_tune_nominal_stepsize_picks_a_grid_value():
    best, table = mt.tune_nominal_stepsize(horizon=50, seeds=2, grid=[1e-4, 3e-2])
    assert best == 3e-2 and table[3e-2] < table[1e-4]


def test_meta_loss_is_the_log_of_the_clipped_loss():
    task = get_task("digits_mlp")
    inner = _unroll.InnerLoop(task, None, 8, 10.0)
    top = np.log(1.5 * task.chance_loss)
    losses = jnp.asarray([1.0, 0.5, 1e-30, 100.0, np.nan, np.inf, -np.inf])
    np.testing.assert_allclose(
        inner.normalize(losses),
        [0.0, np.log(0.5), np.log(_unroll.LOSS_FLOOR), *[top] * 4],
        rtol=1e-6,
    )


def test_diverging_inner_runs_are_restarted(tmp_path):
    config = dataclasses.replace(TINY, nominal_stepsize=30.0, steps=3, eval_every=0)
    result = mt.meta_train(config, tmp_path, progress=False)
    assert result.diverged > 0 and result.steps == 3
    # every episode diverges before its horizon, and none counts as completed
    assert [r["episodes_total"] for r in _log(tmp_path / "log.jsonl")] == [0, 0, 0]
    for leaf in jax.tree.leaves(result.theta):
        assert np.all(np.isfinite(leaf))
