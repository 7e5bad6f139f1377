"""Accuracy-style metrics (the mean of a per-example score) and the regression errors.

Example:
    >>> import unidl
    >>> from unidl import metrics, ops
    >>> with unidl.use_backend("numpy"):
    ...     m = metrics.SparseTopKCategoricalAccuracy(k=2)
    ...     m.update_state([1, 0], [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], sample_weight=[1.0, 3.0])
    ...     float(ops.to_numpy(m.result()))
    0.25
"""

from __future__ import annotations

from unidl import losses as _losses
from unidl import ops
from unidl.metrics.base import MeanMetricWrapper

__all__ = ["Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "BinaryAccuracy",
           "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "MeanSquaredError",
           "MeanAbsoluteError", "accuracy", "sparse_categorical_accuracy",
           "categorical_accuracy", "binary_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy"]


def _labels(y_true, y_pred):
    y_true = ops.convert_to_tensor(y_true)
    shape = ops.shape(y_true)
    if shape and len(shape) == len(ops.shape(y_pred)) and shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return ops.cast(y_true, "int64") if ops.dtype(y_true) != "int64" else y_true


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the integer label is the arg-max of ``y_pred``."""
    return ops.equal(_labels(y_true, y_pred), ops.argmax(y_pred, -1))


def categorical_accuracy(y_true, y_pred):
    """1 where the arg-max of the one-hot ``y_true`` is the arg-max of ``y_pred``."""
    return ops.equal(ops.argmax(ops.convert_to_tensor(y_true), -1), ops.argmax(y_pred, -1))


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """The fraction of the last axis where ``y_pred > threshold`` matches ``y_true``."""
    dtype = ops.dtype(y_pred)
    pred = ops.cast(ops.greater(y_pred, threshold), dtype)
    return ops.mean(ops.cast(ops.equal(ops.cast(ops.convert_to_tensor(y_true), dtype), pred),
                             dtype), -1)


def accuracy(y_true, y_pred):
    """1 where ``y_true == y_pred``."""
    y_true = ops.convert_to_tensor(y_true)
    return ops.equal(ops.cast(y_true, ops.dtype(y_pred)), y_pred)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the class of the one-hot ``y_true`` is among the ``k`` highest scores."""
    return _in_top_k(ops.argmax(ops.convert_to_tensor(y_true), -1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1 where the integer label is among the ``k`` highest scores of ``y_pred`` (or, with
    ``from_sorted_ids``, among the first ``k`` class ids of ``y_pred``)."""
    if from_sorted_ids:
        labels = _labels(y_true, y_pred)
        kk = min(k, ops.shape(y_pred)[-1])
        top = ops.cast(ops.slice(y_pred, (0,) * (len(ops.shape(y_pred)) - 1) + (0,),
                                 (-1,) * (len(ops.shape(y_pred)) - 1) + (kk,)), "int64")
        return ops.any(ops.equal(top, ops.expand_dims(labels, -1)), -1)
    return _in_top_k(_labels(y_true, y_pred), y_pred, k)


def _in_top_k(labels, y_pred, k):
    """Whether the label's score is at least the ``k``-th highest score of its row: a tie at
    the boundary counts as in the top ``k`` (``tf.math.in_top_k``, Keras), so the result does
    not depend on how a backend orders equal scores; ``k`` at least the number of classes is
    always true."""
    k = min(k, ops.shape(y_pred)[-1])
    values, _ = ops.top_k(y_pred, k)
    kth = ops.take(values, k - 1, axis=-1)
    target = ops.squeeze(ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), -1), -1)
    return ops.greater_equal(target, kth)


def _check_k(metric, k):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{metric}: k must be a positive integer; got {k!r}")
    return k


class Accuracy(MeanMetricWrapper):
    """How often ``y_pred`` equals ``y_true``."""

    def __init__(self, name="accuracy", dtype="float32"):
        super().__init__(accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of ``y_pred`` equals the integer label."""

    def __init__(self, name="sparse_categorical_accuracy", dtype="float32"):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of ``y_pred`` equals that of the one-hot ``y_true``."""

    def __init__(self, name="categorical_accuracy", dtype="float32"):
        super().__init__(categorical_accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the binary ``y_true``."""

    def __init__(self, name="binary_accuracy", dtype="float32", threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot ``y_true``'s class is among the ``k`` highest scores (ties at
    the ``k``-th score count as in; ``k`` above the number of classes: always)."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype="float32"):
        super().__init__(top_k_categorical_accuracy, name, dtype,
                         k=_check_k("TopKCategoricalAccuracy", k))


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the ``k`` highest scores (as
    :class:`TopKCategoricalAccuracy`); ``from_sorted_ids=True``: ``y_pred`` holds class ids
    sorted by score, as Keras 3."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype="float32",
                 from_sorted_ids=False):
        kwargs = {"k": _check_k("SparseTopKCategoricalAccuracy", k)}
        if from_sorted_ids:
            kwargs["from_sorted_ids"] = True
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, **kwargs)


class MeanSquaredError(MeanMetricWrapper):
    """The mean of ``(y_true - y_pred) ** 2`` over the last axis, averaged over examples."""

    def __init__(self, name="mean_squared_error", dtype="float32"):
        super().__init__(_losses.mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """The mean of ``|y_true - y_pred|`` over the last axis, averaged over examples."""

    def __init__(self, name="mean_absolute_error", dtype="float32"):
        super().__init__(_losses.mean_absolute_error, name, dtype)
