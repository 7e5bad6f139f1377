"""TensorFlow image kernels: ``resize`` (``ResizeBilinear``/``ResizeNearestNeighbor`` with
half-pixel centres, what ``tf.image.resize`` runs) and ``affine_transform``
(``ImageProjectiveTransformV3``), the kernels the spec's definitions follow.

Where TensorFlow's kernel would lose precision the spec's composite runs instead: bilinear
resizing returns float32 (so float64 images use the composite), and the projective transform
takes float32 coordinates (float64 images use the composite). XLA has no
``ImageProjectiveTransformV3`` kernel, so under ``jit_compile=True`` the composite runs too.
TensorFlow's own gradient of ``ImageProjectiveTransformV3`` applies the inverse transform to
the cotangent, which is not the adjoint of bilinear sampling; the kernel's gradient is
therefore the composite's (the exact adjoint), recomputed in the backward pass.
"""

from __future__ import annotations

import tensorflow as tf

import unidl
from unidl.backend.state import use_backend
from unidl.spec.image import (
    _affine_impl,
    _resize_impl,
    check_fill_mode,
    check_interpolation,
    resize_shape,
)

_NATIVE_BILINEAR = (tf.float16, tf.bfloat16, tf.float32)
_BACKEND = "tensorflow"


def _in_xla() -> bool:
    """Whether ops built now are compiled by XLA (``tf.function(jit_compile=True)``)."""
    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
    except ImportError:  # (a private helper; without it assume XLA, where the composite works)
        return True
    return bool(GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def _as_float(images):
    return images if images.dtype.is_floating else tf.cast(images, tf.float32)


def resize(images, size, interpolation="bilinear"):
    interpolation = check_interpolation(interpolation)
    _, height, width, _ = resize_shape(tuple(images.shape.as_list()), size, interpolation)
    images = _as_float(images)
    target = tf.constant([height, width], tf.int32)
    if interpolation == "nearest":
        return tf.raw_ops.ResizeNearestNeighbor(images=images, size=target, align_corners=False,
                                                half_pixel_centers=True)
    if images.dtype not in _NATIVE_BILINEAR:
        return _composite(_resize_impl, images, size, interpolation)
    out = tf.raw_ops.ResizeBilinear(images=images, size=target, align_corners=False,
                                    half_pixel_centers=True)
    return tf.cast(out, images.dtype)


def _composite(impl, *args):
    """The spec's composite on this backend (whichever backend the caller has active)."""
    if unidl.current_backend().name == _BACKEND:
        return impl(*args)
    with use_backend(_BACKEND):
        return impl(*args)


def affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0):
    interpolation = check_interpolation(interpolation)
    fill_mode = check_fill_mode(fill_mode)
    images = _as_float(images)
    if images.dtype == tf.float64 or _in_xla():
        return _composite(_affine_impl, images, transforms, interpolation, fill_mode,
                          fill_value)
    transforms = tf.cast(tf.stop_gradient(transforms), tf.float32)
    args = (interpolation, fill_mode, float(fill_value))

    @tf.custom_gradient
    def transform(x):
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transforms, output_shape=tf.shape(x)[1:3],
            fill_value=tf.constant(args[2], tf.float32), interpolation=interpolation.upper(),
            fill_mode=fill_mode.upper())
        out.set_shape(x.shape)  # (a graph's static shape, lost through output_shape)

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = _composite(_affine_impl, x, transforms, *args)
            return tape.gradient(y, x, output_gradients=dy)

        return out, grad

    return transform(images)


KERNELS = {
    "resize": resize,
    "affine_transform": affine_transform,
}
