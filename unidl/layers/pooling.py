"""Pooling layers: max/average pooling over 1-D and 2-D windows, and global pooling.

Arguments and defaults follow Keras 3 (``pool_size``, ``strides=None`` meaning
``pool_size``, ``padding="valid"``, ``data_format`` channels-last by default); Keras' short
aliases (``MaxPool2D``, ``AvgPool1D``, ``GlobalAvgPool2D``...) are provided too.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     y = layers.MaxPooling2D()(ops.ones((2, 6, 6, 3)))
    ...     tuple(ops.shape(y)), tuple(ops.shape(layers.GlobalAveragePooling2D()(y)))
    ((2, 3, 3, 3), (2, 3))
"""

from __future__ import annotations

from unidl import ops
from unidl.layers.base import Layer, LayerError
from unidl.layers.convolutional import (
    input_shape_of,
    layout_text,
    normalize_data_format,
    normalize_padding,
    normalize_tuple,
    shape_text,
)

__all__ = [
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "MaxPool1D",
    "MaxPool2D",
    "AvgPool1D",
    "AvgPool2D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
]


def _check_rank(layer, inputs, rank):
    shape = input_shape_of(inputs)
    if len(shape) != rank + 2:
        raise LayerError(layer, f"expected a {rank + 2}-D input "
                                f"{layout_text(rank, layer.data_format)}, got shape "
                                f"{shape_text(shape)}")
    return shape


class _Pooling(Layer):
    rank = 2
    _op = "max_pool"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(self, pool_size, self.rank, "pool_size")
        self.strides = self.pool_size if strides is None else \
            normalize_tuple(self, strides, self.rank, "strides")
        self.padding = normalize_padding(self, padding)
        self.data_format = normalize_data_format(self, data_format)

    def call(self, inputs):
        _check_rank(self, inputs, self.rank)
        fn = getattr(ops, self._op)
        return fn(inputs, self.pool_size, self.strides, self.padding, self.data_format)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                      data_format=self.data_format)
        return config


class MaxPooling1D(_Pooling):
    """Max pooling over windows of ``pool_size`` steps (Keras ``MaxPooling1D``).

    Args:
        pool_size: window length (default 2).
        strides: step (default: ``pool_size``).
        padding: ``"valid"`` or ``"same"`` (TensorFlow's rule; padded cells never win).
        data_format: ``"channels_last"`` (default, ``(batch, steps, channels)``) or
            ``"channels_first"``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.MaxPooling1D(2)(ops.reshape(ops.arange(6.0), (1, 6, 1)))
        ...     ops.to_numpy(y).ravel().tolist()
        [1.0, 3.0, 5.0]
    """

    rank = 1
    _op = "max_pool"


class MaxPooling2D(_Pooling):
    """Max pooling over ``pool_size`` windows (Keras ``MaxPooling2D``).

    Args:
        pool_size: window size (int or pair; default 2).
        strides: step (default: ``pool_size``).
        padding: ``"valid"`` or ``"same"`` (TensorFlow's rule; padded cells never win).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.MaxPooling2D((2, 2), padding="same")(ops.ones((1, 5, 5, 2)))
        ...     tuple(ops.shape(y))
        (1, 3, 3, 2)
    """

    rank = 2
    _op = "max_pool"


class AveragePooling1D(_Pooling):
    """Average pooling over windows of ``pool_size`` steps (Keras ``AveragePooling1D``).
    Arguments as :class:`MaxPooling1D`; with ``"same"`` padding each window averages only its
    real cells (as TensorFlow/Keras).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.AveragePooling1D(2)(ops.reshape(ops.arange(4.0), (1, 4, 1)))
        ...     ops.to_numpy(y).ravel().tolist()
        [0.5, 2.5]
    """

    rank = 1
    _op = "avg_pool"


class AveragePooling2D(_Pooling):
    """Average pooling over ``pool_size`` windows (Keras ``AveragePooling2D``). Arguments as
    :class:`MaxPooling2D`; with ``"same"`` padding each window averages only its real cells.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.AveragePooling2D(2)(ops.ones((2, 4, 4, 3)))
        ...     tuple(ops.shape(y))
        (2, 2, 2, 3)
    """

    rank = 2
    _op = "avg_pool"


class _GlobalPooling(Layer):
    rank = 2
    _op = "global_avg_pool"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(self, data_format)
        self.keepdims = bool(keepdims)

    def call(self, inputs):
        _check_rank(self, inputs, self.rank)
        return getattr(ops, self._op)(inputs, self.data_format, self.keepdims)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over the steps axis: ``(batch, steps, channels)`` -> ``(batch, channels)``
    (Keras ``GlobalAveragePooling1D``).

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        keepdims: keep the steps axis with size 1.

    ``call(inputs, mask=None)``: a ``(batch, steps)`` mask (bool or 0/1) averages only the
    unmasked steps, as Keras does.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     x = ops.reshape(ops.arange(6.0), (1, 3, 2))
        ...     ops.to_numpy(layers.GlobalAveragePooling1D()(x)).tolist()
        [[2.0, 3.0]]
    """

    rank = 1
    _op = "global_avg_pool"

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        _check_rank(self, inputs, self.rank)
        steps_axis = 1 if self.data_format == "channels_last" else 2
        m = ops.cast(mask, ops.dtype(inputs))
        m = ops.expand_dims(m, 2 if self.data_format == "channels_last" else 1)
        total = ops.sum(ops.multiply(inputs, m), axis=steps_axis, keepdims=self.keepdims)
        count = ops.sum(m, axis=steps_axis, keepdims=self.keepdims)
        return ops.divide(total, count)


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over height and width: ``(batch, h, w, channels)`` -> ``(batch, channels)``
    (Keras ``GlobalAveragePooling2D``).

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        keepdims: keep the spatial axes with size 1.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.GlobalAveragePooling2D(keepdims=True)(ops.ones((2, 4, 4, 3)))
        ...     tuple(ops.shape(y))
        (2, 1, 1, 3)
    """

    rank = 2
    _op = "global_avg_pool"


class GlobalMaxPooling1D(_GlobalPooling):
    """Maximum over the steps axis (Keras ``GlobalMaxPooling1D``). Arguments as
    :class:`GlobalAveragePooling1D` (no mask).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     x = ops.reshape(ops.arange(6.0), (1, 3, 2))
        ...     ops.to_numpy(layers.GlobalMaxPooling1D()(x)).tolist()
        [[4.0, 5.0]]
    """

    rank = 1
    _op = "global_max_pool"


class GlobalMaxPooling2D(_GlobalPooling):
    """Maximum over height and width (Keras ``GlobalMaxPooling2D``). Arguments as
    :class:`GlobalAveragePooling2D`.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.GlobalMaxPooling2D()(ops.ones((2, 4, 4, 3)))
        ...     tuple(ops.shape(y))
        (2, 3)
    """

    rank = 2
    _op = "global_max_pool"


# Keras aliases
MaxPool1D = MaxPooling1D
MaxPool2D = MaxPooling2D
AvgPool1D = AveragePooling1D
AvgPool2D = AveragePooling2D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
