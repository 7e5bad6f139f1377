"""NaN-propagating work-arounds for TensorFlow kernels that drop NaN.

The spec's rule is that a NaN in a max-pooling window or in a reduced slice gives NaN (as
NumPy's ``max``). Two TensorFlow paths return a finite number instead:

* ``MaxPool`` (every mode, every CPU: eager, ``tf.function`` and XLA): a window holding one
  NaN returns the maximum of its other cells. With a Conv2D + MaxPooling2D model, a NaN in
  the data then gave a finite loss. :func:`pooled_nan` fixes it.
* ``Max``/``Min`` reductions inside an XLA cluster (``jit_compile=True``): XLA's CPU
  reductions compare with ``max(a, b)`` that keeps ``a`` when ``b`` is NaN, so
  ``reduce_max([1, nan, 2])`` is 2 (as is ``GlobalMaxPooling2D``). :func:`reduced_nan`
  fixes it where an XLA function is being traced; elsewhere TensorFlow's reductions keep NaN.

Each fix adds a term that is 0 where the slice or window holds no NaN and NaN where it holds
one: ``where(is_nan(x), x, 0)`` summed over the same cells (a sum keeps NaN on every path,
and ``+inf``/``-inf`` in the data are left alone, unlike ``x * 0``). It costs one
elementwise pass and one sum or average pool (the max pool's term is only computed when
the input's sum is not finite, see :func:`pooled_nan`), and carries no gradient, so the
backward pass is TensorFlow's own. No framework mode is switched off.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["in_xla_context", "max_pool_keeping_nan", "nan_only", "pooled_nan", "reduced_nan"]


def in_xla_context() -> bool:
    """Whether the ops built now go into a function that XLA compiles
    (``tf.function(jit_compile=True)``, or a function called from one).

    This asks TensorFlow's own (private) check; if it cannot be read, this returns True in
    a graph, so the work-around runs: it is correct either way.
    """
    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))
    except Exception:  # (an unknown TensorFlow build: assume XLA)
        return True


def nan_only(x):
    """``x`` where it is NaN, 0 elsewhere (``+inf`` and ``-inf`` become 0 too)."""
    return tf.where(tf.math.is_nan(x), x, tf.zeros((), x.dtype))


def pooled_nan(y, xn, ksize, strides, padding):
    """``y = max_pool(xn)`` (NHWC) with every window that holds a NaN set to NaN: plus the
    average pool, over the same windows, of :func:`nan_only` (0 or NaN).

    That term costs three passes over ``xn`` (about 3x the max pool itself), so it is only
    computed when ``xn`` may hold a NaN: when ``sum(xn)`` is not finite (a NaN, an
    infinity, or an overflowing sum; the term is exact in each case). In a graph the choice
    is a ``tf.cond`` (one reduction and a scalar test, no host sync); eagerly on a CPU it is
    a Python test (CPU eager ops are synchronous); eagerly on an accelerator the term is
    always added, so no host sync is forced.
    """
    def term():
        return tf.stop_gradient(tf.nn.avg_pool2d(nan_only(xn), ksize, strides, padding))

    if tf.executing_eagerly() and "CPU" not in xn.device.upper():
        return y + term()
    finite = tf.math.is_finite(tf.reduce_sum(tf.stop_gradient(xn)))
    if tf.executing_eagerly():
        return y if bool(finite) else y + term()
    # (the finite branch passes y through: adding a zeros term cost two passes over y, 4-5%
    # of a CNN prediction on an AVX512 Xeon)
    return tf.cond(finite, lambda: tf.identity(y), lambda: y + term())


def max_pool_keeping_nan(xn, ksize, strides, padding, fact=None):
    """``max_pool2d(xn)`` (NHWC) with every window that holds a NaN set to NaN.

    Eagerly, :func:`pooled_nan`. In a graph, the same inside a function whose gradient is
    ``MaxPoolGrad`` (what TensorFlow's own ``MaxPool`` gradient is), so training does not
    differentiate the check's ``tf.cond``: that cost 0.5 ms of a 5 ms CNN step on a 2-core
    Xeon. ``fact`` (:class:`unidl_tensorflow.kernels.facts.Fact`), when it proves ``xn``
    finite more cheaply than a pass over ``xn``, replaces the check's reduction.
    """
    if tf.executing_eagerly():
        return pooled_nan(tf.nn.max_pool2d(xn, ksize, strides, padding), xn, ksize, strides,
                          padding)
    ok = fact.ok_bound()[0] if fact is not None and fact.cheaper_than(xn) else None

    @tf.custom_gradient
    def pool(xn):
        y = tf.nn.max_pool2d(xn, ksize, strides, padding)
        if ok is None:
            out = pooled_nan(y, xn, ksize, strides, padding)
        else:
            out = tf.cond(ok, lambda: tf.identity(y),
                          lambda: pooled_nan(y, xn, ksize, strides, padding))

        def grad(g):
            return tf.raw_ops.MaxPoolGrad(orig_input=xn, orig_output=y, grad=g, ksize=ksize,
                                          strides=strides, padding=padding)

        return out, grad

    return pool(xn)


def reduced_nan(y, x, axes, keepdims):
    """``y = reduce_max(x)`` or ``reduce_min(x)`` over ``axes``, with every slice that holds
    a NaN set to NaN where XLA compiles the reduction (:func:`in_xla_context`); ``y`` as it
    is elsewhere, and for non-float dtypes."""
    if not x.dtype.is_floating or not in_xla_context():
        return y
    term = tf.reduce_sum(nan_only(x), axes, keepdims=keepdims)
    return y + tf.stop_gradient(term)
