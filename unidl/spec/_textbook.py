"""Building blocks of the float64 op references, written independently of every backend.

The reference of an op is the oracle the conformance suite compares every backend's kernel
with, so it must not share arithmetic with any kernel: a reference that calls the same NumPy
routine (or the same helper) as the NumPy kernel compares a function with itself and can never
fail. The references are therefore written from the textbook definitions with these helpers:

* element by element on Python scalars: ``math`` (``exp``, ``log``, ``tanh``, ``erf``...) and
  Python's own float and int arithmetic, an implementation of IEEE arithmetic separate from
  NumPy's ufuncs (:func:`pointwise`, with :func:`ieee` giving the IEEE special values where
  ``math`` raises instead);
* sums with :func:`fsum` (``math.fsum``: exactly rounded, so independent of any summation
  order) over explicit groups of elements (:func:`lanes`);
* explicit index loops (:func:`positions`, :func:`gather`) for data movement and windows.

NumPy only holds the arrays here (``np.empty``, ``np.asarray``, indexing, ``tolist``); none of
its arithmetic routines is used. The helpers also do their own shape bookkeeping (broadcasting,
axis normalization, strides), so none of the spec's shape helpers that kernels call is shared.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

NAN = math.nan
INF = math.inf


# ---- shapes and indices ---------------------------------------------------------------------
def positions(shape):
    """Every multi-index of ``shape`` in row-major order (one empty tuple for a scalar)."""
    return itertools.product(*(range(int(n)) for n in shape))


def strides_of(shape) -> list[int]:
    """Row-major element strides of ``shape``."""
    out, step = [], 1
    for n in reversed(tuple(shape)):
        out.append(step)
        step *= int(n)
    return out[::-1]


def unravel(flat: int, shape) -> tuple:
    """The multi-index of row-major position ``flat`` in ``shape``."""
    idx = []
    for n in reversed(tuple(shape)):
        flat, i = divmod(flat, int(n))
        idx.append(i)
    return tuple(idx[::-1])


def axes_of(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None: all; an int; a sequence; negatives allowed) as sorted axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    return tuple(sorted(int(a) % max(ndim, 1) for a in axis))


def broadcast_shape(*shapes) -> tuple:
    """NumPy's broadcasting rule, right-aligned: each dimension is the one that is not 1."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(ndim):
        dims = [s[len(s) - ndim + k] for s in shapes if len(s) - ndim + k >= 0]
        big = [d for d in dims if d != 1]
        out.append(big[0] if big else 1)
    return tuple(out)


def flat_values(a) -> list:
    """The elements of ``a`` as Python scalars, in row-major order."""
    a = np.asarray(a)
    values = a.tolist()
    for _ in range(a.ndim - 1):
        values = [v for row in values for v in row]
    return values if a.ndim else [values]


def broadcast_values(a, shape) -> list:
    """The elements of ``a`` broadcast to ``shape`` (Python scalars, row-major)."""
    a = np.asarray(a)
    if a.shape == tuple(shape):
        return flat_values(a)
    read = reader(a, shape)
    return [read(idx) for idx in positions(shape)]


def reader(a, shape=None):
    """A function from a multi-index to the Python scalar of ``a`` there; with ``shape``,
    indices of ``shape`` read ``a`` broadcast to it (right-aligned; size-1 dimensions
    repeat)."""
    a = np.asarray(a)
    flat = flat_values(a)
    steps = strides_of(a.shape)
    if shape is None or tuple(shape) == a.shape:
        return lambda idx: flat[sum(i * st for i, st in zip(idx, steps))]
    lead = len(shape) - a.ndim
    steps = [0 if d == 1 else st for d, st in zip(a.shape, steps)]
    return lambda idx: flat[sum(i * st for i, st in zip(idx[lead:], steps))]


def dot(xs, ys):
    """``sum(x * y)`` over paired Python scalars: exactly rounded for floats, exact for
    integers."""
    products = [x * y for x, y in zip(xs, ys)]
    if any(isinstance(p, float) for p in products):
        return fsum(products)
    return sum(products)


def array_of(values, shape, dtype=np.float64) -> np.ndarray:
    """An array of ``shape`` holding ``values`` (row-major), filled element by element."""
    out = np.empty(tuple(shape), dtype)
    for idx, v in zip(positions(shape), values):
        out[idx] = v
    return out


def build(shape, value, dtype) -> np.ndarray:
    """``out[idx] = value(idx)`` for every position of ``shape`` (a data-movement oracle)."""
    out = np.empty(tuple(shape), dtype)
    for idx in positions(shape):
        out[idx] = value(idx)
    return out


def gather(x, out_shape, source) -> np.ndarray:
    """``out[idx] = x[source(idx)]`` for every output position."""
    x = np.asarray(x)
    return build(out_shape, lambda idx: x[source(idx)], x.dtype)


def ints(v) -> tuple[int, ...]:
    """An int or a sequence of ints as a tuple of Python ints."""
    if isinstance(v, (int, np.integer)):
        return (int(v),)
    return tuple(int(i) for i in v)


def ravel(idx, shape) -> int:
    """The row-major position of multi-index ``idx`` in ``shape``."""
    return sum(i * st for i, st in zip(idx, strides_of(shape)))


# ---- integer arithmetic ---------------------------------------------------------------------
def wrap(v: int, dtype) -> int:
    """Python int ``v`` wrapped around into the range of integer ``dtype``: modulo
    ``2 ** bits``, into ``[-2 ** (bits - 1), 2 ** (bits - 1))`` if signed (two's complement)."""
    dtype = np.dtype(dtype)
    span = 1 << (8 * dtype.itemsize)
    low = -(span >> 1) if dtype.kind == "i" else 0
    return (int(v) - low) % span + low


def result_dtype(*arrays) -> np.dtype:
    """The dtype the reference returns: float64 for floating inputs, else the inputs' dtype."""
    kinds = [np.asarray(a).dtype for a in arrays]
    if any(d.kind == "f" for d in kinds):
        return np.dtype(np.float64)
    return kinds[0] if all(d == kinds[0] for d in kinds) else np.result_type(*kinds)


def finish(values, shape, dtype) -> np.ndarray:
    """``values`` as an array of ``dtype`` (integers wrapped into its range)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        values = [wrap(v, dtype) for v in values]
    return array_of(values, shape, dtype)


# ---- IEEE scalar arithmetic -----------------------------------------------------------------
def ieee(fn, *args):
    """``fn(*args)`` from ``math``, with the IEEE result where ``math`` raises instead: an
    overflow (OverflowError) gives ``inf`` with the sign of the first argument, a domain error
    (ValueError) gives NaN. Poles (``log(0)``) are left to the caller."""
    try:
        return fn(*args)
    except OverflowError:
        return math.copysign(INF, args[0])
    except ValueError:
        return NAN


def div(a: float, b: float) -> float:
    """IEEE division ``a / b`` (Python raises on a zero divisor)."""
    if b == 0:
        if a == 0 or math.isnan(a) or math.isnan(b):
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)
    return a / b


def fsum(values) -> float:
    """The exactly rounded sum of ``values`` with IEEE special values.

    ``math.fsum`` raises on ``inf + -inf`` and on an intermediate overflow; here the first is
    NaN and the second the overflowed sum.
    """
    values = list(values)
    if any(math.isnan(v) for v in values):
        return NAN
    pos, neg = INF in values, -INF in values
    if pos or neg:
        return NAN if pos and neg else (INF if pos else -INF)
    try:
        return math.fsum(values)
    except OverflowError:
        return math.copysign(INF, sum(values))


def nan_max(values):
    """The maximum of ``values``; NaN if any is NaN (Python's ``max`` is order-dependent)."""
    if any(v != v for v in values):
        return NAN
    return max(values)


def nan_min(values):
    """The minimum of ``values``; NaN if any is NaN."""
    if any(v != v for v in values):
        return NAN
    return min(values)


def sigmoid(v: float) -> float:
    """``1 / (1 + exp(-v))``, evaluated without an overflowing ``exp``."""
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = ieee(math.exp, v)  # v < 0 or NaN: e in [0, 1) or NaN
    return e / (1.0 + e)


# ---- element-by-element and group-by-group evaluation ---------------------------------------
def pointwise(fn, *arrays, dtype=None) -> np.ndarray:
    """``fn`` applied to every element of ``arrays`` broadcast together (Python scalars).

    ``dtype`` is the result's dtype (default: :func:`result_dtype`); integer results are
    wrapped into its range, as fixed-width integer arithmetic does.
    """
    arrays = [np.asarray(a) for a in arrays]
    shape = broadcast_shape(*(a.shape for a in arrays))
    columns = [broadcast_values(a, shape) for a in arrays]
    values = [fn(*args) for args in zip(*columns)]
    return finish(values, shape, result_dtype(*arrays) if dtype is None else dtype)


def lanes(x, axes) -> tuple[tuple, list[list]]:
    """Group the elements of ``x`` by the positions of the axes not in ``axes``.

    Returns ``(kept_shape, groups)``: the shape of the axes kept and, for each kept position
    in row-major order, the list of elements along ``axes`` (row-major among them).
    """
    x = np.asarray(x)
    shape, flat, st = x.shape, flat_values(x), strides_of(x.shape)
    kept = [k for k in range(x.ndim) if k not in axes]
    kept_shape = tuple(shape[k] for k in kept)
    inner = [sum(i * st[a] for i, a in zip(idx, axes))
             for idx in positions([shape[a] for a in axes])]
    groups = []
    for idx in positions(kept_shape):
        base = sum(i * st[k] for i, k in zip(idx, kept))
        groups.append([flat[base + off] for off in inner])
    return kept_shape, groups


def reduce(fn, x, axis, keepdims, dtype) -> np.ndarray:
    """``fn(group)`` for each group of :func:`lanes` over ``axis``, shaped as a reduction."""
    x = np.asarray(x)
    axes = axes_of(axis, x.ndim)
    kept_shape, groups = lanes(x, axes)
    shape = tuple(1 if k in axes else n for k, n in enumerate(x.shape)) if keepdims \
        else kept_shape
    return finish([fn(g) for g in groups], shape, dtype)


def along(fn, x, axis, dtype=np.float64) -> np.ndarray:
    """``fn(lane) -> lane`` applied to every 1-D lane of ``x`` along ``axis`` (same shape)."""
    x = np.asarray(x)
    a = int(axis) % max(x.ndim, 1)
    st = strides_of(x.shape)
    kept_shape, groups = lanes(x, (a,))
    kept = [k for k in range(x.ndim) if k != a]
    values = [0] * x.size
    for idx, lane in zip(positions(kept_shape), groups):
        base = sum(i * st[k] for i, k in zip(idx, kept))
        for j, v in enumerate(fn(lane)):
            values[base + j * st[a]] = v
    return finish(values, x.shape, dtype)
