r"""Linear time-invariant optimizers as state-space triples ``(A, B, C)`` acting on
the gradient, and the quadratic rate of a triple over :math:`F(\mu, L)`.

The loop :math:`\xi_{k+1} = A \xi_k + B u_k`, :math:`y_k = C \xi_k`,
:math:`u_k = \nabla f(y_k)` is the one :mod:`stability.analyses.certified` certifies;
this module resolves a family name or a raw triple into it, validates a triple, and
gives the worst spectral radius over the quadratics of the class (the lower bound every
certified rate starts from).
"""

import numpy as np
import scipy.linalg
import scipy.optimize

from stability._validation import as_float_array, check_scalar
from stability.optimizers import FAMILIES

# family -> its hyperparameters (the registry's; kept as a plain dict for old callers)
FAMILY_PARAMS = {name: tuple(f.hyperparameters) for name, f in FAMILIES.items()}
# optimizers of the toolkit that are not linear time-invariant, and why
_NOT_LTI = {
    "adam_aggmo": "its preconditioner 1/sqrt(v) depends on the gradients",
    "adam": "its preconditioner depends on the gradients",
    "preconditioned": "freeze the preconditioner as a scalar gain: "
    "family 'nominal' with preconditioner=c",
    "star": "a learned nonlinear update",
    "small_fc_lopt": "a learned nonlinear update",
}


def _family_params(family, hyperparameters):
    if family in _NOT_LTI:
        raise ValueError(
            f"family: {family!r} is not linear time-invariant ({_NOT_LTI[family]})"
        )
    if family not in FAMILY_PARAMS:
        raise ValueError(
            f"family: expected one of {tuple(FAMILY_PARAMS)} or an (A, B, C) "
            f"triple, got {family!r}"
        )
    return FAMILIES[family].check(**hyperparameters)


def state_space(family: str, **hyperparameters):
    """The ``(A, B, C)`` triple of a per-mode family acting on a scalar gradient.

    States: ``gd`` and ``nominal`` ``(phi,)``; ``heavy_ball``, ``ema_momentum`` and
    ``nesterov`` ``(phi, m)``; ``aggmo`` ``(phi, m_1, ..., m_k)``; the gradient is
    taken at ``phi`` (``C = e_1``). ``nominal`` is
    ``phi' = phi - preconditioner * (alpha + p) g``: the nominal step, a scalar
    learned linear term ``p`` and an output preconditioner frozen as a gain.

    >>> a, b, c = state_space("heavy_ball", lr=0.5, beta=0.5)
    >>> a.tolist(), b.ravel().tolist(), c.tolist()
    ([[1.0, -0.25], [0.0, 0.5]], [-0.5, 1.0], [[1.0, 0.0]])
    """
    return FAMILIES[family].state_space(**_family_params(family, hyperparameters))


def _check_system(system):
    try:
        A, B, C = system
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"system: expected a family name or an (A, B, C) triple, got {system!r}"
        ) from err
    A = as_float_array("A", A, ndim=2)
    B = as_float_array("B", B, ndim=2)
    C = as_float_array("C", C, ndim=2)
    n = A.shape[0]
    if A.shape != (n, n) or n == 0:
        raise ValueError(f"A: must be square and non-empty, got shape {A.shape}")
    if B.shape[0] != n:
        raise ValueError(f"B: expected {n} rows (A is {n}x{n}), got shape {B.shape}")
    m = B.shape[1]
    if m == 0:
        raise ValueError("B: needs at least one column (the gradient's channels)")
    if C.shape != (m, n):
        raise ValueError(
            f"C: expected shape ({m}, {n}) (y has the gradient's {m} channels), "
            f"got {C.shape}"
        )
    # every point must be the output of a fixed point of the gradient-free loop
    kernel = scipy.linalg.null_space(np.eye(n) - A, rcond=1e-10)
    if kernel.shape[1] == 0 or np.linalg.matrix_rank(C @ kernel, tol=1e-10) < m:
        raise ValueError(
            "system: (A, B, C) has no fixed point at every minimiser (C must map "
            "the null space of I - A onto the outputs); it is not an optimizer"
        )
    return A, B, C


# ----------------------------------------------------------------------------------
# the quadratic rate (lower bound)
# ----------------------------------------------------------------------------------


def _worst_sampled(rho, mu, L, num=2049, refine=5):
    half = num // 2
    grid = np.unique(
        np.concatenate([np.linspace(mu, L, num - half), np.geomspace(mu, L, half)])
    )
    r = rho(grid)
    left = np.concatenate([[-np.inf], r[:-1]])
    right = np.concatenate([r[1:], [-np.inf]])
    peaks = np.flatnonzero((r >= left) & (r >= right))
    best = float(np.max(r))
    for i in peaks[np.argsort(-r[peaks])][:refine]:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = scipy.optimize.minimize_scalar(
            lambda h: -float(rho(np.array([h]))[0]),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-12 * hi},
        )
        best = max(best, -float(res.fun))
    return best


def _quadratic_rate(family, params, system, mu, L):
    """(worst radius over h in [mu, L], exact?)."""
    fam = FAMILIES.get(family)
    radius = None if fam is None else fam.radius
    if radius is not None:
        step = params[fam.step] if fam.step == "lr" else -float(system[1][0, 0])
        block = {k: params[k] for k in fam.block_params}

        def rho(h):
            return radius(step * h, **block, xp=np)

        if fam.endpoint:
            # quasi-convex in h: the maximum is at an endpoint (see analyses.robust)
            return float(np.max(rho(np.array([mu, L])))), True
        return _worst_sampled(rho, mu, L), False
    A, B, C = system
    BC = B @ C  # the gradient h y on every channel

    def rho(h):
        mats = A[None] + np.asarray(h)[:, None, None] * BC[None]
        return np.max(np.abs(np.linalg.eigvals(mats)), axis=-1)

    return _worst_sampled(rho, mu, L), False


def _check_class(mu, L):
    mu = check_scalar("mu", mu, low=0.0, low_open=True)
    L = check_scalar("L", L)
    if not L > mu:
        raise ValueError(f"L: must be > mu = {mu}, got {L}")
    return mu, L


def _resolve(family_or_system, hyperparameters):
    if isinstance(family_or_system, str):
        params = _family_params(family_or_system, hyperparameters)
        return family_or_system, params, state_space(family_or_system, **params)
    if hyperparameters:
        raise ValueError(
            f"hyperparameters: an (A, B, C) triple takes none, got "
            f"{sorted(hyperparameters)}"
        )
    return None, {}, _check_system(family_or_system)
