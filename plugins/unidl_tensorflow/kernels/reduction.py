"""TensorFlow reduction kernels.

TF lacks sums/products/cumsums of bool (cast to int32, which is also unidl's result dtype)
and max/min of bool (``reduce_any``/``reduce_all``); float16/bfloat16 accumulate in float32.
``reduce_max`` of an empty axis returns -inf in TF: the kernels raise instead, as NumPy does.
``argmax`` ignores NaN in TF: the first NaN's index is substituted, as in NumPy.
``max``/``min`` drop NaN inside XLA (``jit_compile=True``): :func:`nan.reduced_nan` puts it
back there.
"""

from __future__ import annotations

import tensorflow as tf

from unidl.spec.rules import normalize_axes
from unidl_tensorflow.kernels.nan import reduced_nan

_HALF = (tf.float16, tf.bfloat16)


def _axes(x, axis):
    nd = x.shape.rank
    return list(normalize_axes(axis, nd)) if nd else []


def _acc(x):
    if x.dtype == tf.bool:
        return tf.cast(x, tf.int32)
    if x.dtype in _HALF:
        return tf.cast(x, tf.float32)
    return x


def _back(r, x):
    return tf.cast(r, x.dtype) if x.dtype in _HALF else r


def sum_(x, axis=None, keepdims=False):
    return _back(tf.reduce_sum(_acc(x), _axes(x, axis), keepdims=keepdims), x)


def prod(x, axis=None, keepdims=False):
    return _back(tf.reduce_prod(_acc(x), _axes(x, axis), keepdims=keepdims), x)


def mean(x, axis=None, keepdims=False):
    return _back(tf.reduce_mean(_acc(x), _axes(x, axis), keepdims=keepdims), x)


def _count(x, axes):
    dims = [x.shape[a] for a in axes]
    if all(d is not None for d in dims):
        n = 1
        for d in dims:
            n *= d
        return n
    return tf.reduce_prod(tf.gather(tf.shape(x), axes))


def var(x, axis=None, keepdims=False, ddof=0):
    axes = _axes(x, axis)
    xf = _acc(x)
    n = _count(x, axes)
    d = xf - tf.reduce_mean(xf, axes, keepdims=True)
    s = tf.reduce_sum(d * d, axes, keepdims=keepdims)
    denom = tf.maximum(tf.cast(n - ddof, xf.dtype), tf.zeros((), xf.dtype))
    return _back(tf.math.divide(s, denom), x)


def std(x, axis=None, keepdims=False, ddof=0):
    xf = _acc(x)
    return _back(tf.sqrt(var(xf, axis, keepdims, ddof)), x)


def _check_nonempty(x, axes):
    for a in axes:
        if x.shape[a] == 0:
            raise ValueError(f"zero-size reduction: axis {a} of shape {tuple(x.shape)} is empty "
                             "and the reduction has no identity")


def max_(x, axis=None, keepdims=False):
    axes = _axes(x, axis)
    _check_nonempty(x, axes)
    if x.dtype == tf.bool:
        return tf.reduce_any(x, axes, keepdims=keepdims)
    return reduced_nan(tf.reduce_max(x, axes, keepdims=keepdims), x, axes, keepdims)


def min_(x, axis=None, keepdims=False):
    axes = _axes(x, axis)
    _check_nonempty(x, axes)
    if x.dtype == tf.bool:
        return tf.reduce_all(x, axes, keepdims=keepdims)
    return reduced_nan(tf.reduce_min(x, axes, keepdims=keepdims), x, axes, keepdims)


def _arg(fn):
    def kernel(x, axis=None, keepdims=False):
        shape = x.shape
        if axis is None or not shape.rank:
            axis = None
            x, a = tf.reshape(x, [-1]), 0
        else:
            a = normalize_axes(axis, shape.rank)[0]
        r = fn(x, axis=a, output_type=tf.int64)
        if x.dtype.is_floating:
            nan = tf.math.is_nan(x)

            def first_nan():
                return tf.where(tf.reduce_any(nan, a), tf.argmax(nan, a, output_type=tf.int64), r)

            r = tf.cond(tf.reduce_any(nan), first_nan, lambda: r)
        if keepdims:
            r = tf.reshape(r, [1] * shape.rank) if axis is None else tf.expand_dims(r, a)
        return r

    return kernel


def logsumexp(x, axis=None, keepdims=False):
    return _back(tf.reduce_logsumexp(_acc(x), _axes(x, axis), keepdims=keepdims), x)


def cumsum(x, axis=None):
    if axis is None or x.shape.rank == 0:
        x2, a = tf.reshape(x, [-1]), 0
    else:
        x2, a = x, normalize_axes(axis, x.shape.rank)[0]
    return _back(tf.cumsum(_acc(x2), a), x)


def _truth(x):
    return x if x.dtype == tf.bool else tf.not_equal(x, tf.zeros((), x.dtype))


def any_(x, axis=None, keepdims=False):
    return tf.reduce_any(_truth(x), _axes(x, axis), keepdims=keepdims)


def all_(x, axis=None, keepdims=False):
    return tf.reduce_all(_truth(x), _axes(x, axis), keepdims=keepdims)


KERNELS = {
    "sum": sum_,
    "mean": mean,
    "prod": prod,
    "max": max_,
    "min": min_,
    "var": var,
    "std": std,
    "argmax": _arg(tf.argmax),
    "argmin": _arg(tf.argmin),
    "logsumexp": logsumexp,
    "cumsum": cumsum,
    "any": any_,
    "all": all_,
}
