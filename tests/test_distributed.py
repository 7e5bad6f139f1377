"""Data-parallel training (unidl.distribute): the API, sharding, faults and resuming.

The 2-worker runs start real worker processes that join the framework's own process group
on loopback (torch: gloo; TensorFlow: MultiWorkerMirroredStrategy); the parity of their
weights with one process is the conformance suite's ``distributed`` check.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import unidl
from unidl.distribute import DataParallel, DistributedError, world_from_env
from unidl.distribute.replicas import ShardedAdapter, shard_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = [pytest.param("torch", id="torch"), pytest.param("tensorflow", id="tensorflow")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_envs(backend: str, world: int) -> list[dict]:
    """The environment the launcher gives each worker (written out here, so these tests
    exercise the engines without the launcher)."""
    base = {**os.environ, "UNIDL_BACKEND": backend, "PYTHONUNBUFFERED": "1"}
    if backend == "torch":
        port = _free_port()
        return [{**base, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world),
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)} for r in range(world)]
    hosts = [f"localhost:{_free_port()}" for _ in range(world)]
    return [{**base, "RANK": str(r), "WORLD_SIZE": str(world), "TF_CONFIG": json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": r}})}
        for r in range(world)]


def _needs(backend):
    import importlib.util

    if importlib.util.find_spec(backend) is None:  # (not imported here: workers do that)
        pytest.skip(f"{backend} is not installed")


#: the worker program: an MLP trained for EPOCHS epochs under DataParallel; a worker whose
#: rank is DIE_RANK exits abruptly when epoch DIE_EPOCH begins (as a killed process).
SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import unidl
    from unidl import layers
    from unidl.distribute import DataParallel

    out, epochs = sys.argv[1], int(sys.argv[2])
    die_rank, die_epoch = int(os.environ.get("DIE_RANK", -1)), int(os.environ.get("DIE_EPOCH", -1))
    unidl.random.set_seed(7)
    strategy = DataParallel(timeout=float(os.environ.get("DP_TIMEOUT", "30")))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 12)).astype("float32")
    y = rng.integers(0, 3, 96)

    class Die(unidl.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if strategy.rank == die_rank and epoch == die_epoch:
                os.kill(os.getpid(), 9)

    with strategy.scope():
        model = unidl.Sequential([layers.Dense(8, activation="relu", input_shape=(12,)),
                                  layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [Die()]
    if os.environ.get("BACKUP"):
        callbacks.append(unidl.callbacks.BackupAndRestore(os.environ["BACKUP"]))
    if os.environ.get("SOURCE") == "dataset":  # (a unidl.data pipeline: 96 = 3 batches of 30 + 6)
        data = unidl.data.Dataset.from_tensor_slices((x, y)).shuffle(96, seed=1).batch(30)
        history = model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
    else:
        history = model.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0,
                            callbacks=callbacks)
    np.savez(os.path.join(out, f"rank{strategy.rank}.npz"), *model.get_weights(),
             loss=np.array(history.history["loss"]))
    print("DONE", strategy.rank, flush=True)
""")


def _launch(backend, tmp_path, epochs, extra_env=None, world=2, wait=120):
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    procs = [subprocess.Popen([sys.executable, str(script), str(out), str(epochs)],
                              env={**env, **(extra_env or {})}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=REPO)
             for env in _worker_envs(backend, world)]
    start = time.monotonic()
    outputs = [p.communicate(timeout=wait)[0] for p in procs]
    return [p.returncode for p in procs], outputs, time.monotonic() - start, out


@pytest.mark.parametrize("backend,source", [("torch", "arrays"), ("tensorflow", "arrays"),
                                            ("torch", "dataset")])
def test_two_workers_match_each_other_and_one_process(backend, source, tmp_path):
    """Arrays, and a unidl.data.Dataset whose last batch (6 samples) splits 3 + 3."""
    _needs(backend)
    codes, outputs, _, out = _launch(backend, tmp_path, epochs=2, extra_env={"SOURCE": source})
    assert codes == [0, 0], outputs
    ranks = [np.load(out / f"rank{r}.npz") for r in range(2)]
    for key in ranks[0].files:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    single = tmp_path / "single"
    single.mkdir()
    env = {**os.environ, "UNIDL_BACKEND": backend, "SOURCE": source}
    subprocess.run([sys.executable, str(tmp_path / "worker.py"), str(single), "2"], env=env,
                   check=True, capture_output=True, cwd=REPO)
    one = np.load(single / "rank0.npz")
    for key in one.files:  # (the same seed, batches and steps: the same training)
        np.testing.assert_allclose(ranks[0][key], one[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ENGINES)
def test_a_killed_worker_ends_the_other_with_a_clear_error(backend, tmp_path):
    _needs(backend)
    codes, outputs, elapsed, _ = _launch(backend, tmp_path, epochs=4,
                                         extra_env={"DIE_RANK": "1", "DIE_EPOCH": "2",
                                                    "DP_TIMEOUT": "20"})
    assert codes[1] != 0
    assert codes[0] != 0, outputs[0]
    assert "DistributedError" in outputs[0] and "rank 0 of 2" in outputs[0], outputs[0]
    assert "DONE" not in outputs[0]
    assert elapsed < 60, f"the survivor took {elapsed:.0f} s to fail (timeout 20 s)"


@pytest.mark.parametrize("backend", ENGINES)
def test_resuming_from_the_backup_continues_the_run(backend, tmp_path):
    _needs(backend)
    full = tmp_path / "full"
    full.mkdir()
    codes, outputs, _, out = _launch(backend, full, epochs=4)
    assert codes == [0, 0], outputs
    backup = str(tmp_path / "backup")
    part = tmp_path / "part"
    part.mkdir()
    codes, outputs, _, _ = _launch(backend, part, epochs=4, extra_env={
        "DIE_RANK": "1", "DIE_EPOCH": "2", "DP_TIMEOUT": "20", "BACKUP": backup})
    assert codes[1] != 0 and codes[0] != 0
    assert json.load(open(os.path.join(backup, "backup.json")))["epoch"] == 2
    codes, outputs, _, resumed = _launch(backend, part, epochs=4, extra_env={"BACKUP": backup})
    assert codes == [0, 0], outputs
    done, again = np.load(out / "rank0.npz"), np.load(resumed / "rank0.npz")
    assert len(again["loss"]) == 2  # (epochs 3 and 4 only)
    for key in done.files:
        if key != "loss":
            np.testing.assert_allclose(again[key], done[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again["loss"], done["loss"][2:], rtol=1e-5)


# -- in one process ----------------------------------------------------------------------------
def test_numpy_says_data_parallelism_needs_another_backend():
    with unidl.use_backend("numpy"):
        with pytest.raises(DistributedError, match="torch.*tensorflow"):
            DataParallel()


def test_one_process_is_a_group_of_one():
    pytest.importorskip("torch")
    with unidl.use_backend("torch"):
        strategy = DataParallel()
        assert (strategy.rank, strategy.world_size, strategy.is_chief) == (0, 1, True)
        with strategy.scope():
            model = unidl.Sequential([unidl.layers.Dense(2, input_shape=(3,))])
            model.compile("sgd", "mse")
        assert model._distribution is strategy
        model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), verbose=0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="timeout"):
        DataParallel(timeout=0)
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([unidl.layers.Dense(2, input_shape=(3,))])
        with pytest.raises(TypeError, match="distribution"):
            model.compile("sgd", "mse", distribution="mirrored")


def test_world_from_the_launchers_environment():
    assert world_from_env({"RANK": "1", "WORLD_SIZE": "4"}) == (1, 4)
    config = {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"index": 2}}
    assert world_from_env({"TF_CONFIG": json.dumps(config)}) == (2, 3)
    assert world_from_env({}) == (0, 1)


@pytest.mark.parametrize("n,world", [(10, 2), (10, 3), (7, 4), (2, 3), (32, 2)])
def test_shards_cover_every_row_once_and_pad_evenly(n, world):
    class Source:
        def epoch(self):
            yield np.arange(n), np.arange(n) * 10, None

    with unidl.use_backend("numpy"):
        parts = [next(iter(ShardedAdapter(Source(), r, world).epoch())) for r in range(world)]
    sizes = {len(x) for x, _, _ in parts}
    assert len(sizes) == 1  # (equal parts: the mean of the gradients is the batch's)
    rows = np.concatenate([np.asarray(x) for x, _, _ in parts])
    assert set(rows.tolist()) == set(range(n))
    assert len(rows) - n < world
    for x, y, _ in parts:
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x) * 10)
    assert shard_rows(n, 0, world).start == 0


def test_only_the_chief_runs_the_writing_callbacks():
    from unidl.callbacks import CallbackList, CSVLogger, ModelCheckpoint

    class Strategy:
        is_chief = False

    class FakeModel:
        _distribution = Strategy()

    keep = unidl.callbacks.LambdaCallback()
    cbs = CallbackList([keep, CSVLogger("x.csv"), ModelCheckpoint("m.weights.safetensors")],
                       model=FakeModel(), verbose=1)
    assert cbs.callbacks == [keep]


OVERLAP = textwrap.dedent("""
    import traceback
    import numpy as np
    import unidl
    from unidl import layers
    from unidl.distribute import DataParallel
    import unidl_torch.distributed as engine

    started = []
    launch = engine._OverlappedStep._launch_ready

    def recorded(self):
        before = self.launched
        launch(self)
        if self.launched > before:
            inside = any(f.name == "ready" for f in traceback.extract_stack())
            started.append("backward" if inside else "after")

    engine._OverlappedStep._launch_ready = recorded
    unidl.random.set_seed(1)
    strategy = DataParallel(timeout=30, bucket_mb=0.01)
    x = np.random.default_rng(0).normal(size=(64, 20)).astype("float32")
    y = np.arange(64) % 3
    with strategy.scope():
        model = unidl.Sequential([unidl.Input((20,)), layers.Dense(64, activation="relu"),
                                  layers.Dense(64, activation="relu"),
                                  layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    print("STARTED", started)
""")


def test_torch_buckets_start_during_the_backward_pass(tmp_path):
    """As DDP: with 10 KB buckets the MLP's gradients make 3 buckets per step, each started
    from the gradient hooks while the backward pass still runs (2 steps: 6 buckets)."""
    _needs("torch")
    script = tmp_path / "overlap.py"
    script.write_text(OVERLAP)
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=REPO)
             for env in _worker_envs("torch", 2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for out in outputs:
        assert "STARTED ['backward', 'backward', 'backward', 'backward', 'backward', " \
               "'backward']" in out, out
