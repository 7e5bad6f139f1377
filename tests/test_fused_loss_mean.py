"""A loss object's batch mean as one op (``ops.mean_sparse_categorical_crossentropy``) where
the backend has a kernel for it, and the mean of the per-example losses elsewhere: the same
value either way, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import losses, ops

CASES = {
    "probabilities": (np.array([0, 2, 1, 2]), lambda r: r.dirichlet(np.ones(3), 4), {}),
    "logits": (np.array([0, 2, 1, 2]), lambda r: r.normal(size=(4, 3)), {"from_logits": True}),
    "labels(N,1)": (np.array([[1], [0], [2]]), lambda r: r.normal(size=(3, 3)),
                    {"from_logits": True}),
    "sequence": (np.array([[0, 1], [2, 2]]), lambda r: r.normal(size=(2, 2, 3)),
                 {"from_logits": True}),
}


def _args(case):
    labels, scores, kwargs = CASES[case]
    return labels, scores(np.random.default_rng(0)).astype("float32"), kwargs


@pytest.mark.parametrize("case", CASES)
def test_the_batch_mean_equals_the_mean_of_the_examples(backend, case):
    labels, scores, kwargs = _args(case)
    loss = losses.SparseCategoricalCrossentropy(**kwargs)
    got = float(ops.to_numpy(loss(labels, scores)))
    per_example = losses.sparse_categorical_crossentropy(labels, ops.convert_to_tensor(scores),
                                                          **kwargs)
    np.testing.assert_allclose(got, float(ops.to_numpy(ops.mean(per_example))), rtol=1e-6)
    weighted = loss(labels, scores, sample_weight=np.ones(labels.shape[0]))
    np.testing.assert_allclose(float(ops.to_numpy(weighted)), got, rtol=1e-6)


def test_the_fused_op_runs_where_the_backend_has_a_kernel(backend, monkeypatch):
    calls = []
    fused = ops.mean_sparse_categorical_crossentropy
    monkeypatch.setattr(ops, "mean_sparse_categorical_crossentropy",
                        lambda *a: calls.append(a) or fused(*a))
    labels, scores, kwargs = _args("logits")
    losses.SparseCategoricalCrossentropy(**kwargs)(labels, scores)
    has_kernel = unidl.current_backend().sources["mean_sparse_categorical_crossentropy"]
    assert bool(calls) == (has_kernel == "kernel")
    calls.clear()
    losses.SparseCategoricalCrossentropy(reduction="sum", **kwargs)(labels, scores)
    losses.SparseCategoricalCrossentropy(**kwargs)(labels, scores, sample_weight=np.ones(4))
    assert not calls  # (a sum, and weights: the per-example losses)


def test_torch_rejects_the_label_it_used_to_ignore():
    """torch's ``ignore_index=-100`` made a label of -100 a loss of 0; it is out of range
    like any other negative label."""
    pytest.importorskip("torch")
    with unidl.use_backend("torch"):
        for fn in (ops.sparse_categorical_crossentropy, ops.mean_sparse_categorical_crossentropy):
            with pytest.raises(unidl.errors.OpError, match="-100"):
                fn(np.array([0, -100]), np.zeros((2, 3), "float32"), True)
