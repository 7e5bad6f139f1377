"""``FBetaScore`` and ``F1Score`` (Keras 3's names, arguments and input conventions).

``y_true`` is one-hot or multi-label ``(N, C)`` (unidl also takes integer labels ``(N,)`` or
``(N, 1)`` when ``C > 1``, and one-hot encodes them); ``y_pred`` holds probabilities or
scores ``(N, C)``. A class is predicted where ``y_pred > threshold``, or, with
``threshold=None``, where it is the row's highest value (ties: every tied class; an all-zero
row predicts nothing). Per class the metric keeps the (weighted) true positives, false
positives, false negatives and support (the weight of the true labels) and returns

    F_beta = (1 + beta**2) TP / ((1 + beta**2) TP + beta**2 FN + FP)

(0 where the denominator is 0, as scikit-learn's ``zero_division=0``; Keras adds 1e-7 to its
denominators instead, a relative difference below 1e-7 when there are any counts), per class
(``average=None``), over the pooled counts (``"micro"``), as the mean over classes
(``"macro"``) or weighted by support (``"weighted"``) - the values of scikit-learn's
``fbeta_score`` / ``f1_score`` on the thresholded predictions.

Example:
    >>> import unidl
    >>> from unidl import metrics, ops
    >>> with unidl.use_backend("numpy"):
    ...     m = metrics.F1Score(average="macro")
    ...     m.update_state([[1, 0], [0, 1], [0, 1]], [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    ...     round(float(ops.to_numpy(m.result())), 4)
    0.6667
"""

from __future__ import annotations

from unidl import ops
from unidl.metrics.base import Metric, as_dtype, divide_no_nan, expand_weight, static_dim

__all__ = ["FBetaScore", "F1Score"]

AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """The F-beta score of multi-class or multi-label predictions (see the module)."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score",
                 dtype="float32"):
        super().__init__(name, dtype)
        cls = type(self).__name__
        if average not in AVERAGES:
            raise ValueError(f"{cls}: average must be one of None, 'micro', 'macro', "
                             f"'weighted'; got {average!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"{cls}: beta must be a number > 0; got {beta!r}")
        if threshold is not None and (isinstance(threshold, bool) or
                                      not isinstance(threshold, (int, float)) or
                                      not 0.0 < threshold <= 1.0):
            raise ValueError(f"{cls}: threshold must be None or a number in (0, 1]; "
                             f"got {threshold!r}")
        self.average = average
        self.beta = float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self.num_classes = None  # known at the first update_state

    def _build(self, num_classes):
        """The state, on the first batch: per class, or pooled for ``"micro"``."""
        shape = (4,) if self.average == "micro" else (4, num_classes)
        #: rows: true positives, false positives, false negatives, support
        self.counts = self.add_variable(shape, name="counts")
        self.num_classes = num_classes

    def _inputs(self, y_true, y_pred):
        """``(y_true, y_pred)`` as ``(N, C)`` tensors of the metric's dtype; checks shapes."""
        cls, dt = type(self).__name__, self._dtype
        y_pred = as_dtype(y_pred, dt)
        y_true = ops.convert_to_tensor(y_true)
        if len(ops.shape(y_pred)) != 2:
            raise ValueError(f"{cls} expects y_pred of shape (batch_size, num_classes); got "
                             f"shape {ops.shape(y_pred)}")
        c = static_dim(self, y_pred, -1, "y_pred")
        if self.num_classes is not None and c != self.num_classes:
            raise ValueError(f"{cls}: expected y_pred with {self.num_classes} classes (as in "
                             f"the earlier batches); got shape {ops.shape(y_pred)}")
        t_shape = ops.shape(y_true)
        if c > 1 and (len(t_shape) == 1 or (len(t_shape) == 2 and t_shape[-1] == 1)):
            labels = ops.reshape(ops.cast(y_true, "int64"), (-1,))
            y_true = ops.one_hot(labels, c, dtype=dt)
        elif len(t_shape) != 2 or t_shape[-1] != c:
            raise ValueError(f"{cls}: expected y_true of shape (batch_size, {c}) (one-hot or "
                             f"multi-label) or (batch_size,) (integer labels) for y_pred of "
                             f"shape {ops.shape(y_pred)}; got shape {t_shape}")
        return as_dtype(y_true, dt), y_pred, c

    def _predicted(self, y_pred):
        """1.0 where a class is predicted, else 0.0."""
        if self.threshold is None:
            top = ops.max(y_pred, -1, keepdims=True)
            hit = ops.logical_and(ops.greater_equal(y_pred, top),
                                  ops.greater(ops.abs(y_pred), 1e-9))
        else:
            hit = ops.greater(y_pred, self.threshold)
        return ops.cast(hit, self._dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, c = self._inputs(y_true, y_pred)
        if self.num_classes is None:
            self._build(c)
        pred = self._predicted(y_pred)
        w = expand_weight(sample_weight, y_pred, self._dtype)
        axis = None if self.average == "micro" else 0

        def total(x):
            return ops.sum(x if w is None else ops.multiply(x, w), axis)

        tp = ops.multiply(pred, y_true)
        self.counts.assign_add(ops.stack([
            total(tp), total(ops.subtract(pred, tp)), total(ops.subtract(y_true, tp)),
            total(y_true)]))

    def result(self):
        if self.num_classes is None:
            return ops.convert_to_tensor(0.0, self._dtype)
        b2 = self.beta ** 2
        tp, fp, fn, support = (ops.take(self.counts.value, i, axis=0) for i in range(4))
        num = ops.multiply(tp, 1.0 + b2)
        den = ops.add(ops.add(num, ops.multiply(fn, b2)), fp)
        f = divide_no_nan(num, den)
        if self.average == "weighted":
            return divide_no_nan(ops.sum(ops.multiply(f, support)), ops.sum(support))
        if self.average == "macro":
            return ops.mean(f)
        return f

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F1 score (:class:`FBetaScore` with ``beta=1``): the harmonic mean of precision
    and recall.

    >>> import unidl
    >>> with unidl.use_backend("numpy"):
    ...     m = F1Score(average="micro", threshold=0.5)
    ...     m.update_state([[1, 1], [0, 1]], [[0.7, 0.2], [0.1, 0.9]])
    ...     round(float(ops.to_numpy(m.result())), 4)
    0.8
    """

    def __init__(self, average=None, threshold=None, name="f1_score", dtype="float32"):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name,
                         dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config
