"""The op spec: every op of unidl is declared here once, with all it needs next to each other.

An :class:`OpSpec` carries an op's signature, which arguments are tensors, its dtype and
shape rules, its float64 NumPy reference, its gradient rule, the sample inputs the
conformance suite feeds it, the kind of tolerance it is judged by, and room for per-format
export rules. Backends supply *kernels* for the primitives; a composite's implementation is
written once here from other unidl ops, and a backend may still supply a faster kernel.

Example:
    >>> from unidl.spec import get_spec
    >>> spec = get_spec("add")
    >>> spec.kind, spec.tensor_names
    ('primitive', ('x', 'y'))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unidl import dtypes as _dt
from unidl.errors import OpError

__all__ = [
    "OpSpec",
    "Sample",
    "defop",
    "composite",
    "get_spec",
    "all_specs",
    "PRIMITIVE",
    "COMPOSITE",
    "ShapeMismatch",
]

PRIMITIVE = "primitive"
COMPOSITE = "composite"

_REGISTRY: dict[str, OpSpec] = {}


class ShapeMismatch(Exception):
    """Raised by a shape rule with a message saying what it expected."""


@dataclass
class Sample:
    """One sample call of an op, for the conformance suite.

    ``args`` holds NumPy float64/int64/bool arrays (or Python values) in the op's positional
    order; the suite casts the arrays in ``tensor`` positions to the dtype under test.

    Attributes:
        args: positional arguments (canonical order).
        name: a short label shown in reports.
        grad: whether this sample is used for gradient checks.
        keep: positions never cast to the dtype under test (integer indices, labels).
    """

    args: tuple
    name: str = ""
    grad: bool = True
    keep: tuple[int, ...] = ()


@dataclass
class OpSpec:
    """Everything unidl knows about one op. See the module docstring.

    The gradient lives here, and only here: ``grad(g, out, *args)`` returns one cotangent
    per tensor input (written in unidl ops, so it is differentiable again);
    ``grad_partial(slots, g, out, *args)``, optional, computes only the cotangents of the
    inputs in ``slots`` (the others None; None for the whole result to fall back on
    ``grad``) for the common case where not every input is differentiated. A backend that
    uses unidl's engine may register a native gradient kernel for an op in
    ``Backend.grad_kernels``, with ``grad_partial``'s calling convention; binding checks
    that the op declares a rule, and the conformance suite's gradient check compares the
    kernel with this rule.
    """

    name: str
    signature: inspect.Signature
    kind: str
    tensor_names: tuple[str, ...]
    tensor_list_names: tuple[str, ...] = ()
    promote_names: tuple[str, ...] = ()
    float_inputs: bool = False
    dtype_rule: Any = "same"
    shape_rule: Callable | None = None
    reference: Callable | None = None
    impl: Callable | None = None
    grad: Callable | None = None
    grad_partial: Callable | None = None
    differentiable: bool = True
    samples: Callable | None = None
    dtypes: tuple[str, ...] = _dt.FLOAT_DTYPES
    tol: str = "elementwise"
    doc: str = ""
    export: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        params = list(self.signature.parameters)
        self.param_names = tuple(params)
        self.tensor_pos = tuple(params.index(n) for n in self.tensor_names)
        self.tensor_list_pos = tuple(params.index(n) for n in self.tensor_list_names)
        self.promote_pos = tuple(params.index(n) for n in self.promote_names)
        self.varargs = any(
            p.kind == inspect.Parameter.VAR_POSITIONAL for p in self.signature.parameters.values()
        )

    # -- rules ----------------------------------------------------------------------------
    def result_dtype(self, args: Sequence) -> str | tuple:
        """The output dtype for canonical ``args`` whose tensors are given as dtype names."""
        rule = self.dtype_rule
        if callable(rule):
            return rule(*args)
        promoted = [args[i] for i in self.promote_pos if args[i] is not None]
        for i in self.tensor_list_pos:
            if i in self.promote_pos:
                promoted = list(args[i])
        base = _dt.result_type(*promoted) if promoted else (
            args[self.tensor_pos[0]] if self.tensor_pos else _dt.DEFAULT_FLOAT
        )
        if rule == "same":
            if self.float_inputs and not _dt.is_float(base):
                return _dt.DEFAULT_FLOAT
            return base
        if rule == "bool":
            return "bool"
        if rule == "index":
            return _dt.INDEX_DTYPE
        if rule == "dtype_arg":
            d = args[self.param_names.index("dtype")]
            return _dt.standardize(d) if d is not None else _dt.DEFAULT_FLOAT
        raise ValueError(f"{self.name}: unknown dtype rule {rule!r}")

    def result_shape(self, args: Sequence):
        """The output shape for canonical ``args`` whose tensors are given as shape tuples.

        Raises:
            OpError: the shapes are not valid for this op.
        """
        if self.shape_rule is None:
            raise OpError(self.name, "has no shape rule")
        try:
            return self.shape_rule(*args)
        except ShapeMismatch as exc:
            raise OpError(self.name, str(exc)) from None

    def bind_args(self, args, kwargs) -> tuple:
        """Canonical positional arguments (defaults filled in) for a call ``(*args, **kwargs)``."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        out = []
        for name, p in self.signature.parameters.items():
            v = bound.arguments[name]
            out.append(tuple(v) if p.kind == inspect.Parameter.VAR_POSITIONAL else v)
        return tuple(out)

    def signature_source(self) -> str:
        return str(self.signature)[1:-1]


def _parse_signature(sig: str) -> inspect.Signature:
    namespace: dict[str, Any] = {}
    exec(f"def _f({sig}): pass", {}, namespace)  # noqa: S102 - trusted, from our own spec
    return inspect.signature(namespace["_f"])


def _names(value) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def defop(
    name: str,
    signature: str,
    *,
    tensors="x",
    tensor_lists=(),
    promote=None,
    kind: str = PRIMITIVE,
    impl: Callable | None = None,
    **fields,
) -> OpSpec:
    """Declare an op and register it. Returns the :class:`OpSpec`.

    Args:
        name: the op's public name in ``unidl.ops``.
        signature: its Python parameter list, e.g. ``"x, axis=None, keepdims=False"``.
        tensors: names of tensor parameters (converted to the backend's tensors).
        tensor_lists: names of parameters holding a sequence of tensors.
        promote: names promoted to one dtype (default: every tensor parameter).
        kind: ``"primitive"`` (each backend supplies a kernel) or ``"composite"``.
        impl: for a composite, its implementation from other unidl ops.
        **fields: any other :class:`OpSpec` field (``reference``, ``grad``, ``shape_rule``…).
    """
    if name in _REGISTRY:
        raise ValueError(f"op {name!r} is declared twice")
    tensors = _names(tensors)
    tensor_lists = _names(tensor_lists)
    promote = tensors + tensor_lists if promote is None else _names(promote)
    spec = OpSpec(
        name=name,
        signature=_parse_signature(signature),
        kind=kind,
        tensor_names=tensors,
        tensor_list_names=tensor_lists,
        promote_names=promote,
        impl=impl,
        **fields,
    )
    if kind == COMPOSITE and impl is None:
        raise ValueError(f"composite op {name!r} needs an implementation")
    _REGISTRY[name] = spec
    return spec


def composite(name: str, signature: str, **kwargs) -> Callable[[Callable], Callable]:
    """Decorator form of :func:`defop` for a composite op; the function is its ``impl``."""

    def deco(fn: Callable) -> Callable:
        defop(name, signature, kind=COMPOSITE, impl=fn, doc=kwargs.pop("doc", fn.__doc__ or ""),
              **kwargs)
        return fn

    return deco


def get_spec(name: str) -> OpSpec:
    """The spec of the op called ``name``."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} in the unidl spec") from None


def all_specs() -> list[OpSpec]:
    """Every declared op, in declaration order."""
    _load_all()
    return list(_REGISTRY.values())


def _load_all() -> None:
    import unidl.spec  # noqa: F401  (importing the package declares every op)


def reference_float64(spec: OpSpec, args: tuple):
    """Run the float64 NumPy reference on ``args`` (floating arrays upcast to float64)."""
    conv = []
    for i, a in enumerate(args):
        if i in spec.tensor_pos and isinstance(a, np.ndarray) and a.dtype.kind == "f":
            a = a.astype(np.float64)
        elif i in spec.tensor_list_pos:
            a = [x.astype(np.float64) if isinstance(x, np.ndarray) and x.dtype.kind == "f" else x
                 for x in a]
        conv.append(a)
    return spec.reference(*conv)
