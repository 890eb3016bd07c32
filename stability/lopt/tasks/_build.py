"""The registered tasks' builders: datasets to device arrays, networks to losses.

:func:`stability.lopt.tasks.get_task` calls the builder its registry names, with the
task's name, the registered options and an optional ``batch_size``: :func:`mlp` and
:func:`cnn` on one of the image datasets, :func:`text_lstm` and
:func:`text_transformer` on the standard library's source. A dataset becomes a
:class:`_Source` (its device arrays, batch sampling and whole splits) and every task
is :func:`_task` of a source and a network, so all tasks share one sampling,
evaluation and dtype behaviour.
"""

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stability.lopt.tasks import Evaluation, Task, _data, _nets

F32 = jnp.float32


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


class _Source(NamedTuple):
    """A dataset on the device, as a task trains and evaluates on it."""

    num_classes: int
    data: dict[str, jax.Array]
    sample_batch: Callable  # key -> a batch drawn from the training split
    train: Callable  # () -> the whole training split as one batch
    test: Callable  # () -> the held-out split as one batch


def _task(name, description, spec, apply, batch, source: _Source) -> Task:
    """The :class:`Task` of the model ``apply(params, x) -> logits`` (parameters from
    ``spec``) under the cross-entropy on ``source``."""

    def loss(params, b):
        x, y = b
        return _cross_entropy(apply(params, x), y).loss

    @jax.jit
    def evaluate(params):
        x, y = source.test()
        return _cross_entropy(apply(params, x), y)

    @jax.jit
    def train_loss(params):
        x, y = source.train()
        return _cross_entropy(apply(params, x), y).loss

    return Task(
        name=name,
        init=lambda key: _nets.init(key, spec),
        loss=loss,
        sample_batch=source.sample_batch,
        evaluate=evaluate,
        train_loss=train_loss,
        batch_size=batch,
        num_classes=source.num_classes,
        description=description,
        data=source.data,
        logits=apply,
        train_batch=source.train,
    )


def _images(split: _data.Split, in_shape, batch) -> _Source:
    """A classification split, each input of shape ``in_shape``."""
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

    data = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _Source(
        10,
        data,
        sample_batch,
        lambda: (inputs(x_train), y_train),
        lambda: (inputs(x_test), y_test),
    )


#: dataset -> (its loader, the shape of one input, its name in descriptions)
_DATASETS = {
    "digits": (_data.digits, (8, 8, 1), "8x8 digits"),
    "mnist": (_data.mnist, (28, 28, 1), "MNIST 5k"),
    "mnist1d": (_data.mnist1d, (40, 1), "MNIST-1D"),
}


def mlp(name, dataset, hidden, activation="relu", batch_size=128):
    """An MLP classifier on ``dataset``, hidden layers of widths ``hidden``."""
    load, shape, label = _DATASETS[dataset]
    sizes = (math.prod(shape), *hidden, 10)
    description = f"{label}, MLP {'-'.join(map(str, sizes))} {activation}"
    source = _images(load(), shape, batch_size)
    apply = functools.partial(_nets.mlp, activation=activation)
    return _task(name, description, _nets.mlp_spec(sizes), apply, batch_size, source)


def cnn(name, dataset, channels, window, batch_size=128):
    """A classifier on ``dataset``: ReLU convolutions of stride 2 with ``channels``
    and ``window`` wide kernels, then a dense readout."""
    load, shape, label = _DATASETS[dataset]
    spec = _nets.cnn_spec(shape, channels, 10, window, 2)
    kernel = "x".join([str(window)] * (len(shape) - 1))
    layers = "-".join(map(str, channels))
    readout = spec["dense"]["w"].shape[0]
    description = f"{label}, CNN conv{kernel}/2 {layers} relu, dense {readout}-10"
    source = _images(load(), shape, batch_size)
    apply = functools.partial(_nets.cnn, stride=2)
    return _task(name, description, spec, apply, batch_size, source)


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


def _text(batch) -> _Source:
    """Next-character windows over the standard library's source."""
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

    data = {
        "train": stream,
        "train_windows": train_windows,
        "test_windows": test_windows,
    }
    return _Source(
        _VOCAB,
        data,
        sample_batch,
        lambda: split(train_windows),
        lambda: split(test_windows),
    )


def text_lstm(name, batch_size=32):
    """A character LSTM (embedding 32, hidden 64)."""
    spec = _nets.lstm_spec(_VOCAB, 32, 64)
    description = "stdlib source, char LSTM embed 32 hidden 64"
    return _task(name, description, spec, _nets.lstm, batch_size, _text(batch_size))


def text_transformer(name, batch_size=32):
    """A causal character transformer (2 layers, width 64, 4 heads)."""
    spec = _nets.transformer_spec(_VOCAB, _SEQ_LEN, 64, 2, 256)
    description = "stdlib source, char transformer 2 layers width 64 4 heads"
    apply = functools.partial(_nets.transformer, n_heads=4)
    return _task(name, description, spec, apply, batch_size, _text(batch_size))
