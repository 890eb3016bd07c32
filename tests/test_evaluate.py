"""lopt.evaluate and ``stability evaluate``: tiny horizons, one shared task."""

import csv
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stability import cli, optimizers
from stability.lopt import _engine, baselines, init_theta, star, zero_output_layer
from stability.lopt import evaluate as ev
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


def test_tuning_scores_are_means_over_the_tuning_seeds(task, adam, monkeypatch):
    """A tuning score is the mean final training-split loss of the runs of seed s
    from TUNING_ROOT (not the held-out runs of the same seeds); a grid value whose
    loss is non-finite scores inf and ranks last."""
    tuned = ev.tune_adam(task, 10, seeds=[0, 1, 2], grid=(1e-2,), record_every=10)
    held = ev.inner_train(task, adam, 10, seed=[0, 1, 2], record_every=10)
    monkeypatch.setattr(_engine, "HELD_OUT_ROOT", ev.TUNING_ROOT)
    runs = ev.inner_train(task, adam, 10, seed=[0, 1, 2], record_every=10)
    losses = runs.final_train_loss().astype(np.float64)
    np.testing.assert_allclose(tuned.scores[0, 0], np.mean(losses), rtol=1e-6)
    assert abs(np.median(losses) - np.mean(losses)) > 1e-3  # the mean, not median
    # the tuning and held-out seeds start from different parameters
    assert not np.any(np.isin(runs.initial_loss, held.initial_loss))
    blown = ev.tune_adam(task, 10, seeds=[0], grid=(1e-4, 1e-2, 1e30), record_every=10)
    assert blown.scores[0, 2] == np.inf and blown.best == (1e-2,)


def test_tuning_grid_is_the_half_decades_from_1e_4_to_1():
    np.testing.assert_allclose(
        ev.TUNING_GRID,
        [1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2, 10**-1.5, 0.1, 10**-0.5, 1.0],
        rtol=1e-15,
    )


def test_screening_must_lie_before_the_first_horizon(task):
    with pytest.raises(ValueError, match="screen"):
        ev.tune_adam(task, [10, 20], seeds=[0], screen=[10], record_every=10)
    with pytest.raises(ValueError, match="screen"):  # a fraction in (0, 1)
        ev.evaluate(None, task, (1,), 1, base_horizon=10, screen=1.0, baselines=())


class _Stop(Exception):
    """Raised by a stand-in once it has seen its arguments."""


def test_evaluate_runs_the_documented_seeds_and_horizons(task, monkeypatch):
    """Held-out seeds 0 .. seeds - 1, tuning seeds 0 .. tuning_seeds - 1, horizons
    in multiples of the first (main) theta's meta-training horizon."""
    calls = []

    def inner_train(task, optimizer, num_steps, *, seed, record_every, eval_at):
        calls.append((num_steps, list(seed), tuple(eval_at)))
        raise _Stop

    def tune(family, task, horizons, seeds, *args):
        calls.append((family, tuple(horizons), list(seeds)))
        raise _Stop

    monkeypatch.setattr(ev, "inner_train", inner_train)
    monkeypatch.setattr(baselines, "tune", tune)
    main = ev.LearnedOptimizer("main", optax.sgd(0.1), {}, {}, 7)
    other = ev.LearnedOptimizer("other", optax.sgd(0.1), {}, {}, 11)
    with pytest.raises(_Stop):
        ev.evaluate(main, task, horizons=(2, 1), seeds=3, extra=[other], baselines=())
    assert calls == [(14, [0, 1, 2], (7, 14))]
    calls.clear()
    with pytest.raises(_Stop):
        ev.evaluate(None, task, (1, 3), base_horizon=10, tuning_seeds=2)
    assert calls == [("adam", (10, 30), [0, 1])]


def test_tune_learned_tunes_stars_nominal_step_like_adams_lr(task, tmp_path):
    """The ``<label>_tuned`` row: the theta's STAR with its nominal step picked from
    the grid on the tuning seeds, the way Adam's learning rate is."""
    theta = init_theta(jax.random.key(1), heads=3)
    path = tmp_path / "star.npz"
    save_theta(
        path,
        theta,
        {"config": {"horizon": 6, "nominal_stepsize": 1e-3, "precondition": False}},
    )
    grid = (1e-3, 3e-2)
    table = ev.evaluate(
        path,
        task,
        horizons=(1,),
        seeds=2,
        tuning_seeds=1,
        grid=grid,
        baselines=(),
        tune_learned=True,
    )
    rows = {r["optimizer"]: r for r in table.rows}
    assert set(rows) == {"star_no_precond", "star_no_precond_tuned"}
    tuned = table.tuning[(task.name, "star_no_precond_tuned")]
    scores = tuned.scores[0]
    assert tuned.best[0] == grid[int(np.argmin(scores))]
    assert rows["star_no_precond_tuned"]["hyperparameter"] == tuned.best[0]
    # the tuned row is that STAR (preconditioning off, as configured) at that step
    opt = star(theta, nominal_stepsize=tuned.best[0], precondition=False)
    rec = ev.inner_train(
        task, opt, 6, seed=[0, 1], record_every=table.info["record_every"]
    )
    np.testing.assert_allclose(
        rows["star_no_precond_tuned"]["train_loss_mean"],
        np.mean(rec.final_train_loss()),
        rtol=1e-5,
    )


def _fake_runs(initial, windows, record_every=5):
    """A finished population of runs: per window (mean, max, non-finite, train)."""
    runs = object.__new__(_engine.Runs)
    runs.runner = types.SimpleNamespace(record_every=record_every)
    runs.initial = np.asarray(initial, np.float32)
    runs.windows = [tuple(np.asarray(v) for v in w) for w in windows]
    runs.evals = []
    return runs


def test_divergence_is_a_rise_strictly_above_the_initial_loss():
    ok, bad = [False, False, False], [True, False, False]
    rec = _fake_runs(
        [2.0, 2.0, 2.0],
        [
            ([1.0] * 3, [3.0] * 3, bad, [2.0, 1.9, 2.0]),  # equal: not diverged
            ([1.0] * 3, [3.0] * 3, ok, [2.0, 2.5, 1.0]),
            ([1.0] * 3, [3.0] * 3, ok, [2.0, 1.0, 2.0 + 1e-6]),
        ],
    ).record(0.0)
    np.testing.assert_array_equal(rec.steps, [5, 10, 15])
    np.testing.assert_array_equal(rec.diverged_step, [5, 10, 15])
    np.testing.assert_array_equal(rec.nonfinite_step, [5, -1, -1])
    still = _fake_runs([2.0], [([1.0], [3.0], [False], [2.0])] * 2).record(0.0)
    np.testing.assert_array_equal(still.diverged_step, [-1])


def test_row_statistics_at_a_horizon():
    rec = ev.TrainRecord(
        steps=np.array([5, 10, 15, 20]),
        batch_loss=np.ones((3, 4)),
        batch_loss_max=np.array(
            [[1.0, 6.0, 1.0, 1.0], [1.0, 1.0, 1.0, 100.0], [2.0, 2.0, 2.0, 2.0]]
        ),
        train_loss=np.array(
            [[2.0, 1.0, 1.0, 1.0], [2.0, 1.5, 9.0, 9.0], [4.0, 3.5, 3.0, 3.0]]
        ),
        initial_loss=np.array([2.0, 2.0, 4.0]),
        eval_steps=np.array([10, 20]),
        test_loss=np.array([[1.0, 1.0], [2.0, 9.0], [6.0, 3.0]]),
        test_accuracy=np.array([[0.5, 0.5], [0.6, 0.1], [1.0, 1.0]]),
        diverged_step=np.array([10, 15, -1]),
        nonfinite_step=np.array([10, 20, -1]),
        seconds=0.0,
    )
    row = ev._stats(rec, 10)
    assert row["seeds"] == 3
    np.testing.assert_allclose(row["train_loss_mean"], 2.0)  # (1 + 1.5 + 3.5) / 3
    np.testing.assert_allclose(row["test_loss_mean"], 3.0)
    np.testing.assert_allclose(row["test_accuracy_mean"], 0.7)  # the mean, not 0.6
    # events at or before step 10 only: seed 0 diverged and went non-finite at 10
    assert row["diverged"] == 1 and row["nonfinite"] == 1
    # largest minibatch loss up to step 10 (its window included) over the initial
    np.testing.assert_allclose(row["max_batch_loss"], 3.0)  # 6 / 2
    end = ev._stats(rec, 20)
    assert end["diverged"] == 2 and end["nonfinite"] == 2
    np.testing.assert_allclose(end["max_batch_loss"], 50.0)  # 100 / 2


def test_default_record_every_gives_about_50_windows_on_the_shortest_horizon():
    assert _engine.default_record_every((500, 1000)) == 10
    assert _engine.default_record_every((1000, 500, 10000)) == 10
    assert _engine.default_record_every((120, 300)) == 2  # divides 120 and 300
    assert _engine.default_record_every((30,)) == 1


def test_profile_settings_fill_in_defaults():
    assert ev.profile_settings("quick", "digits_mlp") == {
        "multiples": (1,),
        "tuning_seeds": 1,
        "screen": 0.1,
    }
    assert ev.profile_settings("default", "mnist_cnn") == {
        "multiples": (1,),
        "tuning_seeds": 1,
        "screen": 0.1,
    }
    assert ev.profile_settings("default", "digits_mlp") == {
        "multiples": (1, 10, 100),
        "tuning_seeds": 2,
        "screen": None,
    }
    with pytest.raises(ValueError, match="profile"):
        ev.profile_settings("fast", "digits_mlp")


def test_project_costs_by_hand():
    rates = {
        name: {"compile_s": 1000.0 * (i + 1), "cpu_step_s": 0.5 * (i + 1)}
        for i, name in enumerate(("star", "small_fc_lopt", "adam", "nominal"))
    }
    # horizons 100, 1000; 3 seeds, 2 tuning seeds, grid 9, keep 3, no screening
    got = ev.project_costs(rates, 100, (1, 10))
    assert got["star: held-out runs"] == 1000 + 3 * 1000 * 0.5
    assert got["small_fc_lopt: held-out runs"] == 2000 + 3 * 1000 * 1.0
    # tuning: 9 * 2 * 100 + 3 * 2 * 900 member-steps; two member counts compile
    assert got["adam: tuning"] == 2 * 3000 + (1800 + 5400) * 1.5
    assert got["nominal: held-out runs"] == 4000 + 3 * (100 + 1000) * 2.0
    assert got["total"] == sum(v for k, v in got.items() if k != "total")
    # screening at 0.1: 9 * 2 * 10 + 3 * 2 * (1000 - 10)
    screened = ev.project_costs(rates, 100, (1, 10), screen=0.1)
    assert screened["adam: tuning"] == 2 * 3000 + (180 + 5940) * 1.5
    # keep larger than the grid: everything runs on, one member count
    everything = ev.project_costs(rates, 100, (1, 10), keep=20, grid_size=4)
    assert everything["adam: tuning"] == 3000 + 4 * 2 * 1000 * 1.5


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
    rc, err = _cli_status(argv, capsys)
    assert rc == 2 and err and len(err.splitlines()) == 1


def _theta_file(tmp_path, horizon=10):
    """A STAR theta (output layer zero) saved with a meta-training config."""
    theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    path = tmp_path / "star.npz"
    save_theta(path, theta, {"config": {"horizon": horizon, "nominal_stepsize": 0.03}})
    return path


def _cli_status(argv, capsys):
    """The exit status of ``stability ARGV`` and what it wrote to stderr."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    return rc, capsys.readouterr().err.strip()


def test_cli_writes_json_csv_and_curves(tmp_path, capsys):
    path = _theta_file(tmp_path)
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
    path = _theta_file(tmp_path, horizon=5)
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


def _cli_evaluate_call(argv, tmp_path, monkeypatch):
    """The arguments ``stability evaluate ARGV`` passes to ``ev.evaluate``."""
    path = _theta_file(tmp_path)
    seen = {}

    def fake_evaluate(*args, **kwargs):
        seen.update(args=args, **kwargs)
        raise _Stop

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    with pytest.raises(_Stop):
        cli.main(["evaluate", "--theta", str(path), *argv])
    return seen


def test_cli_passes_its_options_to_evaluate(tmp_path, monkeypatch):
    argv = ["--task", "digits_mlp_tanh", "--horizons", "1,3", "--seeds", "2"]
    argv += ["--tuning-seeds", "1", "--screen", "0.5", "--keep", "0"]
    argv += ["--grid", "1e-3,3e-2", "--base-horizon", "7", "--record-every", "5"]
    seen = _cli_evaluate_call([*argv, "--baselines", "adam"], tmp_path, monkeypatch)
    assert seen["args"][1:] == ("digits_mlp_tanh", (1, 3), 2)
    assert seen["args"][0].label == "star"
    assert seen["tuning_seeds"] == 1 and seen["screen"] == 0.5
    assert seen["keep"] is None  # --keep 0: every grid value goes on
    assert tuple(seen["grid"]) == (1e-3, 3e-2)
    assert seen["base_horizon"] == 7 and seen["record_every"] == 5
    assert tuple(seen["baselines"]) == ("adam",)
    seen = _cli_evaluate_call(
        ["--task", "digits_mlp", "--keep", "2", "--baselines", "none"],
        tmp_path,
        monkeypatch,
    )
    assert seen["keep"] == 2 and tuple(seen["baselines"]) == ()


@pytest.mark.parametrize("profile", ["default", "quick"])
def test_cli_takes_unset_options_from_the_profile(profile, tmp_path, monkeypatch):
    argv = ["--task", "mnist_cnn", "--profile", profile]
    seen = _cli_evaluate_call(argv, tmp_path, monkeypatch)
    settings = ev.PROFILES[profile].get("mnist_cnn", ev.PROFILES[profile]["*"])
    assert tuple(seen["args"][2]) == tuple(settings["multiples"])
    assert seen["tuning_seeds"] == settings.get("tuning_seeds", 2)
    assert seen["screen"] == settings.get("screen")
    assert tuple(seen["grid"]) == tuple(ev.TUNING_GRID)
    assert tuple(seen["baselines"]) == ("adam", "nominal")


@pytest.mark.parametrize(
    "argv, names",
    [
        (["--horizons", "0,1"], "--horizons"),
        (["--seeds", "0"], "--seeds"),
        (["--tuning-seeds", "0"], "--tuning-seeds"),
        (["--grid", "0,1e-3"], "--grid"),
        (["--grid", "1e-3,inf"], "--grid"),
        (["--screen", "1"], "--screen"),
        (["--screen", "0"], "--screen"),
        (["--keep", "-1"], "--keep"),
        (["--nominal-stepsize", "0"], "--nominal-stepsize"),
    ],
)
def test_cli_bad_settings_exit_2_before_evaluating(
    argv, names, tmp_path, monkeypatch, capsys
):
    path = _theta_file(tmp_path)

    def fake_evaluate(*args, **kwargs):
        raise AssertionError("evaluate ran")

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    argv = ["evaluate", "--theta", str(path), "--task", "digits_mlp", *argv]
    rc, err = _cli_status(argv, capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and names in err


def test_a_bounded_star_is_labelled_and_built_bounded(tmp_path):
    theta = init_theta(jax.random.key(1), heads=3)
    path = tmp_path / "bounded.npz"
    config = {"horizon": 6, "nominal_stepsize": 0.01, "blackbox_bound": 0.5}
    save_theta(path, theta, {"config": config})
    lo = ev.learned_optimizer(path)
    assert lo.label == "star_bounded"
    params = {"w": jnp.linspace(-1, 1, 6).reshape(2, 3)}
    grads = {"w": jnp.cos(3 * params["w"])}
    got = lo.optimizer.update(grads, lo.optimizer.init(params), params)[0]
    want = star(theta, nominal_stepsize=0.01, blackbox_bound=0.5)
    expected = want.update(grads, want.init(params), params)[0]
    np.testing.assert_array_equal(got["w"], expected["w"])
