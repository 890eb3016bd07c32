r"""Closed-form per-mode blocks of the linear optimizers on a quadratic.

On an eigen-direction of H with curvature ``h`` every linear optimizer here is a small
linear system in ``x = lr * h`` (momenta are scaled by ``lr`` so that nothing else
enters). State ``(phi, lr m_1, ..., lr m_k)``; the block maps it one step and the
noise gain maps the step's noise draw ``xi`` in:

==============  =============================================  =======================
family          block                                          stable iff
==============  =============================================  =======================
gd              ``[1 - x]``                                    ``0 < x < 2``
heavy_ball      ``[[1 - x, -b], [x, b]]``                      ``|b|<1, 0<x<2(1+b)``
ema_momentum    ``[[1 - (1-b) x, -b], [(1-b) x, b]]``          ``0<(1-b)x<2(1+b)``
nesterov        ``[[1 - (1+b) x, -b^2], [x, b]]``              ``0<x<2(1+b)/(1+2b)``
                                                               (for ``0 <= b < 1``)
aggmo           ``u_i' = b_i u_i + (1-b_i) x phi``,            ``0 < x < x*``
                ``phi' = phi - mean_i u_i'``
==============  =============================================  =======================

Every function broadcasts over its array arguments (``x`` and ``beta`` may be grids).
The eigenvalues of these blocks equal those of the Jacobian that
:func:`stability.operators.closed_loop` takes of the real optax optimizer (the two
are similar through ``diag(1, lr, ..., lr)``).

The same optimizers as linear systems acting on the gradient, ``(A, B, C)`` with
``xi' = A xi + B g`` and ``g`` taken at ``y = C xi`` (the form that
:mod:`stability.analyses.certified` certifies), are the ``*_state_space`` functions;
on a quadratic of curvature ``h`` the loop is ``A + h B C``, similar to the block.
:data:`stability.optimizers.FAMILIES` names all of these per family.
"""

import warnings

import jax.numpy as jnp
import numpy as np


def __getattr__(name):
    if name == "FAMILIES":
        warnings.warn(
            "stability.optimizers.modes.FAMILIES is deprecated; use "
            "stability.optimizers.FAMILIES (a mapping name -> Family)",
            DeprecationWarning,
            stacklevel=2,
        )
        from stability.optimizers.families import FAMILIES

        return FAMILIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stack(rows):
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def gd_block(x):
    """``(..., 1, 1)`` block and ``(..., 1)`` noise gain of gradient descent."""
    x = jnp.asarray(x)
    return (1 - x)[..., None, None], x[..., None]


def heavy_ball_block(x, beta):
    """``(..., 2, 2)`` block and ``(..., 2)`` noise gain of heavy ball."""
    x, beta = jnp.broadcast_arrays(jnp.asarray(x), jnp.asarray(beta, dtype=float))
    block = _stack([[1 - x, -beta], [x, beta]])
    return block, jnp.stack([x, -x], axis=-1)


def ema_momentum_block(x, beta):
    """``(..., 2, 2)`` block and ``(..., 2)`` noise gain of EMA momentum."""
    x, beta = jnp.broadcast_arrays(jnp.asarray(x), jnp.asarray(beta, dtype=float))
    y = (1 - beta) * x
    return _stack([[1 - y, -beta], [y, beta]]), jnp.stack([y, -y], axis=-1)


def nesterov_block(x, beta):
    """``(..., 2, 2)`` block and ``(..., 2)`` noise gain of Nesterov's method in
    momentum form (:func:`stability.optimizers.nesterov`)."""
    x, beta = jnp.broadcast_arrays(jnp.asarray(x), jnp.asarray(beta, dtype=float))
    block = _stack([[1 - (1 + beta) * x, -beta * beta], [x, beta]])
    return block, jnp.stack([(1 + beta) * x, -x], axis=-1)


def aggmo_block(x, betas):
    """``(..., k+1, k+1)`` block and ``(..., k+1)`` noise gain of the mean of ``k``
    EMA momenta with decays ``betas`` (a sequence of scalars or broadcastable arrays).
    """
    x = jnp.asarray(x)
    betas = [jnp.asarray(b, dtype=float) for b in betas]
    k = len(betas)
    if k == 0:
        raise ValueError("betas: needs at least one decay")
    shape = jnp.broadcast_shapes(x.shape, *(b.shape for b in betas))
    x = jnp.broadcast_to(x, shape)
    betas = [jnp.broadcast_to(b, shape) for b in betas]
    zero = jnp.zeros(shape, x.dtype)
    ys = [(1 - b) * x for b in betas]
    # phi' = phi - mean_i (b_i u_i + y_i phi)
    first = [1 - sum(ys) / k] + [-b / k for b in betas]
    rows = [first]
    for i, (b, y) in enumerate(zip(betas, ys, strict=True)):
        rows.append([y] + [b if j == i else zero for j in range(k)])
    gain = jnp.stack([sum(ys) / k] + [-y for y in ys], axis=-1)
    return _stack(rows), gain


def block(family: str, x, **params):
    """Dispatch on ``family``, a key of :data:`stability.optimizers.FAMILIES`;
    ``params`` holds the family's ``block_params`` (``beta`` or ``betas``)."""
    from stability.optimizers.families import FAMILIES  # it imports this module

    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {tuple(FAMILIES)}, got {family!r}")
    takes = FAMILIES[family].block_params
    if set(params) != set(takes):
        raise ValueError(f"{family}: takes {takes}, got {tuple(params)}")
    return FAMILIES[family].block(x, **params)


def characteristic(m) -> np.ndarray:
    """Coefficients of ``det(z I - m)`` for one square block ``m``, highest degree
    first (closed forms for 1x1 and 2x2, ``numpy.poly`` beyond)."""
    m = np.asarray(m, dtype=float)
    if m.shape[-1] > 2:
        return np.poly(m)
    if m.shape[-1] == 1:
        return np.array([1.0, -m[0, 0]])
    return np.array([1.0, -(m[0, 0] + m[1, 1]), m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]])


def quadratic_radius(s, q, xp=jnp):
    r"""Largest root modulus of :math:`z^2 - s z + q` (real ``s``, ``q``), elementwise.

    Real roots: :math:`(|s| + \sqrt{s^2 - 4q}) / 2`; complex pair: :math:`\sqrt{q}`.
    The form with ``|s|`` avoids cancellation; at the discriminant's zero both agree.
    Square roots are guarded so that gradients stay finite in both branches; a NaN
    ``s`` or ``q`` gives NaN (it takes the real branch). ``xp`` is ``jax.numpy``
    (default) or ``numpy``.
    """
    disc = s * s - 4 * q
    pair = disc < 0  # False for NaN
    sq_disc = xp.sqrt(xp.where(pair, 1.0, disc))
    sq_q = xp.sqrt(xp.where(pair & (q != 0), xp.abs(q), 1.0))
    return xp.where(pair, sq_q, 0.5 * (xp.abs(s) + sq_disc))


def gd_radius(x, xp=jnp):
    return xp.abs(1 - xp.asarray(x))


def heavy_ball_radius(x, beta, xp=jnp):
    """Spectral radius of the heavy-ball block: ``z^2 - (1 + b - x) z + b``."""
    return quadratic_radius(1 + beta - x, beta, xp)


def ema_momentum_radius(x, beta, xp=jnp):
    """Spectral radius of the EMA block: ``z^2 - (1 + b - (1-b) x) z + b``."""
    return quadratic_radius(1 + beta - (1 - beta) * x, beta, xp)


def nesterov_radius(x, beta, xp=jnp):
    """Spectral radius of Nesterov's block:
    ``z^2 - (1 + b)(1 - x) z + b (1 - x)`` (``xp`` as in :func:`quadratic_radius`).
    """
    return quadratic_radius((1 + beta) * (1 - x), beta * (1 - x), xp)


# --------------------------------------------------------------------------------------
# State-space triples (A, B, C) acting on the gradient, float64 NumPy
# --------------------------------------------------------------------------------------


def _output_first(A, B):
    C = np.zeros((1, A.shape[0]))
    C[0, 0] = 1.0  # the gradient is taken at phi
    return A, B, C


def gd_state_space(lr):
    """``phi' = phi - lr g``: state ``(phi,)``."""
    return np.array([[1.0]]), np.array([[-lr]]), np.array([[1.0]])


def nominal_state_space(alpha, p, preconditioner):
    """``phi' = phi - preconditioner (alpha + p) g``: the nominal step, a scalar
    learned linear term ``p`` and an output preconditioner frozen as a gain."""
    return gd_state_space(preconditioner * (alpha + p))


def _momentum_state_space(lr, beta, w, d, e):
    # m' = b m + w g ; phi' = phi - lr (d m + e g)
    A = np.array([[1.0, -lr * d], [0.0, beta]])
    B = np.array([[-lr * e], [w]])
    return _output_first(A, B)


def heavy_ball_state_space(lr, beta):
    """State ``(phi, m)``, ``m' = beta m + g``, ``phi' = phi - lr m'``."""
    return _momentum_state_space(lr, beta, 1.0, beta, 1.0)


def ema_momentum_state_space(lr, beta):
    """State ``(phi, m)``, ``m' = beta m + (1 - beta) g``, ``phi' = phi - lr m'``."""
    return _momentum_state_space(lr, beta, 1 - beta, beta, 1 - beta)


def nesterov_state_space(lr, beta):
    """State ``(phi, m)``, ``m' = beta m + g``, ``phi' = phi - lr (g + beta m')``."""
    return _momentum_state_space(lr, beta, 1.0, beta * beta, 1 + beta)


def aggmo_state_space(lr, betas):
    """State ``(phi, m_1, ..., m_k)``, ``m_i' = b_i m_i + (1 - b_i) g``,
    ``phi' = phi - lr mean_i m_i'``."""
    betas = np.array(betas)
    k = betas.size
    A = np.zeros((k + 1, k + 1))
    A[0, 0] = 1.0
    A[0, 1:] = -lr * betas / k
    A[1:, 1:] = np.diag(betas)
    B = np.concatenate([[-lr * np.mean(1 - betas)], 1 - betas])[:, None]
    return _output_first(A, B)
