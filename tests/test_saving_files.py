"""Nothing lost, nothing hidden: damaged ``.unidl`` files give errors that say what is wrong,
writes are atomic (a process killed mid-save leaves the old file loadable), and a run saved
mid-training resumes on the curve it was on."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS, ROOT
from unidl import layers, saving
from unidl.tolerances import TRAINING_RTOL


def _model():
    model = unidl.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)),
                              layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    return model


@pytest.fixture
def saved(tmp_path):
    with unidl.use_backend("numpy"):
        path = tmp_path / "m.unidl"
        _model().save(path)
    return path


def _rewrite(path, change):
    """Rewrite the archive at ``path`` with ``change(members)`` applied."""
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def _load_error(path):
    with unidl.use_backend("numpy"), pytest.raises(saving.SaveFileError) as info:
        unidl.load_model(path)
    assert repr(str(path)) in str(info.value)
    return str(info.value)


def test_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _load_error(saved)


def test_corrupted_bytes(saved):
    data = bytearray(saved.read_bytes())
    start = data.find(b'"format_version"')
    data[start + 2: start + 8] = b"XXXXXX"  # inside config.json: its CRC no longer matches
    saved.write_bytes(bytes(data))
    assert "corrupt" in _load_error(saved)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "x.unidl"
    path.write_bytes(b"\x80\x04garbage that is not a zip archive")
    assert "not a unidl model file" in _load_error(path)
    path.write_bytes(b"")
    assert "is empty" in _load_error(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other.txt", "hello")
    assert "without config.json" in _load_error(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        unidl.load_model(tmp_path / "none.unidl")


def test_newer_format_version(saved):
    def bump(members):
        config = json.loads(members["config.json"])
        config["format_version"] = saving.FORMAT_VERSION + 1
        config["unidl_version"] = "9.0.0"
        members["config.json"] = json.dumps(config).encode()

    _rewrite(saved, bump)
    message = _load_error(saved)
    assert "format version 2" in message and "9.0.0" in message and "upgrade unidl" in message


def test_wrong_architecture(saved):
    def widen(members):
        config = json.loads(members["config.json"])
        config["model"]["config"]["layers"][0]["config"]["units"] = 5
        members["config.json"] = json.dumps(config).encode()

    _rewrite(saved, widen)
    message = _load_error(saved)
    assert "do not fit its architecture" in message and "(3, 5)" in message \
        and "(3, 4)" in message, message


def test_damaged_weights_member(saved):
    def cut(members):
        members["model.weights.safetensors"] = members["model.weights.safetensors"][:40]

    _rewrite(saved, cut)
    assert "model.weights.safetensors" in _load_error(saved)


def test_unknown_class_in_the_file(saved):
    def rename(members):
        config = json.loads(members["config.json"])
        config["model"]["config"]["layers"][0]["registered_name"] = "mypkg>MyDense"
        members["config.json"] = json.dumps(config).encode()

    _rewrite(saved, rename)
    assert "'mypkg>MyDense'" in _load_error(saved)


def test_wrong_extension(tmp_path):
    with unidl.use_backend("numpy"), pytest.raises(saving.SaveFileError, match=r"\.unidl"):
        _model().save(tmp_path / "m.h5")


# -- atomic writes ---------------------------------------------------------------------------------
_SAVER = """
import sys
import numpy as np
import unidl
from unidl import layers

unidl.set_backend("numpy")
model = unidl.Sequential([layers.Dense(1500, input_shape=(1500,)), layers.Dense(1500)])
path = sys.argv[1]
for i in range(10**6):
    model.set_weights([np.full(w.shape, float(i), "float32") for w in model.weights])
    print("saving", i, flush=True)
    model.save(path)
"""


def test_a_kill_during_save_leaves_the_old_file_whole(tmp_path):
    """SIGKILL at several moments while the model is rewritten over its last file: whatever
    the moment, the file on disk loads and holds one complete version of the weights."""
    path = tmp_path / "big.unidl"
    script = tmp_path / "saver.py"
    script.write_text(textwrap.dedent(_SAVER))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for delay in (0.05, 0.2, 0.35):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)
        try:
            while True:  # wait until a first save has finished and a second has started
                line = proc.stdout.readline()
                assert line, "the saver stopped early"
                if line.startswith("saving") and int(line.split()[1]) >= 1:
                    break
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        with unidl.use_backend("numpy"):
            values = {float(v) for w in unidl.load_model(path).get_weights()
                      for v in np.unique(w)}
        assert len(values) == 1, values  # one version, never half of two


_PAUSED = """
import os, sys, time
import numpy as np
import unidl
from unidl import layers
from unidl.saving import files

unidl.set_backend("numpy")
model = unidl.Sequential([layers.Dense(300, input_shape=(300,))])
model.set_weights([np.full(w.shape, 2.0, "float32") for w in model.weights])
real_fsync = files.os.fsync


def paused_fsync(fd):  # the new file's bytes are written: stop here until killed
    real_fsync(fd)
    print("in-fsync", flush=True)
    time.sleep(60)


files.os.fsync = paused_fsync
model.save(sys.argv[1])
"""


def test_a_kill_after_the_bytes_are_written_but_before_the_rename(tmp_path):
    path = tmp_path / "m.unidl"
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([layers.Dense(300, input_shape=(300,))])
        model.set_weights([np.full(w.shape, 1.0, "float32") for w in model.weights])
        model.save(path)
    script = tmp_path / "paused.py"
    script.write_text(textwrap.dedent(_PAUSED))
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert proc.stdout.readline().strip() == "in-fsync"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with unidl.use_backend("numpy"):
        weights = unidl.load_model(path).get_weights()
    assert all((w == 1.0).all() for w in weights)  # the old file, whole
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".unidl-tmp-")]
    assert len(leftovers) == 1  # the unfinished new file: never under the final name


# -- resuming training -----------------------------------------------------------------------------
_RUN = """
import json, sys
import numpy as np
import unidl
from unidl import layers

backend, start, stop, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
unidl.set_backend(backend)
unidl.random.set_deterministic(True)
rng = np.random.default_rng(0)
x = rng.random((64, 8, 8)).astype("float32")
y = rng.integers(0, 10, 64)
if start == 0:
    unidl.random.set_seed(0)
    model = unidl.Sequential([layers.Flatten(input_shape=(8, 8)),
                              layers.Dense(32, activation="relu"), layers.Dropout(0.2),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
else:
    model = unidl.load_model(path)
losses = []
for step in range(start, stop):
    idx = unidl.random.permutation(64)[:16]  # the host generator: batch order continues too
    losses.append(float(model.train_on_batch(x[idx], y[idx])))
if path and start == 0:
    model.save(path)
print("LOSSES", json.dumps(losses))
"""


def _losses(tmp_path, backend, start, stop, path=""):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_RUN))
    proc = subprocess.run([sys.executable, str(script), backend, str(start), str(stop),
                           str(path)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("LOSSES "))
    return json.loads(line[len("LOSSES "):])


@pytest.mark.parametrize("backend", BACKENDS)
def test_resumed_run_repeats_the_uninterrupted_loss_curve(tmp_path, backend):
    full = _losses(tmp_path, backend, 0, 20)
    path = tmp_path / "mid.unidl"
    first = _losses(tmp_path, backend, 0, 10, path)
    second = _losses(tmp_path, backend, 10, 20, path)
    assert first + second == full  # exactly: same backend, deterministic mode
    for other in BACKENDS:
        if other != backend:
            moved = _losses(tmp_path, other, 10, 20, path)
            np.testing.assert_allclose(moved, full[10:], rtol=TRAINING_RTOL)
            break
