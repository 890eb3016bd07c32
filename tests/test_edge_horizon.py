"""STAR past its meta-training horizon on a real network (stability.lopt.edge_horizon),
the float64 step radius of the tracker, and the drawing."""

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import pytest

from stability.lopt.edge import EdgeCheckpoint, EdgeRun, track
from stability.lopt.edge_horizon import (
    HorizonRecord,
    HorizonRun,
    _event,
    compute,
    past_horizon,
    radius_flag,
    summary,
)
from stability.lopt.edge_setup import edge_optimizer
from stability.plotting.edge import edge, edge_horizon


def _run(losses, radii, psharps, threshold=100.0, diverged=False):
    points = [
        EdgeCheckpoint(100 * i, loss, 1.0, p, threshold, r, False)
        for i, (loss, r, p) in enumerate(zip(losses, radii, psharps, strict=True))
    ]
    if diverged:
        points[-1] = points[-1]._replace(diverged=True)
    info = {"quantity": "preconditioned_sharpness", "threshold": threshold}
    return EdgeRun(points, info)


def test_event_diverged_climbed_or_none():
    ones = [1.0] * 4
    assert _event(_run([2.0, 1.0, 0.5, 3.0], ones, ones, diverged=True)) == (
        300,
        "diverged",
    )
    # 1e-3 is the best so far at step 200; 2e-2 > 10x it at step 300
    assert _event(_run([2.0, 1e-2, 1e-3, 2e-2], ones, ones)) == (300, "climbed")
    assert _event(_run([2.0, 1e-2, 1e-3, 9e-3], ones, ones)) == (None, "none")


def _record():
    # T = 100: the radius flag is 1.01; step 0 is never counted
    climbs = _run(
        [2.0, 1e-3, 1e-4, 1e-2, 1e-2],
        [5.0, 1.02, 1.0, 1.5, 1.005],
        [None, 10.0, 200.0, 50.0, 150.0],
    )
    calm = _run([2.0, 1.0, 0.5, 0.2, 0.1], [1.2] * 5, [None, 1.0, 2.0, 3.0, 4.0])
    runs = [
        HorizonRun("a", "paper STAR", climbs, *_event(climbs)),
        HorizonRun("a", "nominal term", calm, *_event(calm)),
    ]
    return HorizonRecord(runs, 100, {})


def test_summary_splits_the_checkpoints_at_the_event():
    assert radius_flag(100) == pytest.approx(1.01)
    numbers = summary(_record())
    assert numbers["a, paper STAR: event"] == "climbed at step 300"
    key = "a, paper STAR: rho > 1.01, fraction before / after the event"
    assert numbers[key] == "0.50 (2) / 0.50 (2)"  # 1.02, 1.0 | 1.5, 1.005
    key = "a, paper STAR: psharp >= threshold, fraction before / after the event"
    assert numbers[key] == "0.50 (2) / 0.50 (2)"  # 0.1, 2 | 0.5, 1.5
    assert numbers["a, paper STAR: first step with rho > 1.01"] == "100"
    assert numbers["a, paper STAR: first step with psharp >= threshold"] == "200"
    assert numbers["a, paper STAR: median / max rho"] == "1.012 / 1.5"
    assert numbers["a, paper STAR: max psharp / threshold"] == "2"
    assert numbers["a, nominal term: event"].startswith("none")
    key = "a, nominal term: rho > 1.01, fraction before / after the event"
    assert numbers[key] == "1.00 (4) / -"


def test_edge_horizon_draws_one_column_per_task():
    axes = edge_horizon(_record())
    assert axes.shape == (3, 1)
    assert len(axes[0, 0].get_lines()) >= 2  # two losses and the event's cross
    assert axes[0, 0].get_yscale() == "log"
    plt.close("all")


def test_edge_labels_a_run_without_a_learning_rate():
    run = track(
        lambda p, b: 0.5 * jnp.sum(b * p**2),
        jnp.ones(2),
        optax.sgd(0.1),
        jnp.array([1.0, 3.0]),
        steps=2,
        every=1,
    )
    assert "lr" not in run.info
    ax = edge(run)
    assert ax.get_legend().get_texts()[0].get_text() == "run 1"
    plt.close("all")


def test_float64_step_radius_matches_the_float32_one_on_a_quadratic():
    curv = jnp.array([1.0, 3.0, 7.0], jnp.float32)
    kw = dict(steps=4, every=2, step_radius=True, radius_tol=1e-10)
    lo = track(
        lambda p, b: 0.5 * jnp.sum(b * p**2),
        jnp.ones(3, jnp.float32),
        optax.sgd(0.1),
        curv,
        **kw,
    )
    hi = track(
        lambda p, b: 0.5 * jnp.sum(b * p**2),
        jnp.ones(3, jnp.float32),
        optax.sgd(0.1),
        curv,
        radius_dtype=jnp.float64,
        **kw,
    )
    for a, b in zip(lo.checkpoints, hi.checkpoints, strict=True):
        assert b.step_radius == pytest.approx(0.9, rel=1e-12)  # max |1 - 0.1 h|
        assert a.step_radius == pytest.approx(0.9, rel=1e-6)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="optimizers"):
        past_horizon((("digits_mlp", 10),), ("adam",), every=(5,))
    with pytest.raises(ValueError, match="every"):
        past_horizon((("digits_mlp", 10),), ("star",), every=(5, 5))
    with pytest.raises(ValueError, match="quality"):
        compute("medium")
    with pytest.raises(ValueError, match="radius_dtype"):
        track(
            lambda p, b: jnp.sum(p**2),
            jnp.ones(2),
            optax.sgd(0.1),
            None,
            steps=1,
            every=1,
            radius_dtype=jnp.int32,
        )


@pytest.mark.slow
def test_nominal_term_on_digits_mlp_records_both_criteria():
    rec = past_horizon(
        (("digits_mlp", 20),), ("nominal",), every=(10,), radius_k=2, radius_tol=1e-3
    )
    (r,) = rec.runs
    assert rec.horizon == 1000 and r.label == "nominal term"
    assert [c.step for c in r.run.checkpoints] == [0, 10, 20]
    lr = rec.settings["nominal_step"]
    assert r.run.info["threshold"] == pytest.approx(
        edge_optimizer("nominal", lr=lr).threshold
    )
    assert rec.settings["jacobian_dtype"] == "float64"
    radius = r.run.series("step_radius")
    assert np.all(np.isfinite(radius)) and np.all(radius > 0.99)
    assert np.isnan(r.run.series("preconditioned_sharpness")[0])
    assert np.all(r.run.series("preconditioned_sharpness")[1:] > 0)
