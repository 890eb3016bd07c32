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
# # The paper's claims, their hypotheses and counterexamples
#
# Every claim of Harrison, Metz & Sohl-Dickstein (NeurIPS 2022) that the toolkit
# checks is a module of `stability.lemmas` with the same shape: a corrected
# `STATEMENT`, named `hypotheses(instance)`, the `bounds(instance)` it gives, an exact
# `conclusion(instance)`, a sampler of instances satisfying every hypothesis, and a
# seeded `counterexample(drop)` search for each hypothesis that cannot be dropped.
# Here we walk through them: a random instance where the claim holds, then, for each
# droppable hypothesis, the counterexample the search finds.
#
# Set `STABILITY_QUICK=1` for fewer random instances (the tests do).

# %%
import os

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from stability import lemmas, plotting  # noqa: E402

QUICK = os.environ.get("STABILITY_QUICK", "") not in ("", "0")
np.set_printoptions(precision=4, suppress=True)


def show(module, instance):
    """Hypotheses, bounds and conclusion of one instance."""
    hyp = module.hypotheses(instance)
    failed = [k for k, v in hyp.items() if not v]
    print("  hypotheses:", "all hold" if not failed else f"FAIL: {', '.join(failed)}")
    bounds = {k: round(float(v), 6) for k, v in module.bounds(instance).items()}
    print("  bounds:", bounds)
    print("  conclusion holds:", bool(module.conclusion(instance)))


# %% [markdown]
# ## Each claim: one instance where it holds, one counterexample per dropped hypothesis

# %%
for module in lemmas.claims():
    print(f"=== {module.TITLE} ({module.NAME})")
    print(module.STATEMENT)
    print("- a random instance satisfying every hypothesis:")
    show(module, module.sample(np.random.default_rng(0)))
    for drop, kind in module.DROPS.items():
        found = module.counterexample(drop, kind=kind, seed=0)
        print(f"- drop {drop!r} ({kind} counterexample):", end="")
        if found is None:
            print(" none found within the search budget")
            continue
        print()
        show(module, found)
    print()

# %% [markdown]
# ## Theorem 1 without symmetry, in the complex plane
#
# The search finds a non-normal 2x2 learned term `P` whose (real) eigenvalues lie
# strictly inside Theorem 1's bounds, yet the closed loop `A = I - (alpha I + P) H`
# has an eigenvalue outside the unit circle.

# %%
nominal = lemmas.claims()[0]
assert nominal.NAME == "nominal"
inst = nominal.counterexample("P_symmetric_or_commuting", seed=0)
A = np.eye(len(inst.H)) - (inst.alpha * np.eye(len(inst.H)) + inst.P) @ inst.H
b = nominal.bounds(inst)
print("eig(P) =", np.linalg.eigvals(inst.P).real, "bounds:", b)
with plotting.style():
    fig, axes = plotting.figure(1, 1, width=3.6, height=3.4)
    plotting.eigenvalues(
        np.linalg.eigvals(A),
        axes[0, 0],
        title=f"eig(A), ρ = {np.max(np.abs(np.linalg.eigvals(A))):.3f}",
    )

# %% [markdown]
# ## The report
#
# `stability.lemmas.report` checks every claim on random instances satisfying its
# hypotheses and runs every counterexample search; `stability reproduce` writes it into
# `REPORT.md`.

# %%
rows = lemmas.report(num_instances=20 if QUICK else 200)
print(lemmas.format_report(rows))
assert all(r.holds for r in rows)
