"""Saving and loading meta-trained thetas, atomic file writes, JSON-safe copies.

A theta is stored as an ``.npz`` archive whose keys are the flattened paths of the
theta dict (``momentum_decays``, ``mlp/w0``, ...), with a JSON sidecar beside it (same
name, suffix ``.json``) holding whatever metadata the caller passes: the command line,
git commit, date, meta-training configuration and final metrics. Calling pattern::

    save_theta("runs/star.npz", theta, {"config": {...}, "metrics": {...}})
    opt = load_optimizer("runs/star.npz")        # configured from the sidecar
    theta = load_theta("runs/star.npz")          # the bare arrays, shapes validated
    meta = load_metadata("runs/star.npz")        # the sidecar, as a dict

A bare theta carries no configuration: ``star(load_theta(path))`` runs with
:func:`~stability.lopt.star`'s defaults (``nominal_stepsize=1e-3``,
``precondition=True``, ...), not with the values the theta was meta-trained with
(the shipped ``star.npz`` used ``nominal_stepsize=0.0316``). :func:`load_optimizer`
builds the optimizer the sidecar describes; :func:`load_theta` warns
(:class:`ThetaConfigWarning`) when the sidecar records options that differ from the
defaults.

Both files are written atomically (a temporary file in the same directory, then
``os.replace``): a reader sees the old file or the whole new one, never half of it.
"""

import inspect
import json
import pathlib
import warnings
import zipfile
import zlib
from collections.abc import Mapping

import jax
import numpy as np

from stability._files import atomic_write as atomic_write
from stability.lopt.star import small_fc_lopt, star
from stability.lopt.theta import validate_theta

__all__ = [
    "SHIPPED_THETAS",
    "ThetaConfigWarning",
    "atomic_write",
    "flatten_theta",
    "json_safe",
    "configured_optimizer",
    "load_metadata",
    "load_optimizer",
    "load_theta",
    "save_theta",
    "sidecar_path",
    "unflatten_theta",
]

#: The thetas shipped with the package (``star.npz``, ``small_fc_lopt.npz``, the
#: ablations' kept thetas), each with its sidecar; the README there says how each
#: was meta-trained.
SHIPPED_THETAS = pathlib.Path(__file__).resolve().parent / "thetas"


def sidecar_path(path) -> pathlib.Path:
    """The JSON sidecar of a theta archive: ``x.npz`` -> ``x.json``."""
    path = pathlib.Path(path)
    return (
        path.with_suffix(".json")
        if path.suffix == ".npz"
        else path.parent / (path.name + ".json")
    )


def flatten_theta(theta: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"mlp": {"w0": a}}`` -> ``{"mlp/w0": a}`` (NumPy float32 arrays)."""
    out = {}
    for key, value in theta.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_theta(value, prefix=f"{name}/"))
        else:
            out[name] = np.asarray(value, np.float32)
    return out


def unflatten_theta(flat: Mapping[str, np.ndarray]) -> dict:
    """Inverse of :func:`flatten_theta`."""
    out: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def save_theta(path, theta: Mapping, metadata: Mapping | None = None) -> None:
    """Save a validated theta to ``path`` (``.npz``) and ``metadata`` to its sidecar.

    Args:
      path: destination, conventionally ending in ``.npz``.
      theta: a STAR (3 heads) or small_fc_lopt (2 heads) theta.
      metadata: JSON-serialisable mapping (non-finite floats are written as null).
    Raises:
      ValueError: theta has a wrong key, shape or a non-finite value.
    """
    validate_theta(theta)
    flat = flatten_theta(theta)
    path = pathlib.Path(path)
    text = json.dumps(json_safe(dict(metadata or {})), indent=2, sort_keys=True)
    atomic_write(path, lambda f: np.savez(f, **flat))
    atomic_write(sidecar_path(path), lambda f: f.write(text + "\n"), mode="w")


class ThetaConfigWarning(UserWarning):
    """A theta was loaded bare although its sidecar configures the optimizer with
    options other than the factory's defaults: build it with :func:`load_optimizer`."""


# factory -> its options (keyword arguments besides theta) and their defaults
_FACTORIES = {
    name: (
        fn,
        {
            k: p.default
            for k, p in inspect.signature(fn).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        },
    )
    for name, fn in (("star", star), ("small_fc_lopt", small_fc_lopt))
}


def _kind(theta, metadata, where):
    """``"star"`` (3 heads) or ``"small_fc_lopt"`` (2), checked against the sidecar."""
    kind = "star" if int(np.shape(theta["mlp"]["b2"])[0]) == 3 else "small_fc_lopt"
    said = (metadata.get("config") or {}).get("optimizer")
    if said is not None and said != kind:
        raise ValueError(f"{where}: the sidecar says {said!r}, the theta is {kind!r}")
    return kind


def _sidecar_options(metadata, kind) -> dict:
    """The factory options that the sidecar's ``config`` records."""
    config = metadata.get("config") or {}
    return {k: config[k] for k in _FACTORIES[kind][1] if k in config}


def configured_optimizer(theta, metadata, *, where="theta", **overrides):
    """The optax transformation of ``theta`` (STAR or small_fc_lopt, by its heads)
    with the options its sidecar ``metadata`` records, then ``overrides``.

    Returns ``(optimizer, options)``, ``options`` being the keyword arguments passed
    to the factory. :func:`load_optimizer` and
    :func:`stability.lopt.evaluate.learned_optimizer` both build through here.

    Raises:
      ValueError: an override the factory does not take (named), a sidecar naming
        the other optimizer, or STAR with its nominal term but no
        ``nominal_stepsize`` anywhere (the factory's default is not what any
        meta-training used).
    """
    kind = _kind(theta, metadata, where)
    factory, defaults = _FACTORIES[kind]
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(
            f"{unknown[0]}: {kind} takes no such option; it takes {sorted(defaults)}"
        )
    options = _sidecar_options(metadata, kind) | overrides
    if (
        kind == "star"
        and options.get("nominal", True)
        and options.get("nominal_stepsize") is None
    ):
        raise ValueError(
            f"nominal_stepsize: {where} has no sidecar configuration saying which; "
            "pass nominal_stepsize=..."
        )
    return factory(theta, **options), options


def load_optimizer(path, **overrides):
    """The optimizer a saved theta was meta-trained as, configured from its sidecar.

    STAR (3 heads) gets ``nominal_stepsize``, ``nominal``, ``precondition`` and every
    other option of :func:`~stability.lopt.star` that the sidecar's ``config``
    records; small_fc_lopt (2 heads) likewise. Keyword arguments override them.

    Args:
      path: the ``.npz`` archive (:func:`save_theta`'s, or a shipped one under
        :data:`SHIPPED_THETAS`).
      **overrides: options of :func:`~stability.lopt.star` /
        :func:`~stability.lopt.small_fc_lopt`.
    Returns:
      an optax transformation.
    Raises:
      ValueError: as :func:`load_theta`, an unknown override (named), or a STAR
        whose sidecar gives no ``nominal_stepsize`` and none is passed.

    >>> opt = load_optimizer(SHIPPED_THETAS / "star.npz")   # nominal_stepsize 0.0316
    >>> opt = load_optimizer(SHIPPED_THETAS / "star.npz", nominal_stepsize=0.01)
    """
    theta = _read_theta(path)
    return configured_optimizer(
        theta, load_metadata(path), where=str(path), **overrides
    )[0]


def load_theta(path, heads: int | None = None) -> dict:
    """Load a theta saved by :func:`save_theta`, as a dict of float32 NumPy arrays.

    The arrays only: the options the theta was meta-trained with live in the sidecar
    (:func:`load_metadata`), and a :class:`ThetaConfigWarning` says so when they
    differ from the factory's defaults. To get the optimizer, use
    :func:`load_optimizer`.

    Args:
      path: the ``.npz`` archive.
      heads: expected number of heads (3 STAR, 2 small_fc_lopt); ``None`` accepts
        either.
    Raises:
      ValueError: the file is not a readable ``.npz`` archive (truncated, empty,
        corrupted, text) or not a theta (wrong keys, shapes, non-finite); the
        message names the file.
      FileNotFoundError: no such file.
    """
    theta = _read_theta(path, heads)
    try:
        metadata = load_metadata(path)
        kind = _kind(theta, metadata, str(path))
    except ValueError:  # a broken sidecar does not spoil the arrays
        return theta
    defaults = _FACTORIES[kind][1]
    differs = {
        k: v for k, v in _sidecar_options(metadata, kind).items() if v != defaults[k]
    }
    if differs:
        warnings.warn(
            ThetaConfigWarning(
                f"{path}: meta-trained with {differs}, which {kind}(theta) would not "
                f"use (its defaults: { {k: defaults[k] for k in differs} }); build it "
                "with stability.lopt.load_optimizer(path)"
            ),
            stacklevel=2,
        )
    return theta


def _read_theta(path, heads: int | None = None) -> dict:
    """:func:`load_theta` without the configuration warning (for callers that read
    the sidecar themselves)."""
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as file:  # closed even when numpy fails to read it
            archive = np.load(file)
            if not hasattr(archive, "files"):  # a bare .npy array
                raise ValueError("a single array, not an .npz archive")
            with archive as f:
                flat = {k: np.asarray(f[k]) for k in f.files}
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        reason = "empty or truncated" if isinstance(err, EOFError) else err
        if "pickle" in str(err):  # numpy's hint (allow_pickle) does not apply
            reason = "not an .npz archive"
        raise ValueError(f"{path}: cannot read a theta ({reason})") from None
    theta = unflatten_theta(flat)
    try:
        validate_theta(theta, heads)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return jax.tree.map(lambda a: np.asarray(a, np.float32), theta)


def load_metadata(path) -> dict:
    """The JSON sidecar of a theta archive (``{}`` if there is none).

    Raises:
      ValueError: the sidecar is not a JSON object (truncated, corrupted); the
        message names the sidecar.
    """
    side = sidecar_path(path)
    if not side.exists():
        return {}
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{side}: not a valid JSON sidecar ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{side}: expected a JSON object, got {type(meta).__name__}")
    return meta


def json_safe(x, array_digits: int | None = None):
    """A copy of ``x`` made of JSON types: mappings (keys as str), lists, str, bool,
    int, float and ``None``.

    NumPy and JAX scalars and arrays become Python numbers and (nested) lists,
    non-finite floats become ``None``, anything else its ``str``. Numbers are kept
    exact, except the entries of arrays, which are rounded to ``array_digits``
    significant digits when it is given.
    """

    def clean(x, digits):
        if isinstance(x, Mapping):
            return {str(k): clean(v, digits) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v, digits) for v in x]
        if isinstance(x, bool | np.bool_):
            return bool(x)
        if isinstance(x, str) or x is None:
            return x
        if isinstance(x, int | np.integer):
            return int(x)
        if isinstance(x, float | np.floating):
            x = float(x)
            if not np.isfinite(x):
                return None
            return float(f"{x:.{digits}g}") if digits else x
        if hasattr(x, "shape"):
            return clean(np.asarray(x).tolist(), array_digits)
        return str(x)

    return clean(x, None)
