"""STAR's update split into its blackbox and nominal terms (stability.lopt.anatomy)."""

import jax
import numpy as np
import pytest

from stability.lopt import anatomy
from stability.lopt.star import ADAFACTOR_DECAYS, MOMENTUM_DECAYS, RMS_DECAYS
from stability.lopt.theta import init_theta, zero_output_layer

THETA = init_theta(jax.random.key(3), heads=3)
POINTS = [0, 2, 5]


def _run(theta, **kwargs):
    return anatomy.update_anatomy(
        theta, "digits_mlp", checkpoints=POINTS, seeds=[0, 1], **kwargs
    )


def test_the_two_terms_add_up_to_the_step():
    rec = _run(THETA, nominal_stepsize=0.01)
    assert rec.loss.shape == (2, 3) and rec.steps.tolist() == POINTS
    nb, ng, n = rec.blackbox_norm, rec.nominal_norm, rec.total_norm
    assert np.all(nb > 0) and np.all(ng > 0)
    assert np.all(n <= nb + ng + 1e-6) and np.all(n >= np.abs(nb - ng) - 1e-6)
    np.testing.assert_allclose(rec.ratio, nb / ng, rtol=1e-5)
    # the nominal term is Adam-like: it points along the gradient at step 0
    assert np.all(rec.cos_nominal[:, 0] > 0.9)
    assert np.all(rec.gain_max <= 1e3 + 1e-3) and np.all(rec.gain_median > 0)
    # the nominal magnitude exp(exp_mult m_g) is close to 1 for exp_mult = 1e-3
    np.testing.assert_allclose(rec.nominal_magnitude, 1.0, atol=0.05)
    assert rec.initial_loss.shape == (2,) and not rec.diverged.any()


def test_zero_output_layer_has_no_blackbox_term_and_no_nominal_none():
    rec = _run(zero_output_layer(THETA), nominal_stepsize=0.01)
    np.testing.assert_array_equal(rec.blackbox_norm, 0.0)
    np.testing.assert_array_equal(rec.ratio, 0.0)
    np.testing.assert_allclose(rec.total_norm, rec.nominal_norm, rtol=1e-6)
    alone = _run(THETA, nominal=False)
    np.testing.assert_array_equal(alone.nominal_norm, 0.0)
    assert np.all(np.isinf(alone.ratio))


def test_seeds_are_the_evaluations_held_out_runs():
    """Seed s starts where stability.lopt.evaluate's held-out seed s starts."""
    from stability.lopt import evaluate
    from stability.lopt.star import star

    rec = anatomy.update_anatomy(
        THETA, "digits_mlp", checkpoints=[0, 3], seeds=[4], nominal_stepsize=0.01
    )
    run = evaluate.inner_train(
        "digits_mlp", star(THETA, nominal_stepsize=0.01), 3, seed=[4], record_every=3
    )
    np.testing.assert_allclose(rec.initial_loss, run.initial_loss, rtol=1e-6)
    np.testing.assert_allclose(rec.loss[:, -1], run.final_train_loss(), rtol=1e-5)


def test_learned_decays_of_zero_offsets_are_the_initial_ones():
    d = anatomy.learned_decays(THETA)
    np.testing.assert_allclose(d["momentum"], MOMENTUM_DECAYS, rtol=1e-6)
    np.testing.assert_allclose(d["rms"], RMS_DECAYS[0], rtol=1e-6)
    np.testing.assert_allclose(d["adafactor"], ADAFACTOR_DECAYS, rtol=1e-6)


def test_checkpoint_steps_and_bad_input():
    pts = anatomy.checkpoint_steps(100_000)
    assert pts[0] == 0 and pts[-1] == 99_999 and np.all(np.diff(pts) > 0)
    assert anatomy.checkpoint_steps(1).tolist() == [0]
    with pytest.raises(ValueError, match="^steps, checkpoints:"):
        anatomy.update_anatomy(THETA, "digits_mlp")
    with pytest.raises(ValueError, match="^checkpoints:"):
        anatomy.update_anatomy(THETA, "digits_mlp", checkpoints=[3, 2])
    with pytest.raises(ValueError, match="^seed:"):
        anatomy.update_anatomy(THETA, "digits_mlp", steps=3, seeds=[])
    with pytest.raises(ValueError, match="^steps:"):
        anatomy.checkpoint_steps(0)


def test_blackbox_bound_scales_the_blackbox_term_per_tensor():
    """With ``blackbox_bound=c`` each tensor's blackbox term is the unbounded one
    times ``min(1, c rms(f_g) / rms(f_b))``; the nominal term is unchanged."""
    import jax.numpy as jnp

    from stability.lopt.star import star

    params = {
        "w": jnp.linspace(-1, 1, 12).reshape(3, 4),
        "b": jnp.asarray([0.3, -0.2, 0.1]),
    }
    grads = jax.tree.map(lambda p: jnp.sin(7 * p) + 0.1, params)

    def step(**kw):
        opt = star(THETA, nominal_stepsize=1e-3, **kw)
        return opt.update(grads, opt.init(params), params)[0]

    free, black = step(), step(nominal=False)
    nominal = jax.tree.map(lambda f, b: f - b, free, black)
    for c in (0.3, 1e6):
        bounded = step(blackbox_bound=c)
        for k in params:
            f_b, f_g = np.asarray(black[k]), np.asarray(nominal[k])
            rms_b, rms_g = np.sqrt(np.mean(f_b**2)), np.sqrt(np.mean(f_g**2))
            scale = min(1.0, c * rms_g / rms_b)
            np.testing.assert_allclose(
                np.asarray(bounded[k]), scale * f_b + f_g, rtol=1e-5, atol=1e-9
            )
            if c < 1:
                assert scale < 1  # the bound binds in this example
    for bad, match in ((0.0, "> 0"), (-1.0, ">= 0"), (float("nan"), "finite")):
        with pytest.raises(ValueError, match=f"^blackbox_bound: must be {match}"):
            star(THETA, blackbox_bound=bad)
    with pytest.raises(ValueError, match="^blackbox_bound:"):
        star(THETA, blackbox_bound=1.0, nominal=False)


def test_anatomy_sees_the_bounded_blackbox_term():
    free = _run(THETA, nominal_stepsize=0.01)
    bounded = _run(THETA, nominal_stepsize=0.01, blackbox_bound=0.1)
    assert np.all(bounded.ratio <= 0.1 * (1 + 1e-4))
    assert np.all(free.ratio[:, 1:] > 0.1)  # so the bound binds here


def test_cosine_survives_tiny_vectors_and_is_zero_for_a_zero_one():
    import jax.numpy as jnp

    a = jnp.asarray([3e-30, -4e-30, 1e-38], jnp.float32)
    b = jnp.asarray([3.0, -4.0, 0.0], jnp.float32)
    assert abs(float(anatomy._cos(a, b)) - 1.0) < 1e-5
    assert float(anatomy._cos(jnp.zeros(3), b)) == 0.0
