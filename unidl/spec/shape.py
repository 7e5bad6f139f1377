"""Shape and data-movement ops: reshape, transpose, concatenate, split, pad, gather, sort...

Semantics follow NumPy (``numpy.split``, ``numpy.pad``, ``numpy.take``...) unless a doc
string says otherwise. Integer index arguments may be negative (counted from the end, as in
NumPy) and may have any integer dtype; they are never promoted with the data. Ops that only
move values are compared exactly (``tol="exact"``) on every dtype, bool and ints included.

Gradient rules take ``(g, out, *args)``. Multi-output ops (``split``, ``top_k``) receive a
list of cotangents, in which an unused output's cotangent may be ``None``.
"""

from __future__ import annotations

import math

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.export.rules import BATCH, OnnxOp
from unidl.spec import _textbook as T
from unidl.spec import samples as S
from unidl.spec.core import Sample, ShapeMismatch, defop
from unidl.spec.rules import broadcast_shapes, normalize_axes, normalize_axis

__all__ = ["resolve_shape", "split_bounds", "pad_pairs", "pad_mode", "mirror_index",
           "expand_dims_axes", "tile_reps", "slice_sizes"]

ALL = _dt.DTYPES
NUMERIC = _dt.INT_DTYPES + _dt.FLOAT_DTYPES
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)

# Export rules (next to each defop): ``_*_onnx(g, *args)`` converts the op with ``g``, an
# ``unidl.export.onnx.OnnxBuilder``; ``_*_batch(b, *args)`` rewrites a call whose arguments
# hold the batch size (see unidl/export/rules.py).


# ---- helpers shared by rules, references and kernels ---------------------------------------
def _ints(v) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        return (int(v),)
    return tuple(int(s) for s in v)


def _size(shape) -> int:
    return int(np.prod(tuple(shape), dtype=np.int64))


def resolve_shape(in_shape, shape) -> tuple[int, ...]:
    """``shape`` (an int or a sequence; one ``-1`` allowed) resolved for ``in_shape``."""
    shape = list(_ints(shape))
    total = _size(in_shape)
    if any(s < -1 for s in shape):
        raise ShapeMismatch(f"expected non-negative dimensions (or one -1), got {tuple(shape)}")
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1:
        raise ShapeMismatch(f"expected at most one -1 in the new shape, got {tuple(shape)}")
    known = _size([s for s in shape if s != -1])
    if unknown:
        if known == 0 or total % known:
            raise ShapeMismatch(
                f"expected a shape whose known dimensions divide the {total} elements of "
                f"shape {tuple(in_shape)}, got {tuple(shape)}")
        shape[unknown[0]] = total // known
    elif known != total:
        raise ShapeMismatch(
            f"expected a shape with {total} elements (the input has shape {tuple(in_shape)}), "
            f"got {tuple(shape)} with {known} elements")
    return tuple(shape)


def split_bounds(n: int, indices_or_sections) -> list[tuple[int, int]]:
    """``(start, stop)`` of each piece of ``numpy.split`` on an axis of length ``n``."""
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ShapeMismatch(f"expected a positive number of sections, got {k}")
        if n % k:
            raise ShapeMismatch(f"expected a number of sections that divides the axis length "
                                f"{n}, got {k}")
        step = n // k
        return [(i * step, (i + 1) * step) for i in range(k)]
    points = [0] + list(_ints(indices_or_sections)) + [n]
    out = []
    for a, b in zip(points[:-1], points[1:]):
        s, e, _ = slice(a, b).indices(n)
        out.append((s, max(s, e)))
    return out


def pad_mode(mode: str) -> str:
    m = str(mode).lower()
    if m not in ("constant", "reflect", "symmetric"):
        raise ShapeMismatch(f"expected mode 'constant', 'reflect' or 'symmetric', got {mode!r}")
    return m


def pad_pairs(pad_width, ndim: int) -> tuple[tuple[int, int], ...]:
    """NumPy's ``pad_width`` forms (int, ``(b, a)``, ``((b, a),)``, per-axis pairs) as pairs."""
    arr = np.asarray(pad_width)
    if arr.dtype.kind not in "iu" and arr.size:
        raise ShapeMismatch(f"expected integer pad widths, got {pad_width!r}")
    arr = arr.astype(np.int64)
    if ndim == 0:
        if (arr < 0).any():
            raise ShapeMismatch(f"expected non-negative pad widths, got {pad_width!r}")
        return ()
    if arr.size == 1:
        pairs = np.full((ndim, 2), int(arr.reshape(())) if arr.ndim == 0 else int(arr.ravel()[0]))
    elif arr.size == 2 and arr.shape != (2, 1):
        pairs = np.broadcast_to(arr.ravel(), (ndim, 2))
    else:
        try:
            pairs = np.broadcast_to(arr, (ndim, 2))
        except ValueError:
            raise ShapeMismatch(f"expected pad widths for {ndim} axes (pairs (before, after)), "
                                f"got {pad_width!r}") from None
    if (pairs < 0).any():
        raise ShapeMismatch(f"expected non-negative pad widths, got {pad_width!r}")
    return tuple((int(b), int(a)) for b, a in pairs)


def mirror_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each output position of a reflect/symmetric pad (NumPy's rules)."""
    return np.pad(np.arange(n, dtype=np.int64), (before, after), mode=mode)


def expand_dims_axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` of ``expand_dims`` normalized against the output rank, sorted."""
    axes = _ints(axis)
    out_nd = ndim + len(axes)
    norm = sorted(normalize_axis(a, out_nd) for a in axes)
    if len(set(norm)) != len(norm):
        raise ShapeMismatch(f"expected distinct axes, got {axis!r}")
    return tuple(norm)


def tile_reps(shape, repeats) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(padded input shape, padded repeats)`` of ``numpy.tile``."""
    reps = _ints(repeats)
    if any(r < 0 for r in reps):
        raise ShapeMismatch(f"expected non-negative repeats, got {reps}")
    d = max(len(shape), len(reps))
    return (1,) * (d - len(shape)) + tuple(shape), (1,) * (d - len(reps)) + reps


# ---- float64 references: index maps evaluated element by element ---------------------------
# Each reference states where every output element comes from (a Python function of its
# multi-index, see unidl/spec/_textbook.py) and copies the elements one by one. Shape
# arguments are resolved here from the documented rules, not with the helpers above that
# the kernels share, so a kernel's shape handling is checked too.
def _relaid(x, shape):
    """The elements of ``x`` in row-major order laid out in ``shape`` (a reshape)."""
    x = np.asarray(x)
    return T.gather(x, shape, lambda idx: T.unravel(T.ravel(idx, shape), x.shape))


def _reshape_reference(x, shape):
    """``x`` laid out in ``shape`` (one ``-1`` is the size left over)."""
    x = np.asarray(x)
    new = list(T.ints(shape))
    if -1 in new:
        new[new.index(-1)] = x.size // math.prod(d for d in new if d != -1)
    return _relaid(x, new)


def _transpose_reference(x, axes=None):
    """``out[idx] = x[idx permuted back]``: output axis ``k`` is input axis ``axes[k]``."""
    x = np.asarray(x)
    nd = x.ndim
    perm = list(range(nd))[::-1] if axes is None else [a % nd for a in T.ints(axes)]

    def source(idx):
        src = [0] * nd
        for k, p in enumerate(perm):
            src[p] = idx[k]
        return tuple(src)

    return T.gather(x, [x.shape[p] for p in perm], source)


def _expand_dims_reference(x, axis):
    """``x`` laid out with size-1 axes at the output positions ``axis``."""
    x = np.asarray(x)
    nd = x.ndim + len(T.ints(axis))
    new_axes = {a % nd for a in T.ints(axis)}
    dims = iter(x.shape)
    return _relaid(x, [1 if k in new_axes else next(dims) for k in range(nd)])


def _squeeze_reference(x, axis=None):
    """``x`` laid out without its size-1 axes (those in ``axis``)."""
    x = np.asarray(x)
    drop = {k for k, d in enumerate(x.shape) if d == 1} if axis is None else \
        {a % x.ndim for a in T.ints(axis)}
    return _relaid(x, [d for k, d in enumerate(x.shape) if k not in drop])


def _concatenate_reference(xs, axis=0):
    """Each output element from the piece whose span along ``axis`` holds its index."""
    xs = [np.asarray(v) for v in xs]
    a = axis % xs[0].ndim
    starts = [sum(v.shape[a] for v in xs[:k]) for k in range(len(xs))]
    shape = list(xs[0].shape)
    shape[a] = sum(v.shape[a] for v in xs)

    def value(idx):
        k = next(j for j, s in enumerate(starts) if s <= idx[a] < s + xs[j].shape[a])
        return xs[k][idx[:a] + (idx[a] - starts[k],) + idx[a + 1:]]

    return T.build(shape, value, T.result_dtype(*xs))


def _stack_reference(xs, axis=0):
    """``out[..., k, ...] = xs[k]`` along the new ``axis``."""
    xs = [np.asarray(v) for v in xs]
    a = axis % (xs[0].ndim + 1)
    shape = xs[0].shape[:a] + (len(xs),) + xs[0].shape[a:]
    return T.build(shape, lambda idx: xs[idx[a]][idx[:a] + idx[a + 1:]], T.result_dtype(*xs))


def _along_axis(x, a, chosen):
    """``x`` restricted to the positions ``chosen`` (a list) along axis ``a``."""
    shape = x.shape[:a] + (len(chosen),) + x.shape[a + 1:]
    return T.gather(x, shape, lambda idx: idx[:a] + (chosen[idx[a]],) + idx[a + 1:])


def _split_reference(x, indices_or_sections, axis=0):
    """Pieces by Python's slicing of ``range(n)``: the cut points, then ``[ik:]``."""
    x = np.asarray(x)
    a = axis % x.ndim
    span = list(range(x.shape[a]))
    if isinstance(indices_or_sections, (int, np.integer)):
        step = len(span) // int(indices_or_sections)
        cuts = [span[i:i + step] for i in range(0, len(span), step)] if step else \
            [[] for _ in range(int(indices_or_sections))]
    else:
        points = [None, *T.ints(indices_or_sections), None]
        cuts = [span[b:e] for b, e in zip(points[:-1], points[1:])]
    return [_along_axis(x, a, c) for c in cuts]


def _broadcast_to_reference(x, shape):
    """Right-aligned: a size-1 axis of ``x`` is read at 0, missing leading axes ignored."""
    x = np.asarray(x)
    shape = T.ints(shape)
    lead = len(shape) - x.ndim
    return T.gather(x, shape, lambda idx: tuple(0 if d == 1 else i for i, d in
                                                zip(idx[lead:], x.shape)))


def _tile_reference(x, repeats):
    """``out[idx] = x[idx % x.shape]`` (both padded with leading ones to one rank)."""
    x = np.asarray(x)
    reps = T.ints(repeats)
    nd = max(x.ndim, len(reps))
    dims = (1,) * (nd - x.ndim) + x.shape
    reps = (1,) * (nd - len(reps)) + reps
    shape = [d * r for d, r in zip(dims, reps)]
    return T.gather(x, shape, lambda idx: tuple(i % d for i, d in
                                                zip(idx[nd - x.ndim:], x.shape)))


def _mirror(i: int, n: int, symmetric: bool) -> int:
    """Source of position ``i`` (counted from the axis start, maybe outside ``[0, n)``) when an
    axis of length ``n`` is extended by reflection: periodic with period ``2n`` (edge
    repeated, ``symmetric``) or ``2(n - 1)`` (edge not repeated, ``reflect``)."""
    if n == 1:
        return 0
    period = 2 * n if symmetric else 2 * (n - 1)
    i %= period
    if i < n:
        return i
    return period - 1 - i if symmetric else period - i


def _pad_reference(x, pad_width, mode="constant", constant_values=0):
    """Inside: ``x``; outside: the constant, or ``x`` at the mirrored position."""
    x = np.asarray(x)
    widths = T.broadcast_values(np.asarray(pad_width), (x.ndim, 2))
    before = widths[0::2]
    shape = [d + b + e for d, b, e in zip(x.shape, before, widths[1::2])]
    mode = str(mode).lower()

    def value(idx):
        rel = [i - b for i, b in zip(idx, before)]
        if mode == "constant":
            inside = all(0 <= r < d for r, d in zip(rel, x.shape))
            return x[tuple(rel)] if inside else constant_values
        return x[tuple(_mirror(r, d, mode == "symmetric") for r, d in zip(rel, x.shape))]

    return T.build(shape, value, x.dtype)


def _flip_reference(x, axis=None):
    """``out[i] = x[n - 1 - i]`` along each flipped axis."""
    x = np.asarray(x)
    flipped = T.axes_of(axis, x.ndim)
    return T.gather(x, x.shape, lambda idx: tuple(d - 1 - i if k in flipped else i for k, (i, d)
                                                  in enumerate(zip(idx, x.shape))))


def _take_reference(x, indices, axis=None):
    """``x`` at ``indices`` (negative ones from the end) along ``axis`` (flat when None)."""
    x, indices = np.asarray(x), np.asarray(indices)
    if axis is None:
        flat = T.flat_values(x)
        return T.build(indices.shape, lambda idx: flat[int(indices[idx]) % x.size], x.dtype)
    a = axis % x.ndim
    m = indices.ndim
    shape = x.shape[:a] + indices.shape + x.shape[a + 1:]
    return T.gather(x, shape, lambda idx: idx[:a] + (int(indices[idx[a:a + m]]) % x.shape[a],)
                    + idx[a + m:])


def _take_along_axis_reference(x, indices, axis):
    """``out[idx] = x[idx with indices[idx] on axis]``; the other axes broadcast."""
    x, indices = np.asarray(x), np.asarray(indices)
    if axis is None:
        return _take_reference(x, indices, None)
    a = axis % x.ndim
    shape = [m if k == a else max(d, m) for k, (d, m) in enumerate(zip(x.shape, indices.shape))]

    def value(idx):
        at = tuple(0 if m == 1 else i for i, m in zip(idx, indices.shape))
        src = [0 if d == 1 else i for i, d in zip(idx, x.shape)]
        src[a] = int(indices[at]) % x.shape[a]
        return x[tuple(src)]

    return T.build(shape, value, x.dtype)


def _slice_reference(x, start_indices, shape):
    """``out[idx] = x[idx + start]`` (a size of -1 runs to the end)."""
    x = np.asarray(x)
    start = T.ints(start_indices)
    size = [d - s if n == -1 else n for d, s, n in zip(x.shape, start, T.ints(shape))]
    return T.gather(x, size, lambda idx: tuple(i + s for i, s in zip(idx, start)))


def _scatter_add_reference(x, indices, updates):
    """Row ``indices[i]`` of ``x`` plus ``updates[i]``, one addition at a time."""
    x, updates = np.asarray(x), np.asarray(updates)
    dtype = T.result_dtype(x, updates)
    out, upd = T.flat_values(x), T.flat_values(updates)
    row = math.prod(x.shape[1:])
    for i, r in enumerate(T.flat_values(indices)):
        base = (int(r) % x.shape[0]) * row
        for j in range(row):
            out[base + j] = out[base + j] + upd[i * row + j]
    return T.finish(out, x.shape, dtype)


def _one_hot_reference(indices, num_classes, axis=-1, dtype=None):
    """1.0 where the position on the new ``axis`` equals the index, else 0.0."""
    indices = np.asarray(indices)
    a = axis % (indices.ndim + 1)
    shape = indices.shape[:a] + (int(num_classes),) + indices.shape[a:]
    return T.build(shape, lambda idx: float(indices[idx[:a] + idx[a + 1:]] == idx[a]),
                   np.float64)


def _descending(lane):
    """Positions of ``lane`` from the largest value down: NaN first, ties by position."""
    return sorted(range(len(lane)), key=lambda i: (lane[i] == lane[i],
                                                   -lane[i] if lane[i] == lane[i] else 0, i))


def _top_k_reference(x, k, sorted=True):
    """The first ``k`` positions of :func:`_descending` of each last-axis lane."""
    x = np.asarray(x)
    kept_shape, lanes = T.lanes(x, (x.ndim - 1,))
    orders = [_descending(lane)[:k] for lane in lanes]
    shape = kept_shape + (k,)
    values = [lane[i] for lane, order in zip(lanes, orders) for i in order]
    return [T.finish(values, shape, T.result_dtype(x)),
            T.finish([i for order in orders for i in order], shape, np.int64)]


def _ascending(lane):
    """Positions of ``lane`` from the smallest value up, NaN last; stable."""
    return sorted(range(len(lane)), key=lambda i: (lane[i] != lane[i], lane[i]))


def _sort_reference(x, axis=-1):
    """Each lane in the order of :func:`_ascending`."""
    x = np.asarray(x)
    if axis is None:
        values = T.flat_values(x)
        return T.finish([values[i] for i in _ascending(values)], (len(values),),
                        T.result_dtype(x))
    return T.along(lambda lane: [lane[i] for i in _ascending(lane)], x, axis,
                   T.result_dtype(x))


def _argsort_reference(x, axis=-1):
    """The order of :func:`_ascending` of each lane."""
    x = np.asarray(x)
    if axis is None:
        return T.finish(_ascending(T.flat_values(x)), (x.size,), np.int64)
    return T.along(_ascending, x, axis, np.int64)


def _zeros(shape, dtype):
    return ops.zeros(tuple(shape), dtype)


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (the adjoint of broadcasting ``shape`` to ``g``'s shape)."""
    shape = tuple(shape)
    gs = tuple(ops.shape(g))
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and gs[lead + i] != 1)
    if axes:
        g = ops.sum(g, axes, True)
    return ops.reshape(g, shape)


def _take_adjoint(g, indices, axis, x_shape, dtype):
    """Adjoint of ``take(x, indices, axis)``: ``g`` scattered (and summed) into zeros."""
    if axis is None:
        flat = ops.scatter_add(_zeros((_size(x_shape),), dtype), ops.reshape(indices, (-1,)),
                               ops.reshape(g, (-1,)))
        return ops.reshape(flat, x_shape)
    a = normalize_axis(axis, len(x_shape))
    n = x_shape[a]
    p, q = _size(x_shape[:a]), _size(x_shape[a + 1:])
    m = _size(ops.shape(indices))
    g2 = ops.reshape(ops.transpose(ops.reshape(g, (p, m, q)), (1, 0, 2)), (m, p * q))
    r = ops.scatter_add(_zeros((n, p * q), dtype), ops.reshape(indices, (-1,)), g2)
    r = ops.transpose(ops.reshape(r, (n, p, q)), (1, 0, 2))
    return ops.reshape(r, x_shape)


def _along_adjoint(g, indices, axis, full_shape, dtype):
    """Adjoint of ``take_along_axis`` on a tensor of ``full_shape`` (indices broadcast to
    ``g``'s shape); negative indices allowed."""
    nd = len(full_shape)
    a = normalize_axis(axis, nd)
    n = full_shape[a]
    perm = tuple(i for i in range(nd) if i != a) + (a,)
    gs = tuple(ops.shape(g))
    idx = ops.transpose(ops.broadcast_to(indices, gs), perm)
    rows = _size([gs[i] for i in perm[:-1]])
    m = gs[a]
    # normalize negative indices: table[i + n] is i mod n for i in [-n, n)
    table = ops.convert_to_tensor(np.concatenate([np.arange(n), np.arange(n)]).astype(np.int64))
    idx = ops.take(table, ops.add(ops.reshape(idx, (rows, m)),
                                  ops.convert_to_tensor(np.int64(n))))
    base = ops.convert_to_tensor((np.arange(rows, dtype=np.int64) * n).reshape(rows, 1))
    flat = ops.reshape(ops.add(idx, base), (-1,))
    gt = ops.reshape(ops.transpose(g, perm), (-1,))
    r = ops.scatter_add(_zeros((rows * n,), dtype), flat, gt)
    r = ops.reshape(r, tuple(full_shape[i] for i in perm))
    return ops.transpose(r, tuple(int(i) for i in np.argsort(perm)))


def _bool_or(dtype, x):
    return x > 0.5 if dtype == "bool" else x


# ---- reshape, transpose, expand_dims, squeeze ----------------------------------------------
def _reshape_samples(dtype, rng):
    x = S.rand(rng, (2, 3, 4), dtype)
    out = [Sample((x, s), name=f"to{s}") for s in ((6, 4), (-1,), (4, -1, 2), 24, (2, 3, 4))]
    out.append(Sample((S.rand(rng, (), dtype), (1, 1)), name="scalar"))
    out.append(Sample((S.rand(rng, (1, 1), dtype), ()), name="to_scalar"))
    out.append(Sample((S.rand(rng, (0, 3), dtype), (3, -1, 1)), name="empty"))
    return out


def _reshape_onnx(g, x, shape):
    shape = _ints(shape)
    if 0 in shape and -1 in shape:
        g.unsupported("a target shape with both a 0 and a -1")
    return g.op("Reshape", [x, g.ints(shape)], allowzero=int(0 in shape))


def _reshape_batch(b, x, shape):
    """The batch entry of the target shape becomes its -1 (when it has none)."""
    shape = (shape,) if shape is BATCH else tuple(shape)
    if sum(d is BATCH for d in shape) != 1 or -1 in shape:
        return None
    return b.emit("reshape", x, tuple(-1 if d is BATCH else d for d in shape))


defop("reshape", "x, shape",
      shape_rule=lambda x, shape: resolve_shape(x, shape),
      reference=_reshape_reference,
      grad=lambda g, out, x, shape: (ops.reshape(g, ops.shape(x)),),
      samples=_reshape_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Reshape", _reshape_onnx), "batch": _reshape_batch},
      doc="``x`` with a new ``shape`` of the same size; one dimension may be ``-1``.")


def _perm(axes, ndim):
    if axes is None:
        return tuple(range(ndim - 1, -1, -1))
    axes = _ints(axes)
    norm = tuple(normalize_axis(a, ndim) for a in axes) if ndim else axes
    if sorted(norm) != list(range(ndim)):
        raise ShapeMismatch(f"expected a permutation of the {ndim} axes, got {tuple(axes)}")
    return norm


def _transpose_samples(dtype, rng):
    x = S.rand(rng, (2, 3, 4), dtype)
    out = [Sample((x, a), name=f"axes={a}") for a in (None, (1, 0, 2), (-1, 0, 1), (0, 1, 2))]
    out.append(Sample((S.rand(rng, (3, 5), dtype), None), name="2d"))
    out.append(Sample((S.rand(rng, (), dtype), None), name="scalar"))
    out.append(Sample((S.rand(rng, (0, 3, 2), dtype), (2, 0, 1)), name="empty"))
    return out


def _transpose_onnx(g, x, axes=None):
    if not g.rank(x):
        return g.op("Identity", [x])
    return g.op("Transpose", [x], perm=list(_perm(axes, g.rank(x))))


defop("transpose", "x, axes=None",
      shape_rule=lambda x, axes=None: tuple(x[i] for i in _perm(axes, len(x))),
      reference=_transpose_reference,
      grad=lambda g, out, x, axes=None: (
          ops.transpose(g, tuple(int(i) for i in np.argsort(_perm(axes, len(ops.shape(x)))))),),
      samples=_transpose_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Transpose", _transpose_onnx)},
      doc="Permute the axes of ``x`` (reversed when ``axes`` is None); negatives allowed.")


def _expand_rule(x, axis):
    axes = expand_dims_axes(axis, len(x))
    it = iter(x)
    return tuple(1 if i in axes else next(it) for i in range(len(x) + len(axes)))


def _expand_samples(dtype, rng):
    x = S.rand(rng, (2, 3), dtype)
    out = [Sample((x, a), name=f"axis={a}") for a in (0, -1, 1, (0, 3), (-1, 0))]
    out.append(Sample((S.rand(rng, (), dtype), 0), name="scalar"))
    out.append(Sample((S.rand(rng, (0, 2), dtype), -2), name="empty"))
    return out


def _expand_dims_onnx(g, x, axis):
    return g.unsqueeze(x, expand_dims_axes(axis, g.rank(x)))


defop("expand_dims", "x, axis", shape_rule=_expand_rule,
      reference=_expand_dims_reference,
      grad=lambda g, out, x, axis: (ops.reshape(g, ops.shape(x)),),
      samples=_expand_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Unsqueeze", _expand_dims_onnx)},
      doc="Insert size-1 axes at ``axis`` (an int or a tuple; positions in the output).")


def _squeeze_axes(x, axis):
    if axis is None:
        return tuple(i for i, d in enumerate(x) if d == 1)
    axes = normalize_axes(axis, len(x))
    for a in axes:
        if len(x) and x[a] != 1:
            raise ShapeMismatch(f"expected axis {a} to have size 1, got shape {tuple(x)}")
    return axes if len(x) else ()


def _squeeze_samples(dtype, rng):
    x = S.rand(rng, (1, 3, 1, 2), dtype)
    out = [Sample((x, a), name=f"axis={a}") for a in (None, 0, -2, (0, 2))]
    out.append(Sample((S.rand(rng, (1,), dtype), None), name="to_scalar"))
    out.append(Sample((S.rand(rng, (1, 0, 1), dtype), None), name="empty"))
    return out


def _squeeze_onnx(g, x, axis=None):
    axes = _squeeze_axes(g.shape(x), axis)  # (from the static shape: never the batch axis)
    return g.squeeze(x, axes) if axes else g.op("Identity", [x])


defop("squeeze", "x, axis=None",
      shape_rule=lambda x, axis=None: tuple(d for i, d in enumerate(x)
                                            if i not in _squeeze_axes(x, axis)),
      reference=_squeeze_reference,
      grad=lambda g, out, x, axis=None: (ops.reshape(g, ops.shape(x)),),
      samples=_squeeze_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Squeeze", _squeeze_onnx)},
      doc="Remove size-1 axes (all of them when ``axis`` is None); errors on a larger axis.")


# ---- concatenate, stack, split -------------------------------------------------------------
def _concat_rule(xs, axis=0):
    xs = [tuple(s) for s in xs]
    if not xs:
        raise ShapeMismatch("expected at least one tensor, got an empty list")
    nd = len(xs[0])
    if nd == 0:
        raise ShapeMismatch("expected tensors of rank >= 1, got scalars")
    a = normalize_axis(axis, nd)
    for s in xs[1:]:
        if len(s) != nd or any(s[i] != xs[0][i] for i in range(nd) if i != a):
            raise ShapeMismatch(f"expected shapes equal except on axis {axis}, got "
                                + ", ".join(str(t) for t in xs))
    return xs[0][:a] + (sum(s[a] for s in xs),) + xs[0][a + 1:]


def _concat_grad(g, out, xs, axis=0):
    a = normalize_axis(axis, len(ops.shape(g)))
    sizes = [ops.shape(x)[a] for x in xs]
    return (list(ops.split(g, [int(v) for v in np.cumsum(sizes)[:-1]], a)),)


def _concat_samples(dtype, rng):
    def r(*s):
        return S.rand(rng, s, dtype)

    return [
        Sample(([r(2, 3), r(4, 3), r(1, 3)], 0), name="axis0"),
        Sample(([r(2, 3), r(2, 1), r(2, 0)], -1), name="axis-1"),
        Sample(([r(2, 3, 4), r(2, 2, 4)], 1), name="3d"),
        Sample(([r(5)], 0), name="single"),
        Sample(([r(0, 2), r(0, 2)], 0), name="empty"),
    ]


def _concat_onnx(g, xs, axis=0):
    return g.op("Concat", list(xs), axis=normalize_axis(axis, g.rank(xs[0])))


defop("concatenate", "xs, axis=0", tensors=(), tensor_lists="xs", shape_rule=_concat_rule,
      reference=_concatenate_reference, grad=_concat_grad,
      samples=_concat_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Concat", _concat_onnx)},
      doc="Join tensors along an existing ``axis`` (dtypes are promoted to one).")


def _stack_rule(xs, axis=0):
    xs = [tuple(s) for s in xs]
    if not xs:
        raise ShapeMismatch("expected at least one tensor, got an empty list")
    if any(s != xs[0] for s in xs):
        raise ShapeMismatch("expected tensors of one shape, got "
                            + ", ".join(str(t) for t in xs))
    a = normalize_axis(axis, len(xs[0]) + 1)
    return xs[0][:a] + (len(xs),) + xs[0][a:]


def _stack_grad(g, out, xs, axis=0):
    a = normalize_axis(axis, len(ops.shape(g)))
    return ([ops.reshape(p, ops.shape(x)) for p, x in zip(ops.split(g, len(xs), a), xs)],)


def _stack_samples(dtype, rng):
    def r(*s):
        return S.rand(rng, s, dtype)

    return [
        Sample(([r(2, 3), r(2, 3), r(2, 3)], 0), name="axis0"),
        Sample(([r(2, 3), r(2, 3)], -1), name="axis-1"),
        Sample(([r(2, 3), r(2, 3)], 1), name="axis1"),
        Sample(([r(), r()], 0), name="scalars"),
        Sample(([r(0, 3), r(0, 3)], 1), name="empty"),
    ]


def _stack_onnx(g, xs, axis=0):
    a = normalize_axis(axis, g.rank(xs[0]) + 1)
    return g.op("Concat", [g.unsqueeze(x, [a]) for x in xs], axis=a)


defop("stack", "xs, axis=0", tensors=(), tensor_lists="xs", shape_rule=_stack_rule,
      reference=_stack_reference, grad=_stack_grad,
      samples=_stack_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Concat", _stack_onnx)},
      doc="Join tensors of one shape along a new ``axis``.")


def _split_rule(x, indices_or_sections, axis=0):
    if not len(x):
        raise ShapeMismatch("expected a tensor of rank >= 1, got a scalar")
    a = normalize_axis(axis, len(x))
    return [x[:a] + (e - s,) + x[a + 1:] for s, e in split_bounds(x[a], indices_or_sections)]


def _split_grad(g, out, x, indices_or_sections, axis=0):
    shape = ops.shape(x)
    a = normalize_axis(axis, len(shape))
    bounds = split_bounds(shape[a], indices_or_sections)
    parts = [gi if gi is not None else _zeros(ops.shape(o), ops.dtype(o))
             for gi, o in zip(g, out)]
    contiguous = all(b[0] == p[1] for p, b in zip(bounds[:-1], bounds[1:])) \
        and bounds[0][0] == 0 and bounds[-1][1] == shape[a]
    if contiguous:
        return (ops.concatenate(parts, a),)
    total = None
    for (s, e), p in zip(bounds, parts):
        widths = [(0, 0)] * len(shape)
        widths[a] = (s, shape[a] - e)
        padded = ops.pad(p, widths)
        total = padded if total is None else ops.add(total, padded)
    return (total,)


def _split_samples(dtype, rng):
    x = S.rand(rng, (6, 4), dtype)
    return [
        Sample((x, 3, 0), name="sections"),
        Sample((x, 2, -1), name="sections_last"),
        Sample((x, [1, 4], 0), name="indices"),
        Sample((S.rand(rng, (3, 8), dtype), [2, 2, 5], -1), name="empty_piece"),
        Sample((x, [-2], 0), name="negative"),
        Sample((x, [1, 10], 0), name="beyond"),
        Sample((x, [3, 1], 0), name="overlap"),
        Sample((S.rand(rng, (0, 4), dtype), 2, 0), name="empty"),
    ]


def _split_onnx(g, x, indices_or_sections, axis=0):
    a = normalize_axis(axis, g.rank(x))
    n = g.shape(x)[a]
    if n is None:
        g.unsupported("a split of the batch axis")
    bounds = split_bounds(n, indices_or_sections)
    if all(e > s for s, e in bounds) and [s for s, _ in bounds[1:]] == [e for _, e in
                                                                       bounds[:-1]] \
            and bounds[0][0] == 0 and bounds[-1][1] == n:
        out = g.op("Split", [x, g.ints([e - s for s, e in bounds])], outputs=len(bounds),
                   axis=a)
        return out if len(bounds) > 1 else [out]
    return [g.op("Slice", [x, g.ints([s]), g.ints([e]), g.ints([a])]) for s, e in bounds]


defop("split", "x, indices_or_sections, axis=0", shape_rule=_split_rule,
      reference=_split_reference,
      grad=_split_grad, samples=_split_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Split", _split_onnx)},
      doc="""Split ``x`` along ``axis`` into a list of tensors, as ``numpy.split``: an int
      gives that many equal sections (it must divide the axis); a list of indices gives the
      pieces ``x[:i0], x[i0:i1], ..., x[ik:]`` (Python slicing rules).""")


# ---- broadcast_to, tile, pad, flip ---------------------------------------------------------
def _broadcast_to_rule(x, shape):
    shape = _ints(shape)
    if len(x) > len(shape) or any(d != s and d != 1 for d, s in zip(x[::-1], shape[::-1])):
        raise ShapeMismatch(f"expected a shape that {tuple(x)} broadcasts to, got {shape}")
    if any(s < 0 for s in shape):
        raise ShapeMismatch(f"expected non-negative dimensions, got {shape}")
    return shape


def _broadcast_to_samples(dtype, rng):
    return [
        Sample((S.rand(rng, (3, 1), dtype), (2, 3, 4)), name="3x1"),
        Sample((S.rand(rng, (), dtype), (2, 3)), name="scalar"),
        Sample((S.rand(rng, (4,), dtype), (3, 4)), name="vector"),
        Sample((S.rand(rng, (1, 0), dtype), (3, 0)), name="empty"),
        Sample((S.rand(rng, (2, 3), dtype), (2, 3)), name="same"),
    ]


def _broadcast_to_onnx(g, x, shape):
    return g.op("Expand", [x, g.ints(_ints(shape))])


def _broadcast_to_batch(b, x, shape):
    """``x`` combined with a batch-shaped neutral tensor (which carries the batch axis)."""
    dtype = b.dtype(x)
    neutral = b.filled(tuple(shape), False if dtype == "bool" else 0, dtype)
    if neutral is None:
        return None
    return b.emit("logical_or" if dtype == "bool" else "add", x, neutral)


defop("broadcast_to", "x, shape", shape_rule=_broadcast_to_rule,
      reference=_broadcast_to_reference,
      grad=lambda g, out, x, shape: (_unbroadcast(g, ops.shape(x)),),
      samples=_broadcast_to_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Expand", _broadcast_to_onnx), "batch": _broadcast_to_batch},
      doc="``x`` broadcast to ``shape`` with NumPy's rules.")


def _tile_rule(x, repeats):
    xs, reps = tile_reps(x, repeats)
    return tuple(d * r for d, r in zip(xs, reps))


def _tile_grad(g, out, x, repeats):
    shape = ops.shape(x)
    xs, reps = tile_reps(shape, repeats)
    inter = tuple(v for pair in zip(reps, xs) for v in pair)
    g = ops.sum(ops.reshape(g, inter), tuple(range(0, 2 * len(xs), 2)))
    return (ops.reshape(g, shape),)


def _tile_samples(dtype, rng):
    x = S.rand(rng, (2, 3), dtype)
    out = [Sample((x, r), name=f"reps={r}") for r in (2, (2, 1), (2, 1, 3), (1, 1), (2, 0))]
    out.append(Sample((S.rand(rng, (3,), dtype), (2, 2)), name="promote"))
    out.append(Sample((S.rand(rng, (), dtype), (3,)), name="scalar"))
    return out


def _tile_onnx(g, x, repeats):
    xs, reps = tile_reps(g.shape(x), repeats)
    extra = len(xs) - g.rank(x)
    if extra:
        x = g.unsqueeze(x, range(extra))
    return g.op("Tile", [x, g.ints(reps)])


defop("tile", "x, repeats", shape_rule=_tile_rule,
      reference=_tile_reference, grad=_tile_grad,
      samples=_tile_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Tile", _tile_onnx)},
      doc="Repeat ``x`` ``repeats`` times along each axis, as ``numpy.tile``.")


def _pad_rule(x, pad_width, mode="constant", constant_values=0):
    m = pad_mode(mode)
    pairs = pad_pairs(pad_width, len(x))
    if m != "constant":
        for i, (d, (b, a)) in enumerate(zip(x, pairs)):
            if d == 0 and (b or a):
                raise ShapeMismatch(f"expected a non-empty axis {i} for mode {m!r}, got shape "
                                    f"{tuple(x)}")
    return tuple(d + b + a for d, (b, a) in zip(x, pairs))


def _pad_grad(g, out, x, pad_width, mode="constant", constant_values=0):
    shape = ops.shape(x)
    pairs = pad_pairs(pad_width, len(shape))
    m = pad_mode(mode)
    if m == "constant":
        return (ops.slice(g, tuple(b for b, _ in pairs), shape),)
    for a, ((b, e), n) in enumerate(zip(pairs, shape)):
        if b or e:
            idx = ops.convert_to_tensor(mirror_index(n, b, e, m))
            gs = list(ops.shape(g))
            gs[a] = n
            g = _take_adjoint(g, idx, a, tuple(gs), ops.dtype(g))
    return (g,)


def _pad_samples(dtype, rng):
    x = S.rand(rng, (2, 3), dtype)
    cv = 2.5 if _dt.is_float(dtype) else (True if dtype == "bool" else 2)
    return [
        Sample((x, 1, "constant", 0), name="int"),
        Sample((x, ((1, 2), (0, 3)), "constant", cv), name="pairs_value"),
        Sample((x, (1, 2), "constant", 0), name="one_pair"),
        Sample((x, ((1, 0),), "constant", 0), name="one_pair_nested"),
        Sample((x, ((1, 1), (2, 1)), "reflect", 0), name="reflect"),
        Sample((x, ((2, 1), (3, 3)), "symmetric", 0), name="symmetric"),
        Sample((S.rand(rng, (3, 3), dtype), ((4, 5), (0, 1)), "reflect", 0), name="reflect_big"),
        Sample((S.rand(rng, (3, 2), dtype), ((4, 7), (2, 0)), "symmetric", 0),
               name="symmetric_big"),
        Sample((S.rand(rng, (1, 3), dtype), ((2, 1), (1, 1)), "REFLECT", 0), name="tf_reflect"),
        Sample((S.rand(rng, (2, 3, 4), dtype), ((0, 0), (1, 1), (2, 0)), "SYMMETRIC", 0),
               name="3d"),
        Sample((S.rand(rng, (0, 3), dtype), 1, "constant", 0), name="empty"),
    ]


def _pad_onnx(g, x, pad_width, mode="constant", constant_values=0):
    """ONNX ``Pad`` (constant); reflect and symmetric: a ``Gather`` per padded axis of the
    source indices NumPy's rules give (:func:`mirror_index`)."""
    m = pad_mode(mode)
    shape = g.shape(x)
    pairs = pad_pairs(pad_width, len(shape))
    if m == "constant":
        pads = g.ints([b for b, _ in pairs] + [a for _, a in pairs])
        return g.op("Pad", [x, pads, g.const(constant_values, g.dtype(x))], mode="constant")
    for axis, (d, (b, a)) in enumerate(zip(shape, pairs)):
        if b or a:
            if d is None:
                g.unsupported(f"a {m} padding of the batch axis")
            x = g.op("Gather", [x, g.ints(mirror_index(d, b, a, m))], axis=axis)
    return x if any(b or a for b, a in pairs) else g.op("Identity", [x])


defop("pad", "x, pad_width, mode='constant', constant_values=0", shape_rule=_pad_rule,
      reference=_pad_reference, grad=_pad_grad, samples=_pad_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Pad", _pad_onnx)},
      doc="""Pad ``x`` as ``numpy.pad``: ``pad_width`` is an int, a ``(before, after)`` pair or
      one pair per axis; ``mode`` is ``"constant"`` (with the scalar ``constant_values``),
      ``"reflect"`` or ``"symmetric"`` (TensorFlow's upper-case names are accepted too).
      Widths larger than the axis reflect repeatedly, as NumPy does.""")


def _flip_axes(x, axis):
    return normalize_axes(axis, len(x)) if len(x) else ()


def _flip_samples(dtype, rng):
    x = S.rand(rng, (2, 3, 4), dtype)
    out = [Sample((x, a), name=f"axis={a}") for a in (None, 0, -1, (0, 2))]
    out.append(Sample((S.rand(rng, (), dtype), None), name="scalar"))
    out.append(Sample((S.rand(rng, (0, 3), dtype), 1), name="empty"))
    return out


def _flip_onnx(g, x, axis=None):
    axes = _flip_axes(g.shape(x), axis)
    if not axes:
        return g.op("Identity", [x])
    n = len(axes)
    return g.op("Slice", [x, g.ints([-1] * n), g.ints([_INT64_MIN] * n), g.ints(axes),
                          g.ints([-1] * n)])


defop("flip", "x, axis=None",
      shape_rule=lambda x, axis=None: (_flip_axes(x, axis), tuple(x))[1],
      reference=_flip_reference,
      grad=lambda g, out, x, axis=None: (ops.flip(g, axis),),
      samples=_flip_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Slice", _flip_onnx)},
      doc="Reverse the order of elements along ``axis`` (all axes when None).")


# ---- indexing: take, take_along_axis, slice, gather, scatter_add, one_hot ------------------
def _take_rule(x, indices, axis=None):
    if axis is None:
        return tuple(indices)
    if not len(x):
        raise ShapeMismatch("expected a tensor of rank >= 1 for an axis, got a scalar")
    a = normalize_axis(axis, len(x))
    return tuple(x[:a]) + tuple(indices) + tuple(x[a + 1:])


def _take_grad(g, out, x, indices, axis=None):
    return (_take_adjoint(g, indices, axis, ops.shape(x), ops.dtype(x)), None)


def _take_samples(dtype, rng):
    x = S.rand(rng, (4, 5), dtype)
    return [
        Sample((x, np.array([3, 0, 3]), 0), name="axis0_dups", keep=(1,)),
        Sample((x, np.array([[4, -1], [0, -5]]), -1), name="2d_negative", keep=(1,)),
        Sample((x, np.array([19, 0, -20, 7, 7, 2]), None), name="flat", keep=(1,)),
        Sample((x, np.array(2), 1), name="scalar_index", keep=(1,)),
        Sample((x, np.zeros((0,), np.int64), 0), name="no_indices", keep=(1,)),
        Sample((S.rand(rng, (2, 3, 4), dtype), np.array([[1], [2]]), 1), name="3d", keep=(1,)),
    ]


def _take_onnx(g, x, indices, axis=None):
    if axis is None:
        return g.op("Gather", [g.op("Reshape", [x, g.ints([-1])]), indices], axis=0)
    return g.op("Gather", [x, indices], axis=normalize_axis(axis, g.rank(x)))


defop("take", "x, indices, axis=None", tensors="x, indices", promote="x",
      shape_rule=_take_rule,
      reference=_take_reference,
      grad=_take_grad, samples=_take_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Gather", _take_onnx)},
      doc="""Elements of ``x`` at integer ``indices`` along ``axis`` (of the flattened tensor
      when None), as ``numpy.take``; negative indices count from the end. The result has
      shape ``x.shape[:axis] + indices.shape + x.shape[axis + 1:]``.""")


def _along_rule(x, indices, axis):
    if axis is None:
        if len(indices) != 1:
            raise ShapeMismatch(f"expected 1-D indices when axis is None, got shape "
                                f"{tuple(indices)}")
        return tuple(indices)
    if len(x) != len(indices):
        raise ShapeMismatch(f"expected indices of the rank of x ({len(x)}), got shape "
                            f"{tuple(indices)}")
    a = normalize_axis(axis, len(x))
    rest = broadcast_shapes(x[:a] + (1,) + x[a + 1:], indices[:a] + (1,) + indices[a + 1:])
    return rest[:a] + (indices[a],) + rest[a + 1:]


def _along_grad(g, out, x, indices, axis):
    shape = ops.shape(x)
    if axis is None:
        return (_take_adjoint(g, indices, None, shape, ops.dtype(x)), None)
    a = normalize_axis(axis, len(shape))
    full = list(ops.shape(g))
    full[a] = shape[a]
    return (_unbroadcast(_along_adjoint(g, indices, a, tuple(full), ops.dtype(x)), shape),
            None)


def _along_samples(dtype, rng):
    x = S.rand(rng, (3, 4), dtype)
    return [
        Sample((x, np.array([[0, 3], [1, 1], [-1, -4]]), 1), name="axis1", keep=(1,)),
        Sample((x, np.array([[2, 0, 1, 2], [0, 0, 0, 0]]), 0), name="axis0", keep=(1,)),
        Sample((x, np.array([[3, 0]]), -1), name="broadcast_idx", keep=(1,)),
        Sample((S.rand(rng, (3, 1, 5), dtype), rng.integers(-5, 5, (3, 4, 2)), -1),
               name="broadcast_x", keep=(1,)),
        Sample((x, np.array([11, 0, -1, 5, 5]), None), name="flat", keep=(1,)),
        Sample((x, np.zeros((3, 0), np.int64), 1), name="empty", keep=(1,)),
    ]


def _take_along_axis_onnx(g, x, indices, axis):
    if axis is None:
        return g.op("GatherElements", [g.op("Reshape", [x, g.ints([-1])]), indices], axis=0)
    a = normalize_axis(axis, g.rank(x))
    xs, js = g.shape(x), g.shape(indices)
    if any(d != e for i, (d, e) in enumerate(zip(xs, js)) if i != a):  # broadcast both
        x = g.op("Expand", [x, g.ints([1 if i == a or e is None else e
                                       for i, e in enumerate(js)])])
        indices = g.op("Expand", [indices, g.ints([1 if i == a or d is None else d
                                                   for i, d in enumerate(xs)])])
    return g.op("GatherElements", [x, indices], axis=a)


defop("take_along_axis", "x, indices, axis", tensors="x, indices", promote="x",
      shape_rule=_along_rule,
      reference=_take_along_axis_reference,
      grad=_along_grad, samples=_along_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("GatherElements", _take_along_axis_onnx)},
      doc="""``x`` indexed along ``axis`` by ``indices`` of the same rank, as
      ``numpy.take_along_axis`` (other axes broadcast; ``axis=None`` uses the flattened
      tensor and 1-D indices). Negative indices count from the end.""")


def slice_sizes(x, start_indices, shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(start, size)`` of ``slice`` checked against shape ``x`` (``-1`` size: to the end)."""
    start, size = _ints(start_indices), _ints(shape)
    if len(start) != len(x) or len(size) != len(x):
        raise ShapeMismatch(f"expected {len(x)} start indices and sizes for shape {tuple(x)}, "
                            f"got start {start} and shape {size}")
    out = []
    for d, s, n in zip(x, start, size):
        n = d - s if n == -1 else n
        if s < 0 or n < 0 or s + n > d:
            raise ShapeMismatch(f"expected a slice inside shape {tuple(x)}, got start {start} "
                                f"and shape {size}")
        out.append(n)
    return start, tuple(out)


def _slice_grad(g, out, x, start_indices, shape):
    xs = ops.shape(x)
    start, size = slice_sizes(xs, start_indices, shape)
    return (ops.pad(g, [(s, d - s - n) for d, s, n in zip(xs, start, size)]),)


def _slice_samples(dtype, rng):
    x = S.rand(rng, (4, 5), dtype)
    return [
        Sample((x, (1, 2), (2, 3)), name="middle"),
        Sample((x, (0, 0), (-1, 2)), name="to_end"),
        Sample((x, (0, 0), (4, 5)), name="all"),
        Sample((S.rand(rng, (3, 4, 5), dtype), (1, 0, 2), (2, 4, 0)), name="empty"),
        Sample((S.rand(rng, (), dtype), (), ()), name="scalar"),
    ]


def _slice_onnx(g, x, start_indices, shape):
    start, size = _ints(start_indices), _ints(shape)
    if not start:
        return g.op("Identity", [x])
    ends = [_INT64_MAX if n == -1 else s + n for s, n in zip(start, size)]
    return g.op("Slice", [x, g.ints(start), g.ints(ends), g.ints(range(len(start)))])


def _slice_batch(b, x, start_indices, shape):
    """A batch-sized block from 0 is the block to the end (-1) of its axis."""
    if BATCH in tuple(start_indices):
        return None
    size = tuple(-1 if d is BATCH and s == 0 else d for s, d in zip(start_indices, shape))
    return None if BATCH in size else b.emit("slice", x, start_indices, size)


defop("slice", "x, start_indices, shape",
      shape_rule=lambda x, start_indices, shape: slice_sizes(x, start_indices, shape)[1],
      reference=_slice_reference, grad=_slice_grad, samples=_slice_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Slice", _slice_onnx), "batch": _slice_batch},
      doc="""The block of ``x`` starting at ``start_indices`` with ``shape`` (static ints, as
      ``keras.ops.slice``); a size of ``-1`` runs to the end of the axis.""")


def _gather_rule(params, indices):
    if not len(params):
        raise ShapeMismatch("expected params of rank >= 1, got a scalar")
    return tuple(indices) + tuple(params[1:])


def _gather_grad(g, out, params, indices):
    shape = ops.shape(params)
    m = _size(ops.shape(indices))
    rows = ops.reshape(g, (m,) + tuple(shape[1:]))
    return (ops.scatter_add(_zeros(shape, ops.dtype(params)), ops.reshape(indices, (-1,)), rows),
            None)


def _gather_samples(dtype, rng):
    p = S.rand(rng, (5, 3), dtype)
    return [
        Sample((p, np.array([4, 0, 4, -1])), name="dups_negative", keep=(1,)),
        Sample((p, np.array([[1, 2, 3], [0, 0, 4]])), name="2d_indices", keep=(1,)),
        Sample((S.rand(rng, (5,), dtype), np.array(3)), name="scalar_index", keep=(1,)),
        Sample((p, np.zeros((0,), np.int64)), name="empty", keep=(1,)),
        Sample((S.rand(rng, (6, 2, 2), dtype), np.array([[5], [1]])), name="3d", keep=(1,)),
    ]


def _gather_onnx(g, params, indices):
    return g.op("Gather", [params, indices], axis=0)


defop("gather", "params, indices", tensors="params, indices", promote="params",
      shape_rule=_gather_rule,
      reference=lambda params, indices: _take_reference(params, indices, 0),
      grad=_gather_grad, samples=_gather_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("Gather", _gather_onnx)},
      doc="""Rows of ``params`` at integer ``indices`` (an embedding lookup): the result has
      shape ``indices.shape + params.shape[1:]``. Negative indices count from the end.""")


def _scatter_rule(x, indices, updates):
    if not len(x):
        raise ShapeMismatch("expected x of rank >= 1, got a scalar")
    if len(indices) != 1:
        raise ShapeMismatch(f"expected 1-D indices, got shape {tuple(indices)}")
    want = tuple(indices) + tuple(x[1:])
    if tuple(updates) != want:
        raise ShapeMismatch(f"expected updates of shape {want}, got {tuple(updates)}")
    return tuple(x)


def _scatter_samples(dtype, rng):
    return [
        Sample((S.rand(rng, (5, 3), dtype), np.array([4, 0, 4, -1]), S.rand(rng, (4, 3), dtype)),
               name="dups_negative", keep=(1,)),
        Sample((S.rand(rng, (5,), dtype), np.array([1, 1, 2]), S.rand(rng, (3,), dtype)),
               name="1d", keep=(1,)),
        Sample((S.rand(rng, (4, 2, 2), dtype), np.array([3, 0]), S.rand(rng, (2, 2, 2), dtype)),
               name="3d", keep=(1,)),
        Sample((S.rand(rng, (3, 2), dtype), np.zeros((0,), np.int64), S.rand(rng, (0, 2), dtype)),
               name="empty", keep=(1,)),
    ]


def _int64(g, t):
    return t if g.dtype(t) == "int64" else g.cast(t, "int64")


def _scatter_add_onnx(g, x, indices, updates):
    n = g.shape(x)[0]
    if n is None:
        g.unsupported("a scatter into the batch axis")
    idx = _int64(g, indices)  # (negative indices wrapped: ScatterND wants them in range)
    idx = g.op("Where", [g.op("Less", [idx, g.const(0, "int64")]),
                         g.op("Add", [idx, g.const(n, "int64")]), idx])
    return g.op("ScatterND", [x, g.unsqueeze(idx, [1]), updates], reduction="add")


defop("scatter_add", "x, indices, updates", tensors="x, indices, updates",
      promote="x, updates", shape_rule=_scatter_rule, reference=_scatter_add_reference,
      grad=lambda g, out, x, indices, updates: (g, None, ops.gather(g, indices)),
      samples=_scatter_samples, dtypes=NUMERIC, tol="elementwise",
      export={"onnx": OnnxOp("ScatterND", _scatter_add_onnx)},
      doc="""``x`` with ``updates[i]`` added to row ``x[indices[i]]`` (along axis 0); repeated
      indices accumulate. ``indices`` is 1-D; negative indices count from the end.""")


def _one_hot_rule(indices, num_classes, axis=-1, dtype=None):
    nd = len(indices) + 1
    a = normalize_axis(axis, nd)
    if num_classes < 0:
        raise ShapeMismatch(f"expected a non-negative num_classes, got {num_classes}")
    return tuple(indices[:a]) + (int(num_classes),) + tuple(indices[a:])


def _one_hot_samples(dtype, rng):
    idx = np.array([[0, 3, -1], [4, 2, 2]])
    return [
        Sample((idx, 4, -1, dtype), name="last", keep=(0,)),
        Sample((idx, 4, 0, dtype), name="axis0", keep=(0,)),
        Sample((idx, 5, 1, dtype), name="axis1", keep=(0,)),
        Sample((np.array(2), 3, -1, dtype), name="scalar", keep=(0,)),
        Sample((np.zeros((0,), np.int64), 3, -1, dtype), name="empty", keep=(0,)),
    ]


def _one_hot_onnx(g, indices, num_classes, axis=-1, dtype=None):
    idx = _int64(g, indices)  # negative indices give zeros (ONNX would count from the end)
    idx = g.op("Where", [g.op("Less", [idx, g.const(0, "int64")]),
                         g.const(num_classes, "int64"), idx])
    scalar = not g.rank(indices)
    if scalar:  # (ONNX OneHot wants indices of rank >= 1)
        idx = g.unsqueeze(idx, [0])
    out = g.op("OneHot", [idx, g.const(num_classes, "int64"), g.const([0.0, 1.0], "float32")],
               axis=-1 if scalar else int(axis))
    out = g.squeeze(out, [0]) if scalar else out
    return out if g.out_dtype() == "float32" else g.cast(out, g.out_dtype())


defop("one_hot", "indices, num_classes, axis=-1, dtype=None", tensors="indices", promote=(),
      dtype_rule="dtype_arg", shape_rule=_one_hot_rule, reference=_one_hot_reference,
      differentiable=False, samples=_one_hot_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("OneHot", _one_hot_onnx)},
      doc="""One-hot encoding of integer ``indices`` with ``num_classes`` classes on a new
      ``axis`` (last by default); ``dtype`` defaults to float32. Indices outside
      ``[0, num_classes)`` (negative ones included) give all-zero vectors, as in TensorFlow.""")


# ---- top_k, sort, argsort ------------------------------------------------------------------
def _top_k_rule(x, k, sorted=True):
    if not len(x):
        raise ShapeMismatch("expected a tensor of rank >= 1, got a scalar")
    if not 0 <= k <= x[-1]:
        raise ShapeMismatch(f"expected 0 <= k <= {x[-1]} (the last axis), got k={k}")
    s = tuple(x[:-1]) + (int(k),)
    return [s, s]


def _top_k_grad(g, out, x, k, sorted=True):
    gv = g[0]
    if gv is None:
        return (None,)
    shape = ops.shape(x)
    return (_along_adjoint(gv, out[1], -1, shape, ops.dtype(x)),)


def _distinct(rng, shape, dtype):
    """Values distinct along the last axis, exactly representable in every dtype."""
    n = shape[-1]
    base = np.tile(np.arange(n), shape[:-1] + (1,))
    v = rng.permuted(base, axis=-1).astype(np.float64)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if _dt.is_float(dtype):
        return (v - n / 2) * 0.5
    return v.astype(np.int64) if dtype.startswith("u") else (v - n // 2).astype(np.int64)


def _top_k_samples(dtype, rng):
    out = [
        Sample((_distinct(rng, (3, 8), dtype), 3, True), name="k3"),
        Sample((_distinct(rng, (8,), dtype), 8, True), name="all"),
        Sample((_distinct(rng, (2, 3, 5), dtype), 2, True), name="3d"),
        Sample((_distinct(rng, (3, 4), dtype), 0, True), name="k0"),
        Sample((_distinct(rng, (0, 4), dtype), 2, True), name="empty"),
        Sample((_bool_or(dtype, np.array([[1.0, 2.0, 2.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0]])),
                3, True), name="ties", grad=False),
    ]
    if _dt.is_float(dtype):
        out.append(Sample((np.array([[1.0, np.nan, 3.0, np.nan, -np.inf],
                                     [np.inf, 0.0, -1.0, np.inf, 2.0]]), 3, True),
                          name="nan_inf", grad=False))
    return out


def _top_k_onnx(g, x, k, sorted=True):
    return g.op("TopK", [x, g.ints([k])], outputs=2, axis=-1, largest=1, sorted=1)


defop("top_k", "x, k, sorted=True", shape_rule=_top_k_rule, reference=_top_k_reference,
      dtype_rule=lambda x, k, sorted=True: [x, _dt.INDEX_DTYPE], grad=_top_k_grad,
      samples=_top_k_samples, dtypes=ALL, tol="exact",
      export={"onnx": OnnxOp("TopK", _top_k_onnx)},
      doc="""The ``k`` largest entries along the last axis: ``[values, indices]`` (indices
      int64), largest first. Equal values keep index order (lower index first); NaN counts
      as the largest value. ``sorted=False`` is accepted; results are sorted anyway.""")


def _sort_rule(x, axis=-1):
    if axis is None:
        return (_size(x),)
    if not len(x):
        raise ShapeMismatch("expected a tensor of rank >= 1 (or axis=None), got a scalar")
    normalize_axis(axis, len(x))
    return tuple(x)


def _sort_grad(g, out, x, axis=-1):
    if axis is None:
        p = ops.argsort(x, None)
        return (ops.reshape(ops.take_along_axis(g, ops.argsort(p, 0), 0), ops.shape(x)),)
    inv = ops.argsort(ops.argsort(x, axis), axis)
    return (ops.take_along_axis(g, inv, axis),)


def _sort_samples(dtype, rng):
    x = S.rand(rng, (3, 8), dtype)
    out = [
        Sample((x, -1), name="last"),
        Sample((x, 0), name="axis0"),
        Sample((S.rand(rng, (2, 3, 4), dtype), 1), name="3d"),
        Sample((x, None), name="flat"),
        Sample((S.rand(rng, (0, 3), dtype), 0), name="empty"),
        Sample((_bool_or(dtype, np.array([[1.0, 0.0, 1.0, 0.0, 1.0], [2.0, 2.0, 0.0, 2.0, 1.0]])),
                -1), name="ties", grad=False),
    ]
    if _dt.is_float(dtype):
        out.append(Sample((np.array([[np.nan, 1.0, -np.inf, np.inf, 0.0, np.nan],
                                     [2.0, np.inf, np.nan, -1.0, np.inf, -np.inf]]), -1),
                          name="nan_inf", grad=False))
    return out


def _sort_onnx(output: int):
    """ONNX ``TopK`` with ``largest=0`` over the whole axis (``output``: 0 the values, 1 the
    indices); ``axis=None`` sorts the flattened tensor."""
    def convert(g, x, axis=-1):
        if axis is None:
            x, a = g.op("Reshape", [x, g.ints([-1])]), 0
        else:
            a = normalize_axis(axis, g.rank(x))
        k = g.op("Gather", [g.op("Shape", [x]), g.ints([a])], axis=0)
        return g.op("TopK", [x, k], outputs=2, axis=a, largest=0, sorted=1)[output]

    return OnnxOp("TopK", convert)


defop("sort", "x, axis=-1", shape_rule=_sort_rule,
      reference=_sort_reference, grad=_sort_grad,
      samples=_sort_samples, dtypes=ALL, tol="exact", export={"onnx": _sort_onnx(0)},
      doc="""``x`` sorted ascending along ``axis`` (the flattened tensor when None); NaNs go
      last, as in NumPy.""")

defop("argsort", "x, axis=-1", dtype_rule="index", shape_rule=_sort_rule,
      reference=_argsort_reference,
      differentiable=False, samples=_sort_samples, dtypes=ALL, tol="exact",
      export={"onnx": _sort_onnx(1)},
      doc="""Indices (int64) that sort ``x`` ascending along ``axis`` (flattened when None).
      The sort is stable: equal values keep their order. NaNs go last, as in NumPy.""")
