"""Stateful metrics: ``update_state``, ``result``, ``reset_state``; Keras names.

Metric state lives in non-trainable :class:`unidl.Variable` objects, written with
:mod:`unidl.ops` only, so updates run on every backend and inside compiled steps
(``tf.function``) too. See ``docs/evaluation.md`` (Metrics) for the list, the input
conventions and how each is checked.

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

from unidl.metrics.accuracy_metrics import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from unidl.metrics.base import Mean, MeanMetricWrapper, Metric, Sum
from unidl.metrics.confusion import ConfusionMatrix, MeanIoU
from unidl.metrics.fscore import F1Score, FBetaScore
from unidl.metrics.regression import R2Score
from unidl.metrics.report import ClassificationReport, classification_report
from unidl.metrics.thresholds import (
    AUC,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)

__all__ = [
    "Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "SparseCategoricalAccuracy",
    "CategoricalAccuracy", "BinaryAccuracy", "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "Precision",
    "Recall", "AUC", "PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
    "SpecificityAtSensitivity", "F1Score", "FBetaScore", "ConfusionMatrix", "MeanIoU",
    "R2Score", "classification_report", "get",
]

# the metric functions and the report's type are importable from here too (outside
# __all__: no saved model names them as classes)
_REEXPORTED = (accuracy, binary_accuracy, categorical_accuracy,
                       sparse_categorical_accuracy, sparse_top_k_categorical_accuracy,
                       top_k_categorical_accuracy, ClassificationReport)

_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "precision": Precision, "recall": Recall, "auc": AUC, "mean": Mean, "sum": Sum,
    "f1_score": F1Score, "fbeta_score": FBetaScore, "f_beta_score": FBetaScore,
    "r2_score": R2Score,
}

#: metrics a name cannot build: the argument each needs
_NEEDS = {MeanIoU: "num_classes", ConfusionMatrix: "num_classes",
          PrecisionAtRecall: "recall", RecallAtPrecision: "precision",
          SensitivityAtSpecificity: "specificity", SpecificityAtSensitivity: "sensitivity"}


def _by_name(key: str):
    """The metric class a lower-case name means: a Keras string name (``"f1_score"``), its
    class name (``"f1score"``) or the class name in snake case (``"mean_io_u"``)."""
    if key in _BY_NAME:
        return _BY_NAME[key]
    for name in __all__:
        cls = globals()[name]
        if isinstance(cls, type) and issubclass(cls, Metric) and \
                key.replace("_", "") == name.lower():
            return cls
    return None


def get(identifier, loss=None):
    """A metric from a name, a Metric, or a function ``(y_true, y_pred)``.

    ``"accuracy"`` (or ``"acc"``) follows the loss's convention: sparse labels with sparse
    categorical cross-entropy, one-hot with categorical, thresholded with binary. Names are
    Keras' string names (``"f1_score"``, ``"r2_score"``, ``"auc"``...) or class names
    (``"F1Score"``); a metric that needs an argument (``MeanIoU(num_classes)``...) must be
    given as an object.

    >>> type(get("f1_score")).__name__, get("F1Score").name
    ('F1Score', 'f1_score')
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
        cls = _by_name(key)
        if cls is None:
            known = sorted(set(_BY_NAME) | {"accuracy"})
            raise ValueError(f"unknown metric {identifier!r}; known metrics: {', '.join(known)}"
                             " (or a class name of unidl.metrics)")
        return _instantiate(cls, identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return _instantiate(identifier, identifier.__name__)
    if callable(identifier):
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None))
    raise ValueError(f"cannot interpret {identifier!r} as a metric")


def _instantiate(cls, given):
    needs = _NEEDS.get(cls)
    if needs is not None:
        raise ValueError(f"metric {given!r}: {cls.__name__} needs the argument {needs!r}; "
                         f"pass an object, e.g. metrics=[unidl.metrics.{cls.__name__}"
                         f"({needs}=...)]")
    return cls()
