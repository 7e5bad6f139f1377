"""Backend discovery, selection and the base class plugins derive from."""

from unidl.backend.base import Backend, BackendEntry
from unidl.backend.registry import BackendInfo, get_backend, list_backends, plugin_manager
from unidl.backend.state import (
    backend_name,
    current_backend,
    current_device,
    device,
    devices,
    set_backend,
    use_backend,
)

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
