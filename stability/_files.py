"""Writing files so that a crash never leaves a half-written one (no JAX here: the
command-line parsers use it too)."""

import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import Any


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
