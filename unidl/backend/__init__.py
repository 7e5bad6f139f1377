"""Backend discovery, selection and the base class plugins derive from.

Names are imported on first use (PEP 562): selecting a backend needs only
:mod:`unidl.backend.state`; discovery (pluggy, entry points) loads when a backend is.
"""

from unidl.backend.state import (
    backend_name,
    current_backend,
    current_device,
    device,
    devices,
    set_backend,
    use_backend,
)

_LAZY = {"Backend": "unidl.backend.base", "BackendEntry": "unidl.backend.base",
         "BackendInfo": "unidl.backend.registry", "get_backend": "unidl.backend.registry",
         "list_backends": "unidl.backend.registry", "plugin_manager": "unidl.backend.registry"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unidl.backend' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Backend",
    "BackendEntry",
    "BackendInfo",
    "backend_name",
    "current_backend",
    "current_device",
    "device",
    "devices",
    "get_backend",
    "list_backends",
    "plugin_manager",
    "set_backend",
    "use_backend",
]
