"""TensorFlow nn kernels: ``tf.nn`` where it matches the spec.

``softmax``, ``relu`` and ``relu6`` work around oneDNN kernels that lose NaNs (see
:mod:`unidl_tensorflow.onednn`).
"""

import tensorflow as tf

from unidl.spec.nn import check_rate, dropout_mask, norm_axes, param_broadcast_shape
from unidl_tensorflow import onednn
from unidl_tensorflow.kernels import facts

_HALF = (tf.float16, tf.bfloat16)
_ONEDNN_SOFTMAX = (tf.float16, tf.bfloat16, tf.float32)  # (oneDNN has no float64 softmax)


def relu(x):
    """``max(x, 0)``. In a graph that Grappler may fuse into oneDNN kernels, NaN stays NaN.

    Grappler fuses ``MatMul``/``Conv2D`` + ``BiasAdd`` + ``Relu`` into one oneDNN kernel
    whose ``max(x, 0)`` turns NaN into 0. This shows on CPUs where TensorFlow enables oneDNN
    (AVX512-VNNI and newer x86, aarch64). In such a graph ``relu`` is written as
    ``Maximum``, which is not fused. That costs the relu's own elementwise pass, the same
    as in eager mode. Eager mode, and graphs with oneDNN off, keep ``tf.nn.relu``.

    Where a convolution made ``x`` and its fact (:mod:`unidl_tensorflow.kernels.facts`)
    proves ``x`` finite, the fused relu is right and is used (:func:`_fused_if_finite`).
    """
    fact = facts.of(x)
    if not onednn.in_fusing_graph():
        return facts.pass_on(tf.nn.relu(x), fact)
    if fact is not None and fact.recompute is not None and fact.cheaper_than(x):
        return facts.pass_on(_fused_if_finite(x, fact), fact)
    return facts.pass_on(_unfused_relu(x), fact)


def _fused_if_finite(x, fact):
    """``tf.nn.relu(x)``, which Grappler fuses into the convolution that made ``x``, where
    ``fact`` holds; else the unfused relu of ``x`` built again (``fact.recompute``), so the
    fused kernel's ``x`` keeps its single consumer. One ``tf.cond`` on a scalar.

    The gradient flows through ``y = tf.nn.relu(x)`` whichever branch ran
    (:func:`_either_relu`), so the cold branch's convolution adds nothing to the backward
    pass."""
    ok, _ = fact.ok_bound()
    return _either_relu(tf.nn.relu(x), ok, fact.recompute)


def _either_relu(y, ok, recompute):
    """``y`` where ``ok``, else ``_unfused_relu(recompute())``, with the gradient of the
    branch that ran, passed on through ``y``.

    The two are the same relu of the same convolution and differ only where it is not
    finite (``y``: 0 for a NaN, from oneDNN's fused kernel; the other keeps the NaN). The
    cotangent goes to ``y``, whose relu gradient passes it where ``y > 0``; where the
    NaN-keeping branch ran it is first zeroed where that branch's output is not > 0, as its
    own relu gradient would. Differentiating the ``tf.cond`` itself would also give the
    cold branch's recomputed convolution a gradient: zeros, for its input, kernel and bias,
    added to the real ones every step (0.3 ms of a 7 ms CNN train step)."""

    @tf.custom_gradient
    def select(y):
        out = tf.cond(ok, lambda: tf.identity(y), lambda: _unfused_relu(recompute()))

        def grad(g, variables=None):
            g = tf.cond(ok, lambda: tf.identity(g),
                        lambda: tf.where(out > 0, g, tf.zeros_like(g)))
            return (g, [None] * len(variables)) if variables else g

        return out, grad

    return select(y)


def relu6(x):
    """``min(max(x, 0), 6)``. NaN stays NaN where Grappler may fuse into oneDNN (see
    :func:`relu`); there it is ``ClipByValue``, one op that is not fused."""
    if onednn.in_fusing_graph():
        return _unfused_relu6(x)
    return tf.nn.relu6(x)


@tf.custom_gradient
def _unfused_relu(x):
    """Relu as ``Maximum``, with Relu's own gradient (``ReluGrad``, which is 0 at x = 0)."""
    y = tf.maximum(x, tf.zeros((), x.dtype))
    return y, lambda g: tf.raw_ops.ReluGrad(gradients=g, features=y)


@tf.custom_gradient
def _unfused_relu6(x):
    """Relu6 as ``ClipByValue``, with Relu6's own gradient (``Relu6Grad``)."""
    y = tf.clip_by_value(x, tf.zeros((), x.dtype), tf.constant(6, x.dtype))
    return y, lambda g: tf.raw_ops.Relu6Grad(gradients=g, features=y)


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
    return relu6(x + tf.cast(3.0, x.dtype)) / tf.cast(6.0, x.dtype)


def softmax(x, axis=-1):
    """``tf.nn.softmax``. Where oneDNN may run it, a slice that holds a NaN comes out all
    NaN, as in the spec.

    oneDNN's ``Softmax`` gives ``[0, nan, 0]`` for ``[1, nan, 2]`` (float32 and bfloat16 on
    CPUs where TensorFlow enables oneDNN, e.g. AVX512-VNNI x86). :func:`onednn.nan_rows`
    fixes that with one reduction and one add.
    """
    y = tf.nn.softmax(x, axis=axis)
    if x.dtype in _ONEDNN_SOFTMAX and onednn.enabled():
        y = onednn.nan_rows(y, x, axis)
    return y


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
    "relu": relu,
    "relu6": relu6,
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
