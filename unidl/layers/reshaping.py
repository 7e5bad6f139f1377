"""Reshaping layers: ZeroPadding1D/2D, UpSampling1D/2D, Cropping1D/2D, RepeatVector.

Image layers take ``data_format`` (``"channels_last"``, the default: ``(batch, rows, cols,
channels)``; or ``"channels_first"``: ``(batch, channels, rows, cols)``).

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     x = ops.ones((1, 2, 2, 3))
    ...     ops.shape(layers.ZeroPadding2D(1)(x)), ops.shape(layers.UpSampling2D(2)(x))
    ((1, 4, 4, 3), (1, 4, 4, 3))
"""

from __future__ import annotations

import math

from unidl import ops
from unidl.layers.base import Layer, LayerError
from unidl.layers.core import check_ndim, normalize_data_format, normalize_tuple

__all__ = ["ZeroPadding1D", "ZeroPadding2D", "UpSampling1D", "UpSampling2D", "Cropping1D",
           "Cropping2D", "RepeatVector"]


def _pairs(value, n: int, name: str) -> tuple:
    """An int, ``n`` ints (symmetric) or ``n`` pairs as ``n`` ``(before, after)`` pairs."""
    if isinstance(value, int):
        out = ((value, value),) * n
    else:
        items = tuple(value)
        if n == 1 and len(items) == 2 and all(isinstance(v, int) for v in items):
            out = (tuple(items),)
        elif len(items) == n and all(isinstance(v, int) for v in items):
            out = tuple((v, v) for v in items)
        elif len(items) == n and all(len(tuple(v)) == 2 for v in items):
            out = tuple((int(a), int(b)) for a, b in items)
        else:
            raise ValueError(f"expected {name} as an int, {n} ints or {n} pairs of ints, got "
                             f"{value!r}")
    if any(v < 0 for p in out for v in p):
        raise ValueError(f"expected non-negative {name}, got {value!r}")
    return out


def _spatial_axes(data_format: str, n: int) -> tuple:
    return tuple(range(2, 2 + n)) if data_format == "channels_first" else tuple(range(1, 1 + n))


class _ZeroPadding(Layer):
    _rank = 0

    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pairs(padding, self._rank, "padding")
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs):
        check_ndim(self, inputs, ndim=self._rank + 2)
        width = [(0, 0)] * (self._rank + 2)
        for a, p in zip(_spatial_axes(self.data_format, self._rank), self.padding):
            width[a] = p
        return ops.pad(inputs, tuple(width))

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for a, (b, e) in zip(_spatial_axes(self.data_format, self._rank), self.padding):
            out[a] = None if out[a] is None else out[a] + b + e
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding,
                "data_format": self.data_format}


class ZeroPadding1D(_ZeroPadding):
    """Pad the steps axis of ``(batch, steps, features)`` with zeros.

    Args:
        padding: an int (both sides) or ``(before, after)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.ZeroPadding1D((1, 2))(ops.ones((2, 3, 4))))
        (2, 6, 4)
    """

    _rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding2D(_ZeroPadding):
    """Pad rows and columns of an image batch with zeros.

    Args:
        padding: an int (all sides), ``(rows, cols)`` (symmetric), or
            ``((top, bottom), (left, right))``.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.ZeroPadding2D(((1, 0), (2, 2)))(ops.ones((1, 3, 3, 2))))
        (1, 4, 7, 2)
    """

    _rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


def _repeat_axis(layer, x, axis: int, times: int):
    """Repeat each element of ``x`` ``times`` times along ``axis`` (nearest upsampling)."""
    if times == 1:
        return x
    shape = tuple(ops.shape(x))
    tail = shape[axis + 1:]
    if any(d is None for d in shape[1:axis + 1] + tail):
        raise LayerError(layer, f"cannot upsample inputs of shape {shape}: only the batch "
                                "dimension may be unknown")
    lead = shape[:axis] if shape[0] is not None else (-1,) + shape[1:axis]
    y = ops.reshape(x, lead + (shape[axis], 1) + tail)
    reps = (1,) * (axis + 1) + (times,) + (1,) * len(tail)
    y = ops.tile(y, reps)
    return ops.reshape(y, lead + (shape[axis] * times,) + tail)


def _bilinear_axis(x, axis: int, times: int):
    """Linear interpolation along ``axis`` by an integer factor, half-pixel centres and
    edge clamping (``tf.image.resize(..., "bilinear")``, Keras)."""
    if times == 1:
        return x
    n = tuple(ops.shape(x))[axis]
    lo, hi, frac = [], [], []
    for o in range(n * times):
        src = (o + 0.5) / times - 0.5
        f = math.floor(src)
        lo.append(min(max(f, 0), n - 1))
        hi.append(min(max(f + 1, 0), n - 1))
        frac.append(src - f)
    dtype = ops.dtype(x)
    bshape = [1] * len(ops.shape(x))
    bshape[axis] = n * times
    w = ops.reshape(ops.convert_to_tensor(frac, dtype), tuple(bshape))
    a = ops.take(x, ops.convert_to_tensor(lo, "int32"), axis=axis)
    b = ops.take(x, ops.convert_to_tensor(hi, "int32"), axis=axis)
    return ops.add(a, ops.multiply(ops.subtract(b, a), w))


class UpSampling1D(Layer):
    """Repeat each step of ``(batch, steps, features)`` ``size`` times.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     x = ops.reshape(ops.arange(2.0), (1, 2, 1))
        ...     ops.to_numpy(layers.UpSampling1D(2)(x)).ravel().tolist()
        [0.0, 0.0, 1.0, 1.0]
    """

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 1, "size", allow_zero=False)[0]

    def call(self, inputs):
        check_ndim(self, inputs, ndim=3)
        return _repeat_axis(self, inputs, 1, self.size)

    def compute_output_shape(self, input_shape):
        s = input_shape[1]
        return (input_shape[0], None if s is None else s * self.size, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling2D(Layer):
    """Upsample rows and columns by integer factors.

    Args:
        size: an int or ``(rows, cols)`` factors.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        interpolation: ``"nearest"`` (repeat) or ``"bilinear"`` (half-pixel centres, as
            ``tf.image.resize``).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     x = ops.reshape(ops.arange(4.0), (1, 2, 2, 1))
        ...     ops.to_numpy(layers.UpSampling2D(2)(x))[0, :, :, 0].tolist()[0]
        [0.0, 0.0, 1.0, 1.0]
    """

    _INTERPOLATIONS = ("nearest", "bilinear")

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 2, "size", allow_zero=False)
        self.data_format = normalize_data_format(data_format)
        interpolation = str(interpolation).lower()
        if interpolation not in self._INTERPOLATIONS:
            raise ValueError(f"UpSampling2D: expected interpolation in {self._INTERPOLATIONS}, "
                             f"got {interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs):
        shape = check_ndim(self, inputs, ndim=4)
        x = inputs
        axes = _spatial_axes(self.data_format, 2)
        if self.interpolation == "nearest":
            for a, k in zip(axes, self.size):
                x = _repeat_axis(self, x, a, k)
            return x
        if any(shape[a] is None for a in axes):
            raise LayerError(self, f"bilinear upsampling needs known rows and columns, got "
                                   f"shape {shape}")
        if ops.dtype(x) not in ("float16", "bfloat16", "float32", "float64"):
            x = ops.cast(x, self.dtype)
        for a, k in zip(axes, self.size):
            x = _bilinear_axis(x, a, k)
        return x

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for a, k in zip(_spatial_axes(self.data_format, 2), self.size):
            out[a] = None if out[a] is None else out[a] * k
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}


class _Cropping(Layer):
    _rank = 0

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pairs(cropping, self._rank, "cropping")
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs):
        shape = check_ndim(self, inputs, ndim=self._rank + 2)
        x = inputs
        for a, (b, e) in zip(_spatial_axes(self.data_format, self._rank), self.cropping):
            if not b and not e:
                continue
            n = shape[a]
            if n is None:
                raise LayerError(self, f"cannot crop an axis of unknown size, got shape {shape}")
            if b + e >= n:
                raise LayerError(self, f"cropping {(b, e)} leaves nothing of axis {a} of "
                                       f"inputs of shape {shape}")
            x = ops.split(x, [b, n - e], axis=a)[1]
        return x

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for a, (b, e) in zip(_spatial_axes(self.data_format, self._rank), self.cropping):
            out[a] = None if out[a] is None else out[a] - b - e
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping,
                "data_format": self.data_format}


class Cropping1D(_Cropping):
    """Remove steps from both ends of ``(batch, steps, features)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.Cropping1D((1, 2))(ops.ones((2, 6, 3))))
        (2, 3, 3)
    """

    _rank = 1

    def __init__(self, cropping=(1, 1), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping2D(_Cropping):
    """Remove rows and columns at the borders of an image batch.

    Args:
        cropping: an int (all sides), ``(rows, cols)`` (symmetric), or
            ``((top, bottom), (left, right))``.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.Cropping2D(((1, 0), (1, 1)))(ops.ones((1, 4, 4, 2))))
        (1, 3, 2, 2)
    """

    _rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class RepeatVector(Layer):
    """Repeat ``(batch, features)`` inputs ``n`` times: ``(batch, n, features)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.RepeatVector(3)(ops.ones((2, 4))))
        (2, 3, 4)
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        n = int(n)
        if n < 1:
            raise ValueError(f"RepeatVector: expected n >= 1, got {n}")
        self.n = n

    def call(self, inputs):
        check_ndim(self, inputs, ndim=2)
        return ops.tile(ops.expand_dims(inputs, 1), (1, self.n, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}
