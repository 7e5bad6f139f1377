"""PyTorch shape and data-movement kernels, following NumPy's semantics.

Index arguments may have any integer dtype and be negative: they are cast to int64 and
wrapped before torch sees them. Reflect/symmetric padding uses ``index_select`` with NumPy's
index pattern, so it works on every dtype, rank and pad width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unidl.spec.rules import normalize_axes, normalize_axis
from unidl.spec.shape import (
    expand_dims_axes,
    mirror_index,
    pad_mode,
    pad_pairs,
    slice_sizes,
    split_bounds,
)

_HALF = (torch.float16, torch.bfloat16)
_DT = {
    "bool": torch.bool, "uint8": torch.uint8, "int8": torch.int8, "int16": torch.int16,
    "int32": torch.int32, "int64": torch.int64, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
}


def _ints(v):
    return (int(v),) if isinstance(v, int) else tuple(int(s) for s in v)


def _index(indices, n):
    """``indices`` as int64 with negative entries wrapped (out-of-range ones stay invalid)."""
    idx = indices.to(torch.int64)
    return torch.where(idx < 0, idx + n, idx)


def reshape(x, shape):
    return x.reshape(_ints(shape))


def transpose(x, axes=None):
    nd = x.dim()
    if axes is None:
        return x.permute(tuple(range(nd - 1, -1, -1)))
    return x.permute(tuple(normalize_axis(a, nd) for a in _ints(axes)) if nd else ())


def expand_dims(x, axis):
    for a in expand_dims_axes(axis, x.dim()):
        x = x.unsqueeze(a)
    return x


def squeeze(x, axis=None):
    if axis is None:
        return x.squeeze()
    if not x.dim():
        return x
    dims = normalize_axes(axis, x.dim())
    for a in dims:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return x.squeeze(dims) if dims else x


def concatenate(xs, axis=0):
    return torch.cat(list(xs), dim=axis)


def stack(xs, axis=0):
    return torch.stack(list(xs), dim=axis)


def split(x, indices_or_sections, axis=0):
    a = normalize_axis(axis, x.dim())
    return [x.narrow(a, s, e - s) for s, e in split_bounds(x.shape[a], indices_or_sections)]


def broadcast_to(x, shape):
    return x.broadcast_to(_ints(shape))


def tile(x, repeats):
    return x.tile(_ints(repeats))


def pad(x, pad_width, mode="constant", constant_values=0):
    pairs = pad_pairs(pad_width, x.dim())
    m = pad_mode(mode)
    if not any(b or a for b, a in pairs):
        return x.clone()
    if m == "constant":
        flat = [v for b, a in reversed(pairs) for v in (b, a)]
        return F.pad(x, flat, mode="constant", value=constant_values)
    for axis, ((b, a), n) in enumerate(zip(pairs, x.shape)):
        if b or a:
            if n == 0:
                raise ValueError(f"can't extend empty axis {axis} using mode {m!r}")
            idx = torch.as_tensor(mirror_index(n, b, a, m), device=x.device)
            x = x.index_select(axis, idx)
    return x


def flip(x, axis=None):
    if not x.dim():
        return x.clone()
    dims = normalize_axes(axis, x.dim())
    return torch.flip(x, dims) if dims else x.clone()


def take(x, indices, axis=None):
    if axis is None:
        flat = x.reshape(-1)
        return flat.index_select(0, _index(indices, flat.shape[0]).reshape(-1)) \
            .reshape(indices.shape)
    a = normalize_axis(axis, x.dim())
    idx = _index(indices, x.shape[a])
    out = x.index_select(a, idx.reshape(-1))
    return out.reshape(x.shape[:a] + idx.shape + x.shape[a + 1:])


def take_along_axis(x, indices, axis):
    if axis is None:
        flat = x.reshape(-1)
        return torch.take_along_dim(flat, _index(indices, flat.shape[0]), 0)
    a = normalize_axis(axis, x.dim())
    return torch.take_along_dim(x, _index(indices, x.shape[a]), a)


def slice_(x, start_indices, shape):
    start, size = slice_sizes(tuple(x.shape), start_indices, shape)
    return x[tuple(slice(s, s + n) for s, n in zip(start, size))]


def gather(params, indices):
    idx = _index(indices, params.shape[0])
    return params.index_select(0, idx.reshape(-1)).reshape(idx.shape + params.shape[1:])


def scatter_add(x, indices, updates):
    idx = _index(indices, x.shape[0])
    if x.dtype in _HALF:
        return x.float().index_add(0, idx, updates.float()).to(x.dtype)
    return x.index_add(0, idx, updates)


def one_hot(indices, num_classes, axis=-1, dtype="float32"):
    classes = torch.arange(num_classes, device=indices.device)
    out = (indices.unsqueeze(-1).to(torch.int64) == classes).to(_DT[dtype])
    return out.movedim(-1, normalize_axis(axis, indices.dim() + 1))


def top_k(x, k, sorted=True):
    if not 0 <= k <= x.shape[-1]:
        raise ValueError(f"k={k} is out of range for a last axis of {x.shape[-1]}")
    xs = x.to(torch.uint8) if x.dtype == torch.bool else x
    # a stable descending sort: ties keep index order (torch.topk does not promise that)
    values, order = torch.sort(xs, dim=-1, descending=True, stable=True)
    return [x.gather(-1, order[..., :k]) if x.dtype == torch.bool else values[..., :k],
            order[..., :k]]


def sort(x, axis=-1):
    if axis is None:
        x, axis = x.reshape(-1), 0
    return torch.sort(x, dim=axis, stable=True).values


def argsort(x, axis=-1):
    if axis is None:
        x, axis = x.reshape(-1), 0
    return torch.argsort(x, dim=axis, stable=True)


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
