"""Files on disk: the errors that name them, atomic writes, and arrays as safetensors.

Every write goes to a temporary file in the destination's directory, is flushed and
``fsync``-ed, then renamed over the destination (and the directory ``fsync``-ed), so a crash
or a kill in the middle leaves the previous file whole. Arrays are stored with the
``safetensors`` package: a JSON header and raw little-endian bytes, nothing executed on load.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

from unidl.errors import UnidlError

__all__ = ["SaveFileError", "SaveFileNotFoundError", "atomic_write", "arrays_to_bytes",
           "arrays_from_bytes", "check_directory"]


class SaveFileError(UnidlError, ValueError):
    """A model or weights file cannot be written, or read back into a model; the message
    names the file, what was expected and what was found."""


class SaveFileNotFoundError(SaveFileError, FileNotFoundError):
    """The file, or the directory to write it in, does not exist."""


def check_directory(path: str, what: str, error=SaveFileNotFoundError) -> str:
    """The absolute directory of ``path``; an ``error`` (a :class:`SaveFileNotFoundError`)
    naming it when it does not exist."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise error(f"{what}({path!r}): the directory {directory!r} does not "
                                    "exist; create it first (os.makedirs)")
    return directory


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, fsync,
    rename, fsync of the directory). The file gets a new file's usual mode."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".unidl-tmp-",
                               suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (not possible on every platform: then skipped)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def arrays_to_bytes(arrays: dict, metadata: dict | None = None) -> bytes:
    """``{name: array}`` as safetensors bytes (C-contiguous copies where needed)."""
    from safetensors.numpy import save

    # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
    return save({k: np.asarray(v, order="C") for k, v in arrays.items()},
                metadata={k: str(v) for k, v in (metadata or {}).items()} or None)


def arrays_from_bytes(data: bytes, where: str) -> dict:
    """The arrays of safetensors ``data``; a :class:`SaveFileError` saying ``where`` they
    came from when the bytes are truncated or not safetensors."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return load(data)
    except (SafetensorError, ValueError, OverflowError) as exc:
        raise SaveFileError(f"{where}: the arrays are truncated or corrupt ({exc})") from None
