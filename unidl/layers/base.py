"""The ``Layer`` base class: weights, nested-layer tracking, lazy building, symbolic calls.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> class Scale(layers.Layer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight((input_shape[-1],), initializer="ones", name="w")
    ...     def call(self, x):
    ...         return ops.multiply(x, self.w)
    >>> with unidl.use_backend("numpy"):
    ...     layer = Scale()
    ...     y = layer(ops.ones((2, 3)))
    ...     layer.count_params()
    3
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from unidl import dtypes as _dt
from unidl.errors import UnidlError
from unidl.mixed_precision.policy import _GLOBAL as _GLOBAL_POLICY
from unidl.naming import snake_case

__all__ = ["Layer", "LayerError", "SymbolicTensor", "activity_penalty", "unique_name"]

_NAME_COUNTS: dict = defaultdict(int)

#: ``id(variable) -> (float value, dtype it is read as)`` while a layer with a mixed policy
#: (or one inside it) runs: see :mod:`unidl.mixed_precision.autocast`
AUTOCAST_SWAPS: dict = {}


def unique_name(prefix: str) -> str:
    """``prefix``, ``prefix_1``, ``prefix_2`` … (per process)."""
    n = _NAME_COUNTS[prefix]
    _NAME_COUNTS[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


class LayerError(UnidlError, ValueError):
    """A layer was given inputs or arguments it cannot accept; the message names the layer."""

    def __init__(self, layer, message: str):
        name = getattr(layer, "name", str(layer))
        super().__init__(f"layer {name!r} ({type(layer).__name__}): {message}")


class SymbolicTensor:
    """A placeholder flowing through the functional API: a shape (None = any), a dtype, and the
    layer call that produced it."""

    def __init__(self, shape, dtype="float32", producer=None, index=0, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = _dt.standardize(dtype)
        self.producer = producer  # (layer, input structure, call kwargs) or None for Input
        self.index = index
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype} name={self.name}>"


def _flatten(x):
    from unidl import tree

    return tree.flatten(x)


_CONTAINERS = (list, tuple, dict)
_SYMBOLIC_OR_CONTAINER = (SymbolicTensor, list, tuple, dict)


def _is_symbolic(*xs) -> bool:
    leaves, _ = _flatten(list(xs))
    return any(isinstance(v, SymbolicTensor) for v in leaves)


def _is_symbolic_call(inputs, args, kwargs) -> bool:
    """``_is_symbolic(inputs, args, kwargs)``, without flattening in the common eager call
    ``layer(tensor, training=...)``."""
    if args or isinstance(inputs, _CONTAINERS):
        return _is_symbolic(inputs, args, kwargs)
    for v in kwargs.values():  # (a loop, not any(): this runs for every layer call)
        if isinstance(v, _SYMBOLIC_OR_CONTAINER):
            return _is_symbolic(inputs, args, kwargs)
    return isinstance(inputs, SymbolicTensor)


def _static_shape(x):
    from unidl import ops

    if isinstance(x, SymbolicTensor):
        return x.shape
    return tuple(ops.shape(x))


class Layer:
    """Base class of all layers.

    Subclasses create weights in :meth:`build` (called once, on the first call, with the
    input shape) using :meth:`add_weight`, and compute in :meth:`call`. Layers and Variables
    assigned as attributes (also inside lists and dicts) are tracked automatically.

    Args:
        name: unique name (default: from the class name).
        dtype: the dtype policy (:mod:`unidl.mixed_precision`): a dtype for the weights and
            the computation, or ``"mixed_float16"`` / ``"mixed_bfloat16"`` (float32 weights,
            computation in the low precision); default: the global policy (float32).
            :attr:`dtype` is the weights' dtype, :attr:`compute_dtype` the computation's.
        trainable: whether the weights are updated by training.
        input_shape: shape of one example (without the batch axis); lets a model be built
            before it sees data.
        activity_regularizer: a regularizer (object, callable or name) of the layer's
            outputs: after each call, :func:`activity_penalty` of every output joins
            :attr:`losses` (one rule for every layer, as Keras 3).
    """

    _activity_reg_fn = None  # the resolved activity regularizer (None: none)

    def __init__(self, name=None, dtype=None, trainable=True, input_shape=None,
                 activity_regularizer=None, **kwargs):
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        object.__setattr__(self, "_tracked_layers", [])
        object.__setattr__(self, "_own_weights", [])
        self.name = name or unique_name(snake_case(type(self).__name__))
        self._set_dtype_policy(dtype)
        self._trainable = trainable
        self.built = False
        if batch_input_shape is None and input_shape is not None:
            batch_input_shape = (None,) + tuple(input_shape)
        self._batch_input_shape = tuple(batch_input_shape) if batch_input_shape else None
        self._activity_losses = []
        self.input_shape_seen = None
        if activity_regularizer is not None:
            from unidl import regularizers

            object.__setattr__(self, "_activity_reg_fn", regularizers.get(activity_regularizer))

    def _set_dtype_policy(self, dtype):
        if dtype is None and not _GLOBAL_POLICY[0]:
            self.dtype = _dt.DEFAULT_FLOAT
            self._dtype_policy, self._autocast = None, None
            return
        from unidl.mixed_precision.policy import resolve_policy

        policy = resolve_policy(dtype)
        self.dtype = policy.variable_dtype
        self._dtype_policy = policy
        self._autocast = policy.compute_dtype if policy.is_mixed else None

    @property
    def compute_dtype(self) -> str:
        """The dtype the layer computes in: :attr:`dtype` (the weights'), except under a mixed
        policy (so assigning ``layer.dtype`` moves both, as for a plain dtype policy)."""
        return self._autocast or self.dtype

    @property
    def dtype_policy(self):
        """The layer's :class:`~unidl.mixed_precision.DTypePolicy`."""
        if self._dtype_policy is None:
            from unidl.mixed_precision.policy import DTypePolicy

            self._dtype_policy = DTypePolicy(self.dtype)
        return self._dtype_policy

    @property
    def variable_dtype(self) -> str:
        """The dtype of the layer's weights (the same as :attr:`dtype`)."""
        return self.dtype

    # -- tracking ---------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if not name.startswith("__"):
            self._track(value)
        object.__setattr__(self, name, value)

    def _track(self, value):
        from unidl.variables import Variable

        if isinstance(value, Layer):
            if value is not self and all(value is not t for t in self._tracked_layers):
                self._tracked_layers.append(value)
        elif isinstance(value, Variable):
            if all(value is not w for w in self._own_weights):
                self._own_weights.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._track(v)
        elif isinstance(value, dict):
            for v in value.values():
                self._track(v)

    @property
    def layers(self) -> list:
        """Directly nested layers, in the order they were assigned."""
        return list(self._tracked_layers)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool):
        self._trainable = bool(value)
        for layer in self._tracked_layers:
            layer.trainable = value

    def _all_weights(self, trainable):
        out, seen = [], set()

        def visit(layer, parent_trainable):
            t = parent_trainable and layer._trainable
            for w in layer._own_weights:
                if id(w) in seen:
                    continue
                is_trainable = t and w.trainable
                if trainable is None or trainable == is_trainable:
                    seen.add(id(w))
                    out.append(w)
            for sub in layer._tracked_layers:
                visit(sub, t)

        visit(self, True)
        return out

    @property
    def weights(self) -> list:
        """Every weight of this layer and its nested layers (trainable ones first)."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self) -> list:
        return self._all_weights(True)

    @property
    def non_trainable_weights(self) -> list:
        return self._all_weights(False)

    @property
    def variables(self) -> list:
        return self.weights

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self) -> list:
        """The weights as NumPy arrays, in :attr:`weights` order."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, values) -> None:
        """Set the weights from NumPy arrays, in :attr:`weights` order (nothing is assigned
        unless every array fits)."""
        weights = self.weights
        values = [np.asarray(v) for v in values]
        if not weights and values:
            raise LayerError(self, f"set_weights got {len(values)} arrays but the layer has no "
                                   "weights yet (it is not built): call it on a batch or "
                                   "build(input_shape) first")
        if len(values) != len(weights):
            raise LayerError(self, f"set_weights expected {len(weights)} arrays, got "
                                   f"{len(values)}")
        for i, (w, v) in enumerate(zip(weights, values)):
            if tuple(v.shape) != tuple(w.shape):
                raise LayerError(self, f"set_weights: weight {i} {w.name!r} has shape "
                                       f"{tuple(w.shape)}, got an array of shape {v.shape}")
        for w, v in zip(weights, values):
            w.assign(v)

    def count_params(self) -> int:
        """The number of scalars in all weights."""
        if not self.built:
            raise LayerError(self, "is not built yet: call it on data (or give input_shape)")
        return int(sum(int(np.prod(w.shape, dtype=np.int64)) for w in self.weights))

    # -- weights ----------------------------------------------------------------------------
    def add_weight(self, shape=(), initializer="glorot_uniform", regularizer=None,
                   trainable=True, dtype=None, name=None, constraint=None):
        """Create a weight, initialized on the host so every backend gets the same values.

        Args:
            shape: the weight's shape.
            initializer: an initializer object, callable ``(shape, dtype) -> array`` or name.
            regularizer: a regularizer (or name) whose penalty joins :attr:`losses`.
            trainable: whether training updates it.
            dtype: default: the layer's dtype.
            name: the weight's name (prefixed by the layer's name).
        """
        from unidl import initializers, regularizers
        from unidl.variables import Variable

        dtype = _dt.standardize(dtype) if dtype is not None else self.dtype
        if initializer is None:
            initializer = "glorot_uniform" if _dt.is_float(dtype) else "zeros"
        init = initializers.get(initializer)
        value = init(tuple(int(d) for d in shape), dtype=dtype)
        var = Variable(value, trainable=trainable, name=f"{self.name}/{name or 'weight'}",
                       dtype=dtype)
        var.regularizer = regularizers.get(regularizer) if regularizer is not None else None
        from unidl import constraints

        var.constraint = constraints.get(constraint)
        self._own_weights.append(var)
        return var

    # -- losses -----------------------------------------------------------------------------
    @property
    def losses(self) -> list:
        """Regularization penalties of every weight, plus losses added with :meth:`add_loss`
        during the last call (nested layers included)."""
        out = []
        for w in self._all_weights(None):
            reg = getattr(w, "regularizer", None)
            if reg is not None:
                out.append(reg(w.value))
        stack = [self]
        while stack:
            layer = stack.pop()
            if layer._activity_losses:
                out.extend(layer._activity_losses)
            stack.extend(layer._tracked_layers)
        return out

    def add_loss(self, loss) -> None:
        """Add a loss tensor (cleared at the start of each top-level call)."""
        self._activity_losses.append(loss)

    # -- calling ----------------------------------------------------------------------------
    def build(self, input_shape) -> None:
        """Create weights for inputs of ``input_shape``; the default creates none."""
        self.built = True

    def call(self, inputs, *args, **kwargs):
        """The computation; every layer class defines it."""
        raise UnidlError(f"{type(self).__name__} must define call()")

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape``; default: run :meth:`call` on dummy data."""
        return None

    def _maybe_build(self, inputs):
        if self.built:
            return
        leaves, _ = _flatten(inputs)
        shapes = [_static_shape(v) for v in leaves]
        shape = shapes[0] if len(shapes) == 1 else shapes
        if isinstance(inputs, (list, tuple)) and len(leaves) > 1:
            shape = [_static_shape(v) for v in inputs]
        self.build(shape)
        self.built = True

    def __call__(self, inputs, *args, **kwargs):
        if _is_symbolic_call(inputs, args, kwargs):
            from unidl.models.functional import call_symbolic

            return call_symbolic(self, inputs, args, kwargs)
        object.__setattr__(self, "_activity_losses", [])  # (an empty list: nothing to track)
        if not self.built:
            self._maybe_build(inputs)
        if "training" in kwargs and not _accepts_training(self):
            kwargs.pop("training")
        if self._autocast is None and not AUTOCAST_SWAPS:
            outputs = self.call(inputs, *args, **kwargs)
        else:  # a mixed policy, or inside a layer of one: see unidl.mixed_precision.autocast
            from unidl.mixed_precision.autocast import autocast_call

            outputs = autocast_call(self, inputs, args, kwargs)
        if self._activity_reg_fn is not None:
            from unidl import ops, tree

            for out in tree.flatten(outputs)[0]:
                if ops.is_tensor(out):
                    self._activity_losses.append(activity_penalty(self._activity_reg_fn, out))
        return outputs

    def get_config(self) -> dict:
        dtype = self.dtype if self._autocast is None else self._dtype_policy.name
        return {"name": self.name, "dtype": dtype, "trainable": self.trainable}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def activity_penalty(regularizer, output):
    """The activity-regularization loss of one layer output, for every layer (Keras 3's
    rule, ``Layer.__call__`` since keras-team/keras#22021, e.g. Keras 3.15):
    ``regularizer(output)`` divided by the batch size (the first axis's length, the division
    skipped for an empty batch; a scalar output is not divided), so the penalty does not
    grow with the batch size.

    Example:
        >>> import unidl
        >>> from unidl import ops, regularizers
        >>> from unidl.layers.base import activity_penalty
        >>> with unidl.use_backend("numpy"):
        ...     out = ops.ones((4, 3))  # a batch of 4 outputs
        ...     round(float(activity_penalty(regularizers.L2(0.01), out)), 4)
        0.03
    """
    from unidl import ops

    loss = regularizer(output)
    shape = ops.shape(output)
    if not shape:
        return loss
    batch = shape[0]
    if batch is None:  # unknown while tracing: count the rows
        rows = ops.ones_like(output)
        if len(shape) > 1:
            rows = ops.max(rows, axis=tuple(range(1, len(shape))))
        batch = ops.maximum(ops.sum(rows), 1.0)
        return ops.divide(loss, ops.cast(batch, ops.dtype(loss)))
    return ops.divide(loss, float(batch)) if batch else loss


_ACCEPTS: dict = {}


def _accepts_training(layer) -> bool:
    cls = type(layer)
    if cls not in _ACCEPTS:
        import inspect

        params = inspect.signature(cls.call).parameters
        _ACCEPTS[cls] = "training" in params or any(
            p.kind == p.VAR_KEYWORD for p in params.values())
    return _ACCEPTS[cls]


def _dtype_shared_with(*names):
    """A ``dtype`` that an assignment also gives to the sub-layers ``names``: a wrapper's
    weights are its sub-layers', so ``layer.dtype = "float64"`` must reach them (before, a
    float64 ``Bidirectional`` ran its LSTMs in float32). For the layers that wrap others
    (``RNN``, ``Bidirectional``, the pruning wrapper) as a class attribute."""

    def get(self):
        return self.__dict__["_dtype"]

    def set_(self, value):
        self.__dict__["_dtype"] = value
        for name in names:
            sub = self.__dict__.get(name)
            if isinstance(sub, Layer) and sub.dtype != value:
                sub.dtype = value

    return property(get, set_, doc="The weights' dtype; assigning it sets the sub-layers' too.")
