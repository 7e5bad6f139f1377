"""TensorFlow shape and data-movement kernels, following NumPy's semantics.

Index arguments may have any integer dtype and be negative: they are cast to int64 and
wrapped before TF sees them (TF itself rejects negative indices). ``tf.sort`` puts NaN
first and has no bool kernel; ``top_k``/``argsort`` lack bool too: the kernels adapt.
Reflect/symmetric padding wider than TF's ``MirrorPad`` allows falls back to ``tf.gather``
with NumPy's index pattern.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from unidl.spec.rules import broadcast_shapes, normalize_axes, normalize_axis
from unidl.spec.shape import (
    expand_dims_axes,
    mirror_index,
    pad_mode,
    pad_pairs,
    slice_sizes,
    split_bounds,
    tile_reps,
)

_HALF = (tf.float16, tf.bfloat16)
_DT = {
    "bool": tf.bool, "uint8": tf.uint8, "int8": tf.int8, "int16": tf.int16,
    "int32": tf.int32, "int64": tf.int64, "float16": tf.float16,
    "bfloat16": tf.bfloat16, "float32": tf.float32, "float64": tf.float64,
}


def _ints(v):
    return (int(v),) if isinstance(v, (int, np.integer)) else tuple(int(s) for s in v)


def _index(indices, n):
    """``indices`` as int64 with negative entries wrapped (out-of-range ones stay invalid)."""
    idx = tf.cast(indices, tf.int64)
    return tf.where(idx < 0, idx + tf.cast(n, tf.int64), idx)


def reshape(x, shape):
    return tf.reshape(x, _ints(shape))


def transpose(x, axes=None):
    if axes is None:
        return tf.transpose(x)
    nd = x.shape.rank
    return tf.transpose(x, [normalize_axis(a, nd) for a in _ints(axes)] if nd else [])


def expand_dims(x, axis):
    for a in expand_dims_axes(axis, x.shape.rank):
        x = tf.expand_dims(x, a)
    return x


def squeeze(x, axis=None):
    if axis is None:
        return tf.squeeze(x)
    if not x.shape.rank:
        return x
    dims = normalize_axes(axis, x.shape.rank)
    return tf.squeeze(x, list(dims)) if dims else x


def concatenate(xs, axis=0):
    return tf.concat(list(xs), axis)


def stack(xs, axis=0):
    return tf.stack(list(xs), axis)


def _split_unknown(x, indices_or_sections, a):
    """``split`` along an axis of unknown length (inside ``tf.function``): TF checks an equal
    split at run time; split points clamp as ``numpy.split``'s do."""
    if isinstance(indices_or_sections, (int, np.integer)):
        return tf.split(x, int(indices_or_sections), axis=a)
    n = tf.shape(x, out_type=tf.int64)[a]

    def point(p):
        p = int(p)
        return tf.clip_by_value(n + p if p < 0 else tf.constant(p, tf.int64), 0, n)

    points = [tf.constant(0, tf.int64)] + [point(p) for p in indices_or_sections] + [n]
    lead = (slice(None),) * a
    return [x[lead + (slice(s, tf.maximum(s, e)),)] for s, e in zip(points[:-1], points[1:])]


def split(x, indices_or_sections, axis=0):
    a = normalize_axis(axis, x.shape.rank)
    if x.shape[a] is None:
        return _split_unknown(x, indices_or_sections, a)
    bounds = split_bounds(x.shape[a], indices_or_sections)
    contiguous = all(e >= s for s, e in bounds) and all(
        bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
    if contiguous and bounds and bounds[-1][1] == x.shape[a]:
        return tf.split(x, [e - s for s, e in bounds], axis=a)  # one op, not one per piece
    lead = (slice(None),) * a
    return [x[lead + (slice(s, max(s, e)),)] for s, e in bounds]


def broadcast_to(x, shape):
    return tf.broadcast_to(x, _ints(shape))


def tile(x, repeats):
    xs, reps = tile_reps(tuple(x.shape), repeats)
    for _ in range(len(xs) - x.shape.rank):
        x = tf.expand_dims(x, 0)
    return tf.tile(x, reps) if reps else x


def pad(x, pad_width, mode="constant", constant_values=0):
    shape = tuple(x.shape)
    pairs = pad_pairs(pad_width, len(shape))
    m = pad_mode(mode)
    if not any(b or a for b, a in pairs):
        return tf.identity(x)
    if m == "constant":
        return tf.pad(x, pairs, constant_values=tf.cast(constant_values, x.dtype))
    limit = 1 if m == "reflect" else 0
    # TF's own REFLECT/SYMMETRIC pad (an axis of unknown length inside tf.function: TF checks
    # the widths at run time; wider pads than TF allows need the known length, below)
    if all(n is None or (n and b <= n - limit and a <= n - limit)
           for n, (b, a) in zip(shape, pairs)):
        if x.dtype == tf.bool:
            return tf.cast(tf.pad(tf.cast(x, tf.uint8), pairs, mode=m.upper()), tf.bool)
        return tf.pad(x, pairs, mode=m.upper())
    for axis, ((b, a), n) in enumerate(zip(pairs, shape)):
        if b or a:
            if n == 0:
                raise ValueError(f"can't extend empty axis {axis} using mode {m!r}")
            x = tf.gather(x, mirror_index(n, b, a, m), axis=axis)
    return x


def flip(x, axis=None):
    if not x.shape.rank:
        return tf.identity(x)
    dims = normalize_axes(axis, x.shape.rank)
    return tf.reverse(x, list(dims)) if dims else tf.identity(x)


def take(x, indices, axis=None):
    if axis is None:
        flat = tf.reshape(x, [-1])
        return tf.gather(flat, _index(indices, tf.size(flat)))
    a = normalize_axis(axis, x.shape.rank)
    return tf.gather(x, _index(indices, tf.shape(x)[a]), axis=a)


def _along_last(x, idx):
    """``x`` indexed along its last axis by ``idx`` (same leading shape)."""
    return tf.gather(x, idx, batch_dims=x.shape.rank - 1)


def _moved(fn, x, idx, a):
    """Apply a last-axis function with axis ``a`` moved to the end and back."""
    nd = x.shape.rank
    if a == nd - 1:
        return fn(x, idx)
    perm = [i for i in range(nd) if i != a] + [a]
    inv = list(np.argsort(perm))
    return tf.transpose(fn(tf.transpose(x, perm), tf.transpose(idx, perm)), inv)


def take_along_axis(x, indices, axis):
    if axis is None:
        flat = tf.reshape(x, [-1])
        return tf.gather(flat, _index(indices, tf.size(flat)))
    nd = x.shape.rank
    a = normalize_axis(axis, nd)
    idx = _index(indices, tf.shape(x)[a])
    xs, js = tuple(x.shape), tuple(indices.shape)
    rest = broadcast_shapes(xs[:a] + (1,) + xs[a + 1:], js[:a] + (1,) + js[a + 1:])
    want_x, want_i = rest[:a] + (xs[a],) + rest[a + 1:], rest[:a] + (js[a],) + rest[a + 1:]
    if want_x != xs:
        x = tf.broadcast_to(x, want_x)
    if want_i != js:
        idx = tf.broadcast_to(idx, want_i)
    return _moved(_along_last, x, idx, a)


def slice_(x, start_indices, shape):
    start, size = slice_sizes(tuple(x.shape), start_indices, shape)
    return tf.slice(x, np.asarray(start, np.int64), np.asarray(size, np.int64))


def gather(params, indices):
    return tf.gather(params, _index(indices, tf.shape(params)[0]))


def scatter_add(x, indices, updates):
    idx = tf.expand_dims(_index(indices, tf.shape(x)[0]), -1)
    if x.dtype in _HALF:
        out = tf.tensor_scatter_nd_add(tf.cast(x, tf.float32), idx, tf.cast(updates, tf.float32))
        return tf.cast(out, x.dtype)
    return tf.tensor_scatter_nd_add(x, idx, updates)


def one_hot(indices, num_classes, axis=-1, dtype="float32"):
    a = normalize_axis(axis, indices.shape.rank + 1)
    idx = tf.cast(indices, tf.int64)
    if dtype == "bool":
        return tf.cast(tf.one_hot(idx, num_classes, axis=a, dtype=tf.uint8), tf.bool)
    return tf.one_hot(idx, num_classes, axis=a, dtype=_DT[dtype])


def top_k(x, k, sorted=True):
    # tf.math.top_k is stable (ties: lower index first) but mis-ranks a second NaN
    if x.dtype == tf.bool:
        values, idx = tf.math.top_k(tf.cast(x, tf.uint8), k, sorted=True)
        return [tf.cast(values, tf.bool), tf.cast(idx, tf.int64)]
    if not x.dtype.is_floating:
        values, idx = tf.math.top_k(x, k, sorted=True)
        return [values, tf.cast(idx, tf.int64)]
    nan = tf.math.is_nan(x)

    def with_nans():  # stable descending by value (NaN as inf), then NaNs first
        p1 = tf.argsort(tf.where(nan, tf.cast(np.inf, x.dtype), x), -1,
                        direction="DESCENDING", stable=True)
        p2 = tf.argsort(_along_last(tf.cast(~nan, tf.int32), p1), -1, stable=True)
        order = tf.cast(_along_last(p1, p2)[..., :k], tf.int64)
        return _along_last(x, order), order

    def plain():
        values, idx = tf.math.top_k(x, k, sorted=True)
        return values, tf.cast(idx, tf.int64)

    values, idx = tf.cond(tf.reduce_any(nan), with_nans, plain)
    return [values, idx]


def _flat_axis(x, axis):
    if axis is None:
        return tf.reshape(x, [-1]), 0
    return x, normalize_axis(axis, x.shape.rank)


def _nan_last_sort(x, a):
    nan = tf.math.is_nan(x)

    def with_nans():
        s = tf.sort(tf.where(nan, tf.cast(np.inf, x.dtype), x), a)
        count = tf.reduce_sum(tf.cast(nan, tf.int32), a, keepdims=True)
        n = tf.shape(x)[a]
        shape = [1] * x.shape.rank
        shape[a] = -1
        pos = tf.reshape(tf.range(n), shape)
        return tf.where(pos >= n - count, tf.cast(np.nan, x.dtype), s)

    return tf.cond(tf.reduce_any(nan), with_nans, lambda: tf.sort(x, a))


def sort(x, axis=-1):
    x, a = _flat_axis(x, axis)
    if x.shape.num_elements() == 0:  # (TF's sort gradient fails on empty tensors)
        return tf.identity(x)
    if x.dtype == tf.bool:
        return tf.cast(tf.sort(tf.cast(x, tf.uint8), a), tf.bool)
    if x.dtype.is_floating:
        return _nan_last_sort(x, a)
    return tf.sort(x, a)


def argsort(x, axis=-1):
    x, a = _flat_axis(x, axis)
    if x.shape.num_elements() == 0:
        return tf.zeros(tf.shape(x), tf.int64)
    if x.dtype == tf.bool:
        x = tf.cast(x, tf.uint8)
    if not x.dtype.is_floating:
        return tf.cast(tf.argsort(x, a, stable=True), tf.int64)
    nan = tf.math.is_nan(x)

    def with_nans():  # two stable passes: by value (NaN as inf), then NaN-ness
        p1 = tf.argsort(tf.where(nan, tf.cast(np.inf, x.dtype), x), a, stable=True)
        key = _moved(_along_last, tf.cast(nan, tf.int32), p1, a)
        p2 = tf.argsort(key, a, stable=True)
        return _moved(_along_last, p1, p2, a)

    out = tf.cond(tf.reduce_any(nan), with_nans, lambda: tf.argsort(x, a, stable=True))
    return tf.cast(out, tf.int64)


KERNELS = {
    "reshape": reshape,
    "transpose": transpose,
    "expand_dims": expand_dims,
    "squeeze": squeeze,
    "concatenate": concatenate,
    "stack": stack,
    "split": split,
    "broadcast_to": broadcast_to,
    "tile": tile,
    "pad": pad,
    "flip": flip,
    "take": take,
    "take_along_axis": take_along_axis,
    "slice": slice_,
    "gather": gather,
    "scatter_add": scatter_add,
    "one_hot": one_hot,
    "top_k": top_k,
    "sort": sort,
    "argsort": argsort,
}
