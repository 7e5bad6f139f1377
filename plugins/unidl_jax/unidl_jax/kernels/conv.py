"""JAX convolution kernels on ``jax.lax.conv_general_dilated``.

The spec's layouts map onto dimension numbers directly: inputs ``NWC``/``NHWC``
(channels-last) or ``NCW``/``NCHW``, Keras kernels ``(*k, in / groups, out)`` are ``WIO`` /
``HWIO``, and ``groups`` is the feature group count. Padding comes resolved from the shared
geometry (``unidl.spec.conv``) as ``(before, after)`` pairs, so TensorFlow's ``"same"`` (the
odd pixel at the end) needs nothing special. A depthwise kernel ``(kh, kw, C, M)`` is the grouped
kernel ``(kh, kw, 1, C * M)`` with one group per input channel (output channel ``c * M + m``).

The input and kernel gradients (``conv_backprop_input``, ``conv_backprop_kernel`` and their
depthwise forms, also ``conv2d_transpose``) are the transposes of the forward convolution,
which is linear in each argument: ``jax.linear_transpose`` gives the exact adjoint for any
padding, stride and dilation, and JAX differentiates it again. Half-precision convolutions
accumulate in float32 and are rounded once. Each is one ``jax.jit`` function of its
geometry, so that an eager call compiles (once per shape) a single program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from unidl.backend.conv_kernels import conv_kernels
from unidl.spec import conv as C

_HALF = (jnp.float16, jnp.bfloat16)


def _dimension_numbers(geo):
    spatial = "HW"[2 - geo.rank:]
    lhs = f"N{spatial}C" if geo.channels_last else f"NC{spatial}"
    return lhs, f"{spatial}IO", lhs


def _channel_shape(geo, n):
    """Shape that lays a ``(n,)`` vector along the channel axis."""
    return (1,) * (geo.rank + 1) + (n,) if geo.channels_last else (1, n) + (1,) * geo.rank


@functools.partial(jax.jit, static_argnums=(2, 3))
def _conv(x, kernel, geo, groups, bias=None):
    y = lax.conv_general_dilated(
        x, kernel, geo.strides, geo.pads, rhs_dilation=geo.dilation,
        dimension_numbers=_dimension_numbers(geo), feature_group_count=groups,
        preferred_element_type=jnp.float32 if x.dtype in _HALF else None)
    if bias is not None:
        y = y + bias.astype(y.dtype).reshape(_channel_shape(geo, bias.shape[0]))
    return y.astype(x.dtype)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _conv_backprop_input(g, kernel, geo, groups):
    x = jax.ShapeDtypeStruct(geo.in_shape(), g.dtype)
    (dx,) = jax.linear_transpose(lambda v: _conv(v, kernel, geo, groups), x)(g)
    return dx


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _conv_backprop_kernel(x, g, kernel_shape, geo, groups):
    k = jax.ShapeDtypeStruct(tuple(kernel_shape), x.dtype)
    (dk,) = jax.linear_transpose(lambda v: _conv(x, v, geo, groups), k)(g)
    return dk


# ---- depthwise ------------------------------------------------------------------------------
def _grouped(kernel):
    """A depthwise kernel ``(kh, kw, C, M)`` as a grouped one ``(kh, kw, 1, C * M)``."""
    kh, kw, c, m = kernel.shape
    return kernel.reshape(kh, kw, 1, c * m)


def depthwise_conv2d(x, kernel, strides, padding, data_format, dilation_rate):
    geo = C.depthwise_geometry(tuple(x.shape), tuple(kernel.shape), strides, padding,
                               data_format, dilation_rate)
    return _conv(x, _grouped(kernel), geo, kernel.shape[2])


def depthwise_conv2d_backprop_input(g, kernel, input_shape, strides, padding, data_format,
                                    dilation_rate):
    geo = C.dw_bi_geometry(tuple(g.shape), tuple(kernel.shape), input_shape, strides, padding,
                           data_format, dilation_rate)
    return _conv_backprop_input(g, _grouped(kernel), geo, kernel.shape[2])


def depthwise_conv2d_backprop_kernel(x, g, kernel_shape, strides, padding, data_format,
                                     dilation_rate):
    kh, kw, c, m = (int(v) for v in kernel_shape)
    geo = C.dw_bk_geometry(tuple(x.shape), tuple(g.shape), (kh, kw, c, m), strides, padding,
                           data_format, dilation_rate)
    dk = _conv_backprop_kernel(x, g, (kh, kw, 1, c * m), geo, c)
    return dk.reshape(kh, kw, c, m)


KERNELS = {
    **conv_kernels(_conv, _conv_backprop_input, _conv_backprop_kernel),
    "depthwise_conv2d": depthwise_conv2d,
    "depthwise_conv2d_backprop_input": depthwise_conv2d_backprop_input,
    "depthwise_conv2d_backprop_kernel": depthwise_conv2d_backprop_kernel,
}
