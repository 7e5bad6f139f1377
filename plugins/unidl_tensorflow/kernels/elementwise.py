"""TensorFlow elementwise kernels.

Inputs arrive converted and promoted. Where TensorFlow lacks a kernel for a dtype (``bool``
orderings, ``uint8`` negation and powers) the kernel computes in a wider type and converts
back, so every op returns the spec's dtype.
"""

from __future__ import annotations

import tensorflow as tf


def _float(x):
    return x.dtype.is_floating


def floor_divide(x, y):
    q = tf.math.floordiv(x, y)
    if not _float(x):
        return q
    # TF computes floor(x / y); NumPy/Python give nan for inf // y (y != 0) and -1 for
    # x // inf when the signs differ (x != 0)
    nan = tf.constant(float("nan"), x.dtype)
    q = tf.where(tf.math.is_inf(y) & (x * y < 0) & tf.math.is_finite(x),
                 tf.constant(-1, x.dtype), q)
    return tf.where(tf.math.is_inf(x) & tf.not_equal(y, 0), nan, q)


def negative(x):
    if x.dtype == tf.uint8:  # no uint8 Neg kernel; the cast back wraps around like NumPy
        return tf.cast(tf.negative(tf.cast(x, tf.int16)), tf.uint8)
    return tf.negative(x)


def power(x, y):
    if x.dtype == tf.uint8:
        return tf.cast(tf.pow(tf.cast(x, tf.int32), tf.cast(y, tf.int32)), tf.uint8)
    return tf.pow(x, y)


def abs_(x):
    if x.dtype == tf.uint8:
        return tf.identity(x)
    return tf.abs(x)


def sign(x):
    if x.dtype == tf.uint8:
        return tf.cast(x > 0, tf.uint8)
    return tf.sign(x)


def maximum(x, y):
    if x.dtype == tf.bool:
        return tf.logical_or(x, y)
    return tf.maximum(x, y)


def minimum(x, y):
    if x.dtype == tf.bool:
        return tf.logical_and(x, y)
    return tf.minimum(x, y)


def clip(x, x_min, x_max):
    # not tf.clip_by_value: it computes max(min(x, hi), lo), which differs when lo > hi
    out = x
    if x_min is not None:
        out = tf.maximum(out, x_min)
    if x_max is not None:
        out = tf.minimum(out, x_max)
    if out is x:
        out = tf.identity(x)
    return out


def where(condition, x, y):
    if condition.dtype != tf.bool:
        condition = tf.cast(condition, tf.bool)
    return tf.where(condition, x, y)


def erf(x):
    # TF's Erf gives nan at +-inf; erf(+-10) is +-1 in every float format
    return tf.math.erf(tf.minimum(tf.maximum(x, tf.constant(-10.0, x.dtype)),
                                  tf.constant(10.0, x.dtype)))


def _ordered(fn):
    def compare(x, y):
        if x.dtype == tf.bool:
            x, y = tf.cast(x, tf.uint8), tf.cast(y, tf.uint8)
        return fn(x, y)

    compare.__name__ = fn.__name__
    return compare


def _as_bool(x):
    return x if x.dtype == tf.bool else tf.cast(x, tf.bool)


def logical_and(x, y):
    return tf.logical_and(_as_bool(x), _as_bool(y))


def logical_or(x, y):
    return tf.logical_or(_as_bool(x), _as_bool(y))


def logical_not(x):
    return tf.logical_not(_as_bool(x))


def _float_test(fn, integer_result):
    def test(x):
        if _float(x):
            return fn(x)
        return tf.fill(tf.shape(x), integer_result)

    test.__name__ = fn.__name__
    return test


_BIAS_DTYPES = frozenset((tf.float16, tf.bfloat16, tf.float32, tf.float64))


def add(x, y):
    """``x + y``; a float vector added along the last axis is a ``BiasAdd`` (the same sum),
    which TensorFlow's graph optimizer fuses into a preceding MatMul or Conv2D, as it does for
    Keras layers."""
    ys, xs = y.shape, x.shape
    if (ys.rank == 1 and xs.rank is not None and xs.rank >= 2 and x.dtype in _BIAS_DTYPES
            and x.dtype == y.dtype and ys[0] is not None and xs[-1] == ys[0]):
        return tf.nn.bias_add(x, y)
    return tf.add(x, y)


KERNELS = {
    "add": add,
    "subtract": tf.subtract,
    "multiply": tf.multiply,
    "divide": tf.math.truediv,
    "floor_divide": floor_divide,
    "mod": tf.math.floormod,
    "negative": negative,
    "power": power,
    "exp": tf.exp,
    "log": tf.math.log,
    "log1p": tf.math.log1p,
    "expm1": tf.math.expm1,
    "sqrt": tf.sqrt,
    "rsqrt": tf.math.rsqrt,
    "square": tf.square,
    "reciprocal": tf.math.reciprocal,
    "abs": abs_,
    "sign": sign,
    "floor": tf.floor,
    "ceil": tf.math.ceil,
    "round": tf.round,
    "maximum": maximum,
    "minimum": minimum,
    "clip": clip,
    "where": where,
    "sin": tf.sin,
    "cos": tf.cos,
    "tan": tf.tan,
    "tanh": tf.tanh,
    "arctan": tf.atan,
    "erf": erf,
    "equal": tf.equal,
    "not_equal": tf.not_equal,
    "less": _ordered(tf.less),
    "less_equal": _ordered(tf.less_equal),
    "greater": _ordered(tf.greater),
    "greater_equal": _ordered(tf.greater_equal),
    "logical_and": logical_and,
    "logical_or": logical_or,
    "logical_not": logical_not,
    "isnan": _float_test(tf.math.is_nan, False),
    "isinf": _float_test(tf.math.is_inf, False),
    "isfinite": _float_test(tf.math.is_finite, True),
}
