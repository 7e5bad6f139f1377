"""The float64 references of the spec are independent of the NumPy kernels they judge.

The forward conformance check compares each backend's kernel with the spec's reference. A
reference that is the NumPy kernel (or wraps it, or does its arithmetic with the same helper or
the same NumPy routine) compares a function with itself: the NumPy backend can then never fail,
whatever its bug. These tests keep the two apart:

* identity: the kernel is not the reference, nor a wrapper of it (``__wrapped__``, closures,
  ``__code__``);
* structure: the functions of this project each one reaches (through globals, attributes of
  modules, closures, defaults and ``__wrapped__``) are disjoint, the reference reaches nothing in
  the NumPy plugin, and the two share no NumPy routine that computes (ufuncs, reductions,
  ``einsum``...); array construction such as ``np.asarray`` is allowed;
* mutation: a NumPy kernel made subtly wrong fails the forward check against the independent
  reference, while a reference sharing its code (the reference replaced by the mutant, as a
  copied reference is) lets it pass.
"""

from __future__ import annotations

import builtins
import contextlib
import dis
import inspect
import types

import numpy as np
import pytest

from unidl.backend.binding import bind
from unidl.backend.registry import get_backend
from unidl.spec import all_specs, get_spec
from unidl_conformance.cases import Case
from unidl_conformance.forward import run_forward

#: project code: functions from these packages are followed, others are leaves
_PROJECT = ("unidl", "unidl_numpy")
#: shared functions that only name dtypes (no arithmetic, no shapes)
_SHARED_OK_MODULES = ("unidl.dtypes",)
#: NumPy callables that only build or describe arrays, and the random source of dropout's
#: portable mask (its definition: the uniforms every backend and the reference use)
_NUMPY_OK = {"asarray", "array", "empty", "empty_like", "zeros", "zeros_like", "ones",
             "ones_like", "result_type", "ndim", "shape", "default_rng"}


#: array methods that compute: a kernel and its reference must not both use one
_ARRAY_ARITHMETIC = {"sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin",
                     "cumsum", "cumprod", "dot", "clip", "round", "all", "any", "astype", "sort",
                     "argsort", "take", "repeat", "nonzero", "searchsorted", "trace"}


def _numpy_kernels() -> dict:
    return get_backend("numpy").kernels


def _ops_with_numpy_kernels():
    kernels = _numpy_kernels()
    return [s.name for s in all_specs() if s.reference is not None and s.name in kernels]


# ---- what a function reaches -------------------------------------------------------------------
def _module_of(obj) -> str:
    return getattr(obj, "__module__", None) or ""


def _is_project(obj) -> bool:
    return _module_of(obj).split(".")[0] in _PROJECT


def _codes(code):
    """``code`` and the code objects nested in it (lambdas, comprehensions, inner defs)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _scan(fn):
    """``(globals, methods)`` of ``fn``'s code: the objects it names as globals (following
    ``module.attr.attr`` chains) and the attribute names it looks up on other objects."""
    namespace = fn.__globals__
    found, methods = [], set()
    for code in _codes(fn.__code__):
        current = None
        for ins in dis.get_instructions(code):
            if ins.opname == "LOAD_GLOBAL":
                current = namespace.get(ins.argval, getattr(builtins, ins.argval, None))
                if current is not None:
                    found.append(current)
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                if isinstance(current, types.ModuleType):
                    current = getattr(current, ins.argval, None)
                    if current is not None:
                        found.append(current)
                else:
                    methods.add(ins.argval)
                    current = None
            else:
                current = None
    return found, methods


def _children(obj, root=False):
    """The objects ``obj`` uses directly: its wrapped function, closure cells, defaults and
    globals (for a function of this project, or the root)."""
    for attr in ("__wrapped__", "pyfunc", "func"):  # wraps, np.vectorize, functools.partial
        inner = getattr(obj, attr, None)
        if callable(inner):
            yield inner
    if not isinstance(obj, types.FunctionType) or not (root or _is_project(obj)):
        return
    for cell in obj.__closure__ or ():
        with contextlib.suppress(ValueError):
            yield cell.cell_contents
    yield from obj.__defaults__ or ()
    yield from (obj.__kwdefaults__ or {}).values()
    yield from _scan(obj)[0]


def _reachable(root) -> list:
    """Every object reachable from ``root`` through :func:`_children`."""
    seen: dict[int, object] = {id(root): root}
    stack = list(_children(root, root=True))
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type)):
            continue
        seen[id(obj)] = obj
        stack.extend(_children(obj))
    return list(seen.values())


def _project_functions(objs) -> dict[int, object]:
    return {id(o): o for o in objs if isinstance(o, types.FunctionType) and _is_project(o)}


def _numpy_routines(objs) -> set[str]:
    """Names of the NumPy routines among ``objs`` that compute (not in :data:`_NUMPY_OK`)."""
    out = set()
    for o in objs:
        if isinstance(o, np.ufunc):
            out.add(o.__name__)
        elif callable(o) and _module_of(o).split(".")[0] == "numpy" \
                and getattr(o, "__name__", "") not in _NUMPY_OK:
            out.add(o.__name__)
    return out


def _array_methods(objs) -> set[str]:
    """The array methods that compute (:data:`_ARRAY_ARITHMETIC`) called by the functions
    among ``objs`` (``x.sum()``, ``x.astype(...)``: invisible to :func:`_numpy_routines`)."""
    out: set[str] = set()
    for o in objs:
        if isinstance(o, types.FunctionType):
            out |= _scan(o)[1] & _ARRAY_ARITHMETIC
    return out


def _name(obj) -> str:
    return f"{_module_of(obj)}.{getattr(obj, '__qualname__', repr(obj))}"


# ---- identity and structure --------------------------------------------------------------------
@pytest.mark.parametrize("op", _ops_with_numpy_kernels())
def test_kernel_is_not_the_reference_nor_a_wrapper_of_it(op):
    reference = get_spec(op).reference
    kernel = _numpy_kernels()[op]
    kernel_chain = [kernel, inspect.unwrap(kernel)]
    ref_chain = [reference, inspect.unwrap(reference)]
    for k in kernel_chain:
        assert all(k is not r for r in ref_chain), f"{op}: the NumPy kernel is the reference"
    codes = {id(getattr(r, "__code__", None)) for r in ref_chain} - {id(None)}
    assert not any(id(getattr(k, "__code__", None)) in codes for k in kernel_chain), \
        f"{op}: kernel and reference run the same code"
    assert all(r not in _reachable(kernel) for r in ref_chain), \
        f"{op}: the NumPy kernel calls the reference"
    assert all(k not in _reachable(reference) for k in kernel_chain), \
        f"{op}: the reference calls the NumPy kernel"


@pytest.mark.parametrize("op", _ops_with_numpy_kernels())
def test_reference_shares_no_code_with_the_numpy_kernel(op):
    kernel_objs = _reachable(_numpy_kernels()[op])
    ref_objs = _reachable(get_spec(op).reference)
    plugin = [_name(o) for o in ref_objs if _module_of(o).startswith("unidl_numpy")]
    assert not plugin, f"{op}: the reference reaches the NumPy plugin: {plugin}"
    shared = [_name(f) for key, f in _project_functions(ref_objs).items()
              if key in _project_functions(kernel_objs)
              and not _module_of(f).startswith(_SHARED_OK_MODULES)]
    assert not shared, f"{op}: reference and NumPy kernel share {shared}"
    routines = _numpy_routines(ref_objs) & _numpy_routines(kernel_objs)
    assert not routines, f"{op}: reference and NumPy kernel both compute with np.{routines}"
    methods = _array_methods(ref_objs) & _array_methods(kernel_objs)
    assert not methods, f"{op}: reference and NumPy kernel both call the array methods {methods}"


def test_spec_modules_do_not_import_backend_plugins():
    """The references' source names no backend plugin (the guard above follows calls; this
    catches an import inside a function body too)."""
    import unidl.spec as spec_pkg

    modules = {inspect.getmodule(s.reference) for s in all_specs() if s.reference is not None}
    modules |= {inspect.getmodule(spec_pkg._textbook)}
    for module in modules:
        source = inspect.getsource(module)
        for plugin in ("unidl_numpy", "unidl_torch", "unidl_tensorflow"):
            assert plugin not in source, f"{module.__name__} mentions {plugin}"


def test_numpy_kernels_do_not_use_the_reference_helpers():
    import unidl_numpy.kernels as pkg

    for family in pkg.FAMILIES:
        source = inspect.getsource(__import__(f"unidl_numpy.kernels.{family}",
                                              fromlist=["KERNELS"]))
        assert "_textbook" not in source, f"unidl_numpy.kernels.{family} uses the references' " \
                                          "helpers"
        for spec in all_specs():
            name = getattr(spec.reference, "__name__", "<lambda>")
            if name.startswith("_") and name != "<lambda>" and name.endswith("reference"):
                assert f"{name}(" not in source, f"unidl_numpy.kernels.{family} calls {name}"


def test_the_guard_sees_shared_code():
    """The structural check itself: a reference calling the kernel's NumPy routine, or a helper
    the kernel calls, is reported."""
    from unidl.spec.rules import normalize_axes

    def shared_ufunc(x):
        return np.maximum(x, 0.0)

    def shared_helper(x, axis=None):
        return normalize_axes(axis, x.ndim)

    assert "maximum" in _numpy_routines(_reachable(shared_ufunc)) & \
        _numpy_routines(_reachable(_numpy_kernels()["relu"]))
    kernel_fns = _project_functions(_reachable(_numpy_kernels()["sum"]))
    assert set(_project_functions(_reachable(shared_helper))) & set(kernel_fns)


# ---- mutation: subtly wrong NumPy kernels ------------------------------------------------------
def _flipped_conv2d(kernel):
    def conv2d(x, k, *rest):
        return kernel(x, np.ascontiguousarray(k[::-1, ::-1]), *rest)
    return conv2d


def _softmax_without_max(kernel):
    def softmax(x, axis=-1):
        e = np.exp(x)  # overflows for large logits: the max is not subtracted
        return e / np.sum(e, axis=axis, keepdims=True)
    return softmax


def _leaky_relu(kernel):
    return lambda x: np.where(x > 0, x, 1e-3 * x)


def _max_pool_missing_last_row(kernel):
    def max_pool(x, pool_size, strides, padding, data_format):
        rows = 1 if data_format == "channels_last" else 2
        shifted = x.copy()  # windows at the border read one row too early
        last = (slice(None),) * rows + (-1,)
        shifted[last] = x[(slice(None),) * rows + (-2,)]
        return kernel(shifted, pool_size, strides, padding, data_format)
    return max_pool


def _param(p, x, axes):
    return p if p.ndim == x.ndim else p.reshape([x.shape[a] if a in axes else 1
                                                 for a in range(x.ndim)])


def _layer_norm_unbiased(kernel):
    def layer_norm(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
        axes = tuple(sorted(int(a) % x.ndim for a in np.atleast_1d(axis)))
        mu = x.mean(axes, keepdims=True)
        var = x.var(axes, keepdims=True, ddof=1)  # the unbiased variance, not the biased one
        y = (x - mu) / np.sqrt(var + epsilon)
        y = y if gamma is None else y * _param(gamma, x, axes)
        return y if beta is None else y + _param(beta, x, axes)
    return layer_norm


def _argmax_last_tie(kernel):
    def argmax(x, axis=None, keepdims=False):  # the last of tied maxima, not the first
        if axis is None:
            last = x.size - 1 - np.argmax(x.reshape(-1)[::-1])
            return np.reshape(np.int64(last), (1,) * x.ndim if keepdims else ())
        rev = np.argmax(np.flip(x, axis), axis=axis, keepdims=keepdims)
        return (x.shape[axis] - 1 - rev).astype(np.int64)
    return argmax


def _maximum_dropping_nan(kernel):
    return np.fmax


def _depthwise_channel_order(kernel):
    def depthwise(x, k, strides, padding, data_format, dilation_rate):
        out = kernel(x, k, strides, padding, data_format, dilation_rate)
        ax = -1 if data_format == "channels_last" else 1
        y = np.moveaxis(out, ax, -1)
        c, m = k.shape[2], k.shape[3]  # output channel m * C + c instead of c * M + m
        y = y.reshape(y.shape[:-1] + (c, m)).swapaxes(-1, -2).reshape(y.shape)
        return np.ascontiguousarray(np.moveaxis(y, -1, ax))
    return depthwise


def _lstm_gates_swapped(kernel):
    def lstm(x, h0, c0, w, rw, bias=None):
        u = h0.shape[1]
        order = np.r_[u:2 * u, 0:u, 2 * u:4 * u]  # forget and input gates exchanged
        return kernel(x, h0, c0, w[:, order], rw[:, order], None if bias is None else bias[order])
    return lstm


MUTANTS = {
    "conv2d": _flipped_conv2d,
    "softmax": _softmax_without_max,
    "relu": _leaky_relu,
    "max_pool": _max_pool_missing_last_row,
    "layer_norm": _layer_norm_unbiased,
    "argmax": _argmax_last_tie,
    "maximum": _maximum_dropping_nan,
    "depthwise_conv2d": _depthwise_channel_order,
    "lstm": _lstm_gates_swapped,
}


@contextlib.contextmanager
def _numpy_kernel(op, fn):
    """The NumPy backend with ``fn`` as the kernel of ``op`` (the table is bound again)."""
    be = get_backend("numpy")
    original = be.kernels[op]
    be.kernels[op] = fn
    bind(be)
    try:
        yield
    finally:
        be.kernels[op] = original
        bind(be)


def _forward(op):
    return run_forward(Case("forward", "numpy", "cpu", "float64", op))


@pytest.mark.parametrize("op", sorted(MUTANTS))
def test_forward_check_catches_a_wrong_numpy_kernel(op, monkeypatch):
    spec = get_spec(op)
    assert _forward(op).status == "pass", "the real kernel passes"
    mutant = MUTANTS[op](_numpy_kernels()[op])
    with _numpy_kernel(op, mutant):
        caught = _forward(op)
        # a reference sharing the kernel's code (here: the mutant itself) cannot see the bug
        monkeypatch.setattr(spec, "reference", mutant)
        blind = _forward(op)
    assert caught.status == "fail", f"{op}: the mutant passed: {caught.message}"
    assert blind.status == "pass", f"{op}: {blind.message}"


# ---- mutation: a bug in a helper the NumPy kernels call --------------------------------------
# Before the references were written independently they called these helpers too, so a bug
# in one changed kernel and reference alike and the forward check could not see it.
def _odd_pad_first(same_pads):
    return lambda n, eff, stride: tuple(reversed(same_pads(n, eff, stride)))


def _negative_axes_from_the_front(normalize_axes):
    def wrong(axis, ndim):
        if axis is None:
            return normalize_axes(axis, ndim)
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        return normalize_axes(tuple(a if a >= 0 else -a - 1 for a in axes), ndim)
    return wrong


def _pads_swapped(pad_pairs):
    return lambda pad_width, ndim: tuple((a, b) for b, a in pad_pairs(pad_width, ndim))


SHARED_HELPER_BUGS = [
    ("unidl.spec.conv", "_same_pads", _odd_pad_first, ["conv2d", "max_pool", "avg_pool"]),
    ("unidl.spec.rules", "normalize_axes", _negative_axes_from_the_front, ["sum", "mean", "max"]),
    ("unidl.spec.shape", "pad_pairs", _pads_swapped, ["pad"]),
]


def _clear_geometry_caches():
    """Forget the memoized window geometries (they hold results of the helpers)."""
    from unidl.spec import conv

    for fn in vars(conv).values():
        for cell in getattr(fn, "__closure__", None) or ():
            cached = cell.cell_contents
            if hasattr(cached, "cache_clear"):
                cached.cache_clear()


def _patch_everywhere(monkeypatch, original, replacement):
    """Replace ``original`` by ``replacement`` in every module of unidl and its NumPy plugin
    that refers to it: the helper itself is now buggy for all its callers."""
    import sys

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in _PROJECT or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                monkeypatch.setattr(module, attr, replacement)


@pytest.mark.parametrize("module, helper, bug, ops", SHARED_HELPER_BUGS,
                         ids=[b[1] for b in SHARED_HELPER_BUGS])
def test_forward_check_catches_a_bug_in_a_shared_helper(module, helper, bug, ops, monkeypatch):
    import importlib

    original = getattr(importlib.import_module(module), helper)
    with monkeypatch.context() as m:
        _patch_everywhere(m, original, bug(original))
        _clear_geometry_caches()
        results = {op: _forward(op) for op in ops}
    _clear_geometry_caches()
    wrong = {op: r.message for op, r in results.items() if r.status != "fail"}
    assert not wrong, f"a buggy {helper} went unnoticed: {wrong}"
    assert all(_forward(op).status == "pass" for op in ops)
