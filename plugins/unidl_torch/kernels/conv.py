"""PyTorch convolution and pooling kernels.

Inputs are moved to torch's channels-first layout and Keras kernels ``(*k, in / groups, out)``
are permuted to torch's ``(out, in / groups, *k)``. Padding comes from the shared geometry
(``unidl.spec.conv``): symmetric padding is passed to the conv itself, asymmetric padding
(TensorFlow's ``"same"`` with an odd total, explicit pairs) is applied with ``F.pad``. Input
gradients are a padding-free ``conv_transpose`` whose result ``F.pad`` crops (negative pads) or
extends to the input size, so any padding works. On CPU, float16/bfloat16 convolutions are
computed in float32 and rounded once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unidl.backend.conv_kernels import conv_kernels
from unidl.spec import conv as C

_CONV = {1: F.conv1d, 2: F.conv2d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d}
_CONV_W = {1: torch.nn.grad.conv1d_weight, 2: torch.nn.grad.conv2d_weight}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d}
_LOW = (torch.float16, torch.bfloat16)


def _up(*ts):
    """Tensors in the compute dtype, and the dtype to return."""
    dt = ts[0].dtype
    if dt in _LOW and ts[0].device.type == "cpu":
        return [t.float() for t in ts], dt
    return list(ts), dt


def _down(y, dt):
    return y if y.dtype == dt else y.to(dt)


def _dense(t):
    """``t`` itself on the CPU; elsewhere contiguous. A permuted view reaches cuDNN as a
    channels-last tensor with a channels-first kernel, which it converts or runs slowly."""
    return t if t.device.type == "cpu" else t.contiguous()


def _nc(x, geo):
    """channels-last -> channels-first (torch's layout)."""
    if not geo.channels_last:
        return x
    return _dense(x.permute(0, x.ndim - 1, *range(1, x.ndim - 1)))


def _unnc(y, geo):
    if not geo.channels_last:
        return y
    return y.permute(0, *range(2, y.ndim), 1)


def _weight(kernel):
    """Keras ``(*k, in / groups, out)`` -> torch ``(out, in / groups, *k)``."""
    r = kernel.ndim - 2
    return _dense(kernel.permute(r + 1, r, *range(r)))


def _unweight(w):
    r = w.ndim - 2
    return w.permute(*range(2, r + 2), 1, 0)


def _torch_pads(pairs):
    """``((b0, a0), (b1, a1))`` per spatial dim -> F.pad's last-dim-first flat list."""
    out = []
    for b, a in reversed(tuple(pairs)):
        out += [b, a]
    return out


def _pad_to(x, geo, sizes, value=0.0):
    """Pad (or crop, with negative amounts) spatial dims: before = geo pads, total = sizes."""
    pairs = [(b, size - n - b) for (b, _), n, size in zip(geo.pads, geo.in_sizes, sizes)]
    if not any(b or a for b, a in pairs):
        return x
    return F.pad(x, _torch_pads(pairs), value=value)


def _used(geo):
    """Padded extent the windows actually read: ``(out - 1) * s + k_eff``."""
    return tuple((n - 1) * s + e if n else 0
                 for n, s, e in zip(geo.out_sizes, geo.strides, geo.effective_kernel))


def _conv(x, kernel, geo, groups, bias=None):
    (x, kernel), dt = _up(_nc(x, geo), kernel)
    w = _weight(kernel)
    if bias is not None and bias.dtype != x.dtype:
        bias = bias.to(x.dtype)
    if geo.symmetric:
        y = _CONV[geo.rank](x, w, bias, geo.strides, tuple(b for b, _ in geo.pads),
                            geo.dilation, groups)
    else:
        x = _pad_to(x, geo, _used(geo))
        y = _CONV[geo.rank](x, w, bias, geo.strides, 0, geo.dilation, groups)
    return _unnc(_down(y, dt), geo)


def _conv_backprop_input(g, kernel, geo, groups):
    (g, kernel), dt = _up(_nc(g, geo), kernel)
    full = _CONV_T[geo.rank](g, _weight(kernel), None, geo.strides, 0, 0, groups, geo.dilation)
    # full[..., q] is the gradient of padded position q; keep [b, b + n), zeros past the end
    pairs = [(-b, n + b - f) for (b, _), n, f in zip(geo.pads, geo.in_sizes, full.shape[2:])]
    if any(p or q for p, q in pairs):
        full = F.pad(full, _torch_pads(pairs))
    return _unnc(_down(full, dt), geo)


def _conv_backprop_kernel(x, g, kernel_shape, geo, groups):
    (x, g), dt = _up(_nc(x, geo), _nc(g, geo))
    x = _pad_to(x, geo, _used(geo))
    r = geo.rank
    wshape = (kernel_shape[-1], kernel_shape[-2], *kernel_shape[:r])
    w = _CONV_W[r](x, wshape, g, geo.strides, 0, geo.dilation, groups)
    return _down(_unweight(w), dt)



def _dw(kernel):
    kh, kw, c, m = kernel.shape
    return kernel.reshape(kh, kw, 1, c * m)


def depthwise_conv2d(x, kernel, strides, padding, data_format, dilation_rate):
    geo = C.depthwise_geometry(tuple(x.shape), tuple(kernel.shape), strides, padding,
                               data_format, dilation_rate)
    return _conv(x, _dw(kernel), geo, kernel.shape[2])


def depthwise_conv2d_backprop_input(g, kernel, input_shape, strides, padding, data_format,
                                    dilation_rate):
    geo = C.dw_bi_geometry(tuple(g.shape), tuple(kernel.shape), input_shape, strides, padding,
                           data_format, dilation_rate)
    return _conv_backprop_input(g, _dw(kernel), geo, kernel.shape[2])


def depthwise_conv2d_backprop_kernel(x, g, kernel_shape, strides, padding, data_format,
                                     dilation_rate):
    kh, kw, c, m = (int(v) for v in kernel_shape)
    geo = C.dw_bk_geometry(tuple(x.shape), tuple(g.shape), (kh, kw, c, m), strides, padding,
                           data_format, dilation_rate)
    return _conv_backprop_kernel(x, g, (kh, kw, 1, c * m), geo, c).reshape(kh, kw, c, m)


# ---- pooling ------------------------------------------------------------------------------
def _pool_geo(x, pool_size, strides, padding, data_format, op):
    return C.pool_geometry(tuple(x.shape), pool_size, strides, padding, data_format, op)


def _frac(geo, like):
    """Fraction of each window's cells that are real (unpadded), ``(1, 1, *out)``."""
    ones = torch.ones((1, 1, *geo.in_sizes), dtype=like.dtype, device=like.device)
    return _AVG[geo.rank](_pad_to(ones, geo, geo.padded_sizes), geo.kernel, geo.strides)


def max_pool(x, pool_size, strides, padding, data_format):
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "max_pool")
    x = _pad_to(_nc(x, geo), geo, geo.padded_sizes, -math.inf)
    return _unnc(_MAX[geo.rank](x, geo.kernel, geo.strides), geo)


def avg_pool(x, pool_size, strides, padding, data_format):
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "avg_pool")
    (x,), dt = _up(_nc(x, geo))
    x = _pad_to(x, geo, geo.padded_sizes)
    y = _AVG[geo.rank](x, geo.kernel, geo.strides)
    if geo.padded:
        y = y / _frac(geo, x)
    return _unnc(_down(y, dt), geo)


def _argmax(x, geo):
    """Flat index into each (n, c) padded plane of each window's first maximum."""
    xp = _pad_to(x.detach(), geo, geo.padded_sizes, -math.inf)
    _, idx = _MAX[geo.rank](xp, geo.kernel, geo.strides, return_indices=True)
    return idx


def max_pool_backprop(x, g, pool_size, strides, padding, data_format):
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "max_pool_backprop")
    x, g = _nc(x, geo), _nc(g, geo)
    idx = _argmax(x, geo)
    n, c = x.shape[0], x.shape[1]
    flat = torch.zeros((n, c, math.prod(geo.padded_sizes)), dtype=g.dtype, device=g.device)
    flat = flat.scatter_add(2, idx.reshape(n, c, -1), g.reshape(n, c, -1))
    xp = flat.reshape(n, c, *geo.padded_sizes)
    if geo.padded:
        xp = F.pad(xp, _torch_pads([(-b, -a) for b, a in geo.pads]))
    return _unnc(xp, geo)


def max_pool_select(x, h, pool_size, strides, padding, data_format):
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "max_pool_select")
    x, h = _nc(x, geo), _nc(h, geo)
    idx = _argmax(x, geo)
    n, c = x.shape[0], x.shape[1]
    hp = _pad_to(h, geo, geo.padded_sizes).reshape(n, c, -1)
    out = torch.gather(hp, 2, idx.reshape(n, c, -1)).reshape(idx.shape)
    return _unnc(out, geo)


def avg_pool_backprop(g, input_shape, pool_size, strides, padding, data_format):
    input_shape = tuple(int(v) for v in input_shape)
    geo = C.pool_geometry(input_shape, pool_size, strides, padding, data_format,
                          "avg_pool_backprop")
    (g,), dt = _up(_nc(g, geo))
    n, c = g.shape[0], g.shape[1]
    g = g / math.prod(geo.kernel)
    if geo.padded:
        g = g / _frac(geo, g)
    ones = torch.ones((1, 1, *geo.kernel), dtype=g.dtype, device=g.device)
    full = _CONV_T[geo.rank](g.reshape(n * c, 1, *geo.out_sizes), ones, None, geo.strides)
    pairs = [(-b, m + b - f) for (b, _), m, f in zip(geo.pads, geo.in_sizes, full.shape[2:])]
    if any(p or q for p, q in pairs):
        full = F.pad(full, _torch_pads(pairs))
    return _unnc(_down(full.reshape(n, c, *geo.in_sizes), dt), geo)


def global_avg_pool(x, data_format, keepdims):
    axes = C._global_axes(x.ndim, data_format)
    (xw,), dt = _up(x)
    return _down(torch.mean(xw, dim=axes, keepdim=keepdims), dt)


def global_max_pool(x, data_format, keepdims):
    return torch.amax(x, dim=C._global_axes(x.ndim, data_format), keepdim=keepdims)


KERNELS = {
    **conv_kernels(_conv, _conv_backprop_input, _conv_backprop_kernel),
    "depthwise_conv2d": depthwise_conv2d,
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "global_avg_pool": global_avg_pool,
    "global_max_pool": global_max_pool,
    "depthwise_conv2d_backprop_input": depthwise_conv2d_backprop_input,
    "depthwise_conv2d_backprop_kernel": depthwise_conv2d_backprop_kernel,
    "max_pool_backprop": max_pool_backprop,
    "max_pool_select": max_pool_select,
    "avg_pool_backprop": avg_pool_backprop,
}
