"""Gradient kernels for unidl's engine on NumPy: the spec's gradient rules of the ops every
training step runs, computed with plain NumPy calls instead of one dispatched op each.

Each kernel computes exactly what the spec's rule computes (the same float operations in
the same order, so the same bits; ``tests/test_perf_paths.py`` checks it), for the common
case; it returns None for any other case and the engine then runs the spec's rule. A kernel
takes ``(slots, g, out, *args)``: ``slots`` are the tensor inputs whose cotangents are
needed, ``g`` the cotangent of the output ``out``, then the op's arguments.
"""

from __future__ import annotations

import numpy as np

from unidl.spec.nn import check_rate, dropout_mask
from unidl_numpy import saved as _saved
from unidl_numpy.kernels import conv as _conv
from unidl_numpy.kernels.elementwise import keep_or_zero as _keep
from unidl_numpy.kernels.nn import softmax as _softmax
from unidl_numpy.kernels.reduction import sum_ as _sum
from unidl_numpy.rnn_grads import lstm

__all__ = ["GRAD_KERNELS"]

_ND = np.ndarray


def _same_float(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt.kind == "f" and all(a.__class__ is _ND and a.dtype == dt for a in arrays)


def relu(slots, g, out, x):
    """``where(x > 0, g, 0)``."""
    if not _same_float(g, x):
        return None
    if g.shape != x.shape:
        return None
    return (_keep(np.greater(x, 0), g),)


def dropout(slots, g, out, x, rate, seed=None, training=True):
    """``where(mask, g * (1 / (1 - rate)), 0)``; the mask is replayed from ``seed`` or read
    from the output (kept elements are non-zero)."""
    if not _same_float(g, out):
        return None
    r = check_rate(rate)
    if not training or r == 0.0:
        return (g,)
    mask = dropout_mask(x.shape, r, seed) if seed is not None else np.not_equal(out, 0)
    if mask.shape != g.shape:
        return None
    scaled = np.multiply(g, g.dtype.type(1.0 / (1.0 - r)))
    return (_keep(mask, scaled),)


def sparse_categorical_crossentropy(slots, g, out, target, output, from_logits=False,
                                    axis=-1):
    """From logits over the last axis: ``g[..., None] * (softmax(output) - one_hot(target))``."""
    if not from_logits or not _same_float(g, output) or output.ndim < 1:
        return None
    n = output.shape[-1]
    if axis % output.ndim != output.ndim - 1 or target.shape != output.shape[:-1] \
            or target.dtype.kind not in "iu" or n == 0:
        return None
    d = _saved.take("sparse_categorical_crossentropy", out)  # (the forward's: same bits)
    if d is None or d.shape != output.shape:
        d = _softmax(output, -1)
    flat = d.reshape(-1, n)
    rows, cols = np.arange(flat.shape[0]), target.reshape(-1)
    if cols.size and (cols.min() < 0 or cols.max() >= n):
        valid = (cols >= 0) & (cols < n)  # (one_hot's all-zero rows for the others: p - 0)
        rows, cols = rows[valid], cols[valid]
    flat[rows, cols] -= 1  # (p - 0 and p - 1: as p - onehot)
    np.multiply(d, g[..., None], out=d)
    return None, d


def mean(slots, g, out, x, axis=None, keepdims=False):
    """Over every axis: ``g * (1 / n)`` everywhere."""
    if axis is not None or not _same_float(g, x) or g.ndim != 0 or x.size == 0:
        return None
    return (np.full(x.shape, np.multiply(g, g.dtype.type(1.0 / x.size))),)


def dense(slots, g, out, x, kernel, bias=None):
    """``(g @ kernel.T, x2.T @ g2, sum(g2, 0))`` with ``x2``/``g2`` the 2-D views."""
    if not _same_float(g, x, kernel) or (bias is not None and not _same_float(bias, g)):
        return None
    units = kernel.shape[1]
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    g2 = g if g.ndim == 2 else g.reshape(-1, units)
    gx = np.matmul(g, kernel.T) if 0 in slots else None
    gk = np.matmul(x2.T, g2) if 1 in slots else None
    gb = None
    if bias is not None and 2 in slots:  # (float32/64 sum in their own dtype: as ``sum``)
        gb = g2.sum(axis=0) if g2.dtype.itemsize >= 4 else _sum(g2, (0,), False)
    return gx, gk, gb


def max_pool(slots, g, out, x, pool_size, strides=None, padding="valid",
             data_format="channels_last"):
    """``max_pool_backprop`` with the forward's maxima ``out`` (not computed again)."""
    if not _same_float(g, x, out):
        return None
    return (_conv.max_pool_backprop(x, g, pool_size, strides, padding, data_format,
                                    pooled=out),)


GRAD_KERNELS = {
    "relu": relu,
    "max_pool": max_pool,
    "dropout": dropout,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean": mean,
    "dense": dense,
    "lstm": lstm,
}
