"""``R2Score``: the coefficient of determination, streaming (Keras 3's arguments).

Per output column the metric keeps the (weighted) count, mean and sum of squared deviations
of ``y_true`` (merged batch by batch with Chan et al.'s parallel update, which avoids the
cancellation of ``sum(y**2) - sum(y)**2 / n`` in float32) and the sum of squared errors, and
returns ``1 - SSE / SST`` as scikit-learn's ``r2_score`` (with ``force_finite``: a constant
column gives 1.0 when predicted exactly, else 0.0).

Example:
    >>> import unidl
    >>> from unidl import metrics, ops
    >>> with unidl.use_backend("numpy"):
    ...     m = metrics.R2Score()
    ...     m.update_state([[1.0], [2.0], [3.0], [4.0]], [[1.0], [2.0], [3.0], [5.0]])
    ...     round(float(ops.to_numpy(m.result())), 6)
    0.8
"""

from __future__ import annotations

from unidl import ops
from unidl.metrics.base import Metric, as_dtype, divide_no_nan, expand_weight, static_dim

__all__ = ["R2Score"]

AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


class R2Score(Metric):
    """R² per output, or aggregated over outputs.

    Args:
        class_aggregation: ``"uniform_average"`` (the mean over outputs),
            ``"variance_weighted_average"`` (weighted by each output's variance) or None
            (one value per output): scikit-learn's ``multioutput`` ``"uniform_average"``,
            ``"variance_weighted"``, ``"raw_values"``.
        num_regressors: p > 0 gives the adjusted R², ``1 - (1 - R²)(n - 1)/(n - p - 1)`` with
            ``n`` the number of examples (rows; Keras counts every element of ``y_true``),
            or the plain R² while ``n - p - 1 <= 0`` (Keras warns there; a compiled step
            cannot).

    ``y_true`` and ``y_pred`` are ``(N, outputs)`` (``(N,)``: one output);
    ``sample_weight`` is ``(N,)`` or ``(N, outputs)``.
    """

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype="float32"):
        super().__init__(name, dtype)
        if class_aggregation not in AGGREGATIONS:
            raise ValueError(f"R2Score: class_aggregation must be one of None, "
                             f"'uniform_average', 'variance_weighted_average'; got "
                             f"{class_aggregation!r}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int) or \
                num_regressors < 0:
            raise ValueError(f"R2Score: num_regressors must be an integer >= 0; got "
                             f"{num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.num_outputs = None  # known at the first update_state

    def _build(self, outputs):
        #: rows, per output: the sum of weights, the weighted mean of y_true, the weighted
        #: sum of squared deviations from it, the weighted sum of squared errors, and the
        #: number of examples (the same in every column); one Variable: one assignment
        self.state = self.add_variable((5, outputs), name="state")
        self.num_outputs = outputs

    def _rows(self):
        return tuple(ops.take(self.state.value, i, axis=0) for i in range(5))

    def _inputs(self, y_true, y_pred):
        dt = self._dtype
        y_true, y_pred = as_dtype(y_true, dt), as_dtype(y_pred, dt)
        if len(ops.shape(y_true)) == 1:
            y_true = ops.expand_dims(y_true, -1)
        if len(ops.shape(y_pred)) == 1:
            y_pred = ops.expand_dims(y_pred, -1)
        a, b = ops.shape(y_true), ops.shape(y_pred)
        if len(a) != 2 or len(b) != 2 or (None not in a + b and a != b):
            raise ValueError(f"R2Score expects y_true and y_pred of one shape (batch_size, "
                             f"outputs) or (batch_size,); got {a} and {b}")
        outputs = static_dim(self, y_pred, -1, "y_pred")
        if self.num_outputs is not None and outputs != self.num_outputs:
            raise ValueError(f"R2Score: expected {self.num_outputs} outputs (as in the earlier "
                             f"batches); got shape {b}")
        return y_true, y_pred, outputs

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, outputs = self._inputs(y_true, y_pred)
        if self.num_outputs is None:
            self._build(outputs)
        w = expand_weight(sample_weight, y_true, self._dtype)
        if w is None:
            w = ops.ones_like(y_true)
        n_b = ops.sum(w, 0)
        mean_b = divide_no_nan(ops.sum(ops.multiply(w, y_true), 0), n_b)
        m2_b = ops.sum(ops.multiply(w, ops.square(ops.subtract(y_true, mean_b))), 0)
        sse_b = ops.sum(ops.multiply(w, ops.square(ops.subtract(y_true, y_pred))), 0)
        n_a, mean_a, m2_a, sse_a, rows_a = self._rows()
        n = ops.add(n_a, n_b)
        delta = ops.subtract(mean_b, mean_a)
        self.state.assign(ops.stack([
            n, ops.add(mean_a, ops.multiply(delta, divide_no_nan(n_b, n))),
            ops.add(ops.add(m2_a, m2_b), ops.multiply(
                ops.square(delta), divide_no_nan(ops.multiply(n_a, n_b), n))),
            ops.add(sse_a, sse_b), ops.add(rows_a, ops.sum(ops.ones_like(y_true), 0))]))

    def result(self):
        if self.num_outputs is None:
            return ops.convert_to_tensor(0.0, self._dtype)
        _, _, sst, sse, rows = self._rows()
        exact = ops.where(ops.equal(sse, 0), ops.ones_like(sse), ops.zeros_like(sse))
        raw = ops.where(ops.equal(sst, 0), exact,
                        ops.subtract(1.0, divide_no_nan(sse, sst)))
        if self.class_aggregation == "uniform_average":
            r2 = ops.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            total = ops.sum(sst)
            r2 = ops.where(ops.equal(total, 0), ops.mean(raw),
                           divide_no_nan(ops.sum(ops.multiply(sst, raw)), total))
        else:
            r2 = raw
        if self.num_regressors:
            n = ops.take(rows, 0, axis=0)
            den = ops.subtract(n, float(self.num_regressors + 1))
            adjusted = ops.subtract(1.0, ops.multiply(ops.subtract(1.0, r2), divide_no_nan(
                ops.subtract(n, 1.0), den)))
            r2 = ops.where(ops.greater(den, 0), adjusted, r2)
        return r2

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
