"""Saving and loading meta-trained thetas, atomic file writes, JSON-safe copies.

A theta is stored as an ``.npz`` archive whose keys are the flattened paths of the
theta dict (``momentum_decays``, ``mlp/w0``, ...), with a JSON sidecar beside it (same
name, suffix ``.json``) holding whatever metadata the caller passes: the command line,
git commit, date, meta-training configuration and final metrics. Calling pattern::

    save_theta("runs/star.npz", theta, {"config": {...}, "metrics": {...}})
    theta = load_theta("runs/star.npz")          # shapes validated
    meta = load_metadata("runs/star.npz")        # the sidecar, as a dict

Both files are written atomically (a temporary file in the same directory, then
``os.replace``): a reader sees the old file or the whole new one, never half of it.
"""

import json
import os
import pathlib
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from stability.lopt.theta import validate_theta

__all__ = [
    "SHIPPED_THETAS",
    "atomic_write",
    "flatten_theta",
    "json_safe",
    "load_metadata",
    "load_theta",
    "save_theta",
    "sidecar_path",
    "unflatten_theta",
]

#: The thetas shipped with the package (``star.npz``, ``small_fc_lopt.npz``, the
#: ablations' kept thetas), each with its sidecar; the README there says how each
#: was meta-trained.
SHIPPED_THETAS = pathlib.Path(__file__).resolve().parent / "thetas"


def atomic_write(path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file, then
    ``os.replace`` puts it in place (after an ``fsync``)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            os.fchmod(f.fileno(), 0o644)  # not mkstemp's 0o600: results are shared
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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


def load_theta(path, heads: int | None = None) -> dict:
    """Load a theta saved by :func:`save_theta`, as a dict of float32 NumPy arrays.

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
    path = pathlib.Path(path)
    try:
        archive = np.load(path)
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
