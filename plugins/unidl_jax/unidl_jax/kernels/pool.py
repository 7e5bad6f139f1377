"""JAX pooling kernels on ``jax.lax.reduce_window``.

``max_pool`` reduces with ``max`` from ``-inf`` (padded cells never win); ``avg_pool`` sums and
divides each window by the number of real cells it covers (a constant of the geometry,
computed on the host), half precision summed in float32. Padding comes from the shared
geometry (``unidl.spec.conv.pool_geometry``), TensorFlow's ``"same"`` included.

The spec routes a max-pool window's gradient to its *first* maximum (row-major), also in
ties, which low-precision inputs make common. ``max_pool_select`` therefore scans the window's
cells in that order (one strided slice per cell, padding left out), keeping a cell only if it
is strictly greater than the best so far, as the reference does. It is linear in ``h``, and
its transpose is ``max_pool_backprop``; ``avg_pool_backprop`` is the transpose of
``avg_pool``. ``jax.linear_transpose`` gives both, exact adjoints that JAX differentiates
again. Each kernel is one ``jax.jit`` function of its geometry (one program per eager call).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from unidl.spec import conv as C

_HALF = (jnp.float16, jnp.bfloat16)


def _geometry(shape, pool_size, strides, padding, data_format, op):
    return C.pool_geometry(tuple(int(v) for v in shape), pool_size, strides, padding,
                           data_format, op)


def _full(geo, spatial, fill):
    """A per-dimension tuple: ``spatial`` on the spatial axes, ``fill`` on the others."""
    if geo.channels_last:
        return (fill, *spatial, fill)
    return (fill, fill, *spatial)


def _reduce(x, geo, init, op):
    return lax.reduce_window(x, np.array(init, x.dtype), op, _full(geo, geo.kernel, 1),
                             _full(geo, geo.strides, 1), _full(geo, geo.pads, (0, 0)))


@functools.partial(jax.jit, static_argnums=1)
def _max_pool(x, geo):
    return _reduce(x, geo, -np.inf, lax.max)


def _counts(geo):
    """The number of real (unpadded) cells of every window, shaped to broadcast."""
    per_dim = []
    for n, k, s, (b, _), out in zip(geo.in_sizes, geo.kernel, geo.strides, geo.pads,
                                    geo.out_sizes):
        start = np.arange(out) * s - b
        per_dim.append(np.minimum(start + k, n) - np.maximum(start, 0))
    counts = per_dim[0] if geo.rank == 1 else np.multiply.outer(per_dim[0], per_dim[1])
    return counts.reshape(_full(geo, geo.out_sizes, 1))


@functools.partial(jax.jit, static_argnums=1)
def _avg_pool(x, geo):
    xs = x.astype(jnp.float32) if x.dtype in _HALF else x
    total = _reduce(xs, geo, 0, lax.add)
    return (total / _counts(geo).astype(xs.dtype)).astype(x.dtype)


@functools.partial(jax.jit, static_argnums=1)
def _avg_pool_backprop(g, geo):
    x = jax.ShapeDtypeStruct(geo.in_shape(), g.dtype)
    (dx,) = jax.linear_transpose(lambda v: _avg_pool(v, geo), x)(g)
    return dx


def max_pool(x, pool_size, strides=None, padding="valid", data_format="channels_last"):
    return _max_pool(x, _geometry(x.shape, pool_size, strides, padding, data_format,
                                  "max_pool"))


def avg_pool(x, pool_size, strides=None, padding="valid", data_format="channels_last"):
    return _avg_pool(x, _geometry(x.shape, pool_size, strides, padding, data_format,
                                  "avg_pool"))


def avg_pool_backprop(g, input_shape, pool_size, strides=None, padding="valid",
                      data_format="channels_last"):
    return _avg_pool_backprop(g, _geometry(input_shape, pool_size, strides, padding,
                                           data_format, "avg_pool_backprop"))


# ---- the first maximum of each window ------------------------------------------------------
def _cells(geo):
    """``(offset, real)`` for each cell of the window in row-major order: the cell's offset
    in the window and where it falls on the input (not the padding), per output position."""
    for offset in itertools.product(*(range(k) for k in geo.kernel)):
        real = True
        for axis, (t, n, s, (b, _), out) in enumerate(zip(
                offset, geo.in_sizes, geo.strides, geo.pads, geo.out_sizes)):
            src = np.arange(out) * s + t - b
            shape = [1] * geo.rank
            shape[axis] = out
            real = real & ((src >= 0) & (src < n)).reshape(shape)
        yield offset, np.broadcast_to(real, geo.out_sizes).reshape(_full(geo, geo.out_sizes, 1))


def _cell(xp, geo, offset):
    """The padded input's values at one window cell of every output position."""
    starts = _full(geo, offset, 0)
    extents = _full(geo, [(o - 1) * s + 1 for o, s in zip(geo.out_sizes, geo.strides)], None)
    limits = [n if e is None else a + e for a, e, n in zip(starts, extents, xp.shape)]
    return lax.slice(xp, starts, limits, _full(geo, geo.strides, 1))


@functools.partial(jax.jit, static_argnums=2)
def _select(x, h, geo):
    """For each window of ``x``, ``h`` at the window's first maximum."""
    pads = [(b, a, 0) for b, a in _full(geo, geo.pads, (0, 0))]
    xp = lax.pad(x, np.array(0, x.dtype), pads)
    hp = lax.pad(h, np.array(0, h.dtype), pads)
    seen = np.zeros((), bool)  # per output position: whether a real cell came yet
    best = out = None
    for offset, real in _cells(geo):
        xc, hc = _cell(xp, geo, offset), _cell(hp, geo, offset)
        if best is None:
            best, out = xc, jnp.zeros_like(hc)
        # the window's first real cell, then only a strictly greater one (a later NaN never wins)
        take = jnp.logical_and(real, jnp.logical_or(~seen, xc > best))
        best = jnp.where(take, xc, best)
        out = jnp.where(take, hc, out)
        seen = seen | real
    return out


@functools.partial(jax.jit, static_argnums=2)
def _select_backprop(x, g, geo):
    h = jax.ShapeDtypeStruct(tuple(x.shape), g.dtype)
    (dx,) = jax.linear_transpose(lambda v: _select(x, v, geo), h)(g)
    return dx


def max_pool_select(x, h, pool_size, strides=None, padding="valid", data_format="channels_last"):
    geo = _geometry(x.shape, pool_size, strides, padding, data_format, "max_pool_select")
    return _select(lax.stop_gradient(x), h, geo)


def max_pool_backprop(x, g, pool_size, strides=None, padding="valid",
                      data_format="channels_last"):
    geo = _geometry(x.shape, pool_size, strides, padding, data_format, "max_pool_backprop")
    return _select_backprop(lax.stop_gradient(x), g, geo)


KERNELS = {
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "avg_pool_backprop": avg_pool_backprop,
    "max_pool_select": max_pool_select,
    "max_pool_backprop": max_pool_backprop,
}
