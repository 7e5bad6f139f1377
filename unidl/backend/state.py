"""Which backend and device are active: per thread, defaulting to the process-wide choice.

The active backend is held as its bound kernel *table* in a thread-local, so an op's
dispatch is one attribute lookup; nothing here runs per op.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref

from unidl.errors import BackendError, BackendNotFoundError

#: the backend used when neither ``UNIDL_BACKEND`` nor a plugin's default names one
DEFAULT_BACKEND = "numpy"

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
    #: every thread's state dict, by thread ident, with a weak reference to the thread (so
    #: :func:`set_backend` reaches threads that already ran an op; dead threads are dropped)
    threads: dict = {}


class _State(threading.local):
    """One thread's view: the active backend, its kernel table and device.

    ``pinned`` counts the :func:`use_backend` blocks the thread is in, ``tracing`` the
    levels of unidl's own autodiff engine and ``grad_depth`` the nested ``unidl.grad``
    calls; a thread with all three at 0 follows the process backend.
    """

    def __init__(self):
        self.backend = _Process.backend
        self.k = _Process.table if _Process.table is not None else _Lazy()
        self.device = _Process.device
        self.tracing = 0  # depth of unidl's own autodiff tracing (numpy engine)
        self.grad_depth = 0  # nested unidl.grad / vjp calls on any backend
        self.pinned = 0  # depth of use_backend blocks
        self.spec_rules_only = False  # engine: ignore backends' gradient kernels
        with _Process.lock:
            _forget_dead_threads()
            _Process.threads[threading.get_ident()] = (
                weakref.ref(threading.current_thread()), self.__dict__)


def _forget_dead_threads():
    for ident, (ref, _) in list(_Process.threads.items()):
        thread = ref()
        if thread is None or not thread.is_alive():
            del _Process.threads[ident]


STATE = _State()


def _default_name() -> str:
    env = os.environ.get("UNIDL_BACKEND")
    if env:
        return env.strip()
    from unidl.backend.registry import plugin_manager

    choice = plugin_manager().hook.unidl_default_backend()
    return choice or DEFAULT_BACKEND


def check_environment() -> None:
    """Fail early, at ``import unidl``, when ``UNIDL_BACKEND`` names no installed backend.

    No framework is imported (see :func:`unidl.backend.registry.is_backend_name`).

    Raises:
        BackendNotFoundError: naming the variable, its value and the installed backends.
    """
    env = (os.environ.get("UNIDL_BACKEND") or "").strip()
    if not env:
        return
    from unidl.backend.registry import backend_names, is_backend_name

    if not is_backend_name(env):
        raise BackendNotFoundError(
            f"UNIDL_BACKEND={env!r} names no installed backend; installed backends: "
            f"{', '.join(backend_names()) or 'none'} (unset UNIDL_BACKEND or pick one of them)")


def _ensure_loaded():
    if STATE.backend is not None:
        return
    with _Process.lock:
        if _Process.backend is None:
            name = _default_name()
            try:
                _set_process_backend(name)
            except BackendNotFoundError as exc:
                if os.environ.get("UNIDL_BACKEND"):
                    raise BackendNotFoundError(f"UNIDL_BACKEND: {exc}") from None
                raise
    STATE.backend = _Process.backend
    STATE.k = _Process.table
    if STATE.device is None:
        STATE.device = _Process.device


def _set_process_backend(name: str):
    from unidl.backend.registry import get_backend

    be = get_backend(name)
    _Process.backend = be
    _Process.table = be.table
    _Process.device = _env_device(be)


def _env_device(be) -> str | None:
    """``UNIDL_DEVICE`` (``cuda:0``, ``gpu``...) as a device of ``be``; None when unset.

    Raises:
        BackendError: ``be`` has no such device (the message names the variable).
    """
    raw = (os.environ.get("UNIDL_DEVICE") or "").strip()
    if not raw:
        return None
    dev = _normalize_device(raw)
    try:
        _check_device(be, dev)
    except BackendError as exc:
        raise BackendError(f"UNIDL_DEVICE={raw!r}: {exc} (unset UNIDL_DEVICE or pick one "
                           "of them)") from None
    return dev


def _follows_process(state: dict) -> bool:
    return not (state.get("pinned") or state.get("tracing") or state.get("grad_depth"))


def follow_process() -> None:
    """Make this thread use the process backend again if it is in no :func:`use_backend`
    block and no differentiation (called when such a block ends)."""
    if _follows_process(STATE.__dict__) and _Process.backend is not None:
        STATE.backend, STATE.k, STATE.device = (
            _Process.backend, _Process.table, _Process.device)


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
    """Make ``name`` the backend of this process: of this thread and of every other thread
    that is not inside a :func:`use_backend` block or a differentiation (those switch when
    their block ends). New tensors go to ``UNIDL_DEVICE`` where it is set (``cuda:0``), else
    to the backend's default device.

    Raises:
        ValueError: no backend of that name is installed (the message lists those that are).
        ImportError: the backend is known but its framework is missing or broken (the
            message says which extra to install).
        BackendError: called inside ``unidl.grad`` (values being differentiated belong to
            the backend that started the differentiation), or ``UNIDL_DEVICE`` names a device
            the backend does not have.
    """
    from unidl.backend.registry import get_backend

    if STATE.tracing or STATE.grad_depth:
        raise BackendError(
            f"set_backend({name!r}) inside unidl.grad/value_and_grad/vjp: the values being "
            "differentiated belong to the active backend; switch backends outside it")
    be = get_backend(name)
    dev = _env_device(be)
    with _Process.lock:
        _Process.backend, _Process.table, _Process.device = be, be.table, dev
        _forget_dead_threads()
        for _, state in _Process.threads.values():
            if _follows_process(state):
                state["backend"], state["k"], state["device"] = be, be.table, dev
    STATE.backend, STATE.k, STATE.device = be, be.table, dev


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
    if STATE.tracing:
        raise BackendError("cannot switch backends inside unidl.grad on the NumPy engine")
    saved = (STATE.backend, STATE.k, STATE.device)
    STATE.backend, STATE.k, STATE.device = be, be.table, None
    STATE.pinned += 1
    try:
        yield be
    finally:
        STATE.pinned -= 1
        STATE.backend, STATE.k, STATE.device = saved
        follow_process()


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
