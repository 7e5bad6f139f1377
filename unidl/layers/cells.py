"""Recurrent cells: one time step of a simple RNN, an LSTM and a GRU, with Keras 3 weights.

A cell owns the weights of a recurrent layer and computes one step: ``cell(x_t, states)``
returns ``(output, new_states)``. The recurrent layers in :mod:`unidl.layers.rnn`
(:class:`~unidl.layers.rnn.SimpleRNN`, :class:`~unidl.layers.rnn.LSTM`,
:class:`~unidl.layers.rnn.GRU`, or the generic :class:`~unidl.layers.rnn.RNN`) loop a cell over
time. For speed they use the cell's two halves separately: :meth:`project` multiplies the whole
input sequence by the input kernel in one matmul, then :meth:`step` runs once per time step on
the projected input.

Weight layouts and gate orders are Keras's, so weights can be exchanged with Keras:

* ``SimpleRNNCell``: ``kernel (in, u)``, ``recurrent_kernel (u, u)``, ``bias (u,)``;
  ``h = activation(x @ kernel + bias + h_prev @ recurrent_kernel)``.
* ``LSTMCell``: ``kernel (in, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)``, gates in
  the order ``i, f, c, o``; states ``[h, c]``.
* ``GRUCell``: ``kernel (in, 3u)``, ``recurrent_kernel (u, 3u)``, gates ``z, r, h``;
  ``bias (2, 3u)`` (input bias, recurrent bias) when ``reset_after=True`` (the default),
  ``(3u,)`` otherwise. ``h = z * h_prev + (1 - z) * candidate``.

Dropout (``dropout`` on the inputs, ``recurrent_dropout`` on the previous state fed to the
recurrent kernel) uses one mask per sequence, shared by every time step and every gate, as
Keras does. Unlike Keras 3's default GRU implementation (which ignores ``recurrent_dropout``),
the GRU here applies it to the state entering the recurrent matmul.

Example:
    >>> import unidl
    >>> from unidl import ops
    >>> from unidl.layers.cells import LSTMCell
    >>> with unidl.use_backend("numpy"):
    ...     cell = LSTMCell(3)
    ...     x = ops.ones((2, 5))
    ...     out, (h, c) = cell(x, [ops.zeros((2, 3)), ops.zeros((2, 3))])
    ...     tuple(ops.shape(out)), [tuple(w.shape) for w in cell.weights]
    ((2, 3), [(5, 12), (3, 12), (12,)])
"""

from __future__ import annotations

import random as _pyrandom

import numpy as np

from unidl import ops
from unidl import random as _urandom
from unidl.layers.base import Layer, LayerError

__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell", "get_activation", "activation_name"]


# ---- activations ------------------------------------------------------------------------------
def _linear(x):
    return x


_FALLBACK_ACTIVATIONS = {
    "linear": _linear,
    "tanh": lambda x: ops.tanh(x),
    "sigmoid": lambda x: ops.sigmoid(x),
    "hard_sigmoid": lambda x: ops.hard_sigmoid(x),
    "relu": lambda x: ops.relu(x),
    "relu6": lambda x: ops.relu6(x),
    "elu": lambda x: ops.elu(x),
    "selu": lambda x: ops.selu(x),
    "gelu": lambda x: ops.gelu(x),
    "silu": lambda x: ops.silu(x),
    "swish": lambda x: ops.silu(x),
    "softplus": lambda x: ops.softplus(x),
    "softmax": lambda x: ops.softmax(x),
    "exponential": lambda x: ops.exp(x),
}


def get_activation(identifier):
    """A callable for an activation name (Keras names), a callable, or ``None`` (linear).

    Uses :mod:`unidl.activations` when it exists, else a small built-in table.
    """
    if identifier is None:
        return _linear
    if callable(identifier):
        return identifier
    try:
        from unidl import activations as _acts
    except ImportError:
        _acts = None
    if _acts is not None and hasattr(_acts, "get"):
        return _acts.get(identifier)
    if isinstance(identifier, str) and identifier in _FALLBACK_ACTIVATIONS:
        return _FALLBACK_ACTIVATIONS[identifier]
    raise ValueError(f"unknown activation {identifier!r}")


def activation_name(identifier):
    """What ``get_config`` stores for an activation argument (its name when it has one)."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        return identifier
    return getattr(identifier, "__name__", identifier)


def _get_initializer(identifier):
    from unidl import initializers

    return initializers.get(identifier)


def _contiguous(identifier):
    """Wrap an initializer so its values are C-contiguous: NumPy Variables keep the array
    they are given, and a Fortran-ordered kernel (QR-based orthogonal initializers) makes
    every step's matmul many times slower."""
    if identifier is None:
        return identifier
    base = _get_initializer(identifier)

    def init(shape, dtype=None):
        return np.ascontiguousarray(_host_array(base(shape, dtype=dtype)))

    return init


def _host_array(value) -> np.ndarray:
    """An initializer's result as a NumPy array (initializers may return either)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(ops.to_numpy(value))
    except Exception:  # pragma: no cover - plain sequences
        return np.asarray(value)


# ---- helpers ----------------------------------------------------------------------------------
def batch_zeros(like, n: int, dtype):
    """Zeros of shape ``(batch, n)`` where ``batch`` is the first axis of ``like``.

    Works when the batch size is not a Python int (inside ``tf.function`` with an unknown batch).
    """
    b = ops.shape(like)[0]
    if isinstance(b, (int, np.integer)):
        return ops.zeros((int(b), n), dtype=dtype)
    flat = ops.reshape(like, (-1,) if ops.ndim(like) == 1 else
                       (-1, int(np.prod([int(d) for d in ops.shape(like)[1:]]))))
    probe = ops.matmul(ops.zeros_like(flat), ops.zeros((ops.shape(flat)[1], n), dtype=dtype))
    return ops.zeros_like(probe)


class _Cell(Layer):
    """Shared machinery of the built-in cells (weights, dropout masks, config)."""

    _gates = 1
    _has_recurrent_activation = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        kwargs.pop("implementation", None)  # Keras compatibility; one implementation here
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise LayerError(self, f"expected units to be a positive integer, got {units!r}")
        for what, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) < 1.0:
                raise LayerError(self, f"expected {what} in [0, 1), got {rate!r}")
        self.units = int(units)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self._act = get_activation(activation)
        self._rec_act = get_activation(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.recurrent_regularizer = recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        self.kernel_constraint = kernel_constraint
        self.recurrent_constraint = recurrent_constraint
        self.bias_constraint = bias_constraint
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self._seed_rng = _pyrandom.Random(seed) if seed is not None else None
        self._input_mask = None
        self._recurrent_mask = None
        self.kernel = None
        self.recurrent_kernel = None
        self.bias = None

    # -- sizes ------------------------------------------------------------------------------
    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    # -- weights ----------------------------------------------------------------------------
    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise LayerError(self, "expected inputs of shape (batch, features) with a known "
                                   f"number of features, got {input_shape}")
        self.input_dim = int(input_shape[-1])
        g = self._gates * self.units
        self.kernel = self.add_weight((self.input_dim, g), _contiguous(self.kernel_initializer),
                                      self.kernel_regularizer, name="kernel",
                                      constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight((self.units, g),
                                                _contiguous(self.recurrent_initializer),
                                                self.recurrent_regularizer,
                                                name="recurrent_kernel",
                                                constraint=self.recurrent_constraint)
        if self.use_bias:
            self.bias = self.add_weight(self._bias_shape(), _contiguous(self._bias_initializer()),
                                        self.bias_regularizer, name="bias",
                                        constraint=self.bias_constraint)
        self.built = True

    def _check_features(self, x, axis_name="features"):
        shape = tuple(ops.shape(x))
        if not shape or shape[-1] != self.input_dim:
            raise LayerError(self, f"expected inputs with {self.input_dim} {axis_name} on the "
                                   f"last axis, got shape {shape}")

    # -- dropout ----------------------------------------------------------------------------
    def _next_seed(self):
        if self._seed_rng is not None:
            return self._seed_rng.randrange(2**31 - 1)
        if _urandom.is_deterministic():
            return _urandom.next_seed()
        return None

    def _mask(self, zeros, rate):
        return ops.dropout(ops.ones_like(zeros), rate, seed=self._next_seed())

    def prepare(self, batch_like, training=None):
        """Draw this sequence's dropout masks (``batch_like``: any tensor with the batch axis
        first). Called once per sequence by the recurrent layer; :meth:`reset` clears them."""
        self._input_mask = None
        self._recurrent_mask = None
        if not training:
            return
        dtype = self.compute_dtype
        if self.dropout > 0.0:
            self._input_mask = self._mask(batch_zeros(batch_like, self.input_dim, dtype),
                                          self.dropout)
        if self.recurrent_dropout > 0.0:
            self._recurrent_mask = self._mask(batch_zeros(batch_like, self.units, dtype),
                                              self.recurrent_dropout)

    def reset(self):
        """Forget the dropout masks drawn by :meth:`prepare`."""
        self._input_mask = None
        self._recurrent_mask = None

    def _recurrent_input(self, h):
        m = self._recurrent_mask
        return h if m is None else ops.multiply(h, m)

    # -- computation ------------------------------------------------------------------------
    def _input_bias(self):
        return self.bias

    def project(self, x):
        """``x @ kernel (+ input bias)`` for inputs ``(batch, features)`` or a whole sequence
        ``(batch, time, features)`` (one matmul), with the input dropout mask applied."""
        m = self._input_mask
        rank = ops.ndim(x)
        if m is not None:
            x = ops.multiply(x, m if rank == 2 else ops.expand_dims(m, 1))
        if rank == 2:
            y = ops.matmul(x, self.kernel)
        else:
            shape = tuple(ops.shape(x))
            y = ops.matmul(ops.reshape(x, (-1, shape[-1])), self.kernel)
            y = ops.reshape(y, (-1,) + tuple(shape[1:-1]) + (self._gates * self.units,))
        b = self._input_bias()
        return y if b is None else ops.add(y, b)

    def begin(self):
        """Per-sequence preparation of :meth:`step` (e.g. splitting weights once)."""
        return None

    def step(self, projected, states):
        """One time step on an input already passed through :meth:`project`."""
        raise NotImplementedError

    def get_initial_state(self, batch_like):
        """Zero states, one ``(batch, units)`` tensor per state."""
        return [batch_zeros(batch_like, self.units, self.compute_dtype)]

    def call(self, inputs, states, training=None):
        """One step: ``(output, new_states)`` for inputs ``(batch, features)`` and a list of
        states (a single tensor is accepted for one-state cells)."""
        x = ops.convert_to_tensor(inputs)
        if ops.dtype(x) != self.compute_dtype:
            x = ops.cast(x, self.compute_dtype)
        if ops.ndim(x) != 2:
            raise LayerError(self, f"expected inputs of shape (batch, features), got shape "
                                   f"{tuple(ops.shape(x))}")
        self._check_features(x)
        if not isinstance(states, (list, tuple)):
            states = [states]
        states = [ops.convert_to_tensor(s, self.compute_dtype)
                  if not hasattr(s, "__unidl_tensor__") else s for s in states]
        self.prepare(x, training)
        try:
            self.begin()
            return self.step(self.project(x), list(states))
        finally:
            self.reset()

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": activation_name(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "recurrent_initializer": self.recurrent_initializer,
            "bias_initializer": self.bias_initializer,
            "kernel_regularizer": self.kernel_regularizer,
            "recurrent_regularizer": self.recurrent_regularizer,
            "bias_regularizer": self.bias_regularizer,
            "kernel_constraint": self.kernel_constraint,
            "recurrent_constraint": self.recurrent_constraint,
            "bias_constraint": self.bias_constraint,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        })
        if self._has_recurrent_activation:
            config["recurrent_activation"] = activation_name(self.recurrent_activation)
        return config


class SimpleRNNCell(_Cell):
    """One step of a fully connected RNN: ``h = activation(x @ kernel + bias + h @ recurrent)``.

    Args:
        units: size of the state and output.
        activation: default ``"tanh"``.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer, *_regularizer,
        *_constraint, dropout, recurrent_dropout, seed: as in Keras.

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> from unidl.layers.cells import SimpleRNNCell
        >>> with unidl.use_backend("numpy"):
        ...     out, states = SimpleRNNCell(4)(ops.ones((2, 3)), [ops.zeros((2, 4))])
        ...     tuple(ops.shape(out)), len(states)
        ((2, 4), 1)
    """

    _gates = 1
    _has_recurrent_activation = False

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=None,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)

    def step(self, projected, states):
        h = states[0]
        z = ops.add(projected, ops.matmul(self._recurrent_input(h), self.recurrent_kernel))
        out = self._act(z)
        return out, [out]


class LSTMCell(_Cell):
    """One LSTM step (Keras gate order ``i, f, c, o``); states ``[h, c]``.

    ``i, f, o = recurrent_activation(...)``, ``c = f * c_prev + i * activation(...)``,
    ``h = o * activation(c)``.

    Args:
        units: size of the state and output.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        unit_forget_bias: initialize the forget gate's bias to ones (as Keras, default True).
        Other arguments: as Keras's ``LSTMCell``.

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> from unidl.layers.cells import LSTMCell
        >>> with unidl.use_backend("numpy"):
        ...     cell = LSTMCell(2)
        ...     out, states = cell(ops.ones((1, 3)), [ops.zeros((1, 2)), ops.zeros((1, 2))])
        ...     cell.bias.numpy().tolist()
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """

    _gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base = _get_initializer(self.bias_initializer)
        units = self.units

        def forget_ones(shape, dtype=None):
            parts = [_host_array(base((units,), dtype=dtype)),
                     np.ones((units,)),
                     _host_array(base((2 * units,), dtype=dtype))]
            return np.concatenate([p.astype(np.float64) for p in parts]).astype(
                parts[0].dtype if parts[0].dtype.kind == "f" else np.float32)

        return forget_ones

    def get_initial_state(self, batch_like):
        return [batch_zeros(batch_like, self.units, self.compute_dtype),
                batch_zeros(batch_like, self.units, self.compute_dtype)]

    def step(self, projected, states):
        h, c = states
        z = ops.add(projected, ops.matmul(self._recurrent_input(h), self.recurrent_kernel))
        zi, zf, zc, zo = ops.split(z, 4, axis=-1)
        i = self._rec_act(zi)
        f = self._rec_act(zf)
        o = self._rec_act(zo)
        c_new = ops.add(ops.multiply(f, c), ops.multiply(i, self._act(zc)))
        h_new = ops.multiply(o, self._act(c_new))
        return h_new, [h_new, c_new]

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


class GRUCell(_Cell):
    """One GRU step (Keras gate order ``z, r, h``): ``h = z * h_prev + (1 - z) * candidate``.

    With ``reset_after=True`` (default, cuDNN-compatible) the reset gate multiplies the
    recurrent projection (``candidate = act(x W_h + b_h + r * (h_prev U_h + rb_h))``) and the
    bias has shape ``(2, 3u)`` (input bias, recurrent bias); with ``False`` it multiplies the
    state before the matmul (``act(x W_h + b_h + (r * h_prev) U_h)``) and the bias is ``(3u,)``.

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> from unidl.layers.cells import GRUCell
        >>> with unidl.use_backend("numpy"):
        ...     cell = GRUCell(2)
        ...     out, states = cell(ops.ones((1, 3)), [ops.zeros((1, 2))])
        ...     tuple(cell.bias.shape)
        (2, 6)
    """

    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 seed=None, **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.reset_after = bool(reset_after)
        self._split = None

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if self.bias is None:
            return None
        if not self.reset_after:
            return self.bias
        return ops.reshape(ops.slice(self.bias, (0, 0), (1, 3 * self.units)),
                           (3 * self.units,))

    def begin(self):
        u = self.units
        rb = None
        if self.bias is not None and self.reset_after:
            rb = ops.reshape(ops.slice(self.bias, (1, 0), (1, 3 * u)), (3 * u,))
        if self.reset_after:
            self._split = (self.recurrent_kernel, rb)
        else:
            rk_zr, rk_h = ops.split(self.recurrent_kernel, [2 * u], axis=1)
            self._split = (rk_zr, rk_h)

    def reset(self):
        super().reset()
        self._split = None

    def step(self, projected, states):
        if self._split is None:
            self.begin()
        h = states[0]
        hr = self._recurrent_input(h)
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        if self.reset_after:
            rk, rb = self._split
            inner = ops.matmul(hr, rk)
            if rb is not None:
                inner = ops.add(inner, rb)
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self._rec_act(ops.add(x_z, r_z))
            r = self._rec_act(ops.add(x_r, r_r))
            cand = self._act(ops.add(x_h, ops.multiply(r, r_h)))
        else:
            rk_zr, rk_h = self._split
            r_z, r_r = ops.split(ops.matmul(hr, rk_zr), 2, axis=-1)
            z = self._rec_act(ops.add(x_z, r_z))
            r = self._rec_act(ops.add(x_r, r_r))
            cand = self._act(ops.add(x_h, ops.matmul(ops.multiply(r, hr), rk_h)))
        # z * h + (1 - z) * cand, written with one multiplication
        h_new = ops.add(cand, ops.multiply(z, ops.subtract(h, cand)))
        return h_new, [h_new]

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config
