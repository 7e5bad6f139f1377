"""Preprocessing layers (Rescaling, Normalization, Resizing, CenterCrop, CategoryEncoding,
IntegerLookup, StringLookup, TextVectorization) on every backend: Keras's outputs for fixed
inputs (Keras itself run in a subprocess with the TensorFlow backend, where installed),
adapt over arrays and iterables, output types, configs, and saving a model holding them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import unidl
from unidl import layers as L
from unidl import ops
from unidl.layers.base import LayerError

# ---- Keras, in a subprocess -------------------------------------------------------------------
KERAS_SCRIPT = r'''
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np
import keras
L = keras.layers
rng = np.random.default_rng(0)
out = {}

def put(name, x, y, **extra):
    out[name] = {"x": np.asarray(x).tolist(), "y": np.asarray(y).tolist(), **extra}

img = rng.uniform(0, 255, size=(2, 7, 9, 3)).astype("float32")
for h, w, interp, crop in [(4, 5, "bilinear", False), (11, 6, "bilinear", False),
                           (3, 3, "nearest", False), (10, 13, "nearest", False),
                           (4, 4, "bilinear", True), (6, 3, "nearest", True),
                           (9, 6, "bilinear", False)]:
    layer = L.Resizing(h, w, interpolation=interp, crop_to_aspect_ratio=crop)
    put(f"Resizing[{h},{w},{interp},{crop}]", img, layer(img), args=[h, w, interp, crop])
for h, w in [(5, 4), (7, 9), (8, 4), (3, 12)]:
    put(f"CenterCrop[{h},{w}]", img, L.CenterCrop(h, w)(img), args=[h, w])
ids2 = np.array([[0, 1, 1, 4], [3, 3, 2, 0]])
ids1 = np.array([3, 2, 0, 1])
for mode in ["one_hot", "multi_hot", "count"]:
    for name, ids in (("rank1", ids1), ("rank2", ids2), ("col", ids1[:, None])):
        if mode == "one_hot" and name == "rank2":
            continue
        put(f"CategoryEncoding[{mode},{name}]", ids,
            L.CategoryEncoding(5, output_mode=mode)(ids), args=[5, mode])

texts = ["The cat sat on the mat.", "The DOG ate my homework!", "cat, dog & bird: friends?",
         "Ünïcode ÀB café x\u00a0y\tz\nw \u000bv\fu", "it's   a-b c_d (e) [f] {g}", "",
         "the the THE tHe", "zebra apple mango apple zebra kiwi"]
queries = ["the cat and the dog", "ÀB café!!", "never seen words", "", "x\u00a0y zebra"]
configs = {
    "default": {},
    "max_tokens": {"max_tokens": 8},
    "seq_len": {"output_sequence_length": 4},
    "multi_hot": {"output_mode": "multi_hot"},
    "count": {"output_mode": "count", "max_tokens": 10, "pad_to_max_tokens": True},
    "lower": {"standardize": "lower"},
    "none": {"standardize": None, "split": None},
    "character": {"split": "character", "max_tokens": 12},
    "ngrams": {"ngrams": 2},
}
for name, cfg in configs.items():
    layer = L.TextVectorization(**cfg)
    layer.adapt(texts)
    out[f"TextVectorization[{name}]"] = {
        "config": cfg, "vocab": [str(v) for v in layer.get_vocabulary()],
        "y": np.asarray(layer(queries)).tolist()}
words = np.array(["b", "a", "c", "a", "b", "d", "e", "é", "B", "a", "b", "c"])
for name, cfg in {"default": {}, "mask": {"mask_token": "", "max_tokens": 5},
                  "no_oov": {"num_oov_indices": 0},
                  "multi_hot": {"output_mode": "multi_hot"},
                  "one_hot": {"output_mode": "one_hot"},
                  "count": {"output_mode": "count", "mask_token": "a"}}.items():
    layer = L.StringLookup(**cfg)
    layer.adapt(words)
    q = np.array([["a", "b", "é"], ["B", "c", "b"]]) if name == "no_oov" else np.array(
        [["a", "zz", "b"], ["", "é", "B"]])
    if name == "one_hot":
        q = np.array(["a", "zz", "e", ""])
    out[f"StringLookup[{name}]"] = {"config": cfg, "q": q.tolist(),
                                    "vocab": [str(v) for v in layer.get_vocabulary()],
                                    "y": np.asarray(layer(q)).tolist()}
ints = np.array([5, 3, 3, 7, 7, 9, 1, 7, 0, 12])
for name, cfg in {"default": {}, "mask": {"mask_token": 0, "num_oov_indices": 2},
                  "max_tokens": {"max_tokens": 3},
                  "count": {"output_mode": "count"}}.items():
    layer = L.IntegerLookup(**cfg)
    layer.adapt(ints)
    q = np.array([[5, 4, 0, 9], [12, 13, 7, 3]])
    out[f"IntegerLookup[{name}]"] = {"config": cfg, "q": q.tolist(),
                                     "vocab": [int(v) for v in layer.get_vocabulary()],
                                     "y": np.asarray(layer(q)).tolist()}
inv = L.IntegerLookup(vocabulary=[5, 6], invert=True)
out["IntegerLookup[invert]"] = {"q": [0, 1, 2, 3], "y": np.asarray(inv(np.array([0, 1, 2, 3])))
                                .tolist()}
json.dump(out, open(sys.argv[1], "w"))
'''


def keras_results(tmp_path_factory, script: str) -> dict:
    """Run ``script`` with Keras (TensorFlow backend) in a fresh interpreter; its JSON."""
    pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    path = tmp_path_factory.mktemp("keras") / "out.json"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def keras_out(tmp_path_factory):
    return keras_results(tmp_path_factory, KERAS_SCRIPT)


def _np(x):
    return np.asarray(ops.to_numpy(x))


def _cases(keras_out, prefix):
    return {k: v for k, v in keras_out.items() if k.startswith(prefix)}


# ---- images -----------------------------------------------------------------------------------
def test_resizing_matches_keras(backend, keras_out):
    for name, case in _cases(keras_out, "Resizing[").items():
        h, w, interp, crop = case["args"]
        x = np.asarray(case["x"], np.float32)
        y = L.Resizing(h, w, interpolation=interp, crop_to_aspect_ratio=crop)(x)
        np.testing.assert_allclose(_np(y), np.asarray(case["y"]), rtol=1e-5, atol=1e-3,
                                   err_msg=f"{name} on {backend}")
        assert _np(y).dtype == np.float32


def test_center_crop_matches_keras(backend, keras_out):
    for name, case in _cases(keras_out, "CenterCrop[").items():
        h, w = case["args"]
        x = ops.convert_to_tensor(np.asarray(case["x"], np.float32))
        np.testing.assert_allclose(_np(L.CenterCrop(h, w)(x)), np.asarray(case["y"]),
                                   rtol=1e-5, atol=1e-3, err_msg=f"{name} on {backend}")


def test_image_layers_take_single_images_channels_first_and_numpy(backend):
    x = np.random.default_rng(1).uniform(size=(2, 6, 8, 3)).astype(np.float32)
    batched = _np(L.Resizing(3, 4)(x))
    single = L.Resizing(3, 4)(x[0])
    assert _np(single).shape == (3, 4, 3)
    np.testing.assert_allclose(_np(single), batched[0], rtol=1e-6)
    first = L.Resizing(3, 4, data_format="channels_first")(np.transpose(x, (0, 3, 1, 2)))
    np.testing.assert_allclose(_np(first), np.transpose(batched, (0, 3, 1, 2)), rtol=1e-6)
    assert isinstance(L.CenterCrop(2, 2)(x), np.ndarray)  # NumPy in, NumPy out
    assert ops.is_tensor(L.CenterCrop(2, 2)(ops.convert_to_tensor(x)))


def test_rescaling(backend):
    y = L.Rescaling(1 / 127.5, offset=-1.0)(np.array([[0, 127.5, 255]]))
    np.testing.assert_allclose(_np(y), [[-1.0, 0.0, 1.0]], atol=1e-6)
    per_channel = L.Rescaling([1.0, 2.0], offset=[0.0, 1.0])(np.ones((2, 2), np.float32))
    np.testing.assert_allclose(_np(per_channel), [[1.0, 3.0], [1.0, 3.0]])
    assert _np(y).dtype == np.float32


# ---- Normalization ------------------------------------------------------------------------------
def test_normalization_with_given_statistics(backend):
    x = np.array([[1.0, 2.0, 3.0], [5.0, 8.0, 2.0]], np.float32)
    layer = L.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 1.0, 0.0])
    np.testing.assert_allclose(_np(layer(x)), [[0.0, 0.0, 0.0], [2.0, 6.0, -1e7]], rtol=1e-6)
    inverse = L.Normalization(mean=2.0, variance=9.0, invert=True)
    np.testing.assert_allclose(_np(inverse(np.array([[1.0, -1.0]]))), [[5.0, -1.0]])
    assert layer.weights == []


def test_normalization_adapt_matches_numpy_over_arrays_lists_and_generators(backend):
    rng = np.random.default_rng(2)
    data = rng.normal(3.0, 2.0, size=(50, 4, 3))
    expected_mean, expected_var = data.mean(axis=(0, 1)), data.var(axis=(0, 1))

    def pairs():
        for i in range(0, 50, 7):
            yield data[i:i + 7], np.zeros(len(data[i:i + 7]))

    sources = [data, [data[:20], data[20:]], pairs(), ops.convert_to_tensor(data)]
    for source in sources:
        layer = L.Normalization()
        layer.adapt(source)
        out = _np(layer(data.astype(np.float32)))
        np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.0, atol=1e-5)
        np.testing.assert_allclose(out.std(axis=(0, 1)), 1.0, rtol=1e-5)
        mean, variance = layer.get_weights()
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-6)
        np.testing.assert_allclose(variance, expected_var, rtol=1e-6)
    whole = L.Normalization(axis=None)
    whole.adapt(data)
    np.testing.assert_allclose(whole.get_weights()[0], data.mean(), rtol=1e-6)


def test_normalization_adapt_after_build_and_errors(backend):
    layer = L.Normalization()
    layer(np.zeros((2, 3), np.float32))  # built: zeros and ones
    layer.adapt(np.array([[0.0, 2.0, 4.0], [2.0, 2.0, 8.0]]))
    np.testing.assert_allclose(layer.get_weights()[0], [1.0, 2.0, 6.0])
    with pytest.raises(LayerError, match="Normalization.*statistics of shape"):
        layer.adapt(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="Normalization: give both mean and variance"):
        L.Normalization(mean=1.0)
    with pytest.raises(LayerError, match="adapt got no data"):
        L.Normalization().adapt(iter([]))


# ---- CategoryEncoding ---------------------------------------------------------------------------
def test_category_encoding_matches_keras(backend, keras_out):
    for name, case in _cases(keras_out, "CategoryEncoding[").items():
        depth, mode = case["args"]
        y = L.CategoryEncoding(depth, output_mode=mode)(np.asarray(case["x"]))
        np.testing.assert_array_equal(_np(y), np.asarray(case["y"]), err_msg=name)
        assert _np(y).dtype == np.float32
    weighted = L.CategoryEncoding(3, output_mode="count")(
        np.array([[0, 2, 2]]), count_weights=np.array([[0.5, 1.0, 2.0]]))
    np.testing.assert_allclose(_np(weighted), [[0.5, 0.0, 3.0]])
    with pytest.raises(ValueError, match="CategoryEncoding: expected output_mode"):
        L.CategoryEncoding(3, output_mode="tf_idf")


# ---- lookups and text ---------------------------------------------------------------------------
def test_text_vectorization_matches_keras(backend, keras_out):
    texts = ["The cat sat on the mat.", "The DOG ate my homework!", "cat, dog & bird: friends?",
             "Ünïcode ÀB café x\u00a0y\tz\nw \u000bv\fu", "it's   a-b c_d (e) [f] {g}", "",
             "the the THE tHe", "zebra apple mango apple zebra kiwi"]
    queries = ["the cat and the dog", "ÀB café!!", "never seen words", "", "x\u00a0y zebra"]
    for name, case in _cases(keras_out, "TextVectorization[").items():
        layer = L.TextVectorization(**case["config"])
        layer.adapt(np.array(texts))
        assert layer.get_vocabulary() == case["vocab"], name
        y = layer(queries)
        np.testing.assert_array_equal(_np(y), np.asarray(case["y"]), err_msg=name)
        assert _np(y).dtype == np.int64 and ops.is_tensor(y)


def test_string_and_integer_lookup_match_keras(backend, keras_out):
    words = np.array(["b", "a", "c", "a", "b", "d", "e", "é", "B", "a", "b", "c"])
    ints = np.array([5, 3, 3, 7, 7, 9, 1, 7, 0, 12])
    for name, case in keras_out.items():
        if name.startswith("StringLookup["):
            layer, data = L.StringLookup(**case["config"]), words
        elif name.startswith("IntegerLookup[") and "config" in case:
            layer, data = L.IntegerLookup(**case["config"]), ints
        else:
            continue
        layer.adapt(data)
        assert layer.get_vocabulary() == case["vocab"], name
        y = layer(np.asarray(case["q"]))
        np.testing.assert_array_equal(_np(y), np.asarray(case["y"]), err_msg=name)
        assert _np(y).dtype == np.int64
    inverse = L.IntegerLookup(vocabulary=[5, 6], invert=True)
    np.testing.assert_array_equal(_np(inverse(np.array([0, 1, 2, 3]))),
                                  keras_out["IntegerLookup[invert]"]["y"])


def test_lookup_inputs_lists_bytes_and_tensors(backend):
    lookup = L.StringLookup(vocabulary=["a", "b"])
    expected = [[1, 0], [2, 1]]
    for q in ([["a", "x"], ["b", "a"]], np.array([[b"a", b"x"], [b"b", b"a"]]),
              np.array([["a", "x"], ["b", "a"]], dtype=object)):
        np.testing.assert_array_equal(_np(lookup(q)), expected)
    ints = L.IntegerLookup(vocabulary=[7, 9])
    np.testing.assert_array_equal(_np(ints(ops.convert_to_tensor(np.array([9, 8, 7])))),
                                  [2, 0, 1])
    inverse = L.StringLookup(vocabulary=["a", "b"], invert=True)
    assert inverse(np.array([2, 0, 1])).tolist() == ["b", "[UNK]", "a"]


def test_lookup_vocabulary_errors_name_the_layer():
    with pytest.raises(LayerError, match="StringLookup.*repeats"):
        L.StringLookup(vocabulary=["a", "b", "a"])
    with pytest.raises(LayerError, match="special token '\\[UNK\\]'"):
        L.StringLookup(vocabulary=["a", "[UNK]"])
    with pytest.raises(ValueError, match="StringLookup: num_oov_indices > 1"):
        L.StringLookup(num_oov_indices=2)
    fixed = L.TextVectorization(vocabulary=["a"])
    with pytest.raises(LayerError, match="fixed vocabulary"):
        fixed.adapt(["b"])
    with pytest.raises(LayerError, match="num_oov_indices=0"):
        with unidl.use_backend("numpy"):
            L.StringLookup(vocabulary=["a"], num_oov_indices=0)(["b"])
    with pytest.raises(ValueError, match="TextVectorization: output_sequence_length needs"):
        L.TextVectorization(output_mode="count", output_sequence_length=3)


def test_text_vectorization_adapts_over_batches_and_tuples(backend):
    texts = ["red blue", "blue green blue", "red", "blue"]
    whole = L.TextVectorization()
    whole.adapt(texts)
    batched = L.TextVectorization()
    batched.adapt(iter([(np.array(texts[:2]), np.array([0, 1])), (np.array(texts[2:]), None)]))
    assert whole.get_vocabulary() == batched.get_vocabulary() == ["", "[UNK]", "blue", "red",
                                                                  "green"]
    steps = L.TextVectorization()
    steps.adapt(iter([np.array(texts[:1]), np.array(texts[1:])]), steps=1)
    assert steps.get_vocabulary() == ["", "[UNK]", "red", "blue"]


def test_set_vocabulary_accepts_special_tokens():
    layer = L.TextVectorization()
    layer.set_vocabulary(["", "[UNK]", "x", "y"])
    assert layer.get_vocabulary() == ["", "[UNK]", "x", "y"]
    layer.set_vocabulary(["y", "x"])
    assert layer.get_vocabulary(include_special_tokens=False) == ["y", "x"]
    assert layer.vocabulary_size() == 4


# ---- configs, models --------------------------------------------------------------------------
def test_configs_keep_the_vocabulary_and_statistics():
    from unidl import saving

    vec = L.TextVectorization(max_tokens=6, output_sequence_length=3)
    vec.adapt(["a b c", "a b", "a"])
    back = saving.deserialize(json.loads(json.dumps(saving.serialize(vec))))
    assert back.get_vocabulary() == vec.get_vocabulary()
    with unidl.use_backend("numpy"):
        np.testing.assert_array_equal(back(["c a z"]), vec(["c a z"]))
    lookup = L.IntegerLookup(mask_token=0)
    lookup.adapt(np.array([3, 3, 4]))
    again = saving.deserialize(json.loads(json.dumps(saving.serialize(lookup))))
    assert again.get_vocabulary() == [0, -1, 3, 4]


def test_model_with_preprocessing_layers_saves_and_loads(backend, tmp_path):
    unidl.random.set_seed(0)
    vec = L.TextVectorization(max_tokens=20, output_sequence_length=5)
    vec.adapt(["good movie", "bad movie", "very good", "very bad film"])
    text_model = unidl.Sequential([vec, L.Embedding(20, 4), L.GlobalAveragePooling1D(),
                                   L.Dense(1)])
    texts = np.array(["good film", "bad", "unknown words here"])
    expected = _np(text_model(texts))
    text_model.save(tmp_path / "text.unidl")
    loaded = unidl.load_model(tmp_path / "text.unidl")
    np.testing.assert_allclose(_np(loaded(texts)), expected, rtol=1e-6)
    assert loaded.layers[0].get_vocabulary() == vec.get_vocabulary()

    norm = L.Normalization()
    norm.adapt(np.arange(24.0).reshape(4, 3, 2))
    image_model = unidl.Sequential([
        L.Rescaling(2.0, input_shape=(3, 2)), norm, L.Flatten(), L.Dense(2)])
    x = np.random.default_rng(3).uniform(size=(5, 3, 2)).astype(np.float32)
    expected = image_model.predict(x, verbose=0)
    image_model.save(tmp_path / "image.unidl")
    loaded = unidl.load_model(tmp_path / "image.unidl")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(loaded.layers[1].get_weights()[0], norm.get_weights()[0])


def test_resizing_gradients_flow(backend):
    x = ops.convert_to_tensor(np.random.default_rng(4).uniform(size=(1, 4, 4, 1)), "float32")
    grad = unidl.grad(lambda t: ops.sum(L.Resizing(2, 2)(t)))(x)
    # each output pixel averages a 2x2 block with weights 1/4 (half-pixel centres, scale 2)
    np.testing.assert_allclose(_np(grad), np.full((1, 4, 4, 1), 0.25), rtol=1e-6)
