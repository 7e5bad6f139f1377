"""JAX quantization kernels (see unidl/spec/quant.py for the semantics).

``quantize`` divides once in ``x``'s dtype, rounds half to even (``jnp.round``), adds the zero
point and saturates before the cast. ``quantized_matmul`` is an integer ``dot_general`` of the
shifted operands accumulating in int32 (exact, as ONNX MatMulInteger). ``quantized_conv2d``
runs ``lax.conv_general_dilated`` in float64 on the shifted operands (NHWC input, HWIO kernel:
unidl's layout): they are integers, so every sum of products is exact below 2**53, in any
order and on any device; the result is rounded before the cast all the same, should a
device's algorithm not be a plain sum of products. The padding, zeros after the shift,
holds the input's zero point.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from unidl import dtypes as _dt
from unidl.spec.conv import conv_geometry
from unidl.spec.quant import qrange


def _along(v, ndim: int, axis):
    """A per-tensor or per-axis parameter shaped to broadcast against rank ``ndim``."""
    if axis is None or v.size == 1:
        return jnp.reshape(v, ())
    shape = [1] * ndim
    shape[int(axis) % ndim] = -1
    return jnp.reshape(v, shape)


def quantize(x, scale, zero_point, axis, dtype):
    lo, hi = qrange(dtype)
    q = jnp.round(x / _along(scale, x.ndim, axis))
    if zero_point is not None:
        q = q + _along(zero_point, x.ndim, axis).astype(x.dtype)
    return jnp.clip(q, lo, hi).astype(_dt.numpy_dtype(dtype))


def dequantize(x, scale, zero_point, axis):
    q = x.astype(jnp.int32)
    if zero_point is not None:
        q = q - _along(zero_point, x.ndim, axis).astype(jnp.int32)
    return q.astype(scale.dtype) * _along(scale, x.ndim, axis)


def _shifted(v, zp, dtype):
    """``v - zp`` in ``dtype`` (``zp``: None, a scalar or a vector along the last axis)."""
    v = v.astype(dtype)
    if zp is None:
        return v
    return v - jnp.reshape(zp.astype(dtype), () if zp.size == 1 else (-1,))


def quantized_matmul(a, b, a_zero_point, b_zero_point):
    a2 = _shifted(a, a_zero_point, jnp.int32)
    b2 = _shifted(b, b_zero_point, jnp.int32)
    return lax.dot_general(a2, b2, (((a.ndim - 1,), (0,)), ((), ())),
                           preferred_element_type=jnp.int32)


def quantized_conv2d(x, kernel, x_zero_point, kernel_zero_point, strides, padding,
                     dilation_rate):
    geo = conv_geometry(x.shape, kernel.shape, strides, padding, "channels_last",
                        dilation_rate, 1, 2, "quantized_conv2d")
    y = lax.conv_general_dilated(
        _shifted(x, x_zero_point, jnp.float64), _shifted(kernel, kernel_zero_point, jnp.float64),
        window_strides=geo.strides, padding=geo.pads, rhs_dilation=geo.dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=lax.Precision.HIGHEST)
    return jnp.round(y).astype(jnp.int32)  # (exact already; the round guards the cast)


KERNELS = {
    "quantize": quantize,
    "dequantize": dequantize,
    "quantized_matmul": quantized_matmul,
    "quantized_conv2d": quantized_conv2d,
}
