r"""Matrix-free operators of a real training loss: Hessian-vector products, the
preconditioned Hessian, the stability threshold of an optimizer's linearisation, and
the Jacobian of one full training step.

Everything here acts on flat vectors over the raveled parameters (``ravel_pytree``
order) and is jitted once per loss (and optimizer): the functions passed in are
static arguments, so keep the same ``loss_fn`` object along a run. Calling pattern::

    op = hessian_operator(loss_fn, params, batch)          # scipy LinearOperator
    d = diagonal_preconditioner(state, "adam")             # sqrt(v_hat) + eps
    pop = hessian_operator(loss_fn, params, batch, preconditioner=d)
    lam = analyses.lanczos(op).eigenvalues[0]              # the sharpness
    lam_p = analyses.lanczos(pop).eigenvalues[0]           # preconditioned sharpness
    lam_p < threshold("adam", lr, beta=0.9)                # 38 / lr: stable

    jac, z = step_jacobian(loss_fn, optimizer, params, state, batch)
    analyses.arnoldi(jac).eigenvalues                      # the real step's spectrum

Why those thresholds: with the preconditioner frozen, a step of a diagonal method
near a minimum is the per-mode linear loop of its momentum family on the curvatures
of :math:`D^{-1/2} H D^{-1/2}`, so the loop is stable iff that matrix's largest
eigenvalue :math:`\lambda` has :math:`\mathrm{lr}\,\lambda` below the family's
per-mode boundary (:mod:`stability.optimizers.modes`). Gradient descent and heavy
ball have :math:`D = I`.

References:
  Cohen, Kaur, Li, Kolter & Talwalkar, "Gradient Descent on Neural Networks
  Typically Occurs at the Edge of Stability", ICLR 2021.
  Cohen, Ghorbani, Krishnan, Agarwal, Medapati, Badura, Suo, Cardoze, Nado, Dahl &
  Gilmer, "Adaptive Gradient Methods at the Edge of Stability", 2022.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse.linalg
from jax.flatten_util import ravel_pytree

from stability._validation import check_betas, check_scalar
from stability.operators.closed_loop import joint_state

__all__ = [
    "THRESHOLD_FAMILIES",
    "diagonal_preconditioner",
    "hessian_operator",
    "hvp",
    "step_jacobian",
    "threshold",
    "training_step",
]

THRESHOLD_FAMILIES = ("gd", "heavy_ball", "ema_momentum", "adam", "aggmo")
_PRECONDITIONERS = ("auto", "adam", "star")
STAR_EPS = 1e-6  # STAR's output preconditioner is rsqrt(v + 1e-6)


# -- validation -----------------------------------------------------------------------


def _check_params(params):
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("params: expected a pytree with at least one array")
    for x in leaves:
        if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
            raise ValueError(
                f"params: expected floating arrays, got dtype {jnp.asarray(x).dtype}"
            )
    return params


def _check_loss(loss_fn, params, batch):
    """The loss must run on ``(params, batch)`` and return a real scalar."""
    if not callable(loss_fn):
        raise ValueError(f"loss_fn: expected a callable, got {loss_fn!r}")
    _check_params(params)
    try:
        out = jax.eval_shape(loss_fn, params, batch)
    except (TypeError, ValueError, IndexError, KeyError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"batch: loss_fn(params, batch) fails on these params and batch: {first}"
        ) from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"loss_fn: must return a scalar, got {shape}")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loss_fn: must return a floating scalar, got {out.dtype}")


def _finite(name: str, x: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: {what} is non-finite (NaN or inf)")
    return x


# -- Hessian-vector products ----------------------------------------------------------


@partial(jax.jit, static_argnums=0)
def _hvp_tree(loss_fn, params, batch, v):
    # forward-over-reverse: one JVP of the gradient
    grad = lambda p: jax.grad(loss_fn)(p, batch)
    return jax.jvp(grad, (params,), (v,))[1]


@partial(jax.jit, static_argnums=0)
def _hvp_flat(loss_fn, params, batch, scale, v):
    """``scale * H (scale * v)`` on flat vectors (``scale = 1`` gives ``H v``)."""
    flat, unravel = ravel_pytree(params)
    v = (scale * v).astype(flat.dtype)
    hv = ravel_pytree(_hvp_tree(loss_fn, params, batch, unravel(v)))[0]
    return scale * hv


def hvp(loss_fn, params, batch, v):
    r"""Hessian-vector product :math:`\nabla^2 L(\theta)\, v` of ``loss_fn`` at
    ``params`` on ``batch``, forward-over-reverse and jitted (one JVP of the
    gradient, about the cost of two to three gradients).

    Args:
      loss_fn: ``(params, batch) -> scalar``; a static argument of the jitted kernel.
      params: the point, a pytree of floating arrays.
      batch: the data the loss takes (a full batch or one fixed minibatch).
      v: a pytree of ``params``' structure.
    Returns:
      ``H v`` with ``params``' structure.
    Raises:
      ValueError: a non-scalar loss, ``params`` and ``batch`` that do not match, a
        ``v`` of another structure, or a non-finite product.

    >>> import jax.numpy as jnp
    >>> loss = lambda p, b: jnp.sum(b * p**2)        # H = diag(2 b)
    >>> hvp(loss, jnp.ones(2), jnp.array([1.0, 3.0]), jnp.ones(2)).tolist()
    [2.0, 6.0]
    """
    _check_loss(loss_fn, params, batch)
    if jax.tree.structure(v) != jax.tree.structure(params) or any(
        jnp.shape(a) != jnp.shape(b)
        for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(params), strict=True)
    ):
        raise ValueError("v: must have the structure and shapes of params")
    out = _hvp_tree(loss_fn, params, batch, v)
    for leaf in jax.tree.leaves(out):
        _finite("params", np.asarray(leaf), "the Hessian-vector product here")
    return out


def hessian_operator(
    loss_fn, params, batch, *, preconditioner=None
) -> scipy.sparse.linalg.LinearOperator:
    r"""The Hessian of ``loss_fn`` at ``params`` on ``batch`` as a symmetric SciPy
    ``LinearOperator`` on flat vectors in the parameters' dtype (float32 parameters
    give a float32 operator: a float64 vector would only be rounded on the way
    in), or the preconditioned Hessian
    :math:`D^{-1/2} H D^{-1/2}` when ``preconditioner`` gives the diagonal
    :math:`D`.

    The preconditioned Hessian is what a diagonal method with a frozen
    preconditioner (step :math:`-\mathrm{lr}\, D^{-1} m`) sees: it is similar to
    :math:`D^{-1} H`, so its top eigenvalue, against :func:`threshold`, decides
    the linearised stability.

    Args:
      loss_fn: ``(params, batch) -> scalar``.
      params: the point, a pytree of floating arrays.
      batch: the data.
      preconditioner: ``D``, a pytree like ``params`` with positive finite entries
        (see :func:`diagonal_preconditioner`), or ``None``.
    Returns:
      a ``LinearOperator`` of shape ``(n, n)``, ``n`` the number of parameters;
      each product raises ``ValueError`` (naming ``params``) if it is non-finite.

    >>> import jax.numpy as jnp, numpy as np
    >>> loss = lambda p, b: jnp.sum(b * p**2)
    >>> op = hessian_operator(loss, jnp.ones(2), jnp.array([1.0, 3.0]),
    ...                       preconditioner=jnp.array([2.0, 3.0]))
    >>> op.matvec(np.ones(2)).round(6).tolist()       # diag(2, 6) / diag(2, 3)
    [1.0, 2.0]
    """
    _check_loss(loss_fn, params, batch)
    return _hessian_operator(loss_fn, params, batch, preconditioner)


def _preconditioner_scale(preconditioner, params, dtype):
    """``D^{-1/2}`` as a flat vector (a scalar 1 without a preconditioner): the
    symmetric scaling of ``D^{-1/2} H D^{-1/2}``; ``D`` must be positive and finite."""
    if preconditioner is None:
        return jnp.ones((), dtype)
    d = _flat_like("preconditioner", preconditioner, params)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError("preconditioner: entries must be positive and finite")
    return jnp.asarray(1 / np.sqrt(d), dtype)


def _hessian_operator(loss_fn, params, batch, preconditioner):
    """:func:`hessian_operator` without checking the loss on the batch again (the
    tracker checks it once per run: tracing the loss costs more than a product)."""
    leaves = jax.tree.leaves(params)
    n = sum(int(np.size(x)) for x in leaves)
    dtype = jnp.result_type(*leaves)  # ravel_pytree's dtype, without the copy
    scale = _preconditioner_scale(preconditioner, params, dtype)

    def matvec(v):
        v = np.asarray(v, dtype).reshape(-1)  # one compiled kernel: the params' dtype
        _finite("v", v, "the vector")
        out = np.asarray(_hvp_flat(loss_fn, params, batch, scale, v))
        return _finite("params", out, "the Hessian-vector product here")

    return scipy.sparse.linalg.LinearOperator(
        (n, n), matvec=matvec, rmatvec=matvec, dtype=np.dtype(dtype)
    )


def _flat_like(name, tree, params) -> np.ndarray:
    if jax.tree.structure(tree) != jax.tree.structure(params):
        raise ValueError(f"{name}: must have the structure of params")
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(params), strict=True):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(
                f"{name}: leaf shape {jnp.shape(a)} does not match params' "
                f"{jnp.shape(b)}"
            )
    return np.concatenate(
        [np.asarray(x, np.float64).reshape(-1) for x in jax.tree.leaves(tree)]
    )


# -- preconditioners from optimizer states ------------------------------------------


def _find(state, fields: tuple):
    """The first node of ``state`` (depth first) with all of ``fields``."""
    found = []

    def visit(node):
        if found:
            return
        if all(hasattr(node, f) for f in fields):
            found.append(node)
            return
        if isinstance(node, tuple | list):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            for child in node.values():
                visit(child)

    visit(state)
    return found[0] if found else None


def diagonal_preconditioner(
    state,
    kind: str = "auto",
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
):
    r"""The diagonal :math:`D` that a diagonal adaptive method divides its step by,
    read from its optimizer state (a pytree like the parameters).

    * ``"adam"`` (``optax.adam``, ``adamw``, ... any state holding a
      ``ScaleByAdamState``): :math:`D = \sqrt{\hat v + \epsilon_{root}} + \epsilon`
      with optax's bias correction :math:`\hat v = v / (1 - b_2^{t})`, ``t`` the
      state's count (steps taken), as the next update would use it if :math:`v`
      stayed put. Pass the optimizer's own ``b2``, ``eps`` and ``eps_root``.
    * ``"star"`` (STAR, small_fc_lopt, the nominal-only optimizer: a state with a
      ``second_moment`` field): :math:`D = \sqrt{v + 10^{-6}}`, the inverse of
      STAR's output preconditioner ``rsqrt(v + 1e-6)`` (no bias correction).
    * ``"auto"``: whichever of the two the state holds (Adam first).

    Raises:
      ValueError: naming ``state`` when it holds no such preconditioner, or an
        Adam state that has taken no step (its :math:`\hat v` is undefined).

    >>> import jax.numpy as jnp, optax
    >>> opt = optax.adam(0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> _, s = opt.update(p, opt.init(p), p)
    >>> diagonal_preconditioner(s, "adam").round(6).tolist()   # |g| + eps
    [1.0, 2.0]
    """
    if kind not in _PRECONDITIONERS:
        raise ValueError(f"kind: expected one of {_PRECONDITIONERS}, got {kind!r}")
    b2 = check_scalar("b2", b2, low=0.0, high=1.0, high_open=True)
    eps = check_scalar("eps", eps, low=0.0)
    eps_root = check_scalar("eps_root", eps_root, low=0.0)
    if kind in ("auto", "adam"):
        adam = _find(state, ("count", "mu", "nu"))
        if adam is not None:
            t = int(np.asarray(adam.count))
            if t < 1:
                raise ValueError(
                    "state: Adam has taken no step; its preconditioner is undefined"
                )
            correction = 1 - b2**t
            return jax.tree.map(
                lambda v: jnp.sqrt(v / correction + eps_root) + eps, adam.nu
            )
        if kind == "adam":
            raise ValueError("state: holds no Adam second moment (ScaleByAdamState)")
    star = _find(state, ("second_moment",))
    if star is None:
        raise ValueError(
            f"state: holds no {'STAR' if kind == 'star' else 'Adam or STAR'} "
            "second moment to precondition with"
        )
    return jax.tree.map(lambda v: jnp.sqrt(v + STAR_EPS), star.second_moment)


# -- thresholds -----------------------------------------------------------------------


def threshold(family: str, lr: float, *, beta=None, betas=None) -> float:
    r"""The largest stable top eigenvalue of the linearised loop of ``family`` at
    step size ``lr``: the Hessian's (``gd``, ``heavy_ball``) or the preconditioned
    Hessian's with the preconditioner frozen (``adam``, ``ema_momentum`` on a
    preconditioned step, ``aggmo`` for STAR's nominal AdamAggMo term).

    ============== =================================== =====================
    ``gd``         :math:`2 / \mathrm{lr}`
    ``heavy_ball`` :math:`2 (1 + \beta) / \mathrm{lr}`  ``m' = beta m + g``
    ``ema_momentum``, ``adam``
                   :math:`(2 + 2\beta) / ((1 - \beta)\, \mathrm{lr})`
                                                       ``m' = beta m + (1-beta) g``
    ``aggmo``      :math:`x^*(\beta_1..\beta_k) / \mathrm{lr}`
                                                       mean of EMA momenta
    ============== =================================== =====================

    :math:`x^*` is the exact per-mode boundary of
    :func:`stability.analyses.max_stable_learning_rate` (bisection on the closed
    form, to 1e-15 relative; about 103.17 for betas 0.9, 0.99, 0.999). For STAR pass
    the decays the optimizer actually uses (a theta's learned decays). Adam's
    bias correction of the first moment is ignored (it tends to 1).

    >>> threshold("adam", 0.01, beta=0.9)
    3800.0000000000005
    >>> round(threshold("aggmo", 1.0, betas=(0.9, 0.99, 0.999)), 3)
    103.169
    """
    if family not in THRESHOLD_FAMILIES:
        raise ValueError(
            f"family: expected one of {THRESHOLD_FAMILIES}, got {family!r}"
        )
    lr = check_scalar("lr", lr, low=0.0, low_open=True)
    needs_beta = family in ("heavy_ball", "ema_momentum", "adam")
    if needs_beta and beta is None:
        raise ValueError(f"beta: {family} needs its momentum decay")
    if not needs_beta and beta is not None:
        raise ValueError(f"beta: {family} takes no beta")
    if family != "aggmo" and betas is not None:
        raise ValueError(f"betas: only aggmo takes them, not {family}")
    if family == "gd":
        return 2.0 / lr
    if family == "heavy_ball":
        beta = check_scalar(
            "beta", beta, low=-1.0, high=1.0, low_open=True, high_open=True
        )
        return 2.0 * (1.0 + beta) / lr
    if family in ("ema_momentum", "adam"):
        beta = check_scalar("beta", beta, low=0.0, high=1.0, high_open=True)
        return (2.0 + 2.0 * beta) / ((1.0 - beta) * lr)
    betas = check_betas("betas", (0.9, 0.99, 0.999) if betas is None else betas)
    from stability.analyses.regions import max_stable_learning_rate

    return max_stable_learning_rate("aggmo", 1.0, betas=betas) / lr


# -- the Jacobian of one training step ------------------------------------------------


def training_step(
    loss_fn, optimizer: optax.GradientTransformation, params, state, batch
):
    """One training step ``z -> z'`` on the raveled joint state ``z = (params,
    state's floating leaves)``, and the point ``z``.

    As in :func:`stability.operators.step_function` (both flatten by
    :func:`stability.operators.joint_state`), integer leaves (step counters) and
    injected hyperparameters are frozen at their value in ``state``. The step
    is ``grads = grad(loss_fn)(params, batch)``, ``optimizer.update(grads, state,
    params)``, ``optax.apply_updates``.

    Returns:
      ``(step, z)``: a pure function of a flat vector, and the flat point.
    """
    _check_loss(loss_fn, params, batch)
    z, unravel, ravel = joint_state(params, state)

    def step(z):
        p, s = unravel(z)
        grads = jax.grad(loss_fn)(p, batch)
        updates, new_state = optimizer.update(grads, s, p)
        return ravel(optax.apply_updates(p, updates), new_state)

    return step, z


@partial(jax.jit, static_argnums=(0, 1))
def _step_jvp(loss_fn, optimizer, params, state, batch, v):
    step, z = training_step(loss_fn, optimizer, params, state, batch)
    return jax.jvp(step, (z,), (v.astype(z.dtype),))[1]


def step_jacobian(
    loss_fn, optimizer: optax.GradientTransformation, params, state, batch
) -> tuple[scipy.sparse.linalg.LinearOperator, jax.Array]:
    r"""The Jacobian of one full training step over (parameters, optimizer state),
    :math:`\partial z' / \partial z` at ``(params, state)`` on ``batch``, as a SciPy
    ``LinearOperator`` built from jitted JVPs: no dense matrix is formed.

    Works for any optax optimizer whose ``update(grads, state, params)`` needs
    nothing else, learned ones (:func:`stability.lopt.star`) included; the state is
    flattened by :func:`stability.operators.joint_state`. Its spectral radius
    (:func:`stability.analyses.arnoldi`) is the linearised stability of real
    training at this point: the loss's curvature and the optimizer's own dynamics
    together, with no frozen preconditioner.

    Returns:
      ``(operator, z)``: the operator of shape ``(d, d)`` (float64 in and out; the
      JVP runs in the state's dtype) and the flat point ``z`` (parameters first).

    >>> import jax.numpy as jnp, numpy as np, optax
    >>> loss = lambda p, b: 0.5 * jnp.sum(b * p**2)
    >>> opt, p = optax.sgd(0.1), jnp.ones(2)
    >>> jac, z = step_jacobian(loss, opt, p, opt.init(p), jnp.array([1.0, 4.0]))
    >>> jac.matvec(np.ones(2)).round(12).tolist()       # I - 0.1 diag(1, 4)
    [0.9, 0.6]
    """
    step, z = training_step(loss_fn, optimizer, params, state, batch)
    d = z.size

    def matvec(v):
        v = np.asarray(v, np.float64).reshape(-1)
        _finite("v", v, "the vector")
        out = _step_jvp(loss_fn, optimizer, params, state, batch, jnp.asarray(v))
        out = np.asarray(out, np.float64)
        return _finite("params", out, "the step's Jacobian-vector product here")

    return scipy.sparse.linalg.LinearOperator(
        (d, d), matvec=matvec, dtype=np.float64
    ), z
