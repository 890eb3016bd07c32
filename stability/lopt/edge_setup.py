r"""Optimizers and losses by name for the edge-of-stability tracker: each optimizer of
``stability edge`` with the threshold of the quantity that decides its linearised
stability and the diagonal preconditioner to read from its state, and the squared
error of a classification task's logits.

:func:`edge_optimizer` is what :func:`stability.lopt.edge.track_task` and the command
build their runs from::

    setup = edge_optimizer("adam", lr=1e-3)       # optax.adam, 38 / lr
    setup.optimizer, setup.preconditioner, setup.threshold, setup.quantity
"""

from collections.abc import Callable, Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stability._validation import check_scalar
from stability.operators.network import diagonal_preconditioner, threshold

__all__ = [
    "DEFAULT_LR",
    "EDGE_OPTIMIZERS",
    "EdgeSetup",
    "edge_optimizer",
    "squared_error",
]

EDGE_OPTIMIZERS = ("gd", "heavy_ball", "adam", "nominal", "star")
# documented defaults: stable, and sharpening, on digits_mlp with either loss
DEFAULT_LR = {"gd": 0.1, "heavy_ball": 0.01, "adam": 1e-3, "nominal": 0.03}


class EdgeSetup(NamedTuple):
    """An optimizer by name with what the tracker needs to know about it.

    Attributes:
      optimizer: the optax transformation.
      preconditioner: ``None`` or a function ``state -> D``.
      threshold: the threshold of ``quantity`` (``None`` for a STAR without
        nominal term).
      quantity: ``"sharpness"`` or ``"preconditioned_sharpness"``.
      info: ``optimizer``, ``lr`` (STAR: its nominal step), ``beta``, ``betas``.
    """

    optimizer: optax.GradientTransformation
    preconditioner: Callable | None
    threshold: float | None
    quantity: str
    info: dict


def edge_optimizer(name: str, *, lr=None, beta=None, theta=None) -> EdgeSetup:
    r"""One of :data:`EDGE_OPTIMIZERS` with its threshold and preconditioner.

    ============== ===================================== ========================
    ``gd``         ``optax.sgd(lr)``                      sharpness, ``2/lr``
    ``heavy_ball`` ``optax.sgd(lr, momentum=beta)``       sharpness, ``2(1+b)/lr``
    ``adam``       ``optax.adam(lr, b1=beta)``            preconditioned,
                                                          ``(2+2b)/((1-b) lr)``
    ``nominal``    STAR's nominal term alone              preconditioned,
                   (:func:`~stability.lopt.evaluate.nominal_only`)
                                                          ``x*(0.9, 0.99, 0.999)/lr``
    ``star``       STAR from ``theta``                    preconditioned,
                                                          ``x*(learned decays)/lr``
    ============== ===================================== ========================

    ``x*`` is the exact AggMo boundary (:func:`stability.operators.threshold`): with
    the second moment frozen, STAR's nominal AdamAggMo term is AggMo on
    :math:`D^{-1/2} H D^{-1/2}`, :math:`D = \sqrt{v + 10^{-6}}`, with the theta's
    learned momentum decays; the learned blackbox term and the magnitude heads are
    outside that threshold.

    Args:
      name: one of ``gd, heavy_ball, adam, nominal, star``.
      lr: the learning rate (STAR: its nominal step); default
        :data:`DEFAULT_LR`, or the theta's sidecar for STAR.
      beta: heavy ball's momentum or Adam's ``b1`` (default 0.9); only those two.
      theta: STAR's theta, a path or dict (default the shipped
        ``stability/lopt/thetas/star.npz``); only ``star``.
    """
    if name not in EDGE_OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {EDGE_OPTIMIZERS}, got {name!r}")
    if beta is not None and name not in ("heavy_ball", "adam"):
        raise ValueError(f"beta: only heavy_ball and adam take it, not {name}")
    if theta is not None and name != "star":
        raise ValueError(f"theta: only star takes it, not {name}")
    if lr is not None:
        lr = check_scalar("lr", lr, low=0.0, low_open=True)
    if name == "star":
        return _star_setup(theta, lr)
    lr = DEFAULT_LR[name] if lr is None else lr
    info = {"optimizer": name, "lr": lr}
    if name in ("heavy_ball", "adam"):
        beta = 0.9 if beta is None else beta
        beta = check_scalar("beta", beta, low=0.0, high=1.0, high_open=True)
        info["beta"] = beta
    if name == "gd":
        return EdgeSetup(optax.sgd(lr), None, threshold("gd", lr), "sharpness", info)
    if name == "heavy_ball":
        return EdgeSetup(
            optax.sgd(lr, momentum=beta),
            None,
            threshold("heavy_ball", lr, beta=beta),
            "sharpness",
            info,
        )
    if name == "adam":
        return EdgeSetup(
            optax.adam(lr, b1=beta),
            partial(diagonal_preconditioner, kind="adam"),
            threshold("adam", lr, beta=beta),
            "preconditioned_sharpness",
            info,
        )
    from stability.lopt.evaluate import nominal_only
    from stability.lopt.theta import MOMENTUM_DECAYS

    # STAR keeps its initial decays in float32
    betas = tuple(float(np.float32(b)) for b in MOMENTUM_DECAYS)
    info["betas"] = betas
    return EdgeSetup(
        nominal_only(lr),
        partial(diagonal_preconditioner, kind="star"),
        threshold("aggmo", lr, betas=betas),
        "preconditioned_sharpness",
        info,
    )


def _star_setup(theta, lr) -> EdgeSetup:
    from stability.lopt import _features
    from stability.lopt.evaluate import learned_optimizer
    from stability.lopt.io import SHIPPED_THETAS
    from stability.lopt.theta import ADAFACTOR_DECAYS, MOMENTUM_DECAYS, RMS_DECAYS

    if theta is None:
        theta = SHIPPED_THETAS / "star.npz"
    learned = learned_optimizer(theta, nominal_stepsize=lr)
    if learned.theta["mlp"]["b2"].shape != (3,):
        raise ValueError("theta: expected a STAR theta (3 heads), got small_fc_lopt")
    decays = _features.decays_from_offsets(
        learned.theta, jnp.float32, (MOMENTUM_DECAYS, RMS_DECAYS, ADAFACTOR_DECAYS)
    )
    betas = tuple(float(b) for b in np.asarray(decays.momentum))
    step = learned.nominal_stepsize
    info = {"optimizer": "star", "lr": step, "betas": betas, "label": learned.label}
    info["theta"] = "dict" if isinstance(theta, Mapping) else str(theta)
    thresh = None if step is None else threshold("aggmo", step, betas=betas)
    return EdgeSetup(
        learned.optimizer,
        partial(diagonal_preconditioner, kind="star"),
        thresh,
        "preconditioned_sharpness",
        info,
    )


def squared_error(task) -> Callable:
    r"""The squared error of a classification task's logits against one-hot
    targets, :math:`\frac12 \frac1N \sum_n \|f(x_n) - e_{y_n}\|^2` (summed over
    classes, averaged over examples, and over positions for text), as in the
    published edge-of-stability experiments."""
    if task.logits is None:
        raise ValueError(f"task: {task.name} exposes no logits for a squared error")
    k = task.num_classes

    def loss(params, batch):
        x, y = batch
        logits = task.logits(params, x).astype(jnp.float32)
        err = logits - jax.nn.one_hot(y, k, dtype=logits.dtype)
        return 0.5 * jnp.mean(jnp.sum(err * err, axis=-1))

    return loss
