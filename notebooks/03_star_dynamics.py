# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # STAR analysed as a dynamical system
#
# STAR (the learned optimizer of Harrison, Metz & Sohl-Dickstein) is a nonlinear map
# of the joint state *(parameters, momenta, second moment, Adafactor accumulators)*.
# On a quadratic, `stability.operators.closed_loop` linearises one real STAR step with
# `jax.jacfwd`, and the spectral radius of that Jacobian says whether small
# perturbations grow. This notebook compares that prediction with what STAR actually
# does along its own trajectory.
#
# **Which STAR.** First the untrained STAR with a zero output layer: its MLP outputs
# zero, the blackbox term vanishes and STAR is exactly its nominal term, AdamAggMo with
# step `nominal_stepsize`; its instability can be derived by hand. Then the shipped
# meta-trained STAR (`stability/lopt/thetas/star.npz`), where nothing can.
#
# Set `STABILITY_QUICK=1` for shorter runs (the tests do).

# %%
import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stability import analyses, operators, optimizers, plotting, problems  # noqa: E402
from stability.lopt import init_theta, star, zero_output_layer  # noqa: E402
from stability.lopt.dynamics import linearized_star_along_trajectory  # noqa: E402

QUICK = os.environ.get("STABILITY_QUICK", "") not in ("", "0")
STEPS = 5000 if QUICK else 12000
NOMINAL = 1.0

theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
opt = star(theta, nominal_stepsize=NOMINAL)

# %% [markdown]
# ## The untrained STAR is its nominal term
#
# With a zero output layer STAR's update equals `optimizers.adam_aggmo` (mean of three
# EMA momenta over `sqrt(v + 1e-6)`, no bias correction) with learning rate
# `nominal_stepsize`, up to STAR keeping its decays in float32.

# %%
reference = optimizers.adam_aggmo(NOMINAL)
params = jnp.linspace(-1.0, 1.0, 6)
s_star, s_ref = opt.init(params), reference.init(params)
worst = 0.0
for g in jax.random.normal(jax.random.key(1), (20, 6)):
    u_star, s_star = opt.update(g, s_star, params)
    u_ref, s_ref = reference.update(g, s_ref, params)
    worst = max(worst, float(jnp.max(jnp.abs(u_star - u_ref) / jnp.abs(u_ref))))
print(f"max relative difference over 20 steps: {worst:.2e}")

# %% [markdown]
# ## One step, linearised
#
# On an 8-dimensional quadratic the joint state has 8 x (1 parameter + 3 momenta +
# 1 second moment + 3 unfactored accumulators) = 64 coordinates. Early on the second
# moment is large and the effective step `a / sqrt(v)` small; the eigenvalues sit
# inside the unit circle, many at the accumulator decays 0.9, 0.99, 0.999.

# %%
lam = problems.spectra.log_uniform(8, 1e-2, 1.0)
problem = problems.NoisyQuadratic.from_eigenvalues(lam)  # noiseless
h = jnp.asarray(problem.hessian)


def trajectory(problem, num_steps, key):
    """Losses, parameters and STAR states along one run (noise draws from key)."""
    factor = jnp.asarray(problem.noise_factor())

    def step(carry, k):
        x, s = carry
        d = x - factor @ jax.random.normal(k, x.shape)
        u, s_new = opt.update(h @ d, s, x)
        return (x + u, s_new), (0.5 * d @ (h @ d), x, s)

    x0 = jnp.asarray(problem.x0)
    keys = jax.random.split(key, num_steps)
    return jax.jit(lambda: jax.lax.scan(step, (x0, opt.init(x0)), keys)[1])()


_, xs, states = trajectory(problem, 51, jax.random.key(0))
early = operators.closed_loop(
    opt, problem, xs[50], jax.tree.map(lambda a: a[50], states)
)
print("joint Jacobian:", early.transition.shape)
with plotting.style():
    fig, axes = plotting.figure(1, 1, width=3.6, height=3.4)
    r = float(analyses.spectral_radius(np.asarray(early.transition)))
    plotting.eigenvalues(
        np.asarray(analyses.eigenvalues(np.asarray(early.transition))),
        axes[0, 0],
        title=f"step 50: ρ = {r:.4f}",
    )

# %% [markdown]
# ## Along the trajectory
#
# Linearise every 25 steps. Without gradient noise the second moment decays like
# `0.999^t`, the effective step grows, and once the per-mode AggMo limit
# `a h / sqrt(v + 1e-6) < x* = 103.17` fails the linearisation turns unstable
# (`rho > 1`) — and the observed loss jumps by orders of magnitude at the same steps.

# %%
# theta None: the zero-output-layer STAR above; the noiseless problem, one run
along = linearized_star_along_trajectory(
    None, problem, STEPS, nominal_stepsize=NOMINAL, every=25
)
at, rho, v = along.steps, along.rho[0], along.second_moment[0]
x_star = analyses.max_stable_learning_rate("aggmo", 1.0)
margin = np.max(NOMINAL * lam / np.sqrt(v + 1e-6), axis=1) / x_star
losses = along.loss[0]


def plot_along(losses, at, rho, margin, margin_label):
    """Observed loss above; rho and the nominal margin below; rho >= 1 shaded."""
    with plotting.style():
        fig, axes = plotting.figure(2, 1, width=6.0, height=4.4, sharex=True)
        axes[0, 0].plot(np.maximum(losses, 1e-300), linewidth=0.6)
        axes[0, 0].set_yscale("log")
        axes[0, 0].set_ylabel("loss")
        plotting.radius_trace(axes[1, 0], at, rho, label="ρ, linearised STAR step")
        axes[1, 0].plot(at, margin, linestyle="--", label=margin_label)
        axes[1, 0].set_yscale("log")
        axes[1, 0].set_xlabel("step")
        axes[1, 0].legend(loc="lower right")
        for ax in axes[:, 0]:
            plotting.shade(ax, at, rho >= 1)


plot_along(losses, at, rho, margin, "frozen-v AggMo margin")
late = at >= 100
unstable = at[late & (rho >= 1)]
means = losses[: STEPS // 50 * 50].reshape(-1, 50).mean(axis=1)  # 50-step windows
spike = 50 * (np.flatnonzero(means[2:] > 100 * np.minimum.accumulate(means)[1:-1]) + 2)
print("first checkpoint (t >= 100) with rho >= 1:", unstable[:1])
print("first margin crossing:", at[late & (margin >= 1)][:1])
print("first loss spike (50-step mean > 100x the best so far):", spike[:1])
plt.show()

# %% [markdown]
# The linearisation is a prediction from local information only: it flags the
# instability when the frozen-second-moment AggMo analysis does, and the loss spikes
# right after. With gradient noise the second moment stays bounded away from zero and
# the loop stays stable (see `figures/fig09_linearized_star.png`).

# %% [markdown]
# ## The meta-trained STAR
#
# The shipped theta was meta-trained on an MLP for 1000-step episodes, not on a
# quadratic. Run at its own nominal step on the same noiseless quadratic, its nominal
# part stays far inside the AggMo limit, so any instability comes from the learned
# term: the linearisation says whether it does.

# %%
from stability.lopt.evaluate import learned_optimizer  # noqa: E402
from stability.lopt.io import SHIPPED_THETAS  # noqa: E402

trained = learned_optimizer(SHIPPED_THETAS / "star.npz")
a = trained.nominal_stepsize  # the nominal step it was meta-trained with
along_t = linearized_star_along_trajectory(
    trained.theta, problem, STEPS, nominal_stepsize=a, every=25
)
rho_t, losses_t = along_t.rho[0], along_t.loss[0]
margin_t = np.max(a * lam / np.sqrt(along_t.second_moment[0] + 1e-6), axis=1)
plot_along(losses_t, at, rho_t, margin_t / x_star, "nominal part margin")
late = at >= 100
best = int(np.argmin(losses_t))
print(f"nominal step {a:.4g}; largest nominal margin {np.max(margin_t) / x_star:.3g}")
print(f"checkpoints (t >= 100) with rho >= 1: {np.mean(rho_t[late] >= 1):.0%}")
print(f"median rho (t >= 100): {np.median(rho_t[late]):.3f}")
print(f"lowest loss {losses_t[best]:.2e} at step {best}; final {losses_t[-1]:.2e}")
plt.show()

# %% [markdown]
# The learned term, not the nominal one, makes the joint step unstable near the
# optimum, and the loss indeed climbs away from its minimum; but it climbs far more
# slowly than `rho^t`. The learned term's inputs are normalised by their own RMS, so
# its step does not shrink as the gradient does: the linearisation is exact for one
# step and predicts the direction (away from the optimum), not the rate over many.
# Past its meta-training horizon on the MLP it was trained on, the same STAR diverges
# (`figures/fig07_long_horizon.png`).
