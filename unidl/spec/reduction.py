"""Reductions: sum, mean, max, min, prod, var, std, argmax, argmin, logsumexp, cumsum, any, all.

Every reduction takes ``axis`` (``None`` for all axes, an int or a tuple of ints, negative
values counting from the end) and ``keepdims`` like NumPy. Integer sums and products keep
the input's integer dtype (wrapping around on overflow, the same on every backend); a bool
input sums to ``int32``. Float reductions of ``float16``/``bfloat16`` accumulate in float32.

Gradient rules take ``(g, out, *args)``; integer and bool inputs get no gradient (``None``).
"""

from __future__ import annotations

import math

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.export.rules import OnnxOp
from unidl.spec import _textbook as T
from unidl.spec import samples as S
from unidl.spec.core import Sample, ShapeMismatch, defop
from unidl.spec.rules import normalize_axes, normalize_axis, reduce_shape

__all__: list[str] = []

ALL = _dt.DTYPES
NUMERIC = _dt.INT_DTYPES + _dt.FLOAT_DTYPES
FLOATS = _dt.FLOAT_DTYPES


# ---- helpers (used by several rules) -------------------------------------------------------
def _is_float(t) -> bool:
    return _dt.is_float(ops.dtype(t))


def _kept_shape(shape, axis) -> tuple:
    """``shape`` with the reduced axes set to 1 (the ``keepdims=True`` output shape)."""
    return reduce_shape(shape, axis, True)


def _expand(g, shape, axis):
    """Cotangent ``g`` of a reduction broadcast back to the input ``shape``."""
    return ops.broadcast_to(ops.reshape(g, _kept_shape(shape, axis)), shape)


def _n_reduced(shape, axis) -> int:
    return int(np.prod([shape[a] for a in normalize_axes(axis, len(shape))], dtype=np.int64))


def _zeros(shape, dtype):
    return ops.zeros(tuple(shape), dtype)


def _sum_dtype(x, *rest):
    return "int32" if x == "bool" else x


# ---- float64 references: direct sums over explicit groups (see unidl/spec/_textbook.py) ----
# Each reference groups the elements of each output position in Python lists and reduces them
# with ``math.fsum`` (exactly rounded), Python int arithmetic (wrapped into the input dtype
# afterwards) or a plain loop: nothing is shared with the kernels' NumPy reductions.
def _acc_dtype(x) -> np.dtype:
    """The dtype a sum or product is returned in: int32 for bool, the input's for integers."""
    if x.dtype == bool:
        return np.dtype(np.int32)
    return x.dtype if x.dtype.kind in "iu" else np.dtype(np.float64)


def _total(group):
    """The sum of a group: exactly rounded for floats, exact for integers and bools."""
    if group and isinstance(group[0], float):
        return T.fsum(group)
    return sum(group)


def _mean(group):
    return T.div(T.fsum([float(v) for v in group]), len(group))


def _variance(ddof):
    def var(group):
        group = [float(v) for v in group]
        mu = _mean(group)
        squares = T.fsum([(v - mu) * (v - mu) for v in group])
        return T.div(squares, max(len(group) - ddof, 0))
    return var


def _reducer(fn, dtype=None):
    """A reference reducing each group with ``fn``; ``dtype`` (a function of ``x``, default
    ``x``'s dtype, float64 for floats) is the result's dtype."""

    def reference(x, axis=None, keepdims=False):
        x = np.asarray(x)
        return T.reduce(fn, x, axis, keepdims, T.result_dtype(x) if dtype is None else dtype(x))

    return reference


def _var_reference(x, axis=None, keepdims=False, ddof=0):
    """``sum((v - mean)^2) / (n - ddof)`` over each group (two passes, ``math.fsum``)."""
    return T.reduce(_variance(ddof), np.asarray(x), axis, keepdims, np.float64)


def _std_reference(x, axis=None, keepdims=False, ddof=0):
    """The square root of :func:`_var_reference`."""
    var = _variance(ddof)
    return T.reduce(lambda g: T.ieee(math.sqrt, var(g)), np.asarray(x), axis, keepdims,
                    np.float64)


def _first_extreme(better):
    """Index of the first element no later element is ``better`` than; NaN wins at once."""

    def index(group):
        best = 0
        for i, v in enumerate(group):
            if v != v:
                return i
            if better(v, group[best]):
                best = i
        return best

    return index


def _logsumexp_of(group):
    """``log(sum(exp(v)))`` of one group, the largest finite value factored out."""
    if any(v != v for v in group):
        return T.NAN
    if T.INF in group:
        return T.INF
    finite = [v for v in group if v != -T.INF]
    if not finite:
        return -T.INF  # empty, or all -inf
    m = max(finite)
    return m + math.log(T.fsum([math.exp(v - m) for v in finite]))


def _running_sum(lane):
    out, acc = [], 0
    for v in lane:
        acc = acc + v
        out.append(acc)
    return out


def _cumsum_reference(x, axis=None):
    """Running sums along ``axis`` (of the flattened ``x`` when None), sequentially."""
    x = np.asarray(x)
    dtype = _acc_dtype(x)
    if axis is None or x.ndim == 0:
        values = T.flat_values(x)
        return T.finish(_running_sum(values), (len(values),), dtype)
    return T.along(_running_sum, x, axis, dtype)


def _with_specials(gen, extra=()):
    """Add a NaN/inf propagation sample (reduced along the last axis) for float dtypes."""

    def samples(dtype, rng):
        out = gen(dtype, rng)
        if _dt.is_float(dtype):
            rows = np.array([[np.nan, 1.0, 2.0, -1.0],
                             [np.inf, 1.0, -2.0, 0.5],
                             [-np.inf, 1.0, 0.0, 3.0],
                             [np.inf, -np.inf, 1.0, 2.0],
                             [1.0, 2.0, np.nan, np.inf]])
            out.append(Sample((rows, -1, False, *extra), name="nan_inf", grad=False))
        return out

    return samples


# ---- ONNX converters (``g``: an unidl.export.onnx.OnnxBuilder) -------------------------------
def _reduce_onnx(op_type, nan_wins=False, empty_nan=False):
    """ONNX ``Reduce*`` (opset 18: the axes are an input; none given: every axis), the input
    first cast to the op's result dtype (bool sums give int32). ``nan_wins``: a NaN in a
    float group gives NaN (ONNX Runtime's ReduceMax/ReduceMin skip it). ``empty_nan``: an
    empty group gives NaN (ONNX Runtime's ReduceMean gives 0), see :func:`_empty_is_nan`."""
    def convert(g, x, axis=None, keepdims=False):
        out = g.out_dtype()
        if g.dtype(x) != out:
            x = g.cast(x, out)
        axes = None if axis is None else normalize_axes(axis, g.rank(x))
        if axes == ():  # (NumPy: nothing reduced)
            return g.op("Identity", [x])
        axes_in = [] if axes is None else [g.ints(axes)]
        y = g.op(op_type, [x] + axes_in, keepdims=int(bool(keepdims)))
        if empty_nan and _dt.is_float(out):
            y = _empty_is_nan(g, x, y, range(g.rank(x)) if axes is None else axes, out)
        if not (nan_wins and _dt.is_float(out)):
            return y
        nans = g.op("ReduceMax", [g.cast(g.op("IsNaN", [x]), "float32")] + axes_in,
                    keepdims=int(bool(keepdims)))
        return g.op("Where", [g.cast(nans, "bool"), g.const(np.nan, out), y])

    return OnnxOp(op_type, convert)


def _empty_is_nan(g, x, y, axes, dtype):
    """``y`` (a reduction of ``x`` over ``axes``), NaN where the reduced group is empty: at
    export time for a static zero size, at run time for the batch axis (``None``)."""
    sizes = [g.shape(x)[a] for a in axes]
    if 0 in sizes:
        return g.op("Add", [y, g.const(np.nan, dtype)])
    if None not in sizes:
        return y
    batch = g.op("Gather", [g.op("Shape", [x]), g.const(np.int64(0), "int64")])
    empty = g.op("Equal", [batch, g.const(np.int64(0), "int64")])
    return g.op("Where", [empty, g.const(np.nan, dtype), y])


# ---- sum, mean, prod -----------------------------------------------------------------------
def _sum_grad(g, out, x, axis, keepdims):
    if not _is_float(x):
        return (None,)
    return (_expand(g, ops.shape(x), axis),)


defop("sum", "x, axis=None, keepdims=False", dtype_rule=_sum_dtype,
      shape_rule=lambda x, axis=None, keepdims=False: reduce_shape(x, axis, keepdims),
      reference=_reducer(_total, _acc_dtype), grad=_sum_grad,
      samples=_with_specials(S.reduction()), dtypes=ALL, tol="reduction",
      export={"onnx": _reduce_onnx("ReduceSum")},
      doc="""Sum of ``x`` over ``axis`` (all axes when None).

      Integer inputs sum in their own dtype (wrapping on overflow); bool sums to int32.""")


def _mean_grad(g, out, x, axis, keepdims):
    if not _is_float(x):
        return (None,)
    shape = ops.shape(x)
    n = _n_reduced(shape, axis)
    return (ops.multiply(_expand(g, shape, axis), 1.0 / n if n else 0.0),)


defop("mean", "x, axis=None, keepdims=False", float_inputs=True,
      shape_rule=lambda x, axis=None, keepdims=False: reduce_shape(x, axis, keepdims),
      reference=_reducer(_mean, lambda x: np.float64), grad=_mean_grad,
      samples=_with_specials(S.reduction()), dtypes=ALL, tol="reduction",
      export={"onnx": _reduce_onnx("ReduceMean", empty_nan=True)},
      doc="Arithmetic mean over ``axis``; integer inputs give float32. Empty: NaN.")


def _prod_samples(dtype, rng):
    if not _dt.is_float(dtype):
        return S.reduction(-2, 2)(dtype, rng)
    out = []
    sign = np.where(rng.random((3, 4, 5)) < 0.5, -1.0, 1.0)
    x = sign * rng.uniform(0.6, 1.4, (3, 4, 5))
    for axis in (None, 0, -1, (0, 2), (-1, -2)):
        for kd in (False, True):
            out.append(Sample((x, axis, kd), name=f"axis={axis},kd={kd}"))
    z = rng.uniform(0.6, 1.4, (4, 5))
    z[0, 2] = 0.0  # one zero in a row
    z[1, 1] = z[1, 3] = 0.0  # two zeros in a row
    out.append(Sample((z, -1, False), name="zeros_row"))
    out.append(Sample((z, None, True), name="zeros_all"))
    out.append(Sample((z, 0, False), name="zeros_col"))
    out.append(Sample((np.asarray(rng.uniform(0.5, 2.0)), None, False), name="scalar"))
    out.append(Sample((rng.uniform(0.5, 2.0, (0, 3)), 0, False), name="empty_axis", grad=False))
    out.append(Sample((rng.uniform(0.5, 2.0, (0, 3)), 1, False), name="empty", grad=False))
    return out


def _exclusive_cumprod_last(t):
    """Exclusive cumulative product along the last axis (a log-depth scan of multiplies)."""
    shape = ops.shape(t)
    n, nd = shape[-1], len(shape)
    lead_pad = [(0, 0)] * (nd - 1)

    def shift(v, k):  # v shifted right by k along the last axis, filled with ones
        kept = ops.slice(v, (0,) * nd, shape[:-1] + (n - k,))
        return ops.pad(kept, lead_pad + [(k, 0)], "constant", 1)

    p = shift(t, 1)
    k = 1
    while k < n:
        p = ops.multiply(p, shift(p, k))
        k *= 2
    return p


def _prod_grad(g, out, x, axis, keepdims):
    """d prod / d x_i is the product of the other elements (exact with zeros, no division)."""
    if not _is_float(x):
        return (None,)
    shape = ops.shape(x)
    nd = len(shape)
    red = normalize_axes(axis, nd)
    kept = tuple(a for a in range(nd) if a not in red)
    n = _n_reduced(shape, axis)
    if n == 0 or 0 in shape:
        return (_zeros(shape, ops.dtype(x)),)
    perm = kept + red
    kept_shape = tuple(shape[a] for a in kept)
    t = ops.reshape(ops.transpose(x, perm), kept_shape + (n,))
    others = ops.multiply(_exclusive_cumprod_last(t),
                          ops.flip(_exclusive_cumprod_last(ops.flip(t, -1)), -1))
    gx = ops.multiply(others, ops.reshape(g, kept_shape + (1,)))
    gx = ops.reshape(gx, tuple(shape[a] for a in perm))
    return (ops.transpose(gx, tuple(int(i) for i in np.argsort(perm))),)


defop("prod", "x, axis=None, keepdims=False", dtype_rule=_sum_dtype,
      shape_rule=lambda x, axis=None, keepdims=False: reduce_shape(x, axis, keepdims),
      reference=_reducer(math.prod, _acc_dtype), grad=_prod_grad, samples=_prod_samples,
      dtypes=ALL, tol="reduction", export={"onnx": _reduce_onnx("ReduceProd")},
      doc="""Product over ``axis``. Integer inputs multiply in their own dtype; bool gives int32.

      The gradient is the product of the other elements (exclusive cumulative products), so
      inputs containing zeros get exact gradients.""")


# ---- max, min ------------------------------------------------------------------------------
def _nonempty_reduce_rule(x, axis=None, keepdims=False):
    axes = normalize_axes(axis, len(x))
    for a in axes:
        if x[a] == 0:
            raise ShapeMismatch(f"expected a non-empty reduction axis, got axis {a} of size 0 "
                                f"in shape {tuple(x)} (the reduction has no identity)")
    if axis is None and 0 in tuple(x):
        raise ShapeMismatch(f"expected a non-empty tensor, got shape {tuple(x)}")
    return reduce_shape(x, axis, keepdims)


def _extreme_grad(g, out, x, axis, keepdims):
    if not _is_float(x):
        return (None,)
    shape = ops.shape(x)
    dt = ops.dtype(x)
    mask = ops.cast(ops.equal(x, ops.reshape(out, _kept_shape(shape, axis))), dt)
    count = ops.sum(mask, axis, True)
    return (ops.multiply(_expand(g, shape, axis), ops.divide(mask, count)),)


def _extreme_samples(dtype, rng):
    out = S.reduction(empty=False)(dtype, rng)
    out.append(Sample((rng.uniform(-3, 3, (0, 3)) if _dt.is_float(dtype)
                       else S.rand(rng, (0, 3), dtype), 1, False), name="empty", grad=False))
    tie = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 0.0, 1.0]])
    if dtype == "bool":
        tie = tie > 0.5
    out.append(Sample((tie, -1, False), name="ties", grad=False))
    return out


_EXTREME_DOC = """{what} of ``x`` over ``axis``; NaN propagates. Errors on an empty reduction.

      Gradient: the cotangent goes to the elements equal to the result and is split equally
      among ties (``g / count`` to each tied element)."""

defop("max", "x, axis=None, keepdims=False", shape_rule=_nonempty_reduce_rule,
      reference=_reducer(T.nan_max), grad=_extreme_grad,
      samples=_with_specials(_extreme_samples), dtypes=ALL, tol="reduction",
      export={"onnx": _reduce_onnx("ReduceMax", nan_wins=True)},
      doc=_EXTREME_DOC.format(what="Maximum"))

defop("min", "x, axis=None, keepdims=False", shape_rule=_nonempty_reduce_rule,
      reference=_reducer(T.nan_min), grad=_extreme_grad,
      samples=_with_specials(_extreme_samples), dtypes=ALL, tol="reduction",
      export={"onnx": _reduce_onnx("ReduceMin", nan_wins=True)},
      doc=_EXTREME_DOC.format(what="Minimum"))


# ---- var, std ------------------------------------------------------------------------------
def _var_rule(x, axis=None, keepdims=False, ddof=0):
    return reduce_shape(x, axis, keepdims)


def _var_grad(g, out, x, axis, keepdims, ddof):
    if not _is_float(x):
        return (None,)
    shape = ops.shape(x)
    n = _n_reduced(shape, axis)
    centered = ops.subtract(x, ops.mean(x, axis, True))
    scale = 2.0 / (n - ddof) if n - ddof > 0 else float("inf")
    return (ops.multiply(_expand(g, shape, axis), ops.multiply(centered, scale)),)


def _std_grad(g, out, x, axis, keepdims, ddof):
    if not _is_float(x):
        return (None,)
    shape = ops.shape(x)
    (gv,) = _var_grad(g, out, x, axis, keepdims, ddof)
    # where std is 0 (one element, or all equal) the gradient is taken as 0, as the central
    # difference gives; torch and TF give NaN there
    o = _expand(out, shape, axis)
    pos = ops.greater(o, 0)
    safe = ops.where(pos, o, ops.ones_like(o))
    return (ops.where(pos, ops.divide(ops.multiply(gv, 0.5), safe), ops.zeros_like(gv)),)


def _var_samples(dtype, rng):
    out = S.reduction()(dtype, rng)
    for smp in out:
        if smp.name == "scalar":  # std's gradient at 0 is NaN in torch and TF
            smp.grad = False
    x = S.rand(rng, (3, 4, 5), dtype)
    out.append(Sample((x, -1, False, 1), name="ddof=1"))
    out.append(Sample((x, (0, 1), True, 1), name="ddof=1,kd"))
    return out


def _var_onnx(root: bool):
    """``sum((x - mean)**2) / (n - ddof)`` in ONNX ops (its square root for ``std``)."""
    def convert(g, x, axis=None, keepdims=False, ddof=0):
        shape = g.shape(x)
        axes = normalize_axes(axis, len(shape))
        if any(shape[a] is None for a in axes):
            g.unsupported("a variance over the batch axis")
        n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
        ax = g.ints(axes)
        d = g.op("Sub", [x, g.op("ReduceMean", [x, ax], keepdims=1)])
        total = g.op("ReduceSum", [g.op("Mul", [d, d]), ax], keepdims=int(bool(keepdims)))
        v = g.op("Div", [total, g.const(float(max(n - ddof, 0)), g.dtype(x))])
        return g.op("Sqrt", [v]) if root else v

    return OnnxOp("Sqrt" if root else "ReduceSum", convert)


defop("var", "x, axis=None, keepdims=False, ddof=0", float_inputs=True, shape_rule=_var_rule,
      reference=_var_reference,
      grad=_var_grad, samples=_with_specials(_var_samples, (0,)), dtypes=ALL, tol="reduction",
      export={"onnx": _var_onnx(False)},
      doc="Variance over ``axis``: ``sum((x - mean)**2) / (n - ddof)``.")

defop("std", "x, axis=None, keepdims=False, ddof=0", float_inputs=True, shape_rule=_var_rule,
      reference=_std_reference,
      grad=_std_grad, samples=_with_specials(_var_samples, (0,)), dtypes=ALL, tol="reduction",
      export={"onnx": _var_onnx(True)},
      doc="Standard deviation over ``axis``: ``sqrt(var(x, axis, keepdims, ddof))``.")


# ---- argmax, argmin ------------------------------------------------------------------------
def _arg_rule(x, axis=None, keepdims=False):
    if axis is not None and not isinstance(axis, (int, np.integer)):
        raise ShapeMismatch(f"expected an int or None for axis, got {axis!r}")
    if axis is None:
        if 0 in tuple(x):
            raise ShapeMismatch(f"expected a non-empty tensor, got shape {tuple(x)}")
        return (1,) * len(x) if keepdims else ()
    a = normalize_axis(axis, len(x))
    if len(x) and x[a] == 0:
        raise ShapeMismatch(f"expected a non-empty axis {axis}, got shape {tuple(x)}")
    return reduce_shape(x, axis, keepdims)


def _arg_samples(dtype, rng):
    out = []
    x = S.rand(rng, (3, 4, 5), dtype)
    for axis in (None, 0, 1, -1):
        for kd in (False, True):
            out.append(Sample((x, axis, kd), name=f"axis={axis},kd={kd}"))
    out.append(Sample((S.rand(rng, (), dtype), None, False), name="scalar"))
    out.append(Sample((S.rand(rng, (0, 3), dtype), 1, False), name="empty_rows"))
    tie = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 0.0, 1.0]])
    out.append(Sample((tie > 0.5 if dtype == "bool" else tie, -1, False), name="ties"))
    out.append(Sample((tie > 0.5 if dtype == "bool" else tie, 0, True), name="ties0"))
    if _dt.is_float(dtype):
        nan = np.array([[1.0, np.nan, 3.0, np.nan], [np.inf, np.nan, -np.inf, 0.0],
                        [-np.inf, 1.0, np.inf, np.inf], [2.0, 1.0, 0.0, -1.0]])
        out.append(Sample((nan, -1, False), name="nan_inf"))
        out.append(Sample((nan, None, False), name="nan_flat"))
    return out


_ARG_DOC = """Index (int64) of the {what} of ``x`` along ``axis`` (of the flattened tensor
      when None). Ties give the first occurrence; a NaN counts as the {what} (first NaN wins),
      as in NumPy. Errors on an empty reduction."""

def _arg_onnx(op_type):
    """ONNX ``ArgMax``/``ArgMin`` (first occurrence); ``axis=None`` on the flattened tensor;
    a lane holding NaN gives its first NaN (as NumPy; ONNX Runtime skips NaN)."""
    def lanes(g, x, axis, keepdims, is_float):
        attrs = {"axis": axis, "keepdims": int(bool(keepdims))}
        y = g.op(op_type, [x], **attrs)
        if not is_float:
            return y
        nans = g.cast(g.op("IsNaN", [x]), "int32")
        has_nan = g.cast(g.op("ReduceMax", [nans, g.ints([axis])], keepdims=attrs["keepdims"]),
                         "bool")
        return g.op("Where", [has_nan, g.op("ArgMax", [nans], **attrs), y])

    def convert(g, x, axis=None, keepdims=False):
        r, is_float = g.rank(x), _dt.is_float(g.dtype(x))
        if axis is None:
            y = lanes(g, g.op("Reshape", [x, g.ints([-1])]), 0, False, is_float)
            return g.op("Reshape", [y, g.ints([1] * r)]) if keepdims else y
        return lanes(g, x, normalize_axis(axis, r), keepdims, is_float)

    return OnnxOp(op_type, convert)


defop("argmax", "x, axis=None, keepdims=False", dtype_rule="index", shape_rule=_arg_rule,
      reference=_reducer(_first_extreme(lambda v, b: v > b), lambda x: np.int64),
      differentiable=False, samples=_arg_samples, dtypes=ALL,
      tol="exact", export={"onnx": _arg_onnx("ArgMax")}, doc=_ARG_DOC.format(what="maximum"))

defop("argmin", "x, axis=None, keepdims=False", dtype_rule="index", shape_rule=_arg_rule,
      reference=_reducer(_first_extreme(lambda v, b: v < b), lambda x: np.int64),
      differentiable=False, samples=_arg_samples, dtypes=ALL,
      tol="exact", export={"onnx": _arg_onnx("ArgMin")}, doc=_ARG_DOC.format(what="minimum"))


# ---- logsumexp -----------------------------------------------------------------------------
def _logsumexp_grad(g, out, x, axis, keepdims):
    if not _is_float(x):
        return (None,)
    shape = ops.shape(x)
    shifted = ops.subtract(x, _expand(out, shape, axis))
    return (ops.multiply(_expand(g, shape, axis), ops.exp(shifted)),)


def _logsumexp_samples(dtype, rng):
    out = S.reduction(-5, 5)(dtype, rng)
    big = rng.uniform(-5, 5, (3, 6)) + np.array([[1000.0], [-1000.0], [80.0]])
    out.append(Sample((big, -1, False), name="large_logits"))
    out.append(Sample((rng.uniform(-5, 5, (3, 0)), -1, True), name="empty_axis", grad=False))
    return out


defop("logsumexp", "x, axis=None, keepdims=False", float_inputs=True,
      shape_rule=lambda x, axis=None, keepdims=False: reduce_shape(x, axis, keepdims),
      reference=_reducer(_logsumexp_of, lambda x: np.float64), grad=_logsumexp_grad,
      samples=_with_specials(_logsumexp_samples), dtypes=ALL, tol="reduction",
      export={"onnx": _reduce_onnx("ReduceLogSumExp")},
      doc="""``log(sum(exp(x)))`` over ``axis``, computed stably (the maximum is subtracted
      first), so large logits do not overflow. An empty reduction gives ``-inf``.

      Gradient: ``g * exp(x - out)`` (the softmax of ``x`` along ``axis``).""")


# ---- cumsum --------------------------------------------------------------------------------
def _cumsum_rule(x, axis=None):
    if axis is None:
        return (int(np.prod(x, dtype=np.int64)),)
    normalize_axis(axis, len(x))
    return tuple(x) if len(x) else (1,)


def _cumsum_grad(g, out, x, axis):
    if not _is_float(x):
        return (None,)
    if axis is None:
        rev = ops.flip(ops.cumsum(ops.flip(g, 0), 0), 0)
        return (ops.reshape(rev, ops.shape(x)),)
    if not ops.shape(x):
        return (ops.reshape(g, ()),)
    return (ops.flip(ops.cumsum(ops.flip(g, axis), axis), axis),)


def _cumsum_samples(dtype, rng):
    x = S.rand(rng, (3, 4, 5), dtype)
    out = [Sample((x, axis), name=f"axis={axis}") for axis in (None, 0, 1, -1)]
    out.append(Sample((S.rand(rng, (), dtype), None), name="scalar"))
    out.append(Sample((S.rand(rng, (2, 0), dtype), 1), name="empty", grad=False))
    out.append(Sample((S.rand(rng, (2, 0), dtype), None), name="empty_flat", grad=False))
    if _dt.is_float(dtype):
        out.append(Sample((np.array([[1.0, np.nan, 2.0], [np.inf, 1.0, -np.inf]]), -1),
                          name="nan_inf", grad=False))
    return out


def _cumsum_onnx(g, x, axis=None):
    if g.dtype(x) != g.out_dtype():
        x = g.cast(x, g.out_dtype())
    if axis is None or not g.rank(x):
        x, axis = g.op("Reshape", [x, g.ints([-1])]), 0
    else:
        axis = normalize_axis(axis, g.rank(x))
    return g.op("CumSum", [x, g.const(axis, "int64")])


defop("cumsum", "x, axis=None", dtype_rule=_sum_dtype, shape_rule=_cumsum_rule,
      reference=_cumsum_reference, grad=_cumsum_grad, samples=_cumsum_samples, dtypes=ALL,
      tol="reduction", export={"onnx": OnnxOp("CumSum", _cumsum_onnx)},
      doc="""Cumulative sum along ``axis``; ``axis=None`` sums the flattened tensor (1-D
      result), as in NumPy. Integer inputs keep their dtype; bool gives int32.

      Gradient: the reversed cumulative sum of ``g``.""")


# ---- any, all ------------------------------------------------------------------------------
def _logical_samples(dtype, rng):
    x = S.rand(rng, (3, 4, 5), dtype)
    if dtype != "bool":
        x = np.where(rng.random((3, 4, 5)) < 0.6, 0, x)
        x[0] = np.where(x[0] == 0, 1, x[0])  # a slab that is all true
    else:
        x[0] = True
    x[1, 0] = 0  # a row that is all false
    out = []
    for axis in (None, 0, -1, (0, 2), (-1, -2)):
        for kd in (False, True):
            out.append(Sample((x, axis, kd), name=f"axis={axis},kd={kd}"))
    out.append(Sample((S.rand(rng, (), dtype), None, False), name="scalar"))
    out.append(Sample((S.rand(rng, (0, 3), dtype), 0, False), name="empty_axis"))
    out.append(Sample((S.rand(rng, (0, 3), dtype), None, True), name="empty_all"))
    if _dt.is_float(dtype):
        out.append(Sample((np.array([[np.nan, 0.0], [0.0, 0.0], [np.inf, -np.inf]]), -1, False),
                          name="nan_inf"))
    return out


def _count_onnx(op_type, test, want_zero):
    """``any``/``all``: count the elements that are true (``any``) or false (``all``) with
    ``ReduceSum`` (an empty group counts 0, as the identities False/True need)."""
    def convert(g, x, axis=None, keepdims=False):
        hit = g.op(test, [g.op("Equal", [x, g.const(0, g.dtype(x))])]) if test else \
            g.op("Equal", [x, g.const(0, g.dtype(x))])
        axes = [] if axis is None else [g.ints(normalize_axes(axis, g.rank(x)))]
        if axis is not None and not normalize_axes(axis, g.rank(x)):
            return g.cast(g.op("Not", [hit]) if want_zero else hit, "bool")
        n = g.op("ReduceSum", [g.cast(hit, "int32")] + axes, keepdims=int(bool(keepdims)))
        more = g.op("Greater", [n, g.const(0, "int32")])
        return g.op("Not", [more]) if want_zero else more

    return OnnxOp(op_type, convert)


defop("any", "x, axis=None, keepdims=False", dtype_rule="bool",
      shape_rule=lambda x, axis=None, keepdims=False: reduce_shape(x, axis, keepdims),
      reference=_reducer(lambda g: any(bool(v) for v in g), lambda x: np.bool_),
      differentiable=False,
      samples=_logical_samples, dtypes=ALL, tol="exact",
      export={"onnx": _count_onnx("ReduceSum", "Not", False)},
      doc="Whether any element along ``axis`` is nonzero (NaN counts as true); empty: False.")

defop("all", "x, axis=None, keepdims=False", dtype_rule="bool",
      shape_rule=lambda x, axis=None, keepdims=False: reduce_shape(x, axis, keepdims),
      reference=_reducer(lambda g: all(bool(v) for v in g), lambda x: np.bool_),
      differentiable=False,
      samples=_logical_samples, dtypes=ALL, tol="exact",
      export={"onnx": _count_onnx("ReduceSum", None, True)},
      doc="Whether every element along ``axis`` is nonzero (NaN counts as true); empty: True.")
