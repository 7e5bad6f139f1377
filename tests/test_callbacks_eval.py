"""Evaluation you can see: the TensorBoard callback (event files that TensorBoard's own reader
loads back with History's values), the progress output on terminals and elsewhere,
TerminateOnNaN (Keras 3's), and BackupAndRestore (a fit killed with SIGKILL resumes at the
next epoch and ends with the weights of an uninterrupted deterministic run)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import textwrap

import numpy as np
import pytest

import unidl
from tests.conftest import run_python
from unidl import layers
from unidl.callbacks import (
    BackupAndRestore,
    LambdaCallback,
    ProgbarLogger,
    TensorBoard,
    TerminateOnNaN,
)
from unidl.callbacks.tensorboard import layer_graph
from unidl.saving import SaveFileError

N, BATCH = 48, 8


def _data(n=N):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 1).astype("int64")


def _model(dropout=0.0):
    unidl.random.set_seed(7)
    body = [layers.Dense(12, activation="relu", input_shape=(6,), name="hidden")]
    body += [layers.Dropout(dropout)] if dropout else []
    model = unidl.Sequential(body + [layers.Dense(3, activation="softmax", name="out")],
                             name="clf")
    model.compile(unidl.optimizers.Adam(0.02), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


# ---- TensorBoard ------------------------------------------------------------------------------
def _read_run(path):
    """``(scalars {tag: [(step, value)]}, histogram steps {tag: [step]}, text tags,
    graph nodes)`` of one run directory, read by TensorBoard's own EventAccumulator."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from tensorboard.util import tensor_util

    acc = ea.EventAccumulator(str(path), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    scalars, hists, texts = {}, {}, []
    for tag in acc.Tags()["tensors"]:
        events = acc.Tensors(tag)
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == "scalars":
            scalars[tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                            for e in events]
        elif plugin == "histograms":
            hists[tag] = [e.step for e in events]
        elif plugin == "text":
            texts.append(tag)
    nodes = [(n.name, n.op, list(n.input)) for n in acc.Graph().node] \
        if acc.Tags()["graph"] else []
    return scalars, hists, texts, nodes


def _f32(values):
    return [float(np.float32(v)) for v in values]  # (TensorBoard stores scalars as float32)


def test_tensorboard_event_files_hold_the_history(backend, tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _data()
    model = _model()
    tb = TensorBoard(tmp_path / "logs", histogram_freq=2)
    history = model.fit(x, y, batch_size=BATCH, epochs=3, validation_data=_data(16),
                        verbose=0, callbacks=[tb]).history
    scalars, hists, texts, nodes = _read_run(tmp_path / "logs" / "train")
    assert scalars["epoch_loss"] == list(enumerate(_f32(history["loss"])))
    assert scalars["epoch_accuracy"] == list(enumerate(_f32(history["accuracy"])))
    assert scalars["epoch_learning_rate"] == [(e, pytest.approx(0.02)) for e in range(3)]
    assert not any(tag.startswith("batch_") for tag in scalars)  # (update_freq="epoch")
    assert hists == {f"{w}/histogram": [0, 2] for w in ("hidden/kernel", "hidden/bias",
                                                         "out/kernel", "out/bias")}
    assert texts == ["model_summary"]
    assert nodes == [("input", "InputLayer", []), ("hidden", "Dense", ["input"]),
                     ("out", "Dense", ["hidden"])]
    val, _, _, _ = _read_run(tmp_path / "logs" / "validation")
    assert val == {"epoch_loss": list(enumerate(_f32(history["val_loss"]))),
                   "epoch_accuracy": list(enumerate(_f32(history["val_accuracy"])))}


@pytest.mark.parametrize("freq, steps_per_execution, expected", [
    ("batch", 1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    (4, 1, [4, 8, 12]),
    (2, 4, [4, 6, 10, 12]),  # (one call per group of 4, 2: the steps where a multiple passed)
])
def test_tensorboard_batch_scalars_follow_the_optimizer_step(tmp_path, freq,
                                                             steps_per_execution, expected):
    pytest.importorskip("tensorboard")
    x, y = _data(48)
    with unidl.use_backend("numpy"):
        model = _model()
        model.compile(unidl.optimizers.Adam(0.02), "sparse_categorical_crossentropy",
                      steps_per_execution=steps_per_execution)
        seen = []
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[
            TensorBoard(tmp_path, update_freq=freq, write_graph=False),
            LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(logs["loss"]))])
    scalars, hists, texts, nodes = _read_run(tmp_path / "train")
    assert [step for step, _ in scalars["batch_loss"]] == expected
    assert not hists and not texts and not nodes
    if freq == "batch" and steps_per_execution == 1:
        assert [v for _, v in scalars["batch_loss"]] == _f32(seen)


def test_tensorboard_writes_the_evaluation_and_the_graph_of_a_functional_model(tmp_path):
    pytest.importorskip("tensorboard")
    with unidl.use_backend("numpy"):
        a, b = unidl.Input((6,), name="a"), unidl.Input((6,), name="b")
        shared = layers.Dense(4, name="shared")
        merged = layers.Concatenate(name="concat")([shared(a), shared(b)])
        model = unidl.Model([a, b], layers.Dense(3, activation="softmax", name="head")(merged))
        model.compile("sgd", "sparse_categorical_crossentropy")
        assert [(n, op, i) for n, op, i, _, _ in layer_graph(model)] == [
            ("a", "InputLayer", []), ("b", "InputLayer", []), ("shared", "Dense", ["a"]),
            ("shared_1", "Dense", ["b"]), ("concat", "Concatenate", ["shared", "shared_1"]),
            ("head", "Dense", ["concat"])]
        x, y = _data()
        loss = model.evaluate([x, x], y, verbose=0, callbacks=[TensorBoard(tmp_path)])
    scalars, _, _, _ = _read_run(tmp_path / "validation")
    assert scalars == {"evaluation_loss_vs_iterations": [(0, float(np.float32(loss)))]}


def test_tensorboard_graph_of_models_that_fit_builds(tmp_path):
    """A Sequential model without input_shape is built by its first batch: its graph is
    written after the first epoch, with shapes; a subclassed model's layers have no edges."""
    pytest.importorskip("tensorboard")

    class Sub(unidl.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.first, self.second = layers.Dense(4, name="first"), layers.Dense(3, name="second")

        def call(self, x, training=None):
            return self.second(self.first(x))

    x, y = _data()
    with unidl.use_backend("numpy"):
        lazy = unidl.Sequential([layers.Dense(4, name="a"), layers.Dense(3, name="b")])
        for name, model in (("lazy", lazy), ("sub", Sub())):
            model.compile("sgd", "sparse_categorical_crossentropy")
            model.fit(x, y, epochs=2, verbose=0, callbacks=[TensorBoard(tmp_path / name)])
        assert layer_graph(lazy)[0][3] == [(None, 6)]
    assert _read_run(tmp_path / "lazy" / "train")[3] == [
        ("input", "InputLayer", []), ("a", "Dense", ["input"]), ("b", "Dense", ["a"])]
    assert _read_run(tmp_path / "sub" / "train")[3] == [("first", "Dense", []),
                                                        ("second", "Dense", [])]


def test_tensorboard_leaves_out_array_results(tmp_path):
    """A metric whose result is an array (per-class values) is not a scalar: not written,
    and no error."""
    pytest.importorskip("tensorboard")
    x, y = _data()

    def add_array(epoch, logs):
        logs["per_class"] = np.array([0.5, 0.25], "float32")

    with unidl.use_backend("numpy"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[
            LambdaCallback(on_epoch_end=add_array), TensorBoard(tmp_path, write_graph=False)])
    assert sorted(_read_run(tmp_path / "train")[0]) == ["epoch_accuracy", "epoch_learning_rate",
                                                         "epoch_loss"]


def test_tensorboard_says_what_it_does_not_support(tmp_path):
    pytest.importorskip("tensorboard")
    with pytest.raises(ValueError, match="profile_batch=5 is not supported"):
        TensorBoard(tmp_path, profile_batch=5)
    TensorBoard(tmp_path, profile_batch=0, write_images=False)  # (Keras' defaults are fine)
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(tmp_path, update_freq="step")
    with pytest.raises(ValueError, match="histogram_freq"):
        TensorBoard(tmp_path, histogram_freq=-1)
    with pytest.raises(TypeError, match="unknown argument 'logdir'"):
        TensorBoard(logdir=tmp_path)


def test_tensorboard_is_imported_only_when_used_and_its_absence_is_explained():
    proc = run_python("""
        import sys
        import unidl, unidl.callbacks
        assert "tensorboard" not in sys.modules, "import unidl imported tensorboard"
        sys.modules["tensorboard"] = None  # (as if it were not installed)
        try:
            unidl.callbacks.TensorBoard("logs")
        except ImportError as exc:
            print(exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "unidl[tensorboard]"' in proc.stdout


# ---- progress output --------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _progress(stream, verbose=1):
    x, y = _data(40)
    with unidl.use_backend("numpy"):
        _model().fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=_data(8),
                     callbacks=[ProgbarLogger(verbose, stream=stream)])
    return stream.getvalue()


def test_progress_is_one_line_per_epoch_when_the_output_is_not_a_terminal():
    out = _progress(io.StringIO())
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 2, out
    for epoch, line in enumerate(lines, start=1):
        assert re.fullmatch(rf"5/5 +\d+s \d+m?s/step - epoch {epoch}/2 - loss: \d\.\d{{4}} - "
                            r"accuracy: .* - val_loss: .* - val_accuracy: \d\.\d{4}", line), line


def test_progress_bar_is_redrawn_on_a_terminal():
    out = _progress(_Terminal())
    assert out.count("Epoch 1/2\n") == 1 and out.count("Epoch 2/2\n") == 1
    assert [int(c) for c in re.findall(r"\r(\d+)/5 ", out)] == [1, 2, 3, 4, 5, 5] * 2
    assert "━" * 20 in out  # (the full bar at each epoch's end)


def test_progress_verbose_2_is_one_line_per_epoch_anywhere():
    for stream in (io.StringIO(), _Terminal()):
        lines = _progress(stream, verbose=2).splitlines()
        assert [line[:12] for line in lines] == ["Epoch 1/2 - ", "Epoch 2/2 - "]
        assert "\r" not in stream.getvalue()


# ---- TerminateOnNaN -------------------------------------------------------------------------
def _nan_data():
    x, y = _data()
    x[20, 1] = np.nan  # (batch 2 of 6)
    return x, y


def test_terminate_on_nan_stops_after_the_batch_as_keras(backend, capsys):
    x, y = _nan_data()
    model = _model()
    history = model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                        callbacks=[TerminateOnNaN()])
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    assert history.epoch == [0] and np.isnan(history.history["loss"][0])


def test_terminate_on_nan_raise_error_keeps_a_backup(backend, tmp_path):
    x, y = _nan_data()
    model = _model()
    backup = BackupAndRestore(tmp_path / "backup")
    model.fit(x[:16], y[:16], batch_size=BATCH, epochs=1, verbose=0, callbacks=[backup])
    assert not (tmp_path / "backup").exists()  # (deleted at the end of a normal fit)
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                  initial_epoch=0, callbacks=[backup, TerminateOnNaN(raise_error=True)])
    # no on_train_end ran: nothing was backed up in the broken epoch, nor deleted
    assert not (tmp_path / "backup" / "backup.json").exists()


# ---- BackupAndRestore ---------------------------------------------------------------------
class _Interrupt(Exception):
    pass


def _interrupt_after(epoch):
    def stop(e, logs):
        if e == epoch:
            raise _Interrupt

    return LambdaCallback(on_epoch_end=stop)


@pytest.fixture
def deterministic():
    unidl.random.set_deterministic(True)
    try:
        yield
    finally:
        unidl.random.set_deterministic(False)


def test_backup_and_restore_resumes_exactly_after_an_interruption(backend, tmp_path,
                                                                 deterministic):
    x, y = _data()
    fit = {"batch_size": BATCH, "epochs": 5, "verbose": 0, "validation_split": 0.25}
    whole = _model(dropout=0.3)
    expected = whole.fit(x, y, **fit).history
    model = _model(dropout=0.3)
    backup = BackupAndRestore(tmp_path / "backup")
    with pytest.raises(_Interrupt):
        model.fit(x, y, callbacks=[backup, _interrupt_after(1)], **fit)
    state = json.loads((tmp_path / "backup" / "backup.json").read_text())
    assert state["epoch"] == 2 and state["deterministic"] is True
    assert sorted(os.listdir(tmp_path / "backup")) == ["backup.json", state["model_file"]]
    resumed_model = _model(dropout=0.3)  # (a fresh model, as after a restart)
    resumed = resumed_model.fit(x, y, callbacks=[backup], **fit)
    assert backup.restored_epoch == 2 and resumed.epoch == [2, 3, 4]
    assert resumed.history["loss"] == expected["loss"][2:]
    for a, b in zip(resumed_model.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "backup").exists()


def test_backup_kept_with_delete_checkpoint_false(tmp_path):
    x, y = _data()
    with unidl.use_backend("numpy"):
        model = _model()
        backup = BackupAndRestore(tmp_path, delete_checkpoint=False)
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[backup])
        assert json.loads((tmp_path / "backup.json").read_text())["epoch"] == 3
        assert sorted(os.listdir(tmp_path)) == ["backup.json", "model-epoch00003.unidl"]
        again = model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[backup])
        assert again.epoch == [] and backup.restored_epoch == 3
        more = model.fit(x, y, batch_size=BATCH, epochs=4, verbose=0, callbacks=[backup])
        assert more.epoch == [3]


def test_backup_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="save_freq must be 'epoch'"):
        BackupAndRestore(tmp_path, save_freq=10)
    with pytest.raises(ValueError, match="backup_dir"):
        BackupAndRestore("")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        BackupAndRestore(tmp_path / "file")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "backup.json").write_text("{not json")
    x, y = _data()
    with unidl.use_backend("numpy"):
        with pytest.raises(SaveFileError, match="cannot read the backup .*backup.json"):
            _model().fit(x, y, verbose=0, callbacks=[BackupAndRestore(tmp_path / "bad")])
        model = _model()
        model.fit(x, y, epochs=2, verbose=0, callbacks=[
            BackupAndRestore(tmp_path / "kept", delete_checkpoint=False)])
        unbuilt = unidl.Sequential([layers.Dense(12), layers.Dense(3)])
        unbuilt.compile("adam", "sparse_categorical_crossentropy")
        with pytest.raises(SaveFileError, match="is not built"):
            unbuilt.fit(x, y, verbose=0, callbacks=[BackupAndRestore(tmp_path / "kept")])


_KILLED_RUN = """
import os, signal
import numpy as np
import unidl
from unidl import layers

mode, backup_dir, out = (os.environ[k] for k in ("RUN_MODE", "RUN_BACKUP", "RUN_OUT"))
unidl.random.set_seed(7)
unidl.random.set_deterministic(True)
rng = np.random.default_rng(3)
x = rng.normal(size=(48, 6)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int64")
model = unidl.Sequential([layers.Dense(12, activation="relu", input_shape=(6,)),
                          layers.Dropout(0.3), layers.Dense(2, activation="softmax")])
model.compile(unidl.optimizers.Adam(0.02), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
callbacks = [] if mode == "whole" else [unidl.callbacks.BackupAndRestore(backup_dir)]
if mode == "killed":  # (after the backup of epoch 2: SIGKILL, nothing runs after it)
    callbacks.append(unidl.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: (
        os.kill(os.getpid(), signal.SIGKILL) if e == 1 else None)))
epochs = []
callbacks.append(unidl.callbacks.LambdaCallback(
    on_epoch_begin=lambda e, logs: epochs.append(e)))
model.fit(x, y, batch_size=8, epochs=5, validation_split=0.25, verbose=0,
          callbacks=callbacks)
np.savez(out, *model.get_weights(), epochs=np.array(epochs))
"""


def test_a_killed_fit_resumes_at_the_next_epoch_with_the_same_final_weights(backend, tmp_path):
    """SIGKILL after epoch 2, then the same program again: it starts at epoch 3 and ends
    with the weights of a run that was never interrupted (deterministic mode, same
    backend), bit for bit."""
    def run(mode):
        return run_python(_KILLED_RUN, env={
            "UNIDL_BACKEND": backend, "RUN_MODE": mode, "RUN_BACKUP": str(tmp_path / "b"),
            "RUN_OUT": str(tmp_path / f"{mode}.npz")})

    killed = run("killed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((tmp_path / "b" / "backup.json").read_text())["epoch"] == 2
    resumed, whole = run("resumed"), run("whole")
    assert resumed.returncode == 0 and whole.returncode == 0, resumed.stderr + whole.stderr
    got, want = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "whole.npz")
    assert got["epochs"].tolist() == [2, 3, 4] and want["epochs"].tolist() == [0, 1, 2, 3, 4]
    for key in want.files:
        if key != "epochs":
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert not (tmp_path / "b").exists()  # (deleted when the resumed fit ended)


def test_callbacks_module_keeps_its_names():
    names = textwrap.dedent("""
        Callback CallbackList History ProgbarLogger EarlyStopping ModelCheckpoint
        TerminateOnNaN LearningRateScheduler ReduceLROnPlateau CSVLogger TensorBoard
        BackupAndRestore LambdaCallback get_learning_rate set_learning_rate""").split()
    assert all(hasattr(unidl.callbacks, n) for n in names)
    assert sorted(unidl.callbacks.__all__) == sorted(names)
