"""Stateful metrics: ``update_state``, ``result``, ``reset_state``; Keras names.

Metric state lives in non-trainable :class:`unidl.Variable` objects, so updates run inside
compiled steps (``tf.function``) too.

Example:
    >>> import unidl
    >>> from unidl import metrics, ops
    >>> with unidl.use_backend("numpy"):
    ...     m = metrics.SparseCategoricalAccuracy()
    ...     m.update_state([1, 0], [[0.1, 0.9], [0.2, 0.8]])
    ...     float(ops.to_numpy(m.result()))
    0.5
"""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt
from unidl import losses as _losses
from unidl import ops

__all__ = [
    "Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "SparseCategoricalAccuracy",
    "CategoricalAccuracy", "BinaryAccuracy", "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "Precision",
    "Recall", "AUC", "get",
]


class Metric:
    """Base class. Subclasses create state with :meth:`add_variable` and define
    ``update_state`` and ``result``."""

    def __init__(self, name=None, dtype="float32"):
        self.name = name or type(self).__name__.lower()
        self.dtype = dtype
        self._variables = []

    def add_variable(self, shape=(), initializer=0.0, name=None):
        from unidl.variables import Variable

        v = Variable(np.full(shape, initializer, dtype=np.float32), trainable=False,
                     name=f"{self.name}/{name or 'state'}", dtype=self.dtype)
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


def _weighted(values, sample_weight):
    if ops.dtype(values) != "float32":
        values = ops.cast(values, "float32")
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
    w = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    while len(ops.shape(w)) > len(ops.shape(values)):
        w = ops.squeeze(w, -1)
    w = ops.broadcast_to(w, ops.shape(values))
    return ops.sum(ops.multiply(values, w)), ops.sum(w)


def _size(x):
    n = 1
    for d in ops.shape(x):
        n *= d
    return n


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state``."""

    def __init__(self, name="mean", dtype="float32"):
        super().__init__(name, dtype)
        self.total = self.add_variable(name="total")
        self.count = self.add_variable(name="count")

    def update_state(self, values, sample_weight=None):
        total, count = _weighted(ops.convert_to_tensor(values), sample_weight)
        if self.dtype == "float32" and ops.shape(total) == ():
            # the loss tracker's per-step path: float32 scalars, so the sums are added
            # without the conversions and checks of ``assign_add`` (in place where the
            # backend can: the same float additions)
            add_to = self.total._be.add_to_variable
            for var, delta in ((self.total, total), (self.count, count)):
                var._storage = add_to(var._storage, delta)
            return
        self.total.assign_add(total)
        self.count.assign_add(count)

    def result(self):
        return ops.divide(self.total.value, ops.maximum(self.count.value, 1e-12))


class Sum(Metric):
    def __init__(self, name="sum", dtype="float32"):
        super().__init__(name, dtype)
        self.total = self.add_variable(name="total")

    def update_state(self, values, sample_weight=None):
        self.total.assign_add(_weighted(ops.convert_to_tensor(values), sample_weight)[0])

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
            if _FUNCTIONS().get(name) is not self.fn:
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
            fn = _FUNCTIONS().get(name)
            if fn is None:
                raise ValueError(f"unknown metric function {name!r}; known: "
                                 f"{', '.join(sorted(_FUNCTIONS()))}")
            return cls(fn, **config)
        return cls(**config)


def _FUNCTIONS() -> dict:  # noqa: N802  (a constant table, built on first use)
    """The metric and loss functions a :class:`MeanMetricWrapper` config may name."""
    if not _FUNCTION_TABLE:
        for fn in (accuracy, sparse_categorical_accuracy, categorical_accuracy,
                   binary_accuracy, top_k_categorical_accuracy,
                   sparse_top_k_categorical_accuracy, _losses.mean_squared_error,
                   _losses.mean_absolute_error, _losses.sparse_categorical_crossentropy,
                   _losses.categorical_crossentropy, _losses.binary_crossentropy,
                   _losses.huber, _losses.kl_divergence):
            _FUNCTION_TABLE[fn.__name__] = fn
    return _FUNCTION_TABLE


_FUNCTION_TABLE: dict = {}


def _labels(y_true, y_pred):
    y_true = ops.convert_to_tensor(y_true)
    if len(ops.shape(y_true)) == len(ops.shape(y_pred)) and ops.shape(y_true)[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return ops.cast(y_true, "int64")


def sparse_categorical_accuracy(y_true, y_pred):
    return ops.equal(_labels(y_true, y_pred), ops.argmax(y_pred, -1))


def categorical_accuracy(y_true, y_pred):
    return ops.equal(ops.argmax(ops.convert_to_tensor(y_true), -1), ops.argmax(y_pred, -1))


def binary_accuracy(y_true, y_pred, threshold=0.5):
    pred = ops.cast(ops.greater(y_pred, threshold), ops.dtype(y_pred))
    return ops.mean(ops.cast(ops.equal(ops.cast(ops.convert_to_tensor(y_true),
                                                ops.dtype(y_pred)), pred), "float32"), -1)


def accuracy(y_true, y_pred):
    y_true = ops.convert_to_tensor(y_true)
    return ops.equal(ops.cast(y_true, ops.dtype(y_pred)), y_pred)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(ops.argmax(ops.convert_to_tensor(y_true), -1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(_labels(y_true, y_pred), y_pred, k)


def _in_top_k(labels, y_pred, k):
    k = min(k, ops.shape(y_pred)[-1])
    _, idx = ops.top_k(y_pred, k)
    return ops.any(ops.equal(idx, ops.expand_dims(labels, -1)), -1)


class Accuracy(MeanMetricWrapper):
    def __init__(self, name="accuracy", dtype="float32"):
        super().__init__(accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy", dtype="float32"):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy", dtype="float32"):
        super().__init__(categorical_accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype="float32", threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype="float32"):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype="float32"):
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, k=k)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype="float32"):
        super().__init__(_losses.mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype="float32"):
        super().__init__(_losses.mean_absolute_error, name, dtype)


class _Confusion(Metric):
    """True/false positives and negatives at one or more thresholds."""

    def __init__(self, thresholds, name, dtype="float32"):
        super().__init__(name, dtype)
        self._thresholds_arg = thresholds
        self.thresholds = np.asarray(thresholds, dtype=np.float32).reshape(-1)
        n = len(self.thresholds)
        self.tp = self.add_variable((n,), name="tp")
        self.fp = self.add_variable((n,), name="fp")
        self.tn = self.add_variable((n,), name="tn")
        self.fn = self.add_variable((n,), name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.reshape(ops.cast(ops.convert_to_tensor(y_pred), "float32"), (-1, 1))
        y_true = ops.reshape(ops.cast(ops.convert_to_tensor(y_true), "float32"), (-1, 1))
        w = ops.ones_like(y_true) if sample_weight is None else \
            ops.reshape(ops.cast(ops.convert_to_tensor(sample_weight), "float32"), (-1, 1))
        pred_pos = ops.cast(ops.greater(y_pred, ops.convert_to_tensor(self.thresholds)),
                            "float32")
        true_pos = ops.cast(ops.greater(y_true, 0.5), "float32")
        true_neg = ops.subtract(1.0, true_pos)
        pred_neg = ops.subtract(1.0, pred_pos)
        self.tp.assign_add(ops.sum(ops.multiply(ops.multiply(pred_pos, true_pos), w), 0))
        self.fp.assign_add(ops.sum(ops.multiply(ops.multiply(pred_pos, true_neg), w), 0))
        self.tn.assign_add(ops.sum(ops.multiply(ops.multiply(pred_neg, true_neg), w), 0))
        self.fn.assign_add(ops.sum(ops.multiply(ops.multiply(pred_neg, true_pos), w), 0))


def _safe_div(a, b):
    return ops.divide(a, ops.maximum(b, 1e-12))


class Precision(_Confusion):
    """TP / (TP + FP) at ``thresholds`` (default 0.5)."""

    def __init__(self, thresholds=0.5, name="precision", dtype="float32"):
        super().__init__(thresholds, name, dtype)

    def get_config(self):
        return {**super().get_config(), "thresholds": self._thresholds_arg}

    def result(self):
        r = _safe_div(self.tp.value, ops.add(self.tp.value, self.fp.value))
        return r[0] if len(self.thresholds) == 1 else r


class Recall(_Confusion):
    """TP / (TP + FN) at ``thresholds`` (default 0.5)."""

    def __init__(self, thresholds=0.5, name="recall", dtype="float32"):
        super().__init__(thresholds, name, dtype)

    def get_config(self):
        return {**super().get_config(), "thresholds": self._thresholds_arg}

    def result(self):
        r = _safe_div(self.tp.value, ops.add(self.tp.value, self.fn.value))
        return r[0] if len(self.thresholds) == 1 else r


class AUC(_Confusion):
    """Area under the ROC (or PR) curve, by a Riemann sum over ``num_thresholds`` thresholds
    (Keras' default "interpolation" for ROC)."""

    def __init__(self, num_thresholds=200, curve="ROC", name="auc", dtype="float32"):
        eps = 1e-7
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        super().__init__([0.0 - eps] + inner + [1.0 + eps], name, dtype)
        if curve not in ("ROC", "PR"):
            raise ValueError("AUC curve must be 'ROC' or 'PR'")
        self.curve = curve
        self.num_thresholds = num_thresholds

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "curve": self.curve}

    def result(self):
        tp, fp, tn, fn = (v.value for v in (self.tp, self.fp, self.tn, self.fn))
        recall = _safe_div(tp, ops.add(tp, fn))
        if self.curve == "ROC":
            x = _safe_div(fp, ops.add(fp, tn))
            y = recall
        else:
            x = recall
            y = _safe_div(tp, ops.add(tp, fp))
        n = len(self.thresholds)
        dx = ops.subtract(ops.slice(x, (0,), (n - 1,)), ops.slice(x, (1,), (n - 1,)))
        hy = ops.multiply(ops.add(ops.slice(y, (0,), (n - 1,)), ops.slice(y, (1,), (n - 1,))), 0.5)
        return ops.sum(ops.multiply(dx, hy))


_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "precision": Precision, "recall": Recall, "auc": AUC, "mean": Mean, "sum": Sum,
}


def get(identifier, loss=None):
    """A metric from a name, a Metric, or a function ``(y_true, y_pred)``.

    ``"accuracy"`` (or ``"acc"``) follows the loss's convention: sparse labels with sparse
    categorical cross-entropy, one-hot with categorical, thresholded with binary.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            cls = {"sparse_categorical_crossentropy": SparseCategoricalAccuracy,
                   "categorical_crossentropy": CategoricalAccuracy,
                   "binary_crossentropy": BinaryAccuracy}.get(getattr(loss, "name", None),
                                                              Accuracy)
            return cls(name=identifier)
        cls = _BY_NAME.get(key)
        if cls is None:
            known = sorted(set(_BY_NAME) | {"accuracy"})
            raise ValueError(f"unknown metric {identifier!r}; known metrics: {', '.join(known)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None))
    raise ValueError(f"cannot interpret {identifier!r} as a metric")


def _is_float(x):
    return _dt.is_float(ops.dtype(x))
