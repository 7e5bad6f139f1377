"""``MultiHeadAttention`` with Keras 3's arguments, semantics and weight layout.

The query, key and value projections have kernels ``(dim, num_heads, key_dim)`` (value:
``value_dim``) and biases ``(num_heads, key_dim)``; the output projection has a kernel
``(num_heads, value_dim, output_dim)`` and a bias ``(output_dim,)``. They are sublayers named
``query``, ``key``, ``value`` and ``attention_output`` (weights in that order, as in Keras),
so :meth:`get_weights` / :meth:`set_weights` exchange weights with a Keras layer directly.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     mha = layers.MultiHeadAttention(num_heads=2, key_dim=4)
    ...     x = ops.ones((3, 5, 8))
    ...     y, scores = mha(x, x, return_attention_scores=True)
    ...     tuple(ops.shape(y)), tuple(ops.shape(scores))
    ((3, 5, 8), (3, 2, 5, 5))
"""

from __future__ import annotations

import math
import string

from unidl import ops
from unidl.layers.base import Layer, LayerError, _is_symbolic
from unidl.layers.convolutional import (
    _is_int,
    get_activation,
    input_shape_of,
    shape_text,
)

__all__ = ["MultiHeadAttention"]

_LETTERS = string.ascii_lowercase


class _Projection(Layer):
    """A dense projection contracting the last ``bound_dims`` input axes with the first ones
    of a kernel ``(*input_shape[-bound_dims:], *output_dims)`` (Keras ``EinsumDense`` as used
    by ``MultiHeadAttention``); bias of shape ``output_dims``."""

    def __init__(self, output_dims, bound_dims=1, use_bias=True, activation=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.output_dims = tuple(int(d) for d in output_dims)
        self.bound_dims = int(bound_dims)
        self.use_bias = bool(use_bias)
        self._activation_arg = activation
        self.activation = get_activation(activation)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint

    def build(self, input_shape):
        bound = tuple(input_shape)[-self.bound_dims:]
        if len(input_shape) <= self.bound_dims or any(d is None for d in bound):
            raise LayerError(self, f"expected an input whose last {self.bound_dims} dim(s) "
                                   f"are known, got shape {shape_text(input_shape)}")
        self._bound_shape = tuple(int(d) for d in bound)
        self.kernel = self.add_weight(self._bound_shape + self.output_dims,
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(self.output_dims, initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint, name="bias")
        self.built = True

    def call(self, inputs):
        shape = input_shape_of(inputs)
        got = shape[-self.bound_dims:] if len(shape) > self.bound_dims else None
        if got is None or any(d is not None and d != w for d, w in zip(got, self._bound_shape)):
            raise LayerError(self, f"expected an input ending in {self._bound_shape}, got "
                                   f"shape {shape_text(shape)}")
        y = ops.tensordot(inputs, self.kernel, axes=self.bound_dims)
        if self.bias is not None:
            y = ops.add(y, self.bias)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(output_dims=self.output_dims, bound_dims=self.bound_dims,
                      use_bias=self.use_bias, activation=self._activation_arg,
                      kernel_initializer=self.kernel_initializer,
                      bias_initializer=self.bias_initializer,
                      kernel_regularizer=self.kernel_regularizer,
                      bias_regularizer=self.bias_regularizer,
                      activity_regularizer=self.activity_regularizer,
                      kernel_constraint=self.kernel_constraint,
                      bias_constraint=self.bias_constraint)
        return config


def _attention_equations(rank: int, attn_axes: tuple):
    """Einsum equations for scores and combination on projected tensors of ``rank`` axes
    ``(batch, <other dims>, <attention dims>, heads, channels)``.

    Returns ``(dot_product, combine, scores_rank)``: scores are laid out as
    ``(<batch dims incl. heads>, <query attention dims>, <key attention dims>)``.
    """
    target = _LETTERS[:rank]
    batch_dims = [i for i in range(rank) if i not in attn_axes and i != rank - 1]
    offset = rank
    source = ""
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += _LETTERS[offset]
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes]
                      + [source[i] for i in attn_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


def _large_negative(dtype: str) -> float:
    return -3e4 if dtype == "float16" else -1e9


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention (Keras 3 ``MultiHeadAttention``).

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (default ``key_dim``).
        dropout: dropout rate on the attention probabilities (training only).
        use_bias: whether the projections have biases.
        output_shape: size (int or tuple) of the output's last axes; default the query's
            last dimension.
        attention_axes: the axes attention runs over (default: every axis between the batch
            and the feature axis).
        sliding_window: if set, position ``i`` only attends to ``j`` with
            ``|i - j| < sliding_window``.
        use_gate: multiply the attention output by ``sigmoid`` of a gate projection of the
            query (Keras' ``use_gate``) before the output projection.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: passed to the projections.
        seed: if set, dropout masks come from a per-layer seeded stream (reproducible).

    Call: ``layer(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None,
    use_causal_mask=False)``. ``attention_mask`` is ``(B, T, S)`` (broadcastable; True / nonzero
    = may attend); ``query_mask`` ``(B, T)`` and ``value_mask`` / ``key_mask`` ``(B, S)`` are
    merged into it, and so is the causal mask. Masked scores get a large negative number
    before the softmax; rows with nothing to attend to get all-zero probabilities. Returns
    the output ``(B, T, output_dim)`` and, with ``return_attention_scores``, the attention
    probabilities ``(B, num_heads, T, S)`` (before dropout).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, output_shape=6)
        ...     q, v = ops.ones((2, 4, 5)), ops.ones((2, 7, 3))
        ...     tuple(ops.shape(mha(q, v, use_causal_mask=True)))
        (2, 4, 6)
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, sliding_window=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None,
                 **kwargs):
        kwargs.pop("flash_attention", None)  # accepted for Keras compatibility; no effect
        super().__init__(**kwargs)
        for what, v in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not _is_int(v) or v <= 0:
                raise LayerError(self, f"expected {what} to be a positive int, got {v!r}")
        if value_dim is not None and (not _is_int(value_dim) or value_dim <= 0):
            raise LayerError(self, f"expected value_dim to be a positive int or None, got "
                                   f"{value_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise LayerError(self, f"expected dropout in [0, 1), got {dropout!r}")
        if sliding_window is not None and (not _is_int(sliding_window) or sliding_window <= 0):
            raise LayerError(self, "expected sliding_window to be None or a positive int, got "
                                   f"{sliding_window!r}")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.value_dim = int(value_dim) if value_dim else self.key_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if output_shape is not None and output_shape != ():
            if _is_int(output_shape):
                output_shape = (int(output_shape),)
            try:
                output_shape = tuple(int(d) for d in output_shape)
            except (TypeError, ValueError):
                raise LayerError(self, "expected output_shape to be an int or a tuple of "
                                       f"ints, got {output_shape!r}") from None
        else:
            output_shape = None
        self.output_shape_arg = output_shape
        if _is_int(attention_axes):
            attention_axes = (int(attention_axes),)
        elif attention_axes is not None:
            attention_axes = tuple(int(a) for a in attention_axes)
        self.attention_axes = attention_axes
        self.sliding_window = sliding_window
        self.use_gate = bool(use_gate)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint
        self.seed = seed
        self._seed_stream = None
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self.key_dim))

    # -- building ---------------------------------------------------------------------------
    def _projection(self, output_dims, bound_dims, name, activation=None):
        return _Projection(output_dims, bound_dims=bound_dims, use_bias=self.use_bias,
                           activation=activation, kernel_initializer=self.kernel_initializer,
                           bias_initializer=self.bias_initializer,
                           kernel_regularizer=self.kernel_regularizer,
                           bias_regularizer=self.bias_regularizer,
                           activity_regularizer=self.activity_regularizer,
                           kernel_constraint=self.kernel_constraint,
                           bias_constraint=self.bias_constraint, dtype=self.dtype_policy,
                           name=f"{self.name}/{name}")

    def build(self, query_shape, value_shape=None, key_shape=None):
        """Create the projections for inputs of these shapes (value defaults to query, key
        to value)."""
        query_shape = tuple(query_shape)
        value_shape = query_shape if value_shape is None else tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if len(query_shape) < 3:
            raise LayerError(self, "expected a query of rank >= 3 (batch, <positions>, "
                                   f"features), got shape {shape_text(query_shape)}")
        if value_shape[1:-1] != key_shape[1:-1] or len(value_shape) != len(query_shape):
            raise LayerError(self, "expected value and key of the query's rank, equal in "
                                   f"every dim but the last; got query {shape_text(query_shape)}"
                                   f", value {shape_text(value_shape)}, key "
                                   f"{shape_text(key_shape)}")
        rank = len(query_shape) + 1  # projected: (batch, ..., heads, channels)
        self._query_dense = self._projection((self.num_heads, self.key_dim), 1, "query")
        self._query_dense.build(query_shape)
        self._query_dense.built = True
        self._key_dense = self._projection((self.num_heads, self.key_dim), 1, "key")
        self._key_dense.build(key_shape)
        self._key_dense.built = True
        self._gate_dense = None
        if self.use_gate:
            self._gate_dense = self._projection((self.num_heads, self.value_dim), 1, "gate",
                                                activation="sigmoid")
            self._gate_dense.build(query_shape)
            self._gate_dense.built = True
        self._value_dense = self._projection((self.num_heads, self.value_dim), 1, "value")
        self._value_dense.build(value_shape)
        self._value_dense.built = True
        out_dims = self.output_shape_arg or (query_shape[-1],)
        self._output_dense = self._projection(out_dims, 2, "attention_output")
        self._output_dense.build(query_shape[:-1] + (self.num_heads, self.value_dim))
        self._output_dense.built = True

        if self.attention_axes is None:
            axes = tuple(range(1, rank - 2))
        else:
            axes = tuple(a if a >= 0 else (rank - 1) + a for a in self.attention_axes)
            if any(a < 1 or a >= rank - 2 for a in axes):
                raise LayerError(self, f"attention_axes {self.attention_axes} out of range "
                                       f"for inputs of rank {rank - 1}")
        self._attn_axes = axes
        self._dot_eq, self._combine_eq, scores_rank = _attention_equations(rank, axes)
        self._norm_axes = tuple(range(scores_rank - len(axes), scores_rank))
        self._built_shapes = (query_shape, value_shape, key_shape)
        self.built = True

    @property
    def query_dense(self):
        return self._query_dense

    @property
    def key_dense(self):
        return self._key_dense

    @property
    def value_dense(self):
        return self._value_dense

    @property
    def output_dense(self):
        return self._output_dense

    # -- calling ----------------------------------------------------------------------------
    def __call__(self, query, value=None, key=None, **kwargs):
        if isinstance(query, dict) and value is None and "query" in query:
            packed = dict(query)
            query, value, key = packed.pop("query"), packed.pop("value"), packed.pop("key", None)
            kwargs.update(packed)
        if value is None:
            raise LayerError(self, "needs a query and a value: layer(query, value, ...)")
        if any(_is_symbolic(t) for t in (value, key, kwargs.get("attention_mask"),
                                         kwargs.get("query_mask"), kwargs.get("value_mask"),
                                         kwargs.get("key_mask"))) or _is_symbolic(query):
            # The base class records symbolic calls by their first argument only: pack every
            # tensor argument into it so the functional graph replays them all.
            packed = {"query": query, "value": value}
            if key is not None:
                packed["key"] = key
            for name in ("attention_mask", "query_mask", "value_mask", "key_mask"):
                if kwargs.get(name) is not None:
                    packed[name] = kwargs.pop(name)
            return super().__call__(packed, **kwargs)
        if not self.built:
            self.build(input_shape_of(query), input_shape_of(value),
                       None if key is None else input_shape_of(key))
        return super().__call__(query, value, key, **kwargs)

    def _dropout_seed(self):
        import unidl.random as urandom

        if self.seed is not None:
            if self._seed_stream is None:
                import numpy as np  # host seed stream only (no tensor computation)

                self._seed_stream = np.random.default_rng(int(self.seed))
            return int(self._seed_stream.integers(0, 2**31 - 1))
        return urandom.next_seed() if urandom.is_deterministic() else None

    def _causal_mask(self, t_len, s_len):
        rows = ops.reshape(ops.arange(t_len, dtype="int32"), (1, t_len, 1))
        cols = ops.reshape(ops.arange(s_len, dtype="int32"), (1, 1, s_len))
        return ops.greater_equal(rows, cols)

    def _sliding_mask(self, t_len, s_len):
        rows = ops.reshape(ops.arange(t_len, dtype="int32"), (1, t_len, 1))
        cols = ops.reshape(ops.arange(s_len, dtype="int32"), (1, 1, s_len))
        return ops.less(ops.abs(ops.subtract(rows, cols)), self.sliding_window)

    def _compute_attention_mask(self, query, value, query_mask, value_mask, key_mask,
                                attention_mask, use_causal_mask):
        auto = []
        if query_mask is not None:
            auto.append(ops.expand_dims(ops.cast(query_mask, "bool"), -1))
        if value_mask is not None:
            auto.append(ops.expand_dims(ops.cast(value_mask, "bool"), -2))
        if key_mask is not None:
            auto.append(ops.expand_dims(ops.cast(key_mask, "bool"), -2))
        t_len, s_len = input_shape_of(query)[1], input_shape_of(value)[1]
        if use_causal_mask:
            auto.append(self._causal_mask(t_len, s_len))
        if self.sliding_window is not None:
            auto.append(self._sliding_mask(t_len, s_len))
        mask = None if attention_mask is None else ops.cast(attention_mask, "bool")
        for m in auto:
            mask = m if mask is None else ops.logical_and(mask, m)
        return mask

    def _masked_softmax(self, scores, mask):
        if mask is not None:
            if ops.dtype(mask) != "bool":
                mask = ops.greater(mask, 0.5)
            for _ in range(ops.ndim(scores) - ops.ndim(mask)):
                mask = ops.expand_dims(mask, -len(self._attn_axes) * 2 - 1)
            scores = ops.where(mask, scores, _large_negative(ops.dtype(scores)))
        if len(self._norm_axes) == 1:
            probs = ops.softmax(scores, axis=self._norm_axes[0])
        else:
            probs = ops.exp(ops.subtract(scores, ops.logsumexp(scores, axis=self._norm_axes,
                                                               keepdims=True)))
        if mask is not None:
            probs = ops.where(mask, probs, 0.0)
        return probs

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False):
        if key is None:
            key = value
        q_shape, v_shape, k_shape = (input_shape_of(t) for t in (query, value, key))
        if len(q_shape) != len(self._built_shapes[0]) or len(v_shape) != len(q_shape) or \
                v_shape[1:-1] != k_shape[1:-1]:
            raise LayerError(self, f"expected query, value and key of rank "
                                   f"{len(self._built_shapes[0])} with value and key equal "
                                   f"in every dim but the last; got query {shape_text(q_shape)}"
                                   f", value {shape_text(v_shape)}, key {shape_text(k_shape)}")
        mask = self._compute_attention_mask(query, value, query_mask, value_mask, key_mask,
                                            attention_mask, use_causal_mask)
        gate = self._gate_dense(query) if self._gate_dense is not None else None
        q = self._query_dense(query)
        k = self._key_dense(key)
        v = self._value_dense(value)
        q = ops.multiply(q, ops.cast(self._inverse_sqrt_key_dim, ops.dtype(q)))
        scores = ops.einsum(self._dot_eq, k, q)
        probs = self._masked_softmax(scores, mask)
        weights = probs
        if self.dropout > 0.0 and training:
            weights = ops.dropout(probs, self.dropout, seed=self._dropout_seed())
        out = ops.einsum(self._combine_eq, weights, v)
        if gate is not None:
            out = ops.multiply(out, gate)
        out = self._output_dense(out)
        if return_attention_scores:
            return out, probs
        return out

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        if self.output_shape_arg:
            return query_shape[:-1] + tuple(self.output_shape_arg)
        return query_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_heads=self.num_heads, key_dim=self.key_dim,
                      value_dim=self.value_dim, dropout=self.dropout, use_bias=self.use_bias,
                      output_shape=self.output_shape_arg, attention_axes=self.attention_axes,
                      sliding_window=self.sliding_window, use_gate=self.use_gate,
                      kernel_initializer=self.kernel_initializer,
                      bias_initializer=self.bias_initializer,
                      kernel_regularizer=self.kernel_regularizer,
                      bias_regularizer=self.bias_regularizer,
                      activity_regularizer=self.activity_regularizer,
                      kernel_constraint=self.kernel_constraint,
                      bias_constraint=self.bias_constraint, seed=self.seed)
        return config
