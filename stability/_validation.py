"""Argument checks shared by the whole package; each failure is a ValueError naming
the argument."""

import math

import jax
import jax.numpy as jnp
import numpy as np


def as_float_array(name, value, *, ndim=None, shape=None):
    """``value`` as a float NumPy array, finite, with the given ndim/shape."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array, got {value!r}") from err
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
    return arr


def check_scalar(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """A finite real scalar inside [low, high] (ends open if asked); returns a float."""
    try:
        x = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a real number, got {value!r}") from err
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {x}")
    if low is not None and (x < low or (low_open and x == low)):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {x}")
    if high is not None and (x > high or (high_open and x == high)):
        raise ValueError(
            f"{name}: must be {'<' if high_open else '<='} {high}, got {x}"
        )
    return x


def is_finite(value) -> bool:
    """False only for a concrete array holding a NaN or inf; traced values pass."""
    if isinstance(value, jax.core.Tracer):
        return True
    return bool(np.all(np.isfinite(np.asarray(value))))


def check_finite(name, value):
    """``value`` unchanged, unless it is concrete and holds a NaN or inf."""
    if not is_finite(value):
        raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
    return value


def check_int(name, value, *, low=None):
    """An integer (not a bool, not a float with an integral value), at least ``low``;
    returns an ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
    return int(value)


def check_key(name, value):
    """One JAX PRNG key: a typed ``jax.random.key`` or a raw ``uint32[2]``
    (``jax.random.PRNGKey``); traced keys pass."""
    if isinstance(value, jax.Array):
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            if value.shape == ():
                return value
        elif value.dtype == jnp.uint32 and value.shape == (2,):
            return value
    raise ValueError(f"{name}: expected one jax.random.key, got {value!r}")


def check_flag(name, value):
    """A bool (``np.bool_`` too): a string such as ``"False"`` would read as true."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_lr(name, value):
    """A learning rate: finite and non-negative."""
    return check_scalar(name, value, low=0.0)


def check_beta(name, value):
    """A momentum decay in the open interval (-1, 1); negative decays are allowed since
    learned decays can become negative."""
    return check_scalar(name, value, low=-1.0, high=1.0, low_open=True, high_open=True)


def check_betas(name, values):
    try:
        seq = tuple(values)
    except TypeError as err:
        raise ValueError(
            f"{name}: expected a sequence of decays, got {values!r}"
        ) from err
    if not seq:
        raise ValueError(f"{name}: needs at least one decay")
    return tuple(check_beta(f"{name}[{i}]", b) for i, b in enumerate(seq))


def check_square(name, value, *, n=None):
    arr = as_float_array(name, value, ndim=2)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name}: must be square, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n}, {n}), got {arr.shape}")
    return arr


def check_symmetric(name, value, *, n=None, rtol=1e-10):
    arr = check_square(name, value, n=n)
    scale = max(float(np.max(np.abs(arr))), 1e-300)
    if np.max(np.abs(arr - arr.T)) > rtol * scale:
        raise ValueError(f"{name}: must be symmetric")
    return arr


def check_spd(name, value, *, n=None):
    arr = check_symmetric(name, value, n=n)
    if np.min(np.linalg.eigvalsh(arr)) <= 0:
        raise ValueError(f"{name}: must be positive definite")
    return arr


def check_psd(name, value, *, n=None, rtol=1e-12):
    arr = check_symmetric(name, value, n=n)
    lam = np.linalg.eigvalsh(arr)
    if lam.size and lam.min() < -rtol * max(lam.max(), 1e-300):
        raise ValueError(f"{name}: must be positive semidefinite")
    return arr
