"""Magnitude pruning (``unidl.pruning``): schedules, masks that stay zero through every
backend's train step (compiled ones included), structured pruning, strip, save/load, export,
the sparsity report, errors, and a quick run of examples/prune_mnist.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS, run_python
from unidl import layers, pruning
from unidl.layers.base import LayerError
from unidl.pruning import ConstantSparsity, PolynomialDecay, UpdatePruningStep

# -- schedules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule, expected", [
    (ConstantSparsity(0.8), {0: (True, 0.8), 1: (False, 0.8), 100: (True, 0.8),
                             250: (False, 0.8), 300: (True, 0.8)}),
    (ConstantSparsity(0.5, begin_step=10, end_step=30, frequency=10),
     {0: (False, 0.5), 9: (False, 0.5), 10: (True, 0.5), 25: (False, 0.5), 30: (True, 0.5),
      40: (False, 0.5)}),
    (PolynomialDecay(0.2, 0.8, begin_step=100, end_step=500, power=1, frequency=100),
     {0: (False, 0.2), 100: (True, 0.2), 300: (True, 0.5), 350: (False, 0.575),
      500: (True, 0.8), 600: (False, 0.8)}),
    (PolynomialDecay(0.5, 0.8, begin_step=0, end_step=1000),  # power 3 (TF-MOT's default)
     {0: (True, 0.5), 500: (True, 0.8 - 0.3 * 0.5 ** 3), 1000: (True, 0.8)}),
])
def test_schedules_give_tf_mot_values(schedule, expected):
    for step, (prune, sparsity) in expected.items():
        got = schedule(step)
        assert got[0] is prune, (schedule, step)
        assert got[1] == pytest.approx(sparsity, abs=1e-12), (schedule, step)


@pytest.mark.parametrize("make, words", [
    (lambda: ConstantSparsity(1.0), ["target_sparsity", "[0, 1)", "1.0"]),
    (lambda: ConstantSparsity(-0.1), ["target_sparsity", "-0.1"]),
    (lambda: ConstantSparsity(0.5, frequency=0), ["frequency", "0"]),
    (lambda: ConstantSparsity(0.5, begin_step=10, end_step=5), ["end_step", "begin_step"]),
    (lambda: PolynomialDecay(0.1, 0.9, begin_step=5, end_step=5), ["end_step", "> begin_step"]),
    (lambda: PolynomialDecay(0.1, 0.9, begin_step=-2, end_step=5), ["begin_step", "-2"]),
    (lambda: PolynomialDecay(0.1, "lots", 0, 5), ["final_sparsity", "lots"]),
])
def test_schedule_errors_name_the_argument(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_schedules_round_trip_through_configs():
    from unidl.saving import deserialize, serialize

    for s in (ConstantSparsity(0.7, 3, 40, 5), PolynomialDecay(0.1, 0.9, 2, 50, 2, 4)):
        assert deserialize(serialize(s)) == s


# -- masks -----------------------------------------------------------------------------------------


def test_magnitude_mask_zeroes_exactly_the_smallest_and_breaks_ties_by_index():
    v = np.array([3.0, -1.0, 1.0, 0.0, -5.0, 1.0, 2.0, 0.5])
    mask = pruning.magnitude_mask(v, 0.5)
    assert mask.tolist() == [1, 0, 0, 0, 1, 1, 1, 0]  # 0, 0.5, then the first of the 1s
    assert pruning.magnitude_mask(v, 0.0).tolist() == [1] * 8
    w = np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 11.5
    assert int((pruning.magnitude_mask(w, 0.3) == 0).sum()) == round(0.3 * 24)


def test_channel_mask_removes_whole_output_channels_by_l2_norm():
    w = np.ones((3, 3, 2, 5))
    w[..., 1] *= 0.1
    w[..., 3] *= 0.2
    mask = pruning.magnitude_mask(w, 0.4, "channel")
    assert [float(mask[..., c].max()) for c in range(5)] == [1, 0, 1, 0, 1]
    assert all(len(np.unique(mask[..., c])) == 1 for c in range(5))


def _mlp(dropout=True):
    stack = [layers.Flatten(input_shape=(6, 6)), layers.Dense(16, activation="relu")]
    stack += [layers.Dropout(0.2)] if dropout else []
    return unidl.Sequential(stack + [layers.Dense(3, activation="softmax")])


def _cnn():
    return unidl.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)),
                             layers.Flatten(), layers.Dense(3, activation="softmax")])


def _data(n=48, image=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6, 6) + ((1,) if image else ())).astype("float32")
    return x, rng.integers(0, 3, n)


def _check_masked(model, target=None):
    """Every pruned weight is exactly zero where its mask is 0, and (``target``) the
    prunable sparsity is the target (to rounding)."""
    wrappers = pruning.pruning_wrappers(model)
    assert wrappers
    for w in wrappers:
        for weight, mask in zip(w.pruned_weights, w.masks):
            value, m = weight.numpy(), mask.numpy()
            assert np.all(value[m == 0] == 0), weight.name
            if target is not None:
                assert abs((m == 0).mean() - target) <= 0.5 / m.size + 1e-9, weight.name
                assert np.count_nonzero(value) == np.count_nonzero(m), weight.name


JIT = [(b, jit) for b in BACKENDS for jit in ((False, True) if b != "numpy" else (False,))]


@pytest.mark.parametrize("backend_name, jit", JIT)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_pruned_weights_stay_zero_through_fit(backend_name, jit, kind):
    """Masks applied after every optimizer step, in the eager and the compiled steps
    (tf.function, torch.compile), and a second fit continues the schedule."""
    if jit and backend_name == "torch":
        # torch.compile keeps what it learnt of earlier models' shapes (marking the batch
        # axis dynamic), and its inductor then fails on Conv2D with a dynamic batch
        # ("cannot determine truth value of Relational"), pruned or not: start afresh
        import torch

        torch._dynamo.reset()
    with unidl.use_backend(backend_name):
        unidl.random.set_seed(1)
        base = _mlp() if kind == "mlp" else _cnn()
        model = pruning.prune_low_magnitude(base, ConstantSparsity(0.75, 0, frequency=4))
        model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit)
        x, y = _data(image=kind == "cnn")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[UpdatePruningStep()])
        _check_masked(model, 0.75)
        assert all(int(w.pruning_step.numpy()) == 11 for w in pruning.pruning_wrappers(model))
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[UpdatePruningStep()])
        _check_masked(model, 0.75)
        assert int(pruning.pruning_wrappers(model)[0].pruning_step.numpy()) == 17
        # the original model is left alone (prune_low_magnitude copies it)
        assert np.count_nonzero(base.layers[-1].kernel.numpy()) == base.layers[-1].kernel.size


def test_masks_hold_with_steps_per_execution(backend):
    unidl.random.set_seed(2)
    model = pruning.prune_low_magnitude(_mlp(), PolynomialDecay(0.0, 0.5, 0, 4, power=1,
                                                                 frequency=2))
    model.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=3)
    x, y = _data(40)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruningStep()])
    _check_masked(model, 0.5)
    assert int(pruning.pruning_wrappers(model)[0].pruning_step.numpy()) == 9


def test_polynomial_decay_raises_sparsity_during_fit(backend):
    unidl.random.set_seed(3)
    model = pruning.prune_low_magnitude(_mlp(False), PolynomialDecay(0.0, 0.6, 0, 6, power=1,
                                                                      frequency=3))
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = _data(12)
    seen = []
    record = unidl.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(
        pruning.sparsity_report(model)["total"]["prunable_sparsity"]))
    model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
              callbacks=[UpdatePruningStep(), record])
    # masks updated before steps 0 (0 %), 3 (30 %) and 6 (60 %)
    assert [round(s, 2) for s in seen] == [0.0] * 3 + [0.3] * 3 + [0.6] * 3


def test_masks_are_the_same_on_every_backend():
    masks = {}
    for b in BACKENDS:
        with unidl.use_backend(b):
            unidl.random.set_seed(4)
            model = pruning.prune_low_magnitude(_cnn(), ConstantSparsity(0.6))
            for w in pruning.pruning_wrappers(model):
                w.prune_to(0.6)
            masks[b] = [m.numpy() for w in pruning.pruning_wrappers(model) for m in w.masks]
    for b in BACKENDS[1:]:
        for a, c in zip(masks[BACKENDS[0]], masks[b]):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("make, shape, attrs", [
    (lambda: layers.Dense(5), (2, 4), ["kernel"]),
    (lambda: layers.Conv2D(6, 3), (2, 5, 5, 2), ["kernel"]),
    (lambda: layers.Conv1D(4, 2), (2, 6, 3), ["kernel"]),
    (lambda: layers.Embedding(20, 8), None, ["embeddings"]),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2), (2, 5, 5, 3), ["kernel"]),
    (lambda: layers.SeparableConv2D(4, 3), (2, 5, 5, 3),
     ["depthwise_kernel", "pointwise_kernel"]),
    (lambda: layers.Conv2DTranspose(4, 3), (2, 4, 4, 3), ["kernel"]),
    (lambda: layers.LSTM(4), (2, 3, 5), ["kernel", "recurrent_kernel"]),
])
@pytest.mark.parametrize("structure", pruning.STRUCTURES)
def test_layers_with_kernels_prune(make, shape, attrs, structure):
    with unidl.use_backend("numpy"):
        unidl.random.set_seed(5)
        wrapper = pruning.prune_low_magnitude(make(), ConstantSparsity(0.5),
                                              structure=structure)
        x = np.arange(10).reshape(2, 5) if shape is None else np.ones(shape, "float32")
        before = unidl.ops.to_numpy(wrapper(x))
        assert sorted(a for _, a, _ in pruning.prunable_weights(wrapper.layer)) == sorted(attrs)
        wrapper.prune_to(0.5)
        for weight, mask in zip(wrapper.pruned_weights, wrapper.masks):
            m = mask.numpy()
            assert 0.3 <= (m == 0).mean() <= 0.7, weight.name
            assert np.all(weight.numpy()[m == 0] == 0)
        assert unidl.ops.to_numpy(wrapper(x)).shape == before.shape


def test_channel_pruning_zeroes_output_channels_of_dense_conv_and_transpose():
    with unidl.use_backend("numpy"):
        unidl.random.set_seed(6)
        for layer, x, axis in ((layers.Dense(10), np.ones((1, 4), "float32"), -1),
                               (layers.Conv2D(10, 3), np.ones((1, 5, 5, 2), "float32"), -1),
                               (layers.Conv2DTranspose(10, 3), np.ones((1, 4, 4, 2), "float32"),
                                -2)):
            wrapper = pruning.prune_low_magnitude(layer, structure="channel")
            wrapper(x)
            wrapper.prune_to(0.3)
            k = np.moveaxis(wrapper.layer.kernel.numpy(), axis, 0).reshape(10, -1)
            dead = [c for c in range(10) if not k[c].any()]
            assert len(dead) == 3, type(layer).__name__
            assert all(k[c].all() for c in range(10) if c not in dead)
        # a depthwise kernel (kh, kw, channels, multiplier): one filter per (channel, m) pair
        wrapper = pruning.prune_low_magnitude(layers.DepthwiseConv2D(3, depth_multiplier=2),
                                              structure="channel")
        wrapper(np.ones((1, 5, 5, 3), "float32"))
        wrapper.prune_to(0.5)
        k = wrapper.layer.kernel.numpy().reshape(9, 6)
        assert sorted(int(k[:, f].any()) for f in range(6)) == [0, 0, 0, 1, 1, 1]


# -- errors ----------------------------------------------------------------------------------------


def test_fit_without_the_callback_names_it(backend):
    model = pruning.prune_low_magnitude(_mlp())
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(8)
    with pytest.raises(LayerError, match=r"prune_low_magnitude_dense.*UpdatePruningStep\(\)"):
        model.fit(x, y, verbose=0)
    with pytest.raises(LayerError, match="UpdatePruningStep"):
        model.train_on_batch(x, y)
    model.predict(x, verbose=0)  # inference needs no callback
    model.evaluate(x, y, verbose=0)


def test_wrong_arguments_name_what_was_expected():
    with unidl.use_backend("numpy"):
        flat = layers.Flatten()
        flat(np.ones((1, 2, 2), "float32"))
        with pytest.raises(ValueError, match="'flatten.*' \\(Flatten\\) has no weight to prune"):
            pruning.prune_low_magnitude(flat)
        with pytest.raises(LayerError, match="Dropout.*no weight to prune"):
            pruning.prune_low_magnitude(layers.Dropout(0.5))(np.ones((1, 2), "float32"))
        with pytest.raises(TypeError, match="expected a unidl Layer.*got str"):
            pruning.prune_low_magnitude("dense")
        with pytest.raises(ValueError, match="structure must be one of.*'block'"):
            pruning.prune_low_magnitude(layers.Dense(2), structure="block")
        with pytest.raises(TypeError, match="pruning_schedule must be.*got float"):
            pruning.prune_low_magnitude(layers.Dense(2), 0.5)
        model = pruning.prune_low_magnitude(_mlp())
        with pytest.raises(unidl.UnidlError, match="already pruned.*strip_pruning"):
            pruning.prune_low_magnitude(model)
        with pytest.raises(ValueError, match="already wrapped"):
            pruning.PruneLowMagnitude(model.layers[1])

        class Sub(unidl.Model):
            def __init__(self):
                super().__init__()
                self.d = layers.Dense(2)

            def call(self, x, training=None):
                return self.d(x)

        with pytest.raises(unidl.UnidlError, match="subclassed.*prune_low_magnitude\\(layers"):
            pruning.prune_low_magnitude(Sub())


def test_a_subclassed_model_prunes_through_its_wrapped_layers(backend):
    class Net(unidl.Model):
        def __init__(self):
            super().__init__()
            self.hidden = pruning.prune_low_magnitude(layers.Dense(8, activation="relu"),
                                                      ConstantSparsity(0.5, 0, frequency=1))
            self.out = layers.Dense(3, activation="softmax")

        def call(self, x, training=None):
            return self.out(self.hidden(layers.Flatten()(x), training=training))

    unidl.random.set_seed(7)
    model = Net()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(16)
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    _check_masked(model, 0.5)
    plain = pruning.strip_pruning(model.hidden)
    assert isinstance(plain, layers.Dense) and plain.kernel.constraint is None


# -- strip, save, load, export -----------------------------------------------------------------


def _trained_pruned(kind="mlp", sparsity=0.7):
    unidl.random.set_seed(8)
    model = pruning.prune_low_magnitude(_mlp() if kind == "mlp" else _cnn(),
                                        ConstantSparsity(sparsity, 0, frequency=3))
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(24, image=kind == "cnn")
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    return model, x, y


def test_strip_returns_a_plain_model_with_the_pruned_weights(backend):
    model, x, y = _trained_pruned("cnn")
    plain = pruning.strip_pruning(model)
    assert [type(layer).__name__ for layer in plain.layers] == ["Conv2D", "Flatten", "Dense"]
    assert len(plain.weights) == 4 and plain.optimizer is None
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    report = pruning.sparsity_report(plain)
    assert report["total"]["prunable_sparsity"] == pytest.approx(0.7, abs=0.01)
    assert not report["total"]["pruned"]
    assert pruning.strip_pruning(plain) is plain


def test_strip_keeps_a_layers_own_constraint():
    with unidl.use_backend("numpy"):
        dense = layers.Dense(3, kernel_constraint="non_neg")
        wrapper = pruning.prune_low_magnitude(dense)
        wrapper(np.ones((1, 2), "float32"))
        assert type(dense.kernel.constraint).__name__ == "_MaskConstraint"
        assert pruning.strip_pruning(wrapper) is dense
        assert type(dense.kernel.constraint).__name__ == "NonNeg"


def test_pruned_models_save_and_load_with_masks_and_step(backend, tmp_path):
    model, x, y = _trained_pruned()
    path = tmp_path / "pruned.unidl"
    model.save(path)
    loaded = unidl.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Flatten", "PruneLowMagnitude", "Dropout", "PruneLowMagnitude"]
    assert loaded.layers[1].pruning_schedule == ConstantSparsity(0.7, 0, frequency=3)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(pruning.pruning_wrappers(loaded), pruning.pruning_wrappers(model)):
        for ma, mb in zip(a.masks, b.masks):
            np.testing.assert_array_equal(ma.numpy(), mb.numpy())
        assert int(a.pruning_step.numpy()) == int(b.pruning_step.numpy()) == 2
    with pytest.raises(LayerError, match="UpdatePruningStep"):
        loaded.fit(x, y, verbose=0)
    loaded.fit(x, y, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])
    _check_masked(loaded, 0.7)
    assert int(pruning.pruning_wrappers(loaded)[0].pruning_step.numpy()) == 5


def test_a_pruned_file_loads_in_a_fresh_process_without_importing_pruning(tmp_path):
    with unidl.use_backend("numpy"):
        model, x, _ = _trained_pruned()
        model.save(tmp_path / "m.unidl")
        np.save(tmp_path / "x.npy", x)
        np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    proc = run_python(f"""
        import numpy as np, unidl
        m = unidl.load_model({str(tmp_path / 'm.unidl')!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        print(type(m.layers[1]).__name__, np.abs(m.predict(x, verbose=0)
              - np.load({str(tmp_path / 'y.npy')!r})).max())
    """, env={"UNIDL_BACKEND": "numpy"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    name, diff = proc.stdout.split()
    assert name == "PruneLowMagnitude" and float(diff) == 0.0


def test_stripped_model_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    with unidl.use_backend("numpy"):
        model, x, _ = _trained_pruned("cnn")
        plain = pruning.strip_pruning(model)
        path = plain.export(str(tmp_path / "pruned.onnx"), format="onnx")
        expected = plain.predict(x, verbose=0)
    session = ort.InferenceSession(path)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# -- the sparsity report ---------------------------------------------------------------------------


def test_sparsity_report_counts_per_layer_and_total():
    with unidl.use_backend("numpy"):
        model = pruning.prune_low_magnitude(_mlp(), ConstantSparsity(0.5))
        for w in pruning.pruning_wrappers(model):
            w.prune_to(0.5)
        report = pruning.sparsity_report(model)
    rows = {r["layer"]: r for r in report["layers"]}
    dense, out = rows[model.layers[1].layer.name], rows[model.layers[3].layer.name]
    assert dense["params"] == 36 * 16 + 16 and dense["prunable_params"] == 36 * 16
    assert dense["prunable_nonzeros"] == 36 * 8 and dense["pruned"]
    assert out["prunable_params"] == 48 and out["prunable_nonzeros"] == 24
    total = report["total"]
    assert total["params"] == 36 * 16 + 16 + 48 + 3  # masks and steps are not counted
    assert total["prunable_sparsity"] == 0.5
    assert total["nonzeros"] == 36 * 8 + 24 + int(np.count_nonzero(
        model.layers[1].layer.bias.numpy())) + int(np.count_nonzero(
            model.layers[3].layer.bias.numpy()))
    table = str(report)
    assert "Dense (pruned)" in table and "50.0%" in table and table.splitlines()[-1].startswith(
        "total")
    printed = []
    pruning.sparsity_report(model, print_fn=printed.append)
    assert printed == [table]


# -- the example -----------------------------------------------------------------------------------


def test_prune_mnist_example_quick(tmp_path):
    from tests.test_examples import MNIST, run_example

    if not MNIST.is_dir():
        pytest.skip(f"the MNIST test files are not in {MNIST}")
    out = run_example("prune_mnist.py", "torch" if "torch" in BACKENDS else "numpy",
                      "--quick", "--model", "mlp", "--out", str(tmp_path), "--data", str(MNIST))
    line = re.search(r"mlp accuracy before=([0-9.]+) after=([0-9.]+) .*sparsity=([0-9.]+) "
                     r"file=(\d+) -> (\d+) bytes gzipped=(\d+) -> (\d+) bytes", out)
    assert line, out
    before, after, sparsity = (float(line.group(i)) for i in (1, 2, 3))
    assert sparsity == pytest.approx(0.8, abs=1e-3)
    assert before > 0.7 and after > 0.7, out
    plain, pruned_plain, gz, pruned_gz = (int(line.group(i)) for i in (4, 5, 6, 7))
    assert pruned_plain == pytest.approx(plain, rel=0.02)  # zeros take the same room...
    assert pruned_gz < 0.5 * gz  # ...until compressed
    assert (tmp_path / "mlp_pruned.unidl").is_file()


def test_prune_mnist_mlp_loses_at_most_one_point(tmp_path):
    """The must-show, for the seed's MLP: 5 epochs, then 80 % pruning with 3 epochs of
    fine-tuning on real MNIST (docs/efficiency.md has both models on every backend)."""
    from tests.test_examples import MNIST, run_example

    if not MNIST.is_dir():
        pytest.skip(f"the MNIST test files are not in {MNIST}")
    out = run_example("prune_mnist.py", "numpy", "--model", "mlp", "--out", str(tmp_path),
                      "--data", str(MNIST))
    line = re.search(r"mlp accuracy before=([0-9.]+) after=([0-9.]+) .*sparsity=([0-9.]+) "
                     r"file=(\d+) -> (\d+) bytes gzipped=(\d+) -> (\d+) bytes", out)
    assert line, out
    before, after, sparsity = (float(line.group(i)) for i in (1, 2, 3))
    assert before > 0.92 and after >= before - 0.01, out
    assert sparsity == pytest.approx(0.8, abs=1e-3)
    assert int(line.group(6)) > 3 * int(line.group(7))  # gzipped: over 3x smaller


@pytest.mark.parametrize("make", [lambda: layers.Dense(3), lambda: layers.Conv2D(2, 3),
                                  lambda: layers.LSTM(4)])
def test_assigned_dtype_reaches_the_pruned_layer(make):
    """``wrapper.dtype = "float64"`` before the build gives the wrapped layer float64
    weights and a float64 computation (it kept its own float32)."""
    from unidl import ops

    shapes = {"Dense": (2, 4), "Conv2D": (2, 5, 5, 1), "LSTM": (2, 3, 4)}
    with unidl.use_backend("numpy"):
        wrapper = pruning.prune_low_magnitude(make())
        wrapper.dtype = "float64"
        x = np.ones(shapes[type(wrapper.layer).__name__])
        y = wrapper(ops.convert_to_tensor(x, "float64"))
        assert ops.dtype(y) == "float64"
        assert {str(w.dtype) for w in wrapper.layer.weights} == {"float64"}
