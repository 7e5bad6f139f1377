"""TensorFlow linalg kernels.

``tf.matmul`` has no 1-D operands (they are made matrices and squeezed back) and ``tf.einsum``
no size-1 broadcasting of a letter (the subscripts are rewritten by ``einsum_expand``).
"""

import tensorflow as tf

from unidl.spec.linalg import einsum_expression, tensordot_axes
from unidl_tensorflow.kernels.elementwise import add as _add

_SMALL_INTS = (tf.int8, tf.int16, tf.uint8)


def matmul(x, y):
    nx, ny = x.shape.rank, y.shape.rank
    if x.dtype in _SMALL_INTS:  # no integer kernels below int32
        return tf.cast(matmul(tf.cast(x, tf.int32), tf.cast(y, tf.int32)), x.dtype)
    if nx == 1 and ny == 1:
        return tf.tensordot(x, y, 1)
    if nx == 1:
        return tf.squeeze(tf.matmul(x[tf.newaxis, :], y), -2)
    if ny == 1:
        return tf.squeeze(tf.matmul(x, y[:, tf.newaxis]), -1)
    return tf.matmul(x, y)


def tensordot(x, y, axes=2):
    ax, ay = tensordot_axes(axes, x.shape.rank, y.shape.rank)
    return tf.tensordot(x, y, axes=[list(ax), list(ay)])


def dot(x, y):
    nx, ny = x.shape.rank, y.shape.rank
    if nx == 0 or ny == 0:
        return tf.multiply(x, y)
    if nx == 2 and ny == 2:
        return tf.matmul(x, y)
    return tf.tensordot(x, y, [[nx - 1], [0 if ny == 1 else ny - 2]])


def einsum(subscripts, operands):
    shapes = []
    for a in operands:
        shape = a.shape.as_list()
        if any(d is None for d in shape):  # unknown dims (traced): pass the subscripts as given
            return tf.einsum(subscripts, *operands)
        shapes.append(tuple(shape))
    return tf.einsum(einsum_expression(subscripts, tuple(shapes)), *operands)


def dense(x, kernel, bias=None):
    """``MatMul`` then (for rank >= 2) ``BiasAdd``, which Grappler fuses."""
    y = matmul(x, kernel)
    return y if bias is None else _add(y, bias)


KERNELS = {
    "matmul": matmul,
    "dense": dense,
    "dot": dot,
    "einsum": einsum,
    "tensordot": tensordot,
}
