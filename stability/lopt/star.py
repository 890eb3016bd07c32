r"""STAR and small_fc_lopt as optax gradient transformations.

Both optimizers share one set of accumulators per parameter tensor :math:`p` with
gradient :math:`g` (updated before the features are computed; no bias correction):

.. math::

    m_i &\leftarrow b_i m_i + (1 - b_i) g, \quad b = (0.9, 0.99, 0.999) \\
    v &\leftarrow b_v v + (1 - b_v) g^2, \quad b_v = 0.999

and Adafactor row/column accumulators (decays 0.9, 0.99, 0.999) over the two largest
axes (a full accumulator for rank <= 1). From them, 28 features per element
(normalised per tensor by their RMS) and 11 time features ``tanh(t / tau - 1)`` feed an
MLP 39 -> 4 -> 4 -> heads shared by every scalar. With ``step_mult`` :math:`\mu_s`,
``exp_mult`` :math:`\mu_e` and ``nominal_stepsize`` :math:`\alpha`, the heads give

* small_fc_lopt: :math:`\Delta p = -\mu_s\, d\, e^{\mu_e m}`;
* STAR: :math:`\Delta p = -f_b - f_g` with the output-preconditioned blackbox term
  :math:`f_b = \mu_s\, d\, e^{\mu_e m_b} / \sqrt{v + 10^{-6}}`
  and the magnitude-controlled nominal term
  :math:`f_g = \alpha\, e^{\mu_e m_g}\, \hat g`, with
  :math:`\hat g = \frac13 \sum_i m_i / \sqrt{v + 10^{-6}}` (AdamAggMo) by default.

Feature order and constants are those of upstream's ``adafac_nominal.py``
(learned_optimization), so that its trained meta-parameters convert
(:func:`~stability.lopt.theta.from_learned_optimization`). Calling pattern::

    theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    opt = star(theta, nominal_stepsize=1e-2)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)   # params are required
    params = optax.apply_updates(params, updates)

``theta`` may be a traced value (``jit``, ``vmap`` over a population, ``grad``): it is
validated (keys, shapes, finiteness) only where it is concrete.

Dtypes: a float64 parameter is computed in float64, any other float parameter
(float32, bfloat16, float16) in float32; accumulators are stored in that compute dtype
and updates are returned in the parameter's dtype. Constants never promote float32 to
float64 under ``jax_enable_x64``. Upstream keeps its initial decays in float32; so do
we: ``1 - beta_0`` is ``1 - float32(beta_0)`` also in a float64 computation.

Speed: after updating a tensor's accumulators, a step makes two passes over it (one
reduction for the feature normalisation, one elementwise pass for the MLP). At 1M
parameters on 2 CPU cores it costs about 4x to 6x ``optax.adam`` when each step's state
comes from memory, as in training, and up to 12x against an Adam whose state stays in
cache (``benchmarks/RESULTS.md``); with both jitted with
``compiler_options=cpu_compiler_options(vector_width=512)``, 3.5x to 3.7x and 4.9x to
8.8x. A kernel laid out (out, in, kh, kw) is computed
in the view (out, in * kh * kw) on CPU, where XLA's loops along a 3-long axis are
slow (:func:`_loop_view`): about 4x to 5x Adam, which is slower on that layout too.
The MLP pass is arithmetic-bound; on a CPU with full-width AVX-512 units, 512-bit
vectors made that pass 2.5x faster (XLA prefers 256-bit vectors by default), and
letting LLVM reassociate sums vectorises the one-pass reduction, 3x faster:
:func:`cpu_compiler_options` gives both.

Differences from upstream worth knowing: the ``SGDM`` and ``Adam`` nominal estimators
use the first momentum (``b = 0.9``) as specified for this package, where upstream's
code picks the last one (``b = 0.999``); STAR's unused fourth head (weight-decay
magnitude) is not kept (see :func:`~stability.lopt.theta.from_learned_optimization`).

References:
  Harrison, Metz & Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022 (arXiv 2209.11208).
  google/learned_optimization: ``learned_optimizers/adafac_nominal.py``
  (``MLPNomLOpt``, STAR) and ``learned_optimizers/adafac_mlp_lopt.py``
  (``AdafacMLPLOpt``, small_fc_lopt).
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from stability._validation import check_flag, check_scalar
from stability.lopt import _features
from stability.lopt.theta import (
    ADAFACTOR_DECAYS,
    MOMENTUM_DECAYS,
    RMS_DECAYS,
    validate_theta,
)

__all__ = [
    "NOMINAL_ESTIMATORS",
    "LOptState",
    "cpu_compiler_options",
    "small_fc_lopt",
    "star",
]

NOMINAL_ESTIMATORS = ("SGD", "SGDM", "AggMo", "Adam", "AdamAggMo")


class LOptState(NamedTuple):
    """State of STAR and small_fc_lopt.

    ``count`` is an int32 scalar; ``second_moment`` is a pytree with the parameters'
    structure; the other fields are 3-tuples of such pytrees, one per decay (so
    ``state.momentum[0]`` holds the momenta of decay 0.9).

    Attributes:
      count: steps taken so far; the time features use its value before the step.
      momentum: the three momenta :math:`m_i`, each leaf of the parameter's shape.
      second_moment: the EMA :math:`v` of :math:`g^2`.
      row: Adafactor row accumulators, leaf shape ``shape`` without axis ``d0``
        (the largest axis) for rank >= 2; ``None`` for rank <= 1.
      col: Adafactor column accumulators, leaf shape ``shape`` without axis ``d1``
        (the second-largest axis) for rank >= 2; ``None`` for rank <= 1.
      full: unfactored Adafactor accumulators, the parameter's shape, for rank <= 1;
        ``None`` for rank >= 2. (An unused slot holds no array: each array of the
        state costs a jitted training step about 2 us per call on CPU.)
    """

    count: jax.Array
    momentum: tuple
    second_moment: optax.Updates
    row: tuple
    col: tuple
    full: tuple


@dataclasses.dataclass(frozen=True)
class _Config:
    heads: int
    step_mult: Any
    exp_mult: Any
    nominal_stepsize: Any = 0.0
    precondition: bool = False
    nominal: bool = False
    nominal_estimator: str = "AdamAggMo"
    aggregate_magnitudes: bool = False
    blackbox_bound: float | None = None


def small_fc_lopt(
    theta: dict, *, step_mult: float = 1e-3, exp_mult: float = 1e-3
) -> optax.GradientTransformationExtraArgs:
    r"""The small_fc_lopt baseline (upstream ``AdafacMLPLOpt``), 197 meta-parameters.

    Per element, with MLP heads direction :math:`d` and magnitude :math:`m`:
    :math:`\Delta p = -\mathrm{step\_mult}\, d\, \exp(\mathrm{exp\_mult}\, m)`.

    Args:
      theta: meta-parameters with 2 heads (see :mod:`stability.lopt.theta`).
      step_mult: scale of the step.
      exp_mult: scale of the magnitude head inside the exponential.
    Returns:
      an optax transformation; ``update(grads, state, params)`` needs ``params``.

    >>> import jax, jax.numpy as jnp, optax
    >>> from stability.lopt import init_theta
    >>> opt = small_fc_lopt(init_theta(jax.random.key(0), heads=2))
    >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    >>> state = opt.init(params)
    >>> updates, state = opt.update(params, state, params)
    >>> int(state.count), updates["w"].shape
    (1, (3, 2))
    """
    config = _Config(
        heads=2,
        step_mult=_check_hyper("step_mult", step_mult),
        exp_mult=_check_hyper("exp_mult", exp_mult),
    )
    return _transformation(theta, config, _features.fused_heads)


def star(
    theta: dict,
    *,
    nominal_stepsize: float = 1e-3,
    step_mult: float = 1e-3,
    exp_mult: float = 1e-3,
    precondition: bool = True,
    nominal_estimator: str = "AdamAggMo",
    aggregate_magnitudes: bool = False,
    nominal: bool = True,
    blackbox_bound: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""STAR: the learned optimizer with a nominal term (upstream ``MLPNomLOpt``).

    Per element, with MLP heads direction :math:`d`, blackbox magnitude :math:`m_b`
    and nominal magnitude :math:`m_g`:

    .. math::

        \Delta p = -\,\mathrm{step\_mult}\; d\; e^{\mathrm{exp\_mult}\, m_b}\; P
                   \;-\; \mathrm{nominal\_stepsize}\; e^{\mathrm{exp\_mult}\, m_g}\;
                   \hat g,

    with :math:`P = (v + 10^{-6})^{-1/2}` (``precondition=True``) or 1, and the
    nominal gradient estimate :math:`\hat g`, from the accumulators after this step:

    ============  ===============================================
    ``SGD``       :math:`g`
    ``SGDM``      :math:`m_1` (EMA, decay 0.9)
    ``AggMo``     :math:`\frac13\sum_i m_i`
    ``Adam``      :math:`m_1 (v + 10^{-6})^{-1/2}`
    ``AdamAggMo`` :math:`\frac13\sum_i m_i (v + 10^{-6})^{-1/2}`
    ============  ===============================================

    Args:
      theta: meta-parameters with 3 heads (see :mod:`stability.lopt.theta`).
      nominal_stepsize: scale of the nominal term (tune it like Adam's lr).
      step_mult: scale of the blackbox term.
      exp_mult: scale of the magnitude heads inside the exponentials.
      precondition: multiply the blackbox term by :math:`(v + 10^{-6})^{-1/2}`.
      nominal_estimator: one of ``SGD, SGDM, AggMo, Adam, AdamAggMo``.
      aggregate_magnitudes: replace :math:`m_b` and :math:`m_g` by their means over
        the tensor before the exponential (per-tensor magnitudes).
      nominal: include the nominal term (``False`` leaves the blackbox term alone).
      blackbox_bound: ``None`` (upstream's STAR), or ``c > 0``: per tensor, the
        blackbox term is scaled down where needed so that its RMS is at most ``c``
        times the nominal term's, :math:`f_b \leftarrow f_b \min(1, c\,
        \mathrm{rms}(f_g) / \mathrm{rms}(f_b))`. The learned term is then a
        bounded perturbation of the nominal term (the paper's Lemma 3 setting) and
        vanishes with it as the momenta vanish, where upstream's blackbox term,
        divided by :math:`\sqrt{v + 10^{-6}}`, does not
        (:mod:`stability.lopt.anatomy`). Needs the nominal term. Not in the paper.
    Returns:
      an optax transformation; ``update(grads, state, params)`` needs ``params``.

    >>> import jax, jax.numpy as jnp, optax
    >>> from stability.lopt import init_theta, zero_output_layer
    >>> theta = zero_output_layer(init_theta(jax.random.key(0), heads=3))
    >>> opt = star(theta, nominal_stepsize=0.1)
    >>> params = jnp.array([1.0, -2.0])
    >>> updates, state = opt.update(params, opt.init(params), params)
    >>> # step one: m_i = (1 - b_i) g, v = 0.001 g^2, so -0.1 * 0.037 g / sqrt(v + 1e-6)
    >>> [round(float(u), 4) for u in updates]
    [-0.1169, 0.117]
    """
    if nominal_estimator not in NOMINAL_ESTIMATORS:
        raise ValueError(
            f"nominal_estimator: expected one of {NOMINAL_ESTIMATORS}, "
            f"got {nominal_estimator!r}"
        )
    if blackbox_bound is not None:
        blackbox_bound = check_scalar("blackbox_bound", blackbox_bound, low=0.0)
        if blackbox_bound == 0:
            raise ValueError("blackbox_bound: must be > 0 (or None), got 0.0")
        if not nominal:
            raise ValueError(
                "blackbox_bound: bounds the blackbox term by the nominal "
                "term, which nominal=False turns off"
            )
    config = _Config(
        heads=3,
        step_mult=_check_hyper("step_mult", step_mult),
        exp_mult=_check_hyper("exp_mult", exp_mult),
        nominal_stepsize=_check_hyper("nominal_stepsize", nominal_stepsize),
        precondition=check_flag("precondition", precondition),
        nominal=check_flag("nominal", nominal),
        nominal_estimator=nominal_estimator,
        aggregate_magnitudes=check_flag("aggregate_magnitudes", aggregate_magnitudes),
        blackbox_bound=None if blackbox_bound is None else float(blackbox_bound),
    )
    return _transformation(theta, config, _features.fused_heads)


def cpu_compiler_options(
    *, reassociate: bool = True, vector_width: int | None = None
) -> dict:
    """XLA:CPU compiler options under which a jitted training step with STAR runs
    faster; pass them as ``jax.jit(step, compiler_options=cpu_compiler_options())``.

    XLA:CPU vectorises a reduction with one output by itself, but compiles the
    one-pass reduction that gives the mean squares normalising STAR's features (one
    output per sum) to scalar additions, one element at a time. Allowed to
    reassociate, LLVM vectorises it; STAR's updates change by rounding only (tested
    against the float64 reference). The options apply to the whole jitted function,
    the model's own arithmetic included, where a sum that relies on its order (a
    compensated one, say) may lose digits. XLA:GPU accepts them; they are meant for
    the CPU. Measured gains are in ``benchmarks/RESULTS.md``.

    Args:
      reassociate: let LLVM reorder floating-point sums and products: XLA's
        fast-math mode with NaNs, infinities, division and library functions
        honoured, so that what remains is reassociation, contraction and the sign
        of zero.
      vector_width: 512 makes XLA use 512-bit vectors (it prefers 256 by default),
        worth it on CPUs with full-width AVX-512 units; ``None`` leaves XLA's
        choice.
    Returns:
      a dict of XLA debug options (empty when both arguments ask for nothing).

    >>> sorted(cpu_compiler_options(vector_width=512))[-1]
    'xla_cpu_prefer_vector_width'
    """
    options = {}
    if check_flag("reassociate", reassociate):
        options["xla_cpu_enable_fast_math"] = True
        for kind in ("nans", "infs", "division", "functions"):
            options[f"xla_cpu_fast_math_honor_{kind}"] = True
    if vector_width is not None:
        if vector_width not in (128, 256, 512):
            raise ValueError(
                f"vector_width: expected 128, 256, 512 or None, got {vector_width!r}"
            )
        options["xla_cpu_prefer_vector_width"] = int(vector_width)
    return options


def _check_hyper(name: str, value):
    """A finite, non-negative float, unless traced (then it is passed through)."""
    if isinstance(value, jax.core.Tracer):
        return value
    return check_scalar(name, value, low=0.0)


def _transformation(
    theta: dict, config: _Config, heads_fn: Callable
) -> optax.GradientTransformationExtraArgs:
    """Build the optax transformation; ``heads_fn`` evaluates the MLP on a tensor
    (:func:`~stability.lopt._features.fused_heads` or ``dense_heads``)."""
    validate_theta(theta, config.heads)

    def init(params):
        leaves, treedef = jax.tree.flatten(params)
        accs = [_features.init_leaf(jnp.asarray(p)) for p in leaves]
        return LOptState(jnp.zeros((), jnp.int32), *_pack(treedef, accs))

    def update(grads, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("params: STAR/small_fc_lopt need the parameters")
        p_leaves, treedef = jax.tree.flatten(params)
        g_leaves = treedef.flatten_up_to(grads)
        accs = _unpack(treedef, state)
        updates, new_accs = [], []
        for p, g, acc in zip(p_leaves, g_leaves, accs, strict=True):
            u, new_acc = _leaf_update(theta, config, heads_fn, state.count, p, g, acc)
            updates.append(u)
            new_accs.append(new_acc)
        new_state = LOptState(state.count + 1, *_pack(treedef, new_accs))
        return treedef.unflatten(updates), new_state

    return optax.GradientTransformationExtraArgs(init, update)


def _pack(treedef, accs: list) -> tuple:
    """Per-leaf accumulators -> the state's fields (pytrees, or 3-tuples of them)."""
    fields = []
    for name in _features.LeafAccumulators._fields:
        per_leaf = [getattr(a, name) for a in accs]
        if name == "second_moment":
            fields.append(treedef.unflatten(per_leaf))
        else:
            fields.append(
                tuple(treedef.unflatten([x[k] for x in per_leaf]) for k in range(3))
            )
    return tuple(fields)


def _unpack(treedef, state: LOptState) -> list:
    """The state's fields -> per-leaf accumulators."""
    n = treedef.num_leaves
    cols = {}
    for name in _features.LeafAccumulators._fields:
        field = getattr(state, name)
        if name == "second_moment":
            cols[name] = treedef.flatten_up_to(field)
        else:
            per_k = [treedef.flatten_up_to(field[k]) for k in range(3)]
            cols[name] = [tuple(per_k[k][i] for k in range(3)) for i in range(n)]
    return [
        _features.LeafAccumulators(**{name: cols[name][i] for name in cols})
        for i in range(n)
    ]


def _leaf_update(theta, config, heads_fn, count, p, g, acc):
    """One tensor's update (in the parameter's dtype) and new accumulators."""
    p, g = jnp.asarray(p), jnp.asarray(g)
    param_dtype = p.dtype
    if not jnp.issubdtype(param_dtype, jnp.floating):
        raise ValueError(f"params: expected floating-point leaves, got {param_dtype}")
    if g.shape != p.shape:
        raise ValueError(
            f"grads: a leaf of shape {g.shape} where params has shape {p.shape}"
        )
    dtype = _features.compute_dtype(param_dtype)
    v = acc.second_moment
    if v.dtype != dtype or v.shape != p.shape:
        raise ValueError(
            f"state: {v.dtype} accumulators of shape {v.shape} for a {param_dtype} "
            f"parameter of shape {p.shape}; init the state from these params"
        )
    if p.size == 0:
        return jnp.zeros_like(p), acc
    shape = tuple(p.shape)
    work_shape = shape or (1,)
    p_w = p.astype(dtype).reshape(work_shape)
    g_w = g.astype(dtype).reshape(work_shape)
    acc_w = _reshape_full(acc, work_shape)

    def compute(p_w, g_w, acc_w):
        decays = _features.decays_from_offsets(
            theta, dtype, (MOMENTUM_DECAYS, RMS_DECAYS, ADAFACTOR_DECAYS)
        )
        time = _features.time_features(count, dtype)
        new_acc, feats = _features.accumulate(p_w, g_w, acc_w, decays, time)
        mlp = {k: jnp.asarray(w).astype(dtype) for k, w in theta["mlp"].items()}
        heads = heads_fn(feats, mlp, work_shape)

        c = config
        # hyperparameters may be traced (and float64 under x64): cast, never promote
        step_mult = jnp.asarray(c.step_mult).astype(dtype)
        exp_mult = jnp.asarray(c.exp_mult).astype(dtype)
        if c.heads == 2:
            direction, magnitude = heads
            step = step_mult * direction * jnp.exp(exp_mult * magnitude)
        else:
            direction, mag_b, mag_g = heads
            if c.aggregate_magnitudes:
                mag_b, mag_g = jnp.mean(mag_b), jnp.mean(mag_g)
            step = step_mult * direction * jnp.exp(exp_mult * mag_b)
            if c.precondition:
                step = step * feats.rsqrt_v
            if c.nominal:
                g_hat = _nominal_estimate(c.nominal_estimator, feats)
                alpha = jnp.asarray(c.nominal_stepsize).astype(dtype)
                nominal_step = alpha * jnp.exp(exp_mult * mag_g) * g_hat
                if c.blackbox_bound is not None:
                    step = _bounded(step, nominal_step, c.blackbox_bound)
                step = step + nominal_step
        return step, new_acc

    view = _loop_view(work_shape)
    if view is None:
        step, new_acc = compute(p_w, g_w, acc_w)
    else:
        step, new_acc = _computed_in_view(compute, view, count, p_w, g_w, acc_w)
    update = (-step).astype(param_dtype).reshape(shape)
    return update, _reshape_full(new_acc, shape)


def _bounded(blackbox: jax.Array, nominal: jax.Array, bound: float) -> jax.Array:
    """``blackbox`` scaled so that its RMS is at most ``bound`` times ``nominal``'s."""
    sq_b, sq_n = jnp.sum(jnp.square(blackbox)), jnp.sum(jnp.square(nominal))
    limit = jnp.asarray(bound * bound, blackbox.dtype) * sq_n
    over = sq_b > limit
    scale = jnp.sqrt(limit / jnp.where(over, sq_b, 1))
    return blackbox * jnp.where(over, scale, 1).astype(blackbox.dtype)


def _loop_view(shape: tuple) -> tuple[int, int] | None:
    """``(shape[0], rest)`` for a tensor whose last axis is not one of its two factored
    axes (a kernel laid out (out, in, kh, kw)); ``None`` for any other.

    XLA:CPU vectorises an elementwise loop along the last axis of the loop's shape. A
    3-long last axis leaves most vector lanes idle: the MLP pass of a 512x256x3x3
    kernel took 7x longer per element than that of a 1024x768 matrix. Over the view
    (out, in * kh * kw) the same loops run along a long axis.
    """
    dims = _features.factored_dims(shape)
    if dims is None or len(shape) - 1 in dims:
        return None
    return shape[0], math.prod(shape[1:])


def _computed_in_view(compute: Callable, view: tuple, count, p, g, acc):
    """``compute(p, g, acc)``, its full-size results (step, momenta, second moment)
    computed in the shape ``view`` (:func:`_loop_view`) on CPU.

    An elementwise loop of XLA:CPU runs over the shape of its fusion's result, and the
    caller's ``p + u``, in the parameter's shape, would take the whole MLP pass into
    its fusion. A conditional is the one boundary that XLA does not fuse across (JAX's
    ``optimization_barrier`` is gone by then), so the results are reshaped to the view
    inside one whose predicate is always true: ``count | 1`` is odd, hence nonzero,
    which XLA cannot fold. The other branch is never taken; it only has the right
    shapes. Under ``vmap`` over a batch of counts the conditional becomes a select
    that evaluates both branches (the same numbers, none of the gain). Other platforms
    compute in the parameter's shape.
    """

    def in_view(step, acc):
        return step.reshape(view), _reshape_full(acc, view)

    def on_cpu(p, g, acc):
        step, new_acc = lax.cond(
            (count | 1) != 0,
            lambda p, g, acc: in_view(*compute(p, g, acc)),
            lambda p, g, acc: in_view(jnp.zeros_like(p), acc),
            p,
            g,
            acc,
        )
        return step.reshape(p.shape), _reshape_full(new_acc, p.shape)

    return lax.platform_dependent(p, g, acc, cpu=on_cpu, default=compute)


def _reshape_full(acc: _features.LeafAccumulators, shape: tuple):
    """The accumulators of the tensor's own size (momenta, second moment, unfactored
    Adafactor) reshaped to ``shape``; the row and column factors are kept."""

    def reshape(arrays):
        return tuple(None if x is None else x.reshape(shape) for x in arrays)

    return acc._replace(
        momentum=reshape(acc.momentum),
        second_moment=acc.second_moment.reshape(shape),
        full=reshape(acc.full),
    )


def _nominal_estimate(name: str, feats: _features.LeafFeatures) -> jax.Array:
    m = feats.momentum
    if name == "SGD":
        return feats.grad
    if name == "SGDM":
        return m[0]
    if name == "AggMo":
        return (m[0] + m[1] + m[2]) / 3
    if name == "Adam":
        return m[0] * feats.rsqrt_v
    return (m[0] + m[1] + m[2]) / 3 * feats.rsqrt_v
