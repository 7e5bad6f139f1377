"""unidl: write a model once; run, train and check it on NumPy, PyTorch or TensorFlow.

The backend is chosen by ``UNIDL_BACKEND`` (default ``numpy``), :func:`set_backend` or
:func:`use_backend`. ``import unidl`` imports no framework until an op runs on it.

Example:
    >>> import unidl
    >>> from unidl import ops
    >>> with unidl.use_backend("numpy"):
    ...     float(ops.to_numpy(ops.sum(ops.ones((2, 3)))))
    6.0
"""

# ``import unidl`` imports only what selecting a backend needs; every other public name is
# imported on first use (PEP 562), so the package imports about as fast as NumPy alone and
# never a framework (tests/test_backends.py and benchmarks check both).
from unidl.backend.state import (
    backend_name,
    check_environment,
    current_backend,
    current_device,
    device,
    devices,
    set_backend,
    use_backend,
)
from unidl.errors import (
    BackendError,
    BackendNotFoundError,
    BackendUnavailableError,
    GradientError,
    OpError,
    UnidlError,
)

__version__ = "0.1.0"

check_environment()  # an unknown UNIDL_BACKEND fails here, naming the variable
del check_environment

#: public name -> (module, attribute or None for the module itself)
_LAZY = {
    **{name: (f"unidl.{name}", None) for name in (
        "ops", "dtypes", "errors", "random", "datasets", "data", "optimizers", "activations",
        "initializers", "regularizers", "layers", "losses", "metrics", "callbacks",
        "constraints", "models", "saving", "utils", "tolerances", "tree", "pruning",
        "efficiency", "mixed_precision", "quantization")},
    "list_backends": ("unidl.backend.registry", "list_backends"),
    "grad": ("unidl.autodiff", "grad"), "value_and_grad": ("unidl.autodiff", "value_and_grad"),
    "vjp": ("unidl.autodiff", "vjp"), "stop_gradient": ("unidl.autodiff", "stop_gradient"),
    "Variable": ("unidl.variables", "Variable"),
    "Input": ("unidl.models", "Input"), "Model": ("unidl.models", "Model"),
    "Sequential": ("unidl.models", "Sequential"), "load_model": ("unidl.models", "load_model"),
}


def __getattr__(name):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'unidl' has no attribute {name!r}")
    import importlib

    module_name, attr = target
    value = importlib.import_module(module_name)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["set_backend", "use_backend", "backend_name", "current_backend", "device",
           "devices", "current_device", "UnidlError", "OpError", "BackendError",
           "BackendNotFoundError", "BackendUnavailableError", "GradientError",
           *(name for name in _LAZY if name not in ("tolerances", "tree"))]
