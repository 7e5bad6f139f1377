"""NumPy quantization kernels (see unidl/spec/quant.py for the semantics).

Integer contractions run on BLAS in float32, exactly: the operands, shifted by their zero
points, are integers, and a sum of ``n`` products ``|a| * |b| <= m`` never rounds in float32
while ``n * m <= 2**24`` (every partial sum is then an integer float32 holds, in any order and
with or without FMA). A contraction longer than that is cut into chunks of at most that many
terms, each chunk exact, and the chunks' results are added in int64. This is several times
faster than NumPy's integer ``matmul``, which has no BLAS, and than float64. The convolution
is this backend's im2col + matmul ``conv2d`` (a plain sum of products per output, so the same
bound applies), in float32 when the whole window fits the bound, else in float64 (exact up to
``2**53``).
"""

from __future__ import annotations

import numpy as np

from unidl_numpy.kernels.conv import KERNELS as _CONV

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
_F32_EXACT = float(2 ** 24)  # integers up to this are exact in float32


def _along(v, ndim, axis):
    """A per-tensor or per-axis parameter shaped to broadcast against rank ``ndim``."""
    v = np.asarray(v)
    if axis is None or v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[int(axis) % ndim] = -1
    return v.reshape(shape)


def quantize(x, scale, zero_point, axis, dtype):
    lo, hi = _RANGES[dtype]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        q = np.rint(np.divide(x, _along(scale, x.ndim, axis)))
        if zero_point is not None:
            q = q + _along(zero_point, x.ndim, axis).astype(x.dtype)
        return np.clip(q, lo, hi).astype(dtype)


def dequantize(x, scale, zero_point, axis):
    q = x.astype(np.int32)
    if zero_point is not None:
        q = q - _along(zero_point, x.ndim, axis).astype(np.int32)
    return q.astype(scale.dtype) * _along(scale, x.ndim, axis)


def _shifted(v, zp, dtype=np.float32):
    v = v.astype(dtype)
    return v if zp is None else v - np.asarray(zp).astype(dtype).reshape(
        () if np.size(zp) == 1 else (-1,))


def _exact_terms(a, b) -> int:
    """How many products of elements of ``a`` and ``b`` float32 sums exactly (at least 1)."""
    m = float(np.abs(a).max(initial=0.0)) * float(np.abs(b).max(initial=0.0))
    return max(1, int(_F32_EXACT // m)) if m else 1 << 62


def quantized_matmul(a, b, a_zero_point, b_zero_point):
    k, n = b.shape
    a2 = _shifted(a.reshape(-1, k), a_zero_point)
    b2 = _shifted(b, b_zero_point)
    step = _exact_terms(a2, b2)
    if step >= k:
        y = (a2 @ b2).astype(np.int32)
    else:
        y = np.zeros((a2.shape[0], n), np.int64)
        for i in range(0, k, step):
            y += (a2[:, i:i + step] @ b2[i:i + step]).astype(np.int64)
        y = y.astype(np.int32)
    return y.reshape(a.shape[:-1] + (n,))


def quantized_conv2d(x, kernel, x_zero_point, kernel_zero_point, strides, padding,
                     dilation_rate):
    xs, ks = _shifted(x, x_zero_point), _shifted(kernel, kernel_zero_point)
    window = int(np.prod(kernel.shape[:-1]))
    if _exact_terms(xs, ks) < window:
        xs, ks = xs.astype(np.float64), ks.astype(np.float64)
    y = _CONV["conv2d"](xs, ks, strides, padding, "channels_last", dilation_rate, 1, None)
    return y.astype(np.int32)


KERNELS = {
    "quantize": quantize,
    "dequantize": dequantize,
    "quantized_matmul": quantized_matmul,
    "quantized_conv2d": quantized_conv2d,
}
