"""Metric conformance: every metric configuration, streamed over three batches on a
backend/device/dtype, against an independent float64 NumPy reference.

Each configuration (:data:`CONFIGS`, one row per metric and option, OpInfo-style) names a
factory (dtype -> a fresh metric), an input generator (seeded NumPy data for one batch) and a
reference: a float64 function of *all* the examples seen so far, written here with loops and
plain NumPy sums from the metric's documented definition (it never calls unidl). A case feeds
the same 3 batches (7, 12 and 5 examples: different sizes on purpose) with
``update_state``, compares ``result()`` after every batch with the reference of the batches
so far (so streaming must equal one big batch), then calls ``reset_state``, feeds the last
batch alone and compares again. Every configuration runs in float32 without and with
``sample_weight`` (``name[...,sample_weight]``: weights in [0.25, 2], the first of each batch
0, so masking is checked too), and in float64 with them (the metric's ``dtype``: its state,
arithmetic and result must have that dtype).

Inputs (probabilities, labels, weights) are rounded to the dtype under test before the
reference sees them, and so are the thresholds of the threshold-based metrics (the metric
keeps its thresholds in its dtype), so a prediction is on the same side of a threshold in
both. The operating-point metrics (``PrecisionAtRecall``...) pick a threshold by comparing a
rate with the target: the reference refuses data where a rate lies within 1e-4 of the target
without equalling it (a float32 rounding could then pick another threshold), so a seed change
that made a case ill-conditioned fails loudly rather than flakily.

Tolerance: the ``reduction`` row of :data:`unidl.tolerances.TOLERANCES` (float32: rtol 5e-5,
atol 1e-5; float64: 1e-7, 1e-7). A metric's state is a sum of up to a few dozen weighted
terms per entry (counts, weighted sums, sums of squares) and its result a ratio or a
difference of such sums: the error of a float32 reduction, not of one elementwise rounding
(``elementwise``), and no matmul is involved (``contraction``). Unweighted counts are exact
either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import unidl
from unidl.tolerances import tolerance
from unidl_conformance.cases import Case, Result, case_seed
from unidl_conformance.compare import compare

__all__ = ["CONFIGS", "METRIC_DTYPES", "BATCH_SIZES", "MetricConfig", "metric_cases",
           "run_metric", "case_data", "reference_results"]

METRIC_DTYPES = ("float32", "float64")
BATCH_SIZES = (7, 12, 5)
TOLERANCE_KIND = "reduction"
_SW = "sample_weight"


@dataclass(frozen=True)
class MetricConfig:
    """One row of the table: how to build the metric, make a batch, and compute the
    expected result."""

    make: Callable  # dtype -> a fresh unidl metric
    inputs: Callable  # (rng, n) -> tuple of NumPy arrays, the positional update_state args
    reference: Callable  # (args concatenated over batches, weights (N,) float64) -> result


# ---- input generators (NumPy, seeded) ------------------------------------------------------
def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _binary(rng, n):
    """Binary labels (N,) and probabilities that lean towards them."""
    t = rng.integers(0, 2, n)
    return t, np.clip(0.6 * rng.uniform(0, 1, n) + 0.35 * t, 0.0, 1.0)


def _binary_column(rng, n):
    """Binary labels and probabilities as (N, 1) columns (a sigmoid output)."""
    t, p = _binary(rng, n)
    return t.reshape(-1, 1).astype(np.float64), p.reshape(-1, 1)


def _multilabel(rng, n, c=3):
    t = rng.integers(0, 2, (n, c))
    return t, np.clip(0.6 * rng.uniform(0, 1, (n, c)) + 0.3 * t, 0.0, 1.0)


def _scores(rng, n, c=4):
    """Integer labels (N,) and softmax scores (N, c) that lean towards them."""
    t = rng.integers(0, c, n)
    z = rng.standard_normal((n, c)) * 1.5
    z[np.arange(n), t] += 1.0
    return t, _softmax(z)


def _onehot_scores(rng, n, c=4):
    t, p = _scores(rng, n, c)
    return np.eye(c)[t], p


def _topk_scores(rng, n):
    return _scores(rng, n, 6)


def _onehot_topk(rng, n):
    return _onehot_scores(rng, n, 6)


def _label_pairs(rng, n, c=4):
    t = rng.integers(0, c, n)
    p = np.where(rng.uniform(0, 1, n) < 0.6, t, rng.integers(0, c, n))
    return t, p


def _maps(rng, n, c=3):
    """Label maps (N, 4) (a tiny segmentation) and predicted maps, 70 % right."""
    t = rng.integers(0, c, (n, 4))
    p = np.where(rng.uniform(0, 1, (n, 4)) < 0.7, t, rng.integers(0, c, (n, 4)))
    return t, p


def _map_scores(rng, n, c=3):
    t, p = _maps(rng, n, c)
    z = rng.standard_normal((n, 4, c)) * 0.5
    z[np.arange(n)[:, None], np.arange(4)[None, :], p] += 2.0
    return t, _softmax(z)


def _regression(rng, n):
    scale, offset = np.array([1.0, 3.0, 0.5]), np.array([0.0, 5.0, -2.0])
    t = rng.standard_normal((n, 3)) * scale + offset
    return t, t + rng.standard_normal((n, 3)) * scale * np.array([0.4, 0.8, 1.2])


def _regression_1d(rng, n):
    t = rng.standard_normal(n) * 2.0 + 1.0
    return t, t + rng.standard_normal(n)


def _values(rng, n):
    return (rng.standard_normal(n) * 2.0 + 0.5,)


def _class_values(rng, n):
    """Labels and predictions as whole numbers in a float column (N, 1), half equal."""
    t = rng.integers(0, 3, (n, 1)).astype(np.float64)
    return t, np.where(rng.uniform(0, 1, (n, 1)) < 0.5, t, rng.integers(0, 3, (n, 1)))


# ---- the float64 references ----------------------------------------------------------------
def _mean_w(values, w):
    """The weighted mean of one value per example."""
    return np.sum(values * w) / np.sum(w)


def _row_w(w, like):
    """Per-example weights broadcast to every element of ``like`` (N, ...)."""
    return np.broadcast_to(w.reshape((-1,) + (1,) * (like.ndim - 1)), like.shape)


def ref_accuracy(t, p, w):
    return _mean_w((t == p).astype(float).reshape(len(w), -1).mean(axis=1), w)


def ref_binary_accuracy(t, p, w):
    return _mean_w(((p > 0.5) == (t > 0.5)).astype(float).mean(axis=-1), w)


def ref_sparse_categorical_accuracy(t, p, w):
    return _mean_w(np.array([float(np.argmax(row) == lab) for lab, row in zip(t, p)]), w)


def ref_categorical_accuracy(t, p, w):
    return ref_sparse_categorical_accuracy(np.argmax(t, axis=1), p, w)


def _ref_top_k(labels, p, w, k):
    """In the top k when fewer than k scores are strictly higher (ties count as in)."""
    hits = [float(sum(1 for s in row if s > row[lab]) < k) for lab, row in zip(labels, p)]
    return _mean_w(np.array(hits), w)


def ref_mse(t, p, w):
    return _mean_w(np.mean((t - p) ** 2, axis=-1), w)


def ref_mae(t, p, w):
    return _mean_w(np.mean(np.abs(t - p), axis=-1), w)


def ref_mean(v, w):
    return _mean_w(v, w)


def ref_sum(v, w):
    return np.sum(v * w)


def _counts(t, p, w, thresholds):
    """(tp, fp, tn, fn) per threshold, flattened inputs, ``p > threshold`` positive."""
    t, p, w = t.reshape(-1) > 0.5, p.reshape(-1), _row_w(w, p).reshape(-1)
    out = np.zeros((4, len(thresholds)))
    for j, th in enumerate(thresholds):
        for ti, pi, wi in zip(t, p, w):
            pos = pi > th
            out[0 if pos and ti else 1 if pos else 3 if ti else 2, j] += wi
    return out


def _div(a, b):
    return np.divide(a, b, out=np.zeros_like(np.asarray(a, float)), where=np.asarray(b) != 0)


def _rates(tp, fp, tn, fn):
    return {"recall": _div(tp, tp + fn), "precision": _div(tp, tp + fp),
            "specificity": _div(tn, tn + fp)}


def _thresholds(values, dtype):
    return np.asarray(values, dtype=dtype).astype(np.float64)


def ref_precision(thresholds):
    def ref(t, p, w, dtype):
        tp, fp, _, _ = _counts(t, p, w, _thresholds(thresholds, dtype))
        out = _div(tp, tp + fp)
        return out[0] if len(out) == 1 else out
    return ref


def ref_recall(t, p, w, dtype):
    tp, _, _, fn = _counts(t, p, w, _thresholds([0.5], dtype))
    return _div(tp, tp + fn)[0]


def ref_auc(curve, n):
    def ref(t, p, w, dtype):
        ths = [-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1.0 + 1e-7]
        tp, fp, tn, fn = _counts(t, p, w, _thresholds(ths, dtype))
        r = _rates(tp, fp, tn, fn)
        x, y = (_div(fp, fp + tn), r["recall"]) if curve == "ROC" else \
            (r["recall"], r["precision"])
        return sum((x[i] - x[i + 1]) * (y[i] + y[i + 1]) / 2 for i in range(n - 1))
    return ref


def ref_at(constrained, maximized, value, n=200, class_id=None):
    def ref(t, p, w, dtype):
        if class_id is not None:
            t, p = t[:, class_id], p[:, class_id]
        ths = [0.5] if n == 1 else [0.0] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1.0]
        r = _rates(*_counts(t, p, w, _thresholds(ths, dtype)))
        near = np.abs(r[constrained] - value)
        if np.any((near < 1e-4) & (near > 0)):
            raise ValueError(f"ill-conditioned data: a {constrained} within 1e-4 of {value}")
        best = [r[maximized][j] for j in range(len(ths)) if r[constrained][j] >= value]
        return max(best) if best else 0.0
    return ref


def ref_fbeta(average, beta=1.0, threshold=None):
    def ref(t, p, w):
        n, c = p.shape
        t = np.eye(c)[t] if t.ndim == 1 else t.astype(float)
        pred = np.zeros((n, c))
        for i in range(n):
            for j in range(c):
                pred[i, j] = p[i, j] > threshold if threshold is not None else \
                    (p[i, j] >= max(p[i]) and abs(p[i, j]) > 1e-9)
        tp, fp, fn, sup = (np.zeros(c) for _ in range(4))
        for i in range(n):
            for j in range(c):
                tp[j] += w[i] * pred[i, j] * t[i, j]
                fp[j] += w[i] * pred[i, j] * (1 - t[i, j])
                fn[j] += w[i] * (1 - pred[i, j]) * t[i, j]
                sup[j] += w[i] * t[i, j]
        b2 = beta * beta
        if average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        f = _div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)
        if average == "macro":
            return f.mean()
        if average == "weighted":
            return _div(np.sum(f * sup), np.sum(sup))
        return f
    return ref


def _confusion(t, p, w, c):
    cm = np.zeros((c, c))
    for ti, pi, wi in zip(t.reshape(-1), p.reshape(-1), w.reshape(-1)):
        if 0 <= ti < c and 0 <= pi < c:
            cm[int(ti), int(pi)] += wi
    return cm


def ref_confusion_matrix(c, normalize=None, mode="scores"):
    def ref(t, p, w, dtype):
        if mode == "scores":
            p = np.array([int(np.argmax(row)) for row in p])
        elif mode == "binary":
            p = (p.reshape(-1) > np.asarray(0.5, dtype)).astype(int)
            t = t.reshape(-1).astype(int)
        cm = _confusion(t, p, w, c)
        if normalize == "true":
            return _div(cm, cm.sum(axis=1, keepdims=True) + 0 * cm)
        if normalize == "pred":
            return _div(cm, cm.sum(axis=0, keepdims=True) + 0 * cm)
        if normalize == "all":
            return cm / cm.sum()
        return cm
    return ref


def ref_mean_iou(c, ignore_class=None, scores=False):
    def ref(t, p, w):
        if scores:
            p = np.argmax(p, axis=-1)
        ww = _row_w(w, t).copy()
        if ignore_class is not None:
            ww[t == ignore_class] = 0.0
        cm = _confusion(t, p, ww, c)
        ious = []
        for k in range(c):
            union = cm[k, :].sum() + cm[:, k].sum() - cm[k, k]
            if union != 0:
                ious.append(cm[k, k] / union)
        return sum(ious) / len(ious) if ious else 0.0
    return ref


def ref_r2(aggregation="uniform_average", num_regressors=0):
    def ref(t, p, w):
        t2, p2 = (t.reshape(-1, 1), p.reshape(-1, 1)) if t.ndim == 1 else (t, p)
        raw, sst_all = [], []
        for j in range(t2.shape[1]):
            mean = np.sum(w * t2[:, j]) / np.sum(w)
            sst = np.sum(w * (t2[:, j] - mean) ** 2)
            sse = np.sum(w * (t2[:, j] - p2[:, j]) ** 2)
            raw.append(1.0 - sse / sst if sst != 0 else float(sse == 0))
            sst_all.append(sst)
        raw, sst_all = np.array(raw), np.array(sst_all)
        if aggregation == "uniform_average":
            r2 = raw.mean()
        elif aggregation == "variance_weighted_average":
            r2 = np.sum(raw * sst_all) / np.sum(sst_all)
        else:
            r2 = raw
        n = t2.shape[0]
        if num_regressors and n - num_regressors - 1 > 0:
            r2 = 1.0 - (1.0 - r2) * (n - 1) / (n - num_regressors - 1)
        return r2
    return ref


# ---- the table -----------------------------------------------------------------------------
def _m(cls_name, *args, **kwargs):
    """A factory: dtype -> ``unidl.metrics.<cls_name>(*args, dtype=dtype, **kwargs)``."""
    def make(dtype):
        from unidl import metrics

        return getattr(metrics, cls_name)(*args, dtype=dtype, **kwargs)
    return make


def _dtyped(ref):
    """A reference that needs the dtype (thresholds rounded to it) is marked as such."""
    ref.needs_dtype = True
    return ref


CONFIGS: dict[str, MetricConfig] = {
    # existing metrics
    "accuracy": MetricConfig(_m("Accuracy"), _class_values, ref_accuracy),
    "binary_accuracy": MetricConfig(_m("BinaryAccuracy"), _multilabel, ref_binary_accuracy),
    "categorical_accuracy": MetricConfig(_m("CategoricalAccuracy"), _onehot_scores,
                                         ref_categorical_accuracy),
    "sparse_categorical_accuracy": MetricConfig(_m("SparseCategoricalAccuracy"), _scores,
                                                ref_sparse_categorical_accuracy),
    "top_k_categorical_accuracy[k=2]": MetricConfig(
        _m("TopKCategoricalAccuracy", k=2), _onehot_topk,
        lambda t, p, w: _ref_top_k(np.argmax(t, axis=1), p, w, 2)),
    "sparse_top_k_categorical_accuracy[k=3]": MetricConfig(
        _m("SparseTopKCategoricalAccuracy", k=3), _topk_scores,
        lambda t, p, w: _ref_top_k(t, p, w, 3)),
    "sparse_top_k_categorical_accuracy[k=8]": MetricConfig(
        _m("SparseTopKCategoricalAccuracy", k=8), _topk_scores,
        lambda t, p, w: _ref_top_k(t, p, w, 8)),
    "mean_squared_error": MetricConfig(_m("MeanSquaredError"), _regression, ref_mse),
    "mean_absolute_error": MetricConfig(_m("MeanAbsoluteError"), _regression, ref_mae),
    "mean": MetricConfig(_m("Mean"), _values, ref_mean),
    "sum": MetricConfig(_m("Sum"), _values, ref_sum),
    "precision": MetricConfig(_m("Precision"), _binary, _dtyped(ref_precision([0.5]))),
    "precision[thresholds=0.3,0.7]": MetricConfig(
        _m("Precision", thresholds=[0.3, 0.7]), _multilabel,
        _dtyped(ref_precision([0.3, 0.7]))),
    "recall": MetricConfig(_m("Recall"), _binary_column, _dtyped(ref_recall)),
    "auc[ROC]": MetricConfig(_m("AUC", num_thresholds=50), _binary,
                             _dtyped(ref_auc("ROC", 50))),
    "auc[PR]": MetricConfig(_m("AUC", num_thresholds=50, curve="PR"), _multilabel,
                            _dtyped(ref_auc("PR", 50))),
    # operating points
    "precision_at_recall[0.6]": MetricConfig(
        _m("PrecisionAtRecall", 0.6), _binary, _dtyped(ref_at("recall", "precision", 0.6))),
    "precision_at_recall[0.5,class_id=1]": MetricConfig(
        _m("PrecisionAtRecall", 0.5, num_thresholds=20, class_id=1), _multilabel,
        _dtyped(ref_at("recall", "precision", 0.5, 20, class_id=1))),
    "recall_at_precision[0.75]": MetricConfig(
        _m("RecallAtPrecision", 0.75), _binary, _dtyped(ref_at("precision", "recall", 0.75))),
    "sensitivity_at_specificity[0.55]": MetricConfig(
        _m("SensitivityAtSpecificity", 0.55), _binary_column,
        _dtyped(ref_at("specificity", "recall", 0.55))),
    "specificity_at_sensitivity[0.65,num_thresholds=1]": MetricConfig(
        _m("SpecificityAtSensitivity", 0.65, num_thresholds=1), _binary,
        _dtyped(ref_at("recall", "specificity", 0.65, 1))),
    # F-scores
    "f1_score": MetricConfig(_m("F1Score"), _onehot_scores, ref_fbeta(None)),
    "f1_score[micro]": MetricConfig(_m("F1Score", "micro"), _onehot_scores,
                                    ref_fbeta("micro")),
    "f1_score[macro]": MetricConfig(_m("F1Score", "macro"), _onehot_scores,
                                    ref_fbeta("macro")),
    "f1_score[weighted]": MetricConfig(_m("F1Score", "weighted"), _onehot_scores,
                                       ref_fbeta("weighted")),
    "f1_score[macro,sparse_labels]": MetricConfig(_m("F1Score", "macro"), _scores,
                                                  ref_fbeta("macro")),
    "f1_score[micro,threshold=0.5]": MetricConfig(
        _m("F1Score", "micro", threshold=0.5), _multilabel, ref_fbeta("micro", 1.0, 0.5)),
    "fbeta_score[weighted,beta=2]": MetricConfig(
        _m("FBetaScore", "weighted", beta=2.0), _onehot_scores, ref_fbeta("weighted", 2.0)),
    "fbeta_score[beta=0.5,threshold=0.4]": MetricConfig(
        _m("FBetaScore", None, beta=0.5, threshold=0.4), _multilabel,
        ref_fbeta(None, 0.5, 0.4)),
    # confusion matrix, IoU
    "confusion_matrix[scores]": MetricConfig(_m("ConfusionMatrix", 4), _scores,
                                             _dtyped(ref_confusion_matrix(4))),
    "confusion_matrix[labels]": MetricConfig(_m("ConfusionMatrix", 4), _label_pairs,
                                             _dtyped(ref_confusion_matrix(4, mode="labels"))),
    "confusion_matrix[binary]": MetricConfig(_m("ConfusionMatrix", 2), _binary_column,
                                             _dtyped(ref_confusion_matrix(2, mode="binary"))),
    "confusion_matrix[normalize=true]": MetricConfig(
        _m("ConfusionMatrix", 4, normalize="true"), _onehot_scores,
        _dtyped(lambda t, p, w, dtype: ref_confusion_matrix(4, "true")(
            np.argmax(t, axis=1), p, w, dtype))),
    "mean_iou": MetricConfig(_m("MeanIoU", 3), _maps, ref_mean_iou(3)),
    "mean_iou[ignore_class=0]": MetricConfig(_m("MeanIoU", 3, ignore_class=0), _maps,
                                             ref_mean_iou(3, ignore_class=0)),
    "mean_iou[sparse_y_pred=False]": MetricConfig(_m("MeanIoU", 3, sparse_y_pred=False),
                                                  _map_scores, ref_mean_iou(3, scores=True)),
    # regression
    "r2_score": MetricConfig(_m("R2Score"), _regression, ref_r2()),
    "r2_score[variance_weighted_average]": MetricConfig(
        _m("R2Score", "variance_weighted_average"), _regression,
        ref_r2("variance_weighted_average")),
    "r2_score[None]": MetricConfig(_m("R2Score", None), _regression, ref_r2(None)),
    "r2_score[num_regressors=3]": MetricConfig(_m("R2Score", num_regressors=3),
                                               _regression, ref_r2(num_regressors=3)),
    "r2_score[1d]": MetricConfig(_m("R2Score"), _regression_1d, ref_r2()),
}


def _split(target: str) -> tuple[str, bool]:
    """The configuration a case target names, and whether it feeds sample weights."""
    if target.endswith(f",{_SW}]"):
        return target[: -len(_SW) - 2] + "]", True
    if target.endswith(f"[{_SW}]"):
        return target[: -len(_SW) - 2], True
    return target, False


def _weighted_target(name: str) -> str:
    return f"{name[:-1]},{_SW}]" if name.endswith("]") else f"{name}[{_SW}]"


def metric_cases(backend: str, device: str, dtypes, pattern=None) -> list[Case]:
    """Every configuration in float32 without and with sample weights, and in float64 with
    them (the weighted run covers the unweighted arithmetic; float64 checks that the state
    and the arithmetic follow the metric's dtype)."""
    return [Case("metric", backend, device, dt, target)
            for name in CONFIGS for target in (name, _weighted_target(name))
            for dt in dtypes if dt in METRIC_DTYPES
            and (dt == "float32" or target != name)]


def _round(a, dtype):
    a = np.asarray(a)
    return a.astype(dtype) if a.dtype.kind == "f" else a


def case_data(target: str, dtype: str):
    """The case's 3 batches: ``(args, weights or None)``, floats rounded to ``dtype``."""
    name, weighted = _split(target)
    rng = np.random.default_rng(case_seed("metric-data", name))
    batches = []
    for n in BATCH_SIZES:
        args = tuple(_round(a, dtype) for a in CONFIGS[name].inputs(rng, n))
        w = rng.uniform(0.25, 2.0, n)
        w[0] = 0.0
        batches.append((args, _round(w, dtype) if weighted else None))
    return batches


def _expected(name, batches, dtype):
    """The reference over ``batches`` concatenated."""
    ref = CONFIGS[name].reference
    args = [np.concatenate([b[0][i] for b in batches]).astype(
        np.float64 if b0.dtype.kind == "f" else b0.dtype)
        for i, b0 in enumerate(batches[0][0])]
    n = len(args[0])
    w = np.concatenate([b[1] for b in batches]).astype(np.float64) if batches[0][1] is not None \
        else np.ones(n)
    if getattr(ref, "needs_dtype", False):
        return np.asarray(ref(*args, w, dtype), np.float64)
    return np.asarray(ref(*args, w), np.float64)


@functools.lru_cache(maxsize=256)
def reference_results(target: str, dtype: str):
    """The expected result after batch 1, 2, 3, and after a reset and the last batch."""
    name, _ = _split(target)
    batches = case_data(target, dtype)
    return [_expected(name, batches[:k], dtype) for k in (1, 2, 3)] + \
        [_expected(name, batches[2:], dtype)]


def run_metric(case: Case) -> Result:
    """Stream the case's batches through its metric; the result keeps the worst error."""
    from unidl import ops

    name, _ = _split(case.target)
    rtol, atol = tolerance(case.dtype, TOLERANCE_KIND)
    result = Result(case, "pass", seed=case_seed("metric-data", name), rtol=rtol, atol=atol)
    batches = case_data(case.target, case.dtype)
    expected = reference_results(case.target, case.dtype)
    steps = [(f"after batch {k + 1}", batches[k]) for k in range(3)]
    steps.append(("after reset_state and batch 3", batches[2]))
    try:
        with unidl.use_backend(case.backend), unidl.device(case.device), \
                np.errstate(all="ignore"):
            metric = CONFIGS[name].make(case.dtype)
            for k, ((label, (args, w)), want) in enumerate(zip(steps, expected)):
                if k == 3:
                    metric.reset_state()
                metric.update_state(*(ops.convert_to_tensor(a) for a in args),
                                    sample_weight=None if w is None
                                    else ops.convert_to_tensor(w))
                got = metric.result()
                if ops.dtype(got) != case.dtype:
                    return _fail(result, f"{case.target} {label}: result dtype "
                                         f"{ops.dtype(got)}, expected {case.dtype}")
                cmp = compare(ops.to_numpy(got), want, rtol, atol)
                if cmp.ratio >= result.ratio:
                    result.ratio, result.max_abs, result.max_rel = (cmp.ratio, cmp.max_abs,
                                                                    cmp.max_rel)
                if not cmp.ok:
                    return _fail(result, f"{case.target} {label}: {cmp.message}")
    except Exception as exc:
        return _fail(result, f"{case.target}: raised {type(exc).__name__}: {exc}")
    return result


def _fail(result: Result, message: str) -> Result:
    result.status, result.message = "fail", message
    return result
