"""The one dtype table and the one promotion rule of unidl.

Backends never promote on their own: the core resolves the result dtype with
:func:`result_type` and casts before a kernel runs, so ``int32 + float16`` is the same
``float16`` on NumPy, PyTorch and TensorFlow.

Rules (the same lattice JAX and Keras 3 use, written down here once):

* ``bool`` < every integer < every float.
* Integers: the wider type wins; mixing signed and unsigned widens to the signed type that
  holds both (``uint8 + int8 -> int16``); ``uint8`` with a wider signed stays signed.
* Integer with float: the float wins, whatever its width (``int64 + float16 -> float16``).
* ``float16 + bfloat16 -> float32``; otherwise the wider float wins.
* Python scalars are *weak*: ``x * 2`` keeps ``x``'s dtype; a Python float with an integer or
  bool tensor gives the default float (``float32``).

Example:
    >>> from unidl import dtypes
    >>> dtypes.result_type("int32", "float16")
    'float16'
    >>> dtypes.result_type("uint8", "int8")
    'int16'
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = [
    "DTYPES",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "DEFAULT_FLOAT",
    "DEFAULT_INT",
    "INDEX_DTYPE",
    "standardize",
    "result_type",
    "is_float",
    "is_int",
    "is_bool",
    "numpy_dtype",
]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("uint8", "int8", "int16", "int32", "int64")
DTYPES = ("bool",) + INT_DTYPES + FLOAT_DTYPES

DEFAULT_FLOAT = "float32"
#: dtype of a tensor made from Python ints (as in JAX and Keras).
DEFAULT_INT = "int32"
#: dtype of the indices returned by argmax, argsort, top_k (as in NumPy, PyTorch, TF).
INDEX_DTYPE = "int64"

_BITS = {"bool": 1, "uint8": 8, "int8": 8, "int16": 16, "int32": 32, "int64": 64,
         "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
_ALIASES = {"float": "float32", "int": "int32", "half": "float16", "double": "float64",
            "bf16": "bfloat16", "long": "int64", "bool_": "bool"}


def standardize(dtype) -> str:
    """Return the unidl name of ``dtype``.

    Accepts unidl names, NumPy dtypes, Python types and any object whose ``str`` or ``name``
    is a known dtype (``torch.float32``, ``tf.float32``).

    Raises:
        TypeError: ``dtype`` is not one of :data:`DTYPES`.
    """
    if dtype is None:
        return DEFAULT_FLOAT
    if isinstance(dtype, str):
        name = dtype
    elif dtype is float:
        return DEFAULT_FLOAT
    elif dtype is int:
        return DEFAULT_INT
    elif dtype is bool:
        return "bool"
    else:
        name = getattr(dtype, "name", None)
        if not isinstance(name, str):
            name = str(dtype)
    name = name.rsplit(".", 1)[-1]
    name = _ALIASES.get(name, name)
    if name not in _BITS:
        raise TypeError(f"unknown dtype {dtype!r}; unidl knows {', '.join(DTYPES)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_bool(dtype: str) -> bool:
    return dtype == "bool"


def _promote_pair(a: str, b: str) -> str:
    if a == b:
        return a
    if a == "bool":
        return b
    if b == "bool":
        return a
    fa, fb = is_float(a), is_float(b)
    if fa and fb:
        if {a, b} == {"float16", "bfloat16"}:
            return "float32"
        return a if _BITS[a] > _BITS[b] else b
    if fa:
        return a
    if fb:
        return b
    ua, ub = a.startswith("u"), b.startswith("u")
    if ua == ub:
        return a if _BITS[a] >= _BITS[b] else b
    unsigned, signed = (a, b) if ua else (b, a)
    if _BITS[signed] > _BITS[unsigned]:
        return signed
    return {8: "int16", 16: "int32", 32: "int64", 64: "int64"}[_BITS[unsigned]]


#: The whole table, precomputed: ``PROMOTION[(a, b)]`` is the result dtype.
PROMOTION = {(a, b): _promote_pair(a, b) for a in DTYPES for b in DTYPES}


def result_type(*dtypes) -> str:
    """The dtype that ``dtypes`` promote to under unidl's one table.

    Python scalars (``int``, ``float``, ``bool`` values, not types) are weak: they never
    widen a tensor's dtype.
    """
    strong = []
    weak = []
    for d in dtypes:
        if isinstance(d, bool):
            weak.append("bool")
        elif isinstance(d, int):
            weak.append("int")
        elif isinstance(d, float):
            weak.append("float")
        else:
            strong.append(standardize(d))
    if not strong:
        if "float" in weak:
            return DEFAULT_FLOAT
        if "int" in weak:
            return DEFAULT_INT
        return "bool"
    out = strong[0]
    for d in strong[1:]:
        out = PROMOTION[(out, d)]
    if "float" in weak and not is_float(out):
        return DEFAULT_FLOAT
    if "int" in weak and out == "bool":
        return DEFAULT_INT
    return out


@cache
def numpy_dtype(dtype: str):
    """The NumPy dtype for a unidl dtype (``bfloat16`` needs the ``ml_dtypes`` package)."""
    if dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise TypeError("bfloat16 on NumPy needs the 'ml_dtypes' package") from exc
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)
