# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Track the edge of stability of your own network
#
# On a quadratic, gradient descent with step `lr` converges exactly when every
# curvature of the loss is below `2 / lr`. A network's loss is not a quadratic, but
# its Hessian at the current parameters plays the same part: its top eigenvalue, the
# *sharpness*, tells whether the linearised training step grows or shrinks small
# perturbations. Full-batch gradient descent on a network typically lets the
# sharpness rise until it reaches `2 / lr` and then hovers there, at the *edge of
# stability*, while the loss keeps falling (Cohen et al., 2021).
#
# Adam rescales each coordinate by its preconditioner `D = sqrt(v_hat) + eps`, so the
# quantity that matters is the *preconditioned sharpness*, the top eigenvalue of
# `D^(-1/2) H D^(-1/2)`. With the preconditioner frozen, Adam's first moment is an
# EMA momentum with decay `b1`, stable up to `(2 + 2 b1) / ((1 - b1) lr)`, which is
# `38 / lr` for `b1 = 0.9` (Cohen et al., 2022).
#
# `stability.lopt.edge.track` measures both along training, for any loss written in
# plain JAX and any optax optimizer. This notebook tracks a small two-layer network
# trained with `optax.adam`, then with `optax.sgd`.
#
# Set `STABILITY_QUICK=1` for shorter runs (the tests do).

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from stability import plotting
from stability.lopt.edge import track
from stability.operators import threshold

QUICK = os.environ.get("STABILITY_QUICK") == "1"
STEPS = 1000 if QUICK else 2000

# %% [markdown]
# ## Your network and its loss
#
# Anything works that `jax.grad` can differentiate twice: parameters are any pytree
# of floating arrays, and the loss is a function `loss_fn(params, batch)` returning
# a scalar. Here: a tanh network with one hidden layer of 32 units, fitting a smooth
# target of 8 inputs from 256 examples with the squared error. Keep one `loss_fn`
# object per run: `track` compiles its kernels for it.

# %%
n, d, width = 256, 8, 32
key_x, key_teacher, key_init = jax.random.split(jax.random.key(0), 3)
x = jax.random.normal(key_x, (n, d))
teacher = jax.random.normal(key_teacher, (d, 1))
y = jnp.tanh(x @ teacher) + 0.5 * jnp.sin(3 * x[:, :1])
batch = (x, y)


def init(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (d, width)) / jnp.sqrt(d),
        "b1": jnp.zeros(width),
        "w2": jax.random.normal(k2, (width, 1)) / jnp.sqrt(width),
        "b2": jnp.zeros(1),
    }


def loss_fn(params, batch):
    inputs, targets = batch
    hidden = jnp.tanh(inputs @ params["w1"] + params["b1"])
    return 0.5 * jnp.mean((hidden @ params["w2"] + params["b2"] - targets) ** 2)


params = init(key_init)
print(f"loss at initialisation: {float(loss_fn(params, batch)):.4f}")

# %% [markdown]
# ## Adam
#
# `track` trains full-batch on `batch` for `steps` steps and, at step 0 and every
# `every` steps, measures the sharpness and, with `preconditioner="adam"`, the
# preconditioned sharpness read from Adam's state (Lanczos on Hessian-vector
# products). `threshold` is only recorded beside the measurements, for the plots:
# `stability.operators.threshold` gives it for `gd`, `heavy_ball`, `adam` and
# `aggmo`.

# %%
lr = 0.01
adam_run = track(
    loss_fn,
    params,
    optax.adam(lr, b1=0.9),
    batch,
    steps=STEPS,
    every=25,
    preconditioner="adam",
    threshold=threshold("adam", lr, beta=0.9),
)
adam_run.info["lr"] = lr  # the plots label a run by its learning rate
print(f"threshold 38 / lr = {adam_run.info['threshold']:.0f}")
print("  step      loss  sharpness  preconditioned")
for c in adam_run.checkpoints[::8]:
    pre = c.preconditioned_sharpness
    pre = "-" if pre is None else f"{pre:.0f}"
    print(f"{c.step:6d}  {c.loss:.2e}  {c.sharpness:9.3f}  {pre:>14}")

# %% [markdown]
# The preconditioned sharpness climbs to `38 / lr` and stays near it while the
# raw sharpness (grey) goes on growing slowly: Adam adapts its preconditioner so
# that the preconditioned loop sits at its own edge.

# %%
with plotting.style():
    fig, axes = plotting.figure(2, 1, height=5.2)
    plotting.edge_loss(adam_run, axes[0, 0])
    plotting.edge(adam_run, axes[1, 0])
    axes[0, 0].set_title(f"Adam, lr {lr}, full batch")
plt.show()


# %% [markdown]
# One number per run: the median of the tracked quantity over the second half of
# training, divided by the threshold (1 is the edge). `run.series(field)` gives any
# field over the checkpoints as an array.


# %%
def late_ratio(run):
    steps = run.series("step")
    values = run.series(run.info["quantity"])
    late = steps >= run.info["steps"] / 2
    return float(np.median(values[late]) / run.info["threshold"])


adam_ratio = late_ratio(adam_run)
print(f"Adam: late median preconditioned sharpness / (38 / lr) = {adam_ratio:.3f}")
assert 0.8 < adam_ratio < 1.2, "this run did not settle at its edge"

# %% [markdown]
# ## Gradient descent
#
# The same network with `optax.sgd`: no preconditioner, so the sharpness itself is
# compared with `2 / lr`. At `lr = 0.5` the initial sharpness (about 3) is below
# `2 / lr = 4`; it rises to 4 and hovers. At `lr = 1` it is already above `2 / lr
# = 2`: training diverges at once, and `track` stops where the loss exceeds its
# initial value or stops being finite (`diverged=True`), keeping what it recorded.

# %%
gd_runs = {
    lr: track(
        loss_fn,
        params,
        optax.sgd(lr),
        batch,
        steps=STEPS,
        every=25,
        threshold=threshold("gd", lr),
    )
    for lr in (0.5, 1.0)
}
for lr, run in gd_runs.items():
    run.info["lr"] = lr
    last = run.checkpoints[-1]
    print(
        f"GD lr {lr}: threshold {run.info['threshold']:g}, sharpness at step 0 "
        f"{run.checkpoints[0].sharpness:.3f}, last checkpoint step {last.step}"
        f"{' (diverged)' if last.diverged else ''}"
    )
gd_ratio = late_ratio(gd_runs[0.5])
print(f"GD lr 0.5: late median sharpness / (2 / lr) = {gd_ratio:.3f}")
assert 0.8 < gd_ratio < 1.2 and gd_runs[1.0].checkpoints[-1].diverged

with plotting.style():
    fig, axes = plotting.figure(1, 1, height=2.8)
    plotting.edge(gd_runs[0.5], axes[0, 0])
    axes[0, 0].set_title("GD, lr 0.5, full batch")
plt.show()

# %% [markdown]
# ## On your own network
#
# * **Minibatches.** Pass a jittable function `step -> batch` instead of one batch,
#   and optionally the batch the measurements use as `measure_batch` (default
#   `batches(0)`).
# * **Other optimizers.** Any optax transformation trains; the sharpness is always
#   measured. `preconditioner` reads `"adam"` or `"star"` states, or takes a
#   function `state -> D`. Thresholds: `threshold("heavy_ball", lr, beta=b)` for
#   `optax.sgd(lr, momentum=b)`, `threshold("adam", lr, beta=b1)` for Adam.
# * **The real step.** `step_radius=True` also measures the spectral radius of the
#   Jacobian of one whole training step over parameters and optimizer state
#   (Arnoldi; costly on a large state): below 1, small perturbations of the whole
#   state shrink from one step to the next.
# * **As it goes.** `log=print` prints a line per checkpoint; `callback` receives
#   each `EdgeCheckpoint` as it is recorded.
# * **Registered tasks.** `stability edge --task digits_mlp --optimizer adam --steps
#   2000 --every 50 --out DIR` does the same from the command line and writes
#   `DIR/edge.jsonl` and `DIR/edge.png`.
