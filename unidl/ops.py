"""``unidl.ops``: every op of the spec, dispatched to the active backend.

Ops take and return the active backend's native tensors (``np.ndarray``, ``torch.Tensor``,
``tf.Tensor``) and accept Python scalars, lists and NumPy arrays. Each function here is
generated once, at import, from its :class:`~unidl.spec.core.OpSpec`: it looks up the
bound kernel in the thread's table and calls it. On failure it raises an
:class:`~unidl.errors.OpError` naming the op, what it expected and what it was given.

Example:
    >>> import unidl
    >>> from unidl import ops
    >>> with unidl.use_backend("numpy"):
    ...     ops.to_numpy(ops.add(ops.ones((2,)), 1.5)).tolist()
    [2.5, 2.5]
"""

from __future__ import annotations

import inspect

import numpy as _np

from unidl import dtypes as _dt
from unidl.autodiff.engine import Tracer as _Tracer
from unidl.backend.state import STATE as _STATE
from unidl.backend.state import current_backend as _current_backend
from unidl.errors import OpError as _OpError
from unidl.errors import UnidlError as _UnidlError
from unidl.spec import all_specs as _all_specs

__all__ = ["convert_to_tensor", "to_numpy", "shape", "dtype", "ndim", "size", "is_tensor"]


def _describe(value) -> str:
    try:
        be = _current_backend()
        v = getattr(value, "__unidl_tensor__", None)
        if v is not None:
            value = v()
        if value.__class__ is _Tracer:
            return f"{value.dtype}{list(value.shape)}"
        if be.is_tensor(value):
            return f"{be.dtype_of(value)}{list(be.shape_of(value))}"
        if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (int, float)):
            return "[" + ", ".join(_describe(v) for v in value) + "]"
        arr = _np.asarray(value)
        return f"{arr.dtype}{list(arr.shape)}"
    except Exception:
        return type(value).__name__


def _shape_of(value):
    be = _STATE.backend
    if be is not None and value.__class__ in be.tensor_types:
        return tuple(be.shape_of(value))  # (the common case, first)
    v = getattr(value, "__unidl_tensor__", None)
    if v is not None:
        value = v()
    if value.__class__ is _Tracer:
        return value.shape
    be = _current_backend()
    if be.is_tensor(value):
        return tuple(be.shape_of(value))
    return tuple(_np.shape(value))


def _fail(spec, exc, args):
    """Turn a backend exception from op ``spec`` into an OpError (UnidlErrors pass through)."""
    if isinstance(exc, _UnidlError):
        return exc
    given = ", ".join(
        f"{spec.param_names[i]}={_describe(args[i])}"
        for i in spec.tensor_pos + spec.tensor_list_pos
        if i < len(args) and args[i] is not None
    )
    reason = None
    if spec.shape_rule is not None:
        try:
            abstract = list(args)
            for i in spec.tensor_pos:
                if abstract[i] is not None:
                    abstract[i] = _shape_of(abstract[i])
            for i in spec.tensor_list_pos:
                abstract[i] = [_shape_of(a) for a in abstract[i]]
            spec.result_shape(abstract)
        except _OpError as shape_error:
            reason = str(shape_error)[len(spec.name) + 2:]
        except Exception:
            reason = None
    if reason is None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        reason = f"the {_current_backend().name} backend rejected the arguments ({first})"
    err = _OpError(spec.name, f"{reason}; got {given}" if given else reason)
    return err


_TEMPLATE = '''
def {name}({params}):
    try:
        return _STATE.k.{name}({call})
    except Exception as _exc:
        raise _fail(_SPECS[{name!r}], _exc, ({call},)) from None
'''

_SPECS = {}


def _generate() -> None:
    namespace = {"_STATE": _STATE, "_fail": _fail, "_SPECS": _SPECS}
    for spec in _all_specs():
        if spec.name in _SPECS:
            continue
        _SPECS[spec.name] = spec
        call = ", ".join(spec.param_names)
        src = _TEMPLATE.format(name=spec.name, params=spec.signature_source(), call=call)
        exec(src, namespace)  # noqa: S102 - generated from our own spec
        fn = namespace[spec.name]
        fn.__module__ = __name__
        fn.__qualname__ = spec.name
        fn.__doc__ = _docstring(spec)
        globals()[spec.name] = fn
        __all__.append(spec.name)


def _docstring(spec) -> str:
    doc = inspect.cleandoc(spec.doc) if spec.doc else f"The ``{spec.name}`` op."
    tail = (f"\n\nSpec: {spec.kind}; dtypes {', '.join(spec.dtypes)}; "
            f"tolerance kind '{spec.tol}'.")
    return doc + tail


# -- helpers that are not ops (no gradient, no kernel table) ------------------------------------
def convert_to_tensor(x, dtype=None):
    """``x`` (list, scalar, NumPy array or tensor) as the active backend's tensor.

    Python floats become ``float32``, Python ints ``int32``; NumPy arrays keep their dtype
    unless ``dtype`` is given.
    """
    be = _current_backend()
    if dtype is None and x.__class__ in be.tensor_types:
        return x  # (the common case, first)
    d = None if dtype is None else _dt.standardize(dtype)
    if x.__class__ is _np.ndarray and x.__class__ not in be.tensor_types:  # (a batch)
        return _convert(be, x, d)
    v = getattr(x, "__unidl_tensor__", None)
    if v is not None:
        x = v()
    if x.__class__ is _Tracer:
        return x if d is None or x.dtype == d else cast(x, d)  # noqa: F821 (generated)
    if be.is_tensor(x):
        return x if d is None or be.dtype_of(x) == d else be.cast(x, d)
    return _convert(be, x, d)


def _convert(be, x, d):
    try:
        return be.convert(x, d)
    except Exception as exc:
        raise _OpError("convert_to_tensor", f"cannot convert {type(x).__name__} "
                       f"({_describe(x)}) to a {be.name} tensor: {exc}") from None


def to_numpy(x) -> _np.ndarray:
    """``x`` as a NumPy array (copied from the device where needed)."""
    v = getattr(x, "__unidl_tensor__", None)
    if v is not None:
        x = v()
    while x.__class__ is _Tracer:
        x = x.value
    be = _current_backend()
    if be.is_tensor(x):
        return be.to_numpy(x)
    from unidl.backend.registry import _loaded

    for other in _loaded.values():
        if other.is_tensor(x):
            return other.to_numpy(x)
    return _np.asarray(x)


def is_tensor(x) -> bool:
    """Whether ``x`` is a native tensor of the active backend (or a traced one)."""
    return x.__class__ is _Tracer or _current_backend().is_tensor(x)


def shape(x) -> tuple:
    """The static shape of ``x`` as a tuple of ints."""
    be = _STATE.backend
    if be is not None and x.__class__ in be.tensor_types:
        return tuple(be.shape_of(x))
    return _shape_of(x)


def ndim(x) -> int:
    return len(_shape_of(x))


def size(x) -> int:
    return int(_np.prod(_shape_of(x), dtype=_np.int64))


def dtype(x) -> str:
    """The unidl dtype name of ``x`` (e.g. ``"float32"``)."""
    be = _STATE.backend
    if be is not None and x.__class__ in be.tensor_types:
        return be.dtype_of(x)  # (the common case, first)
    v = getattr(x, "__unidl_tensor__", None)
    if v is not None:
        x = v()
    if x.__class__ is _Tracer:
        return x.dtype
    be = _current_backend()
    if be.is_tensor(x):
        return be.dtype_of(x)
    return _dt.standardize(_np.asarray(x).dtype)


_generate()


def __getattr__(name):
    """An op declared after this module was first imported: when ``unidl.spec`` is imported
    first, its modules import this one before every op is declared; the rest are generated
    on first use."""
    from unidl.spec.core import _REGISTRY

    if name in _REGISTRY:
        _generate()
        return globals()[name]
    raise AttributeError(f"module 'unidl.ops' has no attribute {name!r}")
