"""NumPy shape and data-movement kernels (NumPy semantics are the definition)."""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt
from unidl.spec.rules import normalize_axis
from unidl.spec.shape import pad_mode, pad_pairs, slice_sizes, split_bounds

_F16 = np.dtype(np.float16)


def _tuple(v):
    return v if v is None or isinstance(v, (int, np.integer)) else tuple(v)


def reshape(x, shape):
    return np.reshape(x, _tuple(shape))


def transpose(x, axes=None):
    return np.transpose(x, _tuple(axes))


def expand_dims(x, axis):
    return np.expand_dims(x, _tuple(axis))


def squeeze(x, axis=None):
    return np.squeeze(x, _tuple(axis))


def concatenate(xs, axis=0):
    return np.concatenate(list(xs), axis=axis)


def stack(xs, axis=0):
    return np.stack(list(xs), axis=axis)


def split(x, indices_or_sections, axis=0):
    a = normalize_axis(axis, x.ndim)
    lead = (slice(None),) * a
    return [x[lead + (slice(s, e),)] for s, e in split_bounds(x.shape[a], indices_or_sections)]


def broadcast_to(x, shape):
    return np.broadcast_to(x, _tuple(shape))


def tile(x, repeats):
    return np.tile(x, _tuple(repeats))


def pad(x, pad_width, mode="constant", constant_values=0):
    pairs = pad_pairs(pad_width, x.ndim)
    m = pad_mode(mode)
    if not any(b or a for b, a in pairs):
        return x.copy()
    if m == "constant":
        return np.pad(x, pairs, mode=m, constant_values=constant_values)
    return np.pad(x, pairs, mode=m)


def flip(x, axis=None):
    return np.flip(x, _tuple(axis))


def take(x, indices, axis=None):
    return np.take(x, indices, axis=axis)


def take_along_axis(x, indices, axis):
    return np.take_along_axis(x, indices, axis)


def slice_(x, start_indices, shape):
    start, size = slice_sizes(x.shape, start_indices, shape)
    return x[tuple(slice(s, s + n) for s, n in zip(start, size))]


def gather(params, indices):
    return np.take(params, indices, axis=0)


def scatter_add(x, indices, updates):
    if x.dtype == _F16:
        out = x.astype(np.float32)
        np.add.at(out, indices, updates.astype(np.float32))
        return out.astype(_F16)
    out = x.copy()
    np.add.at(out, indices, updates)
    return out


def one_hot(indices, num_classes, axis=-1, dtype="float32"):
    out = (indices[..., None] == np.arange(num_classes)).astype(_dt.numpy_dtype(dtype))
    ax = normalize_axis(axis, indices.ndim + 1)
    return out if ax == indices.ndim else np.moveaxis(out, -1, ax)


def _desc_order(x):
    """Stable descending order along the last axis (NaN first, ties by lower index)."""
    n = x.shape[-1]
    return (n - 1) - np.argsort(x[..., ::-1], axis=-1, kind="stable")[..., ::-1]


def top_k(x, k, sorted=True):
    if not 0 <= k <= x.shape[-1]:
        raise ValueError(f"k={k} is out of range for a last axis of {x.shape[-1]}")
    order = _desc_order(x)[..., :k].astype(np.int64)
    return [np.take_along_axis(x, order, -1), order]


def sort(x, axis=-1):
    return np.sort(x, axis=axis)


def argsort(x, axis=-1):
    return np.argsort(x, axis=axis, kind="stable").astype(np.int64, copy=False)


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
