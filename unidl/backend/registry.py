"""Discovering backend plugins through the ``unidl`` entry-point group, and loading them.

Discovery imports only the plugin modules (never a framework). A plugin that fails to
import or to declare its backends is recorded with its error and the others keep working.
Loading a backend imports its framework once, binds its kernels once into a table, and
reports missing primitive kernels.
"""

from __future__ import annotations

import threading
import traceback
import warnings
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from unidl import hookspecs
from unidl.backend.base import Backend, BackendEntry
from unidl.errors import BackendNotFoundError, BackendUnavailableError

__all__ = ["plugin_manager", "list_backends", "get_backend", "BackendInfo", "register_plugin",
           "plugin_errors", "reset", "is_backend_name", "backend_names", "backend_entries",
           "loaded_backends"]

ENTRY_POINT_GROUP = "unidl"

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_entries: dict[str, BackendEntry] | None = None
_loaded: dict[str, Backend] = {}
_load_errors: dict[str, str] = {}
_plugin_errors: dict[str, str] = {}


@dataclass
class BackendInfo:
    """One row of :func:`list_backends`."""

    name: str
    version: str | None
    devices: list[str] = field(default_factory=list)
    error: str | None = None
    plugin: str = ""
    loaded: bool = False
    missing_ops: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.error is None


def plugin_manager() -> pluggy.PluginManager:
    """The pluggy manager, with every ``unidl`` entry-point plugin registered."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            for ep in _entry_points():
                try:
                    plugin = ep.load()
                    pm.register(plugin, name=ep.name)
                except Exception as exc:  # a broken plugin must not break the others
                    _plugin_errors[ep.name] = _describe(exc)
            _pm = pm
        return _pm


def _entry_points():
    seen = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        yield ep


def is_backend_name(name: str) -> bool:
    """Whether an installed plugin declares a backend called ``name``. Cheap when an entry
    point has that name (nothing is imported); else the plugins are discovered (their
    modules imported, never a framework)."""
    if any(ep.name == name for ep in _entry_points()):
        return True
    return name in _backend_entries()


def backend_entries() -> dict[str, BackendEntry]:
    """Every declared backend's entry by name (plugins discovered, no framework imported)."""
    return dict(_backend_entries())


def backend_names() -> list[str]:
    """The names of every declared backend (plugins discovered, no framework imported)."""
    return sorted(_backend_entries())


def loaded_backends() -> list[Backend]:
    """The backends loaded so far in this process (their frameworks are imported)."""
    with _lock:
        return list(_loaded.values())


def _describe(exc: BaseException) -> str:
    line = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return line.splitlines()[-1] if line else type(exc).__name__


def register_plugin(plugin, name: str | None = None) -> None:
    """Register a plugin object by hand (as an entry point would). Resets discovery."""
    pm = plugin_manager()
    pm.register(plugin, name=name)
    with _lock:
        global _entries
        _entries = None


def plugin_errors() -> dict[str, str]:
    """Plugins that failed to import or to declare backends: ``{entry point: error}``."""
    _backend_entries()
    return dict(_plugin_errors)


def _backend_entries() -> dict[str, BackendEntry]:
    global _entries
    with _lock:
        if _entries is None:
            pm = plugin_manager()
            entries: dict[str, BackendEntry] = {}
            for impl in pm.hook.unidl_register_backends.get_hookimpls():
                try:
                    result = impl.function() or []
                except Exception as exc:
                    _plugin_errors[impl.plugin_name] = _describe(exc)
                    continue
                for entry in result:
                    entry.plugin = entry.plugin or impl.plugin_name
                    entries.setdefault(entry.name, entry)
            _entries = entries
        return _entries


def reset() -> None:
    """Forget discovered plugins and loaded backends (for tests that install plugins)."""
    global _pm, _entries
    with _lock:
        _pm = None
        _entries = None
        _loaded.clear()
        _load_errors.clear()
        _plugin_errors.clear()


def get_backend(name: str) -> Backend:
    """The loaded backend called ``name`` (imports its framework and binds kernels once).

    Raises:
        BackendNotFoundError: no installed plugin declares ``name``.
        BackendUnavailableError: the framework is missing or failed to import.
    """
    be = _loaded.get(name)
    if be is not None:
        return be
    with _lock:
        if name in _loaded:
            return _loaded[name]
        entries = _backend_entries()
        entry = entries.get(name)
        if entry is None:
            installed = ", ".join(sorted(entries)) or "none"
            broken = plugin_errors()
            extra = f"; plugins that failed to load: {broken}" if broken else ""
            raise BackendNotFoundError(
                f"unknown backend {name!r}; installed backends: {installed}{extra}"
            )
        if name in _load_errors:
            raise BackendUnavailableError(_load_errors[name])
        try:
            be = entry.load()
        except ImportError as exc:
            hint = f' (install it with: pip install "unidl[{entry.extra}]")' if entry.extra else ""
            msg = f"backend {name!r} is installed but its framework failed to import: " \
                  f"{_describe(exc)}{hint}"
            _load_errors[name] = msg
            raise BackendUnavailableError(msg) from None
        except Exception as exc:
            msg = f"backend {name!r} failed to load: {_describe(exc)}"
            _load_errors[name] = msg
            raise BackendUnavailableError(msg) from None
        be.name = name
        for extra in plugin_manager().hook.unidl_backend_kernels(backend_name=name):
            if extra:
                be.kernels.update(extra)
        import unidl.ops  # noqa: F401  (the spec first: binding and the spec import each other)
        from unidl.backend.binding import bind

        bind(be)
        if be.missing:
            warnings.warn(
                f"backend {name!r} has no kernel for these primitive ops: "
                f"{', '.join(be.missing)}; calling them raises MissingKernelError",
                stacklevel=2,
            )
        from unidl import random as _random

        _random.configure_backend(be)  # the seed and deterministic mode set so far
        _loaded[name] = be
        return be


def list_backends(load: bool = True) -> list[BackendInfo]:
    """Every discovered backend: name, version, devices, and its load error if any.

    With ``load=True`` (default) each backend's framework is imported to list its devices;
    a backend that fails to load is listed with its ``error``. Plugins that failed to import
    at all are listed too, under their entry-point name.

    Example:
        >>> import unidl
        >>> [b.name for b in unidl.list_backends(load=False)][:1]
        ['numpy']
    """
    rows = []
    for name, entry in _backend_entries().items():
        info = BackendInfo(name=name, version=entry.installed_version(), plugin=entry.plugin)
        if load or name in _loaded:
            try:
                be = get_backend(name)
                info.version = be.version()
                info.devices = be.devices()
                info.loaded = True
                info.missing_ops = list(be.missing)
            except Exception as exc:
                info.error = str(exc)
        rows.append(info)
    for plugin, err in plugin_errors().items():
        if not any(r.plugin == plugin for r in rows):
            rows.append(BackendInfo(name=plugin, version=None, error=f"plugin failed: {err}",
                                    plugin=plugin))
    return rows
