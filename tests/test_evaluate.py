"""lopt.evaluate and ``stability evaluate``: tiny horizons, one shared task."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stability import cli, optimizers
from stability.lopt import evaluate as ev
from stability.lopt import init_theta, star, zero_output_layer
from stability.lopt.io import save_theta
from stability.lopt.tasks import get_task
from stability.lopt.theta import MOMENTUM_DECAYS, RMS_DECAYS


@pytest.fixture(scope="module")
def task():
    return get_task("digits_mlp")


@pytest.fixture(scope="module")
def adam():
    return optax.adam(1e-2)


def test_inner_train_is_deterministic_float32_and_finite(task, adam):
    a = ev.inner_train(task, adam, 20, seed=[0, 1], record_every=10)
    b = ev.inner_train(task, adam, 20, seed=[0, 1], record_every=10)
    assert a.train_loss.shape == (2, 2) and a.test_accuracy.shape == (2, 1)
    assert a.train_loss.dtype == np.float32  # x64 is on in the tests
    for field in ("batch_loss", "train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not a.diverged_by().any()
    assert np.all(a.final_train_loss() < a.initial_loss)
    # seeds differ; the seed fixes the initial parameters, whatever the optimizer
    assert a.initial_loss[0] != a.initial_loss[1]


def test_divergence_is_flagged(task):
    rec = ev.inner_train(task, optax.adam(10.0), 20, seed=[0, 1], record_every=10)
    assert rec.diverged_by().all()
    assert np.all(rec.diverged_step == 10)
    assert rec.diverged_by(10).all()  # at or before: the window ending at 10 counts


def test_divergence_is_any_rise_above_the_initial_loss(task):
    # gradient ascent with a small step: the loss rises, slowly and finitely
    rec = ev.inner_train(task, optax.sgd(-1e-3), 20, seed=[0, 1], record_every=10)
    assert np.all(rec.final_train_loss() > rec.initial_loss)
    assert np.all(rec.final_train_loss() < 1.1 * rec.initial_loss)
    assert np.all(rec.diverged_step == 10) and np.all(rec.nonfinite_step == -1)


def test_nominal_only_equals_star_with_zero_output_layer():
    theta = zero_output_layer(init_theta(jax.random.key(1), heads=3))
    params = {"w": jnp.ones((3, 2), jnp.float32), "b": jnp.zeros(2, jnp.float32)}
    ref, ours = star(theta, nominal_stepsize=0.05), ev.nominal_only(0.05)
    # the optimizer of the analyses is the same nominal term, given STAR's decays as
    # STAR rounds them (float32); its default eps is STAR's
    analysed = optimizers.adam_aggmo(
        0.05,
        betas=[float(np.float32(b)) for b in MOMENTUM_DECAYS],
        beta2=float(np.float32(RMS_DECAYS[0])),
    )

    @jax.jit
    def run(params):
        def step(carry, t):
            g = jax.tree.map(lambda x: jnp.sin(x + t) + 0.1, carry[0][0])
            out = []
            for opt, (p, s) in zip((ref, ours, analysed), carry, strict=True):
                u, s = opt.update(g, s, p)
                out.append((optax.apply_updates(p, u), s))
            return tuple(out), None

        init = tuple((params, opt.init(params)) for opt in (ref, ours, analysed))
        steps = jnp.arange(4, dtype=jnp.float32)
        final, _ = jax.lax.scan(step, init, steps)
        return [p for p, _ in final]

    p_ref, *others = run(params)
    for p_other in others:
        for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_other), strict=True):
            assert b.dtype == jnp.float32
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_tuning_picks_the_best_grid_point(task):
    tuned = ev.tune_adam(
        task, [10, 20], seeds=[0], grid=(1e-4, 1e-2, 10.0), keep=2, record_every=10
    )
    assert tuned.best == (1e-2, 1e-2)
    assert np.argmin(tuned.scores[0]) == 1
    assert tuned.scores[0, 0] > tuned.scores[0, 1] < tuned.scores[0, 2]
    # successive halving: the worst value did not go on to the second horizon
    assert np.isnan(tuned.scores[1]).sum() == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--task", "no_such_task", "--theta", "x.npz"],
        ["evaluate", "--task", "digits_mlp", "--theta", "/no/such/theta.npz"],
        ["evaluate", "--task", "digits_mlp", "--horizons", "0,1"],
        ["evaluate", "--task", "digits_mlp", "--seeds", "-3"],
        ["evaluate", "--task", "digits_mlp", "--baselines", "sgd"],
    ],
)
def test_cli_bad_arguments_exit_2(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1


def test_cli_writes_json_csv_and_curves(tmp_path, capsys):
    theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    path = tmp_path / "star.npz"
    save_theta(path, theta, {"config": {"horizon": 10, "nominal_stepsize": 0.03}})
    out = tmp_path / "out"
    argv = ["evaluate", "--theta", str(path), "--task", "digits_mlp"]
    argv += ["--horizons", "1,2", "--seeds", "2", "--tuning-seeds", "1"]
    argv += ["--baselines", "adam", "--grid", "1e-3,3e-2", "--keep", "0"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "| digits_mlp | star |" in capsys.readouterr().out
    record = json.loads((out / "eval.json").read_text())
    with (out / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(record["rows"]) == 4  # (star, adam) x 2 horizons
    assert {r["optimizer"] for r in rows} == {"star", "adam"}
    assert {int(r["horizon"]) for r in rows} == {10, 20}
    assert record["tuning"][0]["best"][0] in (1e-3, 3e-2)
    assert all(r["diverged"] == "0" for r in rows if r["optimizer"] == "star")
    with np.load(out / "curves.npz") as curves:
        assert curves["digits_mlp/star/train_loss"].shape == (2, 20)


def test_cli_lists_a_task_in_eval_json_only_once_its_curves_are_written(
    tmp_path, monkeypatch
):
    """An evaluation that stops while writing its second task's files leaves an
    eval.json whose tasks are complete (reruns keep them and do the rest)."""
    theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    path = tmp_path / "star.npz"
    save_theta(path, theta, {"config": {"horizon": 5, "nominal_stepsize": 0.03}})
    out = tmp_path / "out"
    written = []

    def write_curves(table, where):
        if written:
            raise RuntimeError("stopped")
        written.append(where)
        real_write_curves(table, where)

    real_write_curves = ev.write_curves
    monkeypatch.setattr(ev, "write_curves", write_curves)
    argv = ["evaluate", "--theta", str(path), "--task", "digits_mlp,digits_mlp_tanh"]
    argv += ["--horizons", "1", "--seeds", "1", "--baselines", "none"]
    assert cli.main([*argv, "--out", str(out)]) != 0
    record = json.loads((out / "eval.json").read_text())
    assert [t["task"] for t in record["info"]["tasks"]] == ["digits_mlp"]
    with np.load(out / "curves.npz") as curves:
        assert {k.split("/")[0] for k in curves.files} == {"digits_mlp"}
