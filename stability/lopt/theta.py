r"""Meta-parameters ``theta`` of STAR and small_fc_lopt: layout, initialisation, checks.

A theta is a plain dict of arrays (a pytree), the layout of learned_optimization's
haiku parameters with the haiku nesting removed::

    {
        "momentum_decays": (3,),    # offsets of the three momentum decays
        "rms_decays": (1,),         # offset of the second-moment decay
        "adafactor_decays": (3,),   # offsets of the three Adafactor decays
        "mlp": {
            "w0": (39, 4), "b0": (4,),
            "w1": (4, 4), "b1": (4,),
            "w2": (4, heads), "b2": (heads,),
        },
    }

``heads = 2`` (direction, magnitude) is small_fc_lopt, 197 numbers; ``heads = 3``
(direction, blackbox magnitude, nominal magnitude) is STAR, 202 numbers. A decay is
learned through an offset that starts at zero,
:math:`\beta = 1 - (1 - \beta_0)\, e^{10\, \mathrm{offset}}`.

Calling pattern::

    theta = init_theta(jax.random.key(0), heads=3)
    theta = zero_output_layer(theta)       # where STAR meta-training starts
    validate_theta(theta, heads=3)         # ValueError naming the bad key, if any

References:
  Harrison, Metz & Sohl-Dickstein, "A Closer Look at Learned Optimization:
  Stability, Robustness, and Inductive Biases", NeurIPS 2022 (arXiv 2209.11208).
  google/learned_optimization, ``learned_optimizers/adafac_nominal.py`` (STAR,
  ``MLPNomLOpt``) and ``learned_optimizers/adafac_mlp_lopt.py`` (small_fc_lopt).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from stability._validation import check_key

__all__ = [
    "ADAFACTOR_DECAYS",
    "HIDDEN_SIZE",
    "MOMENTUM_DECAYS",
    "NUM_INPUTS",
    "RMS_DECAYS",
    "from_learned_optimization",
    "init_theta",
    "num_params",
    "theta_shapes",
    "validate_theta",
    "zero_output_layer",
]

MOMENTUM_DECAYS = (0.9, 0.99, 0.999)
RMS_DECAYS = (0.999,)
ADAFACTOR_DECAYS = (0.9, 0.99, 0.999)
NUM_INPUTS = 39  # 28 normalised accumulator features + 11 time features
HIDDEN_SIZE = 4
_SUPPORTED_HEADS = (2, 3)
_DECAY_KEYS = ("momentum_decays", "rms_decays", "adafactor_decays")
_MLP_KEYS = ("w0", "b0", "w1", "b1", "w2", "b2")


def theta_shapes(heads: int) -> dict:
    """The shape of every leaf of a theta with ``heads`` outputs, as a nested dict.

    >>> theta_shapes(2)["mlp"]["w2"]
    (4, 2)
    """
    heads = _check_heads(heads)
    h = HIDDEN_SIZE
    return {
        "momentum_decays": (len(MOMENTUM_DECAYS),),
        "rms_decays": (len(RMS_DECAYS),),
        "adafactor_decays": (len(ADAFACTOR_DECAYS),),
        "mlp": {
            "w0": (NUM_INPUTS, h),
            "b0": (h,),
            "w1": (h, h),
            "b1": (h,),
            "w2": (h, heads),
            "b2": (heads,),
        },
    }


def init_theta(key: jax.Array, heads: int = 3) -> dict:
    r"""A fresh theta: zero decay offsets, zero biases, truncated-normal weights.

    Each weight matrix of fan-in :math:`n` is ``(1/sqrt(n)) * z`` with ``z`` a
    standard normal truncated to ``[-2, 2]`` (haiku's ``TruncatedNormal(stddev)``,
    which upstream uses; the realised standard deviation is about 0.88/sqrt(n)).

    Args:
      key: a JAX PRNG key.
      heads: 2 for small_fc_lopt, 3 for STAR.
    Returns:
      theta as a nested dict of float32 arrays.

    >>> import jax
    >>> num_params(init_theta(jax.random.key(0), heads=3))
    202
    """
    shapes = theta_shapes(heads)
    keys = jax.random.split(check_key("key", key), 3)
    mlp = {}
    for i, k in enumerate(keys):
        w_shape = shapes["mlp"][f"w{i}"]
        z = jax.random.truncated_normal(k, -2.0, 2.0, w_shape, jnp.float32)
        mlp[f"w{i}"] = z * jnp.float32(1.0 / np.sqrt(w_shape[0]))
        mlp[f"b{i}"] = jnp.zeros(shapes["mlp"][f"b{i}"], jnp.float32)
    theta = {name: jnp.zeros(shapes[name], jnp.float32) for name in _DECAY_KEYS}
    theta["mlp"] = mlp
    return theta


def num_params(theta: Mapping) -> int:
    """How many numbers a theta holds (197 for small_fc_lopt, 202 for STAR)."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(theta)))


def validate_theta(theta: Mapping, heads: int | None = None) -> None:
    """Check a theta's keys, shapes and (when concrete) finiteness.

    Traced leaves (inside ``jit``, ``vmap`` or ``grad``) have their shapes checked
    but not their values: meta-training perturbs and differentiates theta.

    Args:
      theta: the dict to check.
      heads: the expected number of outputs; ``None`` reads it from ``mlp.b2``.
    Raises:
      ValueError: naming the offending key, e.g. ``theta['mlp']['w2']``.

    >>> import jax, jax.numpy as jnp
    >>> theta = init_theta(jax.random.key(0), heads=2)
    >>> theta["mlp"]["b1"] = jnp.full((4,), jnp.nan)
    >>> validate_theta(theta)
    Traceback (most recent call last):
    ...
    ValueError: theta['mlp']['b1']: contains non-finite values (NaN or inf)
    """
    if not isinstance(theta, Mapping):
        raise ValueError(f"theta: expected a dict, got {type(theta).__name__}")
    _check_keys("theta", theta, (*_DECAY_KEYS, "mlp"))
    mlp = theta["mlp"]
    if not isinstance(mlp, Mapping):
        raise ValueError(f"theta['mlp']: expected a dict, got {type(mlp).__name__}")
    _check_keys("theta['mlp']", mlp, _MLP_KEYS)
    if heads is None:
        b2_shape = np.shape(mlp["b2"])
        if len(b2_shape) != 1:
            raise ValueError(
                f"theta['mlp']['b2']: expected shape (heads,), got {b2_shape}"
            )
        heads = b2_shape[0]
        if heads not in _SUPPORTED_HEADS:
            raise ValueError(
                f"theta['mlp']['b2']: {heads} heads; expected 2 (small_fc_lopt) "
                "or 3 (STAR); convert upstream thetas with from_learned_optimization"
            )
    shapes = theta_shapes(heads)
    for name in _DECAY_KEYS:
        _check_leaf(f"theta[{name!r}]", theta[name], shapes[name])
    for name in _MLP_KEYS:
        _check_leaf(f"theta['mlp'][{name!r}]", mlp[name], shapes["mlp"][name])


def zero_output_layer(theta: Mapping) -> dict:
    """A copy of ``theta`` with the output layer (``w2``, ``b2``) set to zero.

    Every head is then 0: STAR's step is exactly its nominal term
    ``nominal_stepsize * mean_i(m_i / sqrt(v + 1e-6))`` (blackbox direction 0,
    magnitudes exp(0) = 1), and small_fc_lopt does not move. STAR meta-training
    starts here, because upstream's random output layer makes the untrained STAR
    diverge.
    """
    out = {name: theta[name] for name in _DECAY_KEYS}
    out["mlp"] = dict(theta["mlp"])
    out["mlp"]["w2"] = jnp.zeros_like(theta["mlp"]["w2"])
    out["mlp"]["b2"] = jnp.zeros_like(theta["mlp"]["b2"])
    return out


def from_learned_optimization(
    theta_upstream: Mapping, heads: int | None = None
) -> dict:
    """Convert a learned_optimization (haiku) theta to this package's layout.

    Upstream keeps the MLP under ``theta["nn"]["~"]`` and, for STAR
    (``MLPNomLOpt``), always builds 4 output heads: direction, blackbox magnitude,
    nominal magnitude and a weight-decay magnitude that STAR never uses. The unused
    heads are dropped.

    Args:
      theta_upstream: mapping with ``momentum_decays``, ``rms_decays``,
        ``adafactor_decays`` and ``nn = {"~": {"w0", "b0", ..., "b2"}}``.
      heads: heads to keep; ``None`` keeps 3 of STAR's 4 and both of
        small_fc_lopt's 2.
    Returns:
      a validated theta (float32 arrays).
    """
    if not isinstance(theta_upstream, Mapping):
        raise ValueError(
            f"theta_upstream: expected a dict, got {type(theta_upstream).__name__}"
        )
    for name in (*_DECAY_KEYS, "nn"):
        if name not in theta_upstream:
            raise ValueError(f"theta_upstream: missing key {name!r}")
    nn = theta_upstream["nn"]
    if not isinstance(nn, Mapping) or "~" not in nn:
        raise ValueError("theta_upstream['nn']: expected a dict with key '~'")
    mlp_up = nn["~"]
    for name in _MLP_KEYS:
        if name not in mlp_up:
            raise ValueError(f"theta_upstream['nn']['~']: missing key {name!r}")
    upstream_heads = np.shape(mlp_up["b2"])[-1] if np.ndim(mlp_up["b2"]) else 0
    if heads is None:
        heads = 3 if upstream_heads == 4 else upstream_heads
    heads = _check_heads(heads)
    if upstream_heads < heads:
        raise ValueError(
            f"theta_upstream['nn']['~']['b2']: has {upstream_heads} heads, "
            f"need at least {heads}"
        )
    theta = {
        name: jnp.asarray(theta_upstream[name], jnp.float32) for name in _DECAY_KEYS
    }
    mlp = {name: jnp.asarray(mlp_up[name], jnp.float32) for name in _MLP_KEYS}
    mlp["w2"] = mlp["w2"][..., :heads]
    mlp["b2"] = mlp["b2"][..., :heads]
    theta["mlp"] = mlp
    validate_theta(theta, heads)
    return theta


def _check_heads(heads) -> int:
    if isinstance(heads, bool) or not isinstance(heads, int | np.integer):
        raise ValueError(f"heads: expected an int, got {heads!r}")
    if heads not in _SUPPORTED_HEADS:
        raise ValueError(f"heads: expected 2 (small_fc_lopt) or 3 (STAR), got {heads}")
    return int(heads)


def _check_keys(where: str, mapping: Mapping, expected: tuple) -> None:
    missing = [k for k in expected if k not in mapping]
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r}")
    extra = sorted(str(k) for k in mapping if k not in expected)
    if extra:
        raise ValueError(f"{where}: unexpected key {extra[0]!r}")


def _check_leaf(where: str, leaf, shape: tuple) -> None:
    if not hasattr(leaf, "shape") and not isinstance(leaf, list | tuple | float | int):
        raise ValueError(f"{where}: expected an array, got {type(leaf).__name__}")
    got = tuple(np.shape(leaf))
    if got != shape:
        raise ValueError(f"{where}: expected shape {shape}, got {got}")
    dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{where}: expected a float array, got dtype {dtype}")
    if isinstance(leaf, jax.core.Tracer):
        return
    if not bool(np.all(np.isfinite(np.asarray(leaf, dtype=np.float64)))):
        raise ValueError(f"{where}: contains non-finite values (NaN or inf)")
