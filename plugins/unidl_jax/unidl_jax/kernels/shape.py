"""JAX shape and data-movement kernels, following NumPy's semantics (``unidl/spec/shape.py``).

Shape, axis and width arguments are Python values and are resolved here with the spec's
helpers; only the data goes through ``jax.numpy``/``jax.lax``, so every kernel traces under
``jax.jit`` and differentiates with ``jax.vjp``. Reflect/symmetric padding gathers along
each padded axis with NumPy's index pattern (``mirror_index``), so any width works. The
indexing and sorting kernels are in :mod:`unidl_jax.kernels.indexing`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from unidl.spec.rules import normalize_axes, normalize_axis
from unidl.spec.shape import (
    expand_dims_axes,
    mirror_index,
    pad_mode,
    pad_pairs,
    resolve_shape,
    slice_sizes,
    split_bounds,
    tile_reps,
)


def _ints(v) -> tuple[int, ...]:
    return (int(v),) if isinstance(v, int) else tuple(int(s) for s in v)


def reshape(x, shape):
    return jnp.reshape(x, resolve_shape(x.shape, shape))


def transpose(x, axes=None):
    nd = x.ndim
    if axes is None:
        return jnp.transpose(x)
    return jnp.transpose(x, tuple(normalize_axis(a, nd) for a in _ints(axes)) if nd else ())


def expand_dims(x, axis):
    return lax.expand_dims(x, expand_dims_axes(axis, x.ndim))


def squeeze(x, axis=None):
    if axis is None:
        return jnp.squeeze(x)
    if not x.ndim:
        return x
    dims = normalize_axes(axis, x.ndim)
    for a in dims:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return lax.squeeze(x, dims)


def concatenate(xs, axis=0):
    xs = list(xs)
    return jnp.concatenate(xs, axis=normalize_axis(axis, xs[0].ndim))


def stack(xs, axis=0):
    xs = list(xs)
    return jnp.stack(xs, axis=normalize_axis(axis, xs[0].ndim + 1))


def split(x, indices_or_sections, axis=0):
    a = normalize_axis(axis, x.ndim)
    return [lax.slice_in_dim(x, s, e, axis=a)
            for s, e in split_bounds(x.shape[a], indices_or_sections)]


def broadcast_to(x, shape):
    return jnp.broadcast_to(x, _ints(shape))


def tile(x, repeats):
    dims, reps = tile_reps(x.shape, repeats)
    return jnp.tile(jnp.reshape(x, dims), reps)


def pad(x, pad_width, mode="constant", constant_values=0):
    pairs = pad_pairs(pad_width, x.ndim)
    m = pad_mode(mode)
    if not any(b or a for b, a in pairs):
        return x
    if m == "constant":
        value = jnp.asarray(constant_values).astype(x.dtype)
        return lax.pad(x, value, [(b, a, 0) for b, a in pairs])
    for axis, ((b, a), n) in enumerate(zip(pairs, x.shape)):
        if b or a:
            if n == 0:
                raise ValueError(f"can't extend empty axis {axis} using mode {m!r}")
            x = jnp.take(x, jnp.asarray(mirror_index(n, b, a, m)), axis=axis,
                         mode="clip")
    return x


def flip(x, axis=None):
    if not x.ndim:
        return x
    dims = normalize_axes(axis, x.ndim)
    return lax.rev(x, dims) if dims else x


def slice_(x, start_indices, shape):
    start, size = slice_sizes(x.shape, start_indices, shape)
    return lax.slice(x, start, tuple(s + n for s, n in zip(start, size)))


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
    "slice": slice_,
}
