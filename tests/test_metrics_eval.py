"""The evaluation metrics on every backend: against scikit-learn, streaming, reset, configs,
``compile``/``fit``/``evaluate`` (TensorFlow's compiled step included) and their errors.

The values are never written down: each test compares a unidl metric with scikit-learn (the
tests that need it skip when it is missing), with the same metric fed differently, or with
the metric computed by hand on ``model.predict``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import unidl
from unidl import layers, metrics, ops, saving
from unidl.tolerances import tolerance
from unidl_conformance import metrics as conformance

try:
    import sklearn.metrics as skm
except ImportError:  # pragma: no cover - the dev extra installs it
    skm = None

needs_sklearn = pytest.mark.skipif(skm is None, reason="scikit-learn is not installed "
                                                       "(pip install scikit-learn)")
RTOL, ATOL = tolerance("float32", "reduction")
C = 4  # classes in the multi-class tests


def _np(x):
    return np.asarray(ops.to_numpy(x), np.float64)


def _close(got, want):
    np.testing.assert_allclose(_np(got), np.asarray(want, np.float64), rtol=RTOL, atol=ATOL)


def _multiclass(seed=0, n=60, c=C):
    """Integer labels, float32 softmax scores leaning towards them, and weights."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, c, n)
    z = rng.standard_normal((n, c)).astype(np.float32)
    z[np.arange(n), t] += 1.0
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return t, p.astype(np.float32), rng.uniform(0.2, 2.0, n).astype(np.float32)


def _multilabel(seed=1, n=50, c=3):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, (n, c))
    p = np.clip(0.6 * rng.uniform(0, 1, (n, c)) + 0.3 * t, 0, 1).astype(np.float32)
    return t, p, rng.uniform(0.2, 2.0, n).astype(np.float32)


def _feed(metric, *args, sample_weight=None):
    metric.update_state(*(ops.convert_to_tensor(a) for a in args),
                        sample_weight=None if sample_weight is None
                        else ops.convert_to_tensor(sample_weight))
    return metric.result()


# -- against scikit-learn -----------------------------------------------------------------------
@needs_sklearn
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_f1_and_fbeta_match_sklearn_on_multiclass(backend, average, weighted):
    t, p, w = _multiclass()
    w = w if weighted else None
    pred = p.argmax(1)
    _close(_feed(metrics.F1Score(average=average), np.eye(C)[t], p, sample_weight=w),
           skm.f1_score(t, pred, labels=range(C), average=average, sample_weight=w,
                        zero_division=0))
    _close(_feed(metrics.FBetaScore(average=average, beta=2.0), t, p, sample_weight=w),
           skm.fbeta_score(t, pred, beta=2.0, labels=range(C), average=average,
                           sample_weight=w, zero_division=0))


@needs_sklearn
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_fbeta_matches_sklearn_on_multilabel_with_a_threshold(backend, average):
    t, p, w = _multilabel()
    m = metrics.FBetaScore(average=average, beta=0.5, threshold=0.4)
    _close(_feed(m, t, p, sample_weight=w),
           skm.fbeta_score(t, (p > 0.4).astype(int), beta=0.5, average=average,
                           sample_weight=w, zero_division=0))


@needs_sklearn
@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_matches_sklearn(backend, normalize):
    t, p, w = _multiclass(2)
    want = skm.confusion_matrix(t, p.argmax(1), labels=range(C), sample_weight=w,
                                normalize=normalize)
    _close(_feed(metrics.ConfusionMatrix(C, normalize=normalize), t, p, sample_weight=w), want)
    # labels against labels, one-hot against scores: the same matrix
    _close(_feed(metrics.ConfusionMatrix(C, normalize=normalize), t, p.argmax(1),
                 sample_weight=w), want)
    _close(_feed(metrics.ConfusionMatrix(C, normalize=normalize), np.eye(C)[t], p,
                 sample_weight=w), want)


@needs_sklearn
def test_binary_confusion_matrix_thresholds_a_sigmoid_output(backend):
    t, p, w = _multilabel(3, c=1)
    m = metrics.ConfusionMatrix(2, threshold=0.6)
    _close(_feed(m, t, p, sample_weight=w),
           skm.confusion_matrix(t[:, 0], (p[:, 0] > 0.6).astype(int), labels=[0, 1],
                                sample_weight=w))


@needs_sklearn
@pytest.mark.parametrize("sparse_y_pred", [True, False])
def test_mean_iou_matches_sklearn_jaccard(backend, sparse_y_pred):
    rng = np.random.default_rng(4)
    t = rng.integers(0, 3, (30, 5, 5))
    pred = np.where(rng.uniform(0, 1, t.shape) < 0.7, t, rng.integers(0, 3, t.shape))
    w = rng.uniform(0.2, 2.0, 30).astype(np.float32)
    y_pred = pred if sparse_y_pred else np.eye(3, dtype=np.float32)[pred]
    m = metrics.MeanIoU(3, sparse_y_pred=sparse_y_pred)
    pixel_w = np.broadcast_to(w[:, None, None], t.shape).ravel()
    _close(_feed(m, t, y_pred, sample_weight=w),
           skm.jaccard_score(t.ravel(), pred.ravel(), labels=range(3), average="macro",
                             sample_weight=pixel_w))
    # ignore_class: those pixels are not counted, and the mean is over the other classes
    m = metrics.MeanIoU(3, ignore_class=0)
    keep = t.ravel() != 0
    per_class = skm.jaccard_score(t.ravel()[keep], pred.ravel()[keep], labels=range(3),
                                  average=None, sample_weight=pixel_w[keep])
    union = [np.sum(((t.ravel() == k) | (pred.ravel() == k)) & keep) for k in range(3)]
    _close(_feed(m, t, pred, sample_weight=w),
           np.mean([v for v, u in zip(per_class, union) if u]))


@needs_sklearn
@pytest.mark.parametrize("aggregation, multioutput", [
    ("uniform_average", "uniform_average"), ("variance_weighted_average", "variance_weighted"),
    (None, "raw_values")])
def test_r2_score_matches_sklearn(backend, aggregation, multioutput):
    rng = np.random.default_rng(5)
    t = (rng.standard_normal((80, 3)) * [1.0, 4.0, 0.3] + [0.0, 10.0, -3.0]).astype(np.float32)
    p = (t + rng.standard_normal((80, 3)) * [0.5, 2.0, 0.4]).astype(np.float32)
    w = rng.uniform(0.2, 2.0, 80).astype(np.float32)
    for weights in (None, w):
        m = metrics.R2Score(class_aggregation=aggregation)
        _close(_feed(m, t, p, sample_weight=weights),
               skm.r2_score(t, p, sample_weight=weights, multioutput=multioutput))
    want = skm.r2_score(t[:, 0], p[:, 0])  # one output, given as (N,)
    _close(_feed(metrics.R2Score(class_aggregation=aggregation), t[:, 0], p[:, 0]),
           want if aggregation else [want])
    n, k = len(t), 5  # adjusted R2 from scikit-learn's plain R2
    r2 = skm.r2_score(t, p, multioutput=multioutput)
    _close(_feed(metrics.R2Score(aggregation, num_regressors=k), t, p),
           1 - (1 - r2) * (n - 1) / (n - k - 1))


def _grid_scores(seed, n=90, num_thresholds=21):
    """Binary labels and scores midway between the metric's thresholds ``j / (T - 1)``, so
    its thresholds cut the data exactly where scikit-learn's curves have their points."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    k = np.clip(rng.integers(0, num_thresholds - 1, n) + 6 * t - 3, 0, num_thresholds - 2)
    s = ((k + 0.5) / (num_thresholds - 1)).astype(np.float32)
    return t, s, rng.uniform(0.2, 2.0, n).astype(np.float32)


@needs_sklearn
@pytest.mark.parametrize("weighted", [False, True])
def test_operating_points_match_sklearn_curves(backend, weighted):
    t, s, w = _grid_scores(6)
    w = w if weighted else None
    precision, recall, _ = skm.precision_recall_curve(t, s, sample_weight=w)
    fpr, tpr, _ = skm.roc_curve(t, s, sample_weight=w, drop_intermediate=False)
    for target in (0.35, 0.62, 0.9):
        kw = {"num_thresholds": 21}
        _close(_feed(metrics.PrecisionAtRecall(target, **kw), t, s, sample_weight=w),
               max(precision[recall >= target], default=0.0))
        _close(_feed(metrics.RecallAtPrecision(target, **kw), t, s, sample_weight=w),
               max(recall[precision >= target], default=0.0))
        _close(_feed(metrics.SensitivityAtSpecificity(target, **kw), t, s, sample_weight=w),
               max(tpr[1 - fpr >= target], default=0.0))
        _close(_feed(metrics.SpecificityAtSensitivity(target, **kw), t, s, sample_weight=w),
               max((1 - fpr)[tpr >= target], default=0.0))


@needs_sklearn
def test_operating_points_take_a_class_column(backend):
    t, p, w = _multilabel(7, c=3)
    p = ((np.floor(p * 20) + 0.5) / 20).astype(np.float32)  # midway between thresholds
    precision, recall, _ = skm.precision_recall_curve(t[:, 2], p[:, 2], sample_weight=w)
    m = metrics.PrecisionAtRecall(0.5, num_thresholds=21, class_id=2)
    _close(_feed(m, t, p, sample_weight=w), max(precision[recall >= 0.5]))


@needs_sklearn
@pytest.mark.filterwarnings("ignore:'k' .* greater than or equal to 'n_classes'")
@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_top_k_matches_sklearn_with_sample_weight(backend, k):
    t, p, w = _multiclass(8, c=5)
    for weights in (None, w):
        want = skm.top_k_accuracy_score(t, p, k=min(k, 5), labels=range(5),
                                        sample_weight=weights)
        _close(_feed(metrics.SparseTopKCategoricalAccuracy(k=k), t, p,
                     sample_weight=weights), want)
        _close(_feed(metrics.SparseTopKCategoricalAccuracy(k=k), t[:, None], p,
                     sample_weight=weights), want)
        _close(_feed(metrics.TopKCategoricalAccuracy(k=k), np.eye(5)[t], p,
                     sample_weight=weights), want)


def test_top_k_counts_ties_at_the_boundary_and_sorted_ids(backend):
    p = np.array([[0.3, 0.3, 0.3, 0.1], [0.1, 0.2, 0.3, 0.4]], np.float32)
    t = np.array([2, 0])
    m = metrics.SparseTopKCategoricalAccuracy(k=1)  # class 2 ties for the top: it is in
    top1 = np.array([float((p[i] > p[i, t[i]]).sum() < 1) for i in range(2)])
    _close(_feed(m, t, p), top1.mean())
    ids = np.argsort(-p, axis=1, kind="stable")
    sorted_ids = metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True)
    _close(_feed(sorted_ids, t, ids),
           np.mean([t[i] in ids[i, :2] for i in range(2)]))


@needs_sklearn
@pytest.mark.parametrize("options", [
    {}, {"digits": 3}, {"target_names": ["ant", "bee", "cat", "dog"]},
    {"labels": [0, 2, 3]}, {"weighted": True}, {"labels": [3, 1, 0, 2], "digits": 4}])
def test_classification_report_matches_sklearn(backend, options):
    t, p, w = _multiclass(9)
    kw = {k: v for k, v in options.items() if k != "weighted"}
    if options.get("weighted"):
        kw["sample_weight"] = w
    want_dict = skm.classification_report(t, p.argmax(1), output_dict=True, zero_division=0,
                                          **kw)
    want_text = skm.classification_report(t, p.argmax(1), zero_division=0, **kw)
    got = metrics.classification_report(ops.convert_to_tensor(t), ops.convert_to_tensor(p),
                                        **kw)
    assert isinstance(got, dict) and list(got) == list(want_dict)
    for key, value in want_dict.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert str(got) == want_text
    assert metrics.classification_report(t, p.argmax(1), output_dict=True, **kw) == got
    assert type(metrics.classification_report(t, p, output_dict=True, **kw)) is dict


@needs_sklearn
def test_classification_report_of_binary_probabilities_and_string_labels():
    t, p, _ = _multilabel(10, c=1)
    want = skm.classification_report(t[:, 0], (p[:, 0] > 0.5).astype(int), zero_division=0)
    assert str(metrics.classification_report(t, p)) == want
    names = np.array(["no", "yes"])
    want = skm.classification_report(names[t[:, 0]], names[(p[:, 0] > 0.5).astype(int)],
                                     zero_division=0)
    assert str(metrics.classification_report(names[t[:, 0]],
                                             names[(p[:, 0] > 0.5).astype(int)])) == want


# -- streaming, reset, configs --------------------------------------------------------------------
NEW = [name for name in conformance.CONFIGS
       if name.split("[")[0] in ("f1_score", "fbeta_score", "confusion_matrix", "mean_iou",
                                 "r2_score", "precision_at_recall", "recall_at_precision",
                                 "sensitivity_at_specificity", "specificity_at_sensitivity",
                                 "top_k_categorical_accuracy",
                                 "sparse_top_k_categorical_accuracy")]


def _batches(name):
    return conformance.case_data(f"{name[:-1]},sample_weight]" if name.endswith("]")
                                 else f"{name}[sample_weight]", "float32")


def _stream(metric, batches):
    for args, w in batches:
        _feed(metric, *args, sample_weight=w)
    return _np(metric.result())


@pytest.mark.parametrize("name", NEW)
def test_streaming_equals_one_big_batch_and_reset_starts_over(backend, name):
    config, batches = conformance.CONFIGS[name], _batches(name)
    whole = [(tuple(np.concatenate([b[0][i] for b in batches]) for i in range(len(b0))),
              np.concatenate([b[1] for b in batches]))
             for b0 in [batches[0][0]]]
    streamed = config.make("float32")
    got = _stream(streamed, batches)
    np.testing.assert_allclose(got, _stream(config.make("float32"), whole), rtol=RTOL,
                               atol=ATOL)
    streamed.reset_state()
    np.testing.assert_allclose(_stream(streamed, batches[1:2]),
                               _stream(config.make("float32"), batches[1:2]), rtol=RTOL,
                               atol=ATOL)


@pytest.mark.parametrize("name", NEW)
def test_config_round_trips_and_gives_the_same_result(name):
    with unidl.use_backend("numpy"):
        metric = conformance.CONFIGS[name].make("float32")
        config = saving.serialize(metric)
        back = saving.deserialize(json.loads(json.dumps(config)))
        assert type(back) is type(metric) and saving.serialize(back) == config
        assert back.get_config() == metric.get_config()
        batches = _batches(name)
        np.testing.assert_array_equal(_stream(back, batches), _stream(metric, batches))


@pytest.mark.parametrize("name", NEW)
def test_update_state_runs_inside_the_compiled_step(backend, name):
    """The backend's compile_function (tf.function on TensorFlow: no host reads, no branch
    on a value; batch sizes 7, 12, 5 make it retrace with an unknown batch size)."""
    config, batches = conformance.CONFIGS[name], _batches(name)
    eager, compiled = config.make("float32"), config.make("float32")
    step = unidl.current_backend().compile_function(
        lambda *args: compiled.update_state(*args[:-1], sample_weight=args[-1]))
    for args, w in batches:
        step(*(ops.convert_to_tensor(a) for a in args), ops.convert_to_tensor(w))
    np.testing.assert_allclose(_np(compiled.result()), _stream(eager, batches), rtol=RTOL,
                               atol=ATOL)


# -- compile, fit, evaluate -----------------------------------------------------------------------
def _classifier(classes, activation="softmax"):
    unidl.random.set_seed(3)
    return unidl.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)),
                             layers.Dense(classes, activation=activation)])


def _by_hand(metric, y, probs, w):
    return float(_np(_feed(metric, y, probs, sample_weight=w)))


def _check_evaluate(model, x, y, w, fresh):
    """``evaluate`` (with sample weights) equals each metric computed on ``predict``."""
    logs = model.evaluate(x, y, sample_weight=w, batch_size=16, verbose=0, return_dict=True)
    probs = model.predict(x, batch_size=16, verbose=0)
    for name, make in fresh.items():
        assert logs[name] == pytest.approx(_by_hand(make(), y, probs, w), rel=1e-5,
                                           abs=1e-6), name


def _step_is_compiled(model, kind="train"):
    import inspect

    be = unidl.current_backend()
    step = model._steps[(kind, be.name)]
    raw = getattr(model, f"_raw_{kind}_step")
    return inspect.unwrap(step) != raw


def test_classification_metrics_in_fit_and_evaluate(backend):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((72, 6)).astype(np.float32)
    y = rng.integers(0, 3, 72)
    w = rng.uniform(0.2, 2.0, 72).astype(np.float32)
    fresh = {"f1_score": lambda: metrics.F1Score(average="macro"),
             "fbeta_score": lambda: metrics.FBetaScore(average="weighted", beta=2.0),
             "mean_io_u": lambda: metrics.MeanIoU(3, sparse_y_pred=False),
             "top2": lambda: metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")}
    model = _classifier(3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[make() for make in fresh.values()])
    history = model.fit(x, y, sample_weight=w, epochs=2, batch_size=16, verbose=0)
    assert set(fresh) <= set(history.history)
    if unidl.current_backend().compile_by_default:
        assert _step_is_compiled(model)
    _check_evaluate(model, x, y, w, fresh)


def test_binary_and_regression_metrics_in_fit_and_evaluate(backend):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.standard_normal(64) > 0).astype(np.float32)
    w = rng.uniform(0.2, 2.0, 64).astype(np.float32)
    fresh = {"precision_at_recall": lambda: metrics.PrecisionAtRecall(0.6),
             "recall_at_precision": lambda: metrics.RecallAtPrecision(0.7),
             "sensitivity_at_specificity": lambda: metrics.SensitivityAtSpecificity(0.5),
             "specificity_at_sensitivity": lambda: metrics.SpecificityAtSensitivity(0.5),
             "auc": metrics.AUC}
    model = _classifier(1, "sigmoid")
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[make() for make in fresh.values()])
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    _check_evaluate(model, x, y, w, fresh)
    target = (x @ rng.standard_normal((6, 2))).astype(np.float32)
    reg = unidl.Sequential([layers.Dense(2, input_shape=(6,))])
    reg.compile(optimizer="adam", loss="mse", metrics=["r2_score", metrics.R2Score(
        "variance_weighted_average", num_regressors=6, name="adjusted")])
    reg.fit(x, target, epochs=1, batch_size=16, verbose=0)
    _check_evaluate(reg, x, target, w, {
        "r2_score": metrics.R2Score,
        "adjusted": lambda: metrics.R2Score("variance_weighted_average", num_regressors=6)})


def test_array_results_in_fit(backend):
    x = np.random.default_rng(13).standard_normal((32, 6)).astype(np.float32)
    y = np.arange(32) % 3
    model = _classifier(3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["f1_score", metrics.ConfusionMatrix(3)])
    history = model.fit(x, y, epochs=1, verbose=2)  # (the progress line prints the arrays)
    assert np.asarray(history.history["f1_score"][0]).shape == (3,)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.asarray(logs["confusion_matrix"]).shape == (3, 3)
    assert np.asarray(logs["confusion_matrix"]).sum() == 32


def test_keras_string_names():
    for name, cls in (("f1_score", metrics.F1Score), ("F1Score", metrics.F1Score),
                      ("fbeta_score", metrics.FBetaScore), ("r2_score", metrics.R2Score),
                      ("R2Score", metrics.R2Score), ("auc", metrics.AUC),
                      ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy)):
        assert type(metrics.get(name)) is cls, name
    assert metrics.get("f1_score").name == "f1_score"


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: metrics.F1Score(average="median"), r"F1Score: average must be one of .*'median'"),
    (lambda: metrics.FBetaScore(beta=0.0), r"FBetaScore: beta must be a number > 0; got 0.0"),
    (lambda: metrics.F1Score(threshold=1.5), r"F1Score: threshold .* \(0, 1\]; got 1.5"),
    (lambda: metrics.ConfusionMatrix(0), r"ConfusionMatrix: num_classes must be an integer"),
    (lambda: metrics.ConfusionMatrix(3, normalize="rows"), r"normalize must be .*'rows'"),
    (lambda: metrics.MeanIoU(2.5), r"MeanIoU: num_classes must be an integer >= 1; got 2.5"),
    (lambda: metrics.R2Score("median"), r"R2Score: class_aggregation must be .*'median'"),
    (lambda: metrics.R2Score(num_regressors=-1), r"R2Score: num_regressors .*; got -1"),
    (lambda: metrics.PrecisionAtRecall(1.5), r"PrecisionAtRecall: recall must be a number in "
                                             r"\[0, 1\]; got 1.5"),
    (lambda: metrics.SpecificityAtSensitivity(0.5, num_thresholds=0),
     r"SpecificityAtSensitivity: num_thresholds must be an integer > 0; got 0"),
    (lambda: metrics.TopKCategoricalAccuracy(k=0), r"TopKCategoricalAccuracy: k must be a "
                                                   r"positive integer; got 0"),
    (lambda: metrics.get("mean_iou"), r"'mean_iou': MeanIoU needs the argument 'num_classes'"),
    (lambda: metrics.get("precision_at_recall"), r"PrecisionAtRecall needs .*'recall'"),
])
def test_bad_arguments_name_the_metric_and_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make, args, match", [
    (lambda: metrics.ConfusionMatrix(3), (np.arange(8) % 3, np.ones((8, 4), np.float32)),
     r"ConfusionMatrix: expected .*num_classes=3 .*y_pred of shape \(8, 4\)"),
    (lambda: metrics.MeanIoU(3, sparse_y_pred=False),
     (np.zeros((2, 5), int), np.ones((2, 5, 4), np.float32)),
     r"MeanIoU: expected y_pred with num_classes=3 entries on axis -1 .*got shape \(2, 5, 4\)"),
    (lambda: metrics.MeanIoU(3), (np.zeros((2, 5), int), np.ones((2, 5, 3), np.float32)),
     r"MeanIoU: .*sparse_y_pred=False"),
    (lambda: metrics.F1Score(), (np.ones(8), np.ones(8, np.float32)),
     r"F1Score expects y_pred of shape \(batch_size, num_classes\); got shape \(8,\)"),
    (lambda: metrics.F1Score(), (np.ones((8, 3)), np.ones((8, 4), np.float32)),
     r"F1Score: expected y_true of shape \(batch_size, 4\) .*got shape \(8, 3\)"),
    (lambda: metrics.R2Score(), (np.ones((8, 2)), np.ones((8, 3), np.float32)),
     r"R2Score expects y_true and y_pred of one shape .*got \(8, 2\) and \(8, 3\)"),
    (lambda: metrics.PrecisionAtRecall(0.5, class_id=3),
     (np.ones((4, 3)), np.ones((4, 3), np.float32)),
     r"PrecisionAtRecall: class_id must be in \[0, 3\) .*got 3"),
])
def test_bad_inputs_name_the_metric_the_expected_and_the_given_shape(backend, make, args,
                                                                      match):
    with pytest.raises(ValueError, match=match):
        _feed(make(), *args)


def test_the_number_of_classes_cannot_change_between_batches(backend):
    m = metrics.F1Score(average="macro")
    _feed(m, np.eye(3)[[0, 1]], np.full((2, 3), 0.3, np.float32))
    with pytest.raises(ValueError, match=r"F1Score: expected y_pred with 3 classes .*\(2, 4\)"):
        _feed(m, np.eye(4)[[0, 1]], np.full((2, 4), 0.3, np.float32))
    with pytest.raises(ValueError, match=r"classification_report: expected 3 target_names"):
        metrics.classification_report([0, 1, 2], [0, 1, 1], target_names=["a", "b"])
