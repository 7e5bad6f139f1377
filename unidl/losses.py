"""Losses for training: objects and functions, resolvable by their Keras names.

A loss object is called as ``loss(y_true, y_pred, sample_weight=None)`` and returns the
mean over the batch of the per-example losses (weighted by ``sample_weight`` if given,
divided by the batch size as Keras does). The per-example computations are spec ops
(``ops.sparse_categorical_crossentropy`` ...) or composites of them.

Example:
    >>> import unidl
    >>> from unidl import losses, ops
    >>> with unidl.use_backend("numpy"):
    ...     loss = losses.get("mse")
    ...     float(ops.to_numpy(loss([[0.0, 2.0]], [[1.0, 2.0]])))
    0.5
"""

from __future__ import annotations

import functools

from unidl import dtypes as _dt
from unidl import ops
from unidl.backend.state import current_backend

__all__ = [
    "Loss",
    "SparseCategoricalCrossentropy",
    "CategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "KLDivergence",
    "LossFunctionWrapper",
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "huber",
    "kl_divergence",
    "get",
]

EPSILON = 1e-7


def _float_like(y_true, y_pred):
    """``y_true`` in ``y_pred``'s dtype and rank: a trailing axis of size 1 is added or
    removed when the ranks differ by one (as Keras: labels ``(N,)`` against a ``Dense(1)``
    output ``(N, 1)`` would otherwise broadcast to ``(N, N)``)."""
    y_true = ops.convert_to_tensor(y_true)
    nt, np_ = len(ops.shape(y_true)), len(ops.shape(y_pred))
    if np_ == nt + 1 and ops.shape(y_pred)[-1] == 1:
        y_true = ops.expand_dims(y_true, -1)
    elif nt == np_ + 1 and ops.shape(y_true)[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return ops.cast(y_true, ops.dtype(y_pred)) if ops.dtype(y_true) != ops.dtype(y_pred) \
        else y_true


def _logits_if_softmax(y_pred, from_logits, axis):
    """``(logits, True)`` when ``y_pred`` are probabilities straight from a softmax, else
    the arguments as given."""
    if not from_logits:
        from unidl.logits import softmax_logits

        logits = softmax_logits(y_pred, axis)
        if logits is not None:
            return logits, True
    return y_pred, from_logits


# -- per-example loss functions ------------------------------------------------------------------
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Per-example cross-entropy of integer labels against probabilities or logits (the
    logits behind a softmax output when there are: :mod:`unidl.logits`)."""
    return ops.sparse_categorical_crossentropy(*_sparse_args(y_true, y_pred, from_logits,
                                                             axis), axis)


def _mean_sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """The batch mean of :func:`sparse_categorical_crossentropy`, as one op."""
    return ops.mean_sparse_categorical_crossentropy(*_sparse_args(y_true, y_pred, from_logits,
                                                                  axis), axis)


def _sparse_args(y_true, y_pred, from_logits, axis):
    """``(labels, scores, from_logits)``: integer labels without a trailing size-1 axis."""
    y_pred, from_logits = _logits_if_softmax(y_pred, from_logits, axis)
    y_true = ops.convert_to_tensor(y_true)
    if _dt.is_float(ops.dtype(y_true)):
        y_true = ops.cast(y_true, "int64")
    shape = ops.shape(y_true)
    if shape and len(shape) == len(ops.shape(y_pred)) and shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return y_true, y_pred, from_logits


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-example cross-entropy of one-hot (or soft) targets (from the logits behind a
    softmax output when there are: :mod:`unidl.logits`)."""
    y_pred, from_logits = _logits_if_softmax(y_pred, from_logits, axis)
    y_true = _float_like(y_true, y_pred)
    if label_smoothing:
        n = ops.shape(y_pred)[axis]
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), label_smoothing / n)
    return ops.categorical_crossentropy(y_true, y_pred, from_logits, axis)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-example binary cross-entropy, averaged over the last axis (as Keras)."""
    y_true = _float_like(y_true, y_pred)
    if label_smoothing:
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    # the op already averages over the last axis (Keras' per-example binary cross-entropy)
    return ops.binary_crossentropy(y_true, y_pred, from_logits)


def mean_squared_error(y_true, y_pred):
    return ops.mean_squared_error(_float_like(y_true, y_pred), y_pred)


def mean_absolute_error(y_true, y_pred):
    return ops.mean(ops.abs(ops.subtract(y_pred, _float_like(y_true, y_pred))), -1)


def huber(y_true, y_pred, delta=1.0):
    """Quadratic for errors below ``delta``, linear above (mean over the last axis)."""
    err = ops.abs(ops.subtract(y_pred, _float_like(y_true, y_pred)))
    quad = ops.minimum(err, delta)
    lin = ops.subtract(err, quad)
    return ops.mean(ops.add(ops.multiply(ops.multiply(quad, quad), 0.5),
                            ops.multiply(lin, delta)), -1)


def kl_divergence(y_true, y_pred):
    """``sum(y_true * log(y_true / y_pred))`` over the last axis, both clipped to [eps, 1]."""
    y_true = ops.clip(_float_like(y_true, y_pred), EPSILON, 1.0)
    y_pred = ops.clip(y_pred, EPSILON, 1.0)
    return ops.sum(ops.multiply(y_true, ops.log(ops.divide(y_true, y_pred))), -1)


# -- loss objects ---------------------------------------------------------------------------------
class Loss:
    """Base class: subclasses define ``call(y_true, y_pred)`` giving per-example losses."""

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in ("sum_over_batch_size", "sum", "none", "mean"):
            raise ValueError(f"unknown reduction {reduction!r}")
        self.name = name or type(self).__name__
        self.reduction = reduction

    def call(self, y_true, y_pred):
        raise TypeError(f"{type(self).__name__} must define call(y_true, y_pred)")

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if sample_weight is None and self.reduction in ("sum_over_batch_size", "mean"):
            fused = self._fused_mean()
            if fused is not None:
                return fused(y_true, y_pred)
        values = self.call(y_true, y_pred)
        if sample_weight is not None:
            w = ops.cast(ops.convert_to_tensor(sample_weight), ops.dtype(values))
            while len(ops.shape(w)) > len(ops.shape(values)):
                w = ops.squeeze(w, -1)
            values = ops.multiply(values, w)
        if self.reduction == "none":
            return values
        if self.reduction == "sum":
            return ops.sum(values)
        return ops.mean(values)

    def _fused_mean(self):
        """A function ``(y_true, y_pred)`` giving the batch mean as one op, where the active
        backend has a kernel for it; None otherwise (the mean of :meth:`call`)."""
        return None

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


class LossFunctionWrapper(Loss):
    """A loss object from a per-example function and its keyword arguments."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name or fn.__name__, reduction)
        self.fn = fn
        self.kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.kwargs)

    def _fused_mean(self):
        op, fn = _FUSED_MEANS.get(self.fn, (None, None))
        if op is None or current_backend().sources.get(op) != "kernel":
            return None
        return functools.partial(fn, **self.kwargs)

    def get_config(self):
        return {**super().get_config(), **self.kwargs}


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy of integer labels (``from_logits=False``: ``y_pred`` are probabilities)."""

    def __init__(self, from_logits=False, name="sparse_categorical_crossentropy", **kw):
        super().__init__(sparse_categorical_crossentropy, name=name, from_logits=from_logits, **kw)


class CategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, label_smoothing=0.0, name="categorical_crossentropy",
                 **kw):
        super().__init__(categorical_crossentropy, name=name, from_logits=from_logits,
                         label_smoothing=label_smoothing, **kw)


class BinaryCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, label_smoothing=0.0, name="binary_crossentropy", **kw):
        super().__init__(binary_crossentropy, name=name, from_logits=from_logits,
                         label_smoothing=label_smoothing, **kw)


class MeanSquaredError(LossFunctionWrapper):
    def __init__(self, name="mean_squared_error", **kw):
        super().__init__(mean_squared_error, name=name, **kw)


class MeanAbsoluteError(LossFunctionWrapper):
    def __init__(self, name="mean_absolute_error", **kw):
        super().__init__(mean_absolute_error, name=name, **kw)


class Huber(LossFunctionWrapper):
    def __init__(self, delta=1.0, name="huber_loss", **kw):
        super().__init__(huber, name=name, delta=delta, **kw)


class KLDivergence(LossFunctionWrapper):
    def __init__(self, name="kl_divergence", **kw):
        super().__init__(kl_divergence, name=name, **kw)


#: per-example loss function -> (the op of its batch mean, the function calling that op)
_FUSED_MEANS = {
    sparse_categorical_crossentropy: ("mean_sparse_categorical_crossentropy",
                                      _mean_sparse_categorical_crossentropy),
}

_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "huber_loss": Huber,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
}
for _cls in (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy,
             MeanSquaredError, MeanAbsoluteError, Huber, KLDivergence):
    _BY_NAME[_cls.__name__.lower()] = _cls
    _BY_NAME[_cls.__name__] = _cls


def get(identifier):
    """A loss object from a name (``"sparse_categorical_crossentropy"``, ``"mse"`` …), a Loss,
    or a callable ``(y_true, y_pred) -> per-example losses``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower())
        if cls is None:
            known = sorted(k for k in _BY_NAME if k.islower())
            raise ValueError(f"unknown loss {identifier!r}; known losses: {', '.join(known)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise ValueError(f"cannot interpret {identifier!r} as a loss")
