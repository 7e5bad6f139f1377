"""``unidl launch``: workers started on the selected backend's launcher (torchrun on torch,
TF_CONFIG clusters on tensorflow), ranks, failures within the timeout, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from importlib.util import find_spec

import pytest

from tests.conftest import ROOT
from unidl.cli import main as cli_main
from unidl.distribute.launch import LaunchOptions, launch, spawn_workers, worker_environ
from unidl.errors import DistributedError

HAS_TORCH = find_spec("torch") is not None  # (find_spec: importing a framework costs seconds)
HAS_TF = find_spec("tensorflow") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
needs_tf = pytest.mark.skipif(not HAS_TF, reason="tensorflow is not installed")

RANKS = """
    from unidl.distribute import world_from_env
    rank, world = world_from_env()
    print(f"rank={rank} world={world}")
"""
ALL_REDUCE = RANKS + """
    import numpy as np
    import unidl
    from unidl.distribute import DataParallel
    strategy = DataParallel(timeout=30)
    total = strategy.all_reduce(unidl.ops.convert_to_tensor([float(rank + 1)]))
    print(f"sum={float(np.asarray(total)[0]):g} on {strategy.world_size}")
"""
FAIL = RANKS + """
    import sys, time
    if rank == 1:
        sys.exit(3)
    time.sleep(60)
"""
SLEEP = """
    import os, time
    print(f"pid={os.getpid()}")
    time.sleep(60)
"""


def _script(tmp_path, body, name="worker.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _launch(*args, timeout=120):
    """``unidl launch ARGS`` in a fresh interpreter: (CompletedProcess, seconds)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]))
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "unidl", "launch", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start


# -- errors (in process: no worker starts) ----------------------------------------------------
def test_numpy_has_no_distributed_engine(tmp_path, capsys):
    script = _script(tmp_path, RANKS)
    assert cli_main(["launch", "--backend", "numpy", "--nproc", "2", script]) == 2
    err = capsys.readouterr().err
    assert "'numpy' backend has no distributed engine" in err
    assert "torch or tensorflow" in err


def test_bad_arguments_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["launch", "--nproc", "0", _script(tmp_path, RANKS)])
    assert exc.value.code == 2
    assert "--nproc: must be at least 1, got 0" in capsys.readouterr().err
    assert cli_main(["launch", "--nproc", "2", str(tmp_path / "missing.py")]) == 2
    assert "missing.py' not found" in capsys.readouterr().err
    assert cli_main(["launch", "--nproc", "2"]) == 2
    assert "no script given" in capsys.readouterr().err
    assert cli_main(["launch", "--backend", "nope", _script(tmp_path, RANKS)]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_launch_checks_its_options(tmp_path):
    script = _script(tmp_path, RANKS)
    with pytest.raises(DistributedError, match="--nproc must be at least 1"):
        launch(0, [script])
    with pytest.raises(DistributedError, match="--node-rank must be in 0..1"):
        launch(1, [script], LaunchOptions(nnodes=2, node_rank=2))
    with pytest.raises(DistributedError, match="--workers lists 1 addresses"):
        launch(2, [script], LaunchOptions(workers=("h:1",)))
    with pytest.raises(DistributedError, match="no module named"):
        launch(1, ["no_such_module_xyz"], LaunchOptions(module=True))


# -- the generic supervisor -------------------------------------------------------------------
def test_spawn_workers_names_the_first_failure_and_stops_the_rest(tmp_path, capfd):
    script = _script(tmp_path, FAIL)
    envs = [worker_environ(LaunchOptions(), RANK=str(r), WORLD_SIZE="2") for r in range(2)]
    start = time.monotonic()
    status = spawn_workers([sys.executable, script], envs, timeout=1.0)
    elapsed = time.monotonic() - start
    out, err = capfd.readouterr()
    assert status == 3
    assert elapsed < 10
    assert "[rank 0] rank=0 world=2" in out and "[rank 1] rank=1 world=2" in out
    assert ("worker rank 1 failed first: exit status 3 (others: rank 0 stopped after the "
            "1 s timeout)") in err


# -- torch (torchrun) -------------------------------------------------------------------------
@needs_torch
def test_torch_two_workers_reduce_together(tmp_path):
    done, _ = _launch("--backend", "torch", "--nproc", "2", _script(tmp_path, ALL_REDUCE))
    assert done.returncode == 0, done.stderr
    for rank in range(2):
        assert f"[rank {rank}] rank={rank} world=2" in done.stdout
        assert f"[rank {rank}] sum=3 on 2" in done.stdout


@needs_torch
def test_torch_failed_worker_is_named_within_the_timeout(tmp_path):
    done, elapsed = _launch("--backend", "torch", "--nproc", "2", "--timeout", "20",
                            _script(tmp_path, FAIL))
    assert done.returncode == 3, done.stderr
    assert elapsed < 20 + 5
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("unidl launch: worker rank 1 (local rank 1) failed first: exit status 3; "
                    "torchrun stopped the other workers")
    assert "ChildFailedError" not in done.stderr  # torchrun's own traceback is dropped


def test_torchrun_report_is_parsed():
    from unidl_torch.launch import TorchrunOutput

    report = """\
        E1203 23:41:05.902000 23771 api.py:1002] failed (exitcode: 3) local_rank: 1 (pid: 5)
        Traceback (most recent call last):
          File "<frozen runpy>", line 198, in _run_module_as_main
        torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
        ============================================================
        Failures:
        [1]:
          rank      : 0 (local_rank: 0)
          exitcode  : -15 (pid: 4)  (SIGTERM)
        ------------------------------------------------------------
        Root Cause (first observed failure):
        [0]:
          host      : node7
          rank      : 5 (local_rank: 1)
          exitcode  : 3 (pid: 5)
        ============================================================"""
    output = TorchrunOutput()
    for line in textwrap.dedent(report).splitlines():
        output.feed(line)
    assert output.failed_at is not None
    assert output.root_cause == {"rank": 5, "local_rank": 1, "exitcode": 3, "host": "node7"}


def test_torchrun_command_for_one_and_several_machines():
    from unidl_torch.launch import torchrun_command

    one = torchrun_command(["s.py", "--x"], LaunchOptions(nproc=2), "/tmp/logs")
    assert "--standalone" in one and one[-2:] == ["s.py", "--x"]
    several = torchrun_command(["pkg.mod"], LaunchOptions(
        nproc=4, nnodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29500,
        module=True), "/tmp/logs")
    assert "--standalone" not in several
    for flag in ("--nproc-per-node=4", "--nnodes=2", "--node-rank=1",
                 "--master-addr=10.0.0.1", "--master-port=29500", "--module"):
        assert flag in several


# -- tensorflow (TF_CONFIG) -------------------------------------------------------------------
@needs_tf
def test_tensorflow_two_workers_get_their_places(tmp_path):
    body = RANKS + """
    import json, os
    task = json.loads(os.environ["TF_CONFIG"])
    print(f"index={task['task']['index']} of {len(task['cluster']['worker'])}")
    """
    done, _ = _launch("--backend", "tensorflow", "--nproc", "2", _script(tmp_path, body))
    assert done.returncode == 0, done.stderr
    for rank in range(2):
        assert f"[rank {rank}] rank={rank} world=2" in done.stdout
        assert f"[rank {rank}] index={rank} of 2" in done.stdout


@needs_tf
def test_tensorflow_failed_worker_is_named_within_the_timeout(tmp_path):
    done, elapsed = _launch("--backend", "tensorflow", "--nproc", "2", "--timeout", "2",
                            _script(tmp_path, FAIL))
    assert done.returncode == 3, done.stderr
    assert elapsed < 2 + 10
    assert done.stderr.strip().splitlines()[-1] == (
        "unidl launch: worker rank 1 failed first: exit status 3 (others: rank 0 stopped "
        "after the 2 s timeout)")


def test_tensorflow_cluster_over_several_machines():
    from unidl_tensorflow.launch import cluster_addresses, worker_envs

    options = LaunchOptions(nproc=2, nnodes=2, node_rank=1,
                            workers=("a:1", "a:2", "b:1", "b:2"))
    envs = worker_envs(cluster_addresses(options), options)
    assert [e["RANK"] for e in envs] == ["2", "3"]
    config = json.loads(envs[1]["TF_CONFIG"])
    assert config == {"cluster": {"worker": ["a:1", "a:2", "b:1", "b:2"]},
                      "task": {"type": "worker", "index": 3}}
    with pytest.raises(DistributedError, match="--workers host:port"):
        cluster_addresses(LaunchOptions(nproc=2, nnodes=2))


@needs_tf
def test_tensorflow_two_workers_reduce_together(tmp_path):
    done, _ = _launch("--backend", "tensorflow", "--nproc", "2", "--timeout", "60",
                      _script(tmp_path, ALL_REDUCE), timeout=240)
    assert done.returncode == 0, done.stderr
    for rank in range(2):
        assert f"[rank {rank}] sum=3 on 2" in done.stdout


# -- stopping the launcher --------------------------------------------------------------------
@needs_tf
def test_sigterm_to_the_launcher_stops_every_worker(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "unidl", "launch", "--backend", "tensorflow",
                             "--nproc", "2", _script(tmp_path, SLEEP)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = [int(proc.stdout.readline().split("pid=")[1]) for _ in range(2)]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted (SIGTERM): stopped the 2 workers" in err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
