"""Binding a backend's kernels once into a table of prepared callables.

For each op of the spec the table holds the backend's kernel (or, for a composite without
a kernel, the spec's implementation) wrapped in the argument preparation that the one
promotion table asks for: non-native inputs (lists, scalars, NumPy arrays, Variables) are
converted, mixed dtypes are promoted, integer inputs to float-only ops are cast to the
default float. Inputs that are already native tensors of one dtype go straight through.
"""

from __future__ import annotations

from unidl import dtypes as _dt
from unidl.errors import BackendError, MissingKernelError
from unidl.spec.core import COMPOSITE

__all__ = ["bind", "Table"]


class Table:
    """A backend's bound ops, as attributes (one attribute lookup per dispatch)."""

    def __init__(self, backend_name: str):
        self._backend_name = backend_name

    def __repr__(self) -> str:
        return f"<unidl kernel table of {self._backend_name!r}>"


def bind(be) -> None:
    """Fill ``be.table`` (and ``be.missing``) from ``be.kernels`` and the spec."""
    from unidl.spec import all_specs

    table = Table(be.name)
    be.missing = []
    be.sources = {}
    for spec in all_specs():
        kernel = be.kernels.get(spec.name)
        source = "kernel"
        if kernel is None:
            if spec.kind == COMPOSITE:
                kernel, source = spec.impl, "composite"
            else:
                be.missing.append(spec.name)
                kernel, source = _missing_kernel(spec.name, be.name), "missing"
        be.sources[spec.name] = source
        setattr(table, spec.name, prepare(spec, kernel, be))
    check_grad_kernels(be)
    be.table = table
    be.traced_table = None
    be.fresh_table_hook(table)


def check_grad_kernels(be) -> None:
    """A backend's gradient kernels stand in for the spec's gradient rules of their ops, with
    the calling convention of the spec's ``grad_partial``: each must name a differentiable
    op whose spec declares a rule (the rule it is checked against), on a backend that
    uses unidl's engine.

    Raises:
        BackendError: naming the backend and the op.
    """
    from unidl.spec.core import get_spec

    for name in be.grad_kernels:
        try:
            spec = get_spec(name)
        except KeyError:
            raise BackendError(f"backend {be.name!r} registers a gradient kernel for "
                               f"{name!r}, which is not an op of the spec") from None
        if not spec.differentiable or spec.grad is None:
            raise BackendError(f"backend {be.name!r} registers a gradient kernel for "
                               f"{name!r}, whose spec declares no gradient rule")
    if be.grad_kernels and be.native_autodiff:
        raise BackendError(f"backend {be.name!r} has native autodiff: its gradient kernels "
                           f"({', '.join(be.grad_kernels)}) would never run (they are for "
                           "unidl's own engine)")


def _missing_kernel(op: str, backend: str):
    def missing(*args):
        raise MissingKernelError(f"{op}: backend {backend!r} provides no kernel for this primitive")

    return missing


_SCALARS = (int, float)  # exact classes: bool (a subclass of int) takes the generic path


def _unwrap(a):
    get = getattr(a, "__unidl_tensor__", None)
    return get() if get is not None else a


def make_converters(be):
    """Return ``(dtype_info, to_native)`` closures for backend ``be``."""
    T = frozenset(be.tensor_types)
    dtype_of = be.dtype_of

    def dtype_info(a):
        """``(dtype, strong)`` of a value in a tensor position."""
        if a.__class__ in T:
            return dtype_of(a), True
        a = _unwrap(a)
        if a.__class__ in T:
            return dtype_of(a), True
        if isinstance(a, bool):
            return "bool", False
        if isinstance(a, int):
            return a, False
        if isinstance(a, float):
            return a, False
        dt = getattr(a, "dtype", None)
        if dt is not None:
            try:
                return _dt.standardize(dt), True
            except TypeError:
                pass
        import numpy as np

        arr = np.asarray(a)
        if arr.dtype.kind == "f":
            return 0.0, False
        if arr.dtype.kind in "iu":
            return 0, False
        if arr.dtype.kind == "b":
            return "bool", False
        return _dt.standardize(arr.dtype), True

    def to_native(a, dtype):
        """``a`` as a native tensor of unidl dtype ``dtype`` (None: keep/infer)."""
        a = _unwrap(a)
        if a.__class__ in T:
            if dtype is None or dtype_of(a) == dtype:
                return a
            return be.cast(a, dtype)
        return be.convert(a, dtype)

    return dtype_info, to_native


class Natives:
    """A backend's native dtype objects, grouped (computed once per backend)."""

    def __init__(self, be):
        self.tensors = frozenset(be.tensor_types)
        self.floats = _native_set(be, _dt.FLOAT_DTYPES)
        self.ints = _native_set(be, _dt.INT_DTYPES)

    @staticmethod
    def of(be) -> Natives:
        got = be.__dict__.get("_natives")
        if got is None:
            got = be._natives = Natives(be)
        return got


def _native_set(be, names) -> frozenset:
    out = set()
    for d in names:
        try:
            out.add(be.native_dtype(d))
        except Exception:  # a backend may lack bfloat16 or float16
            pass
    return frozenset(out)


def prepare(spec, kernel, be):
    """Wrap ``kernel`` with the argument preparation ``spec`` asks for on backend ``be``:
    the most specific wrapper for the op's kind of signature (each keeps its common case,
    native tensors of one dtype, to a few checks)."""
    n = Natives.of(be)
    normalize = make_normalize(spec, be)
    tpos, lpos = spec.tensor_pos, spec.tensor_list_pos
    if "dtype" in spec.param_names:
        if not lpos and tpos == (0,):
            return _dtype_arg_op(spec, kernel, make_fast_args(spec, be, n), normalize)
        return lambda *args: kernel(*normalize(args))
    if not tpos and not lpos:
        return kernel
    if tpos == (0,):
        return _unary(spec, kernel, be, n, normalize)
    if tpos == (0, 1) and spec.promote_pos == (0, 1) and not lpos:
        return _binary(spec, kernel, be, n, normalize)
    fast_args = make_fast_args(spec, be, n)

    def general(*args):
        fast = fast_args(args)
        return kernel(*(fast if fast is not None else normalize(args)))

    return general


def make_normalize(spec, be):
    """``normalize(args)``: the generic preparation (conversion, promotion to the one result
    type, float-only ops given the default float, the ``dtype`` argument resolved)."""
    dtype_info, to_native = make_converters(be)
    fi = spec.float_inputs
    tpos, lpos, ppos = spec.tensor_pos, spec.tensor_list_pos, spec.promote_pos
    dpos = spec.param_names.index("dtype") if "dtype" in spec.param_names else -1

    def promote_target(vals):
        infos = [dtype_info(v) for v in vals if v is not None]
        target = _dt.result_type(*[d for d, _ in infos]) if infos else _dt.DEFAULT_FLOAT
        if fi and not _dt.is_float(target):
            target = _dt.DEFAULT_FLOAT
        return target

    def own_dtype(a):
        d, _ = dtype_info(a)
        return None if isinstance(d, str) and _dt.is_float(d) else _dt.DEFAULT_FLOAT

    def normalize(args):
        args = list(args)
        group = []
        for i in ppos:
            if i in lpos:
                group.extend(args[i])
            else:
                group.append(args[i])
        target = promote_target(group) if group else None
        for i in tpos:
            a = args[i]
            if a is not None:
                args[i] = to_native(a, target if i in ppos else own_dtype(a) if fi else None)
        for i in lpos:
            args[i] = [to_native(a, target if i in ppos else None) for a in args[i]]
        if dpos >= 0:
            args[dpos] = spec.result_dtype(_abstract(args, be, tpos, lpos))
        return args

    return normalize


def _abstract(args, be, tpos, lpos):
    """``args`` with tensors replaced by their dtype names (for a spec's dtype rule)."""
    abstract = list(args)
    for i in tpos:
        if abstract[i] is not None:
            abstract[i] = be.dtype_of(abstract[i])
    for i in lpos:
        abstract[i] = [be.dtype_of(a) for a in abstract[i]]
    return abstract


def make_fast_args(spec, be, n: Natives):
    """``fast_args(args)``: ``args`` ready for the kernel if that needs no promotion:
    Variables unwrapped, every tensor argument (also in tensor lists) a native tensor, one
    dtype across the promoted group (Python scalars in it converted to that dtype when the
    weak-scalar rule keeps it), float where the op needs float. Else None: the caller runs
    the generic ``normalize``."""
    T, FL = n.tensors, n.floats
    fi = spec.float_inputs
    tpos, lpos, pset = spec.tensor_pos, spec.tensor_list_pos, frozenset(spec.promote_pos)
    scalars_ok = _weak_scalar_rule(spec, n)
    convert_native, dtype_of_native = be.convert, be.dtype_of

    def fast_args(args):
        args = list(args)
        group = first = scalars = None
        for i in tpos:
            a = args[i]
            if a is None:
                continue
            if a.__class__ not in T:
                if a.__class__ in _SCALARS and i in pset:
                    scalars = (scalars or []) + [i]
                    continue
                a = args[i] = _unwrap(a)
                if a.__class__ not in T:
                    return None
            if fi and a.dtype not in FL:
                return None
            if i in pset:
                if group is None:
                    group, first = a.dtype, a
                elif a.dtype != group:
                    return None
        for i in lpos:
            seq = args[i] = list(args[i])
            for k, a in enumerate(seq):
                if a.__class__ not in T:
                    a = seq[k] = _unwrap(a)
                    if a.__class__ not in T:
                        return None
                if fi and a.dtype not in FL:
                    return None
                if i in pset:
                    if group is None:
                        group, first = a.dtype, a
                    elif a.dtype != group:
                        return None
        if scalars:
            if group is None or not all(scalars_ok(group, args[i]) for i in scalars):
                return None
            name = dtype_of_native(first)
            for i in scalars:
                args[i] = convert_native(args[i], name)
        return args

    return fast_args


def _weak_scalar_rule(spec, n: Natives):
    """``keeps(native_dtype, scalar)``: whether a tensor of ``native_dtype`` with a weak
    Python ``scalar`` promotes to that dtype (and it suits the op): floats with any number,
    ints with ints."""
    FL, INTS, fi = n.floats, n.ints, spec.float_inputs

    def keeps(d, scalar):
        return d in FL or (not fi and scalar.__class__ is int and d in INTS)

    return keeps


def _dtype_arg_op(spec, kernel, fast_args, normalize):
    """Ops of one tensor and a ``dtype`` argument (``cast``, ``ones_like``, ``one_hot``…):
    the result dtype is found once per (input dtype, ``dtype`` argument) by the generic path
    and remembered. The cache stays small: the dtype rules of these ops read nothing else
    (``tests/test_binding.py`` checks it)."""
    dpos = spec.param_names.index("dtype")
    result_dtypes: dict = {}

    def with_dtype(*args):
        fast = fast_args(args)
        if fast is not None:
            try:
                fast[dpos] = result_dtypes[(fast[0].dtype, fast[dpos])]
                return kernel(*fast)
            except (KeyError, TypeError):
                pass
        full = normalize(args)
        if fast is not None:
            try:
                result_dtypes[(fast[0].dtype, fast[dpos])] = full[dpos]
            except TypeError:  # an unhashable dtype argument: not remembered
                pass
        return kernel(*full)

    with_dtype.result_dtypes = result_dtypes  # (inspected by the tests)
    return with_dtype


def _unary(spec, kernel, be, n: Natives, normalize):
    """One tensor, in first position: native tensors go straight through (float-only ops
    also need a float dtype)."""
    T, FL = n.tensors, n.floats
    if spec.float_inputs:
        def unary_float(x, *rest):
            if x.__class__ not in T:
                x = _unwrap(x)
            if x.__class__ not in T or x.dtype not in FL:
                x = normalize((x,) + rest)[0]
            return kernel(x, *rest)

        return unary_float
    _, to_native = make_converters(be)

    def unary(x, *rest):
        if x.__class__ not in T:
            x = to_native(x, None)
        return kernel(x, *rest)

    return unary


def _binary(spec, kernel, be, n: Natives, normalize):
    """Two promoted tensors first (``add``, ``matmul``…): two native tensors of one dtype,
    or one with a Python scalar the weak rule converts to its dtype, go straight through."""
    T, FL, fi = n.tensors, n.floats, spec.float_inputs
    keeps = _weak_scalar_rule(spec, n)
    convert, dtype_of = be.convert, be.dtype_of

    def binary(x, y, *rest):
        if x.__class__ not in T:
            x = _unwrap(x)
        if y.__class__ not in T:
            y = _unwrap(y)
        if x.__class__ in T:
            if y.__class__ in T:
                if x.dtype == y.dtype and (not fi or x.dtype in FL):
                    return kernel(x, y, *rest)
            elif y.__class__ in _SCALARS and keeps(x.dtype, y):
                return kernel(x, convert(y, dtype_of(x)), *rest)
        elif x.__class__ in _SCALARS and y.__class__ in T and keeps(y.dtype, x):
            return kernel(convert(x, dtype_of(y)), y, *rest)
        x, y = normalize((x, y) + rest)[:2]
        return kernel(x, y, *rest)

    return binary
