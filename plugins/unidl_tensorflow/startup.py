"""Importing TensorFlow so that its start-up log lines show once.

tensorflow-cpu 2.21 ships two shared libraries that each link their own static copy of
TSL (TensorFlow's platform layer) and of absl logging: ``libtensorflow_framework.so.2`` and
the profiler's ``_pywrap_profiler_plugin`` extension module, which ``import tensorflow``
loads through ``tf.profiler.experimental.client``. Each copy logs its start-up lines once
per copy. These are absl's "WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR" and, where oneDNN is on, "I... port.cc:153] oneDNN custom
operations are on...". So every process that imports TensorFlow prints them twice.
``TF_CPP_MIN_LOG_LEVEL`` does not hide them, since they are logged through absl before
TensorFlow's log level applies.

:func:`import_tensorflow` imports TensorFlow with the profiler plugin's load captured at
file descriptor 2. It writes back everything that load printed except absl's banner and
INFO lines, which are the repeats. Warnings, errors and anything that is not a glog line
are written back unchanged. TensorFlow's first copy (loaded with its CPU feature check) is
never captured, so a fatal "compiled to use AVX" message still shows.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import re
import sys
import tempfile

__all__ = ["import_tensorflow"]

# extension modules with their own static copy of TSL + absl logging (tensorflow-cpu 2.21)
_SECOND_COPIES = frozenset({"tensorflow.python.profiler.internal._pywrap_profiler_plugin"})
_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# an absl/glog line: severity, MMDD, time (absl before InitializeLog: "00:00:<epoch>.<us>"),
# thread id, file:line]
_GLOG = re.compile(rb"([IWEF])\d{4} [\d:.]+ +\d+ [^\]\s]+:\d+\] ")


def import_tensorflow():
    """``import tensorflow``, with the start-up lines of its second TSL copy not repeated.

    If TensorFlow is already imported this does nothing more than return it.
    """
    if "tensorflow" not in sys.modules:
        finder = _SecondCopyFinder()
        sys.meta_path.insert(0, finder)
        try:
            import tensorflow  # noqa: F401
        finally:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(finder)
    return sys.modules["tensorflow"]


class _SecondCopyFinder:
    """A meta-path finder that does not find modules. For a :data:`_SECOND_COPIES` module,
    it gives the normal extension-module spec with a loader that captures its load."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _SECOND_COPIES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """Loads an extension module with its load-time repeats removed from stderr. The module
    keeps its own loader: the spec gets it back before the module is made."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        spec.loader = self.loader
        with _repeats_dropped_from_stderr():
            return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)


@contextlib.contextmanager
def _repeats_dropped_from_stderr():
    """Capture file descriptor 2 in a temporary file, then write back all but the repeated
    start-up lines (:func:`_kept`)."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    capture = _open_capture()
    if capture is None:
        yield
        return
    tmp, saved = capture
    with tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            with contextlib.suppress(OSError):
                _write_all(2, _kept(tmp.read()))


def _open_capture():
    """``(temporary file, duplicate of file descriptor 2)``, or None without a usable file
    descriptor 2 or temporary directory (then nothing is captured). File descriptor 2 is
    duplicated first, so a closed one is not mistaken for the temporary file."""
    try:
        saved = os.dup(2)
    except OSError:
        return None
    try:
        return tempfile.TemporaryFile(), saved
    except OSError:
        os.close(saved)
        return None


def _kept(data: bytes) -> bytes:
    """``data`` without absl's banner and the INFO lines (with their continuation lines).
    Every other line, warnings and errors included, is kept."""
    out, dropping = [], False
    for line in data.splitlines(keepends=True):
        if line.rstrip(b"\r\n") == _BANNER:
            dropping = False
            continue
        m = _GLOG.match(line)
        if m:
            dropping = m.group(1) == b"I"
        if not dropping:
            out.append(line)
    return b"".join(out)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all is written (a pipe may take part of it)."""
    while data:
        data = data[os.write(fd, data):]
