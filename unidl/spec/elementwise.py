"""Elementwise ops: arithmetic, math functions, comparisons, logic.

Each op is declared in one call: signature, dtype rule, reference, gradient rule, samples.
Gradient rules take ``(g, out, *args)`` and return one cotangent per tensor input
(``None`` where there is none); broadcasting is undone by the engine.

Semantics every backend follows:

* ``divide`` is true division: integer inputs give the default float (``float32``).
* ``floor_divide`` and ``mod`` follow Python/NumPy: ``floor_divide(x, y) == floor(x / y)``
  and ``mod(x, y) == x - y * floor_divide(x, y)``, so the sign of ``mod`` follows the
  divisor. Integer division by zero is undefined (frameworks differ: 0, garbage or an error).
* ``round`` rounds half to even.
* ``maximum``, ``minimum`` and ``clip`` propagate NaN.
* Comparisons, logical ops and ``isnan``/``isinf``/``isfinite`` return ``bool`` and have
  no gradient; logical ops treat any nonzero value (NaN included) as true.
* ``sign``, ``floor``, ``ceil``, ``round`` and ``floor_divide`` are piecewise constant:
  they are declared not differentiable (their gradient is zero almost everywhere).
"""

from __future__ import annotations

import math

import numpy as np

from unidl import ops
from unidl.export.rules import OnnxOp
from unidl.spec import _textbook as T
from unidl.spec import samples as S
from unidl.spec.core import Sample, defop
from unidl.spec.rules import broadcast_rule, same_shape

ALL = ("bool", "uint8", "int8", "int16", "int32", "int64",
       "float16", "bfloat16", "float32", "float64")
NUMERIC = ALL[1:]
FLOATS = ("float16", "bfloat16", "float32", "float64")

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# ---- float64 references: element by element on Python scalars ----------------------------
# Independent of every kernel: Python's float and int arithmetic and the ``math`` module, with
# the IEEE special values written out where Python raises (see unidl/spec/_textbook.py).
def _elementwise(fn, dtype=None):
    """A reference applying ``fn`` to the Python scalars of its broadcast arguments.

    The result has ``dtype`` (default: float64 for float inputs, else the inputs' dtype, with
    integer results wrapped around into its range as fixed-width arithmetic does).
    """

    def reference(*arrays):
        return T.pointwise(fn, *arrays, dtype=dtype)

    reference.__doc__ = fn.__doc__
    return reference


def _math_fn(fn):
    """A reference for ``math.<fn>`` (IEEE results where ``math`` raises: inf, NaN)."""
    return _elementwise(lambda v: T.ieee(fn, float(v)), np.float64)


def _floor_div(a, b):
    """``a // b``; a zero float divisor gives NumPy's IEEE ``a / 0`` (Python raises)."""
    if isinstance(a, float) and b == 0:
        return T.div(a, b)
    return a // b


def _mod(a, b):
    """``a % b`` with the divisor's sign; a zero float divisor gives NaN (Python raises)."""
    if isinstance(a, float) and b == 0:
        return T.NAN
    return a % b


def _odd_integer(v) -> bool:
    return math.isfinite(v) and v == math.floor(v) and v % 2 == 1


def _pow(a, b):
    """``a ** b``: exact for integers; ``math.pow`` (C99 Annex F) for floats, with the
    overflow and pole cases Python raises on written out."""
    if not isinstance(a, float):
        return a ** b
    try:
        return math.pow(a, b)
    except OverflowError:  # negative only for a negative base and an odd integer exponent
        return -T.INF if a < 0 and _odd_integer(b) else T.INF
    except ValueError:
        if a == 0:  # the pole 0 ** negative: -inf only for -0.0 and an odd exponent
            return math.copysign(T.INF, a) if _odd_integer(b) else T.INF
        return T.NAN  # a negative base with a non-integer exponent


def _sign(v):
    if v != v:
        return v
    return type(v)((v > 0) - (v < 0))


def _rounding(fn):
    """floor/ceil/round of a float (``round`` is Python's: half to even); inf, NaN kept."""
    return _elementwise(lambda v: float(fn(v)) if math.isfinite(v) else v, np.float64)


def _max2(a, b):
    """The larger of ``a`` and ``b``; NaN if either is NaN."""
    return T.NAN if a != a or b != b else max(a, b)


def _min2(a, b):
    """The smaller of ``a`` and ``b``; NaN if either is NaN."""
    return T.NAN if a != a or b != b else min(a, b)


def _log(v):
    return -T.INF if v == 0 else T.ieee(math.log, v)


def _log1p(v):
    return -T.INF if v == -1 else T.ieee(math.log1p, v)


def _sqrt(v):
    return T.ieee(math.sqrt, v)


_LOG = _elementwise(_log, np.float64)
_SQRT = _elementwise(_sqrt, np.float64)
_SIN = _math_fn(math.sin)
_TANH = _math_fn(math.tanh)


def _is_float(dtype: str) -> bool:
    return dtype in FLOATS


def _int_grid(low, high):
    """Samples of a binary op on small integer values (floats too), so that ties occur."""

    def gen(dtype, rng):
        lo = 0 if dtype.startswith("u") else low

        def val(shape):
            if dtype == "bool":
                return np.asarray(rng.random(shape) > 0.5)
            v = rng.integers(lo, high + 1, size=shape)
            return v.astype(np.float64) if _is_float(dtype) else v.astype(np.int64)

        out = [Sample((val(sx), val(sy)), name=f"{sx}x{sy}", grad=False)
               for sx, sy in S.BINARY_SHAPES]
        if _is_float(dtype):
            a = np.repeat(S.SPECIALS, len(S.SPECIALS))
            b = np.tile(S.SPECIALS, len(S.SPECIALS))
            out.append(Sample((a, b), name="nan_inf", grad=False))
        return out

    return gen


def _combine(*gens):
    def gen(dtype, rng):
        out = []
        for g in gens:
            out.extend(g(dtype, rng))
        return out

    return gen


# ---- arithmetic -------------------------------------------------------------------------
defop("add", "x, y", tensors="x, y", dtype_rule="same", shape_rule=broadcast_rule,
      reference=_elementwise(lambda a, b: a + b), grad=lambda g, out, x, y: (g, g),
      samples=S.binary(),
      dtypes=NUMERIC, export={"onnx": "Add"}, doc="Elementwise ``x + y`` with broadcasting.")

defop("subtract", "x, y", tensors="x, y", dtype_rule="same", shape_rule=broadcast_rule,
      reference=_elementwise(lambda a, b: a - b),
      grad=lambda g, out, x, y: (g, ops.negative(g)),
      samples=S.binary(), dtypes=NUMERIC, export={"onnx": "Sub"},
      doc="Elementwise ``x - y`` with broadcasting (unsigned integers wrap around).")

defop("multiply", "x, y", tensors="x, y", dtype_rule="same", shape_rule=broadcast_rule,
      reference=_elementwise(lambda a, b: a * b),
      grad=lambda g, out, x, y: (ops.multiply(g, y), ops.multiply(g, x)),
      samples=S.binary(), dtypes=NUMERIC, export={"onnx": "Mul"},
      doc="Elementwise ``x * y`` with broadcasting.")


def _divide_grad(g, out, x, y):
    gx = ops.divide(g, y)
    return gx, None if isinstance(y, (int, float)) else ops.negative(ops.multiply(gx, out))


defop("divide", "x, y", tensors="x, y", float_inputs=True, shape_rule=broadcast_rule,
      reference=_elementwise(lambda a, b: T.div(float(a), float(b)), np.float64),
      grad=_divide_grad, samples=S.binary(avoid_zero_rhs=True),
      dtypes=NUMERIC, export={"onnx": "Div"},
      doc="""Elementwise true division ``x / y`` with broadcasting.

      Integer (and bool) inputs are converted to the default float first, so
      ``divide(int32, int32)`` is ``float32``. Division by zero follows IEEE (``inf``,
      ``nan``).""")


def _floor_samples(dtype, rng):
    """Floor division samples whose quotients are exact or far from an integer.

    Floats: ``x`` on a grid of quarters and ``y`` on a grid of halves, so every quotient is
    an exact integer or at least 1/12 away from one, and the rounding of float16/bfloat16
    cannot move it across an integer. Gradient samples put ``x / y`` in ``(n + 0.1, n + 0.9)``.
    Integers: both signs, divisor never zero.
    """
    out = []
    if _is_float(dtype):
        for sx, sy in S.BINARY_SHAPES:
            x = np.asarray(rng.integers(-12, 13, size=sx) / 4.0)
            m = rng.integers(1, 7, size=sy) * rng.choice([-1, 1], size=sy)
            out.append(Sample((x, np.asarray(m / 2.0)), name=f"grid{sx}x{sy}", grad=False))
        for sx, sy in (((3, 4), (3, 4)), ((2, 3), (3,))):
            y = rng.uniform(0.5, 3.0, size=sy) * rng.choice([-1, 1], size=sy)
            n = rng.integers(-3, 4, size=sx)  # sx is the broadcast shape here
            x = y * (n + rng.uniform(0.1, 0.9, size=sx))
            out.append(Sample((x, y), name=f"smooth{sx}x{sy}"))
        # IEEE special values: the NumPy results (e.g. inf // 2 is nan, -1 // inf is -1)
        a = np.repeat(S.SPECIALS, len(S.SPECIALS))
        b = np.tile(S.SPECIALS, len(S.SPECIALS))
        out.append(Sample((a, b), name="nan_inf", grad=False))
    else:
        for sx, sy in S.BINARY_SHAPES:
            x = S.rand(rng, sx, dtype, -20, 20)
            y = S.rand(rng, sy, dtype, -5, 5)
            y = np.where(y == 0, 3, y)
            out.append(Sample((x, y), name=f"{sx}x{sy}", grad=False))
    return out


# ONNX (``g``: an unidl.export.onnx.OnnxBuilder): ONNX's Div truncates integers and its Mod
# takes the dividend's sign unless fmod=0 (integers only), so Python's rules are built here;
# for floats NumPy's divmod (from C's fmod, then corrected), special values included.
def _float_divmod_onnx(g, x, y):
    dtype = g.dtype(x)

    def const(v):
        return g.const(v, dtype)

    mod = g.op("Mod", [x, y], fmod=1)
    div = g.op("Div", [g.op("Sub", [x, mod]), y])
    fix = g.op("And", [g.op("Not", [g.op("Equal", [mod, const(0.0)])]),
                       g.op("Xor", [g.op("Less", [y, const(0.0)]),
                                    g.op("Less", [mod, const(0.0)])])])
    mod = g.op("Where", [fix, g.op("Add", [mod, y]), mod])
    div = g.op("Where", [fix, g.op("Sub", [div, const(1.0)]), div])
    floor = g.op("Floor", [div])
    floor = g.op("Where", [g.op("Greater", [g.op("Sub", [div, floor]), const(0.5)]),
                           g.op("Add", [floor, const(1.0)]), floor])
    floor = g.op("Where", [g.op("Equal", [div, const(0.0)]), div, floor])
    quotient = g.op("Where", [g.op("Equal", [y, const(0.0)]), g.op("Div", [x, y]), floor])
    return quotient, mod


def _floor_divide_onnx(g, x, y):
    if _is_float(g.dtype(x)):
        return _float_divmod_onnx(g, x, y)[0]
    return g.op("Div", [g.op("Sub", [x, g.op("Mod", [x, y], fmod=0)]), y])


def _mod_onnx(g, x, y):
    if _is_float(g.dtype(x)):
        return _float_divmod_onnx(g, x, y)[1]
    return g.op("Mod", [x, y], fmod=0)


defop("floor_divide", "x, y", tensors="x, y", shape_rule=broadcast_rule,
      reference=_elementwise(_floor_div), differentiable=False, samples=_floor_samples,
      dtypes=NUMERIC, export={"onnx": OnnxOp("Floor", _floor_divide_onnx)},
      doc="""Elementwise ``floor(x / y)`` (Python's ``//``) with broadcasting.

      Rounds toward minus infinity for integers and floats alike (``-7 // 2 == -4``); special
      values follow NumPy (``inf // 2`` is ``nan``, ``-1 // inf`` is ``-1``). Piecewise
      constant: not differentiable.""")

defop("mod", "x, y", tensors="x, y", shape_rule=broadcast_rule, reference=_elementwise(_mod),
      grad=lambda g, out, x, y: (g, ops.negative(ops.multiply(g, ops.floor_divide(x, y)))),
      samples=_floor_samples, dtypes=NUMERIC, export={"onnx": OnnxOp("Mod", _mod_onnx)},
      doc="""Elementwise remainder of floor division, ``x - y * floor(x / y)`` (Python's ``%``).

      The result has the sign of the divisor ``y`` (``mod(-7, 2) == 1``,
      ``mod(7, -2) == -1``), for integers and floats alike.""")

defop("negative", "x", shape_rule=same_shape, reference=_elementwise(lambda v: -v),
      grad=lambda g, out, x: (ops.negative(g),), samples=S.unary(), dtypes=NUMERIC,
      export={"onnx": "Neg"}, doc="Elementwise ``-x`` (unsigned integers wrap around).")


def _is_scalar(v) -> bool:
    """A Python number argument: it gets no gradient, so none is computed for it."""
    return isinstance(v, (int, float))


def _power_grad(g, out, x, y):
    dx = ops.multiply(y, ops.power(x, ops.subtract(y, 1)))
    gx = ops.where(ops.equal(y, 0), 0, ops.multiply(g, dx))
    if _is_scalar(y):  # x ** 2: skip log(x), which warns for negative x
        return gx, None
    gy = ops.where(ops.logical_and(ops.equal(x, 0), ops.greater_equal(y, 0)), 0,
                   ops.multiply(g, ops.multiply(out, ops.log(x))))
    return gx, gy


def _power_samples(dtype, rng):
    if _is_float(dtype):
        # positive bases for real results at any exponent; the special-values sample covers
        # negative bases, zeros and infinities
        return S.binary(low=0.5, high=3.0, low2=-2.0, high2=2.0)(dtype, rng) + [
            Sample((np.array([-2.0, -1.5, -3.0, 0.0, 0.0, 2.0]),
                    np.array([2.0, 3.0, -1.0, 2.0, 0.0, 0.0])),
                   name="integer_exponents", grad=False)]
    out = []
    low = 0 if dtype.startswith("u") else -3
    for sx, sy in S.BINARY_SHAPES:
        x = rng.integers(low, 4, size=sx).astype(np.int64)
        y = rng.integers(0, 4, size=sy).astype(np.int64)
        out.append(Sample((x, y), name=f"{sx}x{sy}", grad=False))
    return out


defop("power", "x, y", tensors="x, y", shape_rule=broadcast_rule, reference=_elementwise(_pow),
      grad=_power_grad, samples=_power_samples, dtypes=NUMERIC, export={"onnx": "Pow"},
      doc="""Elementwise ``x ** y`` with broadcasting.

      Integer powers stay integers (negative integer exponents are an error or undefined
      on integer inputs: convert to a float first). The gradient with respect to ``y`` is
      ``out * log(x)``, taken as 0 where ``x == 0`` and ``y >= 0``; with respect to ``x``
      it is ``y * x ** (y - 1)``, taken as 0 where ``y == 0``.""")


# ---- math functions ---------------------------------------------------------------------
def _math(name, reference, grad, samples, onnx=None, doc=""):
    defop(name, "x", float_inputs=True, shape_rule=same_shape, reference=reference,
          grad=grad, samples=samples, dtypes=FLOATS,
          export={"onnx": onnx} if onnx else {}, doc=doc)


defop("exp", "x", float_inputs=True, shape_rule=same_shape, reference=_math_fn(math.exp),
      grad=lambda g, out, x: (ops.multiply(g, out),), samples=S.unary(-5, 5),
      dtypes=FLOATS, export={"onnx": "Exp"}, doc="Elementwise ``e ** x``.")

_math("log", _LOG, lambda g, out, x: (ops.divide(g, x),), S.unary(0.1, 5.0), "Log",
      "Elementwise natural logarithm (``nan`` below 0, ``-inf`` at 0).")
def _log1p_onnx(g, x):
    """Goldberg's ``log(u) * x / (u - 1)`` with ``u = 1 + x`` (accurate for small ``x``)."""
    one = g.const(1.0, g.dtype(x))
    u = g.op("Add", [x, one])
    y = g.op("Div", [g.op("Mul", [g.op("Log", [u]), x]), g.op("Sub", [u, one])])
    exact = g.op("Or", [g.op("Equal", [u, one]), g.op("IsInf", [u], detect_negative=0)])
    return g.op("Where", [exact, g.op("Where", [g.op("Equal", [u, one]), x, u]), y])


def _expm1_onnx(g, x):
    """Kahan's ``(u - 1) * x / log(u)`` with ``u = exp(x)`` (accurate for small ``x``)."""
    one = g.const(1.0, g.dtype(x))
    u = g.op("Exp", [x])
    um1 = g.op("Sub", [u, one])
    y = g.op("Div", [g.op("Mul", [um1, x]), g.op("Log", [u])])
    y = g.op("Where", [g.op("Equal", [um1, g.const(-1.0, g.dtype(x))]), um1, y])
    y = g.op("Where", [g.op("IsInf", [u]), u, y])
    return g.op("Where", [g.op("Equal", [u, one]), x, y])


_math("log1p", _elementwise(_log1p, np.float64), lambda g, out, x: (ops.divide(g, ops.add(x, 1)),),
      S.unary(-0.9, 5.0), OnnxOp("Log", _log1p_onnx),
      "Elementwise ``log(1 + x)``, accurate for small ``x``.")
_math("expm1", _math_fn(math.expm1), lambda g, out, x: (ops.multiply(g, ops.add(out, 1)),),
      S.unary(-5.0, 3.0), OnnxOp("Exp", _expm1_onnx),
      "Elementwise ``exp(x) - 1``, accurate for small ``x``.")
_math("sqrt", _SQRT, lambda g, out, x: (ops.divide(g, ops.multiply(out, 2)),),
      S.unary(0.1, 5.0), "Sqrt", "Elementwise square root (``nan`` below 0).")
_math("rsqrt", _elementwise(lambda v: T.div(1.0, _sqrt(v)), np.float64),
      lambda g, out, x: (ops.multiply(ops.multiply(g, -0.5),
                                      ops.multiply(out, ops.square(out))),),
      S.unary(0.1, 5.0),
      OnnxOp("Reciprocal", lambda g, x: g.op("Reciprocal", [g.op("Sqrt", [x])])),
      "Elementwise ``1 / sqrt(x)``.")
_math("reciprocal", _elementwise(lambda v: T.div(1.0, float(v)), np.float64),
      lambda g, out, x: (ops.negative(ops.multiply(g, ops.square(out))),),
      S.unary(avoid_zero=True), "Reciprocal",
      "Elementwise ``1 / x`` (integer inputs are converted to the default float first).")

defop("square", "x", shape_rule=same_shape, reference=_elementwise(lambda v: v * v),
      grad=lambda g, out, x: (ops.multiply(g, ops.multiply(x, 2)),), samples=S.unary(),
      dtypes=NUMERIC, export={"onnx": OnnxOp("Mul", lambda g, x: g.op("Mul", [x, x]))},
      doc="Elementwise ``x * x``.")

defop("abs", "x", shape_rule=same_shape, reference=_elementwise(abs),
      grad=lambda g, out, x: (ops.multiply(g, ops.sign(x)),), samples=S.unary(),
      dtypes=NUMERIC, export={"onnx": "Abs"},
      doc="Elementwise ``|x|``; the gradient is ``sign(x)`` (0 at 0).")

defop("sign", "x", shape_rule=same_shape, reference=_elementwise(_sign), differentiable=False,
      samples=S.unary(), dtypes=NUMERIC, tol="exact", export={"onnx": "Sign"},
      doc="Elementwise sign: -1, 0 or 1 (``nan`` for ``nan``). Not differentiable.")

_HALVES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.5, 0.49, -0.51])
for _name, _ref, _onnx, _doc in (
        ("floor", _rounding(math.floor), "Floor", "Elementwise largest integer ``<= x``."),
        ("ceil", _rounding(math.ceil), "Ceil", "Elementwise smallest integer ``>= x``."),
        ("round", _rounding(round), "Round",
         "Elementwise rounding to the nearest integer, ties to even (``round(2.5) == 2``).")):
    defop(_name, "x", float_inputs=True, shape_rule=same_shape, reference=_ref,
          differentiable=False, samples=S.unary(-5.0, 5.0, extra=[(_HALVES.copy(),)]),
          dtypes=FLOATS, tol="exact", export={"onnx": _onnx},
          doc=_doc + " Integer inputs are converted to the default float. Not differentiable.")


# ---- maximum, minimum, clip, where ------------------------------------------------------
def _maximum_grad(g, out, x, y):
    gx = ops.where(ops.greater(x, y), g, ops.where(ops.equal(x, y), ops.multiply(g, 0.5), 0))
    return gx, ops.subtract(g, gx)


def _minimum_grad(g, out, x, y):
    gx = ops.where(ops.less(x, y), g, ops.where(ops.equal(x, y), ops.multiply(g, 0.5), 0))
    return gx, ops.subtract(g, gx)


_MINMAX_DOC = """Elementwise {what} of ``x`` and ``y`` with broadcasting; NaN propagates.

      Gradient: ``g`` goes to the {which} argument; at ties (``x == y``) it is split equally,
      ``g / 2`` to each (as PyTorch does; TensorFlow gives it all to ``x``)."""

defop("maximum", "x, y", tensors="x, y", shape_rule=broadcast_rule,
      reference=_elementwise(_max2),
      grad=_maximum_grad, samples=_combine(S.binary(), _int_grid(-2, 2)), dtypes=ALL,
      export={"onnx": "Max"}, doc=_MINMAX_DOC.format(what="maximum", which="larger"))

defop("minimum", "x, y", tensors="x, y", shape_rule=broadcast_rule,
      reference=_elementwise(_min2),
      grad=_minimum_grad, samples=_combine(S.binary(), _int_grid(-2, 2)), dtypes=ALL,
      export={"onnx": "Min"}, doc=_MINMAX_DOC.format(what="minimum", which="smaller"))


def _clip_reference(x, x_min, x_max):
    """``min(max(x, x_min), x_max)`` element by element (NaN propagates; ``None``: no bound)."""
    bounds = [b for b in (x_min, x_max) if b is not None]

    def clip_one(v, *b):
        b = list(b)
        if x_min is not None:
            v = _max2(v, b.pop(0))
        if x_max is not None:
            v = _min2(v, b.pop(0))
        return v

    return T.pointwise(clip_one, x, *bounds)


def _where_reference(condition, x, y):
    """``x`` where ``condition`` is nonzero, else ``y``, element by element."""
    return T.pointwise(lambda c, a, b: a if c else b, condition, x, y,
                       dtype=T.result_dtype(x, y))


def _clip_grad(g, out, x, x_min, x_max):
    inside = None
    g_min = g_max = None
    if x_min is not None:
        below = ops.less(x, x_min)
        g_min = ops.where(below, g, 0)
        inside = ops.logical_not(below)
    if x_max is not None:
        above = ops.greater(x, x_max)
        g_max = ops.where(above, g, 0)
        inside = ops.logical_not(above) if inside is None else \
            ops.logical_and(inside, ops.logical_not(above))
    gx = g if inside is None else ops.where(inside, g, 0)
    return gx, g_min, g_max


def _clip_samples(dtype, rng):
    unsigned = dtype.startswith("u")
    lo_v, hi_v = (1.0, 2.0) if unsigned else (-1.0, 2.0)
    x = S.rand(rng, (3, 4), dtype)
    out = [
        Sample((x, np.array(lo_v), np.array(hi_v)), name="scalar_bounds"),
        Sample((S.rand(rng, (2, 5), dtype), np.array(lo_v), None), name="min_only"),
        Sample((S.rand(rng, (2, 5), dtype), None, np.array(hi_v)), name="max_only"),
        Sample((S.rand(rng, (0, 3), dtype), np.array(lo_v), np.array(hi_v)), name="empty"),
    ]
    if unsigned:
        lo = rng.integers(0, 2, size=(4,)).astype(np.int64)
        hi = rng.integers(2, 4, size=(3, 1)).astype(np.int64)
    elif _is_float(dtype):
        lo = rng.uniform(-2.0, -0.5, size=(4,))
        hi = rng.uniform(0.5, 2.0, size=(3, 1))
    else:
        lo = rng.integers(-2, 0, size=(4,)).astype(np.int64)
        hi = rng.integers(1, 3, size=(3, 1)).astype(np.int64)
    out.append(Sample((S.rand(rng, (3, 4), dtype), lo, hi), name="tensor_bounds"))
    out.append(Sample((S.rand(rng, (2, 1, 4), dtype), lo, hi), name="broadcast_bounds"))
    if _is_float(dtype):
        out.append(Sample((S.SPECIALS.copy(), np.array(-1.0), np.array(2.0)), name="nan_inf",
                          grad=False))
    return out


def _clip_onnx(g, x, x_min=None, x_max=None):
    """ONNX ``Clip`` for scalar bounds; ``Max``/``Min`` for tensor bounds (broadcast)."""
    if all(b is None or not g.rank(b) for b in (x_min, x_max)):
        return g.op("Clip", [x, x_min, x_max])
    y = x if x_min is None else g.op("Max", [x, x_min])
    return y if x_max is None else g.op("Min", [y, x_max])


defop("clip", "x, x_min=None, x_max=None", tensors="x, x_min, x_max",
      shape_rule=broadcast_rule, reference=_clip_reference, grad=_clip_grad,
      samples=_clip_samples, dtypes=NUMERIC, export={"onnx": OnnxOp("Clip", _clip_onnx)},
      doc="""Elementwise ``minimum(maximum(x, x_min), x_max)``; either bound may be ``None``.

      Bounds may be scalars or tensors (broadcast with ``x``); all three are promoted
      together. NaN in ``x`` propagates. Where ``x_min > x_max`` the result is ``x_max``.
      Gradient: ``g`` goes to ``x`` where ``x_min <= x <= x_max``, to ``x_min`` where
      ``x < x_min`` and to ``x_max`` where ``x > x_max``.""")


def _where_samples(dtype, rng):
    out = []
    shapes = [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (4,)), ((), (2, 3), ()),
              ((0, 3), (3,), (1, 1)), ((2, 3, 4), (4,), (3, 1))]
    for sc, sx, sy in shapes:
        c = np.asarray(rng.random(sc) > 0.5)
        out.append(Sample((c, S.rand(rng, sx, dtype), S.rand(rng, sy, dtype)), keep=(0,),
                          name=f"{sc}/{sx}/{sy}"))
    if _is_float(dtype):
        c = np.arange(len(S.SPECIALS)) % 2 == 0
        out.append(Sample((c, S.SPECIALS.copy(), S.SPECIALS[::-1].copy()), keep=(0,),
                          name="nan_inf", grad=False))
    return out


def _as_bool(g, t):
    """``t != 0`` as ONNX bool (NaN is true, as in unidl's logical ops)."""
    return t if g.dtype(t) == "bool" else g.cast(t, "bool")


defop("where", "condition, x, y", tensors="condition, x, y", promote="x, y",
      shape_rule=broadcast_rule, reference=_where_reference,
      grad=lambda g, out, c, x, y: (None, ops.where(c, g, 0), ops.where(c, 0, g)),
      samples=_where_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Where", lambda g, c, x, y: g.op("Where", [_as_bool(g, c), x, y]))},
      doc="""Elementwise ``x`` where ``condition`` is true, else ``y``, all three broadcast.

      ``condition`` should be ``bool`` (other dtypes are read as ``!= 0``); ``x`` and ``y``
      are promoted together.""")


# ---- trigonometry and friends -----------------------------------------------------------
_math("sin", _SIN, lambda g, out, x: (ops.multiply(g, ops.cos(x)),), S.unary(-5.0, 5.0),
      "Sin", "Elementwise sine.")
_math("cos", _math_fn(math.cos), lambda g, out, x: (ops.negative(ops.multiply(g, ops.sin(x))),),
      S.unary(-5.0, 5.0), "Cos", "Elementwise cosine.")
_math("tan", _math_fn(math.tan), lambda g, out, x: (ops.multiply(g, ops.add(ops.square(out), 1)),),
      S.unary(-1.2, 1.2), "Tan", "Elementwise tangent.")
_math("tanh", _TANH, lambda g, out, x: (ops.multiply(g, ops.subtract(1, ops.square(out))),),
      S.unary(-5.0, 5.0), "Tanh", "Elementwise hyperbolic tangent.")
_math("arctan", _math_fn(math.atan),
      lambda g, out, x: (ops.divide(g, ops.add(ops.square(x), 1)),),
      S.unary(-5.0, 5.0), "Atan", "Elementwise inverse tangent, in ``(-pi/2, pi/2)``.")

_math("erf", _math_fn(math.erf),
      lambda g, out, x: (ops.multiply(g, ops.multiply(ops.exp(ops.negative(ops.square(x))),
                                                      _TWO_OVER_SQRT_PI)),),
      S.unary(-4.0, 4.0), "Erf", "Elementwise error function ``2/sqrt(pi) * int_0^x e^-t^2 dt``.")


# ---- comparisons and logic (bool results, no gradient) ----------------------------------
_CMP_SAMPLES = _combine(_int_grid(-2, 2), S.binary(specials=False))


def _not_equal_onnx(g, x, y):
    return g.op("Not", [g.op("Equal", [x, y])])


def _logic_onnx(op_type):
    """ONNX ``And``/``Or``/``Not`` on the inputs read as bool."""
    return OnnxOp(op_type, lambda g, *xs: g.op(op_type, [_as_bool(g, x) for x in xs]))


def _float_test_onnx(op_type, fn):
    """``IsNaN``/``IsInf``-based tests; integer and bool inputs are always finite."""
    def convert(g, x):
        if not _is_float(g.dtype(x)):
            x = g.cast(x, "float32")
        return fn(g, x)

    return OnnxOp(op_type, convert)

for _name, _ref, _sym, _onnx in (
        ("equal", lambda a, b: a == b, "==", "Equal"),
        ("not_equal", lambda a, b: a != b, "!=", None),
        ("less", lambda a, b: a < b, "<", "Less"),
        ("less_equal", lambda a, b: a <= b, "<=", "LessOrEqual"),
        ("greater", lambda a, b: a > b, ">", "Greater"),
        ("greater_equal", lambda a, b: a >= b, ">=", "GreaterOrEqual")):
    defop(_name, "x, y", tensors="x, y", dtype_rule="bool", shape_rule=broadcast_rule,
          reference=_elementwise(_ref, np.bool_), differentiable=False, samples=_CMP_SAMPLES,
          dtypes=ALL, tol="exact",
          export={"onnx": _onnx} if _onnx else {"onnx": OnnxOp("Equal", _not_equal_onnx)},
          doc=f"Elementwise ``x {_sym} y`` (``bool``), after promoting ``x`` and ``y`` "
              "together. Comparisons with NaN are false (``not_equal``: true).")

_LOGIC_SAMPLES = _int_grid(-1, 1)
for _name, _ref, _onnx, _what in (
        ("logical_and", lambda a, b: bool(a) and bool(b), "And", "and"),
        ("logical_or", lambda a, b: bool(a) or bool(b), "Or", "or")):
    defop(_name, "x, y", tensors="x, y", dtype_rule="bool", shape_rule=broadcast_rule,
          reference=_elementwise(_ref, np.bool_), differentiable=False,
          samples=_LOGIC_SAMPLES, dtypes=ALL,
          tol="exact", export={"onnx": _logic_onnx(_onnx)},
          doc=f"Elementwise logical {_what} (``bool``); nonzero values (NaN too) are true.")


def _logic_unary_samples(dtype, rng):
    x = _int_grid(-1, 1)(dtype, rng)
    return [Sample((s.args[0],), name=s.name, grad=False) for s in x]


defop("logical_not", "x", dtype_rule="bool", shape_rule=same_shape,
      reference=_elementwise(lambda v: not v, np.bool_),
      differentiable=False, samples=_logic_unary_samples, dtypes=ALL, tol="exact",
      export={"onnx": _logic_onnx("Not")}, doc="Elementwise logical not (``bool``): ``x == 0``.")

for _name, _ref, _onnx, _doc in (
        ("isnan", math.isnan, _float_test_onnx("IsNaN", lambda g, x: g.op("IsNaN", [x])),
         "Elementwise test for NaN (``bool``)."),
        ("isinf", math.isinf, _float_test_onnx("IsInf", lambda g, x: g.op("IsInf", [x])),
         "Elementwise test for ``+-inf`` (``bool``)."),
        ("isfinite", math.isfinite, _float_test_onnx(
            "IsInf", lambda g, x: g.op("Not", [g.op("Or", [g.op("IsNaN", [x]),
                                                            g.op("IsInf", [x])])])),
         "Elementwise test for a finite value (``bool``).")):
    defop(_name, "x", dtype_rule="bool", shape_rule=same_shape,
          reference=_elementwise(_ref, np.bool_),
          differentiable=False, samples=S.unary(), dtypes=ALL, tol="exact",
          export={"onnx": _onnx} if _onnx else {},
          doc=_doc + " Integer and bool inputs are always finite.")
