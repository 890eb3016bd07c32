r"""Per-tensor kernels shared by STAR and small_fc_lopt.

:func:`accumulate` updates the accumulators of one parameter tensor and returns its 28
accumulator feature channels (each an array broadcastable to the tensor) and 11 time
features; a heads function then runs the 39-4-4-heads MLP on every element. Two
heads functions give the same numbers (up to floating-point reassociation):

* :func:`dense_heads` -- the direct port: broadcast every channel to the tensor's
  shape, stack them into an ``(*shape, 39)`` array, normalise each channel, multiply
  by ``w0``. Memory traffic is 39 tensors' worth; kept as the reference and as the
  benchmark's "naive" row.
* :func:`fused_heads` -- never builds the stack. A channel's normalisation is a
  scalar :math:`s_c = (10^{-5} + \mathrm{mean}(x_c^2))^{-1/2}`, folded into the first
  layer, :math:`h_j = b_j + \sum_k w_{28+k,j}\,\tau_k + \sum_c (s_c w_{cj})\, x_c`.
  The time terms are per-tensor constants; the 12 row/column channels (constant
  along one axis) are combined at their own small shape by one small matrix product
  per shape; the 16 remaining channels are accumulated elementwise. The hidden and
  output layers are scalar arithmetic on the 4 hidden arrays, so XLA fuses the whole
  MLP into one elementwise pass per tensor. The 16 full-size mean squares are taken
  in :func:`accumulate` by one variadic reduction over the arrays that exist anyway
  (see :func:`_row_sums`). Derivatives of the fused heads are those of the dense
  formulation (``custom_jvp``).

The compute dtype follows the parameter: float64 parameters are computed in float64,
every other float dtype (float32, bfloat16, float16) in float32. Accumulators are
stored in the compute dtype; the returned heads are in the compute dtype.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NUM_ACCUMULATOR_FEATURES = 28
TIME_SCALES = (1, 3, 10, 30, 100, 300, 1e3, 3e3, 1e4, 3e4, 1e5)


class Decays(NamedTuple):
    """Decays of one step, in the compute dtype (second moment/Adafactor clipped)."""

    momentum: jax.Array  # (3,)
    rms: jax.Array  # ()
    adafactor: jax.Array  # (3,)


class LeafAccumulators(NamedTuple):
    """Accumulators of one tensor, one array per decay; unused Adafactor slots hold
    ``None``."""

    momentum: tuple  # 3 x shape
    second_moment: jax.Array  # shape
    row: tuple  # 3 x (shape without d0) for rank >= 2, else 3 x None
    col: tuple  # 3 x (shape without d1) for rank >= 2, else 3 x None
    full: tuple  # 3 x shape for rank <= 1, else 3 x None


class LeafFeatures(NamedTuple):
    """What the MLP and the update rule need from one tensor after accumulating."""

    channels: list  # 28 arrays, each broadcastable to the (rank >= 1) tensor shape
    mean_squares: list  # 28 entries: mean(channel^2) where a cheaper formula exists,
    # else None (the fused MLP then reduces the channel itself)
    time: jax.Array  # (11,) time features, not normalised
    grad: jax.Array  # g, shape (rank >= 1)
    momentum: tuple  # 3 x shape
    rsqrt_v: jax.Array  # rsqrt(v + 1e-6), shape


def compute_dtype(dtype) -> np.dtype:
    """float64 stays float64; every other float dtype computes in float32."""
    return (
        np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype("float32")
    )


def factored_dims(shape: tuple) -> tuple[int, int] | None:
    """``(d1, d0)``: the second-largest and largest axes (numpy argsort order), or
    ``None`` for rank <= 1, where the Adafactor accumulators are not factored."""
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    return int(order[-2]), int(order[-1])


def init_leaf(p: jax.Array) -> LeafAccumulators:
    """Zero accumulators for one parameter tensor."""
    dtype = compute_dtype(p.dtype)
    shape = tuple(p.shape)

    def zeros(s, k=3):  # fresh buffers: donated state buffers must be distinct
        return tuple(jnp.zeros(s, dtype) for _ in range(k))

    momentum, (second,) = zeros(shape), zeros(shape, 1)
    unused = (None,) * 3  # no array: every state array costs each jitted call ~2 us
    dims = factored_dims(shape)
    if dims is None:
        return LeafAccumulators(momentum, second, unused, unused, zeros(shape))
    d1, d0 = dims
    row_shape = tuple(np.delete(shape, d0))
    col_shape = tuple(np.delete(shape, d1))
    return LeafAccumulators(
        momentum, second, zeros(row_shape), zeros(col_shape), unused
    )


def decays_from_offsets(theta: dict, dtype, init_decays) -> Decays:
    r"""The step's decays, :math:`\beta = 1 - (1 - \beta_0) e^{10\,\mathrm{offset}}`.

    The initial decays :math:`\beta_0` are rounded to float32 first, as upstream
    stores them, then cast to ``dtype``: in float64, ``1 - beta_0`` is then
    ``1 - float32(0.999)`` exactly, which a float64 reference must reproduce.
    """
    out = []
    for name, init, clip in zip(
        ("momentum_decays", "rms_decays", "adafactor_decays"),
        init_decays,
        (False, True, True),
        strict=True,
    ):
        one_minus = 1 - np.asarray(init, np.float32).astype(dtype)
        d = 1 - one_minus * jnp.exp(10 * jnp.asarray(theta[name]).astype(dtype))
        out.append(jnp.clip(d, 0, 1) if clip else d)
    return Decays(out[0], out[1][0], out[2])


def time_features(count: jax.Array, dtype) -> jax.Array:
    r"""``tanh(t / tau - 1)`` for the 11 time scales, ``t`` the step count."""
    taus = np.asarray(TIME_SCALES, dtype)
    return jnp.tanh(count.astype(dtype) / taus - 1)


def accumulate(
    p: jax.Array, g: jax.Array, acc: LeafAccumulators, decays: Decays, time: jax.Array
) -> tuple[LeafAccumulators, LeafFeatures]:
    """Update one tensor's accumulators with ``g``; return them and the features.

    ``p`` and ``g`` must already be in the compute dtype and of rank >= 1 (scalars
    are handled by the caller as shape ``(1,)``).

    The mean squares of the full-size channels, which the fused MLP needs, are taken
    here in one pass over the tensor (:func:`_row_sums`).
    """
    shape = p.shape
    size = int(np.prod(shape))
    momentum = tuple(
        decays.momentum[k] * m + (1 - decays.momentum[k]) * g
        for k, m in enumerate(acc.momentum)
    )
    second = decays.rms * acc.second_moment + ((1 - decays.rms) * g) * g
    b_f = decays.adafactor

    dims = factored_dims(shape)
    if dims is not None:
        d1, d0 = dims
        last = len(shape) - 1
        # the three decays' small accumulators are handled stacked: fewer, larger
        # operations (each one has a fixed cost on CPU)
        b_s = b_f.reshape((3,) + (1,) * (len(shape) - 1))

        def row_factors(row_g2):  # constant along d0
            rows = b_s * jnp.stack(acc.row) + (1 - b_s) * (row_g2 + 1e-30)
            axis = 1 + (d1 - 1 if d1 > d0 else d1)
            ratio = rows / (jnp.mean(rows, axis=axis, keepdims=True) + 1e-9)
            return rows, jnp.expand_dims(lax.rsqrt(jnp.maximum(ratio, 1e-9)), 1 + d0)

        def col_factors(col_g2):  # constant along d1
            cols = b_s * jnp.stack(acc.col) + (1 - b_s) * (col_g2 + 1e-30)
            return cols, jnp.expand_dims(lax.rsqrt(jnp.maximum(cols, 1e-9)), 1 + d1)

        # A factor that varies along the last axis weights the squares inside the
        # pass, so its accumulator comes first, from a reduction of g^2 over the
        # other axis (spelled |g| * |g| so that XLA does not share a materialised
        # g * g with the pass; when both factors come first, the two reductions
        # share it). The other accumulator comes out of the pass (the row sums of
        # g^2), and its factor weights the pass's row sums afterwards.
        g2 = jnp.abs(g) * jnp.abs(g)
        inner, outer = [1.0] * 3, [1.0] * 3
        if d0 != last:
            rows, rf = row_factors(jnp.mean(g2, axis=d0))
            inner = [w * rf[k] * rf[k] for k, w in enumerate(inner)]
        if d1 != last:
            cols, cf = col_factors(jnp.mean(g2, axis=d1))
            inner = [w * cf[k] * cf[k] for k, w in enumerate(inner)]
        # with both factors known, the pass need not keep rows: it sums the tensor
        # as one flat array (the last axis may be short, e.g. a 3x3 kernel's)
        flat = last not in (d0, d1)
        sums = _row_sums(p, g, momentum, second, inner, flat=flat)
        if d0 == last:
            rows, rf = row_factors(jnp.sum(sums[0], -1) / shape[last])
            outer = [rf[k] * rf[k] for k in range(3)]  # size 1 along the last axis
        if d1 == last:
            cols, cf = col_factors(jnp.sum(sums[0], -1) / shape[last])
            outer = [cf[k] * cf[k] for k in range(3)]
        sums = sums[:10] + [s * outer[i % 3] for i, s in enumerate(sums[10:])]
        means = list(_total(sums) / size)
        mean_squares = means[:13] + [None] * 12 + means[13:]

        factors = [(rf[k], cf[k]) for k in range(3)]
        fac_g = [g * r * c for r, c in factors]
        fac_m = [m * r * c for m, (r, c) in zip(momentum, factors, strict=True)]
        row_b = jnp.expand_dims(rows, 1 + d0)
        col_b = jnp.expand_dims(cols, 1 + d1)
        row_feats = (
            list(row_b),
            list(col_b),
            list(lax.rsqrt(row_b + 1e-8)),
            list(lax.rsqrt(col_b + 1e-8)),
        )
        new_acc = LeafAccumulators(momentum, second, tuple(rows), tuple(cols), acc.full)
    else:
        g2 = g * g + 1e-30
        full = tuple(b_f[k] * f + (1 - b_f[k]) * g2 for k, f in enumerate(acc.full))
        fac_g = [g * lax.rsqrt(jnp.maximum(f + 1e-9, 1e-9)) for f in full]
        fac_m = [m * lax.rsqrt(f + 1e-6) for m, f in zip(momentum, full, strict=True)]
        rs_full = [lax.rsqrt(f + 1e-8) for f in full]
        row_feats = (full, full, rs_full, rs_full)
        new_acc = LeafAccumulators(momentum, second, acc.row, acc.col, full)
        sums = _row_sums(p, g, momentum, second, None, full=full)
        means = list(_total(sums) / size)
        # rows and columns are both the full accumulators, as are their rsqrt
        # channels: each of those sums serves two channels
        mean_squares = means[:13] + means[13:16] * 2 + means[16:19] * 2 + means[19:]

    rsqrt_v = lax.rsqrt(second + 1e-6)
    adam = [m * rsqrt_v for m in momentum]
    channels = [g, p, *momentum, second, *adam, rsqrt_v, *fac_g]
    for block in row_feats:
        channels.extend(block)
    channels.extend(fac_m)
    assert len(channels) == len(mean_squares) == NUM_ACCUMULATOR_FEATURES
    return new_acc, LeafFeatures(channels, mean_squares, time, g, momentum, rsqrt_v)


def _total(sums: list) -> jax.Array:
    """The totals of equally shaped arrays, as one array (one reduction, not one
    small reduction per array)."""
    stacked = jnp.stack(sums)
    return jnp.sum(stacked, axis=tuple(range(1, stacked.ndim)))


def _pieces(length: int) -> tuple[int, int]:
    """``(piece, pad)``: the fewest pieces of at most 1024 elements that cover
    ``length``, of equal length ``piece``, with ``pad`` zeros after the last element.

    Sizes with no divisor near 1024 (a prime length, say) are padded rather than cut
    into tiny pieces: a piece of a few elements makes the reduction write nearly as
    many sums as it reads elements.
    """
    count = -(-length // 1024)
    piece = -(-length // count)
    return piece, count * piece - length


def _row_sums(p, g, momentum, second, inner, full=None, flat=False) -> list:
    r"""Sums along the last axis (or, ``flat``, over the whole tensor) of the
    squared channels, in one pass.

    On CPU, XLA runs every reduction as its own loop over the tensor, and one that
    shares an elementwise expression with another writes that expression out in
    full first. One variadic reduction reads ``p``, ``g``, the momenta and ``v``
    once and returns every sum. Its outputs, in order: the row sums of ``g^2``,
    ``p^2``, ``m_k^2``, ``v^2``, ``m_k^2 / (v + 10^{-6})``, ``1 / (v + 10^{-6})``,
    then, for a factored tensor, ``g^2 w_k`` and ``m_k^2 w_k`` with ``inner``
    weights ``w_k`` (the part of the Adafactor factors' squares that varies along
    the last axis), or for an unfactored one (``full``: the three full
    accumulators :math:`f_k`) ``g^2 / \max(f_k + 10^{-9}, 10^{-9})``, ``f_k^2``,
    ``1 / (f_k + 10^{-8})`` and ``m_k^2 / (f_k + 10^{-6})``.

    Only the fused MLP's normalisation uses these sums, and its derivative is that
    of the dense formulation, which takes its own: no gradient flows through here.
    """
    p, g, second = (lax.stop_gradient(x) for x in (p, g, second))
    momentum = [lax.stop_gradient(m) for m in momentum]
    eps = np.asarray(1e-6, second.dtype)
    inv_v = 1 / (second + eps)
    exprs = [g * g, p * p, *(m * m for m in momentum), second * second]
    exprs += [m * m * inv_v for m in momentum] + [inv_v]
    if full is None:
        inner = [lax.stop_gradient(w) for w in inner]
        exprs += [g * g * w for w in inner]
        exprs += [m * m * w for m, w in zip(momentum, inner, strict=True)]
    else:
        full = [lax.stop_gradient(f) for f in full]
        exprs += [g * g / jnp.maximum(f + 1e-9, 1e-9) for f in full]
        exprs += [f * f for f in full] + [1 / (f + 1e-8) for f in full]
        exprs += [m * m / (f + eps) for m, f in zip(momentum, full, strict=True)]
    # the last axis (or the flattened tensor) is cut into equal pieces of at most
    # 1024 elements, the last one padded with zeros (:func:`_pieces`), each summed in
    # sequence (one float32 sum over a long axis would lose digits): the sums have the
    # tensor's shape with its last axis replaced by one sum per piece (or are a vector
    # of one sum per piece). The reduction itself runs over (rows, pieces, piece), the
    # leading axes merged: XLA:CPU's loop over the leading axes of a (kh, kw, in, out)
    # kernel took 30% longer per element, for the same sums in the same order.
    *lead, length = (g.size,) if flat else g.shape
    rows = math.prod(lead)
    piece, pad = _pieces(length)
    exprs = [jnp.broadcast_to(e, g.shape).reshape(rows, length) for e in exprs]
    exprs = [jnp.pad(e, [(0, 0), (0, pad)]).reshape(rows, -1, piece) for e in exprs]
    zeros = [np.zeros((), e.dtype) for e in exprs]
    sums = lax.reduce(exprs, zeros, _add_each, (2,))
    return [s.reshape(*lead, -1) for s in sums]


def _add_each(xs, ys):
    return [x + y for x, y in zip(xs, ys, strict=True)]


def _mean_square(x: jax.Array) -> jax.Array:
    return jnp.mean(x * x)


def dense_heads(feats: LeafFeatures, mlp: dict, shape: tuple) -> list:
    """The MLP as upstream runs it: a materialised ``(*shape, 39)`` feature stack."""
    return _dense(feats.channels, feats.time, mlp, shape)


def fused_heads(feats: LeafFeatures, mlp: dict, shape: tuple) -> list:
    """The same MLP without the feature stack: normalisation folded into ``w0``.

    Derivatives (``jvp``, and ``vjp`` by transposition) are those of the dense
    formulation: differentiating the fused scalar arithmetic directly gives XLA one
    reduction per first-layer weight, each fused with a copy of the whole elementwise
    graph, which takes minutes to compile; the dense derivative is a few matrix
    products. Only differentiated code pays for the materialised stack.
    """
    return _fused(feats.channels, feats.mean_squares, feats.time, mlp, shape)


def _dense(channels, time, mlp, shape):
    stack = jnp.stack([jnp.broadcast_to(c, shape) for c in channels], axis=-1)
    axes = tuple(range(len(shape)))
    stack = stack * lax.rsqrt(1e-5 + jnp.mean(stack * stack, axis=axes, keepdims=True))
    time = jnp.broadcast_to(time, (*shape, time.shape[0]))
    net = jnp.concatenate([stack, time], axis=-1)
    net = jnp.maximum(net @ mlp["w0"] + mlp["b0"], 0)
    net = jnp.maximum(net @ mlp["w1"] + mlp["b1"], 0)
    net = net @ mlp["w2"] + mlp["b2"]
    return [net[..., k] for k in range(net.shape[-1])]


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _fused(channels, mean_squares, time, mlp, shape):
    w0, w1, w2 = mlp["w0"], mlp["w1"], mlp["w2"]
    hidden = w0.shape[1]
    n_feat = NUM_ACCUMULATOR_FEATURES
    # Per-tensor constant: bias plus the (unnormalised) time features.
    const = mlp["b0"] + time @ w0[n_feat:]
    squares = [
        _mean_square(c) if ms is None else ms
        for c, ms in zip(channels, mean_squares, strict=True)
    ]
    scales = lax.rsqrt(1e-5 + jnp.stack(squares))
    w_eff = w0[:n_feat] * scales[:, None]  # (28, hidden)

    # Channels smaller than the tensor (row/column accumulators, constant along one
    # axis) are combined at their own shape, one small matrix product per shape,
    # whose (hidden, ...) result the elementwise pass only reads: a product is
    # always written out, where an elementwise expression of them would be fused
    # into the pass and recomputed for every element. Hidden units first, so that
    # the pass reads each unit's term contiguously along the vectorised last axis.
    small: dict[tuple, list] = {}
    full_idx = []
    for c, x in enumerate(channels):
        if tuple(x.shape) == tuple(shape):
            full_idx.append(c)
        else:
            small.setdefault(tuple(x.shape), []).append(c)
    partial = [const]
    for idx in small.values():
        stack = jnp.stack([channels[c] for c in idx])
        w = w_eff[jnp.asarray(idx)]
        partial.append(jnp.tensordot(w, stack, (0, 0), precision=lax.Precision.HIGHEST))
    pre = []
    for j in range(hidden):
        acc = sum(term[j] for term in partial)
        for c in full_idx:
            acc = acc + w_eff[c, j] * channels[c]
        pre.append(jnp.broadcast_to(acc, shape))
    act = [jnp.maximum(h, 0) for h in pre]
    act = [
        jnp.maximum(mlp["b1"][j] + sum(act[i] * w1[i, j] for i in range(hidden)), 0)
        for j in range(w1.shape[1])
    ]
    return [
        mlp["b2"][k] + sum(act[i] * w2[i, k] for i in range(w1.shape[1]))
        for k in range(w2.shape[1])
    ]


@_fused.defjvp
def _fused_jvp(shape, primals, tangents):
    # ``mean_squares`` are functions of ``channels``, through which the dense
    # formulation already differentiates: their own tangents are not needed.
    channels, mean_squares, time, mlp = primals
    d_channels, _, d_time, d_mlp = tangents
    out = _fused(channels, mean_squares, time, mlp, shape)
    _, tangent_out = jax.jvp(
        lambda c, t, m: _dense(c, t, m, shape),
        (channels, time, mlp),
        (d_channels, d_time, d_mlp),
    )
    return out, tangent_out
