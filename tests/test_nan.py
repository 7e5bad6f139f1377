"""NaN is never hidden: a NaN in the data reaches the loss of ``fit`` and ``evaluate`` on every
backend, in every mode (eager, compiled, ``jit_compile=True``, ``steps_per_execution>1``) and
for the three model families (an MLP with relu, a CNN with Conv2D + relu + MaxPooling2D, an
LSTM); and the ops whose framework kernels dropped NaN keep it (TensorFlow's ``MaxPool`` in
every mode, its ``Max``/``Min`` reductions under XLA: ``unidl_tensorflow.kernels.nan``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import unidl
from unidl import layers, ops

N, BATCH = 16, 4

FAMILIES = {
    "mlp": ((8,), lambda: [layers.Dense(16, activation="relu", input_shape=(8,))]),
    "cnn": ((8, 8, 1), lambda: [layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                                layers.MaxPooling2D(2), layers.Flatten()]),
    "lstm": ((5, 4), lambda: [layers.LSTM(8, input_shape=(5, 4))]),
}
MODES = {"eager": {"run_eagerly": True}, "compiled": {}, "jit": {"jit_compile": True},
         "steps_per_execution": {"steps_per_execution": 2}}


def _model(family, mode):
    unidl.random.set_seed(0)
    body = FAMILIES[family][1]()
    model = unidl.Sequential(body + [layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], **MODES[mode])
    return model


def _data(family):
    """``(x with one NaN, the same x without it, y)``: the NaN is one value of sample 3
    (for the CNN one pixel, so that most max-pooling windows it reaches also hold finite
    values: the case TensorFlow's MaxPool got wrong)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, *FAMILIES[family][0])).astype("float32")
    clean = x.copy()
    if family == "cnn":
        x[3, 4, 4, 0] = np.nan
    else:
        x.reshape(N, -1)[3, 2] = np.nan
    return x, clean, rng.integers(0, 3, N)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_a_nan_in_the_data_reaches_the_loss(backend, family, mode):
    if mode == "jit" and backend == "numpy":
        pytest.skip("NumPy has no compiler: jit_compile=True runs the same eager step")
    if mode == "jit" and backend == "torch":
        import torch

        torch._dynamo.reset()  # (each model compiled as in a fresh process: see the docs)
    x, clean, y = _data(family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (fit's own NaN warning, torch.compile's notes)
        model = _model(family, mode)
        assert math.isfinite(model.evaluate(clean, y, batch_size=BATCH, verbose=0)[0])
        assert math.isnan(model.evaluate(x, y, batch_size=BATCH, verbose=0)[0])
        history = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        assert math.isnan(history.history["loss"][0])
        assert math.isnan(model.evaluate(clean, y, batch_size=BATCH, verbose=0)[0])


# ---- the ops that dropped NaN, on every backend --------------------------------------------
def _pool_input():
    """One NaN in the top-left 2x2 window (channel 0) among finite values, a +inf in
    window (0, 1) of channel 1 and a -inf in window (1, 1) of channel 0."""
    x = np.arange(32, dtype="float32").reshape(1, 4, 4, 2)
    x[0, 0, 1, 0] = np.nan
    x[0, 0, 2, 1] = np.inf
    x[0, 2, 2, 0] = -np.inf
    return x


def _expected_pool(x):
    return x.reshape(1, 2, 2, 2, 2, 2).max(axis=(2, 4))  # (NumPy's max keeps NaN)


OPS = {
    "max_pool": (lambda x: ops.max_pool(x, 2), _pool_input, _expected_pool),
    "max_pool_1d": (lambda x: ops.max_pool(x, 2),
                    lambda: np.array([[[0.0], [np.nan], [2.0], [3.0]]], "float32"),
                    lambda x: np.array([[[np.nan], [3.0]]], "float32")),
    "max": (lambda x: ops.max(x, axis=1),
            lambda: np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0]], "float32"),
            lambda x: np.max(x, axis=1)),
    "min": (lambda x: ops.min(x, axis=1),
            lambda: np.array([[1.0, np.nan, 2.0], [-np.inf, 0.0, 1.0]], "float32"),
            lambda x: np.min(x, axis=1)),
    # (TensorFlow adds the NaN term only when the input's sum is not finite: infinities
    # and an overflowing sum without any NaN take that path and must stay exact)
    "max_pool_inf_no_nan": (lambda x: ops.max_pool(x, 2), lambda: np.nan_to_num(
        _pool_input(), nan=-np.inf, posinf=np.inf), _expected_pool),
    "max_pool_sum_overflows": (lambda x: ops.max_pool(x, 2),
                               lambda: np.full((1, 4, 4, 2), 3e38, "float32"),
                               _expected_pool),
    "global_max_pool": (lambda x: ops.global_max_pool(x), _pool_input,
                        lambda x: np.max(x, axis=(1, 2))),
}


@pytest.mark.parametrize("mode", ["eager", "compiled", "jit"])
@pytest.mark.parametrize("op", OPS)
def test_ops_keep_nan_and_leave_inf_alone(backend, op, mode):
    if mode == "jit" and backend != "tensorflow":
        pytest.skip("jit_compile is checked on the models (torch.compile is slow to start)")
    fn, make, expected = OPS[op]
    x = make()
    be = unidl.current_backend()
    run = fn if mode == "eager" else be.compile_function(fn, jit=mode == "jit")
    got = ops.to_numpy(run(ops.convert_to_tensor(x)))
    np.testing.assert_array_equal(got, expected(x))  # (NaN where NumPy has NaN, inf kept)


def test_tensorflow_max_pool_gradient_is_unchanged():
    """The NaN term carries no gradient: the max-pool gradient is TensorFlow's own."""
    pytest.importorskip("tensorflow")
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype("float32")
    grads = []
    for name in ("numpy", "tensorflow"):
        with unidl.use_backend(name):
            g = unidl.grad(lambda v: ops.sum(ops.square(ops.max_pool(v, 2))))(
                ops.convert_to_tensor(x))
            grads.append(ops.to_numpy(g))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)
