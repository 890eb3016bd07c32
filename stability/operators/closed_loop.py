"""Closed-loop update operators: one optimizer step on a noisy quadratic, as a linear
map of the joint state ``z = (params, optimizer state)`` and the noise ``xi``.

``closed_loop`` takes the Jacobian of the *real* ``init``/``update`` functions with
``jax.jacfwd``, so one code path serves optax optimizers of every kind: exact for
linear ones, a linearisation at a point for nonlinear or learned ones (STAR
included).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse.linalg
from jax.flatten_util import ravel_pytree

from stability._validation import check_lr, check_spd, check_square
from stability.problems.quadratic import NoisyQuadratic


class ClosedLoop(NamedTuple):
    """``z' = transition @ z + noise_gain @ xi``: exact for a linear optimizer; for
    any other, the Jacobians at a point ``z*``, acting on deviations
    (``z' - F(z*) = transition @ (z - z*) + noise_gain @ xi`` to first order).

    ``transition`` has shape ``(d, d)`` over the joint state, whose first ``n``
    coordinates are the parameters; ``noise_gain`` has shape ``(d, n)``. ``exact``
    is False for a linearisation of a step that is not linear
    (:func:`closed_loop` finds out); a loop given by its matrices is exact.
    """

    transition: jax.Array
    noise_gain: jax.Array
    exact: bool = True

    @property
    def num_params(self) -> int:
        return self.noise_gain.shape[-1]

    @property
    def parameter_block(self) -> jax.Array:
        """The parameter-to-parameter block: what a non-joint analysis would look at."""
        n = self.num_params
        return self.transition[:n, :n]


# fields of optax.inject_hyperparams' states: constants of the loop, not its state (as
# state they would add an eigenvalue 1 each)
_FROZEN_FIELDS = ("hyperparams", "hyperparams_states")


def _frozen(path) -> bool:
    return any(getattr(key, "name", None) in _FROZEN_FIELDS for key in path)


def _split_state(state):
    """The state's dynamic leaves, and a function rebuilding the state from new values
    of them. Integer leaves (step counters) and injected hyperparameters are held
    fixed; every other floating leaf is dynamic, in ``jax.tree`` flattening order."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(state)
    leaves = [x for _, x in with_paths]
    is_float = [
        jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact) and not _frozen(path)
        for path, x in with_paths
    ]
    floats = [x for x, f in zip(leaves, is_float, strict=True) if f]

    def rebuild(new_floats):
        it = iter(new_floats)
        return jax.tree.unflatten(
            treedef,
            [next(it) if f else x for x, f in zip(leaves, is_float, strict=True)],
        )

    def select(s):
        return [x for x, f in zip(jax.tree.leaves(s), is_float, strict=True) if f]

    return floats, rebuild, select


def joint_state(params, state):
    """The joint state ``z``: ``params`` and the optimizer state's dynamic leaves,
    raveled into one vector (parameters first).

    Integer leaves (step counters) and the hyperparameters that
    ``optax.inject_hyperparams`` keeps in its state are constants of the loop, not
    part of ``z``: they stay at their value in ``state``. Every closed loop and step
    map in :mod:`stability.operators` flattens states this way.

    Returns:
      ``(z, unravel, ravel)``: the flat point, ``unravel(z) -> (params, state)``
      (the constants put back) and ``ravel(params, state) -> z`` for a state of the
      same structure.

    >>> import jax.numpy as jnp, optax
    >>> opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
    >>> z, unravel, ravel = joint_state(jnp.ones(3), opt.init(jnp.ones(3)))
    >>> z.shape                                  # params and the momentum only
    (6,)
    >>> bool(jnp.all(ravel(*unravel(2 * z)) == 2 * z))
    True
    """
    floats, rebuild, select = _split_state(state)
    z, unravel_flat = ravel_pytree((params, floats))

    def unravel(z):
        p, fl = unravel_flat(z)
        return p, rebuild(fl)

    def ravel(p, s):
        return ravel_pytree((p, select(s)))[0]

    return z, unravel, ravel


def step_function(
    optimizer: optax.GradientTransformation,
    problem: NoisyQuadratic,
    params=None,
    state=None,
):
    """The closed-loop step ``(z, xi) -> z'`` on raveled joint states, and the point
    ``z`` of ``(params, state)``.

    Returns ``(step, z)``. Integer leaves of ``state`` and injected hyperparameters
    are frozen at their given value.
    """
    if not isinstance(optimizer, optax.GradientTransformation) and not (
        callable(getattr(optimizer, "init", None))
        and callable(getattr(optimizer, "update", None))
    ):
        raise ValueError(
            f"optimizer: expected an optax GradientTransformation, got {optimizer!r}"
        )
    if not isinstance(problem, NoisyQuadratic):
        raise ValueError(
            "problem: expected a NoisyQuadratic (stability.problems.noisy_quadratic("
            f"hessian) builds one), got {type(problem).__name__}"
        )
    n = problem.dim
    dtype = jnp.zeros(()).dtype
    params = jnp.zeros(n, dtype) if params is None else jnp.asarray(params)
    if params.shape != (n,):
        raise ValueError(f"params: expected shape ({n},), got {params.shape}")
    if not jnp.issubdtype(params.dtype, jnp.floating):
        raise ValueError(f"params: expected a floating dtype, got {params.dtype}")
    state = optimizer.init(params) if state is None else state
    z, unravel, ravel = joint_state(params, state)
    h = jnp.asarray(problem.hessian, params.dtype)

    def step(z, xi):
        p, s = unravel(z)
        updates, new_state = optimizer.update(h @ (p - xi), s, p)
        return ravel(optax.apply_updates(p, updates), new_state)

    return step, z


def closed_loop(
    optimizer: optax.GradientTransformation,
    problem: NoisyQuadratic,
    params=None,
    state=None,
) -> ClosedLoop:
    """Jacobian of one optimizer step on ``problem`` over the joint state.

    The joint state is the parameters, then the state's floating leaves in
    ``jax.tree`` flattening order; integer leaves (step counters) and the
    hyperparameters that ``optax.inject_hyperparams`` keeps in its state are held
    fixed. The computation runs in ``params``' dtype.

    Args:
      optimizer: an optax ``GradientTransformation`` on a vector of parameters whose
        ``update(grads, state, params)`` needs nothing else (not, for example,
        ``optax.lbfgs``, which also needs the loss value, or ``optax.lookahead``).
      problem: the noisy quadratic; parameters are a vector of shape ``(n,)``.
      params: linearisation point (default zeros, the optimum).
      state: optimizer state at that point (default ``optimizer.init(params)``).
        At the optimum with a fresh state, optimizers that divide by
        ``sqrt(v)`` with ``eps`` outside the root (``optax.adam``) have no
        derivative there (NaN): linearise them at a point reached by training.

    Returns:
      :class:`ClosedLoop` taken at zero noise. Its ``exact`` flag records whether the
      step is linear (then the loop is exact everywhere): the step at two random
      points, one of unit size and one of size 1000 around ``z``, must match the
      first-order prediction to ``sqrt(eps)`` of the step's size; any nonlinearity
      (normalisation, clipping, a learned MLP) fails it.

    Raises:
      ValueError: ``optimizer`` is not an optax transformation, ``problem`` not a
        :class:`~stability.problems.NoisyQuadratic`, or ``params`` of a wrong shape.

    >>> from stability.optimizers import heavy_ball
    >>> from stability.problems import NoisyQuadratic
    >>> loop = closed_loop(heavy_ball(0.1, 0.9), NoisyQuadratic.from_eigenvalues([2.0]))
    >>> loop.transition.shape, loop.noise_gain.shape, loop.exact
    ((2, 2), (2, 1), True)
    """
    step, z = step_function(optimizer, problem, params, state)
    xi = jnp.zeros(problem.dim, z.dtype)
    transition, noise_gain = jax.jacfwd(step, argnums=(0, 1))(z, xi)
    exact = _is_linear(step, z, xi, transition, noise_gain)
    if not isinstance(exact, jax.core.Tracer):
        exact = bool(exact)
    return ClosedLoop(transition, noise_gain, exact)


def _is_linear(step, z, xi, transition, noise_gain):
    """Whether ``step`` equals its linearisation at ``(z, xi)`` at two random points
    (unit size and size 1000), as a JAX bool: True for linear optimizers up to
    rounding, False for a NaN."""
    rng = np.random.default_rng(0)
    base = step(z, xi)
    tol = np.sqrt(np.finfo(np.dtype(z.dtype)).eps)
    ok = jnp.asarray(True)
    for size in (1.0, 1e3):
        dz = jnp.asarray(size * rng.standard_normal(z.shape), z.dtype)
        dxi = jnp.asarray(size * rng.standard_normal(xi.shape), z.dtype)
        got = step(z + dz, xi + dxi)
        want = base + transition @ dz + noise_gain @ dxi
        scale = jnp.linalg.norm(want) + jnp.linalg.norm(base) + size
        ok = ok & (jnp.linalg.norm(got - want) <= tol * scale)
    return ok


def nominal_closed_loop(hessian, P, alpha, preconditioner=None) -> ClosedLoop:
    """The explicit ``A = I - C (alpha I + P) H`` of the nominal + linear update, with
    noise gain ``I - A`` (``C = I`` when no preconditioner)."""
    h = check_spd("hessian", hessian)
    n = h.shape[0]
    p = check_square("P", P, n=n)
    alpha = check_lr("alpha", alpha)
    c = (
        np.eye(n)
        if preconditioner is None
        else check_square("preconditioner", preconditioner, n=n)
    )
    gain = c @ (alpha * np.eye(n) + p) @ h
    return ClosedLoop(np.eye(n) - gain, gain)


def linear_operator(fn, z) -> scipy.sparse.linalg.LinearOperator:
    """The Jacobian of ``fn`` at ``z`` as a SciPy ``LinearOperator`` built from
    Jacobian-vector products (``jax.linearize``): no dense matrix is formed. For
    Arnoldi on large step maps."""
    z = jnp.asarray(z)
    _, jvp = jax.linearize(fn, z)
    jvp = jax.jit(jvp)
    d = z.size

    def matvec(v):
        v = jnp.asarray(np.asarray(v).reshape(z.shape), z.dtype)
        return np.asarray(jvp(v), dtype=np.float64).reshape(-1)

    return scipy.sparse.linalg.LinearOperator((d, d), matvec=matvec, dtype=np.float64)
