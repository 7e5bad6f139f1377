"""TensorFlow creation kernels (``dtype`` arrives resolved to a unidl dtype name).

The device scope of ``unidl.device`` is already entered when a kernel runs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from unidl import dtypes as _dt
from unidl_tensorflow.backend import DTYPES


def _shape(shape):
    if isinstance(shape, (tf.Tensor, tf.TensorShape)):
        return shape
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def zeros(shape, dtype):
    return tf.zeros(_shape(shape), DTYPES[dtype])


def ones(shape, dtype):
    return tf.ones(_shape(shape), DTYPES[dtype])


def _scalar(value, dtype):
    """``value`` as a 0-d tensor of ``dtype`` (floats truncate toward zero for integers)."""
    td = DTYPES[dtype]
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.cast(value, td)
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and not _dt.is_float(dtype):
        arr = np.trunc(arr) if dtype != "bool" else arr != 0
    if dtype == "bfloat16":
        return tf.cast(tf.constant(arr.astype(np.float32)), td)
    return tf.constant(arr.astype(td.as_numpy_dtype))


def full(shape, fill_value, dtype):
    return tf.fill(_shape(shape), _scalar(fill_value, dtype))


def zeros_like(x, dtype):
    return tf.zeros(tf.shape(x), DTYPES[dtype])


def ones_like(x, dtype):
    return tf.ones(tf.shape(x), DTYPES[dtype])


def full_like(x, fill_value, dtype):
    return tf.fill(tf.shape(x), _scalar(fill_value, dtype))


def arange(start, stop, step, dtype):
    if stop is None:
        start, stop = 0, start
    ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
    wide = tf.int64 if ints else tf.float64
    td = DTYPES[dtype]
    if step != 0 and (stop - start) * step <= 0:  # TF's Range rejects empty backward ranges
        return tf.zeros((0,), td)
    if td == wide or (ints and td == tf.int32):
        return tf.range(start, stop, step, dtype=td)
    return tf.cast(tf.range(start, stop, step, dtype=wide), td)


def linspace(start, stop, num, endpoint, dtype):
    num = int(num)
    div = num - 1 if endpoint else num
    y = tf.range(num, dtype=tf.float64)
    delta = float(stop) - float(start)
    if div > 0:
        step = delta / div
        y = y * step if step != 0 else y / div * delta
    else:
        y = y * delta
    y = y + float(start)
    if endpoint and num > 1:
        y = tf.concat([y[:-1], tf.constant([float(stop)], tf.float64)], 0)
    if _dt.is_int(dtype):
        y = tf.floor(y)
    return tf.cast(y, DTYPES[dtype])


def eye(n, m, k, dtype):
    n = int(n)
    m = n if m is None else int(m)
    rows = tf.range(n)[:, None]
    cols = tf.range(m)[None, :]
    return tf.cast(tf.equal(cols - rows, int(k)), DTYPES[dtype])


def cast(x, dtype):
    return tf.cast(x, DTYPES[dtype])


KERNELS = {
    "zeros": zeros, "ones": ones, "full": full,
    "zeros_like": zeros_like, "ones_like": ones_like, "full_like": full_like,
    "arange": arange, "linspace": linspace, "eye": eye,
    "cast": cast, "stop_gradient": tf.stop_gradient,
}
