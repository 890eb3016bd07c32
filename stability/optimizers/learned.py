"""A nominal step plus a linear learned term acting on the momentum: the optimizer
whose joint loop shows that a stable parameter block does not make a stable joint
system (:mod:`stability.lemmas.joint`)."""

import jax
import jax.numpy as jnp
import optax

from stability._validation import check_beta, check_lr, check_square
from stability.optimizers.linear import MomentumState


def learned_momentum(lr: float, beta: float, P) -> optax.GradientTransformation:
    r"""A nominal step plus a linear learned term acting on the momentum:
    :math:`m' = \beta m + g`, :math:`\phi' = \phi - \mathrm{lr}\, g - P m'`.

    Per-step closed loop on :math:`(\phi, m)`:
    :math:`M = \begin{pmatrix} I - (\mathrm{lr}\,I + P) H & -\beta P \\ H & \beta I
    \end{pmatrix}`, whose parameter block is Theorem 1's loop.

    >>> import jax.numpy as jnp
    >>> opt = learned_momentum(0.1, 0.5, jnp.eye(1))
    >>> opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))[0].tolist()
    [-1.1]
    """
    lr = check_lr("lr", lr)
    beta = check_beta("beta", beta)
    p = check_square("P", P)

    def init(params):
        return MomentumState((jax.tree.map(jnp.zeros_like, params),))

    def update(grads, state, params=None):
        del params
        m = beta * state.momenta[0] + grads
        return -(lr * grads + jnp.asarray(p, grads.dtype) @ m), MomentumState((m,))

    return optax.GradientTransformation(init, update)
