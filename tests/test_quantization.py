"""int8 post-training quantization: the ops bitwise on every backend, quantized models
(static and dynamic) bitwise across backends and against ONNX Runtime, saving, errors, the
straight-through gradient, and the MNIST example."""

from __future__ import annotations

import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from conftest import BACKENDS, ROOT

import unidl
from unidl import layers, ops
from unidl.quantization import (
    QuantizationError,
    QuantizedConv1D,
    QuantizedConv2D,
    QuantizedDense,
    QuantizedEmbedding,
    quantize,
)
from unidl.tolerances import tolerance

RNG = np.random.default_rng(1234)


def _on_every_backend(fn):
    """``{backend: fn() as NumPy arrays}``."""
    out = {}
    for be in BACKENDS:
        with unidl.use_backend(be):
            got = fn()
            out[be] = [np.asarray(ops.to_numpy(g)) for g in
                       (got if isinstance(got, (list, tuple)) else [got])]
    return out


def _assert_bitwise(results, what):
    """Every backend's arrays equal NumPy's bit for bit (dtype, shape and bytes)."""
    ref = results["numpy"]
    for be, got in results.items():
        for k, (a, b) in enumerate(zip(ref, got)):
            assert a.dtype == b.dtype and a.shape == b.shape, (what, be, k, a.dtype, b.dtype)
            assert a.tobytes() == b.tobytes(), (
                f"{what}: output {k} on {be} differs from numpy at "
                f"{np.argwhere(a != b)[:3].tolist()}")


# ---- the ops, on data the conformance samples avoid (arbitrary quotients, big sizes) ----------
_X = (RNG.normal(size=(64, 96)) * 4).astype(np.float32)
_W = RNG.integers(-127, 128, size=(96, 24)).astype(np.int8)
_IMG = RNG.integers(0, 256, size=(3, 13, 11, 5)).astype(np.uint8)
_K = RNG.integers(-127, 128, size=(3, 3, 5, 7)).astype(np.int8)
_PER_CHANNEL = RNG.uniform(0.01, 0.2, size=96).astype(np.float32)

OP_CASES = {
    "quantize_per_tensor_uint8": lambda: ops.quantize(_X, np.float32(0.0371), np.uint8(131),
                                                      None, "uint8"),
    "quantize_per_channel_int8": lambda: ops.quantize(_X, _PER_CHANNEL, None, -1, "int8"),
    "dequantize_per_channel": lambda: ops.dequantize(
        ops.quantize(_X, _PER_CHANNEL, None, 1, "int8"), _PER_CHANNEL, None, 1),
    "dynamic_quantize": lambda: ops.dynamic_quantize(_X),
    "quantized_matmul": lambda: ops.quantized_matmul(
        ops.dynamic_quantize(_X)[0], _W, np.uint8(117), np.int8(-3)),
    "quantized_conv2d_same": lambda: ops.quantized_conv2d(_IMG, _K, np.uint8(128), None, 2,
                                                          "same", 1),
    "quantized_conv2d_dilated": lambda: ops.quantized_conv2d(
        _IMG, _K, np.uint8(3), np.arange(7, dtype=np.int8), 1, "valid", 2),
    "fake_quant": lambda: ops.fake_quant(_X, _PER_CHANNEL, None, -1, "int8"),
}


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_ops_are_bitwise_equal_on_every_backend(case):
    _assert_bitwise(_on_every_backend(OP_CASES[case]), case)


def test_integer_contractions_are_exact():
    """Against Python-int arithmetic on sizes where float32 accumulation would not be."""
    a = RNG.integers(0, 256, size=(4, 3000)).astype(np.uint8)
    b = RNG.integers(-128, 128, size=(3000, 5)).astype(np.int8)
    want = [[sum((int(a[i, k]) - 255) * int(b[k, j]) for k in range(3000)) for j in range(5)]
            for i in range(4)]
    for be, (got,) in _on_every_backend(lambda: ops.quantized_matmul(a, b, np.uint8(255),
                                                                      None)).items():
        assert got.dtype == np.int32 and got.tolist() == want, be


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1e9, -1e9, np.inf, -np.inf], np.float32)
    for be, (got,) in _on_every_backend(lambda: ops.quantize(x, np.float32(1.0), None, None,
                                                             "int8")).items():
        assert got.tolist() == [0, 2, 2, 0, -2, 127, -128, 127, -128], be


def test_fake_quant_straight_through_gradient(backend):
    """The cotangent passes where x is representable ([-128, 127] * 0.1 here), else 0."""
    x = np.array([-20.0, -12.79, -3.33, 0.0, 0.04, 5.55, 12.69, 13.0], np.float32)
    g = np.arange(1, 9, dtype=np.float32)

    def f(t):
        return [ops.fake_quant(t, np.float32(0.1), None, None, "int8")]

    outs, vjp = unidl.vjp(f, ops.convert_to_tensor(x))
    (grad,) = vjp([ops.convert_to_tensor(g)])
    assert ops.to_numpy(grad).tolist() == [0, 2, 3, 4, 5, 6, 7, 0]
    np.testing.assert_array_equal(ops.to_numpy(outs[0]),
                                  (np.clip(np.rint(x / np.float32(0.1)), -128, 127)
                                   * np.float32(0.1)).astype(np.float32))


# ---- models -----------------------------------------------------------------------------------
def _mlp():
    return unidl.Sequential([layers.Flatten(input_shape=(8, 8, 1)),
                             layers.Dense(32, activation="relu"), layers.Dropout(0.2),
                             layers.Dense(10)])


def _cnn():
    return unidl.Sequential([layers.Conv2D(6, 3, padding="same", activation="relu",
                                           input_shape=(8, 8, 1)),
                             layers.MaxPooling2D(2), layers.Conv2D(8, 3, strides=2),
                             layers.Flatten(), layers.Dense(10)])


def _seq():
    inp = unidl.Input((12,), dtype="int32")
    h = layers.Embedding(20, 6)(inp)
    h = layers.Conv1D(5, 3, padding="causal", activation="relu")(h)
    h = layers.Conv1D(4, 2, strides=2)(h)
    out = layers.Dense(3)(layers.Flatten()(h))
    return unidl.Model(inp, out)


def _nested():
    inner = unidl.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                              layers.Dense(3)], name="inner")
    inp = unidl.Input((4,))
    return unidl.Model(inp, layers.Dense(2)(inner(inp)))


MODELS = {"mlp": (_mlp, (8, 8, 1)), "cnn": (_cnn, (8, 8, 1)), "embedding_conv1d": (_seq, None),
          "nested": (_nested, (4,))}


def _data(kind, n=96):
    if MODELS[kind][1] is None:
        return RNG.integers(0, 20, size=(n, 12)).astype(np.int32)
    return RNG.normal(size=(n,) + MODELS[kind][1]).astype(np.float32)


def _weights(model):
    """Deterministic weights, the same on every backend."""
    rng = np.random.default_rng(7)
    return [(rng.normal(size=w.shape) * 0.4).astype(np.float32) for w in model.weights]


def _quantized_predictions(kind, x, calibration, backend):
    with unidl.use_backend(backend):
        model = MODELS[kind][0]()
        model.set_weights(_weights(model))
        q = quantize(model, "int8", calibration_data=calibration)
        return (np.asarray(model.predict(x, verbose=0, batch_size=32)),
                np.asarray(q.predict(x, verbose=0, batch_size=32)), q)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_quantized_inference_is_bitwise_equal_across_backends(kind, mode):
    """One quantized model (quantized on NumPy, moved with clone_model) predicts the same
    bits on every backend, through each backend's compiled predict step. Dynamic
    quantization gives the same bits wherever it is done (weights are quantized on the
    host); static calibration runs the *float* model, whose activations may differ by an
    ulp between backends, so calibrated scales are moved, not recomputed."""
    x = _data(kind)
    cal = _data(kind) if mode == "static" else None
    ref_float, ref_q, q = _quantized_predictions(kind, x, cal, "numpy")
    assert {type(layer).__name__ for layer in q.layers} & {
        "QuantizedDense", "QuantizedConv2D", "QuantizedConv1D", "QuantizedEmbedding"}
    for be in BACKENDS:
        moved = unidl.models.clone_model(q, backend=be)
        with unidl.use_backend(be):
            got = np.asarray(moved.predict(x, verbose=0, batch_size=32))
        assert got.tobytes() == ref_q.tobytes(), f"{kind}/{mode}: {be} differs from numpy"
        if mode == "dynamic":
            got = _quantized_predictions(kind, x, None, be)[1]
            assert got.tobytes() == ref_q.tobytes(), f"{kind}: quantized on {be}"
    # int8 is close to float, not equal to it
    err = np.abs(ref_q - ref_float).max() / np.abs(ref_float).max()
    assert 0 < err < 0.1, err


def test_static_and_dynamic_differ_and_static_uses_calibrated_ranges():
    x = _data("mlp")
    with unidl.use_backend("numpy"):
        model = _mlp()
        model.set_weights(_weights(model))
        static = quantize(model, "int8", calibration_data=x)
        dynamic = quantize(model, "int8")
        d = static.layers[1]
        assert d.activation_mode == "static" and dynamic.layers[1].activation_mode == "dynamic"
        flat = x.reshape(len(x), -1)
        lo, hi = min(flat.min(), 0), max(flat.max(), 0)
        assert float(d.input_scale.numpy()) == pytest.approx((hi - lo) / 255, rel=1e-6)
        assert int(d.input_zero_point.numpy()) == round(-lo / ((hi - lo) / 255))
        assert not any(w.name.endswith("input_scale") for w in dynamic.weights)
        # a batch alone: dynamic quantizes by its own range, static by the calibrated one
        one = x[:1] * 0.1
        assert not np.array_equal(static.predict(one, verbose=0), dynamic.predict(one, verbose=0))
        # a dataset calibrates as the arrays do
        from unidl.data import Dataset

        again = quantize(model, "int8",
                         calibration_data=Dataset.from_tensor_slices(x).batch(32))
        assert again.layers[1].input_scale.numpy() == d.input_scale.numpy()


def test_weights_are_symmetric_per_channel_int8():
    with unidl.use_backend("numpy"):
        model = _mlp()
        model.set_weights(_weights(model))
        q = quantize(model, "int8")
        w = model.layers[1].kernel.numpy()
        qd = q.layers[1]
        k, s = qd.kernel.numpy(), qd.kernel_scale.numpy()
        assert k.dtype == np.int8 and s.shape == (32,) and np.abs(k).max(axis=0).tolist() \
            == [127] * 32
        np.testing.assert_allclose(k * s, w, atol=float(s.max()) / 2 + 1e-7)


# ---- saving ---------------------------------------------------------------------------------
@pytest.mark.parametrize("save_on", BACKENDS)
def test_save_and_load_on_every_backend(tmp_path, save_on):
    x = _data("cnn")
    _, want, q = _quantized_predictions("cnn", x, x, save_on)
    path = str(tmp_path / "q.unidl")
    with unidl.use_backend(save_on):
        q.save(path)
    with zipfile.ZipFile(path) as z:
        header = z.read("model.weights.safetensors")
    meta = json.loads(header[8:8 + int.from_bytes(header[:8], "little")])
    kernels = {k: v["dtype"] for k, v in meta.items() if k.endswith("/kernel")}
    assert kernels and set(kernels.values()) == {"I8"}, kernels
    for be in BACKENDS:
        with unidl.use_backend(be):
            back = unidl.load_model(path)
            assert [type(layer) for layer in back.layers] == [type(layer) for layer in q.layers]
            got = np.asarray(back.predict(x, verbose=0, batch_size=32))
        assert got.tobytes() == want.tobytes(), f"saved on {save_on}, loaded on {be}"


@pytest.mark.parametrize("cls, args, shape", [
    (QuantizedDense, dict(units=3, activation="relu", activation_mode="dynamic"), (2, 5)),
    (QuantizedConv2D, dict(filters=2, kernel_size=3, strides=2, padding="same"), (1, 5, 5, 2)),
    (QuantizedConv1D, dict(filters=2, kernel_size=2, padding="causal", dilation_rate=2),
     (1, 6, 3)),
    (QuantizedEmbedding, dict(input_dim=7, output_dim=3, mask_zero=True), (2, 4)),
])
def test_layer_config_round_trip(cls, args, shape):
    with unidl.use_backend("numpy"):
        layer = cls(**args)
        x = np.ones(shape, np.int32 if cls is QuantizedEmbedding else np.float32)
        y = layer(x)
        again = cls.from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
        assert tuple(ops.shape(again(x))) == tuple(ops.shape(y))


def test_file_is_about_four_times_smaller(tmp_path):
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([layers.Dense(256, activation="relu", input_shape=(300,)),
                                  layers.Dense(10)])
        model.save(str(tmp_path / "f.unidl"))
        quantize(model, "int8").save(str(tmp_path / "q.unidl"))
    ratio = os.path.getsize(tmp_path / "f.unidl") / os.path.getsize(tmp_path / "q.unidl")
    assert ratio > 3.5, ratio


# ---- ONNX -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_onnx_runtime_gives_the_same_bits(tmp_path, kind, mode):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    x = _data(kind, 64)
    _, want, q = _quantized_predictions(kind, x, x if mode == "static" else None, "numpy")
    with unidl.use_backend("numpy"):
        want = np.asarray(q.predict(x, verbose=0, batch_size=64))  # (one batch, as ORT)
        path = q.export(str(tmp_path / "q.onnx"), format="onnx")
    kinds = {n.op_type for n in onnx.load(path).graph.node}
    assert {"MatMulInteger"} <= kinds
    assert ("QuantizeLinear" if mode == "static" else "DynamicQuantizeLinear") in kinds
    assert (kind == "cnn") == ("ConvInteger" in kinds)
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        got = ort.InferenceSession(path, opts).run(None, {"input": x})[0]
        assert got.tobytes() == want.tobytes(), (kind, mode, level)


def test_onnx_softmax_output_within_float32_rounding(tmp_path):
    """A final softmax is the one step that is not bitwise: exp differs by an ulp."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    x = _data("mlp", 64)
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([layers.Flatten(input_shape=(8, 8, 1)),
                                  layers.Dense(16, activation="relu"),
                                  layers.Dense(10, activation="softmax")])
        q = quantize(model, "int8", calibration_data=x)
        want = np.asarray(q.predict(x, verbose=0, batch_size=64))
        path = q.export(str(tmp_path / "s.onnx"), format="onnx")
    got = ort.InferenceSession(path).run(None, {"input": x})[0]
    rtol, atol = tolerance("float32", "elementwise")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert (got.argmax(1) == want.argmax(1)).all()


# ---- in place, errors -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cnn", "embedding_conv1d"])  # Sequential, functional
def test_model_quantize_in_place_matches_the_copy(tmp_path, kind):
    x = _data(kind)
    with unidl.use_backend("torch" if "torch" in BACKENDS else "numpy"):
        model = MODELS[kind][0]()
        model.set_weights(_weights(model))
        y = np.zeros(np.shape(model.predict(x, verbose=0)), np.float32)
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        model.fit(x, y, epochs=1, verbose=0)
        copy = quantize(model, "int8", calibration_data=x)
        model.quantize("int8", calibration_data=x)
        assert [type(layer).__name__ for layer in model.layers] == \
            [type(layer).__name__ for layer in copy.layers]
        assert any(type(layer).__name__.startswith("Quantized") for layer in model.layers)
        assert np.array_equal(model.predict(x, verbose=0), copy.predict(x, verbose=0))
        assert model.compiled and np.isfinite(model.evaluate(x, y, verbose=0)[0])
        model.save(str(tmp_path / "inplace.unidl"))
        assert np.array_equal(unidl.load_model(str(tmp_path / "inplace.unidl")).predict(
            x, verbose=0), copy.predict(x, verbose=0))


def test_unknown_mode_names_it_and_the_accepted_ones():
    with unidl.use_backend("numpy"):
        model = _mlp()
        with pytest.raises(QuantizationError, match=r"unknown mode 'int4'; accepted modes: "
                                                    r"'int8'"):
            quantize(model, "int4")
        with pytest.raises(QuantizationError, match="'float8'"):
            model.quantize("float8")


def test_layers_without_int8_version_stay_float_and_are_listed():
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([
            layers.Conv2D(4, 3, input_shape=(8, 8, 2)), layers.BatchNormalization(),
            layers.Conv2D(4, 3, groups=2), layers.Flatten(), layers.Dense(3)])
        model.set_weights([w * 0 + 0.1 for w in model.get_weights()])
        with pytest.warns(UserWarning, match=r"2 layer\(s\) of model .* left in float") as rec:
            q = quantize(model, "int8")
        text = str(rec[0].message)
        assert "BatchNormalization: no int8 version" in text and "groups=2" in text
        report = q.quantization_report
        assert set(report.quantized.values()) == {"QuantizedConv2D", "QuantizedDense"}
        assert [type(layer).__name__ for layer in q.layers] == [
            "QuantizedConv2D", "BatchNormalization", "Conv2D", "Flatten", "QuantizedDense"]
        bn = model.layers[1].get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(q.layers[1].get_weights(), bn))


def test_other_errors_say_what_is_wrong():
    class Sub(unidl.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    with unidl.use_backend("numpy"):
        with pytest.raises(QuantizationError, match="subclassed"):
            quantize(Sub(), "int8")
        model = _mlp()
        with pytest.raises(QuantizationError, match="gave no batch"):
            quantize(model, "int8", calibration_data=np.zeros((0, 8, 8, 1), np.float32))
        with pytest.raises(unidl.OpError, match="quantize"):
            ops.quantize(np.ones(3, np.float32), np.float32(1.0), None, None, "int16")


# ---- the example on real MNIST --------------------------------------------------------------
def test_mnist_example_int8_loses_at_most_one_point_and_is_3_5x_smaller():
    import importlib.util

    data = ROOT.parent / "shared" / "data" / "mnist"
    if not (data / "t10k-images-idx3-ubyte.gz").exists() and not os.environ.get(
            "UNIDL_DATA_DIR"):
        pytest.skip(f"real MNIST not found in {data}")
    spec = importlib.util.spec_from_file_location("quantize_mnist",
                                                  ROOT / "examples" / "quantize_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with unidl.use_backend("torch" if "torch" in BACKENDS else "numpy"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = module.main(["--epochs", "1", "--cnn-epochs", "1"])
    for r in results:
        assert r["float_accuracy"] > 0.85, r
        assert r["accuracy_drop_points"] <= 1.0, r
        assert r["size_ratio"] >= 3.5, r
