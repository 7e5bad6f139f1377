"""Which backend and device are active: per thread, defaulting to the process-wide choice.

The active backend is held as its bound kernel *table* in a thread-local, so an op's
dispatch is one attribute lookup; nothing here runs per op.
"""

from __future__ import annotations

import contextlib
import os
import threading

from unidl.errors import BackendError

__all__ = [
    "set_backend",
    "use_backend",
    "backend_name",
    "current_backend",
    "device",
    "devices",
    "current_device",
    "STATE",
]


class _Lazy:
    """Stands in for the table until the first op: then loads the default backend."""

    def __getattr__(self, name):
        _ensure_loaded()
        return getattr(STATE.k, name)


class _Process:
    backend = None  # the process-wide Backend (None: not chosen yet)
    table = None
    device = None
    lock = threading.RLock()


class _State(threading.local):
    def __init__(self):
        self.backend = _Process.backend
        self.k = _Process.table if _Process.table is not None else _Lazy()
        self.device = _Process.device
        self.tracing = 0  # depth of unidl's own autodiff tracing (numpy engine)
        self.spec_rules_only = False  # engine: ignore backends' gradient kernels


STATE = _State()


def _default_name() -> str:
    env = os.environ.get("UNIDL_BACKEND")
    if env:
        return env.strip()
    from unidl.backend.registry import plugin_manager

    choice = plugin_manager().hook.unidl_default_backend()
    return choice or "numpy"


def _ensure_loaded():
    if STATE.backend is not None:
        return
    with _Process.lock:
        if _Process.backend is None:
            _set_process_backend(_default_name())
    STATE.backend = _Process.backend
    STATE.k = _Process.table
    if STATE.device is None:
        STATE.device = _Process.device


def _set_process_backend(name: str):
    from unidl.backend.registry import get_backend

    be = get_backend(name)
    _Process.backend = be
    _Process.table = be.table
    _Process.device = os.environ.get("UNIDL_DEVICE") or None
    if _Process.device is not None:
        _check_device(be, _Process.device)


def current_backend():
    """The active :class:`~unidl.backend.Backend` of this thread (loaded on first use)."""
    if STATE.backend is None:
        _ensure_loaded()
    return STATE.backend


def backend_name() -> str:
    """The name of the active backend, e.g. ``"numpy"``.

    Example:
        >>> import unidl
        >>> with unidl.use_backend("numpy"):
        ...     unidl.backend_name()
        'numpy'
    """
    return current_backend().name


def set_backend(name: str) -> None:
    """Make ``name`` the backend of this process (and of this thread).

    Raises:
        ValueError: no backend of that name is installed (the message lists those that are).
        ImportError: the backend is known but its framework is missing or broken (the
            message says which extra to install).
    """
    from unidl.backend.registry import get_backend

    be = get_backend(name)
    with _Process.lock:
        _Process.backend = be
        _Process.table = be.table
    STATE.backend = be
    STATE.k = be.table
    STATE.device = None


@contextlib.contextmanager
def use_backend(name: str):
    """Run a block with another backend in this thread; nestable.

    Example:
        >>> import unidl
        >>> with unidl.use_backend("numpy"):
        ...     type(unidl.ops.ones((2,))).__name__
        'ndarray'
    """
    from unidl.backend.registry import get_backend

    be = get_backend(name)
    saved = (STATE.backend, STATE.k, STATE.device)
    if STATE.tracing:
        raise BackendError("cannot switch backends inside unidl.grad on the NumPy engine")
    STATE.backend, STATE.k, STATE.device = be, be.table, None
    try:
        yield be
    finally:
        STATE.backend, STATE.k, STATE.device = saved


def _normalize_device(name: str) -> str:
    name = name.strip().lower()
    if name.startswith("/"):
        name = name.rsplit("device:", 1)[-1]
    name = name.replace("gpu", "cuda")
    if ":" not in name:
        name = name + ":0" if name != "cpu" else name
    if name == "cpu:0":
        name = "cpu"
    return name


def _check_device(be, dev: str):
    known = be.devices()
    if dev not in known:
        raise BackendError(
            f"device {dev!r} is not available on backend {be.name!r}; it has {', '.join(known)}"
        )


def devices(backend: str | None = None) -> list[str]:
    """The devices the active (or named) backend can use, e.g. ``['cpu', 'cuda:0']``."""
    if backend is None:
        return current_backend().devices()
    from unidl.backend.registry import get_backend

    return get_backend(backend).devices()


def current_device() -> str:
    """The device new tensors are placed on in this thread."""
    be = current_backend()
    return STATE.device or be.default_device()


@contextlib.contextmanager
def device(name: str):
    """Place tensors made in this block on device ``name`` (``"cpu"``, ``"cuda:0"``, ``"gpu"``).

    Raises:
        BackendError: the active backend has no such device (the message lists its devices).
    """
    be = current_backend()
    dev = _normalize_device(name)
    _check_device(be, dev)
    saved = STATE.device
    STATE.device = dev
    try:
        with be.device_scope(dev):
            yield dev
    finally:
        STATE.device = saved
