"""What every command shares: the one-line-error parser, argument types, and checks
that an output can be written before any computation."""

import argparse
import os
import pathlib
import sys
import tempfile


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors are one line on stderr, exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, got {text!r}"
        )
    return value


def positive_number(text: str) -> float:
    """``argparse`` type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _probe(flag: str, folder: pathlib.Path, target: pathlib.Path) -> None:
    """Check that ``folder`` (which exists, or is to be created) can be written:
    create and remove a file in its nearest existing folder.

    Raises:
      ValueError: naming ``flag`` and ``target`` (the file or folder to write).
    """
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ValueError(f"{flag}: {base} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".stability-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise ValueError(f"{flag}: cannot write {target} ({err.strerror})") from None


def writable_dir(flag: str, path) -> pathlib.Path:
    """Check, before any computation, that the folder ``path`` given as ``flag``
    can be written (or created: nothing is created here); return it.

    Raises:
      ValueError: naming ``flag``: an empty name, an existing file, a place that
        cannot be written.
    """
    if path is None or not str(path).strip():
        raise ValueError(f"{flag}: expected a folder name, got {path!r}")
    folder = pathlib.Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag}: {folder} is a file, not a folder")
    _probe(flag, folder, folder)
    return folder


def writable_file(flag: str, path) -> pathlib.Path:
    """Check, before any computation, that the file ``path`` given as ``flag`` can
    be written (an existing file is kept until :func:`write_atomic` replaces it;
    nothing is created here); return it.

    Raises:
      ValueError: naming ``flag``: an empty name, a folder, a place that cannot
        be written.
    """
    if path is None or not str(path).strip():
        raise ValueError(f"{flag}: expected a file name, got {path!r}")
    file = pathlib.Path(path)
    if file.is_dir():
        raise ValueError(f"{flag}: {file} is a folder, not a file")
    _probe(flag, file.parent, file)
    return file


def write_atomic(path, write, mode: str = "w") -> None:
    """``write(f)`` into a temporary file beside ``path``, then put it in place: an
    interrupted or failed write leaves the old file as it was. Creates the
    missing folders (:func:`stability._files.atomic_write`, text mode by default)."""
    from stability._files import atomic_write

    atomic_write(path, write, mode)
