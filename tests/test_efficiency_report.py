"""``unidl.efficiency.report`` and ``unidl efficiency``: sizes, non-zeros, accuracy and
latency of several models, compared with the first."""

from __future__ import annotations

import json

import numpy as np
import pytest

import unidl
from unidl import efficiency, layers, pruning
from unidl.cli import main as cli_main


def _model(seed=0):
    unidl.random.set_seed(seed)
    return unidl.Sequential([layers.Flatten(input_shape=(4, 4)),
                             layers.Dense(32, activation="relu"),
                             layers.Dense(3, activation="softmax")])


def _data(n=60):
    rng = np.random.default_rng(0)
    x = rng.random((n, 4, 4)).astype("float32")
    return x, (x.reshape(n, -1).sum(axis=1) * 3 / 16).astype(int).clip(0, 2)


def _pruned_copy(model, sparsity):
    wrapped = pruning.prune_low_magnitude(model, pruning.ConstantSparsity(sparsity))
    for w in pruning.pruning_wrappers(wrapped):
        w.prune_to(sparsity)
    return wrapped


def test_report_compares_models_and_files(backend, tmp_path):
    x, y = _data()
    base = _model()
    base.compile("adam", "sparse_categorical_crossentropy")
    base.fit(x, y, epochs=2, verbose=0)  # (the optimizer state is not counted in the size)
    wrapped = _pruned_copy(base, 0.9)
    plain = pruning.strip_pruning(wrapped)
    plain.save(tmp_path / "pruned.unidl")
    printed = []
    result = efficiency.report(models={"float32": base, "wrapped": wrapped,
                                       "file": str(tmp_path / "pruned.unidl")},
                               data=(x, y), repeats=2, print_fn=printed.append)
    assert list(result) == ["float32", "wrapped", "file"]
    first, wrapped_row, file_row = result.values()
    n_params = 16 * 32 + 32 + 32 * 3 + 3
    assert first["params"] == wrapped_row["params"] == file_row["params"] == n_params
    assert first["sparsity"] < 0.1
    kernels = 16 * 32 + 32 * 3
    assert file_row["nonzeros"] <= n_params - round(0.9 * kernels)
    assert wrapped_row["nonzeros"] == file_row["nonzeros"]
    assert "strip_pruning" in wrapped_row["note"] and file_row["note"] is None
    # the same stripped model: the same file; zeros compress, float32 noise does not
    assert wrapped_row["file_bytes"] == file_row["file_bytes"]
    assert file_row["file_bytes"] == pytest.approx(first["file_bytes"], rel=0.05)
    assert file_row["gzip_ratio"] > 2.0 and first["size_ratio"] == 1.0
    for row in result.values():
        assert 0.0 <= row["accuracy"] <= 1.0 and row["latency_ms"] > 0
        assert row["per_sample_us"] == pytest.approx(1000 * row["latency_ms"] / len(x))
    np.testing.assert_allclose(file_row["accuracy_change"],
                               file_row["accuracy"] - first["accuracy"])
    assert file_row["accuracy"] == pytest.approx(efficiency.accuracy(
        plain.predict(x, verbose=0), y))
    table = printed[0]
    assert table == str(result) and "float32" in table and "x" in table and "pt" in table
    assert "wrapped: pruning wrappers stripped" in table


def test_report_with_a_baseline_and_without_labels():
    with unidl.use_backend("numpy"):
        x, _ = _data(20)
        base = _model(1)
        result = efficiency.report(_pruned_copy(base, 0.5), x.reshape(20, 16), baseline=base,
                                   repeats=1, print_fn=None)
    assert list(result) == ["baseline", "model"]
    assert result["model"]["accuracy"] is None and result["model"]["accuracy_change"] is None
    assert "-" in result.table()


@pytest.mark.parametrize("predictions, labels, expected", [
    ([[0.1, 0.9], [0.8, 0.2]], [1, 1], 0.5),
    ([[0.1, 0.9], [0.8, 0.2]], [[0, 1], [1, 0]], 1.0),  # one-hot labels
    ([[0.7], [0.2], [0.6]], [1, 0, 0], 2 / 3),  # one sigmoid output
])
def test_accuracy(predictions, labels, expected):
    assert efficiency.accuracy(np.array(predictions), np.array(labels)) == pytest.approx(
        expected)


@pytest.mark.parametrize("kwargs, words", [
    ({}, ["give a model"]),
    ({"model": "m", "models": {"a": "m"}}, ["not both"]),
    ({"models": {}}, ["non-empty dict"]),
    ({"model": 3, "data": np.ones((2, 2))}, ["model 'model'", "got int"]),
    ({"model": "x.unidl"}, ["data is required"]),
])
def test_report_errors_say_what_was_expected(kwargs, words):
    with pytest.raises((ValueError, TypeError)) as info:
        efficiency.report(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_cli_reports_saved_files(tmp_path, capsys):
    with unidl.use_backend("numpy"):
        x, y = _data(30)
        base = _model(2)
        base.save(tmp_path / "float32.unidl")
        pruning.strip_pruning(_pruned_copy(base, 0.8)).save(tmp_path / "pruned.unidl")
    np.savez(tmp_path / "data.npz", x=x.reshape(30, 16), y=y)  # reshaped back to (4, 4)
    pruned = str(tmp_path / "pruned.unidl")
    code = cli_main(["efficiency", str(tmp_path / "float32.unidl"), pruned, pruned,
                     "--data", str(tmp_path / "data.npz"), "--repeats", "1", "--backend",
                     "numpy", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "float32.unidl" in out and "pruned.unidl" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert list(saved) == ["float32.unidl", "pruned.unidl", "pruned.unidl (2)"]
    assert saved["pruned.unidl"]["nonzeros"] < 0.3 * saved["float32.unidl"]["nonzeros"]


@pytest.mark.parametrize("args, words", [
    (["missing.unidl", "--data", "digits"], ["missing.unidl", "does not exist"]),
    (["m.unidl", "--data", "cifar"], ["--data", "mnist, digits or a .npz", "'cifar'"]),
])
def test_cli_errors(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.unidl").write_bytes(b"")
    assert cli_main(["efficiency", *args]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_report_measures_a_quantized_model():
    """The report only saves, loads and predicts: an int8 model from unidl.quantization
    (built in parallel with the report) is measured like any other."""
    quantization = pytest.importorskip("unidl.quantization")
    with unidl.use_backend("numpy"):
        unidl.random.set_seed(3)
        model = unidl.Sequential([layers.Dense(256, activation="relu", input_shape=(64,)),
                                  layers.Dense(3, activation="softmax")])
        x = np.random.default_rng(1).random((40, 64)).astype("float32")
        y = model.predict(x, verbose=0).argmax(axis=1)
        q = quantization.quantize(model, "int8", calibration_data=x)
        result = efficiency.report(models={"float32": model, "int8": q}, data=(x, y),
                                   repeats=1, print_fn=None)
    assert result["float32"]["accuracy"] == 1.0
    assert result["int8"]["accuracy"] >= 0.9
    assert result["int8"]["size_ratio"] > 2.5  # int8 weights: a quarter of the bytes
