"""Recurrent layers: ``RNN`` (any cell), ``SimpleRNN``, ``LSTM``, ``GRU`` and ``Bidirectional``.

Arguments, defaults, weight layouts and gate orders follow Keras 3 (see
:mod:`unidl.layers.cells`). The time loop is a Python loop over the (static) time axis
written with :mod:`unidl.ops` only, so it runs on every backend, under every backend's
autodiff and inside ``tf.function`` (with a known number of time steps). The input kernel is
applied to the whole sequence in one matmul before the loop. An ``LSTM`` or a ``GRU`` (the
built-in cell with ``tanh``/``sigmoid`` activations, no mask, no dropout active in the call)
runs as one fused :func:`unidl.ops.lstm` or :func:`unidl.ops.gru` instead, with the same
results.

Call arguments: ``layer(sequences, initial_state=None, mask=None, training=None)`` (Keras 3
order; pass them by keyword to be safe).

* ``sequences``: ``(batch, time, features)`` (``(time, batch, features)`` with
  ``time_major=True``).
* ``initial_state``: a list of ``(batch, units)`` tensors (LSTM: ``[h, c]``); zeros if omitted.
* ``mask``: boolean ``(batch, time)`` (also with ``time_major``); ``False`` marks a padded
  step. Semantics are Keras 3's:
  at a masked step every state is carried over unchanged and the step's output is the
  previous step's output (zeros before the first unmasked step). With
  ``zero_output_for_mask=True`` (which :class:`Bidirectional` sets when it returns sequences,
  as Keras does) the sequence output is zero at masked steps instead. The last output
  (``return_sequences=False``) is the output of the last unmasked step. With
  ``go_backwards`` the mask is reversed together with the inputs. Masks are not propagated
  automatically from earlier layers: pass them explicitly.

Outputs: the last output ``(batch, units)``, or with ``return_sequences=True`` every output
``(batch, time, units)`` (in processing order: reversed when ``go_backwards=True``, as Keras).
With ``return_state=True`` a list ``[output, *final_states]`` (LSTM: ``[output, h, c]``).

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     lstm = layers.LSTM(4, return_sequences=True, return_state=True)
    ...     seq, h, c = lstm(ops.ones((2, 5, 3)))
    ...     tuple(ops.shape(seq)), tuple(ops.shape(h)), [tuple(w.shape) for w in lstm.weights]
    ((2, 5, 4), (2, 4), [(3, 16), (4, 16), (16,)])
"""

from __future__ import annotations

import numpy as np

from unidl import ops
from unidl.layers.base import Layer, LayerError, _dtype_shared_with, _is_symbolic, unique_name
from unidl.layers.cells import GRUCell, LSTMCell, SimpleRNNCell, _Cell, batch_zeros

__all__ = ["RNN", "SimpleRNN", "LSTM", "GRU", "Bidirectional"]


def _as_list(x):
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _is_activation(fn, name: str) -> bool:
    """Whether ``fn`` is unidl's built-in activation ``name`` (or the op of that name)."""
    from unidl import activations

    return fn is getattr(activations, name, None) or fn is getattr(ops, name, None)


def _fix_symbolic_shapes(layer, inputs, out, time_major):
    """Give symbolic outputs the unknown time/batch axes of the symbolic input.

    The functional API finds output shapes by running the layer on a dummy input whose unknown
    axes have size 3 (time) or 2 (batch); recurrent outputs must keep those axes unknown.
    """
    from unidl import tree
    from unidl.layers.base import SymbolicTensor

    leaves = [v for v in tree.flatten(inputs)[0] if isinstance(v, SymbolicTensor)]
    if not leaves:
        return out
    in_shape = leaves[0].shape
    if len(in_shape) != 3:
        return out
    batch_axis = 1 if time_major else 0
    outs = [o for o in tree.flatten(out)[0] if isinstance(o, SymbolicTensor)]
    for o in outs:
        shape = list(o.shape)
        if len(shape) == 3:
            shape[0], shape[1] = in_shape[0], in_shape[1]
        elif len(shape) == 2:
            shape[0] = in_shape[batch_axis]
        o.shape = tuple(shape)
    object.__setattr__(layer, "_last_output_shape",
                       outs[0].shape if len(outs) == 1 else [o.shape for o in outs])
    return out


class RNN(Layer):
    """Base recurrent layer: loops ``cell`` over the time axis of the input.

    Args:
        cell: an RNN cell. The built-in cells (:class:`~unidl.layers.cells.SimpleRNNCell`,
            :class:`~unidl.layers.cells.LSTMCell`, :class:`~unidl.layers.cells.GRUCell`) take a
            fast path (one input matmul for the whole sequence). Any other layer with
            ``call(inputs, states, training=None) -> (output, new_states)`` and a
            ``state_size`` attribute (an int or a list of ints) works too.
        return_sequences: return every output (``(batch, time, units)``), not only the last.
        return_state: also return the final states: ``[output, *states]``.
        go_backwards: process the sequence in reverse (outputs stay in processing order).
        stateful: keep the final states of one call as the initial states of the next
            (batch size must stay the same; :meth:`reset_state` zeroes them).
        unroll: accepted for Keras compatibility (the loop is always unrolled).
        zero_output_for_mask: output zeros (not the previous output) at masked steps.
        time_major: inputs and sequence outputs are ``(time, batch, ...)``.
        activity_regularizer: a penalty on the outputs (and returned states), added to
            :attr:`losses` by the base ``Layer``
            (:func:`~unidl.layers.base.activity_penalty`, the rule of every layer).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> from unidl.layers.cells import GRUCell
        >>> with unidl.use_backend("numpy"):
        ...     rnn = layers.RNN(GRUCell(3), return_sequences=True)
        ...     tuple(ops.shape(rnn(ops.ones((2, 4, 5)))))
        (2, 4, 3)
    """

    dtype = _dtype_shared_with("cell")

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, time_major=False,
                 activity_regularizer=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not isinstance(cell, Layer) and not callable(cell):
            raise LayerError(self, f"expected an RNN cell, got {type(cell).__name__}")
        if getattr(cell, "state_size", None) is None:
            raise LayerError(self, "the cell must have a state_size attribute")
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.time_major = bool(time_major)
        self.activity_regularizer = activity_regularizer
        self.supports_masking = True
        object.__setattr__(self, "_state_vars", None)

    # -- sizes ------------------------------------------------------------------------------
    @property
    def state_size(self) -> list:
        s = self.cell.state_size
        return [int(v) for v in s] if isinstance(s, (list, tuple)) else [int(s)]

    @property
    def output_size(self) -> int:
        s = getattr(self.cell, "output_size", None)
        return int(s) if s is not None else self.state_size[0]

    @property
    def states(self):
        """The stored states of a stateful layer (a list of Variables), else ``None``."""
        return self._state_vars

    def reset_state(self):
        """Zero the stored states of a stateful layer."""
        if self._state_vars is not None:
            for v in self._state_vars:
                v.assign(np.zeros(v.shape))

    reset_states = reset_state

    # -- building ---------------------------------------------------------------------------
    def _sequence_shape(self, input_shape):
        if isinstance(input_shape, list) and input_shape and isinstance(
                input_shape[0], (list, tuple)):
            raise LayerError(self, "expected one sequence tensor; pass initial states with "
                                   "initial_state=[...]")
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise LayerError(self, f"expected a 3-D input (batch, time, features), got shape "
                                   f"{shape}")
        if self.time_major:
            shape = (shape[1], shape[0], shape[2])
        return shape

    def build(self, input_shape):
        shape = self._sequence_shape(input_shape)
        if shape[-1] is None:
            raise LayerError(self, f"the number of features must be known, got shape {shape}")
        self.input_dim = int(shape[-1])
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell.build((shape[0], shape[2]))
            self.cell.built = True
        self.built = True

    def __call__(self, inputs, *args, **kwargs):
        out = super().__call__(inputs, *args, **kwargs)
        if _is_symbolic(inputs):
            _fix_symbolic_shapes(self, inputs, out, self.time_major)
        return out

    # -- computation ------------------------------------------------------------------------
    def _initial_states(self, x, initial_state):
        sizes = self.state_size
        if initial_state is None:
            if self.stateful and self._state_vars is not None:
                batch = ops.shape(x)[0]
                if batch != self._state_vars[0].shape[0]:
                    raise LayerError(self, f"stateful: expected batches of "
                                           f"{self._state_vars[0].shape[0]} sequences (the first "
                                           f"call's), got {batch}")
                # a copy: the Variables are updated in place after the call, and PyTorch's
                # autograd rejects a saved tensor that changed
                return [ops.add(ops.stop_gradient(v.value), 0.0) for v in self._state_vars]
            getter = getattr(self.cell, "get_initial_state", None)
            if isinstance(self.cell, _Cell) and getter is not None:
                return list(getter(x))
            return [batch_zeros(x, n, self.compute_dtype) for n in sizes]
        states = _as_list(initial_state)
        if len(states) != len(sizes):
            raise LayerError(self, f"expected {len(sizes)} initial state tensor(s), got "
                                   f"{len(states)}")
        out = []
        batch = ops.shape(x)[0]
        for s, n in zip(states, sizes):
            t = s if hasattr(s, "__unidl_tensor__") else ops.convert_to_tensor(s)
            shape = tuple(ops.shape(t))
            if len(shape) != 2 or shape[1] != n or (shape[0] != batch and None not in (
                    shape[0], batch)):
                raise LayerError(self, f"expected initial states of shape ({batch}, {n}), got "
                                       f"{shape}")
            if ops.dtype(t) != self.compute_dtype:
                t = ops.cast(t, self.compute_dtype)
            out.append(t)
        return out

    def _prepare_mask(self, mask, batch, steps):
        m = ops.convert_to_tensor(mask)
        if ops.dtype(m) != "bool":
            m = ops.not_equal(m, ops.zeros((), dtype=ops.dtype(m)))
        shape = tuple(ops.shape(m))
        if len(shape) == 3 and shape[-1] == 1:
            m = ops.squeeze(m, axis=-1)
            shape = shape[:2]
        if len(shape) != 2 or shape[1] != steps or (shape[0] != batch and None not in (
                shape[0], batch)):
            raise LayerError(self, f"expected a mask of shape (batch, time) = ({batch}, "
                                   f"{steps}), got {shape}")
        return m

    def _fusable(self, cell_class, mask, training) -> bool:
        """Whether the cell is exactly the built-in ``cell_class`` with ``tanh`` and
        ``sigmoid`` activations, with no mask and no dropout active in this call."""
        cell = self.cell
        if type(cell) is not cell_class or mask is not None:
            return False
        if training and (cell.dropout > 0.0 or cell.recurrent_dropout > 0.0):
            return False
        return _is_activation(cell._act, "tanh") and _is_activation(cell._rec_act, "sigmoid")

    def _uses_fused_lstm(self, mask, training) -> bool:
        """Whether this call can run as one ``ops.lstm`` (same results as the time loop).

        It can for the built-in :class:`~unidl.layers.cells.LSTMCell` with ``tanh`` and
        ``sigmoid`` activations, no mask, and no dropout active in this call.
        """
        return self._fusable(LSTMCell, mask, training)

    def _uses_fused_gru(self, mask, training) -> bool:
        """Whether this call can run as one ``ops.gru`` (same results as the time loop).

        It can for the built-in :class:`~unidl.layers.cells.GRUCell` (either ``reset_after``)
        with ``tanh`` and ``sigmoid`` activations, no mask, and no dropout or recurrent
        dropout active in this call.
        """
        return self._fusable(GRUCell, mask, training)

    def _sequence_in_order(self, x):
        """``x`` in processing order (flipped along time with ``go_backwards``)."""
        return ops.flip(x, axis=1) if self.go_backwards else x

    def _run_fused_lstm(self, x, states):
        """The whole sequence as one ``ops.lstm``; returns what :meth:`_run_steps` does."""
        cell = self.cell
        # (outputs stay in processing order, as in the loop)
        seq, h, c = ops.lstm(self._sequence_in_order(x), states[0], states[1], cell.kernel,
                             cell.recurrent_kernel, cell.bias)
        return h, (seq if self.return_sequences else None), [h, c]

    def _run_fused_gru(self, x, states):
        """The whole sequence as one ``ops.gru``; returns what :meth:`_run_steps` does."""
        cell = self.cell
        seq, h = ops.gru(self._sequence_in_order(x), states[0], cell.kernel,
                         cell.recurrent_kernel, cell.bias, cell.reset_after)
        return h, (seq if self.return_sequences else None), [h]

    def _run_steps(self, x, states, mask, training):
        """The time loop. ``x``: (batch, time, features), batch-major. Returns
        ``(last_output, outputs or None, final_states)``."""
        if self._uses_fused_lstm(mask, training):
            return self._run_fused_lstm(x, states)
        if self._uses_fused_gru(mask, training):
            return self._run_fused_gru(x, states)
        cell = self.cell
        steps = int(ops.shape(x)[1])
        fast = isinstance(cell, _Cell)
        if fast:
            cell.prepare(x, training)
            cell.begin()
        try:
            seq = cell.project(x) if fast else x
            pieces = [ops.squeeze(p, axis=1) for p in ops.split(seq, steps, axis=1)] \
                if steps > 1 else [ops.squeeze(seq, axis=1)]
            masks = None
            if mask is not None:
                masks = ops.split(mask, steps, axis=1) if steps > 1 else [mask]  # (batch, 1)
            order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
            outputs = [] if self.return_sequences else None
            prev = None
            for t in order:
                if fast:
                    out, new_states = cell.step(pieces[t], states)
                else:
                    out, new_states = cell(pieces[t], states, training=training)
                    new_states = _as_list(new_states)
                if masks is not None:
                    m = masks[t]
                    if prev is None:
                        prev = ops.zeros_like(out)
                    new_states = [ops.where(m, n, s) for n, s in zip(new_states, states)]
                    masked = ops.where(m, out, prev)
                    if outputs is not None:
                        outputs.append(ops.where(m, out, ops.zeros_like(out))
                                       if self.zero_output_for_mask else masked)
                    prev = masked
                else:
                    prev = out
                    if outputs is not None:
                        outputs.append(out)
                states = list(new_states)
        finally:
            if fast:
                cell.reset()
        seq_out = ops.stack(outputs, axis=1) if outputs is not None else None
        return prev, seq_out, states

    def call(self, sequences, initial_state=None, mask=None, training=None):
        x = ops.convert_to_tensor(sequences)
        if ops.dtype(x) != self.compute_dtype:
            x = ops.cast(x, self.compute_dtype)
        shape = tuple(ops.shape(x))
        if len(shape) != 3:
            raise LayerError(self, f"expected a 3-D input (batch, time, features), got shape "
                                   f"{shape}")
        if shape[-1] != self.input_dim:
            raise LayerError(self, f"expected inputs with {self.input_dim} features on the last "
                                   f"axis, got shape {shape}")
        if self.time_major:
            x = ops.transpose(x, (1, 0, 2))
            shape = (shape[1], shape[0], shape[2])
        if shape[1] is None or shape[1] == 0:
            raise LayerError(self, f"needs a known, non-zero number of time steps, got shape "
                                   f"{shape}")
        m = None if mask is None else self._prepare_mask(mask, shape[0], shape[1])
        if self.stateful and self._state_vars is None:
            self._create_state_vars(x)
        states = self._initial_states(x, initial_state)
        last, seq, states = self._run_steps(x, states, m, bool(training))
        if self.stateful:
            for v, s in zip(self._state_vars, states):
                v.assign(ops.stop_gradient(s))
        if self.return_sequences:
            output = ops.transpose(seq, (1, 0, 2)) if self.time_major else seq
        else:
            output = last
        if self.return_state:
            return [output] + list(states)
        return output

    def _create_state_vars(self, x):
        from unidl.variables import Variable

        batch = ops.shape(x)[0]
        if not isinstance(batch, (int, np.integer)):
            raise LayerError(self, "stateful=True needs a known batch size")
        vars_ = [Variable(np.zeros((int(batch), n)), trainable=False, dtype=self.dtype,
                          name=f"{self.name}/state_{i}")
                 for i, n in enumerate(self.state_size)]
        object.__setattr__(self, "_state_vars", vars_)

    def compute_mask(self, inputs, mask=None):
        """The mask of the outputs: the input mask for a sequence output, else ``None``
        (and ``None`` for each returned state)."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * len(self.state_size)
        return out

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        batch, time = (shape[1], shape[0]) if self.time_major else (shape[0], shape[1])
        units = self.output_size
        if self.return_sequences:
            out = (time, batch, units) if self.time_major else (batch, time, units)
        else:
            out = (batch, units)
        if self.return_state:
            return [out] + [(batch, n) for n in self.state_size]
        return out

    def get_config(self):
        config = super().get_config()
        config.update({
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "time_major": self.time_major,
            "activity_regularizer": self.activity_regularizer,
        })
        if type(self) is RNN:
            config["cell"] = {"class_name": type(self.cell).__name__,
                              "config": self.cell.get_config()}
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        cell = config.pop("cell", None)
        if isinstance(cell, dict):
            cell = _resolve_class(cell["class_name"])(**cell["config"])
        if cell is not None:
            config["cell"] = cell
        return cls(**config)


class _KerasRNN(RNN):
    """A recurrent layer with a built-in cell whose arguments are the layer's (flat config)."""

    _cell_class = None
    _rnn_args = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                 "zero_output_for_mask", "time_major", "activity_regularizer")

    def _init(self, cell_kwargs, rnn_kwargs, kwargs):
        use_cudnn = kwargs.pop("use_cudnn", "auto")
        name = kwargs.get("name")
        cell_name = unique_name(f"{name}_cell") if name else None
        cell = self._cell_class(dtype=kwargs.get("dtype"), trainable=kwargs.get("trainable", True),
                                name=cell_name, **cell_kwargs)
        super().__init__(cell, **rnn_kwargs, **kwargs)
        self.use_cudnn = use_cudnn

    def __getattr__(self, name):
        # cell hyper-parameters read through the layer (lstm.units, lstm.activation, ...)
        if name.startswith("_") or name in ("cell",):
            raise AttributeError(name)
        cell = self.__dict__.get("cell")
        if cell is not None and hasattr(cell, name):
            return getattr(cell, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def kernel(self):
        return self.cell.kernel

    @property
    def recurrent_kernel(self):
        return self.cell.recurrent_kernel

    @property
    def bias(self):
        return self.cell.bias

    def get_config(self):
        config = super().get_config()
        cell_config = self.cell.get_config()
        for k in ("name", "dtype", "trainable"):
            cell_config.pop(k, None)
        config.update(cell_config)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class SimpleRNN(_KerasRNN):
    """Fully connected RNN: ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``.

    Args: as Keras 3's ``SimpleRNN`` (``units``, ``activation="tanh"``, ``use_bias=True``,
    ``kernel_initializer="glorot_uniform"``, ``recurrent_initializer="orthogonal"``,
    ``bias_initializer="zeros"``, regularizers, constraints, ``dropout``,
    ``recurrent_dropout``, ``seed``, ``return_sequences``, ``return_state``,
    ``go_backwards``, ``stateful``, ``unroll``) plus ``time_major``. See :class:`RNN` for the
    call arguments and masking.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     rnn = layers.SimpleRNN(4)
        ...     tuple(ops.shape(rnn(ops.ones((2, 6, 3))))), rnn.count_params()
        ((2, 4), 32)
    """

    _cell_class = SimpleRNNCell

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None,
                 time_major=False, zero_output_for_mask=False, **kwargs):
        self._init(
            dict(units=units, activation=activation, use_bias=use_bias,
                 kernel_initializer=kernel_initializer,
                 recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                 kernel_regularizer=kernel_regularizer,
                 recurrent_regularizer=recurrent_regularizer,
                 bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                 recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                 dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed),
            dict(return_sequences=return_sequences, return_state=return_state,
                 go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                 zero_output_for_mask=zero_output_for_mask, time_major=time_major,
                 activity_regularizer=activity_regularizer),
            kwargs)


class LSTM(_KerasRNN):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), Keras layout.

    ``kernel (features, 4*units)``, ``recurrent_kernel (units, 4*units)``, ``bias (4*units,)``
    with gates in the order input, forget, cell, output. States ``[h, c]``.

    Args: as Keras 3's ``LSTM`` (``units``, ``activation="tanh"``,
    ``recurrent_activation="sigmoid"``, ``use_bias=True``, initializers,
    ``unit_forget_bias=True``, regularizers, constraints, ``dropout``, ``recurrent_dropout``,
    ``seed``, ``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``,
    ``unroll``, ``use_cudnn`` (ignored)) plus ``time_major``. See :class:`RNN` for calls.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     lstm = layers.LSTM(4, return_state=True)
        ...     out, h, c = lstm(ops.ones((2, 6, 3)))
        ...     tuple(ops.shape(out)), tuple(ops.shape(c)), lstm.count_params()
        ((2, 4), (2, 4), 128)
    """

    _cell_class = LSTMCell

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 time_major=False, zero_output_for_mask=False, **kwargs):
        self._init(
            dict(units=units, activation=activation, recurrent_activation=recurrent_activation,
                 use_bias=use_bias, kernel_initializer=kernel_initializer,
                 recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                 unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
                 recurrent_regularizer=recurrent_regularizer,
                 bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                 recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                 dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed),
            dict(return_sequences=return_sequences, return_state=return_state,
                 go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                 zero_output_for_mask=zero_output_for_mask, time_major=time_major,
                 activity_regularizer=activity_regularizer),
            kwargs)


class GRU(_KerasRNN):
    """Gated recurrent unit (Cho et al., 2014), Keras layout (gates ``z, r, h``).

    ``reset_after=True`` (default): reset gate applied after the recurrent matmul, bias
    ``(2, 3*units)`` (input and recurrent biases); ``False``: applied before, bias
    ``(3*units,)``. ``h_t = z * h_{t-1} + (1 - z) * candidate``.

    Args: as Keras 3's ``GRU`` (``units``, ``activation="tanh"``,
    ``recurrent_activation="sigmoid"``, ``use_bias=True``, initializers, regularizers,
    constraints, ``dropout``, ``recurrent_dropout``, ``seed``, ``return_sequences``,
    ``return_state``, ``go_backwards``, ``stateful``, ``unroll``, ``reset_after=True``,
    ``use_cudnn`` (ignored)) plus ``time_major``. See :class:`RNN` for calls.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     gru = layers.GRU(4, return_sequences=True)
        ...     tuple(ops.shape(gru(ops.ones((2, 6, 3))))), tuple(gru.bias.shape)
        ((2, 6, 4), (2, 12))
    """

    _cell_class = GRUCell

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 time_major=False, zero_output_for_mask=False, **kwargs):
        self._init(
            dict(units=units, activation=activation, recurrent_activation=recurrent_activation,
                 use_bias=use_bias, kernel_initializer=kernel_initializer,
                 recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                 kernel_regularizer=kernel_regularizer,
                 recurrent_regularizer=recurrent_regularizer,
                 bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                 recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                 dropout=dropout, recurrent_dropout=recurrent_dropout, reset_after=reset_after,
                 seed=seed),
            dict(return_sequences=return_sequences, return_state=return_state,
                 go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                 zero_output_for_mask=zero_output_for_mask, time_major=time_major,
                 activity_regularizer=activity_regularizer),
            kwargs)


# ---- Bidirectional ----------------------------------------------------------------------------
def _resolve_class(name):
    import sys

    import unidl.layers as _layers
    from unidl.layers import cells as _cells

    for mod in (sys.modules[__name__], _cells, _layers):
        cls = getattr(mod, name, None)
        if isinstance(cls, type):
            return cls
    raise LayerError(name, f"unknown layer class {name!r}")


def _clone_layer(layer, **overrides):
    """A fresh layer (new weights) with ``layer``'s config, some entries replaced."""
    config = layer.get_config()
    config.update(overrides)
    cls = type(layer)
    from_config = getattr(cls, "from_config", None)
    return from_config(config) if from_config is not None else cls(**config)


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards and merges their outputs.

    Args:
        layer: a recurrent layer (``LSTM``, ``GRU``, ``SimpleRNN``, ``RNN``). It is used as a
            template: the forward and backward layers are fresh copies with new weights
            (as in Keras).
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"`` or ``None``
            (return both outputs as a list).
        weights: optional list of arrays: the first half for the forward layer, the second for
            the backward layer.
        backward_layer: an explicit backward layer (it must have ``go_backwards`` different
            from ``layer`` and the same ``return_sequences`` / ``return_state``).

    With ``return_sequences`` the backward outputs are flipped back to input order before
    merging, and masked steps output zeros (both directions). With ``return_state`` the
    result is ``[output, *forward_states, *backward_states]``; an ``initial_state`` list is
    split in half the same way. Weights: forward ones first.

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     bi = layers.Bidirectional(layers.GRU(3, return_sequences=True))
        ...     tuple(ops.shape(bi(ops.ones((2, 5, 4))))), len(bi.weights)
        ((2, 5, 6), 6)
    """

    _MERGE_MODES = ("sum", "mul", "ave", "concat", None)
    dtype = _dtype_shared_with("forward_layer", "backward_layer")

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise LayerError(self, f"expected a recurrent layer, got {type(layer).__name__}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise LayerError(self, f"expected backward_layer to be a layer, got "
                                   f"{type(backward_layer).__name__}")
        if merge_mode not in self._MERGE_MODES:
            raise LayerError(self, f"expected merge_mode in {self._MERGE_MODES}, got "
                                   f"{merge_mode!r}")
        base = _strip(_strip(layer.name, "forward_"), "backward_")
        # (the names follow the wrapped layer's, as in Keras, so a saved config reloads with
        # the same names)
        self.forward_layer = _clone_layer(layer, name=f"forward_{base}")
        if backward_layer is None:
            self.backward_layer = _clone_layer(
                layer, name=f"backward_{base}",
                go_backwards=not getattr(layer, "go_backwards", False))
        else:
            self.backward_layer = backward_layer
        for attr in ("return_sequences", "return_state", "stateful", "time_major"):
            f = getattr(self.forward_layer, attr, False)
            b = getattr(self.backward_layer, attr, False)
            if f != b:
                raise LayerError(self, f"forward and backward layers must have the same "
                                       f"{attr}, got {f} and {b}")
        if getattr(self.forward_layer, "go_backwards", False) == getattr(
                self.backward_layer, "go_backwards", False):
            raise LayerError(self, "forward and backward layers must have different "
                                   "go_backwards values")
        self.merge_mode = merge_mode
        self.return_sequences = bool(getattr(layer, "return_sequences", False))
        self.return_state = bool(getattr(layer, "return_state", False))
        self.stateful = bool(getattr(layer, "stateful", False))
        self.time_major = bool(getattr(layer, "time_major", False))
        for sub in (self.forward_layer, self.backward_layer):
            if hasattr(sub, "zero_output_for_mask"):
                sub.zero_output_for_mask = self.return_sequences
        self._initial_weights = list(weights) if weights is not None else None
        self.supports_masking = True

    def build(self, input_shape):
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(input_shape)
                sub.built = True
        self.built = True
        if self._initial_weights is not None:
            n = len(self._initial_weights) // 2
            self.forward_layer.set_weights(self._initial_weights[:n])
            self.backward_layer.set_weights(self._initial_weights[n:])
            self._initial_weights = None

    def __call__(self, inputs, *args, **kwargs):
        out = super().__call__(inputs, *args, **kwargs)
        if _is_symbolic(inputs):
            _fix_symbolic_shapes(self, inputs, out, self.time_major)
        return out

    def call(self, sequences, initial_state=None, mask=None, training=None):
        f_state = b_state = None
        if initial_state is not None:
            states = _as_list(initial_state)
            half = len(states) // 2
            f_state, b_state = states[:half], states[half:]
        y = self.forward_layer(sequences, initial_state=f_state, mask=mask, training=training)
        y_rev = self.backward_layer(sequences, initial_state=b_state, mask=mask,
                                    training=training)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = ops.flip(y_rev, axis=0 if self.time_major else 1)
        mode = self.merge_mode
        if mode == "concat":
            out = ops.concatenate([y, y_rev], axis=-1)
        elif mode == "sum":
            out = ops.add(y, y_rev)
        elif mode == "ave":
            out = ops.multiply(ops.add(y, y_rev), 0.5)
        elif mode == "mul":
            out = ops.multiply(y, y_rev)
        else:
            out = [y, y_rev]
        if self.return_state:
            return (out if mode is None else [out]) + states
        return out

    def reset_state(self):
        for sub in (self.forward_layer, self.backward_layer):
            if hasattr(sub, "reset_state"):
                sub.reset_state()

    reset_states = reset_state

    @property
    def states(self):
        f = getattr(self.forward_layer, "states", None)
        b = getattr(self.backward_layer, "states", None)
        return list(f) + list(b) if f and b else None

    def compute_mask(self, inputs, mask=None):
        """The input mask for sequence outputs (one per output with ``merge_mode=None``)."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            n = len(getattr(self.forward_layer, "state_size", [])) * 2
            return outs + [None] * n
        return outs[0] if len(outs) == 1 else outs

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            shape = tuple(shape[:-1]) + (None if shape[-1] is None else 2 * shape[-1],)
            out = [shape]
        elif self.merge_mode is None:
            out = [shape, shape]
        else:
            out = [shape]
        if self.return_state:
            return out + states + states
        return out[0] if len(out) == 1 else out

    def get_config(self):
        config = super().get_config()
        config.update({
            "layer": {"class_name": type(self.forward_layer).__name__,
                      "config": self.forward_layer.get_config()},
            "merge_mode": self.merge_mode,
            "backward_layer": {"class_name": type(self.backward_layer).__name__,
                               "config": self.backward_layer.get_config()},
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("layer", "backward_layer"):
            spec = config.get(key)
            if isinstance(spec, dict) and "class_name" in spec:
                sub = _resolve_class(spec["class_name"])
                sub_cfg = spec["config"]
                config[key] = sub.from_config(sub_cfg) if hasattr(sub, "from_config") \
                    else sub(**sub_cfg)
        return cls(**config)
