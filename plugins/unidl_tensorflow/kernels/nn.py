"""TensorFlow nn kernels: ``tf.nn`` where it matches the spec."""

import tensorflow as tf

from unidl.spec.nn import check_rate, dropout_mask, norm_axes, param_broadcast_shape

_HALF = (tf.float16, tf.bfloat16)


def leaky_relu(x, negative_slope=0.2):
    return tf.nn.leaky_relu(x, alpha=float(negative_slope))


def elu(x, alpha=1.0):
    y = tf.nn.elu(x)
    if alpha == 1.0:
        return y
    return tf.where(x > 0, y, y * tf.cast(alpha, x.dtype))


def gelu(x, approximate=True):
    return tf.nn.gelu(x, approximate=bool(approximate))


def hard_sigmoid(x):
    return tf.nn.relu6(x + tf.cast(3.0, x.dtype)) / tf.cast(6.0, x.dtype)


def softmax(x, axis=-1):
    return tf.nn.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return tf.nn.log_softmax(x, axis=axis)


def _float(x):
    return tf.cast(x, tf.float32) if x.dtype in _HALF else x


def _param(p, x, axes):
    if p is None:
        return None
    shp = param_broadcast_shape(tuple(p.shape.as_list()), tuple(x.shape.as_list()), axes)
    p = p if shp is None else tf.reshape(p, shp)
    return _float(p)


def batch_norm(x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    axes = (axis % max(x.shape.rank, 1),)
    inv = tf.math.rsqrt(_param(variance, x, axes) + epsilon)
    if scale is not None:
        inv = inv * _param(scale, x, axes)
    y = (_float(x) - _param(mean, x, axes)) * inv
    if offset is not None:
        y = y + _param(offset, x, axes)
    return tf.cast(y, x.dtype)


def layer_norm(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    axes = norm_axes(axis, x.shape.rank)
    xf = _float(x)
    mean, var = tf.nn.moments(xf, axes=list(axes), keepdims=True)
    y = (xf - mean) * tf.math.rsqrt(var + epsilon)
    if gamma is not None:
        y = y * _param(gamma, x, axes)
    if beta is not None:
        y = y + _param(beta, x, axes)
    return tf.cast(y, x.dtype)


def dropout(x, rate, seed=None, training=True):
    rate = check_rate(rate)
    if not training or rate == 0.0:
        return x
    if seed is None:
        return tf.nn.dropout(x, rate=rate)
    mask = tf.constant(dropout_mask(tuple(x.shape.as_list()), rate, seed))
    scale = tf.constant(1.0 / (1.0 - rate), dtype=x.dtype)
    return tf.where(mask, x * scale, tf.zeros((), dtype=x.dtype))


KERNELS = {
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": tf.nn.selu,
    "gelu": gelu,
    "sigmoid": tf.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "softplus": tf.nn.softplus,
    "silu": tf.nn.silu,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "batch_norm": batch_norm,
    "layer_norm": layer_norm,
    "dropout": dropout,
}
