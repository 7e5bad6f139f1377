"""What a new user gets wrong, answered with a clear error on every backend: data whose
lengths disagree, non-numeric data, weights files (missing, foreign, truncated, not fitting
the model, unsupported extension, missing directory), checkpoint options, and summaries of
layers with long class names."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import layers
from unidl.models.model import WeightsFileError, WeightsFileNotFoundError, weights_format


def _model(n_in=3):
    model = unidl.Sequential([layers.Dense(4, input_shape=(n_in,), name="hidden"),
                              layers.Dense(2, activation="softmax", name="out")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _two_inputs():
    a, b = unidl.Input((4,), name="a"), unidl.Input((3,), name="b")
    out = layers.Dense(2, activation="softmax")(layers.Concatenate()([a, b]))
    model = unidl.Model([a, b], out)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _data(n=10, n_in=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, n_in)).astype("float32"), rng.integers(0, 2, n)


# ---- 1. lengths that disagree ------------------------------------------------------------------
def _calls(model, x, y, w=None):
    return {
        "fit": lambda: model.fit(x, y, sample_weight=w, epochs=1, verbose=0),
        "evaluate": lambda: model.evaluate(x, y, sample_weight=w, verbose=0),
        "train_on_batch": lambda: model.train_on_batch(x, y, sample_weight=w),
        "test_on_batch": lambda: model.test_on_batch(x, y, sample_weight=w),
    }


def test_mismatched_x_and_y_name_both_lengths_before_training(backend):
    model = _model()
    x, y = _data(10)
    before = model.get_weights()
    for where, call in _calls(model, x, y[:9]).items():
        with pytest.raises(ValueError, match=rf"^{where}: .*same number of samples.*"
                                             r"got: x has 10, y has 9$"):
            call()
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)  # nothing trained


def test_mismatched_sample_weight_is_named(backend):
    model = _model()
    x, y = _data(10)
    for where, call in _calls(model, x, y, np.ones(7, "float32")).items():
        with pytest.raises(ValueError, match=rf"^{where}: .*x has 10, y has 10, "
                                             r"sample_weight has 7$"):
            call()


def test_mismatched_inputs_of_a_multi_input_model_are_named(backend):
    model = _two_inputs()
    xa, xb, y = np.ones((10, 4), "float32"), np.ones((9, 3), "float32"), np.zeros(10)
    for where, call in _calls(model, [xa, xb], y).items():
        with pytest.raises(ValueError, match=rf"^{where}: .*x\[0\] has 10, x\[1\] has 9, "
                                             r"y has 10$"):
            call()
    with pytest.raises(ValueError, match=r"^predict: .*x\[0\] has 10, x\[1\] has 9$"):
        model.predict([xa, xb], verbose=0)
    with pytest.raises(ValueError, match=r"x\['a'\] has 10, x\['b'\] has 9"):
        model.predict({"a": xa, "b": xb}, verbose=0)


def test_mismatched_validation_data_fails_before_training(backend):
    model = _model()
    x, y = _data(20)
    before = model.get_weights()
    epochs = []
    cb = unidl.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))
    with pytest.raises(ValueError, match=r"^fit: .*validation_data\[0\] has 5, "
                                         r"validation_data\[1\] has 4$"):
        model.fit(x, y, validation_data=(x[:5], y[:4]), verbose=0, callbacks=[cb])
    with pytest.raises(ValueError, match=r"validation_data must be \(x_val, y_val\)"):
        model.fit(x, y, validation_data=(x[:5],), verbose=0)
    assert epochs == []
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_validation_split_splits_sample_weight_too(backend):
    model = _model()
    x, y = _data(20)
    history = model.fit(x, y, sample_weight=np.ones(20, "float32"), validation_split=0.25,
                        verbose=0)
    assert set(history.history) == {"loss", "val_loss"}


def test_validation_data_with_sample_weights(backend):
    model = _model()
    x, y = _data(20)
    history = model.fit(x, y, validation_data=(x[:6], y[:6], np.ones(6, "float32")),
                        verbose=0)
    assert np.isfinite(history.history["val_loss"]).all()


# ---- 2. non-numeric data -----------------------------------------------------------------------
def _label_error(where="fit"):
    model = _model()
    x, _ = _data(6)
    y = np.array(["cat", "dog", "cat", "dog", "bird", "cat"])
    with pytest.raises(ValueError) as info:
        _calls(model, x, y)[where]()
    return str(info.value)


def test_string_labels_give_one_clear_error(backend):
    for where in ("fit", "evaluate", "train_on_batch", "test_on_batch"):
        msg = _label_error(where)
        assert msg.startswith(f"{where}: y has dtype <U4 (strings)"), msg
        assert "encode labels as integers" in msg
        assert "np.unique(y, return_inverse=True)" in msg


def test_string_label_error_is_the_same_on_every_backend():
    messages = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            messages[name] = _label_error()
    assert len(set(messages.values())) == 1, messages


@pytest.mark.parametrize("case", ["bytes x", "object y", "string input", "string weights",
                                  "ragged x"])
def test_non_numeric_data_names_the_argument_and_dtype(backend, case):
    x, y = _data(6)
    model = _two_inputs() if case == "string input" else _model()
    w = None
    if case == "bytes x":
        x, want = x.astype("S8"), r"^fit: x has dtype \|S8 \(bytes\).*convert it to numbers"
    elif case == "object y":
        y = np.array([1, 0, None, 1, 0, 1], dtype=object)
        want = r"^fit: y has dtype object \(Python objects\).*astype\('float32'\)"
    elif case == "string input":
        x = [np.ones((6, 4), "float32"), np.full((6, 3), "a")]
        want = r"^fit: x\[1\] has dtype <U1 \(strings\)"
    elif case == "string weights":
        w, want = np.array(["1"] * 6), r"^fit: sample_weight has dtype <U1 \(strings\)"
    else:
        x, want = [[1.0, 2.0], [3.0]], r"^fit: x\[0\]\[0\] is a scalar.*np\.asarray"
    with pytest.raises(ValueError, match=want):
        model.fit(x, y, sample_weight=w, verbose=0)


def test_a_scalar_is_not_data(backend):
    model = _model()
    with pytest.raises(ValueError, match=r"^evaluate: y is a scalar"):
        model.evaluate(np.ones((4, 3), "float32"), 1, verbose=0)


# ---- 4. weights files --------------------------------------------------------------------------
def test_weights_round_trip_and_leave_no_temporary_file(backend, tmp_path):
    model = _model()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    other = _model()
    other.load_weights(path)
    for got, want in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_truncated_weights_file_is_named_as_truncated(backend, tmp_path):
    model = _model()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    data = path.read_bytes()
    for size in (len(data) // 2, len(data) - 30, 100):
        path.write_bytes(data[:size])
        with pytest.raises(WeightsFileError, match=rf"{re.escape(repr(str(path)))}: the file "
                                                   r"is truncated or corrupt"):
            model.load_weights(path)


def test_foreign_files_are_not_unidl_weights(backend, tmp_path):
    model = _model()
    cases = {
        "garbage.npz": b"this is not a weights file",
        "empty.npz": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    np.savez(tmp_path / "objects.npz", w0000=np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "strings.npz", __names__=np.array(["a"]), w0000=np.array(["x"]))
    for name, want in [("garbage.npz", "starts with b'this'"), ("empty.npz", "is empty"),
                       ("other.npz", r"without save_weights' w0000.*\['a'\]"),
                       ("objects.npz", "pickled Python objects"),
                       ("strings.npz", "array 'w0000' has dtype <U1")]:
        path = str(tmp_path / name)
        with pytest.raises(WeightsFileError, match=rf"{re.escape(repr(path))}: not a unidl "
                                                   rf"weights file \(.*{want}"):
            model.load_weights(path)


class _Boom:
    def __reduce__(self):
        import os

        return (os.mkdir, ("SHOULD_NOT_EXIST",))


def test_loading_never_executes_code_from_the_file(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(WeightsFileError, match="not a unidl weights file"):
        _model().load_weights(evil)
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()


def test_missing_weights_file(backend, tmp_path):
    path = str(tmp_path / "nope.npz")
    with pytest.raises(WeightsFileNotFoundError, match=rf"{re.escape(repr(path))}: the file "
                                                       "does not exist"):
        _model().load_weights(path)
    with pytest.raises(FileNotFoundError):
        _model().load_weights(path)


def test_weights_that_do_not_fit_name_the_weight_and_both_shapes(backend, tmp_path):
    path = tmp_path / "w.npz"
    _model(n_in=5).save_weights(path)
    model = _model(n_in=3)
    before = model.get_weights()
    with pytest.raises(WeightsFileError, match=r"weight 0 'hidden/kernel' has shape \(3, 4\) in "
                                               r"the model, but array 0 in the file "
                                               r"\('hidden/kernel'\) has shape \(5, 4\)"):
        model.load_weights(path)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)  # nothing assigned
    bigger = unidl.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(4),
                               layers.Dense(2)])
    with pytest.raises(WeightsFileError, match=r"the file holds 4 arrays, the model has 6 "
                                               "weights"):
        bigger.load_weights(path)


def test_loading_into_an_unbuilt_model(backend, tmp_path):
    path = tmp_path / "w.npz"
    source = _model()
    source.save_weights(path)
    unknown = unidl.Sequential([layers.Dense(4), layers.Dense(2)])
    with pytest.raises(WeightsFileError, match=r"no weights yet .*call it on a batch .*"
                                               r"build\(input_shape\) first.*holds 4 arrays"):
        unknown.load_weights(path)

    class Net(unidl.Model):
        def __init__(self):
            super().__init__(input_shape=(3,))
            self.hidden = layers.Dense(4)
            self.out = layers.Dense(2, activation="softmax")

        def call(self, x, training=None):
            return self.out(self.hidden(x))

    net = Net()
    assert not net.weights
    net.load_weights(path)  # its input shape is known: built first
    for got, want in zip(net.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_set_weights_on_an_unbuilt_layer_says_to_build_it(backend):
    with pytest.raises(ValueError, match="no weights yet.*call it on a batch"):
        layers.Dense(3).set_weights([np.ones((2, 3))])


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5", "w.keras", "w.pt", "weights"])
def test_unsupported_weights_extension_is_rejected(backend, tmp_path, name):
    path = tmp_path / name
    model = _model()
    with pytest.raises(WeightsFileError, match=r"^save_weights: .*unidl weights files are "
                                               r"\.safetensors .*\.npz \(NumPy \.npz "
                                               r"archive\)"):
        model.save_weights(path)
    assert not any(tmp_path.iterdir())
    with pytest.raises(WeightsFileError, match=r"^load_weights: .*\.npz"):
        model.load_weights(path)


def test_weights_format_is_one_small_check():
    assert weights_format("a/b.NPZ") == ".npz"
    with pytest.raises(ValueError, match=r"\.h5 \(Keras' HDF5\)"):
        weights_format("model.weights.h5")


def test_saving_into_a_missing_directory_names_the_directory(backend, tmp_path):
    path = tmp_path / "missing" / "w.npz"
    with pytest.raises(WeightsFileNotFoundError) as info:
        _model().save_weights(path)
    msg = str(info.value)
    assert repr(str(tmp_path / "missing")) in msg and "does not exist" in msg, msg
    assert ".unidl-" not in msg
    assert isinstance(info.value, FileNotFoundError)


# ---- 7. ModelCheckpoint ------------------------------------------------------------------------
def test_model_checkpoint_weights_only(backend, tmp_path):
    with pytest.raises(ValueError, match=r"save_weights_only=False.*must end in \.unidl"):
        unidl.callbacks.ModelCheckpoint(str(tmp_path / "m.npz"), save_weights_only=False)
    with pytest.raises(ValueError, match=r"^ModelCheckpoint filepath: .*\.h5.*\.npz"):
        unidl.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.weights.h5"))
    ckpt = unidl.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.npz"), monitor="loss")
    assert ckpt.save_weights_only is True
    x, y = _data(12)
    _model().fit(x, y, epochs=2, verbose=0, callbacks=[ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.npz", "m-2.npz"]


# ---- 5. summary --------------------------------------------------------------------------------
class AVeryLongCustomDenseLayerClassNameForTheSummaryTest(layers.Dense):
    pass


def test_summary_shows_long_layer_class_names_whole(backend, capsys):
    model = unidl.Sequential([
        layers.Flatten(input_shape=(4, 4)),
        AVeryLongCustomDenseLayerClassNameForTheSummaryTest(8, name="a_long_layer_name_too"),
        layers.Dense(2),
    ])
    model.summary()
    lines = capsys.readouterr().out.splitlines()
    want = "a_long_layer_name_too (AVeryLongCustomDenseLayerClassNameForTheSummaryTest)"
    row = next(line for line in lines if want in line)
    assert "(None, 8)" in row and row.endswith("136")
    assert max(len(line) for line in lines) <= 120
    assert len({len(line) for line in lines if set(line) <= {"_"} or set(line) == {"="}}) == 1


def test_summary_wraps_what_does_not_fit(backend):
    from unidl.models.summary import summary_lines

    cls = type("C" * 150, (layers.Dense,), {})
    model = unidl.Sequential([cls(3, input_shape=(4,), name="n" * 30)])
    for width in (None, 60):
        lines = summary_lines(model, width)
        assert max(len(line) for line in lines) <= (120 if width is None else 60)
        body = lines[lines.index("=" * len(lines[1])) + 1:]
        body = body[:body.index("=" * len(lines[1]))]
        first_column = "".join(line.split("  ")[0] for line in body)
        assert first_column.replace(" ", "") == "n" * 30 + f"({'C' * 150})"
        assert "(None, 3)" in body[0] and body[0].endswith("15")
