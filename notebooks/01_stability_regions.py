# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From a quadratic to a stability region
#
# An optimizer on a quadratic is a linear dynamical system: one step maps the joint
# state *(parameters, optimizer state)* linearly, and training converges iff the
# spectral radius of that map is below 1. This notebook goes from a noisy quadratic
# to a stability region, and checks the numeric region against the exact boundary
# derived symbolically.
#
# Set `STABILITY_QUICK=1` for small grids (the tests do).

# %%
import os

import jax

jax.config.update("jax_enable_x64", True)  # analyses run in float64

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sympy  # noqa: E402

from stability import analyses, operators, optimizers, plotting, problems  # noqa: E402
from stability.analyses import symbolic  # noqa: E402

QUICK = os.environ.get("STABILITY_QUICK", "") not in ("", "0")
GRID = 101 if QUICK else 401

# %% [markdown]
# ## Ten lines
#
# A 10-dimensional noisy quadratic with curvatures `1/i`, heavy ball on it, the
# closed loop taken by `jax.jacfwd` of the real optax update, its spectral radius,
# the region over (learning rate, momentum), and the exact boundary.

# %%
problem = problems.NoisyQuadratic.from_eigenvalues(
    problems.spectra.power_law(10), noise_var=0.01
)
loop = operators.closed_loop(optimizers.heavy_ball(lr=1.5, beta=0.9), problem)
rho = float(analyses.spectral_radius(np.asarray(loop.transition)))
lrs, betas = np.linspace(0.01, 4.5, GRID), np.linspace(-0.95, 0.99, GRID)
region = analyses.stability_region("heavy_ball", lr=lrs, beta=betas, curvature=1.0)
boundary = symbolic.stability_boundary("heavy_ball")  # Jury conditions, solved
x_star = sympy.lambdify(symbolic.BETA, boundary.x_star)(betas)
with plotting.style():
    ax = plotting.region(region, plt.figure(figsize=(5, 3.6)).gca(), x="beta", y="lr")
    plotting.boundary(ax, betas, x_star, label=f"exact: a h = {boundary.x_star}")
    ax.legend(loc="upper left")
print(f"joint loop {loop.transition.shape}, rho = {rho:.6f}")
print(f"exact: {boundary.lower} < a h < {boundary.x_star}, and", end=" ")
print(", ".join(f"{c} > 0" for c in boundary.parameter_conditions))

# %% [markdown]
# ## Checks
#
# The numeric region (closed-form per-mode blocks on a grid) and the exact boundary
# agree on every grid cell, and the joint Jacobian of the real optimizer has the same
# spectral radius as the largest per-mode block.

# %%
exact = lrs[:, None] < 2 * (1 + betas[None, :])
print("cells where numeric and exact disagree:", int(np.sum(region.stable != exact)))
per_mode = analyses.mode_radius(
    "heavy_ball", lr=1.5, curvature=np.diag(problem.hessian), beta=0.9
)
print("max per-mode radius:", float(np.max(per_mode)), " joint:", rho)
assert abs(float(np.max(per_mode)) - rho) < 1e-10

# %% [markdown]
# ## Theory predicts practice
#
# On this problem the largest curvature is 1, so heavy ball with momentum 0.9 is
# stable iff `a < 2 (1 + 0.9) = 3.8`. Just below, the expected loss from the exact
# moment recursion settles; just above, it diverges, and so do sampled runs.

# %%
steps = 150 if QUICK else 400
with plotting.style():
    fig, axes = plotting.figure(1, 2, width=7.0, height=2.8, sharey=True)
    for ax, lr in zip(axes[0], (3.7, 3.9), strict=True):
        opt = optimizers.heavy_ball(lr=lr, beta=0.9)
        loop = operators.closed_loop(opt, problem)
        exact_loss = problems.expected_losses(problem, loop, steps)
        key = jax.random.key(0)
        sim = problems.simulate(problem, opt, steps, key=key, num_seeds=64)
        plotting.loss_band(
            ax,
            np.asarray(sim.losses),
            exact=np.asarray(exact_loss),
            stationary=problems.stationary_loss(problem, loop),
        )
        r = float(analyses.spectral_radius(np.asarray(loop.transition)))
        ax.set_yscale("log")
        ax.set_title(f"a = {lr}: ρ = {r:.4f}")
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel("loss (band: 2 s.e. of 64 runs; dashed: exact)")

# %% [markdown]
# ## A boundary nobody tabulated
#
# AggMo (the mean of EMA momenta with decays 0.9, 0.99, 0.999, STAR's nominal
# direction) has a 4x4 block. Its exact boundary comes out of the Jury conditions as a
# rational number, and bisection on the numeric radius finds the same value.

# %%
aggmo = symbolic.stability_boundary("aggmo", betas=(0.9, 0.99, 0.999))
print(f"x* = {aggmo.x_star} = {aggmo.digits}, root leaves the disk at {aggmo.crossing}")
print("bisection:", analyses.max_stable_learning_rate("aggmo", 1.0))
print("the parameter block alone would say", 2 / np.mean([0.1, 0.01, 0.001]))
