"""The metric base class, the running means and sums, and helpers shared by the metrics.

Everything a metric does in ``update_state`` goes through :mod:`unidl.ops` on tensors whose
shapes are known when the step is traced, so it runs on every backend and inside compiled
steps (``tf.function``): no host reads, no branch on a tensor's value.

Example:
    >>> import unidl
    >>> from unidl import metrics, ops
    >>> with unidl.use_backend("numpy"):
    ...     m = metrics.Mean()
    ...     m.update_state([1.0, 2.0, 6.0], sample_weight=[1.0, 1.0, 0.0])
    ...     float(ops.to_numpy(m.result()))
    1.5
"""

from __future__ import annotations

import math

import numpy as np

from unidl import dtypes as _dt
from unidl import ops

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper"]


class Metric:
    """Base class. Subclasses create state with :meth:`add_variable` and define
    ``update_state`` and ``result``.

    ``dtype`` (default ``"float32"``; ``None`` means the same) is the dtype of the state and
    of the arithmetic: ``"float64"`` metrics accumulate in float64 on every backend.
    """

    def __init__(self, name=None, dtype="float32"):
        self.name = name or type(self).__name__.lower()
        self.dtype = "float32" if dtype is None else dtype
        self._dtype = _dt.standardize(self.dtype)
        self._variables = []

    def add_variable(self, shape=(), initializer=0.0, name=None):
        """A non-trainable :class:`unidl.Variable` of this metric's dtype, filled with
        ``initializer`` (and refilled with it by :meth:`reset_state`)."""
        from unidl.variables import Variable

        v = Variable(np.full(shape, initializer, dtype=np.float32), trainable=False,
                     name=f"{self.name}/{name or 'state'}", dtype=self._dtype)
        v._initial = float(initializer)
        self._variables.append(v)
        return v

    @property
    def variables(self):
        return list(self._variables)

    def reset_state(self):
        for v in self._variables:
            v.assign(np.full(v.shape, v._initial, dtype=np.float32))

    def update_state(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} must define update_state")

    def result(self):
        raise TypeError(f"{type(self).__name__} must define result")

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        """The constructor's arguments (what ``model.save`` stores)."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


# -- helpers shared by the metrics ---------------------------------------------------------------
def as_dtype(x, dtype):
    """``x`` as a tensor of ``dtype`` (cast only when it differs)."""
    x = ops.convert_to_tensor(x)
    return x if ops.dtype(x) == dtype else ops.cast(x, dtype)


def divide_no_nan(a, b):
    """``a / b``, and 0 where ``b`` is 0 (scikit-learn's ``zero_division=0``).

    >>> import unidl
    >>> with unidl.use_backend("numpy"):
    ...     ops.to_numpy(divide_no_nan(ops.convert_to_tensor([1.0, 2.0]),
    ...                                ops.convert_to_tensor([0.0, 4.0]))).tolist()
    [0.0, 0.5]
    """
    zero = ops.equal(b, 0)
    return ops.where(zero, 0.0, ops.divide(a, ops.where(zero, 1.0, b)))


def expand_weight(sample_weight, like, dtype):
    """``sample_weight`` (None, a scalar, ``(N,)``, or the shape of ``like``) broadcast to the
    shape of ``like``: trailing axes of size 1 are added, as Keras does. None stays None."""
    if sample_weight is None:
        return None
    w = as_dtype(sample_weight, dtype)
    rank = len(ops.shape(like))
    while len(ops.shape(w)) > rank and ops.shape(w)[-1] == 1:
        w = ops.squeeze(w, -1)
    while 0 < len(ops.shape(w)) < rank:
        w = ops.expand_dims(w, -1)
    shape = ops.shape(like)
    if ops.shape(w) == shape and None not in shape:
        return w
    if None in shape:  # a batch size unknown while tracing: broadcast by multiplication
        return ops.multiply(w, ops.ones_like(as_dtype(like, dtype)))
    return ops.broadcast_to(w, shape)


def static_dim(metric, x, axis, what):
    """The size of ``x`` on ``axis``, which must be known when the step is traced."""
    shape = ops.shape(x)
    if not shape:
        raise ValueError(f"{type(metric).__name__}: {what} must have at least one axis; "
                         "got a scalar")
    n = shape[axis]
    if n is None:
        raise ValueError(f"{type(metric).__name__}: the size of the last axis of {what} must "
                         f"be known when the step is traced; got shape {shape}")
    return n


def _weighted(values, sample_weight, dtype="float32"):
    """``(sum of values x weights, sum of weights)`` in ``dtype``."""
    if ops.dtype(values) != dtype:
        values = ops.cast(values, dtype)
    if sample_weight is None:
        shape = ops.shape(values)
        if not shape:  # one value (a loss): its own sum, a count of one
            return values, 1.0
        if all(isinstance(d, int) for d in shape):  # a static shape: the count is a constant
            n = 1
            for d in shape:
                n *= d
            return ops.sum(values), float(n)
        return ops.sum(values), ops.sum(ops.ones_like(values))
    w = expand_weight(sample_weight, values, dtype)
    return ops.sum(ops.multiply(values, w)), ops.sum(w)


def _unweighted_sums(values):
    """``(sum, count)`` of ``values`` (static shape) for a float32 running sum, or None.

    The sum of booleans (an accuracy's hits) stays an integer count, which the backend's
    ``add_to_variable`` converts as it adds: a cast of every value to float32 cost 4 us of
    a 128-sample evaluation step on torch (a 2-core Xeon). Integer counts below 2**24 are
    exact in float32, as the float sum was."""
    shape = ops.shape(values)
    if not all(isinstance(d, int) for d in shape):
        return None
    dtype = ops.dtype(values)
    if dtype == "bool" and shape:
        return ops.sum(values), float(math.prod(shape))
    if dtype != "float32":
        values = ops.cast(values, "float32")
    return (ops.sum(values) if shape else values), float(math.prod(shape))


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state``.

    ``sample_weight`` broadcasts to the values (a ``(N,)`` weight for ``(N, T)`` values
    weighs each row).
    """

    def __init__(self, name="mean", dtype="float32"):
        super().__init__(name, dtype)
        self.total = self.add_variable(name="total")
        self.count = self.add_variable(name="count")

    def update_state(self, values, sample_weight=None):
        values = ops.convert_to_tensor(values)
        sums = _unweighted_sums(values) if self._dtype == "float32" and \
            sample_weight is None else None
        if sums is not None:
            # the per-step path of the loss tracker and the accuracies: scalar sums added
            # without the conversions and checks of ``assign_add`` (in place where the
            # backend can: the same float additions)
            add_to = self.total._be.add_to_variable
            for var, delta in zip((self.total, self.count), sums):
                var._storage = add_to(var._storage, delta)
            return
        total, count = _weighted(values, sample_weight, self._dtype)
        self.total.assign_add(total)
        self.count.assign_add(count)

    def result(self):
        return ops.divide(self.total.value, ops.maximum(self.count.value, 1e-12))


class Sum(Metric):
    """The (weighted) sum of the values given to ``update_state``."""

    def __init__(self, name="sum", dtype="float32"):
        super().__init__(name, dtype)
        self.total = self.add_variable(name="total")

    def update_state(self, values, sample_weight=None):
        self.total.assign_add(_weighted(ops.convert_to_tensor(values), sample_weight,
                                        self._dtype)[0])

    def result(self):
        return self.total.value


class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred)`` per example."""

    def __init__(self, fn, name=None, dtype="float32", **kwargs):
        super().__init__(name or fn.__name__, dtype)
        self.fn = fn
        self.kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.fn(y_true, ops.convert_to_tensor(y_pred), **self.kwargs),
                             sample_weight)

    def get_config(self) -> dict:
        """Subclasses: their own arguments. A wrapper of a function: the function's name (a
        unidl metric or loss function; a function of your own holds code, which is never
        saved: wrap it in a registered Metric subclass instead)."""
        config = {**super().get_config(), **self.kwargs}
        if type(self) is MeanMetricWrapper:
            name = getattr(self.fn, "__name__", "")
            if _functions().get(name) is not self.fn:
                from unidl.saving.registry import SerializationError

                raise SerializationError(
                    f"metric {self.name!r} wraps the function {self.fn!r}, which holds code "
                    "unidl never saves; use a unidl metric or a Metric subclass registered "
                    "with @unidl.saving.register_serializable()")
            config["fn"] = name
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if cls is MeanMetricWrapper:
            name = config.pop("fn")
            fn = _functions().get(name)
            if fn is None:
                raise ValueError(f"unknown metric function {name!r}; known: "
                                 f"{', '.join(sorted(_functions()))}")
            return cls(fn, **config)
        return cls(**config)


def _functions() -> dict:
    """The metric and loss functions a :class:`MeanMetricWrapper` config may name."""
    if not _FUNCTION_TABLE:
        from unidl import losses as _losses
        from unidl.metrics import accuracy_metrics as _acc

        for fn in (_acc.accuracy, _acc.sparse_categorical_accuracy, _acc.categorical_accuracy,
                   _acc.binary_accuracy, _acc.top_k_categorical_accuracy,
                   _acc.sparse_top_k_categorical_accuracy, _losses.mean_squared_error,
                   _losses.mean_absolute_error, _losses.sparse_categorical_crossentropy,
                   _losses.categorical_crossentropy, _losses.binary_crossentropy,
                   _losses.huber, _losses.kl_divergence):
            _FUNCTION_TABLE[fn.__name__] = fn
    return _FUNCTION_TABLE


_FUNCTION_TABLE: dict = {}
