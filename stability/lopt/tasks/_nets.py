"""Small networks in plain JAX for the learned-optimizer tasks.

Parameters are nested dicts of float32 arrays. A network's ``*_spec`` function describes
them (:class:`Normal` weights, :class:`Const` biases) without a key; :func:`init` turns
a spec into arrays from one key. Apply functions are pure.

Dense, conv and recurrent weights are LeCun normal (variance ``1 / fan_in``), the
default of Haiku and Flax and so of the ``learned_optimization`` tasks that these
mirror; embeddings are normal with unit total variance; biases are zero except the
LSTM's forget gate.
"""

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

F32 = jnp.float32
Params = dict

ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu, "tanh": jnp.tanh}


class Normal(NamedTuple):
    """A weight drawn from ``N(0, std**2)``."""

    shape: tuple[int, ...]
    std: float


class Const(NamedTuple):
    """A parameter initialised to a fixed value (broadcast to ``shape``)."""

    shape: tuple[int, ...]
    value: float | np.ndarray = 0.0


def _is_leaf(x) -> bool:
    return isinstance(x, Normal | Const)


def init(key, spec) -> Params:
    """Float32 arrays for a spec, from one key.

    All weights are slices of a single ``jax.random.normal`` draw: each separate draw of
    a new shape costs ~0.3 s of XLA compile time on CPU (threefry is compiled per
    shape), which would dominate compiling a vmapped population of inner runs.
    """
    leaves, treedef = jax.tree.flatten(spec, is_leaf=_is_leaf)
    sizes = [math.prod(x.shape) for x in leaves if isinstance(x, Normal)]
    z = jax.random.normal(key, (sum(sizes),), F32)
    out, start = [], 0
    for x in leaves:
        if isinstance(x, Normal):
            n = math.prod(x.shape)
            out.append(x.std * z[start : start + n].reshape(x.shape))
            start += n
        else:
            out.append(jnp.broadcast_to(jnp.asarray(x.value, F32), x.shape))
    return jax.tree.unflatten(treedef, out)


def count(spec) -> int:
    """Number of scalars in a spec."""
    return sum(math.prod(x.shape) for x in jax.tree.leaves(spec, is_leaf=_is_leaf))


def _lecun(*shape: int) -> Normal:
    """LeCun normal for a kernel whose last axis is the output: fan-in is the rest."""
    return Normal(tuple(shape), 1.0 / math.sqrt(math.prod(shape[:-1])))


def dense_spec(n_in: int, n_out: int) -> Params:
    return {"w": _lecun(n_in, n_out), "b": Const((n_out,))}


def dense(p: Params, x):
    return x @ p["w"] + p["b"]


def mlp_spec(sizes: Sequence[int]) -> Params:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]`` named ``dense_0, dense_1, ...``."""
    return {
        f"dense_{i}": dense_spec(a, b)
        for i, (a, b) in enumerate(itertools.pairwise(sizes))
    }


def mlp(p: Params, x, activation: str):
    """Flattens trailing dims of ``x`` (batch first), activation between layers only."""
    act = ACTIVATIONS[activation]
    x = x.reshape(x.shape[0], -1)
    n = len(p)
    for i in range(n):
        x = dense(p[f"dense_{i}"], x)
        if i < n - 1:
            x = act(x)
    return x


def conv_spec(window: Sequence[int], c_in: int, c_out: int) -> Params:
    """Kernel of shape ``(*window, c_in, c_out)`` and bias."""
    return {"w": _lecun(*window, c_in, c_out), "b": Const((c_out,))}


def conv(p: Params, x, stride: int):
    """'SAME'-padded strided convolution; ``x`` is ``(N, *spatial, C)``.

    Written as patches times a matrix rather than ``lax.conv_general_dilated``: when a
    population of kernels is vmapped, this stays a batched matmul, about 4x faster on
    CPU than the grouped convolution that vmap makes of ``lax.conv``.
    """
    w = p["w"]
    window = w.shape[:-2]
    spatial = x.shape[1:-1]
    out = [-(-s // stride) for s in spatial]
    pads = []
    for s, o, k in zip(spatial, out, window, strict=True):
        total = max((o - 1) * stride + k - s, 0)
        pads.append((total // 2, total - total // 2))  # XLA's 'SAME' split
    x = jnp.pad(x, [(0, 0), *pads, (0, 0)])
    n, c = x.shape[0], x.shape[-1]
    strides = (1, *(stride,) * len(out), 1)
    patches = []
    for offset in itertools.product(*map(range, window)):
        ends = [i + (o - 1) * stride + 1 for i, o in zip(offset, out, strict=True)]
        patches.append(jax.lax.slice(x, (0, *offset, 0), (n, *ends, c), strides))
    # Patch features ordered (window offset, channel), matching w.reshape below.
    return jnp.concatenate(patches, axis=-1) @ w.reshape(-1, w.shape[-1]) + p["b"]


def cnn_spec(in_shape, channels, n_out: int, window: int, stride: int) -> Params:
    """Strided ReLU conv layers then one dense layer; ``in_shape`` is ``(*spatial, C)``.

    Hidden layers are named ``conv_0, conv_1, ...``; the readout is ``dense``.
    """
    *spatial, c = in_shape
    p = {}
    for i, c_out in enumerate(channels):
        p[f"conv_{i}"] = conv_spec((window,) * len(spatial), c, c_out)
        spatial, c = [-(-s // stride) for s in spatial], c_out
    p["dense"] = dense_spec(math.prod(spatial) * c, n_out)
    return p


def cnn(p: Params, x, stride: int):
    n_conv = len(p) - 1
    for i in range(n_conv):
        x = jax.nn.relu(conv(p[f"conv_{i}"], x, stride))
    return dense(p["dense"], x.reshape(x.shape[0], -1))


def lstm_spec(vocab: int, embed: int, hidden: int) -> Params:
    """Embedding, one LSTM layer, and a dense readout to ``vocab`` logits."""
    # Forget-gate bias 1 (Jozefowicz et al., 2015; Haiku's LSTM does the same): the
    # cell keeps its memory at init.
    bias = np.zeros(4 * hidden, np.float32)
    bias[hidden : 2 * hidden] = 1.0
    return {
        "embed": Normal((vocab, embed), 1.0),
        "lstm": {
            # LeCun over the gates' full input [x, h], as one dense layer would be.
            "wx": Normal((embed, 4 * hidden), 1.0 / math.sqrt(embed + hidden)),
            "wh": Normal((hidden, 4 * hidden), 1.0 / math.sqrt(embed + hidden)),
            "b": Const((4 * hidden,), bias),
        },
        "out": dense_spec(hidden, vocab),
    }


def lstm(p: Params, tokens):
    """Next-token logits ``(B, T, vocab)`` for ``tokens`` ``(B, T)``."""
    q = p["lstm"]
    # One matmul for all input projections; only h @ wh stays inside the scan.
    xw = p["embed"][tokens] @ q["wx"] + q["b"]
    hidden = q["wh"].shape[0]
    zero = jnp.zeros((tokens.shape[0], hidden), F32)

    def step(carry, xw_t):
        h, c = carry
        i, f, g, o = jnp.split(xw_t + h @ q["wh"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    _, hs = jax.lax.scan(step, (zero, zero), jnp.swapaxes(xw, 0, 1))
    return dense(p["out"], jnp.swapaxes(hs, 0, 1))


def _layer_norm_spec(width: int) -> Params:
    return {"scale": Const((width,), 1.0), "bias": Const((width,))}


def _layer_norm(p: Params, x):
    mu = x.mean(-1, keepdims=True)
    var = jnp.square(x - mu).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]


def transformer_spec(vocab: int, seq_len: int, width: int, n_layers: int, ff: int):
    """Pre-LayerNorm causal decoder with learned positions; blocks ``block_i``."""
    # Token and position embeddings of variance 1/2 each, so their sum has unit scale.
    p = {
        "embed": Normal((vocab, width), math.sqrt(0.5)),
        "position": Normal((seq_len, width), math.sqrt(0.5)),
        "final_norm": _layer_norm_spec(width),
        "out": dense_spec(width, vocab),
    }
    for i in range(n_layers):
        p[f"block_{i}"] = {
            "norm_1": _layer_norm_spec(width),
            "qkv": dense_spec(width, 3 * width),
            "proj": dense_spec(width, width),
            "norm_2": _layer_norm_spec(width),
            "ff_in": dense_spec(width, ff),
            "ff_out": dense_spec(ff, width),
        }
    return p


def _causal_attention(p: Params, x, n_heads: int):
    b, t, d = x.shape
    q, k, v = jnp.split(dense(p["qkv"], x), 3, axis=-1)
    q, k, v = (z.reshape(b, t, n_heads, d // n_heads) for z in (q, k, v))
    s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // n_heads)
    s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -1e9)
    o = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, axis=-1), v)
    return dense(p["proj"], o.reshape(b, t, d))


def transformer(p: Params, tokens, n_heads: int):
    """Next-token logits ``(B, T, vocab)`` for ``tokens`` ``(B, T)``, causal."""
    x = p["embed"][tokens] + p["position"][: tokens.shape[1]]
    n_layers = sum(k.startswith("block_") for k in p)
    for i in range(n_layers):
        blk = p[f"block_{i}"]
        x = x + _causal_attention(blk, _layer_norm(blk["norm_1"], x), n_heads)
        h = jax.nn.gelu(dense(blk["ff_in"], _layer_norm(blk["norm_2"], x)))
        x = x + dense(blk["ff_out"], h)
    return dense(p["out"], _layer_norm(p["final_norm"], x))
