"""Keras 3 ``.keras`` files both ways: a model Keras saved loads in unidl (every installed
backend) with Keras' predictions, and a model unidl saved loads in Keras 3 with unidl's.

Keras runs in two subprocesses only (``KERAS_BACKEND=torch``, or ``tensorflow`` without
torch): one builds, trains and saves every Keras-made file with its inputs and predictions,
one loads every unidl-made file and predicts. Each architecture is written once (``build``
below, taking the layer module and model classes) and built by both libraries.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS, ROOT, run_python
from unidl import layers, ops
from unidl.saving import KerasConfigError, ModelFileError

#: float32 predictions of the same weights in two libraries (the task's tolerance; both
#: run the same contractions, so this is tighter than the contraction row of unidl.tolerances)
RTOL, ATOL = 1e-4, 1e-5
KINDS = ["mlp", "cnn", "lstm", "merge", "seq", "conv2d", "conv1d", "reshape", "nested",
         "shared"]
TRAINED = ("mlp", "cnn")  # compiled with Adam and trained: BatchNorm statistics, Adam state

HAS_H5PY = importlib.util.find_spec("h5py") is not None
HAS_KERAS = importlib.util.find_spec("keras") is not None
KERAS_BACKEND = next((b for b in ("torch", "tensorflow") if importlib.util.find_spec(b)), None)
needs_h5py = pytest.mark.skipif(not HAS_H5PY, reason="h5py is not installed (unidl[keras])")
needs_keras = pytest.mark.skipif(not (HAS_H5PY and HAS_KERAS and KERAS_BACKEND),
                                 reason="Keras 3 (with torch or tensorflow) and h5py are needed")


# -- the architectures, written once for both libraries ------------------------------------------
def build(kind, L, Input, Model, Sequential):  # noqa: N803 (the layer module, as keras.layers)
    """The ``kind`` architecture, built from ``L`` (``keras.layers`` or ``unidl.layers``)."""
    if kind == "mlp":
        m = Sequential([L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.2),
                        L.Dense(10, activation="softmax")])
        m.build((None, 8, 8))
        return m
    if kind == "cnn":
        m = Sequential([L.Conv2D(6, 3, activation="relu"), L.BatchNormalization(),
                        L.MaxPooling2D(), L.Flatten(), L.Dense(10, activation="softmax")])
        m.build((None, 8, 8, 1))
        return m
    if kind == "lstm":
        m = Sequential([L.LSTM(8, return_sequences=True), L.LSTM(6), L.Dense(3)])
        m.build((None, 7, 4))
        return m
    if kind == "merge":
        a, b = Input((5,), name="left"), Input((5,), name="right")
        da, db = L.Dense(4, activation="tanh")(a), L.Dense(4)(b)
        parts = [L.Add()([da, db]), L.Subtract()([da, db]), L.Multiply()([da, db]),
                 L.Average()([da, db]), L.Maximum()([da, db]), L.Minimum()([da, db])]
        x = L.Permute((2, 1))(L.Reshape((4, 6))(L.Activation("relu")(L.Concatenate()(parts))))
        return Model([a, b], L.Dense(2)(L.Flatten()(x)))
    if kind == "seq":
        ids = Input((6,), dtype="int32", name="tokens")
        x = L.Embedding(20, 8)(ids)
        f = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum")(x)
        g = L.GRU(4, return_sequences=True, reset_after=False)(x)
        h = L.Bidirectional(L.GRU(3, return_sequences=True))(x)
        x = L.Concatenate()([f, g, h])
        x = L.LayerNormalization()(L.MultiHeadAttention(num_heads=2, key_dim=3)(x, x))
        return Model(ids, L.Dense(3, activation="softmax")(L.SimpleRNN(5)(x)))
    if kind == "conv2d":
        m = Sequential([L.Conv2D(4, 3, padding="same", activation="relu"),
                        L.DepthwiseConv2D(3, depth_multiplier=2),
                        L.SeparableConv2D(5, 3, padding="same"),
                        L.Conv2DTranspose(3, 3, strides=2), L.AveragePooling2D(2),
                        L.BatchNormalization(), L.GlobalMaxPooling2D(), L.Dense(4)])
        m.build((None, 10, 10, 3))
        return m
    if kind == "conv1d":
        m = Sequential([L.Conv1D(4, 3, padding="causal"), L.SeparableConv1D(4, 3),
                        L.DepthwiseConv1D(2), L.Conv1DTranspose(3, 2, strides=2),
                        L.MaxPooling1D(), L.AveragePooling1D(2), L.GlobalAveragePooling1D(),
                        L.Dense(2)])
        m.build((None, 12, 3))
        return m
    if kind == "reshape":
        m = Sequential([L.ZeroPadding2D(1), L.Cropping2D(((1, 0), (0, 1))), L.UpSampling2D(2),
                        L.Conv2D(2, 3), L.GlobalAveragePooling2D(), L.RepeatVector(4),
                        L.ZeroPadding1D(2), L.Cropping1D((1, 2)), L.UpSampling1D(2),
                        L.GlobalMaxPooling1D(), L.Identity(), L.Dense(3)])
        m.build((None, 6, 6, 2))
        return m
    if kind == "nested":
        inner = Sequential([L.Dense(4, activation="relu"), L.Dense(3)])
        inner.build((None, 5))
        x = Input((5,))
        return Model(x, L.Dense(2)(L.Add()([inner(x), L.Dense(3)(x)])))
    if kind == "shared":  # shared layers, several outputs, RNN over cells
        a, b = Input((5, 3), name="first"), Input((5, 3), name="second")
        rnn, head = L.RNN(L.LSTMCell(4)), L.Dense(2)
        return Model([a, b], [head(rnn(a)), head(rnn(b)),
                              L.RNN(L.GRUCell(3), return_sequences=True)(b)])
    raise ValueError(kind)


def data(kind, rng):
    """``(inputs, labels or None)`` for the ``kind`` architecture (16 examples)."""
    if kind in ("merge", "shared"):
        shape = (16, 5) if kind == "merge" else (16, 5, 3)
        return [rng.random(shape).astype("float32"), rng.random(shape).astype("float32")], None
    if kind == "seq":
        return rng.integers(0, 20, (16, 6)).astype("int32"), None
    shape = {"mlp": (8, 8), "cnn": (8, 8, 1), "lstm": (7, 4), "conv2d": (10, 10, 3),
             "conv1d": (12, 3), "reshape": (6, 6, 2), "nested": (5,)}[kind]
    x = rng.random((16,) + shape).astype("float32")
    return x, (rng.integers(0, 10, 16) if kind in TRAINED else None)


#: optimizers whose state moves between the libraries: name -> (class, arguments); unidl's
#: Nadam follows Keras' momentum schedule with momentum_decay=1.0
OPTIMIZERS = {"adam_amsgrad": ("Adam", {"amsgrad": True}), "adamw": ("AdamW", {}),
              "rmsprop_centered": ("RMSprop", {"centered": True}), "adagrad": ("Adagrad", {}),
              "sgd": ("SGD", {}), "nadam": ("Nadam", {}), "adamax": ("Adamax", {}),
              "adadelta": ("Adadelta", {}), "lion": ("Lion", {})}


def small(L, Sequential):  # noqa: N803
    """A two-layer regression model for the optimizer round trips."""
    m = Sequential([L.Dense(3, activation="relu"), L.Dense(2)])
    m.build((None, 4))
    return m


def regression(rng, n=16):
    return rng.random((n, 4)).astype("float32"), rng.random((n, 2)).astype("float32")


def _save_inputs(folder, stem, x):
    for i, xi in enumerate(x if isinstance(x, list) else [x]):
        np.save(folder / f"{stem}_x{i}.npy", xi)


def _inputs(folder, stem):
    xs = [np.load(p) for p in sorted(folder.glob(f"{stem}_x*.npy"))]
    return xs[0] if len(xs) == 1 else xs


def _keras(code: str, folder):
    """Run ``code`` with Keras in a fresh interpreter, in ``folder``."""
    source = "\n".join(inspect.getsource(f) for f in (build, data, small, regression))
    script = (f"import os\nos.chdir({str(folder)!r})\nimport numpy as np\nimport keras\n"
              f"TRAINED = {TRAINED!r}\nKINDS = {KINDS!r}\nOPTIMIZERS = {OPTIMIZERS!r}\n"
              f"{source}\n{textwrap.dedent(code)}")
    result = run_python(script, env={"KERAS_BACKEND": KERAS_BACKEND, "PYTHONWARNINGS": "ignore"},
                        path=[str(ROOT)])
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _outputs(folder, stem):
    return [np.load(p) for p in sorted(folder.glob(f"{stem}*.npy"))]


def _compare_all(got, want, what):
    """Compare a model's output (or list of outputs) with saved arrays."""
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        _compare(ops.to_numpy(g) if not isinstance(g, np.ndarray) else g, w,
                 what if len(got) == 1 else f"{what} output {i}")


def _compare(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    print(f"{what}: max abs difference {diff:.3g}")
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


# -- Keras -> unidl ------------------------------------------------------------------------------
_MAKE_KERAS_FILES = """
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
for kind in KINDS:
    model = build(kind, keras.layers, keras.Input, keras.Model, keras.Sequential)
    x, y = data(kind, rng)
    if kind in TRAINED:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(f"k_{kind}.keras")
    for i, xi in enumerate(x if isinstance(x, list) else [x]):
        np.save(f"k_{kind}_x{i}.npy", xi)
    y = model.predict(x, verbose=0)
    for i, yi in enumerate(y if isinstance(y, (list, tuple)) else [y]):
        np.save(f"k_{kind}_y{i}.npy", np.asarray(yi))
# the Adam state of the MLP's first kernel, read from Keras' optimizer
mlp = keras.saving.load_model("k_mlp.keras")
kernel = mlp.layers[1].kernel
index = mlp.optimizer._get_variable_index(kernel)
np.savez("k_mlp_adam.npz", iterations=int(mlp.optimizer.iterations),
         m=np.asarray(mlp.optimizer._momentums[index]),
         v=np.asarray(mlp.optimizer._velocities[index]))
lam = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                        keras.layers.Lambda(lambda t: t * 2.0)])
lam.save("k_lambda.keras")
# each optimizer: trained, saved, then one more step on a fixed batch
x, y = regression(rng)
xb, yb = regression(rng, 4)
np.save("k_step_x.npy", xb)
np.save("k_step_y.npy", yb)
for name, (cls, kwargs) in OPTIMIZERS.items():
    model = small(keras.layers, keras.Sequential)
    model.compile(optimizer=getattr(keras.optimizers, cls)(**kwargs), loss="mse")
    model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    model.save(f"k_opt_{name}.keras")
    model.train_on_batch(xb, yb)
    np.save(f"k_opt_{name}_next.npy", np.asarray(model.layers[0].kernel))
"""


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A folder of Keras-made ``.keras`` files with their inputs and Keras' predictions."""
    if not (HAS_H5PY and HAS_KERAS and KERAS_BACKEND):
        pytest.skip("Keras 3 (with torch or tensorflow) and h5py are needed")
    folder = tmp_path_factory.mktemp("keras_made")
    _keras(_MAKE_KERAS_FILES, folder)
    return folder


@needs_keras
@pytest.mark.parametrize("kind", KINDS)
def test_a_keras_model_loads_with_keras_predictions(keras_files, kind, backend):
    model = unidl.load_model(keras_files / f"k_{kind}.keras")
    x = _inputs(keras_files, f"k_{kind}")
    _compare_all(model(x, training=False), _outputs(keras_files, f"k_{kind}_y"),
                 f"Keras {kind} -> unidl {backend}")


@needs_keras
def test_a_keras_model_loads_compiled_with_its_adam_state(keras_files):
    with unidl.use_backend(BACKENDS[0]), warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing about the compile config is dropped
        model = unidl.load_model(keras_files / "k_mlp.keras")
    assert type(model.optimizer).__name__ == "Adam"
    assert model.compiled_loss is not None and len(model.compiled_metrics) == 1
    want = np.load(keras_files / "k_mlp_adam.npz")
    opt, kernel = model.optimizer, model.layers[1].kernel
    m, v = opt._slots[opt._index[id(kernel)]][:2]
    assert int(opt.iterations.numpy()) == int(want["iterations"]) > 0
    _compare(m.numpy(), want["m"], "Adam first moment")
    _compare(v.numpy(), want["v"], "Adam second moment")
    uncompiled = unidl.load_model(keras_files / "k_mlp.keras", compile=False)
    assert uncompiled.optimizer is None


RESUME_BACKEND = "numpy" if "numpy" in BACKENDS else BACKENDS[0]


def _one_more_step(model, folder, prefix):
    """The first kernel after one more training step on the saved batch."""
    x, y = np.load(folder / f"{prefix}_step_x.npy"), np.load(folder / f"{prefix}_step_y.npy")
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return model.layers[0].kernel.numpy()


@needs_keras
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_resumes_from_a_keras_optimizer_state(keras_files, name):
    with unidl.use_backend(RESUME_BACKEND), warnings.catch_warnings():
        warnings.simplefilter("error")  # the optimizer and its state are restored
        model = unidl.load_model(keras_files / f"k_opt_{name}.keras")
        assert type(model.optimizer).__name__ == OPTIMIZERS[name][0]
        got = _one_more_step(model, keras_files, "k")
    _compare(got, np.load(keras_files / f"k_opt_{name}_next.npy"), f"Keras {name} resumed")


# -- unidl -> Keras ------------------------------------------------------------------------------
_LOAD_UNIDL_FILES = """
import glob
for path in sorted(glob.glob("u_*.keras")):
    stem = path[:-len(".keras")]
    xs = [np.load(p) for p in sorted(glob.glob(stem + "_x*.npy"))]
    if not xs:
        continue  # (the optimizer files, below)
    model = keras.saving.load_model(path)
    y = model.predict(xs[0] if len(xs) == 1 else xs, verbose=0)
    for i, yi in enumerate(y if isinstance(y, (list, tuple)) else [y]):
        np.save(f"{stem}_keras{i}.npy", np.asarray(yi))
    if getattr(model, "optimizer", None) is not None:
        kernel = next(layer for layer in model.layers if hasattr(layer, "kernel")).kernel
        i = model.optimizer._get_variable_index(kernel)
        np.savez(stem + "_adam.npz", iterations=int(model.optimizer.iterations),
                 m=np.asarray(model.optimizer._momentums[i]),
                 v=np.asarray(model.optimizer._velocities[i]),
                 name=type(model.optimizer).__name__)
xb, yb = np.load("u_step_x.npy"), np.load("u_step_y.npy")
for path in sorted(glob.glob("u_opt_*.keras")):
    model = keras.saving.load_model(path)
    model.train_on_batch(xb, yb)
    np.save(path[:-len(".keras")] + "_keras_next.npy", np.asarray(model.layers[0].kernel))
"""


@pytest.fixture(scope="module")
def unidl_files(tmp_path_factory):
    """unidl-made ``.keras`` files (every kind, from every backend), loaded by Keras: its
    predictions and optimizer states next to unidl's."""
    if not (HAS_H5PY and HAS_KERAS and KERAS_BACKEND):
        pytest.skip("Keras 3 (with torch or tensorflow) and h5py are needed")
    folder = tmp_path_factory.mktemp("unidl_made")
    rng = np.random.default_rng(1)
    for be in BACKENDS:
        with unidl.use_backend(be):
            for kind in KINDS:
                stem = f"u_{be}_{kind}"
                model = build(kind, layers, unidl.Input, unidl.Model, unidl.Sequential)
                x, y = data(kind, rng)
                if kind in TRAINED:
                    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                                  metrics=["accuracy"])
                    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
                    opt = model.optimizer
                    kernel = next(la for la in model.layers if hasattr(la, "kernel")).kernel
                    m, v = opt._slots[opt._index[id(kernel)]][:2]
                    np.savez(folder / f"{stem}_unidl_adam.npz", m=m.numpy(), v=v.numpy(),
                             iterations=int(opt.iterations.numpy()))
                model.save(folder / f"{stem}.keras")
                _save_inputs(folder, stem, x)
                y = model(x, training=False)
                for i, yi in enumerate(y if isinstance(y, (list, tuple)) else [y]):
                    np.save(folder / f"{stem}_unidl{i}.npy", ops.to_numpy(yi))
    _unidl_optimizer_files(folder, rng)
    _keras(_LOAD_UNIDL_FILES, folder)
    return folder


def _unidl_optimizer_files(folder, rng):
    """Each optimizer: a unidl model trained, saved, then one more step on a fixed batch."""
    from unidl import optimizers

    x, y = regression(rng)
    xb, yb = regression(rng, 4)
    np.save(folder / "u_step_x.npy", xb)
    np.save(folder / "u_step_y.npy", yb)
    with unidl.use_backend(RESUME_BACKEND):
        for name, (cls, kwargs) in OPTIMIZERS.items():
            extra = {"momentum_decay": 1.0} if cls == "Nadam" else {}
            model = small(layers, unidl.Sequential)
            model.compile(optimizer=getattr(optimizers, cls)(**kwargs, **extra), loss="mse")
            model.fit(x, y, epochs=3, batch_size=4, verbose=0)
            model.save(folder / f"u_opt_{name}.keras")
            np.save(folder / f"u_opt_{name}_unidl_next.npy", _one_more_step(model, folder, "u"))


@needs_keras
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_resumes_in_keras_from_a_unidl_optimizer_state(unidl_files, name):
    _compare(np.load(unidl_files / f"u_opt_{name}_keras_next.npy"),
             np.load(unidl_files / f"u_opt_{name}_unidl_next.npy"), f"unidl {name} resumed")


@needs_keras
@pytest.mark.parametrize("be", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_unidl_model_loads_in_keras_with_unidl_predictions(unidl_files, kind, be):
    stem = f"u_{be}_{kind}"
    _compare_all(_outputs(unidl_files, f"{stem}_keras"), _outputs(unidl_files, f"{stem}_unidl"),
                 f"unidl {be} {kind} -> Keras")


@needs_keras
@pytest.mark.parametrize("be", BACKENDS)
def test_a_unidl_model_loads_in_keras_compiled_with_its_adam_state(unidl_files, be):
    keras_state = np.load(unidl_files / f"u_{be}_mlp_adam.npz")
    unidl_state = np.load(unidl_files / f"u_{be}_mlp_unidl_adam.npz")
    assert str(keras_state["name"]) == "Adam"
    assert int(keras_state["iterations"]) == int(unidl_state["iterations"]) > 0
    _compare(keras_state["m"], unidl_state["m"], "Adam first moment in Keras")
    _compare(keras_state["v"], unidl_state["v"], "Adam second moment in Keras")


def test_the_saved_archive_is_keras_layout(tmp_path):
    pytest.importorskip("h5py")
    with unidl.use_backend("numpy"):
        model = build("cnn", layers, unidl.Input, unidl.Model, unidl.Sequential)
        model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        names = set(archive.namelist())
        metadata = json.loads(archive.read("metadata.json"))
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    assert names == {"metadata.json", "config.json", "model.weights.h5"}
    assert metadata["keras_version"] == unidl.saving.KERAS_VERSION
    assert config["class_name"] == "Sequential"
    assert [spec["class_name"] for spec in config["config"]["layers"]] == [
        "InputLayer", "Conv2D", "BatchNormalization", "MaxPooling2D", "Flatten", "Dense"]
    import h5py

    with h5py.File(io.BytesIO(weights), "r") as f:
        bn = [f[f"layers/batch_normalization/vars/{i}"].shape for i in range(4)]
        assert f["layers/conv2d/vars/0"].shape == tuple(model.layers[0].kernel.shape)
    assert bn == [(6,)] * 4
    assert not list(tmp_path.glob(".unidl-tmp-*"))  # written atomically, nothing left over


# -- errors --------------------------------------------------------------------------------------
def _rewrite(source, target, change):
    """Copy the archive ``source`` to ``target`` with ``change(members)`` applied."""
    with zipfile.ZipFile(source) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    target.write_bytes(buffer.getvalue())
    return target


def _load_error(path, error=ModelFileError, **kwargs):
    with unidl.use_backend("numpy"), pytest.raises(error) as info:
        unidl.load_model(path, **kwargs)
    message = str(info.value)
    assert repr(str(path)) in message, message
    return message


def _rename_class(members, old, new):
    config = json.loads(members["config.json"])
    for spec in config["config"]["layers"]:
        if spec["class_name"] == old:
            spec["class_name"] = new
    members["config.json"] = json.dumps(config).encode()


@needs_keras
def test_an_unknown_keras_layer_class_names_the_class_and_the_file(keras_files, tmp_path):
    path = _rewrite(keras_files / "k_merge.keras", tmp_path / "fancy.keras",
                    lambda m: _rename_class(m, "Subtract", "FancySubtract"))
    message = _load_error(path, KerasConfigError)
    assert "FancySubtract" in message and "custom_objects" in message

    class FancySubtract(layers.Subtract):
        pass

    with unidl.use_backend("numpy"):
        model = unidl.load_model(path, custom_objects={"FancySubtract": FancySubtract})
        got = ops.to_numpy(model(_inputs(keras_files, "k_merge"), training=False))
    _compare(got, np.load(keras_files / "k_merge_y0.npy"), "custom_objects")


@needs_keras
def test_a_lambda_layer_is_refused_never_run(keras_files):
    message = _load_error(keras_files / "k_lambda.keras", KerasConfigError)
    assert "Lambda" in message and "safe_mode" in message


@needs_keras
def test_a_truncated_keras_file_says_so(keras_files, tmp_path):
    blob = (keras_files / "k_cnn.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(blob[: len(blob) // 2])
    assert "truncated or corrupt" in _load_error(path)


@needs_keras
def test_a_missing_weights_member_is_named(keras_files, tmp_path):
    path = _rewrite(keras_files / "k_cnn.keras", tmp_path / "noweights.keras",
                    lambda m: m.pop("model.weights.h5"))
    assert "model.weights.h5" in _load_error(path)


@needs_keras
def test_keras_assets_are_refused_not_ignored(keras_files, tmp_path):
    path = _rewrite(keras_files / "k_cnn.keras", tmp_path / "assets.keras",
                    lambda m: m.update({"assets/vocabulary.txt": b"a\nb\n"}))
    assert "assets" in _load_error(path)


@needs_keras
def test_a_damaged_weights_member_or_shape_is_named(keras_files, tmp_path):
    def damage(members):
        members["model.weights.h5"] = members["model.weights.h5"][:200]

    assert "HDF5" in _load_error(_rewrite(keras_files / "k_cnn.keras", tmp_path / "h5.keras",
                                          damage))

    def widen(members):
        config = json.loads(members["config.json"])
        config["config"]["layers"][-1]["config"]["units"] = 11
        members["config.json"] = json.dumps(config).encode()

    message = _load_error(_rewrite(keras_files / "k_cnn.keras", tmp_path / "units.keras", widen))
    assert "(54, 11)" in message and "(54, 10)" in message


@needs_h5py
@pytest.mark.parametrize("entry", ["external link", "soft link", "strings"])
def test_the_weights_member_is_read_as_plain_arrays_only(entry):
    import h5py

    from unidl.saving.keras.weights_h5 import read_weights

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        group = f.create_group("layers/dense/vars")
        if entry == "external link":
            group["0"] = h5py.ExternalLink("/etc/hostname", "/x")
        elif entry == "soft link":
            group["0"] = h5py.SoftLink("/layers")
        else:
            group["0"] = np.array([b"code"], dtype=object)
    with pytest.raises(ModelFileError, match="layers/dense/vars/0"):
        read_weights(buffer.getvalue(), "cannot load 'x.keras'")


@needs_h5py
def test_what_keras_cannot_hold_is_refused_on_save(tmp_path):
    class Twice(unidl.Model):
        def call(self, x):
            return x * 2.0

    with unidl.use_backend("numpy"):
        sub = Twice()
        sub(np.ones((1, 2), "float32"))
        with pytest.raises(ModelFileError, match="subclassed"):
            sub.save(tmp_path / "sub.keras")
        lam = unidl.Sequential([layers.Lambda(lambda t: t, input_shape=(2,))])
        with pytest.raises(ModelFileError, match="Lambda"):
            lam.save(tmp_path / "lam.keras")
        masked = unidl.Sequential([layers.Embedding(5, 2, mask_zero=True, input_shape=(3,))])
        with pytest.warns(UserWarning, match="mask_zero"):
            masked.save(tmp_path / "masked.keras")
    assert not (tmp_path / "sub.keras").exists() and not (tmp_path / "lam.keras").exists()


def test_without_h5py_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with unidl.use_backend("numpy"):
        model = build("mlp", layers, unidl.Input, unidl.Model, unidl.Sequential)
        with pytest.raises(ImportError, match=r'pip install "unidl\[keras\]"'):
            model.save(tmp_path / "m.keras")
        with pytest.raises(ModelFileError, match=r'pip install "unidl\[keras\]"'):
            unidl.load_model(tmp_path / "m.keras")
