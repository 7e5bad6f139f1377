"""The JAX backend (``plugins/unidl_jax``, its own distribution): Variables as boxes threaded
through ``jax.jit`` steps, ``jax.vjp`` autodiff, and training that matches the other backends.

The conformance suite checks every op, gradient, layer and training run on it
(``unidl conformance --backend jax``); these tests cover what is JAX's own: immutable arrays
behind mutable Variables, compiled steps and the random key.
"""

from __future__ import annotations

import re
from importlib import metadata

import numpy as np
import pytest

import unidl
from unidl import layers, ops
from unidl.tolerances import TRAINING_RTOL

pytest.importorskip("unidl_jax", reason="the unidl-jax distribution is not installed")
pytest.importorskip("jax")

from jax.core import Tracer  # noqa: E402

from unidl_jax.compile import CompiledStep  # noqa: E402
from unidl_jax.state import ALL_BOXES  # noqa: E402


@pytest.fixture
def jax_backend():
    with unidl.use_backend("jax"):
        yield


def test_registered_only_through_its_own_distributions_entry_point():
    (entry,) = [e for e in metadata.entry_points(group="unidl") if e.name == "jax"]
    assert entry.dist.name == "unidl-jax"
    assert entry.value == "unidl_jax.plugin"
    assert "jax" in [b.name for b in unidl.list_backends() if b.error is None]


def test_variables_assigned_in_a_compiled_step_keep_their_values(jax_backend):
    counter = unidl.Variable(0.0, trainable=False)
    total = unidl.Variable(np.zeros(3, np.float32), trainable=False)

    def step(x):
        counter.assign_add(1.0)
        total.assign(ops.add(total, x))
        return ops.sum(total)

    compiled = unidl.current_backend().compile_function(step)
    outs = [float(compiled(np.ones(3, np.float32))) for _ in range(4)]
    assert compiled.compiled
    assert outs == [3.0, 6.0, 9.0, 12.0]
    assert float(counter.numpy()) == 4.0
    assert not any(isinstance(b.value, Tracer) for b in list(ALL_BOXES))


def test_a_compiled_step_returns_only_the_variables_it_assigned(jax_backend):
    """A prediction step reads its weights and assigns none: they keep their arrays (before,
    every box came back as a new output, 40 us per MLP prediction)."""
    weight = unidl.Variable(np.full(3, 2.0, np.float32))
    calls = unidl.Variable(0.0, trainable=False)

    def step(x):
        calls.assign_add(1.0)
        return ops.multiply(weight, x)

    compiled = unidl.current_backend().compile_function(step)
    compiled(np.ones(3, np.float32))  # (discovers the boxes)
    before = weight.value
    out = [ops.to_numpy(compiled(np.ones(3, np.float32))) for _ in range(2)][-1]
    assert compiled.compiled and out.tolist() == [2.0, 2.0, 2.0]
    assert weight.value is before
    assert float(calls.numpy()) == 3.0


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "bool"])
@pytest.mark.parametrize("rows", [2, 128])  # (below and above the device_put size)
def test_numpy_batches_convert_exactly_by_either_path(jax_backend, dtype, rows):
    from unidl_jax.backend import _DEVICE_PUT_BYTES

    batch = (np.arange(rows * 784).reshape(rows, 784) % 7).astype(dtype)
    assert (batch.nbytes >= _DEVICE_PUT_BYTES) == (rows == 128)
    with unidl.device("cpu"):
        x = ops.convert_to_tensor(batch[1:])  # (a view into a larger array)
    assert ops.dtype(x) == dtype
    np.testing.assert_array_equal(ops.to_numpy(x), batch[1:])


def test_a_step_whose_state_grows_is_rediscovered(jax_backend):
    a = unidl.Variable(1.0, trainable=False)
    b = unidl.Variable(10.0, trainable=False)
    use_b = []

    def step(x):
        a.assign_add(ops.sum(x))
        if use_b:  # (Python, read while tracing: a new input shape retraces)
            b.assign_add(ops.sum(x))
        return a.value

    compiled = CompiledStep(step)
    compiled(ops.ones((1,)))
    compiled(ops.ones((1,)))  # compiled, state [a]
    use_b.append(True)
    compiled(ops.ones((1,)))  # (the compiled function: no trace, b untouched)
    compiled(ops.ones((2,)))  # a new shape: the trace reaches b, so the step is rediscovered
    compiled(ops.ones((2,)))
    assert float(a.numpy()) == 8.0 and float(b.numpy()) == 14.0
    assert len(compiled.boxes) == 2
    assert not isinstance(b.storage.value, Tracer)


def test_dropout_draws_fresh_masks_in_a_compiled_step_and_repeats_after_set_seed(jax_backend):
    x = np.ones((4, 64), np.float32)
    step = CompiledStep(lambda x: ops.dropout(x, 0.5))
    masks = [np.asarray(step(x)) for _ in range(3)]  # the first eager, then compiled
    assert not np.array_equal(masks[1], masks[2])
    unidl.random.set_seed(3)
    first = np.asarray(step(x))
    unidl.random.set_seed(3)
    assert np.array_equal(first, np.asarray(step(x)))


def test_second_derivatives_through_jax_vjp(jax_backend):
    d1 = unidl.grad(lambda x: ops.sum(ops.power(x, 3.0)))
    d2 = unidl.grad(lambda x: ops.sum(d1(x)))  # d/dx sum(3 x^2) = 6 x
    x = ops.convert_to_tensor(np.array([1.0, 2.0], np.float64))
    np.testing.assert_allclose(ops.to_numpy(d2(x)), [6.0, 12.0])
    assert ops.dtype(d2(x)) == "float64"


def _curve(backend, model_fn, x, y, weights, **compile_args):
    with unidl.use_backend(backend):
        model = model_fn()
        model.compile(optimizer=unidl.optimizers.Adam(1e-2), metrics=["accuracy"],
                      loss="sparse_categorical_crossentropy", **compile_args)
        model.build((None,) + x.shape[1:])
        model.set_weights(weights)
        losses = [float(model.train_on_batch(x[i:i + 16], y[i:i + 16])[0])
                  for i in range(0, 320, 16)]
        return np.array(losses), model


def _bn_mlp():
    # (no bias before BatchNorm: its gradient is rounding noise, which Adam amplifies)
    return unidl.Sequential([layers.Flatten(input_shape=(8, 8)), layers.Dense(32, use_bias=False),
                             layers.BatchNormalization(), layers.Activation("relu"),
                             layers.Dense(10, activation="softmax")])


@pytest.mark.parametrize("run_eagerly", [False, True], ids=["jit", "eager"])
def test_twenty_steps_match_numpy_compiled_and_eager(run_eagerly, monkeypatch):
    traces = []
    pure = CompiledStep._pure

    def counted(self, *args):
        traces.append(self)
        return pure(self, *args)

    monkeypatch.setattr(CompiledStep, "_pure", counted)
    (x, y), _ = unidl.datasets.digits.load_data()
    x = x[:320].astype(np.float32) / 16.0
    y = y[:320]
    ref, ref_model = _curve("numpy", _bn_mlp, x, y, _initial(x))
    got, model = _curve("jax", _bn_mlp, x, y, _initial(x), run_eagerly=run_eagerly)
    assert bool(traces) != run_eagerly  # (jit: traced once, then compiled calls)
    np.testing.assert_allclose(got, ref, rtol=TRAINING_RTOL)
    assert got[-1] < got[0]
    for a, b in zip(model.get_weights(), ref_model.get_weights()):  # BN statistics included
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _initial(x):
    with unidl.use_backend("numpy"):
        unidl.random.set_seed(0)
        model = _bn_mlp()
        model.build((None,) + x.shape[1:])
        return model.get_weights()


def test_the_seeds_mnist_mlp_example_trains_on_jax(tmp_path):
    from tests.test_examples import run_example

    out = run_example("mnist_mlp.py", "jax", "--out", str(tmp_path))
    assert "backend=jax" in out
    assert float(re.search(r"test accuracy=([0-9.]+)", out).group(1)) > 0.88, out


@pytest.mark.parametrize("example", ["cnn_digits.py", "lstm_digits.py"])
def test_cnn_and_lstm_examples_reach_numpys_accuracy_on_jax(example, tmp_path):
    from tests.test_examples import run_example

    found = {b: re.search(r"test accuracy=([0-9.]+)", run_example(example, b, "2",
                                                                  out_dir=tmp_path))
             for b in ("jax", "numpy")}
    assert found["jax"].group(1) == found["numpy"].group(1), found
