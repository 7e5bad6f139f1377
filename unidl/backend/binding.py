"""Binding a backend's kernels once into a table of prepared callables.

For each op of the spec the table holds the backend's kernel (or, for a composite without
a kernel, the spec's implementation) wrapped in the argument preparation that the one
promotion table asks for: non-native inputs (lists, scalars, NumPy arrays, Variables) are
converted, mixed dtypes are promoted, integer inputs to float-only ops are cast to the
default float. Inputs that are already native tensors of one dtype go straight through.
"""

from __future__ import annotations

from unidl import dtypes as _dt
from unidl.errors import MissingKernelError
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
    be.table = table
    be.traced_table = None
    be.fresh_table_hook(table)


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


def prepare(spec, kernel, be):
    """Wrap ``kernel`` with the argument preparation ``spec`` asks for on backend ``be``."""
    T = frozenset(be.tensor_types)
    float_natives = set()
    for d in _dt.FLOAT_DTYPES:
        try:
            float_natives.add(be.native_dtype(d))
        except Exception:  # a backend may lack bfloat16 or float16
            pass
    FL = frozenset(float_natives)
    dtype_info, to_native = make_converters(be)
    fi = spec.float_inputs
    tpos, lpos, ppos = spec.tensor_pos, spec.tensor_list_pos, spec.promote_pos
    has_dtype = "dtype" in spec.param_names
    dpos = spec.param_names.index("dtype") if has_dtype else -1

    def promote_target(vals):
        infos = [dtype_info(v) for v in vals if v is not None]
        target = _dt.result_type(*[d for d, _ in infos]) if infos else _dt.DEFAULT_FLOAT
        if fi and not _dt.is_float(target):
            target = _dt.DEFAULT_FLOAT
        return target

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
            if a is None:
                continue
            if i in ppos:
                args[i] = to_native(a, target)
            elif fi:
                d, _ = dtype_info(a)
                args[i] = to_native(a, None if isinstance(d, str) and _dt.is_float(d)
                                    else _dt.DEFAULT_FLOAT)
            else:
                args[i] = to_native(a, None)
        for i in lpos:
            seq = args[i]
            args[i] = [to_native(a, target if i in ppos else None) for a in seq]
        if has_dtype:
            abstract = list(args)
            for i in tpos:
                if abstract[i] is not None:
                    abstract[i] = be.dtype_of(abstract[i])
            for i in lpos:
                abstract[i] = [be.dtype_of(a) for a in abstract[i]]
            abstract[dpos] = args[dpos]
            args[dpos] = spec.result_dtype(abstract)
        return args

    pset = frozenset(ppos)
    int_natives = set()
    for d in _dt.INT_DTYPES:
        try:
            int_natives.add(be.native_dtype(d))
        except Exception:
            pass
    INTS = frozenset(int_natives)

    convert_native, dtype_of_native = be.convert, be.dtype_of

    def fast_args(args):
        """``args`` ready for the kernel if that needs no promotion: Variables unwrapped, every
        tensor argument (also in tensor lists) a native tensor, one dtype across the promoted
        group (Python scalars in it converted to that dtype when the weak-scalar rule keeps
        it), float where the op needs float. Else None: the caller runs :func:`normalize`."""
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
                a = _unwrap(a)
                if a.__class__ not in T:
                    return None
                args[i] = a
            d = a.dtype
            if fi and d not in FL:
                return None
            if i in pset:
                if group is None:
                    group, first = d, a
                elif d != group:
                    return None
        for i in lpos:
            seq = list(args[i])
            for k, a in enumerate(seq):
                if a.__class__ not in T:
                    a = seq[k] = _unwrap(a)
                    if a.__class__ not in T:
                        return None
                d = a.dtype
                if fi and d not in FL:
                    return None
                if i in pset:
                    if group is None:
                        group, first = d, a
                    elif d != group:
                        return None
            args[i] = seq
        if scalars:
            if group is None:
                return None
            for i in scalars:
                if not (group in FL or (not fi and args[i].__class__ is int and group in INTS)):
                    return None
            name = dtype_of_native(first)
            for i in scalars:
                args[i] = convert_native(args[i], name)
        return args

    if has_dtype and not lpos and tpos == (0,):
        # ops taking a ``dtype`` argument (cast, ones_like, ...): the result dtype depends
        # only on the input's dtype and the other arguments, so it is computed once per
        # combination by the generic path and remembered
        result_dtypes = {}

        def with_dtype(*args):
            fast = fast_args(args)
            if fast is not None:
                try:
                    key = (fast[0].dtype,) + tuple(fast[1:])
                    fast[dpos] = result_dtypes[key]
                    return kernel(*fast)
                except (KeyError, TypeError):
                    pass
            full = normalize(args)
            if fast is not None:
                try:
                    result_dtypes[(fast[0].dtype,) + tuple(fast[1:])] = full[dpos]
                except TypeError:  # an unhashable argument (a list): not remembered
                    pass
            return kernel(*full)

        return with_dtype

    if has_dtype:
        def generic(*args):
            return kernel(*normalize(args))

        return generic

    if not tpos and not lpos:
        return kernel

    if len(tpos) == 1 and tpos[0] == 0:
        if fi:
            def unary_float(x, *rest):
                if x.__class__ not in T:
                    x = _unwrap(x)
                if x.__class__ not in T or x.dtype not in FL:
                    x = normalize((x,) + rest)[0]
                return kernel(x, *rest)

            return unary_float

        def unary(x, *rest):
            if x.__class__ not in T:
                x = to_native(x, None)
            return kernel(x, *rest)

        return unary

    if tpos == (0, 1) and ppos == (0, 1):
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
                elif y.__class__ in _SCALARS and _weak_keeps(x.dtype, y):
                    # a Python scalar with a tensor that keeps its dtype under the weak
                    # promotion rule: the scalar is converted to the tensor's dtype
                    return kernel(x, convert(y, dtype_of(x)), *rest)
            elif x.__class__ in _SCALARS and y.__class__ in T and _weak_keeps(y.dtype, x):
                return kernel(convert(x, dtype_of(y)), y, *rest)
            x, y = normalize((x, y) + rest)[:2]
            return kernel(x, y, *rest)

        def _weak_keeps(d, scalar):
            """Whether a tensor of native dtype ``d`` with a weak Python ``scalar`` promotes
            to ``d`` (and ``d`` suits the op): floats with any number, ints with ints."""
            if d in FL:
                return True
            return not fi and scalar.__class__ is int and d in INTS

        return binary

    def general(*args):
        fast = fast_args(args)
        return kernel(*(fast if fast is not None else normalize(args)))

    return general
