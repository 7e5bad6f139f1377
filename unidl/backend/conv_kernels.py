"""Convolution kernels of the spec's signatures from three geometry-level functions.

The spec's convolution ops take Keras-style arguments (strides, padding, data format,
dilation, groups); every backend first resolves them into a geometry
(:func:`unidl.spec.conv.conv_geometry` and friends) and then runs its own convolution. A
backend writes only the three functions that take the resolved geometry; this module wraps
them into the five kernels the spec names, so argument handling is written once.

Example:
    >>> from unidl.backend.conv_kernels import conv_kernels
    >>> sorted(conv_kernels(None, None, None))  # doctest: +NORMALIZE_WHITESPACE
    ['conv1d', 'conv2d', 'conv2d_transpose', 'conv_backprop_input', 'conv_backprop_kernel']
"""

from __future__ import annotations

from collections.abc import Callable

from unidl.spec import conv as C

__all__ = ["conv_kernels"]


def conv_kernels(conv: Callable, backprop_input: Callable, backprop_kernel: Callable) -> dict:
    """The kernels ``conv1d``, ``conv2d``, ``conv_backprop_input``, ``conv_backprop_kernel``
    and ``conv2d_transpose`` built on a backend's geometry-level functions.

    Args:
        conv: ``conv(x, kernel, geo, groups, bias)``, the forward convolution (``bias``, of
            shape ``(out_channels,)`` or None, added along the channel axis).
        backprop_input: ``backprop_input(g, kernel, geo, groups)``, the gradient with
            respect to the input (also the transposed convolution, with ``groups=1``).
        backprop_kernel: ``backprop_kernel(x, g, kernel_shape, geo, groups)``, the gradient
            with respect to the kernel.

    Returns:
        A dict of kernel name to kernel, ready to merge into a plugin's ``KERNELS``.
    """

    def conv1d(x, kernel, strides, padding, data_format, dilation_rate, groups, bias=None):
        geo = C.conv_geometry(tuple(x.shape), tuple(kernel.shape), strides, padding,
                              data_format, dilation_rate, groups, 1, "convolution")
        return conv(x, kernel, geo, groups, bias)

    def conv2d(x, kernel, strides, padding, data_format, dilation_rate, groups, bias=None):
        geo = C.conv_geometry(tuple(x.shape), tuple(kernel.shape), strides, padding,
                              data_format, dilation_rate, groups, 2, "convolution")
        return conv(x, kernel, geo, groups, bias)

    def conv_backprop_input(g, kernel, input_shape, strides, padding, data_format,
                            dilation_rate, groups):
        geo = C.bi_geometry(tuple(g.shape), tuple(kernel.shape), input_shape, strides, padding,
                            data_format, dilation_rate, groups)
        return backprop_input(g, kernel, geo, groups)

    def conv_backprop_kernel(x, g, kernel_shape, strides, padding, data_format, dilation_rate,
                             groups):
        kernel_shape = tuple(int(v) for v in kernel_shape)
        geo = C.bk_geometry(tuple(x.shape), tuple(g.shape), kernel_shape, strides, padding,
                            data_format, dilation_rate, groups)
        return backprop_kernel(x, g, kernel_shape, geo, groups)

    def conv2d_transpose(x, kernel, strides, padding, output_padding, data_format,
                         dilation_rate):
        geo, _ = C.conv_transpose_geometry(tuple(x.shape), tuple(kernel.shape), strides,
                                           padding, output_padding, data_format, dilation_rate)
        return backprop_input(x, kernel, geo, 1)

    return {"conv1d": conv1d, "conv2d": conv2d, "conv_backprop_input": conv_backprop_input,
            "conv_backprop_kernel": conv_backprop_kernel, "conv2d_transpose": conv2d_transpose}
