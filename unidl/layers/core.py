"""Core layers: Dense, Flatten, Reshape, Permute, Dropout, Activation, Identity, Embedding,
Lambda.

Every layer computes with :mod:`unidl.ops` only, so it runs on every backend (and inside
``tf.function``); arguments and defaults follow Keras 3.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     dense = layers.Dense(3, activation="relu")
    ...     y = dense(ops.ones((2, 4)))
    ...     ops.shape(y), [tuple(w.shape) for w in dense.weights]
    ((2, 3), [(4, 3), (3,)])
"""

from __future__ import annotations

import inspect
import math

from unidl import activations as _activations
from unidl import dtypes as _dt
from unidl import initializers as _initializers
from unidl import ops
from unidl import regularizers as _regularizers
from unidl.backend.state import current_backend as _current_backend
from unidl.layers.base import Layer, LayerError

__all__ = ["Dense", "Flatten", "Reshape", "Permute", "Dropout", "Activation", "Identity",
           "Embedding", "Lambda"]


# ---- helpers shared by the layer modules of this package ----------------------------------------
def shape_of(x) -> tuple:
    """The static shape of ``x`` (``None`` for dimensions unknown while tracing)."""
    return tuple(ops.shape(x))


def check_ndim(layer, x, ndim=None, min_ndim=None, what="inputs") -> tuple:
    """``x``'s shape, after checking its rank; raises LayerError naming ``layer``."""
    shape = shape_of(x)
    if ndim is not None and len(shape) != ndim:
        raise LayerError(layer, f"expected {what} of rank {ndim}, got shape {shape}")
    if min_ndim is not None and len(shape) < min_ndim:
        raise LayerError(layer, f"expected {what} of rank >= {min_ndim}, got shape {shape}")
    return shape


def autocast(layer, x):
    """``x`` cast to the layer's (float) compute dtype when it has another dtype (the
    compute dtype is the weights' dtype except under a mixed policy)."""
    dtype = layer.compute_dtype
    if ops.dtype(x) != dtype:
        return ops.cast(x, dtype)
    return x


def normalize_data_format(value) -> str:
    """``None`` -> ``"channels_last"``; checks the value otherwise."""
    if value is None:
        return "channels_last"
    v = str(value).lower()
    if v not in ("channels_last", "channels_first"):
        raise ValueError(f"expected data_format 'channels_last' or 'channels_first', got "
                         f"{value!r}")
    return v


def normalize_tuple(value, n: int, name: str, allow_zero=True) -> tuple:
    """An int or a sequence of ``n`` ints as a tuple of ``n`` ints."""
    if isinstance(value, int):
        out = (value,) * n
    else:
        try:
            out = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"expected {name} as an int or {n} ints, got {value!r}") from None
        if len(out) != n:
            raise ValueError(f"expected {name} as an int or {n} ints, got {value!r}")
    low = 0 if allow_zero else 1
    if any(v < low for v in out):
        raise ValueError(f"expected {name} >= {low}, got {value!r}")
    return out


def serialize_initializer(init):
    if isinstance(init, _initializers.Initializer):
        return _initializers.serialize(init)
    return init


def serialize_regularizer(reg):
    if isinstance(reg, _regularizers.Regularizer):
        return _regularizers.serialize(reg)
    return reg


def serialize_activation(fn):
    try:
        return _activations.serialize(fn)
    except ValueError:
        return fn


def _seed_stream(seed):
    """A per-layer seed generator (host NumPy PCG64), or None."""
    if seed is None:
        return None
    if not isinstance(seed, int):
        raise ValueError(f"expected an int seed or None, got {seed!r}")
    import numpy as np  # host-side seed bookkeeping only

    return np.random.default_rng(seed)


# ---- Dense --------------------------------------------------------------------------------------
class Dense(Layer):
    """A densely connected layer: ``activation(inputs @ kernel + bias)``.

    Inputs of rank > 2 are contracted on their last axis (``(batch, t, d) -> (batch, t,
    units)``). The kernel has shape ``(input_dim, units)`` as in Keras.

    Args:
        units: output size.
        activation: name or callable (default: linear).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializers (names, objects or callables).
        kernel_regularizer, bias_regularizer: penalties added to :attr:`losses`.
        activity_regularizer: penalty on the outputs, added to :attr:`losses` by the base
            ``Layer`` (:func:`~unidl.layers.base.activity_penalty`, the rule of every layer).
        kernel_constraint, bias_constraint: kept on the weights for the optimizer.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     d = layers.Dense(2, kernel_initializer="ones")
        ...     ops.to_numpy(d(ops.ones((1, 3)))).tolist()
        [[3.0, 3.0]]
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        units = int(units)
        if units <= 0:
            raise ValueError(f"Dense: expected a positive number of units, got {units}")
        self.units = units
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.activity_regularizer = _regularizers.get(activity_regularizer)
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise LayerError(self, f"expected inputs of rank >= 2, got shape {input_shape}")
        if input_shape[-1] is None:
            raise LayerError(self, f"the last dimension of the inputs must be known, got shape "
                                   f"{input_shape}")
        self.input_dim = int(input_shape[-1])
        self.kernel = self.add_weight((self.input_dim, self.units),
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        if self.use_bias:
            self.bias = self.add_weight((self.units,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint, name="bias")
        else:
            self.bias = None
        self.built = True

    def call(self, inputs):
        shape = check_ndim(self, inputs, min_ndim=2)
        if shape[-1] is not None and shape[-1] != self.input_dim:
            raise LayerError(self, f"expected inputs with last dimension {self.input_dim}, "
                                   f"got shape {shape}")
        x = autocast(self, inputs)
        return self.activation(ops.dense(x, self.kernel, self.bias))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": serialize_activation(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "bias_initializer": serialize_initializer(self.bias_initializer),
                "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
                "bias_regularizer": serialize_regularizer(self.bias_regularizer),
                "activity_regularizer": serialize_regularizer(self.activity_regularizer),
                "kernel_constraint": self.kernel_constraint,
                "bias_constraint": self.bias_constraint}


# ---- shape layers -------------------------------------------------------------------------------
class Flatten(Layer):
    """Flatten every axis but the batch axis: ``(batch, ...) -> (batch, prod(...))``.

    With ``data_format="channels_first"`` and inputs of rank >= 3, the channel axis is moved
    last first, so the element order matches a channels-last model (as Keras).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.Flatten()(ops.ones((2, 3, 4))))
        (2, 12)
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs):
        x = inputs
        shape = check_ndim(self, x, min_ndim=1)
        if self.data_format == "channels_first" and len(shape) >= 3:
            perm = (0,) + tuple(range(2, len(shape))) + (1,)
            x = ops.transpose(x, perm)
            shape = tuple(shape[i] for i in perm)
        rest = shape[1:]
        batch = shape[0]
        if any(d is None for d in rest):
            if batch is None:
                raise LayerError(self, f"cannot flatten inputs of shape {shape}: at most the "
                                       "batch dimension may be unknown")
            return ops.reshape(x, (batch, -1))
        n = math.prod(rest)
        return ops.reshape(x, (-1 if batch is None else batch, n))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else math.prod(rest)
        return (input_shape[0], n)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshape each example to ``target_shape`` (the batch axis is kept); one entry of
    ``target_shape`` may be ``-1``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.Reshape((3, -1))(ops.ones((2, 12))))
        (2, 3, 4)
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target = tuple(int(d) for d in target_shape)
        if sum(1 for d in target if d == -1) > 1:
            raise ValueError(f"Reshape: at most one -1 in target_shape, got {target}")
        if any(d < -1 for d in target):
            raise ValueError(f"Reshape: invalid target_shape {target}")
        self.target_shape = target

    def _resolve(self, rest):
        target = list(self.target_shape)
        if any(d is None for d in rest):
            return tuple(target)
        total = math.prod(rest)
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if known == 0 or total % known:
                raise LayerError(self, f"cannot reshape examples of shape {tuple(rest)} "
                                       f"({total} values) to {self.target_shape}")
            target[target.index(-1)] = total // known
        elif known != total:
            raise LayerError(self, f"cannot reshape examples of shape {tuple(rest)} ({total} "
                                   f"values) to {self.target_shape} ({known} values)")
        return tuple(target)

    def call(self, inputs):
        shape = check_ndim(self, inputs, min_ndim=1)
        target = self._resolve(shape[1:])
        if shape[0] is not None:
            return ops.reshape(inputs, (shape[0],) + target)
        if -1 in target:
            raise LayerError(self, f"cannot reshape inputs of shape {shape} to "
                                   f"{self.target_shape}: too many unknown dimensions")
        return ops.reshape(inputs, (-1,) + target)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(tuple(input_shape[1:]))

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Permute(Layer):
    """Permute the non-batch axes; ``dims`` counts from 1 (``(2, 1)`` swaps axes 1 and 2).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.Permute((2, 1))(ops.ones((5, 3, 4))))
        (5, 4, 3)
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute: expected a permutation of 1..{len(dims)}, got {dims}")
        self.dims = dims

    def call(self, inputs):
        check_ndim(self, inputs, ndim=len(self.dims) + 1)
        return ops.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


# ---- Dropout, Activation, Identity --------------------------------------------------------------
class Dropout(Layer):
    """Randomly zero a fraction ``rate`` of the inputs while training; scale the rest by
    ``1 / (1 - rate)``. Inference (``training`` None or False) returns the inputs.

    Masks: with ``seed`` the layer draws a reproducible stream of portable (host) masks; in
    deterministic mode (:func:`unidl.random.set_deterministic`) masks come from the portable
    host generator; otherwise each backend's own fast generator is used.

    Args:
        rate: fraction dropped, in ``[0, 1)``.
        noise_shape: shape of the mask, broadcast against the inputs (``None`` entries take
            the input's size), e.g. ``(batch, 1, features)`` to drop whole features.
        seed: int for a reproducible mask stream.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.Dropout(0.5, seed=1)(ops.ones((2, 4)), training=True)
        ...     sorted(set(ops.to_numpy(y).ravel().tolist())) in ([0.0, 2.0], [2.0], [0.0])
        True
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: expected a rate in [0, 1), got {rate}")
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(
            None if d is None else int(d) for d in noise_shape)
        self.seed = seed
        self._seeds = _seed_stream(seed)

    def _next_seed(self):
        from unidl import random as _random

        if _current_backend().is_tracing():
            return None  # (a host-drawn seed would be frozen into the traced step)
        if self._seeds is not None:
            return int(self._seeds.integers(0, 2**31 - 1))
        return _random.next_seed() if _random.is_deterministic() else None

    def _mask_base(self, x, shape):
        """Ones of the (resolved) noise shape, in x's float dtype."""
        ns = self.noise_shape
        if len(ns) != len(shape):
            raise LayerError(self, f"noise_shape {ns} does not match the rank of inputs of "
                                   f"shape {shape}")
        dtype = ops.dtype(x)
        if not _dt.is_float(dtype):
            dtype = _dt.DEFAULT_FLOAT
        resolved, reduced = [], []
        for i, (n, d) in enumerate(zip(ns, shape)):
            if n is None or (d is not None and n == d):
                resolved.append(d)
            elif n == 1:
                resolved.append(1)
                if d != 1:
                    reduced.append(i)
            else:
                raise LayerError(self, f"noise_shape {ns} is not broadcastable to inputs of "
                                       f"shape {shape}")
        if all(d is not None for d in resolved):
            return ops.ones(tuple(resolved), dtype=dtype)
        base = ops.stop_gradient(x)
        for a in reduced:
            base = ops.take(base, [0], axis=a)
        return ops.ones_like(base, dtype=dtype)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        seed = self._next_seed()
        if self.noise_shape is None:
            return ops.dropout(inputs, self.rate, seed, True)
        shape = shape_of(inputs)
        mask = ops.dropout(self._mask_base(inputs, shape), self.rate, seed, True)
        return ops.multiply(inputs, mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}


class Activation(Layer):
    """Apply an activation function (a name such as ``"relu"`` or a callable).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.to_numpy(layers.Activation("relu")(ops.convert_to_tensor([-1.0, 2.0])))
        array([0., 2.], dtype=float32)
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "activation": serialize_activation(self.activation)}


class Identity(Layer):
    """Return the inputs unchanged (a placeholder layer).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.shape(layers.Identity()(ops.ones((2, 3))))
        (2, 3)
    """

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


# ---- Embedding ----------------------------------------------------------------------------------
class Embedding(Layer):
    """Map integer indices in ``[0, input_dim)`` to rows of a trainable ``(input_dim,
    output_dim)`` matrix: ``(batch, ...) -> (batch, ..., output_dim)``.

    Args:
        input_dim: vocabulary size.
        output_dim: embedding size.
        embeddings_initializer: default ``"uniform"`` (uniform in ``[-0.05, 0.05]``, Keras).
        embeddings_regularizer, embeddings_constraint: as for Dense.
        mask_zero: index 0 is padding: :meth:`compute_mask` returns ``inputs != 0`` (recurrent
            layers use it to skip padded steps).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     emb = layers.Embedding(10, 4, mask_zero=True)
        ...     ids = ops.convert_to_tensor([[1, 2, 0]])
        ...     ops.shape(emb(ids)), ops.to_numpy(emb.compute_mask(ids)).tolist()
        ((1, 3, 4), [[True, True, False]])
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 activity_regularizer=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        if self.input_dim <= 0 or self.output_dim <= 0:
            raise ValueError(f"Embedding: expected positive input_dim and output_dim, got "
                             f"{input_dim} and {output_dim}")
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.embeddings_regularizer = _regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = embeddings_constraint
        self.activity_regularizer = _regularizers.get(activity_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape=None):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint,
                                          name="embeddings")
        self.built = True

    def call(self, inputs):
        idx = inputs
        dtype = ops.dtype(idx)
        if not _dt.is_int(dtype):
            idx = ops.cast(idx, "int32")
        return ops.gather(self.embeddings, idx)

    def compute_mask(self, inputs, mask=None):
        """``inputs != 0`` when ``mask_zero`` (a bool tensor of the inputs' shape), else None."""
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": serialize_initializer(self.embeddings_initializer),
                "embeddings_regularizer": serialize_regularizer(self.embeddings_regularizer),
                "embeddings_constraint": self.embeddings_constraint,
                "mask_zero": self.mask_zero,
                "activity_regularizer": serialize_regularizer(self.activity_regularizer)}


# ---- Lambda -------------------------------------------------------------------------------------
class Lambda(Layer):
    """Wrap a function of tensors as a layer (it must compute with :mod:`unidl.ops`).

    Args:
        function: ``function(inputs, **arguments)``; if it takes a ``training`` argument, the
            layer passes the training flag.
        output_shape: optional shape of one output example (or a function of the input
            shape), used by :meth:`compute_output_shape`.
        arguments: extra keyword arguments for ``function``.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     double = layers.Lambda(lambda x: ops.multiply(x, 2.0))
        ...     ops.to_numpy(double(ops.ones((1, 2)))).tolist()
        [[2.0, 2.0]]
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise ValueError(f"Lambda: expected a callable, got {function!r}")
        self.function = function
        self.output_shape = output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})
        try:
            params = inspect.signature(function).parameters
            self._fn_training = "training" in params or any(
                p.kind == p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            self._fn_training = False

    def call(self, inputs, training=None):
        kwargs = dict(self.arguments)
        if self._fn_training:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape):
        if self.output_shape is None:
            return None
        if callable(self.output_shape):
            return self.output_shape(input_shape)
        return (input_shape[0],) + tuple(self.output_shape)

    def get_config(self):
        return {**super().get_config(), "function": self.function,
                "output_shape": self.output_shape, "mask": self.mask,
                "arguments": self.arguments}
