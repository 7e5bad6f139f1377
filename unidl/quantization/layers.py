"""int8 layers: ``QuantizedDense``, ``QuantizedConv1D``, ``QuantizedConv2D``,
``QuantizedEmbedding``.

Weights are symmetric per output channel: ``kernel_scale[o] = max|w[..., o]| / 127`` and
``kernel = round_half_even(w / kernel_scale)`` in int8 ([-127, 127]). Activations are
asymmetric per tensor, uint8: with ``activation_mode="static"`` the scale and zero point come
from a calibration (stored as the weights ``input_scale`` and ``input_zero_point``); with
``"dynamic"`` they are computed from each batch (``ops.dynamic_quantize``, ONNX's
DynamicQuantizeLinear: one scale for the whole batch). The contraction accumulates exactly in
int32 (``ops.quantized_matmul`` / ``ops.quantized_conv2d``), then every float step is one
correctly rounded float32 operation::

    y = float32(acc) * (input_scale * kernel_scale) + bias      # then the activation

so the layers' outputs are bitwise equal on every backend (the activation, if it is not
piecewise linear, rounds as that backend's ``exp`` does).

Example:
    >>> import numpy as np
    >>> import unidl
    >>> from unidl.quantization import QuantizedDense
    >>> with unidl.use_backend("numpy"):
    ...     layer = QuantizedDense(2, activation_mode="dynamic")
    ...     y = layer(np.ones((3, 4), np.float32))
    ...     tuple(y.shape), layer.kernel.dtype
    ((3, 2), 'int8')
"""

from __future__ import annotations

import numpy as np

from unidl import activations as _activations
from unidl import ops
from unidl.layers.base import Layer, LayerError

__all__ = ["QuantizedDense", "QuantizedConv1D", "QuantizedConv2D", "QuantizedEmbedding",
           "ACTIVATION_MODES", "quantize_weights", "activation_qparams"]

ACTIVATION_MODES = ("static", "dynamic")


def quantize_weights(w, axis=-1):
    """``(q, scale)``: ``w`` quantized symmetrically per slice along ``axis`` (int8 in
    [-127, 127], float32 scales; an all-zero slice gets scale 1). Computed on the host, so
    every backend holds the same integers.

    Example:
        >>> q, s = quantize_weights(np.array([[1.0, -0.5], [-2.0, 0.25]]))
        >>> q.tolist(), s.tolist()
        ([[64, -127], [-127, 64]], [0.015748031437397003, 0.003937007859349251])
    """
    w = np.asarray(w, np.float32)
    a = axis % w.ndim
    others = tuple(i for i in range(w.ndim) if i != a)
    amax = np.max(np.abs(w), axis=others) if others else np.abs(w)
    scale = (amax / np.float32(127.0)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    shape = [1] * w.ndim
    shape[a] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def activation_qparams(low: float, high: float):
    """``(scale, zero_point)`` of uint8 for the range ``[low, high]`` widened to hold 0, as
    ``dynamic_quantize`` computes them (float32 steps; scale 1 for an empty range).

    Example:
        >>> s, z = activation_qparams(-1.0, 3.0)
        >>> float(s), int(z)
        (0.01568627543747425, 64)
    """
    lo = np.float32(min(float(low), 0.0))
    hi = np.float32(max(float(high), 0.0))
    scale = np.float32(1.0) if hi == lo else np.float32((hi - lo) / np.float32(255.0))
    zp = np.clip(np.rint(-(lo / scale)), 0, 255).astype(np.uint8)
    return np.float32(scale), zp


class _FromConfig:
    """``from_config``: the layer a :meth:`get_config` describes (its constructor's
    arguments), as Keras layers have it."""

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class _QuantizedBase(_FromConfig, Layer):
    """Activation quantization, the int32-to-float step, bias and activation."""

    def __init__(self, activation=None, use_bias=True, activation_mode="static", **kwargs):
        super().__init__(**kwargs)
        if activation_mode not in ACTIVATION_MODES:
            raise LayerError(self, f"expected activation_mode one of {ACTIVATION_MODES}, got "
                                   f"{activation_mode!r}")
        self.activation_mode = activation_mode
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.input_scale = self.input_zero_point = self.bias = None

    def _build_common(self, out_channels):
        self.kernel_scale = self.add_weight((out_channels,), "ones", trainable=False,
                                            dtype="float32", name="kernel_scale")
        if self.use_bias:
            self.bias = self.add_weight((out_channels,), "zeros", trainable=False,
                                        dtype="float32", name="bias")
        if self.activation_mode == "static":
            self.input_scale = self.add_weight((), "ones", trainable=False, dtype="float32",
                                               name="input_scale")
            self.input_zero_point = self.add_weight((), "zeros", trainable=False,
                                                    dtype="uint8", name="input_zero_point")

    def _quantize_input(self, x):
        """``(q, scale, zero_point)`` of the float32 input."""
        x = ops.cast(x, "float32") if ops.dtype(x) != "float32" else x
        if self.activation_mode == "dynamic":
            return ops.dynamic_quantize(x)
        return (ops.quantize(x, self.input_scale, self.input_zero_point, None, "uint8"),
                self.input_scale, self.input_zero_point)

    def _finish(self, acc, in_scale):
        y = ops.multiply(ops.cast(acc, "float32"), ops.multiply(in_scale, self.kernel_scale))
        if self.bias is not None:
            y = ops.add(y, self.bias)
        return self.activation(y) if self.activation is not None else y

    def get_config(self):
        return {**super().get_config(), "activation": _activations.serialize(self.activation),
                "use_bias": self.use_bias, "activation_mode": self.activation_mode}


class QuantizedDense(_QuantizedBase):
    """An int8 ``Dense``: ``activation(dequantized(quantize(x) @ kernel) + bias)``.

    Args:
        units: output size.
        activation: as ``Dense``'s.
        use_bias: whether it has a (float32) bias.
        activation_mode: ``"static"`` (calibrated ``input_scale``/``input_zero_point``) or
            ``"dynamic"`` (from each batch's range).

    Weights: ``kernel`` int8 ``(input_dim, units)``, ``kernel_scale`` float32 ``(units,)``,
    ``bias``, and in static mode ``input_scale`` (float32) and ``input_zero_point`` (uint8).
    Usually made by :func:`unidl.quantization.quantize` from a trained ``Dense``.
    """

    def __init__(self, units, activation=None, use_bias=True, activation_mode="static",
                 **kwargs):
        super().__init__(activation, use_bias, activation_mode, **kwargs)
        self.units = int(units)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise LayerError(self, f"the last dimension of the inputs must be known, got shape "
                                   f"{tuple(input_shape)}")
        self.input_dim = int(input_shape[-1])
        self.kernel = self.add_weight((self.input_dim, self.units), "zeros", trainable=False,
                                      dtype="int8", name="kernel")
        self._build_common(self.units)
        self.built = True

    def call(self, inputs):
        q, scale, zp = self._quantize_input(inputs)
        return self._finish(ops.quantized_matmul(q, self.kernel, zp, None), scale)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class QuantizedConv2D(_QuantizedBase):
    """An int8 ``Conv2D`` (channels-last, ``groups=1``): ``quantized_conv2d`` of the
    quantized input and the int8 kernel ``(kh, kw, in, filters)``, then as
    :class:`QuantizedDense`. Arguments as ``Conv2D``'s, plus ``activation_mode``."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 activation=None, use_bias=True, activation_mode="static", **kwargs):
        super().__init__(activation, use_bias, activation_mode, **kwargs)
        self.filters = int(filters)
        self.kernel_size = _tuple(kernel_size, self.rank)
        self.strides = _tuple(strides, self.rank)
        self.dilation_rate = _tuple(dilation_rate, self.rank)
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        if padding not in allowed:
            raise LayerError(self, f"expected padding one of {allowed}, got {padding!r}")
        self.padding = padding

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2 or input_shape[-1] is None:
            raise LayerError(self, f"expected a {self.rank + 2}-D channels-last input with a "
                                   f"known channel count, got shape {tuple(input_shape)}")
        self.kernel = self.add_weight(self.kernel_size + (int(input_shape[-1]), self.filters),
                                      "zeros", trainable=False, dtype="int8", name="kernel")
        self._build_common(self.filters)
        self.built = True

    def _conv(self, q, zp):
        return ops.quantized_conv2d(q, self.kernel, zp, None, self.strides, self.padding,
                                    self.dilation_rate)

    def call(self, inputs):
        q, scale, zp = self._quantize_input(inputs)
        return self._finish(self._conv(q, zp), scale)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "dilation_rate": list(self.dilation_rate)}


class QuantizedConv1D(QuantizedConv2D):
    """An int8 ``Conv1D`` (channels-last, ``groups=1``; ``"causal"`` padding too): the 2-D
    op on a height-1 image (``"causal"`` pads ``dilation * (k - 1)`` steps on the left, with
    the zero point, i.e. zeros after the shift)."""

    rank = 1

    def _conv(self, q, zp):
        k = ops.reshape(self.kernel, (1,) + tuple(ops.shape(self.kernel)))
        pad = self.padding
        if pad == "causal":
            pad = ((0, 0), (self.dilation_rate[0] * (self.kernel_size[0] - 1), 0))
        y = ops.quantized_conv2d(ops.expand_dims(q, 1), k, zp, None, (1,) + self.strides, pad,
                                 (1,) + self.dilation_rate)
        return ops.squeeze(y, 1)


class QuantizedEmbedding(_FromConfig, Layer):
    """An int8 ``Embedding``: rows quantized symmetrically, one scale per row
    (``embeddings_scale (input_dim,)``); a lookup returns ``float32(row) * row_scale``, one
    rounding per element."""

    def __init__(self, input_dim, output_dim, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape=None):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim), "zeros",
                                          trainable=False, dtype="int8", name="embeddings")
        self.embeddings_scale = self.add_weight((self.input_dim,), "ones", trainable=False,
                                                dtype="float32", name="embeddings_scale")
        self.built = True

    def call(self, inputs):
        idx = inputs if ops.dtype(inputs) in ("int32", "int64") else ops.cast(inputs, "int32")
        rows = ops.cast(ops.gather(self.embeddings, idx), "float32")
        return ops.multiply(rows, ops.expand_dims(ops.gather(self.embeddings_scale, idx), -1))

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim, "mask_zero": self.mask_zero}


def _tuple(v, n):
    return tuple(int(i) for i in v) if isinstance(v, (list, tuple)) else (int(v),) * n
