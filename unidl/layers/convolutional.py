"""Convolution layers: ``Conv1D``, ``Conv2D``, their transposes, depthwise and separable ones.

Arguments, defaults and weight layouts follow Keras 3: inputs are channels-last unless
``data_format="channels_first"``; a ``Conv2D`` kernel is ``(kh, kw, in_channels / groups,
filters)``, a ``Conv2DTranspose`` kernel ``(kh, kw, filters, in_channels)``, a depthwise kernel
``(kh, kw, in_channels, depth_multiplier)`` and a separable layer's pointwise kernel
``(1, 1, in_channels * depth_multiplier, filters)``. Every layer computes with the fused
``unidl.ops`` convolutions, so it runs (and trains) on every backend.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     conv = layers.Conv2D(4, 3, padding="same", activation="relu")
    ...     tuple(ops.shape(conv(ops.ones((2, 8, 8, 3)))))
    (2, 8, 8, 4)
"""

from __future__ import annotations

import numbers

from unidl import ops
from unidl.layers.base import Layer, LayerError

__all__ = [
    "Conv1D",
    "Conv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Convolution1D",
    "Convolution2D",
    "Convolution1DTranspose",
    "Convolution2DTranspose",
    "SeparableConvolution1D",
    "SeparableConvolution2D",
]

_SPATIAL_NAMES = {1: ("width",), 2: ("height", "width")}


# ---- helpers shared by the layer modules (conv, pooling, attention) -------------------------
def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and \
        type(v).__name__ != "bool_"


def normalize_tuple(layer, value, n: int, what: str, allow_zero: bool = False) -> tuple:
    """An int or ``n`` ints -> a tuple of ``n`` ints (LayerError naming ``layer`` otherwise)."""
    if _is_int(value):
        out = (int(value),) * n
    else:
        try:
            out = tuple(value)
        except TypeError:
            out = None
        if out is None or len(out) != n or not all(_is_int(v) for v in out):
            raise LayerError(layer, f"expected {what} to be an int or a tuple of {n} ints, "
                                    f"got {value!r}")
        out = tuple(int(v) for v in out)
    low = 0 if allow_zero else 1
    if any(v < low for v in out):
        kind = "non-negative" if allow_zero else "positive"
        raise LayerError(layer, f"expected {what} to be {kind}, got {value!r}")
    return out


def normalize_data_format(layer, data_format) -> str:
    if data_format is None:
        return "channels_last"
    df = str(data_format).lower()
    if df not in ("channels_last", "channels_first"):
        raise LayerError(layer, "expected data_format 'channels_last' or 'channels_first', "
                                f"got {data_format!r}")
    return df


def normalize_padding(layer, padding, allowed=("valid", "same")) -> str:
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise LayerError(layer, f"expected padding to be one of {list(allowed)}, "
                                f"got {padding!r}")
    return padding.lower()


def layout_text(rank: int, data_format: str) -> str:
    """``(batch, height, width, channels)`` style description of an input layout."""
    spatial = ", ".join(_SPATIAL_NAMES.get(rank, tuple(f"dim{i}" for i in range(rank))))
    if data_format == "channels_first":
        return f"(batch, channels, {spatial})"
    return f"(batch, {spatial}, channels)"


def shape_text(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


_FALLBACK_ACTIVATIONS = {
    "relu": lambda x: ops.relu(x),
    "relu6": lambda x: ops.relu6(x),
    "sigmoid": lambda x: ops.sigmoid(x),
    "hard_sigmoid": lambda x: ops.hard_sigmoid(x),
    "tanh": lambda x: ops.tanh(x),
    "softmax": lambda x: ops.softmax(x, axis=-1),
    "log_softmax": lambda x: ops.log_softmax(x, axis=-1),
    "elu": lambda x: ops.elu(x),
    "selu": lambda x: ops.selu(x),
    "gelu": lambda x: ops.gelu(x, approximate=False),
    "softplus": lambda x: ops.softplus(x),
    "silu": lambda x: ops.silu(x),
    "swish": lambda x: ops.silu(x),
    "leaky_relu": lambda x: ops.leaky_relu(x),
    "exponential": lambda x: ops.exp(x),
}


def get_activation(activation):
    """``None`` / ``"linear"`` -> None; a name -> the activation function; a callable as is.

    Uses :mod:`unidl.activations` where it exists (and a small built-in table otherwise).
    """
    if activation is None:
        return None
    if callable(activation):
        return activation
    if isinstance(activation, str):
        if activation.lower() in ("linear", "none"):
            return None
        try:
            from unidl import activations
        except ImportError:
            activations = None
        if activations is not None and hasattr(activations, "get"):
            fn = activations.get(activation)
            if fn is not None:
                return fn
        fn = _FALLBACK_ACTIVATIONS.get(activation.lower())
        if fn is not None:
            return fn
    raise ValueError(f"unknown activation {activation!r}")


def get_regularizer(regularizer):
    """A regularizer (object, callable or name) as a callable, or None."""
    if regularizer is None:
        return None
    from unidl import regularizers

    return regularizers.get(regularizer)


def input_shape_of(inputs):
    shape = getattr(inputs, "shape", None)
    if shape is not None and not callable(shape):
        try:
            return tuple(None if d is None else int(d) for d in shape)
        except TypeError:
            pass
    return tuple(ops.shape(inputs))


# ---- convolution base ---------------------------------------------------------------------
class _BaseConv(Layer):
    """Shared argument handling, input checks, bias and activation of the conv layers."""

    rank = 2
    _kernel_arg = "kernel"
    _allowed_padding = ("valid", "same")

    def _init_common(self, kernel_size, strides, padding, data_format, dilation_rate,
                     activation, use_bias, bias_initializer, bias_regularizer,
                     activity_regularizer, bias_constraint):
        self.kernel_size = normalize_tuple(self, kernel_size, self.rank, "kernel_size")
        self.strides = normalize_tuple(self, strides, self.rank, "strides")
        self.dilation_rate = normalize_tuple(self, dilation_rate, self.rank, "dilation_rate")
        self.padding = normalize_padding(self, padding, self._allowed_padding)
        self.data_format = normalize_data_format(self, data_format)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise LayerError(self, "strides > 1 is not supported together with "
                                   f"dilation_rate > 1; got strides={self.strides} and "
                                   f"dilation_rate={self.dilation_rate}")
        self._activation_arg = activation
        self.activation = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = bias_initializer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer  # (applied by Layer.__call__)
        self.bias_constraint = bias_constraint
        self._in_channels = None

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _check_input(self, shape) -> int | None:
        """Check rank (and channel count once built); return the channel count."""
        shape = tuple(shape)
        if len(shape) != self.rank + 2:
            raise LayerError(self, f"expected a {self.rank + 2}-D input "
                                   f"{layout_text(self.rank, self.data_format)}, got shape "
                                   f"{shape_text(shape)}")
        channels = shape[self._channel_axis]
        if self._in_channels is not None and channels is not None and \
                int(channels) != self._in_channels:
            raise LayerError(self, f"expected an input with {self._in_channels} channels "
                                   f"(axis {self._channel_axis % len(shape)}), got shape "
                                   f"{shape_text(shape)}")
        return None if channels is None else int(channels)

    def _build_channels(self, input_shape) -> int:
        channels = self._check_input(input_shape)
        if channels is None:
            raise LayerError(self, "the channel dimension of the input must be known to build "
                                   f"the layer, got shape {shape_text(input_shape)}")
        self._in_channels = channels
        return channels

    def _make_bias(self, size):
        if not self.use_bias:
            self.bias = None
            return
        self.bias = self.add_weight((size,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint, name="bias")

    def _finish(self, y, bias_added=False):
        if self.bias is not None and not bias_added:
            b = self.bias
            if self.data_format == "channels_first":
                b = ops.reshape(b, (-1,) + (1,) * self.rank)
            y = ops.add(y, b)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def _common_config(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": self._activation_arg,
            "use_bias": self.use_bias,
            "bias_initializer": self.bias_initializer,
            "bias_regularizer": self.bias_regularizer,
            "activity_regularizer": self.activity_regularizer,
            "bias_constraint": self.bias_constraint,
        }

    # expanding a 1-D layer to the 2-D op (used by the transposed/depthwise/separable 1-D layers)
    def _expand_1d(self, x):
        return ops.expand_dims(x, 1 if self.data_format == "channels_last" else 2)

    def _squeeze_1d(self, y):
        return ops.squeeze(y, 1 if self.data_format == "channels_last" else 2)


# ---- Conv1D / Conv2D ----------------------------------------------------------------------
class _Conv(_BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not _is_int(filters) or filters <= 0:
            raise LayerError(self, f"expected filters to be a positive int, got {filters!r}")
        if not _is_int(groups) or groups <= 0:
            raise LayerError(self, f"expected groups to be a positive int, got {groups!r}")
        self.filters = int(filters)
        self.groups = int(groups)
        if self.filters % self.groups:
            raise LayerError(self, f"filters ({self.filters}) must be divisible by groups "
                                   f"({self.groups})")
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias, bias_initializer, bias_regularizer,
                          activity_regularizer, bias_constraint)
        self.kernel_initializer = kernel_initializer
        self.kernel_regularizer = kernel_regularizer
        self.kernel_constraint = kernel_constraint

    def build(self, input_shape):
        channels = self._build_channels(input_shape)
        if channels % self.groups:
            raise LayerError(self, f"the input's {channels} channels must be divisible by "
                                   f"groups={self.groups} (input shape "
                                   f"{shape_text(input_shape)})")
        self.kernel = self.add_weight(self.kernel_size + (channels // self.groups, self.filters),
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self._make_bias(self.filters)
        self.built = True

    def _op_padding(self):
        if self.padding == "causal":
            return ((self.dilation_rate[0] * (self.kernel_size[0] - 1), 0),)
        return self.padding

    def call(self, inputs):
        self._check_input(input_shape_of(inputs))
        conv = ops.conv1d if self.rank == 1 else ops.conv2d
        y = conv(inputs, self.kernel, self.strides, self._op_padding(), self.data_format,
                 self.dilation_rate, self.groups, self.bias)  # (the bias added in the conv)
        return self._finish(y, bias_added=True)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, groups=self.groups, **self._common_config(),
                      kernel_initializer=self.kernel_initializer,
                      kernel_regularizer=self.kernel_regularizer,
                      kernel_constraint=self.kernel_constraint)
        return config


class Conv1D(_Conv):
    """1-D convolution over ``(batch, steps, channels)`` inputs (Keras ``Conv1D``).

    Args:
        filters: number of output channels.
        kernel_size: window length (int or 1-tuple).
        strides: step (int or 1-tuple).
        padding: ``"valid"``, ``"same"`` (TensorFlow's rule) or ``"causal"`` (left padding by
            ``dilation_rate * (kernel_size - 1)``, so output ``t`` sees inputs up to ``t``).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: spacing of the kernel taps.
        groups: channel groups convolved independently.
        activation: applied after the bias (name or callable; default: none).
        use_bias: add a ``(filters,)`` bias.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: as in Keras.

    The kernel is ``(kernel_size, in_channels / groups, filters)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.Conv1D(5, 3, padding="causal")(ops.ones((2, 7, 4)))
        ...     tuple(ops.shape(y))
        (2, 7, 5)
    """

    rank = 1
    _allowed_padding = ("valid", "same", "causal")


class Conv2D(_Conv):
    """2-D convolution over ``(batch, height, width, channels)`` inputs (Keras ``Conv2D``).

    Args:
        filters: number of output channels.
        kernel_size: window size (int or pair).
        strides: step (int or pair).
        padding: ``"valid"`` or ``"same"`` (TensorFlow's rule: output ``ceil(n / stride)``).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: spacing of the kernel taps (int or pair).
        groups: channel groups convolved independently.
        activation: applied after the bias (name or callable; default: none).
        use_bias: add a ``(filters,)`` bias.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: as in Keras.

    The kernel is ``(kh, kw, in_channels / groups, filters)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.Conv2D(8, (3, 3), strides=2)(ops.ones((1, 9, 9, 3)))
        ...     tuple(ops.shape(y))
        (1, 4, 4, 8)
    """

    rank = 2


# ---- transposed convolutions --------------------------------------------------------------
class _ConvTranspose(_BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not _is_int(filters) or filters <= 0:
            raise LayerError(self, f"expected filters to be a positive int, got {filters!r}")
        self.filters = int(filters)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias, bias_initializer, bias_regularizer,
                          activity_regularizer, bias_constraint)
        if output_padding is not None:
            output_padding = normalize_tuple(self, output_padding, self.rank, "output_padding",
                                             allow_zero=True)
            for p, s in zip(output_padding, self.strides):
                if p >= s:
                    raise LayerError(self, f"output_padding {output_padding} must be smaller "
                                           f"than the strides {self.strides}")
        self.output_padding = output_padding
        self.kernel_initializer = kernel_initializer
        self.kernel_regularizer = kernel_regularizer
        self.kernel_constraint = kernel_constraint

    def build(self, input_shape):
        channels = self._build_channels(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (self.filters, channels),
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self._make_bias(self.filters)
        self.built = True

    def call(self, inputs):
        self._check_input(input_shape_of(inputs))
        if self.rank == 2:
            y = ops.conv2d_transpose(inputs, self.kernel, self.strides, self.padding,
                                     self.output_padding, self.data_format, self.dilation_rate)
        else:
            op = None if self.output_padding is None else (0,) + self.output_padding
            y = ops.conv2d_transpose(self._expand_1d(inputs), ops.expand_dims(self.kernel, 0),
                                     (1,) + self.strides, self.padding, op, self.data_format,
                                     (1,) + self.dilation_rate)
            y = self._squeeze_1d(y)
        return self._finish(y)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, **self._common_config(),
                      output_padding=self.output_padding,
                      kernel_initializer=self.kernel_initializer,
                      kernel_regularizer=self.kernel_regularizer,
                      kernel_constraint=self.kernel_constraint)
        return config


class Conv2DTranspose(_ConvTranspose):
    """Transposed 2-D convolution (Keras ``Conv2DTranspose``): the gradient of a ``Conv2D``
    with respect to its input, used to upsample.

    Args:
        filters: number of output channels.
        kernel_size, strides, padding, data_format, dilation_rate: as in :class:`Conv2D`.
        output_padding: extra rows/columns added at the end of the output (each below the
            stride); default None: Keras' output size ``n * s + max(k - s, 0)`` for ``"valid"``
            and ``n * s`` for ``"same"``.
        activation, use_bias, initializers, regularizers, constraints: as in Keras.

    The kernel is ``(kh, kw, filters, in_channels)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.Conv2DTranspose(3, 3, strides=2, padding="same")(ops.ones((1, 4, 5, 2)))
        ...     tuple(ops.shape(y))
        (1, 8, 10, 3)
    """

    rank = 2


class Conv1DTranspose(_ConvTranspose):
    """Transposed 1-D convolution (Keras ``Conv1DTranspose``); kernel
    ``(kernel_size, filters, in_channels)``. Arguments as :class:`Conv2DTranspose`.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.Conv1DTranspose(3, 4, strides=2)(ops.ones((2, 5, 2)))
        ...     tuple(ops.shape(y))
        (2, 12, 3)
    """

    rank = 1


# ---- depthwise convolutions ---------------------------------------------------------------
class _DepthwiseConv(_BaseConv):
    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not _is_int(depth_multiplier) or depth_multiplier <= 0:
            raise LayerError(self, "expected depth_multiplier to be a positive int, got "
                                   f"{depth_multiplier!r}")
        self.depth_multiplier = int(depth_multiplier)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias, bias_initializer, bias_regularizer,
                          activity_regularizer, bias_constraint)
        self.depthwise_initializer = depthwise_initializer
        self.depthwise_regularizer = depthwise_regularizer
        self.depthwise_constraint = depthwise_constraint

    def build(self, input_shape):
        channels = self._build_channels(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (channels, self.depth_multiplier),
                                      initializer=self.depthwise_initializer,
                                      regularizer=self.depthwise_regularizer,
                                      constraint=self.depthwise_constraint, name="kernel")
        self._make_bias(channels * self.depth_multiplier)
        self.built = True

    def call(self, inputs):
        self._check_input(input_shape_of(inputs))
        y = _depthwise(self, inputs, self.kernel)
        return self._finish(y)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(**self._common_config(), depth_multiplier=self.depth_multiplier,
                      depthwise_initializer=self.depthwise_initializer,
                      depthwise_regularizer=self.depthwise_regularizer,
                      depthwise_constraint=self.depthwise_constraint)
        return config


def _depthwise(layer, x, kernel):
    if layer.rank == 2:
        return ops.depthwise_conv2d(x, kernel, layer.strides, layer.padding, layer.data_format,
                                    layer.dilation_rate)
    y = ops.depthwise_conv2d(layer._expand_1d(x), ops.expand_dims(kernel, 0),
                             (1,) + layer.strides, layer.padding, layer.data_format,
                             (1,) + layer.dilation_rate)
    return layer._squeeze_1d(y)


class DepthwiseConv2D(_DepthwiseConv):
    """Depthwise 2-D convolution (Keras ``DepthwiseConv2D``): each input channel is convolved
    with its own ``depth_multiplier`` filters; output channel ``c * depth_multiplier + m``.

    Args:
        kernel_size, strides, padding, data_format, dilation_rate: as in :class:`Conv2D`.
        depth_multiplier: filters per input channel.
        activation, use_bias: as in :class:`Conv2D` (bias of ``in_channels * depth_multiplier``).
        depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer,
        activity_regularizer, depthwise_constraint, bias_constraint: as in Keras.

    The kernel is ``(kh, kw, in_channels, depth_multiplier)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.DepthwiseConv2D(3, depth_multiplier=2)(ops.ones((1, 5, 5, 3)))
        ...     tuple(ops.shape(y))
        (1, 3, 3, 6)
    """

    rank = 2


class DepthwiseConv1D(_DepthwiseConv):
    """Depthwise 1-D convolution (Keras ``DepthwiseConv1D``); kernel
    ``(kernel_size, in_channels, depth_multiplier)``. Arguments as :class:`DepthwiseConv2D`.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.DepthwiseConv1D(3, padding="same")(ops.ones((2, 6, 4)))
        ...     tuple(ops.shape(y))
        (2, 6, 4)
    """

    rank = 1


# ---- separable convolutions ---------------------------------------------------------------
class _SeparableConv(_BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not _is_int(filters) or filters <= 0:
            raise LayerError(self, f"expected filters to be a positive int, got {filters!r}")
        if not _is_int(depth_multiplier) or depth_multiplier <= 0:
            raise LayerError(self, "expected depth_multiplier to be a positive int, got "
                                   f"{depth_multiplier!r}")
        self.filters = int(filters)
        self.depth_multiplier = int(depth_multiplier)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias, bias_initializer, bias_regularizer,
                          activity_regularizer, bias_constraint)
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.depthwise_regularizer = depthwise_regularizer
        self.pointwise_regularizer = pointwise_regularizer
        self.depthwise_constraint = depthwise_constraint
        self.pointwise_constraint = pointwise_constraint

    def build(self, input_shape):
        channels = self._build_channels(input_shape)
        self.depthwise_kernel = self.add_weight(
            self.kernel_size + (channels, self.depth_multiplier),
            initializer=self.depthwise_initializer, regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint, name="depthwise_kernel")
        self.pointwise_kernel = self.add_weight(
            (1,) * self.rank + (channels * self.depth_multiplier, self.filters),
            initializer=self.pointwise_initializer, regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint, name="pointwise_kernel")
        self._make_bias(self.filters)
        self.built = True

    def call(self, inputs):
        self._check_input(input_shape_of(inputs))
        y = _depthwise(self, inputs, self.depthwise_kernel)
        conv = ops.conv1d if self.rank == 1 else ops.conv2d
        y = conv(y, self.pointwise_kernel, 1, "valid", self.data_format, 1, 1, self.bias)
        return self._finish(y, bias_added=True)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, **self._common_config(),
                      depth_multiplier=self.depth_multiplier,
                      depthwise_initializer=self.depthwise_initializer,
                      pointwise_initializer=self.pointwise_initializer,
                      depthwise_regularizer=self.depthwise_regularizer,
                      pointwise_regularizer=self.pointwise_regularizer,
                      depthwise_constraint=self.depthwise_constraint,
                      pointwise_constraint=self.pointwise_constraint)
        return config


class SeparableConv2D(_SeparableConv):
    """Depthwise-separable 2-D convolution (Keras ``SeparableConv2D``): a depthwise
    convolution (strides, padding and dilation apply here) followed by a 1x1 pointwise one.

    Args:
        filters: output channels of the pointwise step.
        kernel_size, strides, padding, data_format, dilation_rate: of the depthwise step.
        depth_multiplier: depthwise filters per input channel.
        activation, use_bias: applied after the pointwise step (bias of ``filters``).
        depthwise_*, pointwise_*, bias_* initializers/regularizers/constraints: as in Keras.

    Weights: ``depthwise_kernel`` ``(kh, kw, in_channels, depth_multiplier)``,
    ``pointwise_kernel`` ``(1, 1, in_channels * depth_multiplier, filters)``, ``bias``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     layer = layers.SeparableConv2D(4, 3, padding="same")
        ...     y = layer(ops.ones((1, 6, 6, 2)))
        ...     tuple(ops.shape(y)), layer.count_params()
        ((1, 6, 6, 4), 30)
    """

    rank = 2


class SeparableConv1D(_SeparableConv):
    """Depthwise-separable 1-D convolution (Keras ``SeparableConv1D``). Arguments as
    :class:`SeparableConv2D`; kernels ``(k, in_channels, depth_multiplier)`` and
    ``(1, in_channels * depth_multiplier, filters)``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.SeparableConv1D(4, 3)(ops.ones((2, 8, 3)))
        ...     tuple(ops.shape(y))
        (2, 6, 4)
    """

    rank = 1


# Keras aliases
Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution1DTranspose = Conv1DTranspose
Convolution2DTranspose = Conv2DTranspose
SeparableConvolution1D = SeparableConv1D
SeparableConvolution2D = SeparableConv2D
