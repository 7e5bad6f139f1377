"""Augmentation layers (RandomFlip, RandomRotation, RandomTranslation, RandomZoom, RandomCrop,
RandomContrast, RandomBrightness, GaussianNoise) on every backend: identity outside training,
Keras's outputs where the parameters are fixed (Keras run in a subprocess, TensorFlow
backend), the same augmented batch on every backend for the same seed in deterministic mode,
fresh parameters at every step inside a compiled graph, data pipelines, saving, training."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from tests.test_preprocessing import keras_results
from unidl import layers as L
from unidl import ops

KERAS_SCRIPT = r'''
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np
import keras
L = keras.layers
rng = np.random.default_rng(5)
img = rng.uniform(0, 1, size=(2, 7, 9, 3)).astype("float32")
out = {"x": img.tolist()}
modes = [("reflect", "bilinear"), ("wrap", "bilinear"), ("constant", "bilinear"),
         ("nearest", "bilinear"), ("reflect", "nearest"), ("constant", "nearest")]
for fill, interp in modes:
    kw = dict(fill_mode=fill, interpolation=interp, fill_value=0.5)
    layers = {
        "RandomRotation": (L.RandomRotation((0.07, 0.07), **kw), {"factor": [0.07, 0.07]}),
        "RandomTranslation": (L.RandomTranslation((0.23, 0.23), (-0.31, -0.31), **kw),
                              {"height_factor": [0.23, 0.23], "width_factor": [-0.31, -0.31]}),
        "RandomZoom": (L.RandomZoom((0.3, 0.3), (-0.2, -0.2), **kw),
                       {"height_factor": [0.3, 0.3], "width_factor": [-0.2, -0.2]}),
    }
    for name, (layer, args) in layers.items():
        out[f"{name}[{fill},{interp}]"] = {"args": {**args, **kw},
                                           "y": np.asarray(layer(img, training=True)).tolist()}
b = L.RandomBrightness((0.2, 0.2), value_range=(0, 1))
out["RandomBrightness"] = {"y": np.asarray(b(img, training=True)).tolist()}
c = L.RandomCrop(7, 6)  # not larger in both dimensions: centred aspect window, resized
out["RandomCrop[small]"] = {"y": np.asarray(c(img, training=True)).tolist()}
json.dump(out, open(sys.argv[1], "w"))
'''


@pytest.fixture(scope="module")
def keras_out(tmp_path_factory):
    return keras_results(tmp_path_factory, KERAS_SCRIPT)


@pytest.fixture
def deterministic():
    was = unidl.random.is_deterministic()
    unidl.random.set_deterministic(True)
    yield
    unidl.random.set_deterministic(was)


def _np(x):
    return np.asarray(ops.to_numpy(x))


def _images(shape=(4, 6, 7, 3), seed=0, high=1.0):
    return np.random.default_rng(seed).uniform(0.0, high, size=shape).astype(np.float32)


#: each layer, whether its results are exact across backends, and an input shape
LAYERS = {
    "RandomFlip": (lambda seed=None: L.RandomFlip(seed=seed), True),
    "RandomFlip[horizontal]": (lambda seed=None: L.RandomFlip("horizontal", seed=seed), True),
    "RandomCrop": (lambda seed=None: L.RandomCrop(4, 5, seed=seed), True),
    "RandomBrightness": (lambda seed=None: L.RandomBrightness(0.3, (0, 1), seed=seed), True),
    "GaussianNoise": (lambda seed=None: L.GaussianNoise(0.1, seed=seed), True),
    "RandomContrast": (lambda seed=None: L.RandomContrast(0.4, (0, 1), seed=seed), False),
    "RandomRotation": (lambda seed=None: L.RandomRotation(0.2, seed=seed), False),
    "RandomRotation[nearest]": (lambda seed=None: L.RandomRotation(
        0.2, fill_mode="constant", interpolation="nearest", seed=seed), False),
    "RandomTranslation": (lambda seed=None: L.RandomTranslation(
        0.3, 0.3, fill_mode="wrap", seed=seed), False),
    "RandomZoom": (lambda seed=None: L.RandomZoom(0.3, seed=seed), False),
}


# ---- identity outside training ------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_identity_unless_training(backend, name):
    x = ops.convert_to_tensor(_images())
    layer = LAYERS[name][0]()
    if name == "RandomCrop":  # shapes must not depend on training: the resized centre
        assert ops.shape(layer(x)) == (4, 4, 5, 3)
        return
    assert layer(x) is x and layer(x, training=False) is x
    y = layer(x, training=True)
    assert ops.shape(y) == ops.shape(x) and ops.dtype(y) == "float32"


# ---- Keras ------------------------------------------------------------------------------------
def test_geometric_layers_match_keras_for_fixed_parameters(backend, keras_out):
    x = np.asarray(keras_out["x"], np.float32)
    classes = {"RandomRotation": L.RandomRotation, "RandomTranslation": L.RandomTranslation,
               "RandomZoom": L.RandomZoom}
    checked = 0
    for name, case in keras_out.items():
        cls = classes.get(name.split("[")[0])
        if cls is None:
            continue
        y = cls(**case["args"])(x, training=True)
        np.testing.assert_allclose(_np(y), np.asarray(case["y"]), rtol=1e-4, atol=1e-4,
                                   err_msg=f"{name} on {backend}")
        checked += 1
    assert checked == 18


def test_brightness_and_small_crop_match_keras(backend, keras_out):
    x = np.asarray(keras_out["x"], np.float32)
    y = L.RandomBrightness((0.2, 0.2), value_range=(0, 1))(x, training=True)
    np.testing.assert_allclose(_np(y), keras_out["RandomBrightness"]["y"], rtol=1e-6)
    y = L.RandomCrop(7, 6)(x, training=True)
    np.testing.assert_allclose(_np(y), keras_out["RandomCrop[small]"]["y"], rtol=1e-5,
                               atol=1e-5)


# ---- what each layer does -----------------------------------------------------------------------
def test_flips_are_flips_and_both_outcomes_happen(backend):
    x = _images((64, 3, 4, 2))
    for mode, axes in (("horizontal", (1,)), ("vertical", (0,)),
                       ("horizontal_and_vertical", (0, 1))):
        y = _np(L.RandomFlip(mode, seed=1)(x, training=True))
        flipped = [np.array_equal(b, np.flip(a, axes)) for a, b in zip(x, y)]
        kept = [np.array_equal(a, b) for a, b in zip(x, y)]
        assert all(f or k for f, k in zip(flipped, kept))
        assert 10 < sum(flipped) < 54


def test_random_crop_windows(backend):
    x = np.arange(2 * 6 * 7 * 1, dtype=np.float32).reshape(2, 6, 7, 1)
    corners = set()
    layer = L.RandomCrop(4, 5, seed=3)
    for _ in range(40):
        y = _np(layer(x, training=True))
        top, left = divmod(int(y[0, 0, 0, 0]), 7)
        np.testing.assert_array_equal(y, x[:, top:top + 4, left:left + 5])
        corners.add((top, left))
    assert corners == {(t, s) for t in range(3) for s in range(3)}


def test_contrast_brightness_and_noise_statistics(backend):
    x = _images((8, 5, 5, 3))
    y = _np(L.RandomContrast(0.5, value_range=(-10, 10), seed=2)(x, training=True))
    mean = x.mean(axis=(1, 2), keepdims=True)
    factor = (y - mean) / (x - mean)
    assert np.allclose(factor, factor[:, :1, :1, :1], rtol=1e-3)  # one factor per image
    assert np.all((factor > 0.5 - 1e-4) & (factor < 1.5 + 1e-4))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-5)
    y = _np(L.RandomBrightness(0.1, value_range=(0, 1), seed=2)(x, training=True))
    assert y.min() >= 0.0 and y.max() <= 1.0
    z = _np(L.GaussianNoise(2.0, seed=2)(np.zeros((300, 100), np.float32), training=True))
    assert abs(z.mean()) < 0.05 and 1.95 < z.std() < 2.05


def test_numpy_in_numpy_out_and_dataset_map(backend):
    x = _images((6, 5, 5, 1))
    layer = L.RandomRotation(0.1, seed=0)
    assert isinstance(layer(x, training=True), np.ndarray)
    assert ops.is_tensor(layer(ops.convert_to_tensor(x), training=True))
    data = pytest.importorskip("unidl.data")
    flip = L.RandomFlip(seed=0)
    ds = data.Dataset.from_tensor_slices((x, np.arange(6))).batch(3).map(
        lambda xb, yb: (flip(xb, training=True), yb))
    batches = [(_np(xb), _np(yb)) for xb, yb in ds]
    assert [b[0].shape for b in batches] == [(3, 5, 5, 1)] * 2


def test_single_images_and_channels_first(backend):
    x = _images((1, 6, 7, 3))
    a = _np(L.RandomZoom(0.3, seed=4)(x, training=True))
    single = _np(L.RandomZoom(0.3, seed=4)(x[0], training=True))
    np.testing.assert_allclose(single, a[0], rtol=1e-6)
    first = L.RandomZoom(0.3, seed=4, data_format="channels_first")(
        np.transpose(x, (0, 3, 1, 2)), training=True)
    np.testing.assert_allclose(_np(first), np.transpose(a, (0, 3, 1, 2)), rtol=1e-6)


# ---- the same batch on every backend ------------------------------------------------------------
def _augment_everywhere(factory, seed, x):
    """Two calls of a fresh layer per backend, after ``unidl.random.set_seed(7)``."""
    out = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            unidl.random.set_seed(7)
            layer = factory(seed)
            out[name] = [_np(layer(x, training=True)) for _ in range(2)]
    return out


@pytest.mark.parametrize("seeded", [True, False], ids=["layer_seed", "global_seed"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_same_seed_same_batch_on_every_backend(name, seeded, deterministic):
    factory, exact = LAYERS[name]
    x = _images((5, 6, 7, 3))
    results = _augment_everywhere(factory, 11 if seeded else None, x)
    reference = results[BACKENDS[0]]
    assert not np.array_equal(reference[0], reference[1])  # each call draws anew
    for backend, ys in results.items():
        for y, y0 in zip(ys, reference):
            if exact:
                np.testing.assert_array_equal(y, y0, err_msg=f"{name} on {backend}")
            else:
                np.testing.assert_allclose(y, y0, rtol=1e-5, atol=1e-5,
                                           err_msg=f"{name} on {backend}")


def test_training_with_augmentation_follows_one_curve_on_every_backend(deterministic):
    x = _images((48, 8, 8, 1), high=16.0)
    y = np.random.default_rng(1).integers(0, 3, 48)
    curves = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            unidl.random.set_seed(0)
            model = unidl.Sequential([
                L.RandomFlip("horizontal", input_shape=(8, 8, 1)), L.RandomRotation(0.05),
                L.RandomContrast(0.2, value_range=(0, 16)), L.RandomCrop(6, 6),
                L.GaussianNoise(0.1), L.Rescaling(1 / 16), L.Flatten(), L.Dense(3)])
            model.compile("adam", "sparse_categorical_crossentropy")
            history = model.fit(x, y, epochs=2, batch_size=16, shuffle=True, verbose=0)
            curves[name] = history.history["loss"]
    for name, curve in curves.items():
        np.testing.assert_allclose(curve, curves[BACKENDS[0]], rtol=1e-4, err_msg=name)


def test_fit_with_every_augmentation_layer_and_a_partial_batch(backend):
    """Outside deterministic mode: TensorFlow traces the step (its last, shorter batch with an
    unknown batch size), so the layers draw inside the graph there."""
    unidl.random.set_seed(0)
    model = unidl.Sequential([
        L.RandomFlip(input_shape=(8, 8, 1)), L.RandomRotation(0.1), L.RandomZoom(0.1),
        L.RandomTranslation(0.1, 0.1), L.RandomContrast(0.2), L.RandomBrightness(0.1),
        L.GaussianNoise(0.1), L.RandomCrop(6, 6), L.Resizing(7, 7), L.CenterCrop(6, 6),
        L.Rescaling(1 / 16), L.Normalization(mean=0.5, variance=0.1), L.Flatten(),
        L.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = _images((70, 8, 8, 1), high=16.0)
    history = model.fit(x, np.arange(70) % 3, epochs=3, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.predict(x[:5], verbose=0).shape == (5, 3)


# ---- inside a compiled graph ----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_fresh_parameters_at_every_call_of_a_compiled_function(backend, name):
    be = unidl.current_backend()
    if not be.compile_traces:
        pytest.skip(f"{backend} does not trace functions into graphs")
    layer = LAYERS[name][0]()
    fn = be.compile_function(lambda t: layer(t, training=True))
    x = ops.convert_to_tensor(_images((16, 6, 7, 3)))
    outs = [_np(fn(x)) for _ in range(3)]
    assert not np.array_equal(outs[0], outs[1]) or not np.array_equal(outs[1], outs[2])
    for n in (15, 14, 13):  # new batch sizes: TensorFlow retraces with an unknown batch
        expected = (n, 4, 5, 3) if name == "RandomCrop" else (n, 6, 7, 3)
        assert _np(fn(ops.convert_to_tensor(_np(x)[:n]))).shape == expected
    if name.startswith("RandomFlip"):
        axes = (1,) if "horizontal]" in name else (0, 1)  # (per image: rows, columns)
        xs = _np(x)
        assert all(np.array_equal(b, a) or np.array_equal(b, np.flip(a, axes))
                   for a, b in zip(xs, outs[0]))


def test_geometric_layers_under_xla():
    """XLA has no kernel for TensorFlow's projective transform: the composite runs there."""
    pytest.importorskip("tensorflow")
    x = _images((2, 6, 7, 3))
    with unidl.use_backend("tensorflow"):
        be = unidl.current_backend()
        for layer in (L.RandomRotation((0.1, 0.1)), L.RandomZoom((0.2, 0.2)),
                      L.Resizing(4, 9)):
            eager = _np(layer(x, training=True))
            jitted = be.compile_function(lambda t, lay=layer: lay(t, training=True), jit=True)
            np.testing.assert_allclose(_np(jitted(ops.convert_to_tensor(x))), eager,
                                       rtol=1e-5, atol=1e-5)


# ---- saving --------------------------------------------------------------------------------------
def test_model_with_augmentation_layers_saves_and_loads(backend, tmp_path):
    unidl.random.set_seed(0)
    model = unidl.Sequential([
        L.RandomFlip(seed=1, input_shape=(8, 8, 3)), L.RandomRotation(0.1, fill_mode="wrap"),
        L.RandomTranslation(0.1, (-0.2, 0.1)), L.RandomZoom(0.2, 0.1, interpolation="nearest"),
        L.RandomCrop(6, 6), L.RandomContrast((0.1, 0.3)), L.RandomBrightness(0.2),
        L.GaussianNoise(0.5), L.Flatten(), L.Dense(2)])
    x = _images((3, 8, 8, 3), high=255.0)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "aug.unidl")
    loaded = unidl.load_model(tmp_path / "aug.unidl")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
    for a, b in zip(model.layers, loaded.layers):
        assert a.get_config() == {**b.get_config(), "name": a.name}


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match="RandomRotation: expected fill_mode"):
        L.RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="RandomZoom: expected height_factor within"):
        L.RandomZoom(-1.0)
    with pytest.raises(ValueError, match="RandomFlip: expected mode"):
        L.RandomFlip("diagonal")
    with pytest.raises(ValueError, match=r"RandomContrast: expected factor within \[0, 1\]"):
        L.RandomContrast(1.5)
    with pytest.raises(ValueError, match="GaussianNoise: expected stddev >= 0"):
        L.GaussianNoise(-1.0)
    with unidl.use_backend("numpy"), pytest.raises(ValueError, match="RandomFlip.*got shape"):
        L.RandomFlip()(np.zeros((3, 4)), training=True)
