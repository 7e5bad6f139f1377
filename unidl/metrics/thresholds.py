"""Metrics from true/false positive/negative counts at fixed thresholds: ``Precision``,
``Recall``, ``AUC``, and the operating points ``PrecisionAtRecall``, ``RecallAtPrecision``,
``SensitivityAtSpecificity``, ``SpecificityAtSensitivity``.

``y_true`` holds binary labels (a value above 0.5 is positive), ``y_pred`` probabilities of
any shape with as many elements (multi-label outputs count every element); a prediction is
positive at a threshold ``t`` when ``y_pred > t`` (strictly, as Keras). ``sample_weight``
broadcasts to ``y_pred`` (``(N,)`` weighs each row). The counts are sums of weights kept in
the metric's dtype.

Example:
    >>> import unidl
    >>> from unidl import metrics, ops
    >>> with unidl.use_backend("numpy"):
    ...     m = metrics.PrecisionAtRecall(0.5)
    ...     m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    ...     round(float(ops.to_numpy(m.result())), 6)
    0.5
"""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.metrics.base import Metric, as_dtype, divide_no_nan, expand_weight

__all__ = ["Precision", "Recall", "AUC", "PrecisionAtRecall", "RecallAtPrecision",
           "SensitivityAtSpecificity", "SpecificityAtSensitivity"]


class _Confusion(Metric):
    """True/false positives and negatives at one or more thresholds."""

    def __init__(self, thresholds, name, dtype="float32", class_id=None):
        super().__init__(name, dtype)
        self._thresholds_arg = thresholds
        self.class_id = class_id
        self.thresholds = np.asarray(thresholds, dtype=_dt.numpy_dtype(self._dtype)).reshape(-1)
        #: rows: true positives, false positives, true negatives, false negatives; one
        #: column per threshold (one Variable: one assignment per batch)
        self.confusion = self.add_variable((4, len(self.thresholds)), name="confusion")

    def _select(self, y):
        """The column ``class_id`` of ``y`` (all of ``y`` without a class_id)."""
        if self.class_id is None:
            return y
        n = ops.shape(y)[-1] if ops.shape(y) else None
        if n is not None and not 0 <= self.class_id < n:
            raise ValueError(f"{type(self).__name__}: class_id must be in [0, {n}) for inputs "
                             f"of shape {ops.shape(y)}; got {self.class_id}")
        return ops.take(y, self.class_id, axis=-1)

    def update_state(self, y_true, y_pred, sample_weight=None):
        dt = self._dtype
        y_pred = self._select(as_dtype(y_pred, dt))
        y_true = self._select(as_dtype(y_true, dt))
        w = expand_weight(sample_weight, y_pred, dt)
        y_pred = ops.reshape(y_pred, (-1, 1))
        y_true = ops.reshape(y_true, (-1, 1))
        w = ops.ones_like(y_true) if w is None else ops.reshape(w, (-1, 1))
        pred_pos = ops.cast(ops.greater(y_pred, ops.convert_to_tensor(self.thresholds)), dt)
        true_pos = ops.cast(ops.greater(y_true, 0.5), dt)
        pos_w = ops.multiply(true_pos, w)
        neg_w = ops.multiply(ops.subtract(1.0, true_pos), w)
        pred_neg = ops.subtract(1.0, pred_pos)
        self.confusion.assign_add(ops.stack([
            ops.sum(ops.multiply(pred_pos, pos_w), 0), ops.sum(ops.multiply(pred_pos, neg_w), 0),
            ops.sum(ops.multiply(pred_neg, neg_w), 0), ops.sum(ops.multiply(pred_neg, pos_w), 0)]))

    def _counts(self):
        """``(tp, fp, tn, fn)``, one entry per threshold each."""
        c = self.confusion.value
        return tuple(ops.take(c, i, axis=0) for i in range(4))

    def _rates(self):
        """Recall (= sensitivity), precision and specificity at every threshold."""
        tp, fp, tn, fn = self._counts()
        return (divide_no_nan(tp, ops.add(tp, fn)), divide_no_nan(tp, ops.add(tp, fp)),
                divide_no_nan(tn, ops.add(tn, fp)))


def _safe_div(a, b):
    return ops.divide(a, ops.maximum(b, 1e-12))


class Precision(_Confusion):
    """TP / (TP + FP) at ``thresholds`` (default 0.5); 0 where nothing is predicted
    positive."""

    def __init__(self, thresholds=0.5, name="precision", dtype="float32"):
        super().__init__(thresholds, name, dtype)

    def get_config(self):
        return {**super().get_config(), "thresholds": self._thresholds_arg}

    def result(self):
        tp, fp, _, _ = self._counts()
        r = _safe_div(tp, ops.add(tp, fp))
        return r[0] if len(self.thresholds) == 1 else r


class Recall(_Confusion):
    """TP / (TP + FN) at ``thresholds`` (default 0.5); 0 without positive labels."""

    def __init__(self, thresholds=0.5, name="recall", dtype="float32"):
        super().__init__(thresholds, name, dtype)

    def get_config(self):
        return {**super().get_config(), "thresholds": self._thresholds_arg}

    def result(self):
        tp, _, _, fn = self._counts()
        r = _safe_div(tp, ops.add(tp, fn))
        return r[0] if len(self.thresholds) == 1 else r


class AUC(_Confusion):
    """Area under the ROC (or PR) curve, by the trapezoidal rule over ``num_thresholds``
    thresholds ``-1e-7, 1/(n-1), ..., (n-2)/(n-1), 1 + 1e-7`` (Keras' default
    "interpolation" for ROC)."""

    def __init__(self, num_thresholds=200, curve="ROC", name="auc", dtype="float32"):
        eps = 1e-7
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        super().__init__([0.0 - eps] + inner + [1.0 + eps], name, dtype)
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR'; got {curve!r}")
        self.curve = curve
        self.num_thresholds = num_thresholds

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "curve": self.curve}

    def result(self):
        tp, fp, tn, fn = self._counts()
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


class _AtConstraint(_Confusion):
    """The best value of one rate among the thresholds where another rate reaches ``value``
    (Keras' ``SensitivitySpecificityBase``): thresholds ``0, 1/(n-1), ..., 1`` (``[0.5]`` for
    ``num_thresholds=1``); 0 when no threshold reaches it."""

    _value_name = "value"  # the constructor's argument
    _constrained = _maximized = "recall"  # which of recall, precision, specificity

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype="float32"):
        cls = type(self).__name__
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0.0 <= value <= 1.0:
            raise ValueError(f"{cls}: {self._value_name} must be a number in [0, 1]; "
                             f"got {value!r}")
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or \
                num_thresholds < 1:
            raise ValueError(f"{cls}: num_thresholds must be an integer > 0; "
                             f"got {num_thresholds!r}")
        if num_thresholds == 1:
            thresholds = [0.5]
        else:
            thresholds = [0.0] + [(i + 1) / (num_thresholds - 1)
                                  for i in range(num_thresholds - 2)] + [1.0]
        super().__init__(thresholds, name or _snake(cls), dtype, class_id=class_id)
        self.value = float(value)
        self.num_thresholds = num_thresholds

    def get_config(self):
        return {**super().get_config(), self._value_name: self.value,
                "num_thresholds": self.num_thresholds, "class_id": self.class_id}

    def result(self):
        recall, precision, specificity = self._rates()
        rates = {"recall": recall, "precision": precision, "specificity": specificity}
        feasible = ops.greater_equal(rates[self._constrained], self.value)
        best = rates[self._maximized]
        return ops.max(ops.where(feasible, best, ops.zeros_like(best)))


def _snake(name):
    out = [name[0].lower()]
    for c in name[1:]:
        out.append("_" + c.lower() if c.isupper() else c)
    return "".join(out)


class PrecisionAtRecall(_AtConstraint):
    """The best precision among the thresholds where recall >= ``recall``.

    >>> import unidl
    >>> with unidl.use_backend("numpy"):
    ...     m = PrecisionAtRecall(0.5)
    ...     m.update_state([0, 1, 1, 0], [0.2, 0.7, 0.9, 0.6])
    ...     float(ops.to_numpy(m.result()))
    1.0
    """

    _value_name, _constrained, _maximized = "recall", "recall", "precision"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype="float32"):
        super().__init__(recall, num_thresholds, class_id, name, dtype)


class RecallAtPrecision(_AtConstraint):
    """The best recall among the thresholds where precision >= ``precision``.

    >>> import unidl
    >>> with unidl.use_backend("numpy"):
    ...     m = RecallAtPrecision(0.8)
    ...     m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    ...     float(ops.to_numpy(m.result()))
    0.5
    """

    _value_name, _constrained, _maximized = "precision", "precision", "recall"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None,
                 dtype="float32"):
        super().__init__(precision, num_thresholds, class_id, name, dtype)


class SensitivityAtSpecificity(_AtConstraint):
    """The best sensitivity (recall) among the thresholds where specificity (TN / (TN + FP))
    >= ``specificity``.

    >>> import unidl
    >>> with unidl.use_backend("numpy"):
    ...     m = SensitivityAtSpecificity(0.5)
    ...     m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    ...     float(ops.to_numpy(m.result()))
    0.5
    """

    _value_name, _constrained, _maximized = "specificity", "specificity", "recall"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None,
                 dtype="float32"):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)


class SpecificityAtSensitivity(_AtConstraint):
    """The best specificity among the thresholds where sensitivity (recall) >=
    ``sensitivity``.

    >>> import unidl
    >>> with unidl.use_backend("numpy"):
    ...     m = SpecificityAtSensitivity(0.5)
    ...     m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    ...     round(float(ops.to_numpy(m.result())), 6)
    0.666667
    """

    _value_name, _constrained, _maximized = "sensitivity", "recall", "specificity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None,
                 dtype="float32"):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)
