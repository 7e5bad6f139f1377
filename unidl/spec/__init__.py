"""The op spec. Importing this package declares every op (one module per family)."""

from unidl.spec.core import (
    COMPOSITE,
    PRIMITIVE,
    OpSpec,
    Sample,
    ShapeMismatch,
    all_specs,
    composite,
    defop,
    get_spec,
)

# Each module declares its family of ops; order is the order of unidl.ops.
from unidl.spec import creation  # noqa: E402,F401  isort: skip
from unidl.spec import elementwise  # noqa: E402,F401  isort: skip
from unidl.spec import reduction  # noqa: E402,F401  isort: skip
from unidl.spec import shape  # noqa: E402,F401  isort: skip
from unidl.spec import linalg  # noqa: E402,F401  isort: skip
from unidl.spec import nn  # noqa: E402,F401  isort: skip
from unidl.spec import conv  # noqa: E402,F401  isort: skip
from unidl.spec import losses  # noqa: E402,F401  isort: skip
from unidl.spec import rnn  # noqa: E402,F401  isort: skip
from unidl.spec import gru  # noqa: E402,F401  isort: skip
from unidl.spec import image  # noqa: E402,F401  isort: skip
from unidl.spec import quant  # noqa: E402,F401  isort: skip

__all__ = ["OpSpec", "Sample", "ShapeMismatch", "defop", "composite", "get_spec", "all_specs",
           "PRIMITIVE", "COMPOSITE"]
