"""``ConfusionMatrix`` (a streaming ``num_classes x num_classes`` count) and ``MeanIoU``.

Orientation: **rows are true classes, columns predicted classes** (``cm[i, j]`` is the
weight of the examples of class ``i`` predicted as ``j``), as ``tf.math.confusion_matrix``
and scikit-learn's ``confusion_matrix``. Labels outside ``[0, num_classes)`` are not counted
(scikit-learn with ``labels=range(num_classes)`` does the same); the counts are added with
``scatter_add``, a bincount over ``true * num_classes + predicted``.

Example:
    >>> import unidl
    >>> from unidl import metrics, ops
    >>> with unidl.use_backend("numpy"):
    ...     m = metrics.ConfusionMatrix(3)
    ...     m.update_state([0, 1, 2, 2], [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0, 0, 1], [0, 1, 0]])
    ...     ops.to_numpy(m.result()).tolist()
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
"""

from __future__ import annotations

from unidl import dtypes as _dt
from unidl import ops
from unidl.metrics.base import Metric, divide_no_nan, expand_weight

__all__ = ["ConfusionMatrix", "MeanIoU"]

NORMALIZE = (None, "true", "pred", "all")


def _check_num_classes(cls, num_classes, least=1):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or \
            num_classes < least:
        raise ValueError(f"{cls}: num_classes must be an integer >= {least}; "
                         f"got {num_classes!r}")
    return num_classes


class _CountMatrix(Metric):
    """The weighted counts of (true, predicted) class pairs."""

    def __init__(self, num_classes, name, dtype):
        super().__init__(name, dtype)
        self.num_classes = _check_num_classes(type(self).__name__, num_classes)
        self.total_cm = self.add_variable((num_classes, num_classes),
                                          name="total_confusion_matrix")

    def _count(self, true, pred, weight, keep=None):
        """Add the pairs of the integer tensors ``true`` and ``pred`` (same shape), weighted
        by ``weight`` (None or their shape), where ``keep`` (None or a boolean mask)."""
        c, dt = self.num_classes, self._dtype
        true = ops.reshape(ops.cast(true, "int64"), (-1,))
        pred = ops.reshape(ops.cast(pred, "int64"), (-1,))
        valid = ops.logical_and(
            ops.logical_and(ops.greater_equal(true, 0), ops.less(true, c)),
            ops.logical_and(ops.greater_equal(pred, 0), ops.less(pred, c)))
        if keep is not None:
            valid = ops.logical_and(valid, ops.reshape(keep, (-1,)))
        w = ops.ones_like(ops.cast(true, dt)) if weight is None else ops.reshape(weight, (-1,))
        w = ops.where(valid, w, ops.zeros_like(w))
        index = ops.where(valid, ops.add(ops.multiply(true, c), pred), ops.zeros_like(true))
        flat = ops.scatter_add(ops.zeros((c * c,), dt), index, w)
        self.total_cm.assign_add(ops.reshape(flat, (c, c)))

    def _classes(self, y, sparse, what, axis=-1):
        """Integer classes from labels (``sparse``) or from scores/one-hot (the arg-max over
        ``axis``, whose size must be ``num_classes``)."""
        if sparse:
            shape = ops.shape(y)
            if len(shape) >= 2 and shape[-1] == 1:
                y = ops.squeeze(y, -1)
            return y
        shape = ops.shape(y)
        if not shape or shape[axis] not in (None, self.num_classes):
            raise ValueError(f"{type(self).__name__}: expected {what} with num_classes="
                             f"{self.num_classes} entries on axis {axis} (scores or one-hot), "
                             f"got shape {shape}")
        return ops.argmax(y, axis)


class ConfusionMatrix(_CountMatrix):
    """A streaming confusion matrix: rows true classes, columns predicted classes.

    Args:
        num_classes: the number of classes ``C``; the result is ``(C, C)``.
        normalize: None (counts), ``"true"`` (each row sums to 1), ``"pred"`` (each column),
            ``"all"`` (the whole matrix), as scikit-learn; empty rows/columns stay 0.
        threshold: for ``num_classes=2``, a float ``y_pred`` of labels' shape (a sigmoid
            output ``(N,)`` or ``(N, 1)``) predicts class 1 where it is above ``threshold``.
        sparse_y_true, sparse_y_pred: whether the input holds integer labels (True) or
            one-hot/scores whose arg-max over the last axis is the class (False). None
            (default): scores when the input has at least 2 axes and its last has
            ``num_classes`` (> 1) entries, labels otherwise.
    """

    def __init__(self, num_classes, normalize=None, threshold=0.5, sparse_y_true=None,
                 sparse_y_pred=None, name="confusion_matrix", dtype="float32"):
        super().__init__(num_classes, name, dtype)
        if normalize not in NORMALIZE:
            raise ValueError(f"ConfusionMatrix: normalize must be one of None, 'true', 'pred', "
                             f"'all'; got {normalize!r}")
        self.normalize = normalize
        self.threshold = float(threshold)
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred

    def _is_sparse(self, y, flag):
        if flag is not None:
            return flag
        shape = ops.shape(y)
        return not (len(shape) >= 2 and shape[-1] == self.num_classes and self.num_classes > 1)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        true = self._classes(y_true, self._is_sparse(y_true, self.sparse_y_true), "y_true")
        sparse_pred = self._is_sparse(y_pred, self.sparse_y_pred)
        pred = self._classes(y_pred, sparse_pred, "y_pred")
        if sparse_pred and self.num_classes == 2 and _dt.is_float(ops.dtype(pred)):
            pred = ops.greater(pred, self.threshold)
        self._check_shapes(true, pred, y_true, y_pred)
        w = expand_weight(sample_weight, ops.cast(true, self._dtype), self._dtype)
        self._count(true, pred, w)

    def _check_shapes(self, true, pred, y_true, y_pred):
        a, b = ops.shape(true), ops.shape(pred)
        if len(a) != len(b) or any(x is not None and y is not None and x != y
                                   for x, y in zip(a, b)):
            raise ValueError(
                f"ConfusionMatrix: expected y_true and y_pred as integer labels of one shape, "
                f"or one-hot/scores with num_classes={self.num_classes} entries on the last "
                f"axis; got y_true of shape {ops.shape(y_true)} (labels {a}) and y_pred of "
                f"shape {ops.shape(y_pred)} (labels {b})")

    def result(self):
        cm = self.total_cm.value
        if self.normalize == "true":
            return divide_no_nan(cm, ops.sum(cm, 1, keepdims=True))
        if self.normalize == "pred":
            return divide_no_nan(cm, ops.sum(cm, 0, keepdims=True))
        if self.normalize == "all":
            return divide_no_nan(cm, ops.sum(cm))
        return cm

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "normalize": self.normalize, "threshold": self.threshold,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred}


class MeanIoU(_CountMatrix):
    """The mean over classes of the intersection over union ``TP / (TP + FP + FN)``, from a
    streaming confusion matrix (Keras 3's arguments). Classes that never occur, neither true
    nor predicted, are left out of the mean.

    ``sparse_y_true`` / ``sparse_y_pred`` (default True, as Keras): the input holds integer
    class ids of any shape (segmentation maps too); False: scores or one-hot, whose arg-max
    over ``axis`` is the class. ``ignore_class``: true labels of this id are not counted.

    >>> import unidl
    >>> with unidl.use_backend("numpy"):
    ...     m = MeanIoU(num_classes=2)
    ...     m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    ...     round(float(ops.to_numpy(m.result())), 4)
    0.3333
    """

    def __init__(self, num_classes, name="mean_io_u", dtype="float32", ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, name, dtype)
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        if self.sparse_y_pred and _dt.is_float(ops.dtype(y_pred)) and \
                len(ops.shape(y_pred)) == len(ops.shape(y_true)) + 1 and \
                ops.shape(y_pred)[-1] == self.num_classes and self.num_classes > 1:
            raise ValueError(f"MeanIoU: y_pred of shape {ops.shape(y_pred)} holds scores for "
                             f"{self.num_classes} classes but sparse_y_pred=True expects class "
                             "ids of y_true's shape; pass MeanIoU(..., sparse_y_pred=False)")
        true = self._classes(y_true, self.sparse_y_true, "y_true", self.axis)
        pred = self._classes(y_pred, self.sparse_y_pred, "y_pred", self.axis)
        if None not in ops.shape(true) + ops.shape(pred) and ops.size(true) != ops.size(pred):
            raise ValueError(f"MeanIoU: y_true and y_pred hold different numbers of labels: "
                             f"shapes {ops.shape(y_true)} and {ops.shape(y_pred)}")
        w = expand_weight(sample_weight, ops.cast(true, self._dtype), self._dtype)
        keep = None
        if self.ignore_class is not None:
            keep = ops.not_equal(ops.cast(true, "int64"), int(self.ignore_class))
        self._count(true, pred, w, keep)

    def result(self):
        cm = self.total_cm.value
        tp = ops.sum(ops.multiply(cm, ops.eye(self.num_classes, dtype=self._dtype)), 1)
        union = ops.subtract(ops.add(ops.sum(cm, 0), ops.sum(cm, 1)), tp)
        iou = divide_no_nan(tp, union)
        present = ops.cast(ops.not_equal(union, 0), self._dtype)
        return divide_no_nan(ops.sum(iou), ops.sum(present))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
