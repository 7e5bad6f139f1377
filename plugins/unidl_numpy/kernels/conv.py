"""NumPy convolution and pooling kernels.

Convolutions are im2col + matmul: ``sliding_window_view`` over the padded input gives every
window as a strided view, one reshape copies them into columns, and a (batched over groups)
matmul does the work. The input gradient is the reverse (matmul, then col2im by adding each
kernel tap's slice back, a loop over the ``kh * kw`` taps). float16 and bfloat16 are computed
in float32 and rounded once at the end.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from unidl.backend.conv_kernels import conv_kernels
from unidl.spec import conv as C
from unidl_numpy import saved
from unidl_numpy.kernels.elementwise import where as _select

_F64 = np.dtype(np.float64)


def _work(*arrays):
    """``arrays`` in the compute dtype (float64 stays, everything else float32), and the dtype
    to return."""
    dt = arrays[0].dtype
    wd = _F64 if dt == _F64 else np.dtype(np.float32)
    return [np.asarray(a, dtype=wd) for a in arrays], dt


def _cl(x, geo):
    return x if geo.channels_last else np.moveaxis(x, 1, -1)


def _uncl(y, geo):
    return y if geo.channels_last else np.moveaxis(y, -1, 1)


def _pad(x, geo, value=0.0):
    if not geo.padded:
        return x
    return np.pad(x, ((0, 0),) + tuple(geo.pads) + ((0, 0),), constant_values=value)


def _tap(offset, geo):
    return (slice(None),) + tuple(
        slice(o * d, o * d + n * s, s)
        for o, d, n, s in zip(offset, geo.dilation, geo.out_sizes, geo.strides))


def _crop(xp, geo):
    if not geo.padded:
        return xp
    return xp[(slice(None),) + tuple(slice(b, b + n) for (b, _), n in zip(geo.pads,
                                                                         geo.in_sizes))]


def _windows(xp, geo, dilated=True):
    """``(N, *out, C, *kernel)``: every window of the padded channels-last input (a view)."""
    r = geo.rank
    ext = geo.effective_kernel if dilated else geo.kernel
    w = sliding_window_view(xp, ext, axis=tuple(range(1, r + 1)))
    idx = ((slice(None),)
           + tuple(slice(0, n * s, s) for n, s in zip(geo.out_sizes, geo.strides))
           + (slice(None),)
           + tuple(slice(None, None, d) for d in (geo.dilation if dilated else (1,) * r)))
    return w[idx]


def _kernel_matrix(kernel, groups):
    """``(*k, Cg, O)`` -> ``(G, Cg * K, O / G)`` matching the column layout ``(Cg, *k)``."""
    r = kernel.ndim - 2
    cg, o = kernel.shape[-2], kernel.shape[-1]
    k = kernel.reshape(kernel.shape[:-1] + (groups, o // groups))
    k = k.transpose((r + 1, r) + tuple(range(r)) + (r + 2,))
    return k.reshape(groups, cg * int(np.prod(kernel.shape[:r])), o // groups)


def _depthwise(x, kernel, geo, groups):
    """Grouped conv with one input channel per group: a loop over kernel taps (and the
    channel multiplier), each an elementwise multiply-add over the whole batch."""
    xp = _pad(x, geo)
    km = kernel.reshape(kernel.shape[:-2] + (groups, -1))               # (*k, C, M)
    out = np.zeros((km.shape[-1], x.shape[0], *geo.out_sizes, groups), x.dtype)
    for m in range(km.shape[-1]):
        for off in np.ndindex(*geo.kernel):
            out[m] += xp[_tap(off, geo)] * km[off][:, m]
    out = np.moveaxis(out, 0, -1)
    return out.reshape(out.shape[:-2] + (-1,))


def _cols_key(geo, groups, dtype):
    """What a convolution's im2col columns depend on besides its input array."""
    return (tuple(tuple(p) for p in geo.pads) if geo.padded else None, tuple(geo.strides),
            tuple(geo.dilation), tuple(geo.kernel), tuple(geo.out_sizes), geo.channels_last,
            groups, dtype)


def _conv(x, kernel, geo, groups, bias=None):
    x_in = x
    (x, kernel), dt = _work(_cl(x, geo), kernel)
    n, o = x.shape[0], kernel.shape[-1]
    out_cl = (n, *geo.out_sizes, o)
    if 0 in out_cl or x.size == 0:
        return _uncl(np.zeros(out_cl, dt), geo)
    if groups > 1 and kernel.shape[-2] == 1:
        y = _depthwise(x, kernel, geo, groups)
    else:
        m = n * int(np.prod(geo.out_sizes))
        cols = _windows(_pad(x, geo), geo).reshape(m, groups, -1)
        if saved.wanted():  # (the columns conv_backprop_kernel would make again: the same)
            saved.put_for_input("conv_cols", x_in, _cols_key(geo, groups, x.dtype), cols)
        kmat = _kernel_matrix(kernel, groups)
        if groups == 1:
            y = cols[:, 0] @ kmat[0]
        else:
            y = np.matmul(cols.transpose(1, 0, 2), kmat).transpose(1, 0, 2).reshape(m, o)
        y = y.reshape(out_cl)
    if bias is not None:
        np.add(y, bias.astype(y.dtype, copy=False), out=y)  # (channels last: in place)
    return _uncl(y.astype(dt, copy=False), geo)


def _conv_backprop_input(g, kernel, geo, groups):
    (g, kernel), dt = _work(_cl(g, geo), kernel)
    n, c = g.shape[0], geo.channels
    xp = np.zeros((n, *geo.padded_sizes, c), g.dtype)
    if g.size and kernel.size and groups > 1 and kernel.shape[-2] == 1:
        gm = np.moveaxis(g.reshape(g.shape[:-1] + (c, -1)), -1, 0)    # (M, N, *out, C)
        km = kernel.reshape(kernel.shape[:-2] + (c, -1))
        for off in np.ndindex(*geo.kernel):
            view = xp[_tap(off, geo)]
            for m in range(gm.shape[0]):
                view += gm[m] * km[off][:, m]
    elif g.size and kernel.size and groups == 1:
        # columns in the kernel's own (*k, C) row order: each tap's slice is then C-contiguous
        # (3.3x faster to scatter-add than every K-th value of the (C, *k) order)
        m, r = n * int(np.prod(geo.out_sizes)), geo.rank
        cols = np.matmul(g.reshape(m, -1), kernel.reshape(-1, kernel.shape[-1]).T)
        cols = cols.reshape((n, *geo.out_sizes, *geo.kernel, c))
        for off in np.ndindex(*geo.kernel):
            xp[_tap(off, geo)] += cols[(slice(None),) * (1 + r) + off]
    elif g.size and kernel.size:
        m = n * int(np.prod(geo.out_sizes))
        gm = g.reshape(m, groups, -1).transpose(1, 0, 2)             # (G, M, Og)
        cols = np.matmul(gm, _kernel_matrix(kernel, groups).transpose(0, 2, 1))  # (G, M, CgK)
        cols = cols.transpose(1, 0, 2).reshape((n, *geo.out_sizes, c, *geo.kernel))
        for off in np.ndindex(*geo.kernel):
            xp[_tap(off, geo)] += cols[(Ellipsis,) + off]
    return _uncl(_crop(xp, geo).astype(dt, copy=False), geo)


def _conv_backprop_kernel(x, g, kernel_shape, geo, groups):
    x_in = x
    (x, g), dt = _work(_cl(x, geo), _cl(g, geo))
    r = geo.rank
    cg, o = kernel_shape[-2], kernel_shape[-1]
    if x.size == 0 or g.size == 0:
        return np.zeros(kernel_shape, dt)
    if groups > 1 and cg == 1:
        xp = _pad(x, geo)
        gm = np.moveaxis(g.reshape(-1, groups, o // groups), -1, 0)    # (M, P, C)
        kg = np.empty(tuple(geo.kernel) + (groups, o // groups), g.dtype)
        for off in np.ndindex(*geo.kernel):
            patch = xp[_tap(off, geo)].reshape(-1, groups)
            for m in range(gm.shape[0]):
                kg[off][:, m] = np.einsum("pc,pc->c", patch, gm[m])
        return kg.reshape(kernel_shape).astype(dt, copy=False)
    m = x.shape[0] * int(np.prod(geo.out_sizes))
    cols = saved.take_for_input("conv_cols", x_in, _cols_key(geo, groups, x.dtype))
    if cols is None:
        cols = _windows(_pad(x, geo), geo).reshape(m, groups, -1)
    cols = cols.transpose(1, 2, 0)                                                 # (G, CgK, M)
    gm = g.reshape(m, groups, -1).transpose(1, 0, 2)                               # (G, M, Og)
    kg = np.matmul(cols, gm).reshape((groups, cg, *geo.kernel, o // groups))
    kg = kg.transpose(tuple(range(2, 2 + r)) + (1, 0, r + 2))
    return kg.reshape(kernel_shape).astype(dt, copy=False)



def _dw(kernel):
    kh, kw, c, m = kernel.shape
    return kernel.reshape(kh, kw, 1, c * m)


def depthwise_conv2d(x, kernel, strides, padding, data_format, dilation_rate):
    geo = C.depthwise_geometry(x.shape, kernel.shape, strides, padding, data_format,
                               dilation_rate)
    return _conv(x, _dw(kernel), geo, kernel.shape[2])


def depthwise_conv2d_backprop_input(g, kernel, input_shape, strides, padding, data_format,
                                    dilation_rate):
    geo = C.dw_bi_geometry(g.shape, kernel.shape, input_shape, strides, padding, data_format,
                           dilation_rate)
    return _conv_backprop_input(g, _dw(kernel), geo, kernel.shape[2])


def depthwise_conv2d_backprop_kernel(x, g, kernel_shape, strides, padding, data_format,
                                     dilation_rate):
    kh, kw, c, m = (int(v) for v in kernel_shape)
    geo = C.dw_bk_geometry(x.shape, g.shape, (kh, kw, c, m), strides, padding, data_format,
                           dilation_rate)
    return _conv_backprop_kernel(x, g, (kh, kw, 1, c * m), geo, c).reshape(kh, kw, c, m)


# ---- pooling ------------------------------------------------------------------------------
def _pool_windows(x, geo, fill):
    """``(N, *out, C, K)``: the pooling windows of channels-last ``x``, flattened."""
    w = _windows(_pad(x, geo, fill), geo, dilated=False)
    return w.reshape(w.shape[:geo.rank + 2] + (-1,))


def _count(geo, dtype):
    """Number of real (unpadded) cells in each window, shaped to broadcast with outputs."""
    ones = np.ones((1, *geo.in_sizes, 1), dtype)
    return _pool_windows(ones, geo, 0.0).sum(-1)


def _max_taps(xp, geo):
    """The window maxima of the padded channels-last ``xp``: an elementwise maximum over the
    kernel taps (strided views), which needs no copy of the windows."""
    out = None
    for off in np.ndindex(*geo.kernel):
        t = xp[_tap(off, geo)]
        if out is None:
            out = t.copy()
        else:
            np.maximum(out, t, out=out)
    return out


def max_pool(x, pool_size, strides, padding, data_format):
    geo = C.pool_geometry(x.shape, pool_size, strides, padding, data_format, "max_pool")
    xc = _cl(x, geo)
    if xc.size == 0:
        return _uncl(np.zeros((xc.shape[0], *geo.out_sizes, geo.channels), x.dtype), geo)
    return _uncl(_max_taps(_pad(xc, geo, -np.inf), geo), geo)


def avg_pool(x, pool_size, strides, padding, data_format):
    geo = C.pool_geometry(x.shape, pool_size, strides, padding, data_format, "avg_pool")
    (xc,), dt = _work(_cl(x, geo))
    total = _pool_windows(xc, geo, 0.0).sum(-1)
    if geo.padded:
        total /= _count(geo, xc.dtype)
    else:
        total /= int(np.prod(geo.kernel))
    return _uncl(total.astype(dt, copy=False), geo)


def _argmax_index(xc, geo):
    """Flat index into the padded ``(N, *P, C)`` array of each window's first maximum."""
    arg = _pool_windows(xc, geo, -np.inf).argmax(-1)          # (N, *out, C)
    offs = np.unravel_index(arg, geo.kernel)
    n, c = xc.shape[0], xc.shape[-1]
    grids = np.meshgrid(*[np.arange(v) for v in (n, *geo.out_sizes, c)], indexing="ij",
                        sparse=True)
    lin = grids[0]
    for i in range(geo.rank):
        lin = lin * geo.padded_sizes[i] + grids[1 + i] * geo.strides[i] + offs[i]
    return lin * c + grids[-1]


def max_pool_backprop(x, g, pool_size, strides, padding, data_format, pooled=None):
    """The max-pool gradient: each window's ``g`` to its first maximum. ``pooled``: the
    forward's output, when the caller has it (the maxima are then not computed again)."""
    geo = C.pool_geometry(x.shape, pool_size, strides, padding, data_format,
                          "max_pool_backprop")
    xc, gc = _cl(x, geo), _cl(g, geo)
    n, c = xc.shape[0], xc.shape[-1]
    size = n * int(np.prod(geo.padded_sizes)) * c
    if gc.size == 0:
        return np.zeros(x.shape, x.dtype)
    if any(st < k for st, k in zip(geo.strides, geo.kernel)):
        # overlapping windows: a cell may collect several gradients (summed in float64)
        lin = _argmax_index(xc, geo)
        xp = np.bincount(lin.ravel(), weights=gc.astype(np.float64).ravel(), minlength=size)
        xp = xp.reshape((n, *geo.padded_sizes, c))
        return _uncl(_crop(xp, geo).astype(x.dtype, copy=False), geo)
    xp_in = _pad(xc, geo, -np.inf)
    best = _max_taps(xp_in, geo) if pooled is None else _cl(pooled, geo)
    dt = np.result_type(gc.dtype, x.dtype)
    xp = np.zeros((n, *geo.padded_sizes, c), dt)
    _scatter_to_first_maxima(xp, xp_in, best, gc.astype(dt, copy=False), geo)
    return _uncl(_crop(xp, geo).astype(x.dtype, copy=False), geo)


def _scatter_to_first_maxima(xp, xp_in, best, gc, geo):
    """Disjoint windows: each window's gradient ``gc`` written into the zeros ``xp`` at its
    first maximum (in window order, as argmax; a NaN counts as the maximum), found tap by
    tap on strided views, without copying the windows."""
    nans = best.dtype.kind == "f" and bool(np.isnan(best).any())  # (NaN windows only then)
    zero = np.zeros((), gc.dtype)
    taps = list(np.ndindex(*geo.kernel))
    free = None  # windows whose maximum is not yet found (None: all, before the first tap)
    for k, off in enumerate(taps):
        t = xp_in[_tap(off, geo)]
        hit = np.equal(t, best)
        if nans:
            hit |= np.not_equal(t, t)
        if free is None:
            free = ~hit
        else:
            hit &= free
            if k + 1 < len(taps):
                free ^= hit  # (hit is within free: this clears the windows just found)
        xp[_tap(off, geo)] = _select(hit, gc, zero)


def max_pool_select(x, h, pool_size, strides, padding, data_format):
    geo = C.pool_geometry(x.shape, pool_size, strides, padding, data_format, "max_pool_select")
    xc, hc = _cl(x, geo), _cl(h, geo)
    if xc.size == 0:
        return _uncl(np.zeros((xc.shape[0], *geo.out_sizes, geo.channels), x.dtype), geo)
    lin = _argmax_index(xc, geo)
    return _uncl(_pad(hc, geo).reshape(-1)[lin], geo)


def avg_pool_backprop(g, input_shape, pool_size, strides, padding, data_format):
    input_shape = tuple(int(v) for v in input_shape)
    geo = C.pool_geometry(input_shape, pool_size, strides, padding, data_format,
                          "avg_pool_backprop")
    (gc,), dt = _work(_cl(g, geo))
    gc = gc / (_count(geo, gc.dtype) if geo.padded else int(np.prod(geo.kernel)))
    xp = np.zeros((gc.shape[0], *geo.padded_sizes, geo.channels), gc.dtype)
    if gc.size:
        for off in np.ndindex(*geo.kernel):
            xp[_tap(off, geo)] += gc
    return _uncl(_crop(xp, geo).astype(dt, copy=False), geo)


def _global_axes(x, data_format):
    return C._global_axes(x.ndim, data_format)


def global_avg_pool(x, data_format, keepdims):
    (xw,), dt = _work(x)
    return np.mean(xw, axis=_global_axes(x, data_format), keepdims=keepdims).astype(dt)


def global_max_pool(x, data_format, keepdims):
    return np.max(x, axis=_global_axes(x, data_format), keepdims=keepdims)


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
