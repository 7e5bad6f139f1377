"""Work-arounds for TensorFlow's oneDNN CPU kernels.

TensorFlow's Linux wheels replace many CPU kernels by oneDNN ones. They are on by default
where TensorFlow's ``DefaultOneDnnPolicy`` picks them (x86-64 CPUs with AVX512-VNNI,
AVX512-BF16, AVX-VNNI or AMX, such as Cascade Lake and later Xeons, Ice Lake, Sapphire Rapids
or Zen 4, and aarch64 builds). They are off on other CPUs and when the user sets
``TF_ENABLE_ONEDNN_OPTS=0``. In tensorflow-cpu 2.21 three oneDNN kernels give results that
TensorFlow's own (Eigen) kernels and the spec do not:

* ``Softmax`` (float32 and bfloat16, and float16 where oneDNN takes it, i.e. on CPUs with
  AVX512-FP16): a row that holds a NaN or ``+inf`` comes out 0 everywhere except at the NaN.
  For example ``tf.nn.softmax([[1., nan, 2.]])`` is ``[0, nan, 0]`` where the spec has a
  NaN row. :func:`nan_rows` fixes this.
* ``Conv2D`` and ``DepthwiseConv2dNative`` (and their fusions with ``BiasAdd``): an empty
  batch comes out with the *input's* shape, e.g. ``(0, 5, 6, 3)`` instead of
  ``(0, 3, 4, 4)``. The fused filter gradient with bias then fails on it ("Missing 1-th
  output"). :func:`if_batch` fixes this.
* Grappler's fusion of ``MatMul``/``Conv2D`` + ``BiasAdd`` + ``Relu``/``Relu6`` inside a
  ``tf.function``: oneDNN computes ``max(x, 0)`` in a way that turns NaN into 0. The
  ``relu``/``relu6`` kernels use :func:`in_fusing_graph` to avoid it, except where the
  convolution's output is proven finite (:mod:`unidl_tensorflow.kernels.facts`).

unidl never switches oneDNN off: ``TF_ENABLE_ONEDNN_OPTS`` is the user's setting, and oneDNN
is faster. Each work-around costs nothing in eager mode on a non-empty batch, and where oneDNN
is off (:func:`enabled`) the kernels run TensorFlow's ops unchanged. The one exception is
the empty-batch guard of the depthwise convolution, which also covers a bug on every CPU.
"""

from __future__ import annotations

import functools

import tensorflow as tf

__all__ = ["batch_zeros", "enabled", "if_batch", "in_fusing_graph", "nan_rows"]


@functools.lru_cache(maxsize=1)
def enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process.

    TensorFlow decides this once per process, from ``TF_ENABLE_ONEDNN_OPTS`` and the CPU.
    unidl asks TensorFlow's own (private) flag. If that flag cannot be read, this returns
    True, so the work-arounds run: they are correct either way.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return True
    try:
        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # (an unknown TensorFlow build: assume the oneDNN kernels)
        return True


def in_fusing_graph() -> bool:
    """Whether an op built now may be fused by Grappler into a oneDNN kernel.

    That happens when a graph (``tf.function``) is being built and oneDNN is on. In eager
    mode each op runs on its own, so no fusion happens.
    """
    return not tf.executing_eagerly() and enabled()


def nan_rows(y, x, axis):
    """``y = softmax(x)`` along ``axis``, with every slice where ``max(x)`` is not finite set
    to all NaN.

    That is the spec's rule: ``exp(x - max(x))`` is NaN everywhere in a slice that holds a
    NaN or ``+inf``, or that is all ``-inf``. oneDNN's ``Softmax`` keeps the NaN only where
    it was (see the module docstring). ``max(x) * 0`` is 0 for a finite maximum and NaN
    otherwise, so adding it fixes those slices and leaves every other value as it is. The
    cost is one reduction of ``x`` and one add, with no host sync. The added term carries
    no gradient, so the backward pass is TensorFlow's own softmax gradient.
    """
    return y + tf.stop_gradient(tf.reduce_max(x, axis, keepdims=True) * 0)


def if_batch(x, compute, empty, dynamic=True):
    """``compute()`` when ``x`` has a non-empty batch, ``empty()`` when its batch is empty.

    This works around kernels that fail on an empty batch: the oneDNN convolutions, which
    return a wrong shape (see the module docstring), and TensorFlow's
    ``DepthwiseConv2dNativeBackpropFilter``, which returns uninitialized memory on every
    CPU. A batch known to be empty calls ``empty()`` and never runs a kernel, which costs
    nothing.

    When the batch size is unknown (a ``tf.function`` traced with a ``None`` batch) and
    ``dynamic`` is true, the choice is a ``tf.cond`` on the runtime batch size. That costs
    one scalar compare and no host sync. Grappler still fuses a convolution with its bias
    inside the branch. The gradient of the ``empty`` branch is zero, so no kernel, forward
    or backward, ever sees the empty batch. With ``dynamic`` false, ``compute()`` runs as
    it is.
    """
    n = x.shape[0]
    if n == 0:
        return empty()
    if n is not None or not dynamic:
        return compute()
    return tf.cond(tf.shape(x)[0] > 0, compute, empty)


def batch_zeros(x, shape, dtype):
    """Zeros of ``shape`` whose first dimension is ``x``'s batch size (read at run time if
    it is unknown)."""
    if x.shape[0] is not None:
        return tf.zeros((x.shape[0], *shape[1:]), dtype)
    return tf.zeros(tf.stack([tf.shape(x)[0], *shape[1:]]), dtype)
