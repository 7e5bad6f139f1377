"""Merge layers: combine a list of tensors (Add, Subtract, Multiply, Average, Maximum,
Minimum, Concatenate), plus the Keras-style functions ``add([a, b])`` ... .

Elementwise merges broadcast their inputs as NumPy does (shapes must agree, or be 1, per
axis); ``Concatenate`` needs equal shapes except along ``axis``.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     a, b = ops.ones((2, 3)), ops.full((2, 3), 2.0)
    ...     ops.to_numpy(layers.Add()([a, b]))[0].tolist()
    [3.0, 3.0, 3.0]
"""

from __future__ import annotations

from unidl import ops
from unidl.layers.base import Layer, LayerError

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate"]


def _is_shape(s) -> bool:
    return isinstance(s, (tuple, list)) and all(d is None or isinstance(d, int) for d in s)


def _shape_list(input_shape) -> list:
    """``build``'s argument as a list of shapes (one input arrives as a bare shape)."""
    if _is_shape(input_shape):
        return [tuple(input_shape)]
    return [tuple(s) for s in input_shape]


def _broadcast(layer, shapes):
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise LayerError(layer, f"cannot merge inputs of shapes {shapes}: their "
                                    "dimensions must be equal or 1 on every axis")
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


class _Merge(Layer):
    """Base of the elementwise merge layers; subclasses define :meth:`_merge`."""

    _exact_inputs = None

    def _as_list(self, inputs) -> list:
        if not isinstance(inputs, (list, tuple)):
            raise LayerError(self, f"expected a list of tensors, got {type(inputs).__name__}")
        inputs = list(inputs)
        n = self._exact_inputs
        if n is not None and len(inputs) != n:
            raise LayerError(self, f"expected a list of exactly {n} tensors, got {len(inputs)}")
        if not inputs:
            raise LayerError(self, "expected a list of at least 1 tensor, got an empty list")
        return inputs

    def build(self, input_shape):
        shapes = _shape_list(input_shape)
        n = self._exact_inputs
        if n is not None and len(shapes) != n:
            raise LayerError(self, f"expected a list of exactly {n} tensors, got "
                                   f"{len(shapes)}")
        _broadcast(self, shapes)
        self._num_inputs = len(shapes)
        self.built = True

    def call(self, inputs):
        xs = self._as_list(inputs)
        if len(xs) != self._num_inputs:
            raise LayerError(self, f"expected a list of {self._num_inputs} tensors (as when "
                                   f"built), got {len(xs)}")
        _broadcast(self, [tuple(ops.shape(x)) for x in xs])
        return self._merge(xs)

    def compute_output_shape(self, input_shape):
        return _broadcast(self, _shape_list(input_shape))

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        masks = [m for m in mask if m is not None]
        out = masks[0]
        for m in masks[1:]:
            out = ops.logical_and(out, m)
        return out


def _fold(fn, xs):
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


class Add(_Merge):
    """The sum of the inputs.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.to_numpy(layers.Add()([ops.ones((1, 2)), ops.ones((1, 2))])).tolist()
        [[2.0, 2.0]]
    """

    def _merge(self, xs):
        return _fold(ops.add, xs)


class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two inputs).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.to_numpy(layers.Subtract()([ops.ones((1, 2)), ops.ones((1, 2))])).tolist()
        [[0.0, 0.0]]
    """

    _exact_inputs = 2

    def _merge(self, xs):
        return ops.subtract(xs[0], xs[1])


class Multiply(_Merge):
    """The elementwise product of the inputs.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     x = ops.full((1, 2), 3.0)
        ...     ops.to_numpy(layers.Multiply()([x, x])).tolist()
        [[9.0, 9.0]]
    """

    def _merge(self, xs):
        return _fold(ops.multiply, xs)


class Average(_Merge):
    """The elementwise mean of the inputs.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     a, b = ops.zeros((1, 2)), ops.full((1, 2), 4.0)
        ...     ops.to_numpy(layers.Average()([a, b])).tolist()
        [[2.0, 2.0]]
    """

    def _merge(self, xs):
        return ops.multiply(_fold(ops.add, xs), 1.0 / len(xs))


class Maximum(_Merge):
    """The elementwise maximum of the inputs.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     a, b = ops.zeros((1, 2)), ops.convert_to_tensor([[-1.0, 1.0]])
        ...     ops.to_numpy(layers.Maximum()([a, b])).tolist()
        [[0.0, 1.0]]
    """

    def _merge(self, xs):
        return _fold(ops.maximum, xs)


class Minimum(_Merge):
    """The elementwise minimum of the inputs.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     a, b = ops.zeros((1, 2)), ops.convert_to_tensor([[-1.0, 1.0]])
        ...     ops.to_numpy(layers.Minimum()([a, b])).tolist()
        [[-1.0, 0.0]]
    """

    def _merge(self, xs):
        return _fold(ops.minimum, xs)


class Concatenate(Layer):
    """Join the inputs along ``axis`` (default: the last); other dimensions must agree.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.Concatenate()([ops.ones((2, 3)), ops.ones((2, 4))]))
        (2, 7)
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _check(self, shapes) -> tuple:
        if not shapes:
            raise LayerError(self, "expected a list of at least 1 tensor, got an empty list")
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise LayerError(self, f"expected inputs of one rank, got shapes {shapes}")
        if not -rank <= self.axis < rank:
            raise LayerError(self, f"axis {self.axis} is out of range for inputs of rank "
                                   f"{rank}")
        ax = self.axis % rank
        out = []
        for i in range(rank):
            dims = [s[i] for s in shapes]
            if i == ax:
                out.append(None if None in dims else sum(dims))
                continue
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                raise LayerError(self, f"cannot concatenate inputs of shapes {shapes} along "
                                       f"axis {self.axis}: the other dimensions must be equal")
            out.append(known.pop() if known else None)
        return tuple(out)

    def build(self, input_shape):
        self._check(_shape_list(input_shape))
        self.built = True

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise LayerError(self, f"expected a list of tensors, got {type(inputs).__name__}")
        xs = list(inputs)
        self._check([tuple(ops.shape(x)) for x in xs])
        if len(xs) == 1:
            return xs[0]
        return ops.concatenate(xs, self.axis)

    def compute_output_shape(self, input_shape):
        return self._check(_shape_list(input_shape))

    def compute_mask(self, inputs, mask=None):
        """Masks of (batch, steps) inputs: AND-ed when joining features (the last axis),
        concatenated when joining along another axis (missing masks count as all True)."""
        if mask is None or all(m is None for m in mask):
            return None
        rank = len(ops.shape(inputs[0]))
        if self.axis % rank == rank - 1:
            return _fold(ops.logical_and, [m for m in mask if m is not None])
        full = [ops.ones_like(ops.take(x, 0, axis=-1), dtype="bool") if m is None else m
                for x, m in zip(inputs, mask)]
        return ops.concatenate(full, self.axis % rank)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


# ---- functional interface (Keras style) ----------------------------------------------------------
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
