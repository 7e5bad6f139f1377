"""Writing an export atomically: to a temporary name in the target's directory, then renamed,
so an interrupted export never leaves a half-written artifact under the final name.

Example:
    >>> import os, tempfile
    >>> from unidl.export.files import atomic_file
    >>> path = os.path.join(tempfile.mkdtemp(), "model.bin")
    >>> with atomic_file(path) as tmp:
    ...     with open(tmp, "wb") as fh:
    ...         _ = fh.write(b"weights")
    >>> open(path, "rb").read()
    b'weights'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from unidl.export.rules import ExportError

__all__ = ["atomic_file", "atomic_dir", "check_directory", "ExportPathError"]


class ExportPathError(ExportError, FileNotFoundError):
    """The directory to write an export in does not exist."""


def check_directory(path, format: str) -> str:
    """``path`` as a string, after checking that its directory exists.

    Raises:
        ExportPathError: naming the path, the directory and the format.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ExportPathError(f"cannot export to {path!r} (format {format!r}): the directory "
                              f"{directory!r} does not exist; create it first (os.makedirs)")
    return path


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary file name next to ``path``; renamed to ``path`` when the block
    succeeds, removed when it fails."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    stem, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=f".tmp{ext}")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path):
    """Yields a temporary directory name next to ``path`` (not created: a writer such as
    ``tf.saved_model.save`` creates it); renamed to ``path`` when the block succeeds (an
    existing directory there is replaced), removed when it fails."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(os.path.normpath(path))
    holder = tempfile.mkdtemp(dir=directory, prefix=f".{base}.", suffix=".tmp")
    tmp = os.path.join(holder, base)
    try:
        yield tmp
        if not os.path.isdir(tmp):
            raise ExportError(f"the exporter wrote no directory for {path!r}")
        if os.path.lexists(path):
            old = os.path.join(holder, ".replaced")
            os.rename(path, old)  # (then the new one takes its name, then the old goes)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
