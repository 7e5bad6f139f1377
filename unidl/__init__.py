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

from unidl import dtypes, errors
from unidl.backend.registry import list_backends
from unidl.backend.state import (
    backend_name,
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

from unidl import ops  # noqa: E402  isort: skip  (generated from the spec)
from unidl.backend.state import check_environment as _check_environment  # noqa: E402

_check_environment()  # an unknown UNIDL_BACKEND fails here, naming the variable

__version__ = "0.1.0"

__all__ = [
    "ops",
    "dtypes",
    "errors",
    "set_backend",
    "use_backend",
    "backend_name",
    "current_backend",
    "list_backends",
    "device",
    "devices",
    "current_device",
    "UnidlError",
    "OpError",
    "BackendError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "GradientError",
]

from unidl.autodiff import grad, stop_gradient, value_and_grad, vjp  # noqa: E402

# The rest of the public API: none of these imports a framework.
from unidl import random  # noqa: E402  isort: skip
from unidl import datasets  # noqa: E402  isort: skip
from unidl import data  # noqa: E402  isort: skip
from unidl.variables import Variable  # noqa: E402  isort: skip
from unidl import optimizers  # noqa: E402  isort: skip
from unidl import activations, initializers, regularizers  # noqa: E402  isort: skip
from unidl import layers, losses, metrics, callbacks  # noqa: E402  isort: skip
from unidl import constraints  # noqa: E402  isort: skip
from unidl import models, saving  # noqa: E402  isort: skip
from unidl.models import Input, Model, Sequential, load_model  # noqa: E402  isort: skip

__all__ += ["grad", "value_and_grad", "vjp", "stop_gradient", "random", "datasets", "data",
            "Variable", "optimizers", "activations", "initializers", "regularizers", "layers",
            "losses", "metrics", "callbacks", "models", "Input", "Model", "Sequential",
            "constraints", "saving", "load_model"]
