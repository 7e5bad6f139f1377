"""TensorFlow loss kernels (Keras 3 semantics; see ``unidl/spec/losses.py``).

The from-logits paths use the fused ``tf.nn.sparse_softmax_cross_entropy_with_logits``,
``tf.nn.sigmoid_cross_entropy_with_logits`` and ``tf.nn.log_softmax``; half-precision inputs
are computed in float32 and cast back.
"""

from __future__ import annotations

import tensorflow as tf

EPSILON = 1e-7
_HALF = (tf.float16, tf.bfloat16)


def _up(x):
    dt = x.dtype
    if dt in _HALF:
        return tf.cast(x, tf.float32), dt
    if not dt.is_floating:
        return tf.cast(x, tf.float32), tf.float32
    return x, dt


def _down(out, dt):
    return out if out.dtype == dt else tf.cast(out, dt)


def _to(x, dt):
    return x if x.dtype == dt else tf.cast(x, dt)


def _clip_log(p):
    return tf.math.log(tf.clip_by_value(p, EPSILON, 1.0 - EPSILON))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    x, dt = _up(output)
    rank = x.shape.rank
    ax = axis % rank
    if target.shape.rank == rank:
        target = tf.squeeze(target, ax)
    if target.dtype not in (tf.int32, tf.int64):
        target = tf.cast(target, tf.int64)
    if ax != rank - 1:
        perm = [i for i in range(rank) if i != ax] + [ax]
        x = tf.transpose(x, perm)
    if from_logits:
        out = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=x)
    else:
        lp = _clip_log(x / tf.reduce_sum(x, axis=-1, keepdims=True))
        out = -tf.gather(lp, target, axis=rank - 1, batch_dims=rank - 1)
    return _down(out, dt)


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    x, dt = _up(output)
    t = _to(target, x.dtype)
    ax = axis % x.shape.rank
    if from_logits:
        # not tf.nn.softmax_cross_entropy_with_logits: its gradient (softmax - labels) is
        # wrong for targets that do not sum to one, which the op allows
        out = -tf.reduce_sum(t * tf.nn.log_softmax(x, axis=ax), axis=ax)
    else:
        lp = _clip_log(x / tf.reduce_sum(x, axis=ax, keepdims=True))
        out = -tf.reduce_sum(t * lp, axis=ax)
    return _down(out, dt)


def binary_crossentropy(target, output, from_logits=False):
    z, dt = _up(output)
    t = _to(target, z.dtype)
    if from_logits:
        per = tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=z)
    else:
        c = tf.clip_by_value(z, EPSILON, 1.0 - EPSILON)
        c1 = tf.clip_by_value(1.0 - z, EPSILON, 1.0 - EPSILON)  # = 1 - c, exactly
        per = -(t * tf.math.log(c) + (1.0 - t) * tf.math.log(c1))
    return _down(tf.reduce_mean(per, axis=-1), dt)


def mean_squared_error(y_true, y_pred):
    y, dt = _up(y_pred)
    d = tf.math.squared_difference(y, _to(y_true, y.dtype))
    return _down(tf.reduce_mean(d, axis=-1), dt)


KERNELS = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mean_squared_error": mean_squared_error,
}
