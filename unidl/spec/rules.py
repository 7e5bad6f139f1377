"""Reusable shape rules for op specs.

A shape rule takes the op's canonical arguments with every tensor replaced by its shape
tuple and returns the output shape (a tuple; a list of tuples for multi-output ops). It
raises :class:`~unidl.spec.core.ShapeMismatch` with a sentence saying what it expected.
"""

from __future__ import annotations

import numpy as np

from unidl.spec.core import ShapeMismatch

__all__ = [
    "same_shape",
    "broadcast_shapes",
    "broadcast_rule",
    "reduce_shape",
    "reduce_rule",
    "normalize_axis",
    "normalize_axes",
    "shape_from_reference",
]


def same_shape(x, *rest):
    """Output has the shape of the first argument."""
    return tuple(x)


def broadcast_shapes(*shapes) -> tuple:
    """NumPy broadcasting of ``shapes``; raises ShapeMismatch naming them."""
    shapes = [tuple(s) for s in shapes if s is not None]
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        dims = {s[i] for s in shapes if len(s) >= -i and s[i] != 1}
        if len(dims) > 1:
            raise ShapeMismatch(
                "shapes " + " and ".join(str(s) for s in shapes) + " cannot be broadcast "
                f"(dimension {i} differs: {sorted(dims)})"
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def broadcast_rule(*tensor_args):
    """Shape rule for n-ary elementwise ops whose leading arguments are all tensors."""
    return broadcast_shapes(*[a for a in tensor_args if isinstance(a, tuple)])


def normalize_axis(axis: int, ndim: int) -> int:
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ShapeMismatch(f"axis {axis} is out of range for a tensor of rank {ndim}")
    return axis % max(ndim, 1)


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, int or sequence, negatives allowed) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    axes = tuple(sorted(normalize_axis(a, ndim) for a in axis))
    if len(set(axes)) != len(axes):
        raise ShapeMismatch(f"repeated axis in {axis}")
    return axes


def reduce_shape(shape, axis, keepdims: bool) -> tuple:
    axes = normalize_axes(axis, len(shape))
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def reduce_rule(x, axis=None, keepdims=False, *rest):
    return reduce_shape(x, axis, keepdims)


def shape_from_reference(reference):
    """A shape rule that runs ``reference`` on zero-strided dummy arrays (no memory per element).

    Used for ops whose shape logic is the same as their reference implementation; any error
    the reference raises is turned into a ShapeMismatch carrying its message.
    """

    def rule(*args):
        dummy = [
            np.broadcast_to(np.zeros((), np.float64), a) if isinstance(a, tuple) else a
            for a in args
        ]
        try:
            out = reference(*dummy)
        except Exception as exc:  # the reference's message is the explanation
            raise ShapeMismatch(str(exc)) from None
        if isinstance(out, (list, tuple)):
            return [tuple(np.shape(o)) for o in out]
        return tuple(np.shape(out))

    return rule
