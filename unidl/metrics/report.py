"""``classification_report``: per-class precision, recall, F1 and support, and their
averages, as scikit-learn's ``classification_report``.

The function returns a :class:`ClassificationReport`: a ``dict`` with exactly the keys and
values of scikit-learn's ``classification_report(..., output_dict=True)`` (one entry per
class name with ``"precision"``, ``"recall"``, ``"f1-score"``, ``"support"``; then
``"accuracy"`` - or ``"micro avg"`` when ``labels`` leaves classes out - ``"macro avg"`` and
``"weighted avg"``), whose ``str()`` is scikit-learn's printed table, character for
character. It is computed once, on the host, in float64 NumPy, from the whole of
``y_true``/``y_pred`` (it is not a streaming metric: use :class:`F1Score` and
:class:`ConfusionMatrix` during training).

Example:
    >>> from unidl.metrics import classification_report
    >>> report = classification_report([0, 1, 2, 2], [0, 2, 2, 2], target_names=["a", "b", "c"])
    >>> report["c"]["recall"], report["accuracy"]
    (1.0, 0.75)
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
                  precision    recall  f1-score   support
    <BLANKLINE>
               a       1.00      1.00      1.00         1
               b       0.00      0.00      0.00         1
               c       0.67      1.00      0.80         2
    <BLANKLINE>
        accuracy                           0.75         4
       macro avg       0.56      0.67      0.60         4
    weighted avg       0.58      0.75      0.65         4
    <BLANKLINE>
"""

from __future__ import annotations

import numpy as np

__all__ = ["classification_report", "ClassificationReport"]

HEADERS = ("precision", "recall", "f1-score", "support")


class ClassificationReport(dict):
    """A :func:`classification_report`: a dict (scikit-learn's ``output_dict=True``) whose
    ``str()`` is scikit-learn's text table with ``digits`` decimals."""

    def __init__(self, data, digits=2, weighted=False):
        super().__init__(data)
        self.digits = digits
        self._weighted = weighted  # supports are sums of weights (printed as floats)

    def __str__(self):
        names = [k for k in self if k not in _AVERAGE_ROWS]
        digits = self.digits
        width = max([len(n) for n in names] + [len("weighted avg"), digits])
        text = ("{:>{width}s} " + " {:>9}" * 4).format("", *HEADERS, width=width) + "\n\n"
        row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
        for name in names:
            text += row.format(name, *self._cells(self[name]), width=width, digits=digits)
        text += "\n"
        for name in ("accuracy", "micro avg", "macro avg", "weighted avg"):
            if name not in self:
                continue
            if name == "accuracy":
                total = self["macro avg"]["support"]
                acc = ("{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" +
                       " {:>9}\n")
                text += acc.format(name, "", "", self[name], self._support(total),
                                   width=width, digits=digits)
            else:
                text += row.format(name, *self._cells(self[name]), width=width,
                                   digits=digits)
        return text

    def _support(self, value):
        return float(value) if self._weighted else int(value)

    def _cells(self, scores):
        return (scores["precision"], scores["recall"], scores["f1-score"],
                self._support(scores["support"]))


_AVERAGE_ROWS = ("accuracy", "micro avg", "macro avg", "weighted avg")


def _classes(y, what):
    """Class labels from labels ``(N,)``/``(N, 1)``, one-hot or scores ``(N, C)`` (the
    arg-max), or binary probabilities ``(N,)`` that are not all whole numbers (> 0.5)."""
    from unidl import ops

    a = np.asarray(ops.to_numpy(y) if ops.is_tensor(y) else y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        return np.argmax(a, axis=1)
    if a.ndim != 1:
        raise ValueError(f"classification_report: {what} must be labels (N,), one-hot or "
                         f"scores (N, C); got shape {a.shape}")
    if a.dtype.kind == "f" and np.any(a != np.round(a)):
        return (a > 0.5).astype(np.int64)
    if a.dtype.kind == "f":
        return a.astype(np.int64)
    return a


def _ratio(num, den, zero_division):
    den = np.asarray(den, np.float64)
    out = np.full(den.shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def classification_report(y_true, y_pred, labels=None, target_names=None, digits=2,
                          sample_weight=None, zero_division=0.0, output_dict=False):
    """Precision, recall, F1 and support per class, plus accuracy and macro/weighted
    averages (scikit-learn's ``classification_report``; see the module).

    Args:
        y_true, y_pred: labels ``(N,)``, one-hot or scores ``(N, C)`` (their arg-max), or
            binary probabilities (above 0.5 is class 1); NumPy arrays, lists or tensors.
        labels: the classes to report, in order (default: every label seen, sorted).
        target_names: a display name per label.
        digits: decimals in the printed table.
        sample_weight: a weight per example (supports become sums of weights).
        zero_division: the value of a ratio whose denominator is 0.
        output_dict: True returns a plain ``dict`` (what scikit-learn returns with
            ``output_dict=True``); default a :class:`ClassificationReport`, the same dict
            that prints as the table.
    """
    t, p = _classes(y_true, "y_true"), _classes(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"classification_report: y_true and y_pred hold different numbers "
                         f"of examples: {t.shape[0]} and {p.shape[0]}")
    w = np.ones(t.shape, np.float64) if sample_weight is None else \
        np.broadcast_to(np.asarray(sample_weight, np.float64).reshape(-1), t.shape)
    seen = np.union1d(t, p)
    given = labels is not None
    labels = seen if labels is None else np.asarray(labels)
    if target_names is not None and len(target_names) != len(labels):
        raise ValueError(f"classification_report: expected {len(labels)} target_names (one per "
                         f"label {list(labels)}); got {len(target_names)}")
    names = [str(n) for n in target_names] if target_names is not None else \
        [str(lab) for lab in labels]
    tp = np.array([w[(t == lab) & (p == lab)].sum() for lab in labels])
    pred = np.array([w[p == lab].sum() for lab in labels])
    true = np.array([w[t == lab].sum() for lab in labels])
    prec, rec = _ratio(tp, pred, zero_division), _ratio(tp, true, zero_division)
    f1 = _ratio(2 * tp, pred + true, zero_division)
    support = true if sample_weight is not None else true.astype(np.int64)
    out = {n: _scores(*v) for n, v in zip(names, zip(prec, rec, f1, support))}
    micro = [float(_ratio(tp.sum(), pred.sum(), zero_division)),
             float(_ratio(tp.sum(), true.sum(), zero_division)),
             float(_ratio(2 * tp.sum(), pred.sum() + true.sum(), zero_division))]
    if not given or set(labels.tolist()) >= set(seen.tolist()):
        out["accuracy"] = micro[2]
    else:
        out["micro avg"] = _scores(*micro, support.sum())
    out["macro avg"] = _scores(prec.mean(), rec.mean(), f1.mean(), support.sum())
    out["weighted avg"] = _scores(*(float(np.average(v, weights=true)) if true.sum() else
                                    float(zero_division) for v in (prec, rec, f1)),
                                  support.sum())
    if output_dict:
        return out
    return ClassificationReport(out, digits=digits, weighted=sample_weight is not None)


def _scores(precision, recall, f1, support):
    return {"precision": float(precision), "recall": float(recall), "f1-score": float(f1),
            "support": float(support)}
