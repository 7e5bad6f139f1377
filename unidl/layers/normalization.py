"""Normalization layers: BatchNormalization and LayerNormalization (Keras 3 semantics).

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     bn = layers.BatchNormalization()
    ...     y = bn(ops.ones((4, 3)), training=True)
    ...     [w.name for w in bn.weights]
    ['batch_normalization/gamma', 'batch_normalization/beta', 'batch_normalization/moving_mean', 'batch_normalization/moving_variance']
"""  # noqa: E501

from __future__ import annotations

from unidl import dtypes as _dt
from unidl import initializers as _initializers
from unidl import ops
from unidl import regularizers as _regularizers
from unidl.distribute.strategy import active_engine
from unidl.layers.base import Layer, LayerError
from unidl.layers.core import autocast, check_ndim, serialize_initializer, serialize_regularizer

__all__ = ["BatchNormalization", "LayerNormalization"]

_HALF = ("float16", "bfloat16")


def _norm_axis(layer, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise LayerError(layer, f"axis {axis} is out of range for inputs of rank {ndim}")
    return axis % ndim


class BatchNormalization(Layer):
    """Normalize with the batch's statistics while training, with moving averages otherwise.

    Training (``training=True``): ``y = gamma * (x - mean_b) / sqrt(var_b + epsilon) + beta``
    with the mean and *biased* variance of the batch over every axis but ``axis``, and the
    moving statistics are updated as ``moving = momentum * moving + (1 - momentum) * batch``
    (the biased batch variance for the moving variance, as Keras 3). Inference
    (``training`` None or False, or a layer set ``trainable = False``) uses
    ``moving_mean`` and ``moving_variance``. float16/bfloat16 inputs are normalized in
    float32.

    Weights, in order: ``gamma`` (if ``scale``), ``beta`` (if ``center``), then the
    non-trainable ``moving_mean`` and ``moving_variance``.

    Args:
        axis: the feature (channel) axis, default -1 (channels-last).
        momentum: moving-average momentum.
        epsilon: added to the variance.
        center, scale: whether to learn ``beta`` / ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint: as Keras.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     bn = layers.BatchNormalization(momentum=0.5)
        ...     _ = bn(ops.convert_to_tensor([[1.0], [3.0]]), training=True)
        ...     bn.moving_mean.numpy().tolist(), bn.moving_variance.numpy().tolist()
        ([1.0], [1.0])
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ValueError(f"BatchNormalization: expected an int axis, got {axis!r}")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        self.beta_regularizer = _regularizers.get(beta_regularizer)
        self.gamma_regularizer = _regularizers.get(gamma_regularizer)
        self.beta_constraint = beta_constraint
        self.gamma_constraint = gamma_constraint
        # (statistics over every data-parallel worker's batch; one process: its own batch)
        self.synchronized = bool(synchronized)
        self.gamma = self.beta = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        if ndim < 1:
            raise LayerError(self, f"expected inputs of rank >= 1, got shape {input_shape}")
        ax = _norm_axis(self, self.axis, ndim)
        dim = input_shape[ax]
        if dim is None:
            raise LayerError(self, f"the size of axis {self.axis} must be known, got shape "
                                   f"{input_shape}")
        self._ndim, self._axis, self._dim = ndim, ax, int(dim)
        self._reduce = tuple(i for i in range(ndim) if i != ax)
        shape = (self._dim,)
        if self.scale:
            self.gamma = self.add_weight(shape, initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint, name="gamma")
        if self.center:
            self.beta = self.add_weight(shape, initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint, name="beta")
        self.moving_mean = self.add_weight(shape, initializer=self.moving_mean_initializer,
                                           trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape,
                                               initializer=self.moving_variance_initializer,
                                               trainable=False, name="moving_variance")
        self.built = True

    def _check(self, inputs):
        shape = check_ndim(self, inputs, ndim=self._ndim)
        d = shape[self._axis]
        if d is not None and d != self._dim:
            raise LayerError(self, f"expected inputs with {self._dim} features on axis "
                                   f"{self.axis}, got shape {shape}")

    def _update(self, mean, variance):
        m = self.momentum
        for var, stat in ((self.moving_mean, mean), (self.moving_variance, variance)):
            stat = ops.stop_gradient(stat)
            if ops.dtype(stat) != var.dtype:
                stat = ops.cast(stat, var.dtype)
            new = ops.add(ops.multiply(ops.stop_gradient(var), m), ops.multiply(stat, 1.0 - m))
            var.assign(ops.stop_gradient(new))

    def call(self, inputs, training=None):
        self._check(inputs)
        x = autocast(self, inputs)
        out_dtype = ops.dtype(x)
        if out_dtype in _HALF:
            x = ops.cast(x, "float32")
        if training and self.trainable:
            engine = active_engine() if self.synchronized else None
            if engine is None:
                mean = ops.mean(x, self._reduce)
                variance = ops.var(x, self._reduce)
            else:
                mean, variance = _synced_moments(x, self._reduce, engine)
            self._update(mean, variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        y = ops.batch_norm(x, mean, variance, self.beta, self.gamma, self.epsilon, self._axis)
        if ops.dtype(y) != out_dtype:
            y = ops.cast(y, out_dtype)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": serialize_initializer(self.beta_initializer),
                "gamma_initializer": serialize_initializer(self.gamma_initializer),
                "moving_mean_initializer": serialize_initializer(self.moving_mean_initializer),
                "moving_variance_initializer":
                    serialize_initializer(self.moving_variance_initializer),
                "beta_regularizer": serialize_regularizer(self.beta_regularizer),
                "gamma_regularizer": serialize_regularizer(self.gamma_regularizer),
                "beta_constraint": self.beta_constraint,
                "gamma_constraint": self.gamma_constraint,
                "synchronized": self.synchronized}


def _synced_moments(x, axes, engine):
    """The mean and biased variance of ``x`` over ``axes`` and over every data-parallel
    worker's batch (two all-reduces: the sums and counts, then the squared deviations from
    the global mean), differentiable through the workers."""
    count = 1
    for axis in axes:
        count *= ops.shape(x)[axis]
    total, n = engine.all_reduce([ops.sum(x, axes),
                                  ops.convert_to_tensor(float(count), ops.dtype(x))], "sum")
    mean = ops.divide(total, n)
    deviation = ops.subtract(x, ops.reshape(mean, _keep_dims(ops.shape(x), axes)))
    (squares,) = engine.all_reduce([ops.sum(ops.multiply(deviation, deviation), axes)], "sum")
    return mean, ops.divide(squares, n)


def _keep_dims(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


class LayerNormalization(Layer):
    """Normalize each example over ``axis`` (default: the last) with its own mean and biased
    variance: ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``.

    ``gamma`` and ``beta`` have the shape of the normalized axes (in increasing axis order).

    Args:
        axis: an int or a sequence of ints.
        epsilon: added to the variance.
        center, scale: whether to learn ``beta`` / ``gamma``.
        beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint: as Keras.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ln = layers.LayerNormalization()
        ...     y = ops.to_numpy(ln(ops.convert_to_tensor([[1.0, 3.0]])))
        ...     [round(float(v), 4) for v in y[0]]
        [-0.9995, 0.9995]
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, int):
            self.axis = axis
        else:
            self.axis = tuple(int(a) for a in axis)
            if not self.axis:
                raise ValueError("LayerNormalization: expected at least one axis")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.beta_regularizer = _regularizers.get(beta_regularizer)
        self.gamma_regularizer = _regularizers.get(gamma_regularizer)
        self.beta_constraint = beta_constraint
        self.gamma_constraint = gamma_constraint
        self.gamma = self.beta = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        axes = (self.axis,) if isinstance(self.axis, int) else self.axis
        norm = sorted({_norm_axis(self, a, ndim) for a in axes})
        if len(norm) != len(axes):
            raise LayerError(self, f"repeated axis in {self.axis}")
        shape = tuple(input_shape[a] for a in norm)
        if any(d is None for d in shape):
            raise LayerError(self, f"the normalized axes {self.axis} must have known sizes, "
                                   f"got shape {input_shape}")
        self._ndim, self._axes, self._shape = ndim, tuple(norm), tuple(int(d) for d in shape)
        if self.scale:
            self.gamma = self.add_weight(self._shape, initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint, name="gamma")
        if self.center:
            self.beta = self.add_weight(self._shape, initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint, name="beta")
        self.built = True

    def call(self, inputs):
        shape = check_ndim(self, inputs, ndim=self._ndim)
        got = tuple(shape[a] for a in self._axes)
        if any(g is not None and g != w for g, w in zip(got, self._shape)):
            raise LayerError(self, f"expected sizes {self._shape} on axes {self._axes}, got "
                                   f"inputs of shape {shape}")
        x = autocast(self, inputs)
        if not _dt.is_float(ops.dtype(x)):
            x = ops.cast(x, _dt.DEFAULT_FLOAT)
        axis = self._axes[0] if len(self._axes) == 1 else self._axes
        y = ops.layer_norm(x, self.gamma, self.beta, axis, self.epsilon)
        dtype = ops.dtype(x)
        return y if ops.dtype(y) == dtype else ops.cast(y, dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": serialize_initializer(self.beta_initializer),
                "gamma_initializer": serialize_initializer(self.gamma_initializer),
                "beta_regularizer": serialize_regularizer(self.beta_regularizer),
                "gamma_regularizer": serialize_regularizer(self.gamma_regularizer),
                "beta_constraint": self.beta_constraint,
                "gamma_constraint": self.gamma_constraint}
