"""Quantization ops: int8/uint8 tensors, integer contractions with int32 accumulation.

The semantics are ONNX's (``QuantizeLinear``, ``DequantizeLinear``, ``DynamicQuantizeLinear``,
``MatMulInteger``, ``ConvInteger``), so an exported model computes what unidl computes:

* ``quantize(x, scale, zero_point, axis, dtype)``: ``clip(round_half_even(x / scale) +
  zero_point, qmin, qmax)`` as ``dtype`` (``int8``: [-128, 127], ``uint8``: [0, 255]). The
  quotient is one correctly rounded division in ``x``'s dtype; infinities saturate; NaN gives
  an unspecified value (as in every framework). ``scale`` (and ``zero_point``) are scalars
  (per tensor) or vectors along ``axis`` (per channel).
* ``dequantize(x, scale, zero_point, axis)``: ``(x - zero_point) * scale``: the difference is
  exact (int32), its conversion exact, the product one correctly rounded multiplication in
  ``scale``'s dtype. So the float result is bitwise the same on every backend.
* ``dynamic_quantize(x)``: ``DynamicQuantizeLinear``: uint8 with the range of ``x`` (widened
  to hold 0): ``scale = (max - min) / 255`` (1 when ``max == min``, as ONNX Runtime), ``zero_point =
  round_half_even(-min / scale)`` clipped to [0, 255], then ``quantize``. float32 only: every
  step is one correctly rounded float32 operation, so the reference emulates float32.
* ``quantized_matmul(a, b, a_zero_point, b_zero_point)``: ``(a - a_zp) @ (b - b_zp)`` exactly,
  as int32 (``MatMulInteger``); ``a`` ``(..., K)``, ``b`` ``(K, N)``; ``a_zero_point`` a
  scalar, ``b_zero_point`` a scalar or ``(N,)`` (per output column).
* ``quantized_conv2d(x, kernel, x_zero_point, kernel_zero_point, strides, padding,
  dilation_rate)``: ``conv2d(x - x_zp, kernel - k_zp)`` exactly, as int32 (``ConvInteger``),
  channels-last ``(N, H, W, C)``, kernel ``(kh, kw, C, O)`` (Keras's layout), padding
  ``"valid"``/``"same"`` (TensorFlow's rule) or explicit; the padding holds ``x_zp`` (zero
  after the shift). ``kernel_zero_point``: a scalar or ``(O,)``.
* ``fake_quant(x, scale, zero_point, axis, quant_dtype)``: ``dequantize(quantize(x))`` in
  ``x``'s dtype, with the straight-through gradient: the cotangent passes unchanged where
  ``x`` lies in the representable range ``[(qmin - zp) * scale, (qmax - zp) * scale]`` and is zero
  outside; ``scale`` gets the gradient of the dequantization, ``sum g * (q - zero_point)``
  (``zero_point`` none). For quantization-aware training.

Integer results are exact, so the conformance suite compares them bit for bit; the float
results of ``dequantize``, ``dynamic_quantize`` and ``fake_quant`` are single correctly
rounded operations, judged ``exact`` too (the float64 reference rounded once to the output's
dtype).

Kernels may accumulate in floating point where that is faster than the framework's integer
GEMM: the shifted operands are integers, and a sum of ``n`` products of magnitude at most
``m`` is exact in any order while ``n * m`` stays below 2**24 (float32: NumPy's GEMM, in
chunks that fit) or 2**53 (float64: the convolutions of torch and TensorFlow, which use
im2col or patch contractions on float64, never Winograd or FFT).
"""

from __future__ import annotations

import math
import struct

import numpy as np

from unidl import ops
from unidl.export.rules import OnnxOp
from unidl.spec import _textbook as T
from unidl.spec.conv import _taps, _window, conv_geometry
from unidl.spec.core import COMPOSITE, Sample, ShapeMismatch, defop

__all__ = ["QRANGES", "qrange", "along_axis"]

#: (qmin, qmax) of each quantized dtype
QRANGES = {"int8": (-128, 127), "uint8": (0, 255)}
FLOATS = ("float32", "float64")


def qrange(dtype) -> tuple[int, int]:
    """``(qmin, qmax)`` of quantized ``dtype`` (``"int8"`` or ``"uint8"``).

    Example:
        >>> qrange("uint8")
        (0, 255)
    """
    try:
        return QRANGES[str(dtype)]
    except KeyError:
        raise ShapeMismatch(f"expected a quantized dtype 'int8' or 'uint8', got "
                            f"{dtype!r}") from None


# ---- shape rules ------------------------------------------------------------------------------
def _check_param(name, shape, x, axis):
    """A scale or zero point: a scalar, or a vector of ``x.shape[axis]`` with ``axis``."""
    shape = tuple(shape)
    if axis is None:
        if shape not in ((), (1,)):
            raise ShapeMismatch(f"expected a scalar {name} (per-tensor; give axis= for "
                                f"per-channel), got shape {shape}")
        return
    if not -len(x) <= int(axis) < len(x):
        raise ShapeMismatch(f"expected axis in [{-len(x)}, {len(x)}) for an input of shape "
                            f"{tuple(x)}, got {axis}")
    n = x[int(axis)]
    if len(shape) != 1 or (n is not None and shape[0] not in (n, 1)):
        raise ShapeMismatch(f"expected {name} of shape ({n},) (input axis {axis}), got "
                            f"{shape}")


def _quantize_rule(x, scale, zero_point=None, axis=None, dtype="int8"):
    qrange(dtype)
    _check_param("scale", scale, x, axis)
    if zero_point is not None:
        _check_param("zero_point", zero_point, x, axis)
    return tuple(x)


def _dequantize_rule(x, scale, zero_point=None, axis=None):
    _check_param("scale", scale, x, axis)
    if zero_point is not None:
        _check_param("zero_point", zero_point, x, axis)
    return tuple(x)


def _qmatmul_rule(a, b, a_zero_point=None, b_zero_point=None):
    a, b = tuple(a), tuple(b)
    if len(a) < 1 or len(b) != 2:
        raise ShapeMismatch(f"expected a of shape (..., K) and b of shape (K, N), got {a} "
                            f"and {b}")
    if a[-1] is not None and b[0] is not None and a[-1] != b[0]:
        raise ShapeMismatch(f"expected a's last dimension ({a[-1]}) to equal b's first "
                            f"({b[0]}): shapes {a} and {b}")
    if a_zero_point is not None and tuple(a_zero_point) not in ((), (1,)):
        raise ShapeMismatch(f"expected a scalar a_zero_point, got shape {tuple(a_zero_point)}")
    if b_zero_point is not None and tuple(b_zero_point) not in ((), (1,), (b[1],)):
        raise ShapeMismatch(f"expected b_zero_point a scalar or of shape ({b[1]},), got "
                            f"shape {tuple(b_zero_point)}")
    return a[:-1] + (b[1],)


def _qconv_rule(x, kernel, x_zero_point=None, kernel_zero_point=None, strides=1,
                padding="valid", dilation_rate=1):
    geo = conv_geometry(tuple(x), tuple(kernel), strides, padding, "channels_last",
                        dilation_rate, 1, 2, "quantized_conv2d")
    o = kernel[-1]
    if x_zero_point is not None and tuple(x_zero_point) not in ((), (1,)):
        raise ShapeMismatch(f"expected a scalar x_zero_point, got shape {tuple(x_zero_point)}")
    if kernel_zero_point is not None and tuple(kernel_zero_point) not in ((), (1,), (o,)):
        raise ShapeMismatch(f"expected kernel_zero_point a scalar or of shape ({o},), got "
                            f"shape {tuple(kernel_zero_point)}")
    return geo.out_shape(o)


# ---- float64 references (Python scalars; see unidl/spec/_textbook.py) -------------------------
def _param(v, x_shape, axis):
    """``idx -> value`` of a per-tensor or per-axis parameter (None: 0)."""
    if v is None:
        return lambda idx: 0
    flat = T.flat_values(v)
    if axis is None or len(flat) == 1:
        return lambda idx: flat[0]
    a = int(axis) % len(x_shape)
    return lambda idx: flat[idx[a]]


def _half_even(v: float) -> float:
    """``v`` rounded to the nearest integer, ties to even (Python's ``round``); infinities
    kept."""
    return v if math.isinf(v) else float(round(v))


def _quantize_reference(x, scale, zero_point=None, axis=None, dtype="int8"):
    """``clip(round(x / scale) + zp)`` element by element (the samples keep every quotient
    away from a rounding boundary, or exactly on one, so float32 and float64 quotients
    round alike)."""
    lo, hi = QRANGES[dtype]
    x = np.asarray(x)
    s, z = _param(scale, x.shape, axis), _param(zero_point, x.shape, axis)
    read = T.reader(x)
    vals = [min(max(_half_even(T.div(read(i), s(i))) + z(i), lo), hi)
            for i in T.positions(x.shape)]
    return T.array_of([int(v) for v in vals], x.shape, np.dtype(dtype))


def _dequantize_reference(x, scale, zero_point=None, axis=None):
    """``(x - zp) * scale`` element by element (exact in float64 for float32 scales: the
    suite rounds it once to the output's dtype)."""
    x = np.asarray(x)
    s, z = _param(scale, x.shape, axis), _param(zero_point, x.shape, axis)
    read = T.reader(x)
    return T.array_of([(int(read(i)) - int(z(i))) * s(i) for i in T.positions(x.shape)],
                      x.shape, np.float64)


def _f32(v: float) -> float:
    """``v`` rounded to the nearest float32 (IEEE, ties to even), via ``struct``."""
    if math.isinf(v) or math.isnan(v):
        return v
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _dynamic_reference(x):
    """DynamicQuantizeLinear step by step, each operation rounded to float32 (a single
    double operation on float32 values rounded to float32 is the float32 operation)."""
    values = T.flat_values(x)
    lo = min([0.0] + values)
    hi = max([0.0] + values)
    scale = 1.0 if hi == lo else _f32(_f32(hi - lo) / 255.0)
    zp = int(min(max(_half_even(-_f32(lo / scale)), 0), 255))
    q = [int(min(max(_half_even(_f32(v / scale)) + zp, 0), 255)) for v in values]
    return [T.array_of(q, np.shape(x), np.uint8), np.asarray(scale, np.float64),
            np.asarray(zp, np.uint8)]


def _qmatmul_reference(a, b, a_zero_point=None, b_zero_point=None):
    """``out[..., n] = sum_k (a[..., k] - a_zp) * (b[k, n] - b_zp[n])`` in Python ints."""
    a, b = np.asarray(a), np.asarray(b)
    k, n = b.shape
    az = _param(a_zero_point, (1,), None)(())
    bz = _param(b_zero_point, b.shape, None if b_zero_point is None or
                len(T.flat_values(b_zero_point)) == 1 else 1)
    cols = [[int(b[i, j]) - int(bz((i, j))) for i in range(k)] for j in range(n)]
    lead = a.shape[:-1]
    rows = [[int(v) - int(az) for v in a[idx]] for idx in T.positions(lead)]
    vals = [T.dot(r, c) for r in rows for c in cols]
    return T.finish(vals, lead + (n,), np.int32)


def _qconv_reference(x, kernel, x_zero_point=None, kernel_zero_point=None, strides=1,
                     padding="valid", dilation_rate=1):
    """``out[b, p, o] = sum over taps t and channels c of (x[b, p*s + t*d - pad, c] - x_zp)
    * (kernel[t, c, o] - k_zp[o])``; taps on the padding contribute nothing."""
    x, kernel = np.asarray(x), np.asarray(kernel)
    xz = int(_param(x_zero_point, (1,), None)(()))
    kz = _param(kernel_zero_point, kernel.shape, None if kernel_zero_point is None or
                len(T.flat_values(kernel_zero_point)) == 1 else 3)
    win = _window(x.shape[1:3], kernel.shape[:2], strides, dilation_rate, padding)
    nb, c, o = x.shape[0], kernel.shape[2], kernel.shape[3]
    vals = []
    for b in range(nb):
        for pos in T.positions(win.out):
            taps = _taps(win, pos)
            for oi in range(o):
                xs = [int(x[b, src[0], src[1], ci]) - xz for _, src in taps for ci in range(c)]
                ws = [int(kernel[tap[0], tap[1], ci, oi]) - int(kz((0, 0, 0, oi)))
                      for tap, _ in taps for ci in range(c)]
                vals.append(T.dot(xs, ws))
    return T.finish(vals, (nb, *win.out, o), np.int32)


def _fake_quant_reference(x, scale, zero_point=None, axis=None, dtype="int8"):
    q = _quantize_reference(x, scale, zero_point, axis, dtype)
    return _dequantize_reference(q, scale, zero_point, axis)


# ---- composites ---------------------------------------------------------------------------
def along_axis(v, ndim: int, axis):
    """A per-tensor or per-axis parameter reshaped to broadcast against a rank-``ndim``
    tensor (``axis`` None: as it is)."""
    if axis is None or v is None:
        return v
    shape = [1] * ndim
    shape[int(axis) % ndim] = -1
    return ops.reshape(v, tuple(shape))


def _dynamic_composite(x):
    """DynamicQuantizeLinear from other ops (see the module docstring)."""
    lo = ops.minimum(ops.min(x), 0.0)
    hi = ops.maximum(ops.max(x), 0.0)
    scale = ops.divide(ops.subtract(hi, lo), 255.0)
    scale = ops.where(ops.equal(hi, lo), ops.ones_like(scale), scale)
    zp = ops.clip(ops.round(ops.negative(ops.divide(lo, scale))), 0.0, 255.0)
    zp = ops.cast(zp, "uint8")
    return (ops.quantize(x, scale, zp, None, "uint8"), scale, zp)


def _fake_quant_composite(x, scale, zero_point=None, axis=None, dtype="int8"):
    """``dequantize(quantize(x))`` forward; straight-through gradient inside the range:
    ``q + (xc - stop_gradient(xc))`` is ``q`` exactly (``xc`` is finite) and has the
    gradient of ``xc = clip(x, lo, hi)``."""
    qmin, qmax = qrange(dtype)
    nd = len(ops.shape(x))
    q = ops.dequantize(ops.quantize(x, scale, zero_point, axis, dtype), scale, zero_point,
                       axis)
    s = along_axis(scale, nd, axis)
    zf = 0.0 if zero_point is None else ops.cast(along_axis(zero_point, nd, axis),
                                                 ops.dtype(x))
    # (the bounds, not the scale, are held constant: stop_gradient may return its input
    # itself, and a traced graph would then see the op's own argument replaced)
    lo = ops.stop_gradient(ops.multiply(ops.subtract(float(qmin), zf), s))
    hi = ops.stop_gradient(ops.multiply(ops.subtract(float(qmax), zf), s))
    xc = ops.minimum(ops.maximum(x, lo), hi)
    return ops.add(q, ops.subtract(xc, ops.stop_gradient(xc)))


# ---- gradient -----------------------------------------------------------------------------
def _dequantize_grad(g, out, x, scale, zero_point=None, axis=None):
    """Only ``scale`` has a cotangent: ``sum g * (x - zp)`` over the axes it is shared by."""
    q = ops.cast(x, ops.dtype(g))
    if zero_point is not None:
        q = ops.subtract(q, ops.cast(along_axis(zero_point, len(ops.shape(x)), axis),
                                     ops.dtype(g)))
    prod = ops.multiply(g, q)
    nd = len(ops.shape(x))
    if axis is None:
        ds = ops.reshape(ops.sum(prod), ops.shape(scale))
    else:
        a = int(axis) % nd
        ds = ops.sum(prod, tuple(i for i in range(nd) if i != a))
        if ops.shape(scale)[0] == 1:
            ds = ops.reshape(ops.sum(ds), (1,))
    return (None, ds, None)


# ---- samples ------------------------------------------------------------------------------
def _quotients(rng, shape, scale, lo=-140, hi=140):
    """Values whose quotients by ``scale`` lie at least 0.05 from a rounding boundary: an
    integer plus a fraction in [0.05, 0.45] or [0.55, 0.95]."""
    k = rng.integers(lo, hi, size=shape)
    f = rng.uniform(0.05, 0.45, size=shape) + 0.5 * rng.integers(0, 2, size=shape)
    return (k + f) * scale


def _qsamples(dtype, rng):
    """Samples for quantize and fake_quant (args: x, scale, zero_point, axis, dtype)."""
    out = []
    for qd in ("int8", "uint8"):
        zp = np.asarray(3 if qd == "int8" else 128, np.int64)
        s = np.asarray(0.037)
        out.append(Sample((_quotients(rng, (4, 5), 0.037), s, zp, None, qd),
                          name=f"per_tensor_{qd}", keep=(2,), grad=False))
    ties = (np.arange(-12, 12) + 0.5) * 0.25  # exact halves: ties round to even
    out.append(Sample((ties, np.asarray(0.25), None, None, "int8"), name="ties_to_even",
                      keep=(2,), grad=False))
    sat = np.array([-1e6, -300.0, 300.0, 1e6, np.inf, -np.inf, 0.0, -0.0])
    out.append(Sample((sat, np.asarray(0.5), np.asarray(-5, np.int64), None, "int8"),
                      name="saturate", keep=(2,), grad=False))
    scales = np.array([0.01, 0.2, 1.5])
    x = _quotients(rng, (2, 4, 3), 1.0, -100, 100) * scales
    out.append(Sample((x, scales, np.array([0, 4, -7]), -1, "int8"), name="per_channel_last",
                      keep=(2,), grad=False))
    x = _quotients(rng, (3, 2, 2), 1.0, -100, 100) * scales[:, None, None]
    out.append(Sample((x, scales, None, 0, "int8"), name="per_channel_axis0", keep=(2,),
                      grad=False))
    out.append(Sample((np.zeros((0, 3)), scales, np.array([1, 2, 3]), 1, "uint8"),
                      name="empty", keep=(2,), grad=False))
    return out


def _dq_samples(dtype, rng):
    out = []
    for qd, (lo, hi) in QRANGES.items():
        q = rng.integers(lo, hi + 1, size=(3, 5)).astype(qd)
        zp = np.asarray(-3 if qd == "int8" else 131, qd)
        out.append(Sample((q, np.asarray(0.0371), zp, None), name=f"per_tensor_{qd}",
                          keep=(0, 2)))
    q = rng.integers(-128, 128, size=(2, 3, 4)).astype(np.int8)
    out.append(Sample((q, rng.uniform(0.001, 0.3, 4), np.array([0, 1, -2, 5], np.int8), -1),
                      name="per_channel_last", keep=(0, 2)))
    out.append(Sample((q, rng.uniform(0.001, 0.3, 2), None, 0), name="per_channel_axis0",
                      keep=(0, 2)))
    acc = rng.integers(-2 ** 23, 2 ** 23, size=(3, 4)).astype(np.int32)
    out.append(Sample((acc, np.asarray(1.3e-4), None, None), name="int32_accumulator",
                      keep=(0, 2)))
    out.append(Sample((np.zeros((0, 4), np.int8), np.asarray(0.5), None, None),
                      name="empty", keep=(0, 2), grad=False))
    return out


def _dynamic_samples(dtype, rng):
    x = rng.normal(size=(4, 6)) * 3.0
    return [Sample((x,), name="normal", grad=False),
            Sample((np.abs(x) + 0.5,), name="positive", grad=False),
            Sample((-np.abs(x) - 0.5,), name="negative", grad=False),
            Sample((np.zeros((2, 3)),), name="zeros", grad=False),
            Sample((rng.uniform(-1e-3, 2e-3, size=(3, 2, 2)),), name="tiny", grad=False)]


def _ints(rng, shape, dtype):
    lo, hi = QRANGES[dtype]
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def _qmm_samples(dtype, rng):
    def a(shape):
        return _ints(rng, shape, dtype)

    azp = np.asarray(5 if dtype == "int8" else 128, dtype)
    w = _ints(rng, (7, 4), "int8")
    return [
        Sample((a((3, 7)), w, None, None), name="no_zero_points", keep=(1, 3)),
        Sample((a((3, 7)), w, azp, np.asarray(-2, np.int8)), name="scalar_zero_points",
               keep=(1, 3)),
        Sample((a((2, 3, 7)), w, azp, np.array([0, 1, -1, 3], np.int8)),
               name="batched_per_column", keep=(1, 3)),
        Sample((a((5, 300)), _ints(rng, (300, 3), "int8"), azp, None), name="long_k",
               keep=(1, 3)),
        Sample((a((0, 7)), w, azp, None), name="empty", keep=(1, 3)),
    ]


# (name, x shape, kernel shape, strides, padding, dilation)
_QCONV_CASES = [
    ("valid", (2, 5, 6, 3), (3, 3, 3, 4), 1, "valid", 1),
    ("same_s2", (2, 7, 8, 3), (3, 3, 3, 4), 2, "same", 1),
    ("same_even_k", (1, 6, 5, 2), (2, 4, 2, 3), 1, "same", 1),
    ("dilation2", (1, 7, 7, 2), (3, 3, 2, 2), 1, "same", 2),
    ("explicit_pairs", (1, 5, 6, 2), (3, 2, 2, 2), (2, 1), ((1, 2), (0, 1)), 1),
]


def _qconv_samples(dtype, rng):
    out = []
    xzp = np.asarray(7 if dtype == "int8" else 120, dtype)
    for k, (name, xs, ks, s, p, d) in enumerate(_QCONV_CASES):
        x = _ints(rng, xs, dtype)
        w = _ints(rng, ks, "int8")
        kzp = np.arange(ks[-1], dtype=np.int8) - 1 if k % 2 else None
        out.append(Sample((x, w, xzp, kzp, s, p, d), name=name, keep=(1, 3)))
    out.append(Sample((np.zeros((0, 5, 6, 3), dtype), _ints(rng, (3, 3, 3, 4), "int8"),
                       xzp, None, 1, "valid", 1), name="empty_batch", keep=(1, 3)))
    return out


# ---- ONNX ---------------------------------------------------------------------------------
def _zero_point(g, zp, dtype, like=None):
    """An ONNX zero point of ``dtype``: ``zp`` cast, or zeros shaped as ``like``."""
    if zp is None:
        shape = () if like is None else g.shape(like)
        return g.const(np.zeros(shape), dtype, hint="zero_point")
    return zp if g.dtype(zp) == dtype else g.cast(zp, dtype)


def _axis_attrs(g, scale, axis):
    if axis is None or g.shape(scale) in ((), (1,)):
        return {}
    return {"axis": int(axis)}


def _quantize_onnx(g, x, scale, zero_point=None, axis=None, dtype="int8"):
    if g.dtype(x) != "float32":
        g.unsupported(f"QuantizeLinear takes float32 inputs, got {g.dtype(x)}")
    attrs = _axis_attrs(g, scale, axis)
    if not attrs and g.shape(scale) == (1,):
        scale = g.op("Reshape", [scale, g.ints([])])
    like = scale if attrs else None
    zp = _zero_point(g, zero_point, dtype, like)
    if not attrs and g.shape(zp) == (1,):
        zp = g.op("Reshape", [zp, g.ints([])])
    return g.op("QuantizeLinear", [x, scale, zp], **attrs)


def _dequantize_onnx(g, x, scale, zero_point=None, axis=None):
    if g.dtype(scale) != "float32":
        g.unsupported(f"DequantizeLinear gives float32 outputs, got scale {g.dtype(scale)}")
    attrs = _axis_attrs(g, scale, axis)
    if g.dtype(x) == "int32":
        if zero_point is not None:  # (ONNX needs a zero int32 zero point: shift first)
            x = g.op("Sub", [x, g.cast(zero_point, "int32")])
        return g.op("DequantizeLinear", [x, scale], **attrs)
    zp = _zero_point(g, zero_point, g.dtype(x), scale if attrs else None)
    return g.op("DequantizeLinear", [x, scale, zp], **attrs)


def _dynamic_onnx(g, x):
    if g.dtype(x) != "float32":
        g.unsupported(f"DynamicQuantizeLinear takes float32 inputs, got {g.dtype(x)}")
    return g.op("DynamicQuantizeLinear", [x], outputs=3)


def _qmatmul_onnx(g, a, b, a_zero_point=None, b_zero_point=None):
    azp = None if a_zero_point is None else _zero_point(g, a_zero_point, g.dtype(a))
    bzp = None if b_zero_point is None else _zero_point(g, b_zero_point, g.dtype(b))
    if azp is not None and g.shape(azp) == (1,):
        azp = g.op("Reshape", [azp, g.ints([])])
    if bzp is not None and g.shape(bzp) == (1,):
        bzp = g.op("Reshape", [bzp, g.ints([])])
    return g.op("MatMulInteger", [a, b, azp, bzp])


def _qconv_onnx(g, x, kernel, x_zero_point=None, kernel_zero_point=None, strides=1,
                padding="valid", dilation_rate=1):
    """``ConvInteger`` on NCHW, the padding made explicit with ``Pad`` holding ``x_zp`` (so
    it does not depend on how a runtime pads), the kernel as ``(O, C, kh, kw)``."""
    shape = g.shape(x)
    geo = conv_geometry(shape, g.shape(kernel), strides, padding, "channels_last",
                        dilation_rate, 1, 2, "quantized_conv2d")
    xzp = _zero_point(g, x_zero_point, g.dtype(x))
    if g.shape(xzp) == (1,):
        xzp = g.op("Reshape", [xzp, g.ints([])])
    xc = g.transpose(x, [0, 3, 1, 2])
    (t, b), (le, r) = geo.pads
    if t or b or le or r:
        xc = g.op("Pad", [xc, g.ints([0, 0, t, le, 0, 0, b, r]), xzp])
    w = g.transpose(kernel, [3, 2, 0, 1])
    attrs = dict(strides=list(geo.strides), dilations=list(geo.dilation),
                 kernel_shape=list(geo.kernel))
    kzp = None if kernel_zero_point is None else _zero_point(g, kernel_zero_point,
                                                            g.dtype(kernel))
    per_channel = kzp is not None and g.shape(kzp) not in ((), (1,))
    if kzp is not None and not per_channel:
        kzp = g.op("Reshape", [kzp, g.ints([])])
    y = g.op("ConvInteger", [xc, w, xzp, None if per_channel else kzp], **attrs)
    if per_channel:
        # ONNX Runtime's ConvInteger takes one kernel zero point: subtract k_zp[o] times
        # each window's sum of (x - x_zp), itself a ConvInteger with a kernel of ones
        ones = g.const(np.ones((1, geo.channels) + tuple(geo.kernel)), g.dtype(kernel))
        sums = g.op("ConvInteger", [xc, ones, xzp], **attrs)
        k32 = g.op("Reshape", [g.cast(kzp, "int32"), g.ints([1, -1, 1, 1])])
        y = g.op("Sub", [y, g.op("Mul", [sums, k32])])
    return g.transpose(y, [0, 2, 3, 1])


def _fake_quant_onnx(g, x, scale, zero_point=None, axis=None, dtype="int8"):
    q = _quantize_onnx(g, x, scale, zero_point, axis, dtype)
    g.info[q] = (g.shape(x), dtype)
    return _dequantize_onnx(g, q, scale, zero_point, axis)


# ---- declarations -------------------------------------------------------------------------
_int32 = lambda *args: "int32"  # noqa: E731

defop("quantize", "x, scale, zero_point=None, axis=None, dtype='int8'",
      tensors="x, scale, zero_point", promote="x, scale", dtype_rule="dtype_arg",
      shape_rule=_quantize_rule, reference=_quantize_reference, differentiable=False,
      samples=_qsamples, dtypes=FLOATS, tol="exact",
      export={"onnx": OnnxOp("QuantizeLinear", _quantize_onnx)},
      doc="""``x`` quantized to ``dtype`` (``int8`` or ``uint8``), as ONNX QuantizeLinear:
      ``clip(round_half_even(x / scale) + zero_point, qmin, qmax)``. ``scale`` and
      ``zero_point`` (default 0) are scalars, or vectors along ``axis`` (per channel).""")

defop("dequantize", "x, scale, zero_point=None, axis=None",
      tensors="x, scale, zero_point", promote="scale",
      shape_rule=_dequantize_rule, reference=_dequantize_reference, grad=_dequantize_grad,
      samples=_dq_samples, dtypes=FLOATS, tol="exact",
      export={"onnx": OnnxOp("DequantizeLinear", _dequantize_onnx)},
      doc="""``(x - zero_point) * scale`` in ``scale``'s dtype, as ONNX DequantizeLinear;
      ``x`` int8, uint8 or int32 (an accumulator). Per tensor or per channel along
      ``axis``. Differentiable in ``scale``.""")

defop("dynamic_quantize", "x", kind=COMPOSITE, impl=_dynamic_composite,
      dtype_rule=lambda x: ["uint8", x, "uint8"],
      shape_rule=lambda x: [tuple(x), (), ()], reference=_dynamic_reference,
      differentiable=False, samples=_dynamic_samples, dtypes=("float32",), tol="exact",
      export={"onnx": OnnxOp("DynamicQuantizeLinear", _dynamic_onnx)},
      doc="""``(q, scale, zero_point)``: ``x`` quantized to uint8 over its own range (which
      always holds 0), as ONNX DynamicQuantizeLinear: ``scale = (max - min) / 255``,
      ``zero_point = round(-min / scale)``.""")

defop("quantized_matmul", "a, b, a_zero_point=None, b_zero_point=None",
      tensors="a, b, a_zero_point, b_zero_point", promote=(), dtype_rule=_int32,
      shape_rule=_qmatmul_rule, reference=_qmatmul_reference, differentiable=False,
      samples=_qmm_samples, dtypes=("uint8", "int8"), tol="exact",
      export={"onnx": OnnxOp("MatMulInteger", _qmatmul_onnx)},
      doc="""``(a - a_zero_point) @ (b - b_zero_point)`` exactly, as int32 (ONNX
      MatMulInteger): ``a`` (..., K) and ``b`` (K, N) int8 or uint8; ``a_zero_point`` a
      scalar, ``b_zero_point`` a scalar or (N,).""")

defop("quantized_conv2d", "x, kernel, x_zero_point=None, kernel_zero_point=None, strides=1, "
      "padding='valid', dilation_rate=1",
      tensors="x, kernel, x_zero_point, kernel_zero_point", promote=(), dtype_rule=_int32,
      shape_rule=_qconv_rule, reference=_qconv_reference, differentiable=False,
      samples=_qconv_samples, dtypes=("uint8", "int8"), tol="exact",
      export={"onnx": OnnxOp("ConvInteger", _qconv_onnx)},
      doc="""``conv2d(x - x_zero_point, kernel - kernel_zero_point)`` exactly, as int32
      (ONNX ConvInteger), channels-last: ``x`` (N, H, W, C), ``kernel`` (kh, kw, C, O), int8
      or uint8; padding ``"valid"``, ``"same"`` (TensorFlow's rule) or explicit, holding the
      zero point; ``kernel_zero_point`` a scalar or (O,).""")

defop("fake_quant", "x, scale, zero_point=None, axis=None, quant_dtype='int8'", kind=COMPOSITE,
      impl=_fake_quant_composite, tensors="x, scale, zero_point", promote="x, scale",
      shape_rule=_quantize_rule, reference=_fake_quant_reference, samples=_qsamples,
      dtypes=FLOATS, tol="exact",
      export={"onnx": OnnxOp("QuantizeLinear", _fake_quant_onnx)},
      doc="""``dequantize(quantize(x, ..., quant_dtype))`` in ``x``'s dtype, with the
      straight-through gradient: the cotangent passes where ``x`` is in the representable
      range, zero outside; ``scale`` gets ``sum g * (q - zero_point)``, ``zero_point``
      none (quantization-aware training). Its
      samples have no gradient check: finite differences of a step function are not the
      straight-through estimator (tests/test_quantization.py checks it).""")
