"""JAX indexing and sorting kernels: take, gather, scatter_add, one_hot, top_k, sort...

Index arguments may have any integer dtype and be negative: they are widened to int64 and
wrapped before JAX sees them (an int8 index plus an axis length could overflow in int8).
Sorting orders come from a stable ``lax.sort`` on keys that give NumPy's order: NaN after
every number (whatever its sign bit) and -0.0 equal to 0.0 (``lax.sort`` alone orders floats
by their bits). Values are then gathered with that order, so gradients flow through a gather.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from unidl import dtypes as _dt
from unidl.spec.rules import normalize_axis

_HALF = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def _index(indices, n: int):
    """``indices`` as int64 with negative entries wrapped (out-of-range ones stay invalid)."""
    idx = indices.astype(jnp.int64)
    return jnp.where(idx < 0, idx + n, idx)


def take(x, indices, axis=None):
    if axis is None:
        x, a = jnp.reshape(x, (-1,)), 0
    else:
        a = normalize_axis(axis, x.ndim)
    return jnp.take(x, _index(indices, x.shape[a]), axis=a)


def take_along_axis(x, indices, axis):
    if axis is None:
        x, a = jnp.reshape(x, (-1,)), 0
    else:
        a = normalize_axis(axis, x.ndim)
    return jnp.take_along_axis(x, _index(indices, x.shape[a]), axis=a)


def gather(params, indices):
    return jnp.take(params, _index(indices, params.shape[0]), axis=0)


def scatter_add(x, indices, updates):
    idx = _index(indices, x.shape[0])
    if x.dtype in _HALF:  # (accumulate in float32, as the NumPy and torch kernels do)
        return x.astype(jnp.float32).at[idx].add(updates.astype(jnp.float32)).astype(x.dtype)
    return x.at[idx].add(updates)


def one_hot(indices, num_classes, axis=-1, dtype="float32"):
    dtype = _dt.standardize(dtype) if dtype is not None else _dt.DEFAULT_FLOAT
    classes = jnp.arange(int(num_classes), dtype=jnp.int64)
    out = (indices.astype(jnp.int64)[..., None] == classes).astype(_dt.numpy_dtype(dtype))
    return jnp.moveaxis(out, -1, normalize_axis(axis, indices.ndim + 1))


# ---- sorting --------------------------------------------------------------------------------
def _keys(x):
    """Sort keys whose lexicographic ascending order is NumPy's order of ``x``."""
    x = lax.stop_gradient(x)
    if x.dtype == jnp.bool_:
        return [x.astype(jnp.uint8)]
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return [x]
    nan = jnp.isnan(x)
    return [nan.astype(jnp.uint8), jnp.where(nan | (x == 0), jnp.zeros((), x.dtype), x)]


def _ascending(x, axis: int):
    """Stable ascending order (int64 positions) of ``x`` along ``axis``, NaN last."""
    keys = _keys(x)
    iota = lax.broadcasted_iota(jnp.int64, x.shape, axis)
    return lax.sort((*keys, iota), dimension=axis, is_stable=True, num_keys=len(keys))[-1]


def _descending_last(x):
    """Stable descending order along the last axis: NaN first, ties by lower index (the
    ascending order of the reversed lane, reversed)."""
    a = x.ndim - 1
    n = x.shape[a]
    return (n - 1) - lax.rev(_ascending(lax.rev(x, (a,)), a), (a,))


def top_k(x, k, sorted=True):
    if not 0 <= k <= x.shape[-1]:
        raise ValueError(f"k={k} is out of range for a last axis of {x.shape[-1]}")
    order = lax.slice_in_dim(_descending_last(x), 0, k, axis=x.ndim - 1)
    return [jnp.take_along_axis(x, order, axis=-1, mode="promise_in_bounds"), order]


def _flat_axis(x, axis):
    if axis is None:
        return jnp.reshape(x, (-1,)), 0
    return x, normalize_axis(axis, x.ndim)


def sort(x, axis=-1):
    x, a = _flat_axis(x, axis)
    return jnp.take_along_axis(x, _ascending(x, a), axis=a, mode="promise_in_bounds")


def argsort(x, axis=-1):
    x, a = _flat_axis(x, axis)
    return _ascending(x, a)


KERNELS = {
    "take": take,
    "take_along_axis": take_along_axis,
    "gather": gather,
    "scatter_add": scatter_add,
    "one_hot": one_hot,
    "top_k": top_k,
    "sort": sort,
    "argsort": argsort,
}
