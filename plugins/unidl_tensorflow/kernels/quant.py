"""TensorFlow quantization kernels (see unidl/spec/quant.py for the semantics).

``quantized_matmul`` is an int32 ``tf.linalg.matmul`` of the shifted operands (Eigen's
integer GEMM: exact, and faster than float64 here); ``quantized_conv2d`` runs this backend's
float64 ``conv2d`` (Eigen's spatial convolution, a contraction of patches: exact, see the
spec; TensorFlow has no int32 Conv2D on CPU).

Divisions use ``tf.math.divide_no_nan`` (an IEEE division wherever the divisor is not zero,
and scales never are): inside a ``tf.function`` Grappler's constant folding rewrites a
``RealDiv`` by a constant into a multiplication by its reciprocal
(``ReduceDivToReciprocalMul``), which rounds differently, e.g. ``span / 255`` of
``dynamic_quantize``; it leaves ``DivNoNan`` alone, so graphs give the eager (and the other
backends') bits.
"""

from __future__ import annotations

import tensorflow as tf

from unidl_tensorflow.kernels.conv import KERNELS as _CONV

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
_DTYPES = {"int8": tf.int8, "uint8": tf.uint8}


def _along(v, ndim, axis):
    if axis is None or v.shape.num_elements() == 1:
        return tf.reshape(v, ())
    shape = [1] * ndim
    shape[int(axis) % ndim] = -1
    return tf.reshape(v, shape)


def quantize(x, scale, zero_point, axis, dtype):
    lo, hi = _RANGES[dtype]
    nd = x.shape.rank
    q = tf.math.round(tf.math.divide_no_nan(x, _along(scale, nd, axis)))  # (half to even)
    if zero_point is not None:
        q = q + tf.cast(_along(zero_point, nd, axis), x.dtype)
    return tf.cast(tf.clip_by_value(q, tf.cast(lo, x.dtype), tf.cast(hi, x.dtype)),
                   _DTYPES[dtype])


def dynamic_quantize(x):
    """ONNX DynamicQuantizeLinear (see the spec), each step one float32 operation."""
    lo = tf.minimum(tf.reduce_min(x), 0.0)
    hi = tf.maximum(tf.reduce_max(x), 0.0)
    scale = tf.math.divide_no_nan(hi - lo, tf.constant(255.0, x.dtype))
    scale = tf.where(tf.equal(hi, lo), tf.ones_like(scale), scale)
    zp = tf.cast(tf.clip_by_value(tf.math.round(-tf.math.divide_no_nan(lo, scale)), 0.0, 255.0),
                 tf.uint8)
    return quantize(x, scale, zp, None, "uint8"), scale, zp


def dequantize(x, scale, zero_point, axis):
    nd = x.shape.rank
    q = tf.cast(x, tf.int32)
    if zero_point is not None:
        q = q - tf.cast(_along(zero_point, nd, axis), tf.int32)
    return tf.cast(q, scale.dtype) * _along(scale, nd, axis)


def _shifted(v, zp, dtype):
    v = tf.cast(v, dtype)
    if zp is None:
        return v
    return v - tf.reshape(tf.cast(zp, dtype), () if zp.shape.num_elements() == 1 else (-1,))


def quantized_matmul(a, b, a_zero_point, b_zero_point):
    k, n = int(b.shape[0]), int(b.shape[1])
    y = tf.linalg.matmul(_shifted(tf.reshape(a, (-1, k)), a_zero_point, tf.int32),
                         _shifted(b, b_zero_point, tf.int32))
    return tf.reshape(y, tf.concat([tf.shape(a)[:-1], [n]], 0))


def quantized_conv2d(x, kernel, x_zero_point, kernel_zero_point, strides, padding,
                     dilation_rate):
    y = _CONV["conv2d"](_shifted(x, x_zero_point, tf.float64),
                        _shifted(kernel, kernel_zero_point, tf.float64), strides, padding,
                        "channels_last", dilation_rate, 1, None)
    return tf.cast(y, tf.int32)


KERNELS = {
    "quantize": quantize,
    "dynamic_quantize": dynamic_quantize,
    "dequantize": dequantize,
    "quantized_matmul": quantized_matmul,
    "quantized_conv2d": quantized_conv2d,
}
