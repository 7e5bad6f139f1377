"""Creation ops: tensors made from a shape and a value, ranges, identity matrices, casts.

New tensors go on the current device (``unidl.device``). Dtype rules:

* ``zeros``, ``ones``, ``eye``, ``linspace``: ``dtype`` or the default float (``float32``).
* ``full``: ``dtype``, else inferred from ``fill_value`` (Python ``bool`` -> ``bool``,
  ``int`` -> ``int32``, ``float`` -> ``float32``).
* ``zeros_like``, ``ones_like``, ``full_like``: ``dtype`` or the dtype of ``x``.
* ``arange``: ``dtype``, else ``int32`` when ``start``, ``stop`` and ``step`` are all
  integers, otherwise ``float32``.

None of the creation ops is differentiable (their values do not depend on tensor inputs);
``cast`` is (its gradient casts back), and ``stop_gradient`` is the identity whose gradient
is cut (the autodiff engine treats it specially).
"""

from __future__ import annotations

import math

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.export.rules import OnnxOp
from unidl.spec import _textbook as T
from unidl.spec.core import Sample, ShapeMismatch, defop
from unidl.spec.rules import same_shape

ALL = _dt.DTYPES
NUMERIC = ALL[1:]
FLOATS = _dt.FLOAT_DTYPES
INTS = _dt.INT_DTYPES


# ---- helpers ----------------------------------------------------------------------------
def _as_shape(shape) -> tuple:
    """``shape`` (an int or a sequence of ints) as a tuple; raises ShapeMismatch if invalid."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        out = tuple(int(d) for d in shape)
    except TypeError:
        raise ShapeMismatch(f"expected a shape (an int or a sequence of ints), got {shape!r}"
                            ) from None
    if any(d < 0 for d in out):
        raise ShapeMismatch(f"expected non-negative dimensions, got shape {out}")
    return out


def _ref_dtype(dtype):
    """NumPy dtype a reference result is given in: float64 for floats, else the dtype."""
    dtype = _dt.standardize(dtype)
    return np.float64 if _dt.is_float(dtype) else np.dtype(dtype)


def _is_int_scalar(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _scalar_dtype(value) -> str:
    """The dtype a fill value gives when no dtype is asked for."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, int):  # Python scalars are weak: the default dtypes
        return _dt.DEFAULT_INT
    if isinstance(value, float):
        return _dt.DEFAULT_FLOAT
    dt = getattr(value, "dtype", None)
    if dt is not None:
        try:
            return _dt.standardize(dt)
        except TypeError:
            pass
    kind = np.asarray(value).dtype.kind
    return {"b": "bool", "i": _dt.DEFAULT_INT, "u": _dt.DEFAULT_INT}.get(kind, _dt.DEFAULT_FLOAT)


def _std_or(dtype, default):
    return _dt.standardize(dtype) if dtype is not None else default


# ---- float64 references: filled element by element (see unidl/spec/_textbook.py) ---------
def _converted(v, dtype):
    """Python scalar ``v`` converted as ``cast`` defines: to float; to an integer dtype by
    truncation toward zero (wrapping around its range); to bool as ``v != 0``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return float(v)
    if dtype.kind == "b":
        return v != 0
    return T.wrap(math.trunc(v), dtype)


def _filled(shape, value, dtype):
    """An array of ``shape`` whose every element is ``value`` converted to ``dtype``."""
    shape = _as_shape(shape)
    return T.finish([_converted(value, dtype)] * math.prod(shape), shape, dtype)


def arange_length(start, stop, step) -> int:
    """Number of elements of ``arange(start, stop, step)`` (``stop=None``: ``range(start)``)."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ShapeMismatch("expected a nonzero step, got step=0")
    return max(0, int(math.ceil((stop - start) / step)))


def _no_grad_samples(make):
    """Mark every sample of a creation op as not for gradient checks."""

    def gen(dtype, rng):
        out = make(dtype, rng)
        for s in out:
            s.grad = False
        return out

    return gen


# ---- zeros / ones / full ----------------------------------------------------------------
def _shape_samples(dtype, rng):
    out = [Sample(((2, 3), dtype), name="2x3"), Sample(((), dtype), name="scalar"),
           Sample((4, dtype), name="int_shape"), Sample(((0, 3), dtype), name="empty"),
           Sample(([2, 1, 3], dtype), name="list_shape")]
    if dtype == _dt.DEFAULT_FLOAT:
        out.append(Sample(((3,), None), name="default_dtype"))
    return out


# Export: an op without tensor arguments becomes a constant in ONNX (its reference); a shape
# holding the batch size (``zeros((batch, units))``, an RNN's initial state) is rebuilt from
# a batch-shaped tensor by ``b.filled`` (see unidl/export/graph.py), keeping the batch dynamic.
def _zeros_batch(b, shape, dtype=None):
    return b.filled(shape, 0, dtype or _dt.DEFAULT_FLOAT)


def _ones_batch(b, shape, dtype=None):
    return b.filled(shape, 1, dtype or _dt.DEFAULT_FLOAT)


defop("zeros", "shape, dtype=None", tensors=(), dtype_rule="dtype_arg",
      shape_rule=lambda shape, dtype=None: _as_shape(shape),
      reference=lambda shape, dtype: _filled(shape, 0, _ref_dtype(dtype)),
      differentiable=False, samples=_no_grad_samples(_shape_samples), dtypes=ALL, tol="exact",
      export={"batch": _zeros_batch},
      doc="A tensor of ``shape`` filled with zeros (``dtype`` default ``float32``).")

defop("ones", "shape, dtype=None", tensors=(), dtype_rule="dtype_arg",
      shape_rule=lambda shape, dtype=None: _as_shape(shape),
      reference=lambda shape, dtype: _filled(shape, 1, _ref_dtype(dtype)),
      differentiable=False, samples=_no_grad_samples(_shape_samples), dtypes=ALL, tol="exact",
      export={"batch": _ones_batch},
      doc="A tensor of ``shape`` filled with ones (``dtype`` default ``float32``).")


def _fill_value_for(dtype: str, k: int = 0):
    """A fill value exactly representable in ``dtype``."""
    if dtype == "bool":
        return (True, False)[k % 2]
    if _dt.is_int(dtype):
        return (7, 3)[k % 2] if dtype.startswith("u") else (-5, 7)[k % 2]
    return (2.5, -0.75)[k % 2]


def _full_samples(dtype, rng):
    v0, v1 = _fill_value_for(dtype, 0), _fill_value_for(dtype, 1)
    out = [Sample(((2, 3), v0, dtype), name="2x3"), Sample(((), v1, dtype), name="scalar"),
           Sample(((0, 4), v0, dtype), name="empty"), Sample((5, v1, dtype), name="int_shape")]
    if dtype == _scalar_dtype(v0):  # the dtype inferred from the Python fill value
        out.append(Sample(((3, 2), v0, None), name="inferred"))
    if _dt.is_float(dtype):
        out.append(Sample(((2, 2), float("nan"), dtype), name="nan"))
        out.append(Sample(((2,), float("-inf"), dtype), name="inf"))
    return out


def _full_reference(shape, fill_value, dtype):
    """``fill_value`` converted to the dtype, in every element."""
    d = _scalar_dtype(fill_value) if dtype is None else dtype
    return _filled(shape, fill_value, _ref_dtype(d))


def _full_batch(b, shape, fill_value, dtype=None):
    return b.filled(shape, fill_value, _std_or(dtype, _scalar_dtype(fill_value)))


defop("full", "shape, fill_value, dtype=None", tensors=(),
      dtype_rule=lambda shape, fill_value, dtype=None: _std_or(dtype, _scalar_dtype(fill_value)),
      shape_rule=lambda shape, fill_value, dtype=None: _as_shape(shape),
      reference=_full_reference, differentiable=False, samples=_no_grad_samples(_full_samples),
      dtypes=ALL, tol="exact", export={"batch": _full_batch},
      doc="""A tensor of ``shape`` filled with ``fill_value``.

      Without ``dtype`` the dtype follows the Python value: ``bool`` -> ``bool``, ``int`` ->
      ``int32``, ``float`` -> ``float32``. With ``dtype``, the value is converted to it as
      ``cast`` would (floats truncate toward zero for integer dtypes).""")


# ---- *_like -----------------------------------------------------------------------------
def _like_samples(*fill):
    def gen(dtype, rng):
        from unidl.spec import samples as S

        f = [_fill_value_for(dtype)] if fill else []
        out = [
            Sample((S.rand(rng, (3, 4), dtype), *f, None), name="3x4"),
            Sample((S.rand(rng, (), dtype), *f, None), name="scalar"),
            Sample((S.rand(rng, (2, 0), dtype), *f, None), name="empty"),
        ]
        other = "int32" if dtype != "int32" else "float32"
        f2 = [_fill_value_for(other)] if fill else []
        out.append(Sample((S.rand(rng, (2, 3), dtype), *f2, other), name=f"as_{other}"))
        return out

    return gen


def _like_dtype(x, *rest):
    return _std_or(rest[-1], x)


def _filled_like_onnx(fill):
    """ONNX ``ConstantOfShape(Shape(x))`` filled with ``fill`` (None: the op's fill_value)."""
    def convert(g, x, *rest):
        value = fill if fill is not None else rest[0]
        return g.op("ConstantOfShape", [g.op("Shape", [x])],
                    value=g.tensor_attr(value, g.out_dtype()))

    return OnnxOp("ConstantOfShape", convert)


defop("zeros_like", "x, dtype=None", dtype_rule=_like_dtype, shape_rule=same_shape,
      reference=lambda x, dtype: _filled(np.shape(x), 0, _ref_dtype(_std_or(dtype, x.dtype))),
      differentiable=False, samples=_no_grad_samples(_like_samples()), dtypes=ALL, tol="exact",
      export={"onnx": _filled_like_onnx(0)},
      doc="Zeros with the shape of ``x`` (dtype: ``dtype`` or that of ``x``).")

defop("ones_like", "x, dtype=None", dtype_rule=_like_dtype, shape_rule=same_shape,
      reference=lambda x, dtype: _filled(np.shape(x), 1, _ref_dtype(_std_or(dtype, x.dtype))),
      differentiable=False, samples=_no_grad_samples(_like_samples()), dtypes=ALL, tol="exact",
      export={"onnx": _filled_like_onnx(1)},
      doc="Ones with the shape of ``x`` (dtype: ``dtype`` or that of ``x``).")


def _full_like_reference(x, fill_value, dtype):
    """``fill_value`` converted to the dtype, in every element of ``x``'s shape."""
    d = _std_or(dtype, x.dtype)
    return _filled(np.shape(x), fill_value, _ref_dtype(d))


defop("full_like", "x, fill_value, dtype=None", dtype_rule=_like_dtype, shape_rule=same_shape,
      reference=_full_like_reference, differentiable=False,
      samples=_no_grad_samples(_like_samples(True)), dtypes=ALL, tol="exact",
      export={"onnx": _filled_like_onnx(None)},
      doc="``fill_value`` in the shape of ``x`` (dtype: ``dtype`` or that of ``x``).")


# ---- ranges -----------------------------------------------------------------------------
def _arange_dtype(start, stop=None, step=1, dtype=None):
    if dtype is not None:
        return _dt.standardize(dtype)
    vals = [v for v in (start, stop, step) if v is not None]
    return _dt.DEFAULT_INT if all(_is_int_scalar(v) for v in vals) else _dt.DEFAULT_FLOAT


def _arange_reference(start, stop, step, dtype):
    """``start + i * step`` for ``i < ceil((stop - start) / step)``, then converted."""
    if stop is None:
        start, stop = 0, start
    d = _ref_dtype(_arange_dtype(start, stop, step, dtype))
    n = max(0, math.ceil((stop - start) / step))
    return T.finish([_converted(start + i * step, d) for i in range(n)], (n,), d)


def _arange_samples(dtype, rng):
    unsigned = dtype.startswith("u")
    out = [Sample((5, None, 1, dtype), name="stop_only"),
           Sample((2, 11, 3, dtype), name="step3"),
           Sample((3, 3, 1, dtype), name="empty"),
           Sample((10, 2, 1, dtype), name="empty_reversed")]
    if not unsigned:
        out.append(Sample((4, -5, -2, dtype), name="negative_step"))
    if _dt.is_float(dtype):
        out.append(Sample((-1.5, 2.0, 0.5, dtype), name="float_step"))
        out.append(Sample((0.0, 1.0, 0.125, dtype), name="fraction"))
    if dtype == "int32":
        out.append(Sample((1, 7, 2, None), name="inferred_int"))
    if dtype == "float32":
        out.append(Sample((0, 2.5, 0.5, None), name="inferred_float"))
    return out


defop("arange", "start, stop=None, step=1, dtype=None", tensors=(), dtype_rule=_arange_dtype,
      shape_rule=lambda start, stop=None, step=1, dtype=None: (arange_length(start, stop, step),),
      reference=_arange_reference, differentiable=False,
      samples=_no_grad_samples(_arange_samples), dtypes=NUMERIC, tol="elementwise",
      doc="""Evenly spaced values in ``[start, stop)``; ``arange(n)`` is ``0 .. n-1``.

      The length is ``ceil((stop - start) / step)`` (0 if negative); values are
      ``start + i * step`` computed in 64 bits and then converted to the dtype (``int32`` if
      every argument is an int, else ``float32``, unless ``dtype`` is given).""")


def _linspace_reference(start, stop, num, endpoint, dtype):
    """``start + i * (stop - start) / div`` (``div``: ``num - 1`` with the endpoint, which is
    ``stop`` exactly, else ``num``)."""
    num = int(num)
    div = num - 1 if endpoint else num
    values = [start + i * (stop - start) / div for i in range(num)] if div else [start] * num
    if endpoint and num > 1:
        values[-1] = stop
    d = _ref_dtype(dtype)
    return T.finish([_converted(v, d) for v in values], (num,), d)


def _linspace_samples(dtype, rng):
    return [Sample((0.0, 1.0, 5, True, dtype), name="0..1"),
            Sample((-2.0, 3.0, 7, False, dtype), name="no_endpoint"),
            Sample((1.0, -1.0, 4, True, dtype), name="decreasing"),
            Sample((2.0, 3.0, 1, True, dtype), name="one"),
            Sample((2.0, 3.0, 0, True, dtype), name="empty"),
            Sample((0.0, 10.0, 50, True, dtype), name="default_num")]


defop("linspace", "start, stop, num=50, endpoint=True, dtype=None", tensors=(),
      dtype_rule="dtype_arg",
      shape_rule=lambda start, stop, num=50, endpoint=True, dtype=None: (int(num),),
      reference=_linspace_reference, differentiable=False,
      samples=_no_grad_samples(_linspace_samples), dtypes=FLOATS, tol="elementwise",
      doc="""``num`` evenly spaced values from ``start`` to ``stop`` (included if ``endpoint``).

      Computed in float64 as ``start + i * step`` (the last value is exactly ``stop`` when
      ``endpoint``), then converted to ``dtype`` (default ``float32``; integer dtypes round
      toward minus infinity, as NumPy does).""")


def _eye_reference(n, m, k, dtype):
    """Ones where ``column - row == k``, zeros elsewhere."""
    shape = (int(n), int(n if m is None else m))
    d = _ref_dtype(dtype)
    return T.build(shape, lambda idx: _converted(int(idx[1] - idx[0] == k), d), d)


def _eye_samples(dtype, rng):
    return [Sample((3, None, 0, dtype), name="3x3"), Sample((2, 4, 1, dtype), name="2x4_k1"),
            Sample((4, 3, -1, dtype), name="4x3_k-1"), Sample((0, None, 0, dtype), name="empty"),
            Sample((3, 2, 5, dtype), name="k_outside")]


defop("eye", "n, m=None, k=0, dtype=None", tensors=(), dtype_rule="dtype_arg",
      shape_rule=lambda n, m=None, k=0, dtype=None: (int(n), int(n if m is None else m)),
      reference=_eye_reference,
      differentiable=False, samples=_no_grad_samples(_eye_samples), dtypes=ALL, tol="exact",
      doc="An ``n x m`` matrix (``m`` default ``n``) with ones on diagonal ``k``, else zeros.")


# ---- cast / stop_gradient -----------------------------------------------------------------
def _cast_grad(g, out, x, dtype):
    if not _dt.is_float(_dt.standardize(dtype)) or not _dt.is_float(ops.dtype(x)):
        return (None,)
    return (ops.cast(g, ops.dtype(x)),)


def _cast_reference(x, dtype):
    """Each element converted with :func:`_converted` (floats are kept in float64)."""
    d = _ref_dtype(dtype)
    x = np.asarray(x)
    return T.finish([_converted(v, d) for v in T.flat_values(x)], x.shape, d)


def _cast_samples(dtype, rng):
    from unidl.spec import samples as S

    out = []
    if dtype == "bool":
        x = rng.random((3, 4)) > 0.5
        return [Sample((x, t), name=f"to_{t}", grad=False) for t in ALL]
    if _dt.is_float(dtype):
        # values in [0, 100) with fractions: every target holds their truncation
        pos = rng.uniform(0, 100, size=(3, 4))
        neg = rng.uniform(-100, 100, size=(2, 5))
    else:
        pos = rng.integers(0, 100, size=(3, 4)).astype(np.int64)
        neg = rng.integers(-100, 100, size=(2, 5)).astype(np.int64)
    for t in ALL:
        # finite differences only make sense without rounding in the output: float64 targets
        ok = t == "float64" and _dt.is_float(dtype)
        out.append(Sample((pos, t), name=f"to_{t}", grad=ok))
        if not t.startswith("u") and not dtype.startswith("u"):
            out.append(Sample((neg, t), name=f"signed_to_{t}", grad=ok))
        out.append(Sample((S.rand(rng, (0, 2), dtype), t), name=f"empty_to_{t}", grad=False))
    if _dt.is_float(dtype):
        for t in FLOATS:
            out.append(Sample((S.SPECIALS.copy(), t), name=f"nan_inf_to_{t}", grad=False))
        out.append(Sample((S.SPECIALS.copy(), "bool"), name="nan_inf_to_bool", grad=False))
    return out


def _cast_onnx(g, x, dtype):
    return g.cast(x, g.out_dtype())


defop("cast", "x, dtype", dtype_rule="dtype_arg", shape_rule=same_shape,
      reference=_cast_reference, grad=_cast_grad, samples=_cast_samples, dtypes=ALL,
      tol="elementwise", export={"onnx": OnnxOp("Cast", _cast_onnx)},
      doc="""``x`` converted to ``dtype``.

      Floats to integers truncate toward zero (values outside the integer range, NaN and
      infinities give unspecified results, as in every framework); anything to ``bool`` is
      ``x != 0``. The gradient casts the cotangent back to ``x``'s dtype; there is none when
      either dtype is not a float.""")


defop("stop_gradient", "x", shape_rule=same_shape,
      reference=lambda x: T.gather(x, np.shape(x), lambda idx: idx),
      grad=lambda g, out, x: (None,),
      samples=lambda dtype, rng: [Sample((s,), name=n, grad=False) for n, s in (
          ("3x4", _rand(rng, (3, 4), dtype)), ("empty", _rand(rng, (0,), dtype)))],
      dtypes=ALL, tol="exact", export={"onnx": "Identity"},
      doc="The identity in the forward pass; no gradient flows through it.")


def _rand(rng, shape, dtype):
    from unidl.spec import samples as S

    return S.rand(rng, shape, dtype)
