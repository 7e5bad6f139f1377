"""Cross-entropy on a softmax output uses the softmax's logits (unidl.logits), on every
backend: the same value where nothing saturates, the exact one where the clipped form
would stop at -log(1e-7) ~ 16.1, and a gradient where the clip would give none."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import activations, layers, losses, ops
from unidl.autodiff.api import value_and_grad

LOGITS = np.array([[2.0, -1.0, 0.5], [100.0, -100.0, 0.0]], "float32")
LABELS = np.array([0, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_output_uses_its_logits(backend):
    with unidl.use_backend(backend):
        z = ops.convert_to_tensor(LOGITS)
        sparse = ops.to_numpy(losses.sparse_categorical_crossentropy(
            LABELS, activations.softmax(z)))
        onehot = np.eye(3, dtype="float32")[LABELS]
        dense = ops.to_numpy(losses.categorical_crossentropy(onehot, activations.softmax(z)))
        # a new tensor (here: times 1) is probabilities without logits: the clipped form
        clipped = ops.to_numpy(losses.sparse_categorical_crossentropy(
            LABELS, ops.multiply(activations.softmax(z), 1.0)))
    shifted = LOGITS - LOGITS.max(1, keepdims=True)
    exact = -(shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))[[0, 1], LABELS]
    np.testing.assert_allclose(sparse, exact, rtol=1e-5)
    np.testing.assert_allclose(dense, exact, rtol=1e-5)
    assert sparse[1] == pytest.approx(200.0, rel=1e-5)
    assert clipped[1] == pytest.approx(-np.log(1e-7), rel=1e-3)
    np.testing.assert_allclose(clipped[0], exact[0], rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_confidently_wrong_softmax_still_gets_a_gradient(backend):
    with unidl.use_backend(backend):
        def loss(z):
            return ops.mean(losses.sparse_categorical_crossentropy(
                LABELS[1:], activations.softmax(z)))

        _, grad = value_and_grad(loss)(ops.convert_to_tensor(LOGITS[1:]))
        grad = ops.to_numpy(grad)
    np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_ending_in_softmax_trains_with_the_logits_loss(backend):
    with unidl.use_backend(backend):
        unidl.random.set_seed(0)
        model = unidl.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
        model.compile("sgd", "sparse_categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32") * 50
        y = np.arange(8) % 3
        logits = ops.to_numpy(ops.add(ops.matmul(ops.convert_to_tensor(x),
                                                 model.layers[0].kernel.value),
                                      model.layers[0].bias.value))
        loss = model.evaluate(x, y, verbose=0)
    shifted = logits - logits.max(1, keepdims=True)
    exact = -(shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))[np.arange(8), y]
    assert loss == pytest.approx(exact.mean(), rel=1e-4)
