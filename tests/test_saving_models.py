"""``model.save`` / ``unidl.load_model``: a model saved on any backend loads on any other and
predicts the same; the training state travels; bad files give errors that say what is wrong."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import layers, saving
from unidl.tolerances import tolerance

RTOL, ATOL = tolerance("float32", "contraction")


def mlp():
    return unidl.Sequential([layers.Flatten(input_shape=(8, 8)),
                             layers.Dense(16, activation="relu"), layers.Dropout(0.2),
                             layers.Dense(10, activation="softmax")])


def cnn():
    x = unidl.Input((8, 8, 1))
    h = layers.Conv2D(4, 3, padding="same")(x)
    h = layers.BatchNormalization()(h)
    h = layers.Activation("relu")(h)
    h = layers.MaxPooling2D(2)(h)
    y = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    return unidl.Model(x, y, name="cnn")


def lstm():
    return unidl.Sequential([layers.LSTM(8, input_shape=(5, 3)),
                             layers.Dense(10, activation="softmax")])


MODELS = {"mlp": (mlp, (8, 8)), "cnn": (cnn, (8, 8, 1)), "lstm": (lstm, (5, 3))}


def _data(shape, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)).astype("float32"), rng.integers(0, 10, n)


def _trained(kind, backend):
    make, shape = MODELS[kind]
    x, y = _data(shape)
    with unidl.use_backend(backend):
        unidl.random.set_seed(1)
        model = make()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)  # BN statistics and Adam slots move
        return model, x, model.predict(x, verbose=0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``{(kind, backend): (path, x, predictions)}``: each model trained and saved on each
    backend."""
    out = {}
    folder = tmp_path_factory.mktemp("models")
    for kind in MODELS:
        for backend in BACKENDS:
            model, x, pred = _trained(kind, backend)
            path = folder / f"{kind}-{backend}.unidl"
            with unidl.use_backend(backend):
                model.save(path)
            out[kind, backend] = (path, x, pred, len(model.optimizer.variables))
    return out


@pytest.mark.parametrize("target", BACKENDS)
@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_saved_on_one_backend_predicts_the_same_on_every_other(saved, kind, source, target):
    path, x, expected, n_opt = saved[kind, source]
    with unidl.use_backend(target):
        model = unidl.load_model(path)
        got = model.predict(x, verbose=0)
        assert unidl.current_backend().is_tensor(model.weights[0].value)
        assert model.optimizer is not None and len(model.optimizer.variables) == n_opt
        assert int(model.optimizer.iterations.numpy()) == 4  # 2 epochs x 2 batches
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_archive_layout(saved):
    path = saved["mlp", BACKENDS[0]][0]
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        config = json.loads(archive.read("config.json"))
    assert {"config.json", "model.weights.safetensors", "optimizer.safetensors"} <= names
    assert config["format_version"] == saving.FORMAT_VERSION
    assert config["unidl_version"] == unidl.__version__
    assert config["compile"]["loss"] == "sparse_categorical_crossentropy"
    assert config["compile"]["optimizer"]["class_name"] == "Adam"
    assert config["model"]["registered_name"] == "unidl.models>Sequential"


def test_json_architecture_round_trip(backend):
    model = cnn()
    again = unidl.models.model_from_json(model.to_json())
    assert [type(a) for a in again.layers] == [type(b) for b in model.layers]
    assert again.count_params() == model.count_params()
    assert again.output_shape == model.output_shape


def test_functional_model_with_two_inputs_and_a_shared_layer(backend, tmp_path):
    a, b = unidl.Input((3,), name="a"), unidl.Input((3,), name="b")
    shared = layers.Dense(4, activation="tanh")
    merged = layers.Concatenate()([shared(a), shared(b)])
    model = unidl.Model([a, b], [layers.Dense(2)(merged), layers.Dense(1)(merged)])
    xs = [np.ones((2, 3), "float32"), np.full((2, 3), 0.5, "float32")]
    model.save(tmp_path / "two.unidl")
    loaded = unidl.load_model(tmp_path / "two.unidl")
    assert len(loaded.layers) == len(model.layers) and loaded.count_params() == 16 + 18 + 9
    for got, want in zip(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@saving.register_serializable(package="Tests")
class Residual(unidl.Model):
    """A subclassed model with constructor arguments (saved through get_config)."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = layers.Dense(units, activation="relu")
        self.out = layers.Dense(2)

    def call(self, x, training=None):
        return self.out(unidl.ops.concatenate([x, self.inner(x)], -1))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_registered_subclassed_model_round_trips(backend, tmp_path):
    model = Residual(5)
    x = np.linspace(-1, 1, 12, dtype="float32").reshape(4, 3)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "res.unidl")
    for target in BACKENDS:
        with unidl.use_backend(target):
            loaded = unidl.load_model(tmp_path / "res.unidl")
            assert isinstance(loaded, Residual) and loaded.units == 5
            np.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)


def test_clone_model_moves_a_model_to_another_backend():
    model, x, want = _trained("mlp", BACKENDS[0])
    for target in BACKENDS:
        clone = saving.clone_model(model, backend=target)
        with unidl.use_backend(target):
            np.testing.assert_allclose(clone.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)


def test_save_weights_writes_safetensors_and_keeps_npz(backend, tmp_path):
    model, x, want = _trained("mlp", backend)
    for name in ("w.weights.safetensors", "w.npz"):
        model.save_weights(tmp_path / name)
        fresh = mlp()
        fresh.load_weights(tmp_path / name)
        np.testing.assert_allclose(fresh.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)
    head = (tmp_path / "w.weights.safetensors").read_bytes()[:9]
    assert head[8:9] == b"{"  # a safetensors header


def test_model_checkpoint_can_save_the_whole_model(backend, tmp_path):
    x, y = _data((8, 8))
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    path = tmp_path / "ckpt-{epoch}.unidl"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[unidl.callbacks.ModelCheckpoint(
        str(path), monitor="loss", save_weights_only=False)])
    loaded = unidl.load_model(tmp_path / "ckpt-2.unidl")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"\.unidl"):
        unidl.callbacks.ModelCheckpoint(str(tmp_path / "m.weights.safetensors"),
                                        save_weights_only=False)
