r"""Stability along real training: the sharpness, the preconditioned sharpness and the
spectral radius of the real training step, against the optimizer's threshold.

:func:`track` trains a user's own loss with any optax optimizer and, every ``every``
steps, measures

* ``sharpness``: the top eigenvalue of the loss's Hessian (Lanczos on jitted
  Hessian-vector products, warm-started from the last checkpoint's vector);
* ``preconditioned_sharpness``: the top eigenvalue of :math:`D^{-1/2} H D^{-1/2}`,
  :math:`D` the diagonal preconditioner read from the optimizer state (Adam's
  :math:`\sqrt{\hat v} + \epsilon`, STAR's :math:`\sqrt{v + 10^{-6}}`);
* ``step_radius`` (optional): the spectral radius of the Jacobian of one full
  training step over parameters and optimizer state (Arnoldi);

and compares the quantity that matters for the optimizer with its threshold
(:func:`stability.operators.threshold`): the sharpness against ``2 / lr`` for
gradient descent, the preconditioned sharpness against ``38 / lr`` for Adam with
``beta1 = 0.9``. Calling pattern::

    run = track(loss_fn, params, optax.sgd(0.05), batch, steps=2000, every=50,
                threshold=2 / 0.05)
    [(c.step, c.sharpness, c.threshold) for c in run.checkpoints]

    run = track_task("digits_mlp", "adam", lr=1e-3, loss="mse", steps=2000, every=50)

:func:`gd_edge_of_stability` and :func:`adam_edge_of_stability` reproduce the two
published edge-of-stability results on a small network and return records that
:func:`stability.plotting.edge` draws.

References:
  Cohen, Kaur, Li, Kolter & Talwalkar, "Gradient Descent on Neural Networks
  Typically Occurs at the Edge of Stability", ICLR 2021.
  Cohen, Ghorbani, Krishnan, Agarwal, Medapati, Badura, Suo, Cardoze, Nado, Dahl &
  Gilmer, "Adaptive Gradient Methods at the Edge of Stability", 2022.
"""

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from stability._validation import check_flag, check_int, check_scalar
from stability.analyses.eigen import arnoldi, lanczos
from stability.lopt.edge_setup import (
    DEFAULT_LR,
    EDGE_OPTIMIZERS,
    EdgeSetup,
    edge_optimizer,
    squared_error,
)
from stability.operators.network import (
    _check_loss,
    _find,
    _hessian_operator,
    diagonal_preconditioner,
    step_jacobian,
)

__all__ = [
    "DEFAULT_LR",
    "EDGE_OPTIMIZERS",
    "EdgeCheckpoint",
    "EdgeReproduction",
    "EdgeRun",
    "EdgeSetup",
    "adam_edge_of_stability",
    "edge_optimizer",
    "gd_edge_of_stability",
    "squared_error",
    "track",
    "track_task",
]

LOSSES = ("ce", "mse")


class EdgeCheckpoint(NamedTuple):
    """One measurement along training (plain Python numbers, JSON-ready).

    Attributes:
      step: optimizer steps taken.
      loss: the loss on the measurement batch (for ``diverged`` at a step between
        checkpoints: the training loss of that step).
      sharpness: top Hessian eigenvalue, or ``None`` (loss not finite).
      preconditioned_sharpness: top eigenvalue of ``D^{-1/2} H D^{-1/2}``; ``None``
        without a preconditioner, and at step 0, before the optimizer has one.
      threshold: the threshold of the quantity that matters for the optimizer
        (``None`` if none was given).
      step_radius: spectral radius of the training step's Jacobian, ``None`` unless
        asked for.
      diverged: the loss is non-finite, or above its value at step 0.
      sharpness_residual: relative Lanczos residual of ``sharpness``.
      preconditioned_residual: the same for ``preconditioned_sharpness``.
    """

    step: int
    loss: float
    sharpness: float | None
    preconditioned_sharpness: float | None
    threshold: float | None
    step_radius: float | None
    diverged: bool
    sharpness_residual: float | None = None
    preconditioned_residual: float | None = None


class EdgeRun(NamedTuple):
    """A tracked run: its checkpoints and what was run (``info``: ``optimizer``,
    ``lr``, ``beta``, ``quantity`` (the field compared with ``threshold``),
    ``task``, ``loss``, ``seconds``, ...)."""

    checkpoints: list
    info: dict

    def series(self, field: str) -> np.ndarray:
        """``field`` over the checkpoints as floats (``None`` -> NaN)."""
        return np.array(
            [
                np.nan if getattr(c, field) is None else getattr(c, field)
                for c in self.checkpoints
            ],
            dtype=float,
        )


class EdgeReproduction(NamedTuple):
    """Several runs of one optimizer at different learning rates.

    Attributes:
      runs: one :class:`EdgeRun` per learning rate.
      ratios: per run, the median of ``quantity`` over the second half of training
        divided by the threshold (1 means it hovers at the edge).
      quantity: ``"sharpness"`` or ``"preconditioned_sharpness"``.
      title: one line for the figure.
    """

    runs: list
    ratios: list
    quantity: str
    title: str


# -- the tracker ----------------------------------------------------------------------


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _train(loss_fn, optimizer, batch_fn, length, params, state, batch, start):
    """``length`` steps in one scan; the per-step training losses."""

    def body(carry, i):
        p, s = carry
        b = batch if batch_fn is None else batch_fn(start + i)
        loss, grads = jax.value_and_grad(loss_fn)(p, b)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    (params, state), losses = lax.scan(
        body, (params, state), jnp.arange(length, dtype=jnp.int32)
    )
    return params, state, losses


@partial(jax.jit, static_argnums=0)
def _loss(loss_fn, params, batch):
    return loss_fn(params, batch)


def _preconditioner_fn(preconditioner) -> Callable | None:
    if preconditioner is None:
        return None
    if callable(preconditioner):
        return preconditioner
    if preconditioner in ("adam", "star"):
        return partial(diagonal_preconditioner, kind=preconditioner)
    raise ValueError(
        "preconditioner: expected None, 'adam', 'star' or a function of the state, "
        f"got {preconditioner!r}"
    )


def track(
    loss_fn: Callable,
    params,
    optimizer: optax.GradientTransformation,
    batches,
    *,
    steps: int,
    every: int,
    step_radius: bool = False,
    preconditioner=None,
    threshold: float | None = None,
    quantity: str | None = None,
    measure_batch=None,
    tol: float = 1e-3,
    max_iter: int = 100,
    radius_k: int = 6,
    radius_tol: float = 1e-8,
    radius_dtype=None,
    log: Callable[[str], None] | None = None,
    callback: Callable[[EdgeCheckpoint], None] | None = None,
) -> EdgeRun:
    r"""Train ``params`` with ``optimizer`` on ``loss_fn`` for ``steps`` steps and
    measure the edge of stability at step 0 and every ``every`` steps (and at the
    end).

    Training runs in jitted scans of ``every`` steps; the measurements use the
    same ``loss_fn`` on ``measure_batch``. A run stops cleanly at the first
    checkpoint whose loss is non-finite or above its step-0 value, or at the first
    step whose training loss is non-finite; the last checkpoint then has
    ``diverged=True`` and everything before it is kept.

    Args:
      loss_fn: ``(params, batch) -> scalar``; keep one function object per run (it
        is a static argument of the jitted kernels).
      params: initial parameters (any pytree of floating arrays).
      optimizer: any optax transformation whose ``update(grads, state, params)``
        needs nothing else (STAR and the other learned optimizers included).
      batches: one fixed batch (full-batch training), or a jittable function
        ``step -> batch`` (called with a traced int32 step).
      steps: training steps.
      every: steps between checkpoints.
      step_radius: also measure the spectral radius of the step's Jacobian
        (``radius_k`` Arnoldi eigenvalues; costly on large states).
      preconditioner: ``None``, ``"adam"`` (optax's defaults ``b2=0.999``,
        ``eps=1e-8``), ``"star"``, or a function ``state -> D``.
      threshold: the threshold recorded beside the measurements (see
        :func:`stability.operators.threshold`), or ``None``.
      quantity: the field compared with the threshold (default: the preconditioned
        sharpness when there is a preconditioner, else the sharpness); recorded in
        ``info``.
      measure_batch: the batch the measurements use (default: the fixed batch, or
        ``batches(0)``).
      tol: relative Lanczos residual to reach.
      max_iter: most Lanczos products per eigenvalue.
      radius_k: eigenvalues Arnoldi resolves for ``step_radius``.
      radius_tol: Arnoldi's tolerance (:func:`stability.analyses.arnoldi`).
      radius_dtype: ``None`` (the step's Jacobian in the state's own dtype) or a
        floating dtype to cast the parameters and state to before linearising the
        step (``jnp.float64`` needs ``jax_enable_x64``). A learned optimizer's step
        Jacobian can be far from normal, and float32 products then move its
        eigenvalues near the unit circle.
      log: called with one line per checkpoint.
      callback: called with each :class:`EdgeCheckpoint` as it is recorded.
    Returns:
      :class:`EdgeRun`.
    Raises:
      ValueError: naming the argument: a non-scalar loss, ``params`` and ``batches``
        that do not match, a ``state`` without the preconditioner asked for, bad
        settings.
    """
    steps = check_int("steps", steps, low=1)
    every = check_int("every", every, low=1)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"optimizer: expected an optax GradientTransformation, got {optimizer!r}"
        )
    precondition, quantity = _check_quantity(preconditioner, quantity)
    batch_fn = batches if callable(batches) else None
    fixed = None if batch_fn is not None else batches
    if measure_batch is None:
        measure_batch = fixed if batch_fn is None else batch_fn(jnp.int32(0))
    how = _Settings(
        loss_fn,
        optimizer,
        measure_batch,
        None
        if threshold is None
        else check_scalar("threshold", threshold, low=0.0, low_open=True),
        check_flag("step_radius", step_radius),
        check_scalar("tol", tol, low=0.0, low_open=True),
        check_int("max_iter", max_iter, low=1),
        check_int("radius_k", radius_k, low=1),
        check_scalar("radius_tol", radius_tol, low=0.0),
        _check_radius_dtype(radius_dtype),
        precondition,
    )
    _check_loss(loss_fn, params, measure_batch)
    state = optimizer.init(params)
    _check_state_holds(preconditioner, state)

    t0 = time.perf_counter()
    checkpoints = _run(how, params, state, steps, every, batches, log, callback)
    info = {
        "quantity": quantity,
        "threshold": how.threshold,
        "steps": steps,
        "every": every,
        "seconds": time.perf_counter() - t0,
    }
    return EdgeRun(checkpoints, info)


def _run(how, params, state, steps, every, batches, log, callback):
    """The training loop of :func:`track`: its checkpoints."""
    batch_fn = batches if callable(batches) else None
    fixed = None if batch_fn is not None else batches
    checkpoints: list[EdgeCheckpoint] = []
    vectors: dict[str, Any] = {"h": None, "p": None}
    initial = None
    step = 0
    while True:
        loss = float(_loss(how.loss_fn, params, how.batch))
        if initial is None:
            initial = loss
        bad = not math.isfinite(loss) or loss > initial
        conditioner = how.precondition if step > 0 else None
        point = _measure(how, params, state, step, loss, bad, conditioner, vectors)
        _emit(checkpoints, point, log, callback)
        if bad or step >= steps:
            break
        length = min(every, steps - step)
        params, state, losses = _train(
            how.loss_fn,
            how.optimizer,
            batch_fn,
            length,
            params,
            state,
            fixed,
            jnp.int32(step),
        )
        losses = np.asarray(losses)
        nonfinite = np.flatnonzero(~np.isfinite(losses))
        if nonfinite.size:
            i = int(nonfinite[0])
            point = EdgeCheckpoint(
                step + i, float(losses[i]), None, None, how.threshold, None, True
            )
            _emit(checkpoints, point, log, callback)
            break
        step += length
    return checkpoints


class _Settings(NamedTuple):
    """What every checkpoint of one :func:`track` run measures, and how."""

    loss_fn: Callable
    optimizer: optax.GradientTransformation
    batch: Any
    threshold: float | None
    step_radius: bool
    tol: float
    max_iter: int
    radius_k: int
    radius_tol: float
    radius_dtype: Any
    precondition: Callable | None


def _check_quantity(preconditioner, quantity):
    """The preconditioner as a function of the state (or ``None``) and the field
    compared with the threshold."""
    precondition = _preconditioner_fn(preconditioner)
    if quantity is None:
        quantity = "sharpness" if precondition is None else "preconditioned_sharpness"
    if quantity not in ("sharpness", "preconditioned_sharpness"):
        raise ValueError(
            f"quantity: expected 'sharpness' or 'preconditioned_sharpness', got "
            f"{quantity!r}"
        )
    if quantity == "preconditioned_sharpness" and precondition is None:
        raise ValueError(
            "quantity: the preconditioned sharpness needs a preconditioner"
        )
    return precondition, quantity


def _check_radius_dtype(dtype):
    if dtype is None:
        return None
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as err:
        raise ValueError(
            f"radius_dtype: expected a floating dtype, got {dtype!r}"
        ) from err
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"radius_dtype: expected a floating dtype, got {dtype}")
    if dtype.itemsize == 8 and not jax.config.jax_enable_x64:
        raise ValueError("radius_dtype: float64 needs jax_enable_x64 on")
    return dtype


def _check_state_holds(preconditioner, state):
    """Check at once that the state holds the preconditioner named, not after the
    first chunk of training (a function of the state is first called at the first
    checkpoint)."""
    if preconditioner not in ("adam", "star"):
        return
    fields = ("count", "mu", "nu") if preconditioner == "adam" else ("second_moment",)
    if _find(state, fields) is None:
        raise ValueError(
            f"state: the optimizer's state holds no {preconditioner} second "
            "moment to precondition with"
        )


def _cast(tree, dtype):
    """``tree`` with its floating leaves in ``dtype`` (other leaves kept)."""
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        tree,
    )


def _measure(how, params, state, step, loss, bad, precondition, vectors):
    if not math.isfinite(loss):
        return EdgeCheckpoint(step, loss, None, None, how.threshold, None, True)

    def top(key, diagonal):
        """Top eigenvalue and its residual, warm-started from ``vectors[key]``."""
        op = _hessian_operator(how.loss_fn, params, how.batch, diagonal)
        pairs = lanczos(op, v0=vectors[key], tol=how.tol, max_iter=how.max_iter)
        vectors[key] = pairs.eigenvectors
        return float(pairs.eigenvalues[0]), float(pairs.relative_residuals[0])

    sharp, sharp_res = top("h", None)
    psharp = pres = None
    if precondition is not None:
        psharp, pres = top("p", precondition(state))
    radius = None
    if how.step_radius:
        p, s = params, state
        if how.radius_dtype is not None:
            p, s = _cast(params, how.radius_dtype), _cast(state, how.radius_dtype)
        jac, _ = step_jacobian(how.loss_fn, how.optimizer, p, s, how.batch)
        k = min(how.radius_k, jac.shape[0])
        pairs = arnoldi(jac, k=k, tol=how.radius_tol)
        radius = float(np.max(np.abs(pairs.eigenvalues)))
    return EdgeCheckpoint(
        step, loss, sharp, psharp, how.threshold, radius, bool(bad), sharp_res, pres
    )


def _emit(checkpoints, point, log, callback):
    checkpoints.append(point)
    if log is not None:
        log(_line(point))
    if callback is not None:
        callback(point)


def _line(c: EdgeCheckpoint) -> str:
    def fmt(x):
        return "-" if x is None else f"{x:.4g}"

    return (
        f"step {c.step}: loss {fmt(c.loss)}, sharpness {fmt(c.sharpness)}, "
        f"preconditioned {fmt(c.preconditioned_sharpness)}, threshold "
        f"{fmt(c.threshold)}, step radius {fmt(c.step_radius)}"
        + (", diverged" if c.diverged else "")
    )


def track_task(
    task,
    optimizer: str = "gd",
    *,
    lr: float | None = None,
    beta: float | None = None,
    theta=None,
    loss: str = "ce",
    steps: int,
    every: int,
    batch_size: int | None = None,
    subset: int | None = None,
    step_radius: bool = False,
    seed: int = 0,
    **kwargs,
) -> EdgeRun:
    """:func:`track` on a registered task with an optimizer by name (what
    ``stability edge`` runs).

    Args:
      task: a name of :func:`stability.lopt.tasks.task_names` or a ``Task``.
      optimizer, lr, beta, theta: see :func:`edge_optimizer`.
      loss: ``"ce"`` (the task's cross-entropy) or ``"mse"`` (:func:`squared_error`).
      steps, every, step_radius: see :func:`track`.
      batch_size: ``None`` trains full-batch on the training split (measurements on
        the same batch); otherwise fresh minibatches of this size every step, with
        the measurements on one fixed minibatch.
      subset: full-batch on the first ``subset`` training examples only.
      seed: initial parameters and batches.
      **kwargs: passed to :func:`track` (``tol``, ``max_iter``, ``log``, ...); a
        ``measure_batch`` given there replaces the default one.
    Returns:
      :class:`EdgeRun` whose ``info`` also says the task, loss and batch.
    """
    from stability.lopt.tasks import Task, get_task

    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1)
        if subset is not None:
            raise ValueError("subset: only for full-batch training (batch_size None)")
    if subset is not None:
        subset = check_int("subset", subset, low=1)
    seed = check_int("seed", seed, low=0)
    setup = edge_optimizer(optimizer, lr=lr, beta=beta, theta=theta)
    if not isinstance(task, Task):
        task = get_task(task, batch_size=batch_size)
    elif batch_size is not None and batch_size != task.batch_size:
        raise ValueError(
            f"batch_size: the task given samples {task.batch_size}, not {batch_size}"
        )
    loss_fn = task.loss if loss == "ce" else squared_error(task)
    key_init, key_batch, key_measure = jax.random.split(jax.random.key(seed), 3)
    params = task.init(key_init)
    measure = kwargs.pop("measure_batch", None)
    if batch_size is None:
        if task.train_batch is None:
            raise ValueError(f"task: {task.name} has no training split to batch")
        batches = task.train_batch()
        if subset is not None:
            batches = jax.tree.map(lambda a: a[:subset], batches)
    else:
        sample = task.sample_batch
        batches = lambda step: sample(jax.random.fold_in(key_batch, step))  # noqa: E731
        if measure is None:
            measure = sample(key_measure)
    run = track(
        loss_fn,
        params,
        setup.optimizer,
        batches,
        steps=steps,
        every=every,
        step_radius=step_radius,
        preconditioner=setup.preconditioner,
        threshold=setup.threshold,
        quantity=setup.quantity,
        measure_batch=measure,
        **kwargs,
    )
    info = dict(setup.info)
    info.update(
        task=task.name,
        loss=loss,
        batch="full" if batch_size is None else batch_size,
        subset=subset,
        seed=seed,
    )
    info.update(run.info)
    return EdgeRun(run.checkpoints, info)


# -- the two published results --------------------------------------------------------


def _median_ratio(run: EdgeRun) -> float:
    """Median of the run's quantity over the second half of its steps, over the
    threshold (NaN if it diverged before then)."""
    steps = run.series("step")
    values = run.series(run.info["quantity"])
    late = (steps >= run.info["steps"] / 2) & np.isfinite(values)
    if not np.any(late) or run.checkpoints[-1].diverged:
        return float("nan")
    return float(np.median(values[late]) / run.info["threshold"])


def gd_edge_of_stability(
    lrs=(0.1, 0.125, 0.15),
    *,
    task: str = "digits_mlp_tanh",
    subset: int = 500,
    steps: int = 4000,
    every: int = 20,
    seed: int = 0,
    log=None,
) -> EdgeReproduction:
    """Full-batch gradient descent with squared error at several learning rates:
    the sharpness reaches ``2 / lr`` and hovers there while the loss keeps falling,
    non-monotonically (Cohen et al., 2021). On the default network the initial
    sharpness (about 25) is above ``2 / lr``: it drops at once, then rises back to
    ``2 / lr`` by progressive sharpening.

    Returns:
      :class:`EdgeReproduction` with, per learning rate, the median sharpness over
      the second half of training divided by ``2 / lr``.
    """
    return _full_batch_runs(
        "gd",
        lrs,
        "sharpness",
        f"full-batch GD, squared error, {task} ({subset} examples)",
        task=task,
        steps=steps,
        every=every,
        subset=subset,
        seed=seed,
        log=log,
    )


def adam_edge_of_stability(
    lrs=(4e-3, 8e-3, 1.6e-2),
    *,
    beta: float = 0.9,
    task: str = "digits_mlp_tanh",
    subset: int = 500,
    steps: int = 4000,
    every: int = 20,
    seed: int = 0,
    log=None,
) -> EdgeReproduction:
    """Full-batch Adam with squared error at several learning rates: the
    preconditioned sharpness rises to ``(2 + 2 beta) / ((1 - beta) lr)`` (38/lr for
    beta = 0.9) and hovers there (Cohen et al., 2022). Each checkpoint also records
    the raw sharpness; Cohen et al. saw it keep growing on their networks, but on
    the default one here it does not: it ends below its value at step 0.

    Returns:
      :class:`EdgeReproduction` with, per learning rate, the median preconditioned
      sharpness over the second half of training divided by the threshold.
    """
    return _full_batch_runs(
        "adam",
        lrs,
        "preconditioned_sharpness",
        f"full-batch Adam (b1 = {beta}), squared error, {task} ({subset} examples)",
        task=task,
        beta=beta,
        steps=steps,
        every=every,
        subset=subset,
        seed=seed,
        log=log,
    )


def _full_batch_runs(optimizer, lrs, quantity, label, *, task, **kwargs):
    """One squared-error run of ``track_task`` per learning rate, with the median
    of ``quantity`` over its second half divided by its threshold."""
    runs = [track_task(task, optimizer, lr=lr, loss="mse", **kwargs) for lr in lrs]
    return EdgeReproduction(runs, [_median_ratio(r) for r in runs], quantity, label)
