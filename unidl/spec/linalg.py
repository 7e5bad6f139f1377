"""Linear algebra ops: matmul, dense, dot, einsum, tensordot.

Conventions:

* ``matmul`` follows ``np.matmul``: the last two axes are the matrix axes, leading axes are
  batch axes and broadcast; a 1-D operand is a vector (a 1 is prepended to ``x`` / appended
  to ``y`` and removed from the result). Scalars are rejected.
* ``dot`` follows ``np.dot`` in every rank: a scalar operand multiplies, otherwise the last
  axis of ``x`` is contracted with the only axis of a 1-D ``y`` or with the second-to-last
  axis of ``y`` (result shape ``x.shape[:-1] + y.shape[:-2] + y.shape[-1:]``).
* ``einsum`` follows ``np.einsum``: explicit (``->``) and implicit output, ``...`` ellipsis,
  repeated letters (diagonals, traces) and size-1 broadcasting of a letter. Backends get the
  subscripts rewritten by :func:`einsum_expand` into explicit letters with no broadcasting,
  which every framework accepts.
* ``tensordot`` follows ``np.tensordot``: ``axes`` is an int ``n`` (last ``n`` axes of ``x``
  with the first ``n`` of ``y``) or a pair of axis sequences (ints allowed, negatives too).

The helpers :func:`einsum_expand` and :func:`tensordot_axes` are shared by the kernels.
"""

from __future__ import annotations

import string
from functools import lru_cache

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.export.rules import OnnxOp
from unidl.spec import _textbook as T
from unidl.spec import samples as S
from unidl.spec.core import COMPOSITE, Sample, ShapeMismatch, defop
from unidl.spec.rules import broadcast_shapes

__all__ = ["einsum_expand", "einsum_expression", "tensordot_axes", "einsum_grads",
           "dense_grads", "LINALG_INT_DTYPES"]

FLOATS = _dt.FLOAT_DTYPES
#: matmul and dot also claim these integer dtypes.
LINALG_INT_DTYPES = ("int32", "int64")


def _dtype_name(x) -> str:
    """unidl dtype name of a native tensor or of a tracer of the autodiff engine."""
    return _dt.standardize(x.dtype)


def _shape(x) -> tuple:
    return tuple(ops.shape(x))


# ---- float64 references: contractions as explicit sums (see unidl/spec/_textbook.py) -------
# Every output element is the exactly rounded sum (math.fsum) of its products, found by
# looping over the summed indices; shapes, axes and einsum subscripts are resolved here from
# the documented rules, not with the helpers the kernels share.
def _finished(value, dtype):
    """``value`` made to fit ``dtype`` (integer sums wrap around)."""
    return T.wrap(value, dtype) if dtype.kind in "iu" else value


def _contract(x, y, ax, ay):
    """``sum(x[..] * y[..])`` over the axes ``ax`` of ``x`` paired with ``ay`` of ``y``; the
    result has the free axes of ``x``, then those of ``y``."""
    x, y = np.asarray(x), np.asarray(y)
    fx = [k for k in range(x.ndim) if k not in ax]
    fy = [k for k in range(y.ndim) if k not in ay]
    rx, ry = T.reader(x), T.reader(y)
    summed = [x.shape[a] for a in ax]
    dtype = T.result_dtype(x, y)

    def entry(idx):
        px, py = [0] * x.ndim, [0] * y.ndim
        for k, i in zip(fx, idx[:len(fx)]):
            px[k] = i
        for k, i in zip(fy, idx[len(fx):]):
            py[k] = i
        xs, ys = [], []
        for s in T.positions(summed):
            for a, b, i in zip(ax, ay, s):
                px[a] = py[b] = i
            xs.append(rx(px))
            ys.append(ry(py))
        return _finished(T.dot(xs, ys), dtype)

    shape = [x.shape[k] for k in fx] + [y.shape[k] for k in fy]
    return T.build(shape, entry, dtype)


def _matmul_reference(x, y):
    """``out[b, i, j] = sum_l x[b, i, l] y[b, l, j]`` with broadcast batch axes ``b``; a 1-D
    operand is a vector (its matrix axis is dropped from the result)."""
    x, y = np.asarray(x), np.asarray(y)
    xm = x[None, :] if x.ndim == 1 else x
    ym = y[:, None] if y.ndim == 1 else y
    batch = T.broadcast_shape(xm.shape[:-2], ym.shape[:-2])
    k = xm.shape[-1]
    rx = T.reader(xm, batch + xm.shape[-2:])
    ry = T.reader(ym, batch + ym.shape[-2:])
    dtype = T.result_dtype(x, y)

    def entry(idx):
        b, i, j = idx[:-2], idx[-2], idx[-1]
        return _finished(T.dot([rx(b + (i, m)) for m in range(k)],
                               [ry(b + (m, j)) for m in range(k)]), dtype)

    out = T.build(batch + (xm.shape[-2], ym.shape[-1]), entry, dtype)
    if x.ndim == 1:
        out = out[..., 0, :]
    return out[..., 0] if y.ndim == 1 else out


def _dense_reference(x, kernel, bias=None):
    """``x @ kernel + bias``: each output a sum over the kernel's input axis, plus the bias."""
    out = _contract(x, kernel, [np.ndim(x) - 1], [0])
    if bias is None:
        return out
    return T.pointwise(lambda v, b: v + b, out, bias)


def _tensordot_reference(x, y, axes=2):
    """:func:`_contract` over ``axes``: an int ``n`` pairs the last ``n`` axes of ``x`` with
    the first ``n`` of ``y``; a pair of sequences pairs them in order."""
    nx, ny = np.ndim(x), np.ndim(y)
    if isinstance(axes, (int, np.integer)):
        ax, ay = list(range(nx - axes, nx)), list(range(axes))
    else:
        ax = [a % nx for a in T.ints(axes[0])]
        ay = [a % ny for a in T.ints(axes[1])]
    return _contract(x, y, ax, ay)


def _dot_reference(x, y):
    """``np.dot``'s rules: a scalar multiplies; else the last axis of ``x`` is summed with the
    only axis of a 1-D ``y``, or with the second-to-last axis of ``y``."""
    nx, ny = np.ndim(x), np.ndim(y)
    if nx == 0 or ny == 0:
        return T.pointwise(lambda a, b: a * b, x, y)
    return _contract(x, y, [nx - 1], [0 if ny == 1 else ny - 2])


def _einsum_labels(subscripts, operands):
    """The label of every axis of each operand and of the output: its letter, or for an axis
    under ``...`` an int ``0..E-1`` (right-aligned across operands, as broadcasting is).
    The implicit output is the ellipsis, then the letters used once, sorted."""
    s = subscripts.replace(" ", "")
    lhs, arrow, rhs = s.partition("->")
    terms = lhs.split(",")
    n_ell = [np.ndim(op) - len(t.replace("...", "")) if "..." in t else 0
             for t, op in zip(terms, operands)]
    e = max(n_ell, default=0)

    def expand(term, n):
        pre, dots, post = term.partition("...")
        return list(pre) + (list(range(e - n, e)) if dots else []) + list(post)

    labels = [expand(t, n) for t, n in zip(terms, n_ell)]
    if arrow:
        return labels, expand(rhs, e)
    letters = [c for t in terms for c in t.replace("...", "")]
    return labels, list(range(e)) + sorted(c for c in set(letters) if letters.count(c) == 1)


def _einsum_reference(subscripts, operands):
    """Each output element: the sum, over every value of the labels not in the output, of the
    product of the operands' elements those labels pick (a size-1 axis broadcasts)."""
    operands = [np.asarray(o) for o in operands]
    labels, out = _einsum_labels(subscripts, operands)
    size: dict = {}
    for lab, op in zip(labels, operands):
        for c, d in zip(lab, op.shape):
            if size.get(c, 1) == 1:
                size[c] = d
    summed = [c for c in size if c not in out]
    readers = [T.reader(op) for op in operands]

    def entry(idx):
        value = dict(zip(out, idx))
        terms = []
        for s in T.positions([size[c] for c in summed]):
            value.update(zip(summed, s))
            product = 1.0
            for lab, op, read in zip(labels, operands, readers):
                product *= read([value[c] if d != 1 else 0 for c, d in zip(lab, op.shape)])
            terms.append(product)
        return T.fsum(terms)

    return T.build([size[c] for c in out], entry, np.float64)


# ---- matmul -------------------------------------------------------------------------------
def _matmul_shape(x, y):
    x, y = tuple(x), tuple(y)
    if not x or not y:
        raise ShapeMismatch(f"expected operands of rank 1 or more, got x {x} and y {y} "
                            "(use multiply for scalars)")
    kx = x[-1]
    ky = y[-2] if len(y) >= 2 else y[0]
    if kx != ky:
        raise ShapeMismatch(f"inner dimensions differ: x {x} and y {y} "
                            f"(last dimension of x is {kx}, "
                            f"{'second-to-last' if len(y) >= 2 else 'only'} dimension of y "
                            f"is {ky})")
    try:
        batch = broadcast_shapes(x[:-2], y[:-2])
    except ShapeMismatch:
        raise ShapeMismatch(f"batch dimensions of x {x} and y {y} cannot be broadcast "
                            f"({x[:-2]} vs {y[:-2]})") from None
    out = batch
    if len(x) >= 2:
        out = out + (x[-2],)
    if len(y) >= 2:
        out = out + (y[-1],)
    return out


def _letters(n: int, offset: int = 0) -> str:
    return string.ascii_letters[offset:offset + n]


def _matrix_transpose(x):
    return ops.einsum("...ij->...ji", x)


def _matmul_grad_partial(slots, g, out, x, y):
    """The cotangents of the inputs in ``slots`` only (the others None) when both operands
    are matrices or batches of them; else None (the full rule handles vectors)."""
    if len(_shape(x)) < 2 or len(_shape(y)) < 2:
        return None
    # broadcast-shaped gradients; the engine sums them back over the batch axes
    return (ops.matmul(g, _matrix_transpose(y)) if 0 in slots else None,
            ops.matmul(_matrix_transpose(x), g) if 1 in slots else None)


def _matmul_grad(g, out, x, y):
    nx, ny = len(_shape(x)), len(_shape(y))
    if nx >= 2 and ny >= 2:
        return _matmul_grad_partial((0, 1), g, out, x, y)
    if nx == 1 and ny == 1:
        return ops.multiply(g, y), ops.multiply(g, x)
    if nx == 1:  # x (k,), y (B.., k, n), g (B.., n)
        b = _letters(ny - 2, 26)
        return (ops.einsum(f"{b}kn,{b}n->k", y, g),
                ops.einsum(f"k,{b}n->{b}kn", x, g))
    # y (k,), x (B.., m, k), g (B.., m)
    b = _letters(nx - 2, 26)
    return (ops.einsum(f"{b}m,k->{b}mk", g, y),
            ops.einsum(f"{b}mk,{b}m->k", x, g))


def _matmul_samples(dtype, rng):
    pairs = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
             ((4,), (4, 5)), ((2, 3, 4), (4,)), ((4,), (2, 4, 3)), ((4,), (4,)),
             ((0, 3), (3, 4)), ((3, 0), (0, 4)), ((2, 0, 3), (3, 2))]
    return [Sample((S.rand(rng, a, dtype), S.rand(rng, b, dtype)), name=f"{a}@{b}")
            for a, b in pairs]


defop("matmul", "x, y", tensors="x, y", shape_rule=_matmul_shape,
      reference=_matmul_reference,
      grad=_matmul_grad, grad_partial=_matmul_grad_partial, samples=_matmul_samples,
      dtypes=FLOATS + LINALG_INT_DTYPES, tol="contraction", export={"onnx": "MatMul"},
      doc="""Matrix product with NumPy's rules: batch axes broadcast, 1-D operands are vectors.

      Example: ``matmul(x, w)`` with ``x`` of shape ``(batch, in)`` and ``w`` of shape
      ``(in, out)`` gives ``(batch, out)``.""")


# ---- dense -------------------------------------------------------------------------------
def _dense_shape(x, kernel, bias=None):
    x, k = tuple(x), tuple(kernel)
    if len(x) < 1 or len(k) != 2:
        raise ShapeMismatch(f"expected x of rank >= 1 and a 2-D kernel (in, out), got x {x} "
                            f"and kernel {k}")
    if x[-1] != k[0]:
        raise ShapeMismatch(f"expected x's last dimension to equal the kernel's first, got x "
                            f"{x} and kernel {k}")
    if bias is not None and tuple(bias) != (k[1],):
        raise ShapeMismatch(f"expected a bias of shape ({k[1]},) (the kernel's last "
                            f"dimension), got {tuple(bias)}")
    return x[:-1] + (k[1],)


def _dense_impl(x, kernel, bias=None):
    y = ops.matmul(x, kernel)
    return y if bias is None else ops.add(y, bias)


def dense_grads(g, x, kernel, bias=None, slots=(0, 1, 2)):
    """Cotangents ``(x, kernel, bias)`` of ``dense``; only the inputs in ``slots`` are
    computed, the others are None (a layer's data input is usually not differentiated: its
    product is the largest of the three)."""
    units = _shape(kernel)[1]
    xs = _shape(x)
    x2 = x if len(xs) == 2 else ops.reshape(x, (-1, xs[-1]))
    g2 = g if len(xs) == 2 else ops.reshape(g, (-1, units))
    gx = ops.matmul(g, ops.transpose(kernel, (1, 0))) if 0 in slots else None
    gk = ops.matmul(ops.transpose(x2, (1, 0)), g2) if 1 in slots else None
    gb = None if bias is None or 2 not in slots else ops.sum(g2, (0,), False)
    return gx, gk, gb


def _dense_grad(g, out, x, kernel, bias=None):
    return dense_grads(g, x, kernel, bias)


def _dense_grad_partial(slots, g, out, x, kernel, bias=None):
    return dense_grads(g, x, kernel, bias, slots=slots)


def _dense_samples(dtype, rng):
    def r(shape):
        return S.rand(rng, shape, dtype)

    return [
        Sample((r((3, 4)), r((4, 5)), r((5,))), name="(3,4)x(4,5)+b"),
        Sample((r((2, 3, 4)), r((4, 5)), r((5,))), name="(2,3,4)x(4,5)+b"),
        Sample((r((4,)), r((4, 3)), r((3,))), name="(4,)x(4,3)+b"),
        Sample((r((3, 4)), r((4, 2)), None), name="no_bias"),
        Sample((r((0, 4)), r((4, 2)), r((2,))), name="empty_batch", grad=False),
    ]


def _dense_onnx(g, x, kernel, bias=None):
    """ONNX ``Gemm`` for a 2-D ``x``, else ``MatMul`` (+ ``Add``)."""
    if g.rank(x) == 2:
        return g.op("Gemm", [x, kernel, bias])
    y = g.op("MatMul", [x, kernel])
    return y if bias is None else g.op("Add", [y, bias])


defop("dense", "x, kernel, bias=None", tensors="x, kernel, bias", kind=COMPOSITE,
      impl=_dense_impl, shape_rule=_dense_shape, reference=_dense_reference, grad=_dense_grad,
      grad_partial=_dense_grad_partial,
      samples=_dense_samples, dtypes=FLOATS, tol="contraction",
      export={"onnx": OnnxOp("Gemm", _dense_onnx)},
      doc="""The affine map of a Dense layer: ``matmul(x, kernel) + bias``.

      ``x`` has shape ``(..., in)``, ``kernel`` ``(in, out)``, ``bias`` ``(out,)`` or None;
      the result has shape ``(..., out)``. One op so that a backend can run it as one fused
      kernel (``addmm``/``F.linear`` on PyTorch, ``MatMul`` + ``BiasAdd`` on TensorFlow).""")


# ---- tensordot ----------------------------------------------------------------------------
def tensordot_axes(axes, nx: int, ny: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``axes`` of ``tensordot`` as two tuples of non-negative axes of ``x`` and ``y``.

    Raises:
        ShapeMismatch: axes out of range, repeated, or of different counts.
    """
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > nx or n > ny:
            raise ShapeMismatch(f"expected axes between 0 and {min(nx, ny)} for operands of "
                                f"rank {nx} and {ny}, got {n}")
        return tuple(range(nx - n, nx)), tuple(range(n))
    try:
        ax, ay = axes
    except (TypeError, ValueError):
        raise ShapeMismatch(f"expected axes to be an int or a pair of axis sequences, "
                            f"got {axes!r}") from None
    ax = (int(ax),) if isinstance(ax, (int, np.integer)) else tuple(int(a) for a in ax)
    ay = (int(ay),) if isinstance(ay, (int, np.integer)) else tuple(int(a) for a in ay)
    if len(ax) != len(ay):
        raise ShapeMismatch(f"expected as many axes of x as of y, got {ax} and {ay}")
    out = []
    for axs, n, name in ((ax, nx, "x"), (ay, ny, "y")):
        norm = []
        for a in axs:
            if not -n <= a < n:
                raise ShapeMismatch(f"axis {a} is out of range for {name} of rank {n}")
            norm.append(a % n)
        if len(set(norm)) != len(norm):
            raise ShapeMismatch(f"repeated axis in {axs} for {name}")
        out.append(tuple(norm))
    return out[0], out[1]


def _tensordot_shape(x, y, axes=2):
    x, y = tuple(x), tuple(y)
    ax, ay = tensordot_axes(axes, len(x), len(y))
    for a, b in zip(ax, ay):
        if x[a] != y[b]:
            raise ShapeMismatch(f"contracted dimensions differ: axis {a} of x {x} has size "
                                f"{x[a]}, axis {b} of y {y} has size {y[b]}")
    return (tuple(d for i, d in enumerate(x) if i not in ax)
            + tuple(d for i, d in enumerate(y) if i not in ay))


def _tensordot_subscripts(nx: int, ny: int, ax, ay) -> str:
    """The einsum subscripts of ``tensordot`` with normalized axes ``ax``, ``ay``."""
    letters = iter(string.ascii_letters)
    xs = [next(letters) for _ in range(nx)]
    ys = [next(letters) for _ in range(ny)]
    for a, b in zip(ax, ay):
        ys[b] = xs[a]
    out = [c for i, c in enumerate(xs) if i not in ax] + \
        [c for i, c in enumerate(ys) if i not in ay]
    return f"{''.join(xs)},{''.join(ys)}->{''.join(out)}"


def _tensordot_grad(g, out, x, y, axes):
    nx, ny = len(_shape(x)), len(_shape(y))
    ax, ay = tensordot_axes(axes, nx, ny)
    gx, gy = einsum_grads(_tensordot_subscripts(nx, ny, ax, ay), g, [x, y])
    return gx, gy


def _tensordot_samples(dtype, rng):
    cases = [((2, 3, 4), (3, 4, 5), 2), ((3, 4), (4, 5), 1), ((2, 3), (4,), 0),
             ((3, 4, 5), (4, 3, 2), ([1, 0], [0, 1])), ((3, 4), (2, 4), ([-1], [-1])),
             ((3, 4), (4, 2), (1, 0)), ((0, 3), (3, 2), 1), ((2, 3), (2, 3), 2)]
    return [Sample((S.rand(rng, a, dtype), S.rand(rng, b, dtype), axes),
                   name=f"{a}.{b},axes={axes}") for a, b, axes in cases]


def _tensordot_onnx(g, x, y, axes=2):
    nx, ny = g.rank(x), g.rank(y)
    ax, ay = tensordot_axes(axes, nx, ny)
    return g.op("Einsum", [x, y], equation=_tensordot_subscripts(nx, ny, ax, ay))


defop("tensordot", "x, y, axes=2", tensors="x, y", shape_rule=_tensordot_shape,
      reference=_tensordot_reference, grad=_tensordot_grad, samples=_tensordot_samples,
      dtypes=FLOATS, tol="contraction", export={"onnx": OnnxOp("Einsum", _tensordot_onnx)},
      doc="""Tensor contraction over ``axes`` with ``np.tensordot``'s rules.

      ``axes`` is an int ``n`` (the last ``n`` axes of ``x`` with the first ``n`` of ``y``)
      or a pair ``(axes_x, axes_y)`` of ints or sequences. The result has the free axes of
      ``x`` then the free axes of ``y``.""")


# ---- dot ----------------------------------------------------------------------------------
def _dot_shape(x, y):
    x, y = tuple(x), tuple(y)
    if not x or not y:
        return broadcast_shapes(x, y)
    ky = y[0] if len(y) == 1 else y[-2]
    if x[-1] != ky:
        raise ShapeMismatch(f"inner dimensions differ: x {x} and y {y} (last dimension of x "
                            f"is {x[-1]}, {'only' if len(y) == 1 else 'second-to-last'} "
                            f"dimension of y is {ky})")
    if len(y) == 1:
        return x[:-1]
    return x[:-1] + y[:-2] + y[-1:]


def _dot_impl(x, y):
    nx, ny = len(_shape(x)), len(_shape(y))
    if nx == 0 or ny == 0:
        return ops.multiply(x, y)
    if ny == 1:
        return ops.tensordot(x, y, ([nx - 1], [0]))
    return ops.tensordot(x, y, ([nx - 1], [ny - 2]))


def _dot_samples(dtype, rng):
    pairs = [((3, 4), (4, 5)), ((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((), (3, 4)),
             ((2, 3), ()), ((2, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,)), ((0, 3), (3, 2))]
    return [Sample((S.rand(rng, a, dtype), S.rand(rng, b, dtype)), name=f"{a}.{b}")
            for a, b in pairs]


defop("dot", "x, y", tensors="x, y", kind=COMPOSITE, impl=_dot_impl, shape_rule=_dot_shape,
      reference=_dot_reference, samples=_dot_samples, dtypes=FLOATS + LINALG_INT_DTYPES,
      tol="contraction",
      doc="""Dot product with ``np.dot``'s rules in every rank.

      Scalars multiply; 1-D with 1-D is the inner product; 2-D with 2-D the matrix product;
      otherwise the last axis of ``x`` is contracted with the only axis of a 1-D ``y`` or the
      second-to-last axis of ``y``. Use ``matmul`` for batched products.""")


# ---- einsum -------------------------------------------------------------------------------
@lru_cache(maxsize=2048)
def einsum_expand(subscripts: str, shapes: tuple) -> tuple[tuple[str, ...], str, tuple]:
    """Rewrite einsum ``subscripts`` for operands of ``shapes`` into explicit letters.

    Returns ``(terms, output, out_shape)``: one letter string per operand, the output letters
    (explicit even where ``subscripts`` had an implicit output), and the output shape. The
    ellipsis becomes letters of its own; a dimension of size 1 that broadcasts against a
    larger size of the same letter gets a fresh letter (summed over its one element), so the
    rewritten subscripts need no broadcasting.

    Raises:
        ShapeMismatch: the subscripts do not fit the operands.
    """
    s = subscripts.replace(" ", "")
    if s.count("->") > 1:
        raise ShapeMismatch(f"expected at most one '->' in subscripts {subscripts!r}")
    explicit = "->" in s
    lhs, rhs = s.split("->") if explicit else (s, None)
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeMismatch(f"subscripts {subscripts!r} name {len(terms)} operand(s), "
                            f"got {len(shapes)}")
    for t in terms + ([rhs] if explicit else []):
        rest = t.replace("...", "", 1)
        if not all(c in string.ascii_letters for c in rest):
            raise ShapeMismatch(f"expected letters and at most one '...' per term in "
                                f"subscripts {subscripts!r}, got term {t!r}")
    used = set(c for c in s if c in string.ascii_letters)
    pool = (c for c in string.ascii_letters if c not in used)

    def fresh():
        try:
            return next(pool)
        except StopIteration:
            raise ShapeMismatch(f"too many dimensions for einsum {subscripts!r} "
                                "(52 letters at most)") from None

    n_ell = []
    for k, (t, shp) in enumerate(zip(terms, shapes)):
        if "..." in t:
            pre, post = t.split("...")
            n = len(shp) - len(pre) - len(post)
            if n < 0:
                raise ShapeMismatch(f"operand {k} has shape {tuple(shp)}, fewer dimensions "
                                    f"than term {t!r} names")
        else:
            n = 0
            if len(t) != len(shp):
                raise ShapeMismatch(f"operand {k} has shape {tuple(shp)} but term {t!r} names "
                                    f"{len(t)} dimension(s)")
        n_ell.append(n)
    max_ell = max(n_ell, default=0)
    ell = [fresh() for _ in range(max_ell)]
    expanded = []
    for t, n in zip(terms, n_ell):
        if "..." in t:
            pre, post = t.split("...")
            expanded.append(list(pre) + ell[max_ell - n:] + list(post))
        else:
            expanded.append(list(t))
    sizes: dict[str, int] = {}
    for k, (letters, shp) in enumerate(zip(expanded, shapes)):
        for c, d in zip(letters, shp):
            d = int(d)
            have = sizes.get(c)
            if have is None or have == 1:
                sizes[c] = d
            elif d != 1 and d != have:
                what = "an ellipsis dimension" if c in ell else f"dimension {c!r}"
                listed = ", ".join(str(tuple(p)) for p in shapes)
                raise ShapeMismatch(f"{what} has size {have} in one operand and {d} in "
                                    f"operand {k} (shapes {listed})")
    for letters, shp in zip(expanded, shapes):
        for j, (c, d) in enumerate(zip(letters, shp)):
            if int(d) == 1 and sizes[c] != 1:
                f = fresh()
                sizes[f] = 1
                letters[j] = f
    if explicit:
        if "..." in rhs:
            pre, post = rhs.split("...")
            out = list(pre) + ell + list(post)
        else:
            if any(sizes[c] != 1 for c in ell):
                raise ShapeMismatch(f"the output of {subscripts!r} must contain '...' since "
                                    "the operands have ellipsis dimensions")
            out = list(rhs)
        inputs = set(c for t in terms for c in t)
        for c in out:
            if c in ell:
                continue
            if c not in inputs:
                raise ShapeMismatch(f"output letter {c!r} of {subscripts!r} is in no input")
        if len(set(out)) != len(out):
            raise ShapeMismatch(f"repeated output letter in {subscripts!r}")
    else:
        counts: dict[str, int] = {}
        for t in terms:
            for c in t.replace("...", ""):
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1)
    out_shape = tuple(sizes[c] for c in out)
    return tuple("".join(t) for t in expanded), "".join(out), out_shape


@lru_cache(maxsize=4096)
def einsum_expression(subscripts: str, shapes: tuple) -> str:
    """:func:`einsum_expand` as one explicit expression, ``"ab,bc->ac"`` (cached per
    subscripts and shapes: kernels ask on every call)."""
    terms, out, _ = einsum_expand(subscripts, shapes)
    return ",".join(terms) + "->" + out


def _einsum_shape(subscripts, operands):
    _, _, shape = einsum_expand(subscripts, tuple(tuple(s) for s in operands))
    return shape


def _const(values: np.ndarray, like):
    return ops.convert_to_tensor(values, _dtype_name(like))


def einsum_grads(subscripts: str, g, operands) -> list:
    """Cotangents of every operand of ``einsum(subscripts, *operands)`` given ``g``.

    Each is itself an einsum of ``g`` and the other operands; repeated letters of an operand
    (diagonals) are restored with identity matrices, letters summed away by the forward pass
    are restored by a ones tensor. Results have exactly the operands' shapes.
    """
    shapes = tuple(_shape(a) for a in operands)
    terms, out, _ = einsum_expand(subscripts, shapes)
    used = set("".join(terms) + out)
    spare = [c for c in string.ascii_letters if c not in used]
    grads = []
    for k, (term, shp) in enumerate(zip(terms, shapes)):
        if not _dt.is_float(_dtype_name(operands[k])):
            grads.append(None)
            continue
        in_terms = [out] + [t for j, t in enumerate(terms) if j != k]
        in_vals = [g] + [a for j, a in enumerate(operands) if j != k]
        target, seen, free = [], {}, list(spare)
        for c, d in zip(term, shp):
            if c in seen:  # repeated letter: a diagonal, restored with an identity
                if not free:
                    raise ShapeMismatch(f"too many dimensions for the gradient of {subscripts!r}")
                f = free.pop(0)
                in_terms.append(c + f)
                in_vals.append(_const(np.eye(int(d)), g))
                target.append(f)
            else:
                seen[c] = int(d)
                target.append(c)
        present = set("".join(in_terms))
        missing = [c for c in target if c not in present]
        if missing:  # summed away by the forward pass: broadcast back with ones
            in_terms.append("".join(missing))
            in_vals.append(_const(np.ones([seen[c] for c in missing]), g))
        grads.append(ops.einsum(",".join(in_terms) + "->" + "".join(target), *in_vals))
    return grads


def _einsum_grad(g, out, subscripts, operands):
    return (einsum_grads(subscripts, g, list(operands)),)


def _einsum_samples(dtype, rng):
    cases = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
             ("ij,jk", [(3, 4), (4, 2)]), ("ii->i", [(3, 3)]), ("ii", [(4, 4)]),
             ("i,j->ij", [(3,), (4,)]), ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]),
             ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("ijk,ikl,lm->jm",
                                                           [(2, 3, 4), (2, 4, 5), (5, 3)]),
             ("ij,ij->ij", [(1, 3), (2, 3)]), ("i...,i->...", [(3, 2, 2), (3,)]),
             ("ij,jk->ik", [(0, 3), (3, 2)]), ("bi,bi->b", [(4, 5), (4, 5)])]
    return [Sample((subs, [S.rand(rng, s, dtype) for s in shapes]), name=subs)
            for subs, shapes in cases]


def _einsum_onnx(g, subscripts, operands):
    """ONNX ``Einsum`` with the explicit equation of :func:`einsum_expression` (ONNX
    broadcasts neither letters nor ellipses); an unknown batch size counts as not 1."""
    shapes = tuple(tuple(2**31 - 1 if d is None else d for d in g.shape(x)) for x in operands)
    return g.op("Einsum", list(operands), equation=einsum_expression(str(subscripts), shapes))


defop("einsum", "subscripts, *operands", tensors=(), tensor_lists="operands",
      shape_rule=_einsum_shape, reference=_einsum_reference, grad=_einsum_grad,
      samples=_einsum_samples, dtypes=FLOATS, tol="contraction",
      export={"onnx": OnnxOp("Einsum", _einsum_onnx)},
      doc="""Einstein summation with ``np.einsum``'s rules.

      Supports an explicit output (``"ij,jk->ik"``) or an implicit one (``"ij,jk"``: letters
      seen once, in alphabetical order, after any ellipsis), the ``...`` ellipsis, repeated
      letters (``"ii->i"``, ``"ii"``) and size-1 broadcasting of a letter.""")
