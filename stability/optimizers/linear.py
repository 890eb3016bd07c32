"""Hand-designed optimizers as optax ``GradientTransformation`` factories.

Every factory validates its hyperparameters (``ValueError`` naming the argument) and
returns pure ``init``/``update`` functions with NamedTuple states, so the closed loop
of any of them can be taken by :func:`stability.operators.closed_loop`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stability._validation import (
    check_beta,
    check_betas,
    check_lr,
    check_scalar,
    check_square,
)


def _cast(x, like):
    return jnp.asarray(x, dtype=like.dtype)


def _scale(lr):
    return lambda u: -_cast(lr, u) * u


def gd(lr: float) -> optax.GradientTransformation:
    r"""Gradient descent, :math:`\phi' = \phi - a g`; per mode stable iff
    ``0 < a h < 2``.

    >>> import jax.numpy as jnp
    >>> opt = gd(0.1)
    >>> opt.update(jnp.array([1.0, -2.0]), opt.init(jnp.zeros(2)))[0].tolist()
    [-0.1, 0.2]
    """
    lr = check_lr("lr", lr)

    def update(grads, state, params=None):
        del params
        return jax.tree.map(_scale(lr), grads), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _matrix_update(name, matrix):
    """``g -> matrix @ g`` on a single vector of parameters, shape-checked."""
    n = matrix.shape[0]

    def apply(grads):
        if not isinstance(grads, jax.Array | np.ndarray) or grads.shape != (n,):
            raise ValueError(
                f"{name}: acts on a parameter vector of shape ({n},), got "
                f"{getattr(grads, 'shape', type(grads))}"
            )
        return _cast(matrix, grads) @ grads

    return apply


def nominal_linear(alpha: float, P) -> optax.GradientTransformation:
    r"""The paper's nominal term plus a linear learned term,
    :math:`\phi' = \phi - (\alpha g + P g)`; closed loop ``A = I - (alpha I + P) H``.

    Args:
      alpha: nominal step, ``>= 0``.
      P: the learned linear term, shape ``(n, n)``, any real matrix; parameters must
        be a vector of shape ``(n,)``.
    """
    alpha = check_lr("alpha", alpha)
    p = check_square("P", P)
    apply = _matrix_update("P", alpha * np.eye(p.shape[0]) + p)

    def update(grads, state, params=None):
        del params
        return -apply(grads), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def preconditioned(alpha: float, P, preconditioner) -> optax.GradientTransformation:
    r"""Output preconditioning, :math:`\phi' = \phi - C(\alpha I + P) g`; closed loop
    ``A = I - C (alpha I + P) H``. With the idealised ``C = H^{-1/2}`` the stability
    bounds follow Lemma 2 (``2 / sqrt(lambda_max(H)) - alpha``).
    """
    alpha = check_lr("alpha", alpha)
    p = check_square("P", P)
    c = check_square("preconditioner", preconditioner, n=p.shape[0])
    apply = _matrix_update("P", c @ (alpha * np.eye(p.shape[0]) + p))

    def update(grads, state, params=None):
        del params
        return -apply(grads), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class MomentumState(NamedTuple):
    """One momentum pytree per decay (a tuple, even for a single decay)."""

    momenta: tuple


class AdamAggMoState(NamedTuple):
    momenta: tuple
    second_moment: optax.Updates


def _momentum_transform(lr, betas, ema: bool):
    def init(params):
        return MomentumState(tuple(jax.tree.map(jnp.zeros_like, params) for _ in betas))

    def update(grads, state, params=None):
        del params

        def decay(b, m, g):
            b = _cast(b, g)
            return b * m + ((1 - b) * g if ema else g)

        momenta = tuple(
            jax.tree.map(lambda m, g, b=b: decay(b, m, g), m, grads)
            for b, m in zip(betas, state.momenta, strict=True)
        )
        mean = jax.tree.map(lambda *ms: sum(ms) / len(ms), *momenta)
        return jax.tree.map(_scale(lr), mean), MomentumState(momenta)

    return optax.GradientTransformation(init, update)


def heavy_ball(lr: float, beta: float) -> optax.GradientTransformation:
    r"""Heavy ball, :math:`m' = \beta m + g`, :math:`\phi' = \phi - a m'`.

    Per mode stable iff ``|beta| < 1`` and ``0 < a h < 2 (1 + beta)``.
    """
    lr = check_lr("lr", lr)
    return _momentum_transform(lr, (check_beta("beta", beta),), ema=False)


def ema_momentum(lr: float, beta: float) -> optax.GradientTransformation:
    r"""EMA momentum, :math:`m' = \beta m + (1 - \beta) g`, :math:`\phi' = \phi - a m'`.

    Per mode stable iff ``0 < a (1 - beta) h < 2 (1 + beta)``.
    """
    lr = check_lr("lr", lr)
    return _momentum_transform(lr, (check_beta("beta", beta),), ema=True)


def nesterov(lr: float, beta: float) -> optax.GradientTransformation:
    r"""Nesterov's accelerated gradient in momentum form, :math:`m' = \beta m + g`,
    :math:`\phi' = \phi - a (g + \beta m')`; the gradient is taken at the current
    parameters, which play the role of Nesterov's extrapolated point.

    Per mode the characteristic polynomial is
    ``z^2 - (1 + beta)(1 - a h) z + beta (1 - a h)``, that of the textbook form
    ``x' = y - a grad f(y)``, ``y' = x' + beta (x' - x)``. With ``a = 1/L`` and
    ``beta = (sqrt(kappa) - 1)/(sqrt(kappa) + 1)`` it is the classical method for
    ``mu``-strongly convex, ``L``-smooth functions (``kappa = L / mu``).

    >>> import jax.numpy as jnp
    >>> opt = nesterov(0.5, 0.5)
    >>> u, s = opt.update(jnp.array([1.0]), opt.init(jnp.zeros(1)))
    >>> u.tolist(), s.momenta[0].tolist()
    ([-0.75], [1.0])

    References:
      Y. Nesterov, *Introductory Lectures on Convex Optimization*, Kluwer, 2004,
      Section 2.2 (constant step scheme III).
      I. Sutskever, J. Martens, G. Dahl & G. Hinton, "On the importance of
      initialization and momentum in deep learning", ICML 2013 (momentum form).
    """
    lr = check_lr("lr", lr)
    beta = check_beta("beta", beta)

    def init(params):
        return MomentumState((jax.tree.map(jnp.zeros_like, params),))

    def update(grads, state, params=None):
        del params
        m = jax.tree.map(lambda m, g: _cast(beta, g) * m + g, state.momenta[0], grads)
        updates = jax.tree.map(
            lambda m, g: -_cast(lr, g) * (g + _cast(beta, g) * m), m, grads
        )
        return updates, MomentumState((m,))

    return optax.GradientTransformation(init, update)


def aggmo(lr: float, betas=(0.9, 0.99, 0.999)) -> optax.GradientTransformation:
    r"""Mean of EMA momenta (AggMo-style, as in STAR's nominal term),
    :math:`m_i' = \beta_i m_i + (1-\beta_i) g`, :math:`\phi' = \phi - a\,
    \mathrm{mean}_i m_i'`. Per mode stable iff ``0 < a h < 2k / sum_i (1-b_i)/(1+b_i)``
    (``103.169...`` for the default betas).
    """
    lr = check_lr("lr", lr)
    return _momentum_transform(lr, check_betas("betas", betas), ema=True)


def adam_aggmo(
    lr: float, betas=(0.9, 0.99, 0.999), beta2: float = 0.999, eps: float = 1e-6
) -> optax.GradientTransformation:
    r"""STAR's nominal direction, :math:`\phi' = \phi - a\,\mathrm{mean}_i m_i'
    / \sqrt{v' + \epsilon}` with EMA momenta ``m_i``, second moment
    :math:`v' = \beta_2 v + (1-\beta_2) g^2`, no bias correction, ``eps`` inside the
    square root (as in STAR).
    """
    lr = check_lr("lr", lr)
    betas = check_betas("betas", betas)
    beta2 = check_beta("beta2", beta2)
    eps = check_scalar("eps", eps, low=0.0, low_open=True)

    def init(params):
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)
        return AdamAggMoState(tuple(zeros() for _ in betas), zeros())

    def update(grads, state, params=None):
        del params
        momenta = tuple(
            jax.tree.map(
                lambda m, g, b=b: _cast(b, g) * m + _cast(1 - b, g) * g, m, grads
            )
            for b, m in zip(betas, state.momenta, strict=True)
        )
        v = jax.tree.map(
            lambda v, g: _cast(beta2, g) * v + _cast(1 - beta2, g) * g * g,
            state.second_moment,
            grads,
        )

        def direction(v, *ms):
            return -_cast(lr, v) * (sum(ms) / len(ms)) / jnp.sqrt(v + _cast(eps, v))

        updates = jax.tree.map(direction, v, *momenta)
        return updates, AdamAggMoState(momenta, v)

    return optax.GradientTransformation(init, update)
