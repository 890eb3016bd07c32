r"""Non-Markovian optimizers need joint stability of parameters and state.

An optimizer with state (momenta, EMAs) closes the loop on the joint state
:math:`z = (\phi, m_1, \dots, m_k)`: :math:`z' = M z + N \xi`. Stability is
:math:`\rho(M) < 1`; the parameter block :math:`M_{\phi\phi}` (what a parameter-only
analysis sees, :attr:`stability.operators.ClosedLoop.parameter_block`) decides nothing
by itself.

Families (``x = lr h`` on an eigen-direction of ``H`` with curvature ``h``; decays
``b``; the parameter block is :math:`1 - \bar c\, x` with :math:`\bar c` the mean input
weight of the momenta):

=====================  ======================================  =====================
family                 joint: stable iff                       block: stable iff
=====================  ======================================  =====================
``heavy_ball``         :math:`|b| < 1,\ 0 < x < 2(1 + b)`       :math:`0 < x < 2`
``ema_momentum``       :math:`0 < x < 2(1 + b)/(1 - b)`         :math:`0 < x < 2/(1-b)`
``aggmo``              :math:`0 < x < 2k / \sum_i             :math:`0 < x < 2 /
                       (1 - b_i)/(1 + b_i)`                     \mathrm{mean}(1 - b_i)`
``adam_aggmo``         aggmo with :math:`x \to x (v' +          same substitution
                       10^{-6})^{-1/2}`
=====================  ======================================  =====================

**The closed form, for every k.** Per mode the loop of ``k`` momenta
:math:`u_i' = b_i u_i + c_i x \phi`, :math:`\phi' = \phi - \mathrm{mean}_i u_i'`
(:func:`mode_blocks`; AggMo and EMA :math:`c_i = 1 - b_i`, heavy ball :math:`c = 1`)
has characteristic polynomial

.. math:: \chi(z) = (z - 1)\prod_j (z - b_j)
   + \frac{x}{k} \sum_i c_i\, z \prod_{j \ne i} (z - b_j)

(eliminate :math:`U_i = c_i x \Phi / (z - b_i)` from :math:`z\Phi = \Phi - \frac1k
\sum_i z U_i`). Let every :math:`b_i \in (-1, 1)` and :math:`c_i > 0`.
(i) At :math:`z = -1`: :math:`\chi(-1) = (-1)^{k+1} \prod_j (1 + b_j)\,[2 - \frac{x}{k}
\sum_i c_i/(1 + b_i)]`, zero iff :math:`x = x^* = 2k / \sum_i c_i/(1 + b_i)`; at
:math:`z = 1`: :math:`\chi(1) = x \prod_j (1 - b_j)`, zero iff :math:`x = 0`. (ii) No
root crosses the unit circle off the real axis for :math:`x > 0`: on :math:`z =
e^{i\theta}`, divide by :math:`z \prod_j (z - b_j)` and put :math:`w_i = (x/k) c_i /
|e^{i\theta} - b_i|^2 > 0`; the imaginary part gives :math:`\sin\theta\,(1 - \sum_i
w_i) = 0` and the real part :math:`1 - \cos\theta = -\cos\theta \sum_i w_i + \sum_i w_i
b_i`, so :math:`\sin\theta \ne 0` forces :math:`\sum_i w_i = 1` and then
:math:`\sum_i w_i b_i = 1`, impossible with every :math:`b_i < 1`. (iii) For small
:math:`x > 0` the roots are near the :math:`b_i` (inside) and near
:math:`1 - \frac{x}{k} \sum_i c_i/(1 - b_i)` (inside); for :math:`x > x^*`,
:math:`\chi(-1)` has the sign opposite to :math:`\chi(-\infty)`, so a real root
lies below :math:`-1`; for :math:`x < 0`, :math:`\chi(1) < 0 < \chi(+\infty)` puts
one above 1. By continuity of the roots in
:math:`x`: **stable iff** :math:`0 < x < x^*`, for every ``k``, every set of decays in
:math:`(-1, 1)` (negative ones included) and positive weights. With :math:`c_i = 1 -
b_i` this is AggMo's :math:`x^* = 2k / \sum_i (1 - b_i)/(1 + b_i)` (``103.169...`` for
``(0.9, 0.99, 0.999)``, exactly ``15116438/146521``), heavy ball's :math:`2(1 + b)`
and EMA's :math:`2(1 + b)/(1 - b)` (``k = 1``). Decays outside :math:`(-1, 1)` are
outside the proof (a momentum alone is then not stable). The test suite confirms (i)
with sympy for ``k = 2, 3, 4`` with the decays as symbols, and the limit against
bisection on the spectral radius for random decay sets.

STAR's AdamAggMo nominal direction with the second moment frozen (``v`` enters the
Jacobian only through :math:`(b_2 v + \epsilon)^{-1/2}` at a stationary point) is
AggMo with the curvature :math:`D^{1/2} H D^{1/2}` with
:math:`D = \mathrm{diag}((b_2 v + 10^{-6})^{-1/2})`: near a noiseless optimum
:math:`v \to 0`, :math:`D \to 1000 I`, and the nominal term is stable only for
``nominal_stepsize * h < x* / 1000``.

**Block stable implies joint stable for decays in [0, 1)** (heavy ball, EMA, AggMo,
AdamAggMo): :math:`2 \le 2(1+b)`, :math:`2/(1-b) \le 2(1+b)/(1-b)`, and
:math:`(1-b)/(1+b) \le 1 - b` termwise. **Not conversely**: for ordinary decays the
joint limit is larger (block unstable, joint stable: momentum loosens the upper
limit). **False with a negative decay** (learned decays are not clipped): the joint
limit drops below the block's and a stable-looking block hides a divergent loop.
**False for a linear learned term acting on the momentum**
(``phi' = phi - lr g - P m'``,
:func:`stability.optimizers.learned.learned_momentum`): its parameter block is
Theorem 1's :math:`I - (\mathrm{lr}\, I + P) H`, yet a ``P`` cancelling a large
nominal step makes the joint loop diverge even with :math:`b \in [0, 1)`.

Joint matrices come from :func:`stability.operators.closed_loop` of the real optax
optimizers (:func:`joint_loop`); the conclusion uses the exact per-mode blocks of
:mod:`stability.optimizers.modes` in ``H``'s eigenbasis (cheap and free of the
non-normality of the dense Jacobian), and the dense closed form for the learned term.

References:
  J. Harrison, L. Metz & J. Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022, Section 4.
  B. T. Polyak, "Some methods of speeding up the convergence of iteration methods",
  USSR Comput. Math. Math. Phys. 4 (1964).
  J. Lucas, S. Sun, R. Zemel & R. Grosse, "Aggregated Momentum: Stability Through
  Passive Damping", ICLR 2019.
  E. I. Jury, *Theory and Application of the z-Transform Method*, Wiley, 1964.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from stability._validation import (
    as_float_array,
    check_beta,
    check_betas,
    check_lr,
    check_scalar,
    check_spd,
    check_square,
)
from stability.analyses import max_stable_learning_rate
from stability.lemmas import _claim, _deprecated
from stability.lemmas._claim import DEFAULT_BUDGET, SLACK, claim_of, radius_breaks
from stability.lemmas.samplers import random_hessian
from stability.lemmas.structure import spd_power
from stability.operators import ClosedLoop, closed_loop
from stability.optimizers import (
    AdamAggMoState,
    adam_aggmo,
    aggmo,
    ema_momentum,
    heavy_ball,
)
from stability.optimizers.learned import learned_momentum as _learned_momentum
from stability.problems import noisy_quadratic

NAME = "joint"
TITLE = "Non-Markovian optimizers need joint stability"
STATEMENT = """\
For an optimizer with state (heavy ball, EMA momentum, AggMo, STAR's AdamAggMo with
the second moment frozen) on a quadratic with H SPD, stability is rho(M) < 1 for the
joint matrix M over (parameters, momenta). Exact per mode (x = lr h): heavy ball
0 < x < 2(1 + b), EMA 0 < x(1 - b) < 2(1 + b), AggMo 0 < x < 2k / sum_i (1-b_i)/(1+b_i)
(103.169... for 0.9, 0.99, 0.999), AdamAggMo the AggMo limit with
lr -> lr (b2 v + 1e-6)^{-1/2} (near a noiseless optimum lr h < x*/1000). With decays
in [0, 1), a stable parameter block implies a stable joint system; the converse fails
(momentum loosens the limit). With a negative decay, or with a linear learned term
acting on the momentum, the block can look stable while the joint system diverges."""

FAMILIES = ("heavy_ball", "ema_momentum", "aggmo", "adam_aggmo", "learned_momentum")
MOMENTUM_FAMILIES = FAMILIES[:4]  # the families the claim covers
SINGLE_DECAY = ("heavy_ball", "ema_momentum", "learned_momentum")
BETA2 = 0.999  # STAR's second-moment decay
EPS = 1e-6  # STAR's epsilon inside the square root


class Instance(NamedTuple):
    """One optimizer on one quadratic.

    Attributes:
      family: one of :data:`FAMILIES`.
      H: SPD Hessian ``(n, n)``.
      lr: learning rate (nominal step).
      betas: momentum decays, a tuple (one for heavy ball, EMA and the learned term).
      P: the learned linear term on the momentum ``(n, n)`` (``learned_momentum``
        only, else None).
      v: second moment before the step ``(n,)`` (``adam_aggmo`` only, else None).
    """

    family: str
    H: np.ndarray
    lr: float
    betas: tuple
    P: np.ndarray | None
    v: np.ndarray | None


def make_instance(*, family, H, lr, betas, P=None, v=None) -> Instance:
    """Validated :class:`Instance`; ``ValueError`` names the bad argument.

    ``betas`` may be a scalar for the single-decay families; ``v`` defaults to zeros
    for ``adam_aggmo`` (the noiseless optimum).

    >>> inst = make_instance(family="heavy_ball", H=np.eye(2), lr=1.5, betas=0.5)
    >>> hypotheses(inst), conclusion(inst)
    ({'momentum_family': True, 'nonnegative_decays': True, 'block_stable': True}, True)
    """
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    h = check_spd("H", H)
    n = h.shape[0]
    lr = check_lr("lr", lr)
    if np.ndim(betas) == 0:
        betas = (check_beta("betas", betas),)
    else:
        betas = check_betas("betas", betas)
    if family in SINGLE_DECAY and len(betas) != 1:
        raise ValueError(f"betas: {family!r} takes one decay, got {len(betas)}")
    if family == "learned_momentum":
        if P is None:
            raise ValueError("P: 'learned_momentum' needs the learned matrix P")
        P = check_square("P", P, n=n)
    elif P is not None:
        raise ValueError(f"P: only for 'learned_momentum', not {family!r}")
    if family == "adam_aggmo":
        v = np.zeros(n) if v is None else as_float_array("v", v)
        v = np.broadcast_to(v, (n,)).copy() if v.ndim == 0 else v
        if v.shape != (n,) or np.any(v < 0):
            raise ValueError(f"v: expected {n} non-negative second moments")
    elif v is not None:
        raise ValueError(f"v: only for 'adam_aggmo', not {family!r}")
    return Instance(family, h, lr, tuple(betas), P, v)


# ---------------------------------------------------------------------------------
# optimizers and their joint loops


def optimizer(instance: Instance) -> optax.GradientTransformation:
    """The real optax optimizer of the instance."""
    fam, _, lr, betas, P, _ = instance
    if fam == "heavy_ball":
        return heavy_ball(lr, betas[0])
    if fam == "ema_momentum":
        return ema_momentum(lr, betas[0])
    if fam == "aggmo":
        return aggmo(lr, betas)
    if fam == "adam_aggmo":
        return adam_aggmo(lr, betas, BETA2, EPS)
    return _learned_momentum(lr, betas[0], P)


def joint_loop(instance: Instance) -> ClosedLoop:
    """:func:`stability.operators.closed_loop` (``jax.jacfwd`` of one step of the real
    optax optimizer) at the optimum ``phi = 0`` with zero momenta (and second moment
    ``v`` for ``adam_aggmo``): joint state ``(phi, m_1, ..., m_k[, v])``.

    >>> inst = make_instance(family="heavy_ball", H=np.eye(1), lr=0.5, betas=0.9)
    >>> np.asarray(joint_loop(inst).transition).tolist()
    [[0.5, -0.45], [1.0, 0.9]]
    """
    n = instance.H.shape[0]
    problem = noisy_quadratic(instance.H)
    opt = optimizer(instance)
    params = jnp.zeros(n)
    state = None
    if instance.family == "adam_aggmo":
        zeros = tuple(jnp.zeros(n) for _ in instance.betas)
        state = AdamAggMoState(zeros, jnp.asarray(instance.v, params.dtype))
    return closed_loop(opt, problem, params, state)


def _input_weights(instance):
    if instance.family in ("heavy_ball", "learned_momentum"):
        return np.ones(1)
    return 1 - np.asarray(instance.betas)


def _scaling(instance):
    """``D = (b2 v + eps)^{-1/2}`` per coordinate for AdamAggMo, else ones."""
    n = instance.H.shape[0]
    if instance.family != "adam_aggmo":
        return np.ones(n)
    return 1 / np.sqrt(BETA2 * instance.v + EPS)


def joint_matrix(instance: Instance) -> np.ndarray:
    """The joint transition in closed form (float64 NumPy), equal to
    ``joint_loop(instance).transition``; layout ``(phi, m_1, ..., m_k[, v])``."""
    fam, H, lr, betas, P, _ = instance
    n, k = H.shape[0], len(betas)
    b = np.asarray(betas)
    eye = np.eye(n)
    if fam == "learned_momentum":
        top = np.hstack([eye - (lr * eye + P) @ H, -b[0] * P])
        return np.vstack([top, np.hstack([H, b[0] * eye])])
    c = _input_weights(instance)
    d = _scaling(instance)[:, None]
    size = (k + 1 + (fam == "adam_aggmo")) * n
    m = np.zeros((size, size))
    m[:n, :n] = eye - lr * d * (c.mean() * H)
    for i in range(k):
        rows = slice((i + 1) * n, (i + 2) * n)
        m[:n, rows] = -lr * d * (b[i] / k) * eye
        m[rows, :n] = c[i] * H
        m[rows, rows] = b[i] * eye
    if fam == "adam_aggmo":
        m[-n:, -n:] = BETA2 * eye
    return m


def _mode_curvatures(instance):
    """Curvatures of the per-mode decomposition: eigenvalues of ``H`` (of
    ``D^{1/2} H D^{1/2}`` for AdamAggMo)."""
    d = np.sqrt(_scaling(instance))
    return np.linalg.eigvalsh(d[:, None] * instance.H * d[None, :])


def mode_blocks(x, betas, weights) -> np.ndarray:
    r"""Per-mode blocks ``(n, k+1, k+1)`` of the mean of ``k`` momenta
    :math:`u_i' = b_i u_i + c_i x \phi`, :math:`\phi' = \phi - \mathrm{mean}_i u_i'`
    (scaled momenta ``u = lr m``), in float64 NumPy: heavy ball is ``c = 1``, EMA and
    AggMo ``c_i = 1 - b_i``; equal to the blocks of :mod:`stability.optimizers.modes`.
    """
    x = np.atleast_1d(np.asarray(x, float))
    b, c = np.asarray(betas, float), np.asarray(weights, float)
    k = b.size
    out = np.zeros((x.size, k + 1, k + 1))
    out[:, 0, 0] = 1 - x * c.mean()
    out[:, 0, 1:] = -b / k
    out[:, 1:, 0] = c[None, :] * x[:, None]
    out[:, np.arange(1, k + 1), np.arange(1, k + 1)] = b
    return out


def radii(instance: Instance) -> tuple:
    """``(block_rho, joint_rho)``: spectral radii of the parameter block and of the
    joint loop. Exact per-mode blocks in ``H``'s eigenbasis for the momentum families
    (the v-coordinates of AdamAggMo add the eigenvalue ``0.999``), dense eigenvalues
    for the learned term."""
    if instance.family == "learned_momentum":
        m = joint_matrix(instance)
        n = instance.H.shape[0]
        block = np.max(np.abs(np.linalg.eigvals(m[:n, :n])))
        return float(block), float(np.max(np.abs(np.linalg.eigvals(m))))
    x = instance.lr * _mode_curvatures(instance)
    c = _input_weights(instance)
    block = float(np.max(np.abs(1 - c.mean() * x)))
    blocks = mode_blocks(x, instance.betas, c)
    joint = float(np.max(np.abs(np.linalg.eigvals(blocks))))
    if instance.family == "adam_aggmo":
        joint = max(joint, BETA2)
    return block, joint


# ---------------------------------------------------------------------------------
# exact limits


def _limit_betas(family, betas):
    if family not in MOMENTUM_FAMILIES:
        raise ValueError(f"family: expected one of {MOMENTUM_FAMILIES}, got {family!r}")
    betas = (
        (check_beta("betas", betas),)
        if np.ndim(betas) == 0
        else check_betas("betas", betas)
    )
    if family in SINGLE_DECAY and len(betas) != 1:
        raise ValueError(f"betas: {family!r} takes one decay, got {len(betas)}")
    return np.asarray(betas)


def _frozen_scale(family, v):
    if family != "adam_aggmo":
        if v is not None:
            raise ValueError(f"v: only for 'adam_aggmo', not {family!r}")
        return 1.0
    v = 0.0 if v is None else check_scalar("v", v, low=0.0)
    return float(np.sqrt(BETA2 * v + EPS))


def upper_limit(family: str, betas, *, v=None) -> float:
    r"""The exact per-mode limit :math:`x^*` of the joint loop: stable iff
    :math:`0 < \mathrm{lr}\, h < x^*`.

    Heavy ball :math:`2(1 + b)`; EMA :math:`2(1 + b)/(1 - b)`; AggMo
    :math:`2k / \sum_i (1 - b_i)/(1 + b_i)` (the crossing at :math:`z = -1`);
    AdamAggMo with the second moment ``v`` frozen: the AggMo limit times
    :math:`\sqrt{0.999 v + 10^{-6}}` (``x*/1000`` at ``v = 0``).

    >>> round(upper_limit("aggmo", (0.9, 0.99, 0.999)), 9)
    103.16908839
    >>> upper_limit("heavy_ball", 0.5), upper_limit("ema_momentum", 0.5)
    (3.0, 6.0)
    """
    b = _limit_betas(family, betas)
    scale = _frozen_scale(family, v)
    if family == "heavy_ball":
        return float(2 * (1 + b[0]))
    if family == "ema_momentum":
        return float(2 * (1 + b[0]) / (1 - b[0]))
    return float(2 * b.size / np.sum((1 - b) / (1 + b))) * scale


def block_limit(family: str, betas, *, v=None) -> float:
    r"""The limit a parameter-block analysis would report: :math:`2 / \bar c` with
    :math:`\bar c` the mean input weight of the momenta (1 for heavy ball,
    ``mean(1 - b_i)`` otherwise), times :math:`\sqrt{0.999 v + 10^{-6}}` for AdamAggMo.

    >>> block_limit("heavy_ball", 0.5)
    2.0
    >>> round(block_limit("aggmo", (0.9, 0.99, 0.999)), 6)
    54.054054
    """
    b = _limit_betas(family, betas)
    scale = _frozen_scale(family, v)
    c = 1.0 if family == "heavy_ball" else float(np.mean(1 - b))
    return 2 / c * scale


def numerical_upper_limit(family: str, betas) -> float:
    """:math:`x^*` by bisection on the exact per-mode spectral radius
    (:func:`stability.analyses.max_stable_learning_rate` at unit curvature), for
    cross-checking :func:`upper_limit`."""
    b = _limit_betas(family, betas)
    if family == "adam_aggmo":
        raise ValueError("family: use 'aggmo' and scale by sqrt(0.999 v + 1e-6)")
    if family == "aggmo":
        return max_stable_learning_rate("aggmo", 1.0, betas=tuple(b), rtol=1e-14)
    return max_stable_learning_rate(family, 1.0, beta=float(b[0]), rtol=1e-14)


# ---------------------------------------------------------------------------------
# the claim


def bounds(instance: Instance) -> dict:
    """The learning rate, the two radii, and for the momentum families the exact
    learning-rate limits of the block and of the joint loop (``x / lambda_max``; NaN
    for the learned term)."""
    block, joint = radii(instance)
    out = {"lr": instance.lr, "block_radius": block, "joint_radius": joint}
    if instance.family in MOMENTUM_FAMILIES:
        top = float(_mode_curvatures(instance)[-1])
        fam = "aggmo" if instance.family == "adam_aggmo" else instance.family
        out["block_lr_limit"] = block_limit(fam, instance.betas) / top
        out["joint_lr_limit"] = upper_limit(fam, instance.betas) / top
    else:
        out["block_lr_limit"] = out["joint_lr_limit"] = float("nan")
    return out


def hypotheses(instance: Instance) -> dict:
    """Named hypotheses and whether they hold:

    - ``momentum_family``: heavy ball, EMA, AggMo or AdamAggMo (no learned term on
      the momentum);
    - ``nonnegative_decays``: every decay in ``[0, 1)``;
    - ``block_stable``: the parameter block alone is stable (``rho < 1``).
    """
    block, _ = radii(instance)
    return {
        "momentum_family": instance.family in MOMENTUM_FAMILIES,
        "nonnegative_decays": all(0 <= b < 1 for b in instance.betas),
        "block_stable": block < 1,
    }


def conclusion(instance: Instance) -> bool:
    """The joint loop is stable: ``rho(M) < 1 + 1e-9``."""
    return radii(instance)[1] < 1 + SLACK


def _decays(rng, k):
    """``k`` decays in ``[0, 0.999]``, spread toward 1 (``1 - 10^-U(0, 3)``)."""
    return tuple(float(b) for b in 1 - 10 ** -rng.uniform(0, 3, k))


def sample(rng, *, family=None, n=None, kappa=None) -> Instance:
    """A random instance satisfying every hypothesis: a momentum family, ``H`` with
    ``n`` (1 to 8) eigenvalues spanning condition number ``kappa`` (up to 1e6),
    decays in ``[0, 0.999]`` (1 to 3 for AggMo and AdamAggMo), second moments
    log-uniform on ``[1e-8, 1]`` or zero, and ``lr`` a fraction in ``[0.01, 0.99]``
    of the block's limit."""
    family = MOMENTUM_FAMILIES[rng.integers(4)] if family is None else family
    n = int(rng.integers(1, 9)) if n is None else int(n)
    kappa = 10 ** rng.uniform(0, 6) if kappa is None else float(kappa)
    H, _, _ = random_hessian(rng, n, kappa, 10 ** rng.uniform(-2, 2))
    k = 1 if family in SINGLE_DECAY else int(rng.integers(1, 4))
    betas = _decays(rng, k)
    v = None
    if family == "adam_aggmo":
        v = np.zeros(n) if rng.random() < 0.3 else 10 ** rng.uniform(-8, 0, n)
    inst = make_instance(family=family, H=H, lr=1.0, betas=betas, v=v)
    limit = bounds(inst)["block_lr_limit"]
    return inst._replace(lr=float(limit * rng.uniform(0.01, 0.99)))


DROPS = {
    "nonnegative_decays": "sufficiency",
    "block_stable": "necessity",
    "momentum_family": "sufficiency",
}


def _draw_negative(rng):
    family = ("heavy_ball", "ema_momentum", "aggmo")[rng.integers(3)]
    n = int(rng.integers(1, 4))
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 2), 1.0)
    k = 1 if family in SINGLE_DECAY else int(rng.integers(1, 4))
    betas = list(_decays(rng, k))
    betas[rng.integers(k)] = -rng.uniform(0.05, 0.95)
    inst = make_instance(family=family, H=H, lr=1.0, betas=betas)
    return inst._replace(lr=bounds(inst)["block_lr_limit"] * rng.uniform(0.05, 0.99))


def _draw_loose_block(rng):
    family = MOMENTUM_FAMILIES[rng.integers(4)]
    n = int(rng.integers(1, 4))
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 2), 1.0)
    k = 1 if family in SINGLE_DECAY else int(rng.integers(1, 4))
    v = 10 ** rng.uniform(-8, 0, n) if family == "adam_aggmo" else None
    inst = make_instance(family=family, H=H, lr=1.0, betas=_decays(rng, k), v=v)
    b = bounds(inst)
    lr = rng.uniform(b["block_lr_limit"], b["joint_lr_limit"])
    return inst._replace(lr=float(lr))


def _draw_learned(rng):
    n = int(rng.integers(1, 4))
    top = 1.0
    H, _, _ = random_hessian(rng, n, 10 ** rng.uniform(0, 2), top)
    lr = rng.uniform(0, 5 / top)
    r_inv = spd_power(H, -0.5)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = rng.uniform(0.02, 1.98, n)  # spec of the block's H^{1/2} (lr I + P) H^{1/2}
    K = r_inv @ ((q * s) @ q.T) @ r_inv
    P = 0.5 * (K + K.T) - lr * np.eye(n)
    beta = float(_decays(rng, 1)[0])
    return make_instance(family="learned_momentum", H=H, lr=lr, betas=beta, P=P)


SEARCHES = {
    "nonnegative_decays": _draw_negative,
    "block_stable": _draw_loose_block,
    "momentum_family": _draw_learned,
}


def _joint_radius(instance):
    return radii(instance)[1]


def counterexample(drop, *, kind=None, seed=0, budget=DEFAULT_BUDGET):
    """Seeded random search for an instance satisfying every hypothesis except
    ``drop`` that breaks the claim:

    - ``"nonnegative_decays"`` (sufficiency): a negative decay; block stable, joint
      unstable (``rho > 1 + 1e-6``);
    - ``"block_stable"`` (necessity): decays in ``[0, 1)`` and ``lr`` between the
      block's and the joint limit; block unstable, joint stable (``rho < 1 - 1e-6``);
    - ``"momentum_family"`` (sufficiency): a learned term on the momentum cancelling
      a large nominal step; decay in ``[0, 1)``, block stable, joint unstable.

    Same seed, same instance; None if the budget runs out.

    >>> inst = counterexample("nonnegative_decays", seed=0)
    >>> radii(inst)[0] < 1 < radii(inst)[1]
    True
    """
    return _claim.counterexample(CLAIM, drop, kind=kind, seed=seed, budget=budget)


def __getattr__(name):
    return _deprecated.moved(__name__, name)


CLAIM = claim_of(__name__, searches=SEARCHES, breaks=radius_breaks(_joint_radius))
