"""torch quantization kernels (see unidl/spec/quant.py for the semantics).

``quantized_matmul`` is an int32 matmul of the shifted operands (exact: products and sums
stay far below 2**31 for any layer size in use; faster on CPU than ``torch._int_mm``, which
needs int8 operands and so cannot take a shifted uint8 input); ``quantized_conv2d`` runs
this backend's float64 ``conv2d`` (im2col + GEMM on CPU: exact, see the spec).
"""

from __future__ import annotations

import torch

from unidl_torch.kernels.conv import KERNELS as _CONV

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
_DTYPES = {"int8": torch.int8, "uint8": torch.uint8}


def _along(v, ndim, axis):
    if axis is None or v.numel() == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[int(axis) % ndim] = -1
    return v.reshape(shape)


def quantize(x, scale, zero_point, axis, dtype):
    lo, hi = _RANGES[dtype]
    q = torch.round(torch.div(x, _along(scale, x.dim(), axis)))
    if zero_point is not None:
        q = q + _along(zero_point, x.dim(), axis).to(x.dtype)
    return torch.clamp(q, lo, hi).to(_DTYPES[dtype])


def dequantize(x, scale, zero_point, axis):
    q = x.to(torch.int32)
    if zero_point is not None:
        q = q - _along(zero_point, x.dim(), axis).to(torch.int32)
    return q.to(scale.dtype) * _along(scale, x.dim(), axis)


def _shifted(v, zp, dtype):
    v = v.to(dtype)
    if zp is None:
        return v
    return v - zp.to(dtype).reshape(() if zp.numel() == 1 else (-1,))


def quantized_matmul(a, b, a_zero_point, b_zero_point):
    k, n = b.shape
    # (CUDA has no integer matmul: float64 there, exact as on NumPy; see the spec)
    dt = torch.int32 if a.device.type == "cpu" else torch.float64
    y = torch.matmul(_shifted(a.reshape(-1, k), a_zero_point, dt),
                     _shifted(b, b_zero_point, dt))
    return y.to(torch.int32).reshape(tuple(a.shape[:-1]) + (n,))


def quantized_conv2d(x, kernel, x_zero_point, kernel_zero_point, strides, padding,
                     dilation_rate):
    y = _CONV["conv2d"](_shifted(x, x_zero_point, torch.float64),
                        _shifted(kernel, kernel_zero_point, torch.float64), strides, padding,
                        "channels_last", dilation_rate, 1, None)
    return y.to(torch.int32)


KERNELS = {
    "quantize": quantize,
    "dequantize": dequantize,
    "quantized_matmul": quantized_matmul,
    "quantized_conv2d": quantized_conv2d,
}
