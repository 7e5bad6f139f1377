"""Mixed precision (``unidl.mixed_precision``): dtype policies, layers computing in float16 /
bfloat16 with float32 weights, dynamic loss scaling, saving, and MNIST accuracy."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import numpy as np
import pytest

import unidl
from tests.conftest import ROOT
from unidl import layers, mixed_precision, ops
from unidl.mixed_precision import DTypePolicy, LossScaleOptimizer

MIXED = ["mixed_float16", "mixed_bfloat16"]
MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _float32_afterwards():
    yield
    mixed_precision.set_global_policy("float32")


class Probe(layers.Layer):
    """Records the dtypes its weight and its input have inside ``call``."""

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1],), initializer="ones", name="w")

    def call(self, x):
        self.seen = (ops.dtype(self.w), ops.dtype(x))
        return ops.multiply(x, self.w)


def _model(dense_dtype=None):
    return unidl.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(10, activation="softmax", dtype=dense_dtype),
    ])


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 10, n)


# -- policies --------------------------------------------------------------------------------
def test_policy_names_and_dtypes():
    for name, compute in (("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")):
        p = DTypePolicy(name)
        assert (p.name, p.compute_dtype, p.variable_dtype, p.is_mixed) == \
            (name, compute, "float32", True)
    p = mixed_precision.Policy("float64")
    assert (p.compute_dtype, p.variable_dtype, p.is_mixed) == ("float64", "float64", False)
    assert mixed_precision.global_policy().name == "float32"
    assert DTypePolicy.from_config(DTypePolicy("mixed_float16").get_config()) == \
        DTypePolicy("mixed_float16")


def test_unknown_policy_names_it_and_the_accepted_ones():
    with pytest.raises(ValueError, match=r"'mixed_float8'.*mixed_float16, mixed_bfloat16"):
        mixed_precision.set_global_policy("mixed_float8")
    with pytest.raises(ValueError, match="'halfish'"):
        layers.Dense(2, dtype="halfish")
    with pytest.raises(ValueError, match="float dtype"):
        mixed_precision.set_global_policy("int32")
    assert mixed_precision.global_policy().name == "float32"


def test_global_policy_applies_to_layers_created_afterwards():
    before = layers.Dense(2)
    mixed_precision.set_global_policy("mixed_bfloat16")
    after, pinned = layers.Dense(2), layers.Dense(2, dtype="float32")
    assert (before.dtype, before.compute_dtype) == ("float32", "float32")
    assert (after.dtype, after.compute_dtype, after.dtype_policy.name) == \
        ("float32", "bfloat16", "mixed_bfloat16")
    assert (pinned.compute_dtype, pinned.dtype_policy.name) == ("float32", "float32")
    mixed_precision.set_global_policy(None)
    assert mixed_precision.global_policy().name == "float32"


# -- layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", MIXED)
def test_mixed_layers_keep_float32_weights_and_compute_low(backend, policy):
    compute = DTypePolicy(policy).compute_dtype
    probe = Probe(dtype=policy)
    y = probe(ops.ones((2, 3)))
    assert probe.seen == (compute, compute)  # weight and input, as the layer sees them
    assert ops.dtype(y) == compute
    assert probe.w.dtype == "float32" and ops.dtype(probe.w.value) == "float32"  # afterwards
    conv = layers.Conv2D(3, 3, dtype=policy)
    assert ops.dtype(conv(ops.ones((1, 5, 5, 2)))) == compute
    assert [w.dtype for w in conv.weights] == ["float32", "float32"]


def test_numpy_computes_float16_honestly():
    """On NumPy a mixed_float16 Dense is NumPy's own float16 matmul (not float32 arithmetic
    rounded at the end)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 33)).astype("float32")
    with unidl.use_backend("numpy"):
        dense = layers.Dense(7, dtype="mixed_float16", bias_initializer="glorot_uniform")
        y = ops.to_numpy(dense(x))
        k, b = (w.numpy().astype("float16") for w in (dense.kernel, dense.bias))
    x16 = x.astype("float16")
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, np.matmul(x16, k) + b)
    wide = (x16.astype("float32") @ k.astype("float32") + b.astype("float32")).astype("float16")
    assert not np.array_equal(y, wide)


def test_float32_layer_inside_a_mixed_model(backend):
    mixed_precision.set_global_policy("mixed_float16")
    inner, last = Probe(), Probe(dtype="float32")
    model = unidl.Sequential([layers.Dense(3), inner, last])
    y = model(ops.ones((2, 4)))
    assert inner.seen == ("float16", "float16")
    assert last.seen == ("float32", "float32")  # its weight from the float32 value, input cast
    assert ops.dtype(y) == "float32"
    softmax = layers.Dense(3, activation="softmax")  # softmax in float32 (its gradient)
    assert ops.dtype(softmax(ops.ones((2, 4)))) == "float32"
    assert ops.dtype(layers.Activation("log_softmax")(ops.ones((2, 4)))) == "float32"
    assert ops.dtype(layers.Dense(3, activation="relu")(ops.ones((2, 4)))) == "float16"
    plain = unidl.Sequential([layers.Dense(3), Probe()])  # a mixed last layer: output cast
    assert ops.dtype(plain(ops.ones((2, 4)))) == "float32"
    assert ops.dtype(plain.layers[0](ops.ones((2, 4)))) == "float16"


@pytest.mark.parametrize("rnn", ["LSTM", "GRU", "SimpleRNN"])
def test_recurrent_layers_compute_in_float16(backend, rnn):
    layer = getattr(layers, rnn)(4, return_sequences=True, dtype="mixed_float16")
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    y = layer(x)
    assert ops.dtype(y) == "float16" and ops.shape(y) == (2, 5, 4)
    assert {w.dtype for w in layer.weights} == {"float32"}
    grads = unidl.grad(lambda v: ops.sum(ops.cast(layer(x, training=True), "float32")))(
        layer.trainable_weights)
    assert all(ops.dtype(g) == "float32" and np.all(np.isfinite(ops.to_numpy(g)))
               for g in grads)


def test_non_trainable_state_stays_float32(backend):
    mixed_precision.set_global_policy("mixed_float16")
    bn = layers.BatchNormalization()
    model = unidl.Sequential([layers.Dense(4), bn])
    x = np.random.default_rng(0).normal(3.0, 2.0, (16, 5)).astype("float32")
    y = model(x, training=True)
    assert ops.dtype(y) == "float32"
    assert bn.moving_mean.dtype == "float32" and bn.moving_variance.dtype == "float32"
    assert np.all(np.isfinite(bn.moving_mean.numpy()))


@pytest.mark.parametrize("policy", MIXED)
def test_gradients_are_float32_and_close_to_float32_ones(backend, policy):
    x, y = _data(8)
    unidl.random.set_seed(3)
    ref = _model()
    mixed_precision.set_global_policy(policy)
    unidl.random.set_seed(3)
    mixed = _model()
    loss = unidl.losses.get("sparse_categorical_crossentropy")
    grads = []
    for model in (ref, mixed):
        model(x)
        variables = model.trainable_weights
        g = unidl.grad(lambda v, m=model: loss(y, m(x, training=True)))(variables)
        grads.append([ops.to_numpy(t) for t in g])
    assert [str(g.dtype) for g in grads[1]] == ["float32"] * len(grads[1])
    tol = 2e-2 if policy == "mixed_float16" else 1e-1
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max())


# -- compile, loss scaling -------------------------------------------------------------------
@pytest.mark.parametrize("policy,wrapped", [("mixed_float16", True), ("mixed_bfloat16", False),
                                            ("float32", False)])
def test_compile_wraps_the_optimizer_only_for_float16(backend, policy, wrapped):
    mixed_precision.set_global_policy(policy)
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, LossScaleOptimizer) == wrapped
    if wrapped:
        assert type(model.optimizer.inner_optimizer).__name__ == "Adam"
        mine = LossScaleOptimizer("sgd", initial_scale=4.0)
        model.compile(mine, "sparse_categorical_crossentropy")
        assert model.optimizer is mine  # not wrapped twice
    mixed_precision.set_global_policy("float32")
    per_layer = _model(dense_dtype="mixed_float16")  # one float16 layer is enough
    per_layer.compile("sgd", "sparse_categorical_crossentropy")
    assert isinstance(per_layer.optimizer, LossScaleOptimizer)


def _state(model):
    return [w.numpy().copy() for w in model.weights] + \
        [v.numpy().copy() for v in model.optimizer.inner_optimizer.variables]


@pytest.mark.parametrize("jit", [False, True], ids=["default", "jit_compile"])
def test_loss_scaling_skips_an_inf_step_then_recovers_and_grows(backend, jit):
    mixed_precision.set_global_policy("mixed_float16")
    unidl.random.set_seed(0)
    model = _model()
    opt = LossScaleOptimizer(unidl.optimizers.SGD(0.1, momentum=0.9), initial_scale=1024.0,
                             dynamic_growth_steps=3)
    model.compile(opt, "sparse_categorical_crossentropy", jit_compile=jit)
    x, y = _data(16)
    model.train_on_batch(x, y)  # a good step
    assert (float(opt.scale), int(opt.good_steps), int(opt.iterations)) == (1024.0, 1, 1)
    before = _state(model)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.inf  # an inf in the data: inf/NaN gradients
    model.train_on_batch(bad, y)
    for a, b in zip(before, _state(model)):  # weights and momentum, iterations: unchanged
        np.testing.assert_array_equal(a, b)
    assert (float(opt.scale), int(opt.good_steps), int(opt.iterations)) == (512.0, 0, 1)
    loss = model.train_on_batch(x, y)  # training continues
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, _state(model)))
    assert (float(opt.scale), int(opt.good_steps), int(opt.iterations)) == (512.0, 1, 2)
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)  # the third good step in a row: the scale doubles
    assert (float(opt.scale), int(opt.good_steps), int(opt.iterations)) == (1024.0, 0, 4)


def test_loss_scale_optimizer_unscales_and_floors(backend):
    w = unidl.Variable([1.0, 1.0])
    opt = LossScaleOptimizer("sgd", initial_scale=2.0, dynamic_growth_steps=2)
    opt.learning_rate = 0.5
    assert abs(float(opt.learning_rate) - 0.5) < 1e-7
    opt.apply([ops.convert_to_tensor([4.0, -2.0])], [w])  # unscaled: [2, -1]
    np.testing.assert_allclose(w.numpy(), [0.0, 1.5])
    for _ in range(3):
        opt.apply([ops.convert_to_tensor([np.nan, 0.0])], [w])
    assert float(opt.scale) == 1.0  # halved 2 -> 1, then never below 1
    np.testing.assert_allclose(w.numpy(), [0.0, 1.5])
    assert float(ops.to_numpy(opt.scale_loss(ops.convert_to_tensor(3.0)))) == 3.0
    assert len(opt.variables) == 2 + len(opt.inner_optimizer.variables)


def test_loss_scale_optimizer_argument_errors():
    with pytest.raises(ValueError, match="initial_scale"):
        LossScaleOptimizer("adam", initial_scale=0.5)
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        LossScaleOptimizer("adam", dynamic_growth_steps=0)
    with pytest.raises(ValueError, match="already"):
        LossScaleOptimizer(LossScaleOptimizer("adam"))
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        LossScaleOptimizer("adamm")


# -- saving ----------------------------------------------------------------------------------
def test_policies_and_loss_scale_survive_save_and_load(backend, tmp_path):
    mixed_precision.set_global_policy("mixed_float16")
    model = _model(dense_dtype="float32")
    model.compile(LossScaleOptimizer("adam", initial_scale=64.0, dynamic_growth_steps=5),
                  "sparse_categorical_crossentropy")
    x, y = _data(16)
    for _ in range(3):
        model.train_on_batch(x, y)
    assert model.layers[0].get_config()["dtype"] == "mixed_float16"
    path = tmp_path / "m.unidl"
    model.save(path)
    mixed_precision.set_global_policy("float32")  # the file keeps the policies
    loaded = unidl.load_model(path)
    assert [lay.dtype_policy.name for lay in loaded.layers] == \
        ["mixed_float16"] * 3 + ["float32"]
    assert loaded.layers[0].compute_dtype == "float16"
    opt = loaded.optimizer
    assert isinstance(opt, LossScaleOptimizer) and opt.dynamic_growth_steps == 5
    assert (float(opt.scale), int(opt.good_steps), int(opt.iterations)) == (64.0, 3, 3)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    loaded.train_on_batch(x, y)
    assert (float(opt.scale), int(opt.good_steps)) == (64.0, 4)


def test_policies_survive_the_keras_format(tmp_path):
    """``model.save("m.keras")`` writes Keras 3's DTypePolicy dicts; both unidl and Keras
    read the mixed policies back."""
    path = tmp_path / "m.keras"
    with unidl.use_backend("numpy"):
        mixed_precision.set_global_policy("mixed_float16")
        model = unidl.Sequential([layers.Dense(4, input_shape=(3,)),
                                  layers.Dense(2, dtype="float32")])
        model(np.ones((1, 3), "float32"))
        model.save(path)
        mixed_precision.set_global_policy("float32")
        loaded = unidl.load_model(path)
        assert [lay.dtype_policy.name for lay in loaded.layers] == ["mixed_float16", "float32"]
    code = ("import keras, sys; m = keras.saving.load_model(sys.argv[1]); "
            "print(','.join(l.dtype_policy.name for l in m.layers))")
    pytest.importorskip("keras")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "mixed_float16,float32"


def test_float32_configs_are_unchanged():
    assert layers.Dense(2).get_config()["dtype"] == "float32"
    assert layers.Dense(2, dtype="float16").get_config()["dtype"] == "float16"


def test_docstring_examples():
    import unidl.mixed_precision.autocast as autocast
    import unidl.mixed_precision.loss_scale as loss_scale
    import unidl.mixed_precision.policy as policy

    for module in (mixed_precision, policy, autocast, loss_scale):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted and not result.failed, module.__name__


# -- the must-show: MNIST ----------------------------------------------------------------------
@pytest.mark.skipif(not (MNIST / "t10k-labels-idx1-ubyte").exists() and
                    not (MNIST / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason=f"the MNIST test files are not in {MNIST}")
def test_mixed_precision_cnn_on_mnist_matches_float32(backend):
    """examples/mixed_precision_cnn.py, one epoch: each mixed policy within 1 point of
    float32's test accuracy (8,000 train / 2,000 test images)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mixed_precision_cnn.py"), "--epochs", "1",
         "--json", "--data", str(MNIST)], capture_output=True, text=True, timeout=1500,
        env={**__import__("os").environ, "UNIDL_BACKEND": backend})
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {r["policy"]: r for r in map(json.loads, proc.stdout.splitlines())}
    base = results["float32"]["accuracy"]
    assert base > 0.9
    for policy in MIXED:
        r = results[policy]
        assert abs(r["accuracy"] - base) <= 0.01, (policy, r["accuracy"], base)
        assert (r["kernel_dtype"], r["output_dtype"]) == ("float32", "float32")
        assert r["compute_dtype"] == DTypePolicy(policy).compute_dtype
    assert results["mixed_float16"]["optimizer"] == "LossScaleOptimizer"
    assert results["mixed_bfloat16"]["optimizer"] == "Adam"
