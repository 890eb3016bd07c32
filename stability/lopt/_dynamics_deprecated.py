"""Old names of :mod:`stability.lopt.dynamics`, served for one release with a
``DeprecationWarning`` naming the replacement: ``dynamics.__getattr__`` calls
:func:`moved`."""

import warnings

import jax.numpy as jnp
import numpy as np

from stability import operators


def joint_state(params, state):
    """Deprecated alias of :func:`stability.operators.joint_state` (which also holds
    ``optax.inject_hyperparams``' hyperparameters fixed)."""
    return operators.joint_state(params, state)


def step_map(task, optimizer, params, state, batch):
    """Deprecated: :func:`stability.operators.training_step` with ``task.loss``."""
    return operators.training_step(task.loss, optimizer, params, state, batch)


def top_eigenvalues(fn, z, k=6, *, tol=1e-6, ncv=None, maxiter=None):
    """Deprecated: :func:`stability.analyses.arnoldi` on
    :func:`stability.operators.linear_operator` ``(fn, z)``. Returns
    ``(eigenvalues, matvecs)`` as before, NaNs and 0 where the Jacobian-vector
    product is not finite."""
    from stability.lopt.dynamics import _top_pairs

    d = int(jnp.size(z))
    if not 0 < k < d - 1:
        raise ValueError(f"k: ARPACK needs 0 < k < d - 1 = {d - 1}, got {k}")
    pairs = _top_pairs(operators.linear_operator(fn, z), k, tol, ncv, maxiter)
    if pairs is None:
        return np.full(k, np.nan + 0j), 0
    return pairs.eigenvalues, pairs.matvecs


# old name -> what the warning recommends
MOVED = {
    "joint_state": "stability.operators.joint_state",
    "step_map": "stability.operators.training_step(task.loss, ...)",
    "top_eigenvalues": "stability.analyses.arnoldi on operators.linear_operator",
}


def moved(name: str):
    """``dynamics.<name>`` for an old name (with a ``DeprecationWarning``), else
    ``AttributeError`` as for any missing attribute."""
    if name not in MOVED:
        raise AttributeError(
            f"module 'stability.lopt.dynamics' has no attribute {name!r}"
        )
    warnings.warn(
        f"stability.lopt.dynamics.{name} is deprecated and will be removed in the "
        f"next release; use {MOVED[name]}",
        DeprecationWarning,
        stacklevel=3,
    )
    return globals()[name]
