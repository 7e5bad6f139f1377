"""Distributed parity: 2 data-parallel workers take the same steps as one process.

For every backend whose plugin declares a launcher (``BackendEntry.launcher``: it has a
distributed engine), ``unidl launch --nproc 2`` starts two workers on this machine (torch:
gloo over loopback; TensorFlow: two workers on loopback ports), each running
:mod:`unidl_conformance.distributed_worker`: :data:`~unidl_conformance.distributed_worker.STEPS`
Adam steps of ``fit`` with a global batch of 32 (16 per worker) for an MLP, a CNN, the CNN
with per-worker and with synchronized BatchNormalization, and an LSTM. One plain process
takes the same steps on the concatenated batches (for per-worker BatchNormalization: the
mean of the per-shard gradients and statistics). Both workers' final weights must equal the
single process's within :data:`unidl.tolerances.OPTIMIZER_TOLERANCES` for float32 (a few
optimizer steps whose gradients differ only by the order of float32 sums), and each
other's exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

from unidl.backend.registry import backend_entries
from unidl.tolerances import OPTIMIZER_TOLERANCES
from unidl_conformance.cases import Case, Result
from unidl_conformance.compare import compare
from unidl_conformance.distributed_worker import MODELS, SEED

__all__ = ["distributed_cases", "run_distributed", "WORLD", "TIMEOUT"]

WORLD = 2
#: seconds for the whole 2-worker run (and for each collective in it)
TIMEOUT = 600.0

#: backend -> (output directory, error message or None): one run per backend and process
_RUNS: dict = {}


def distributed_cases(backend: str, device: str, dtypes) -> list[Case]:
    entry = backend_entries().get(backend)
    if "float32" not in dtypes or entry is None or not entry.launcher or device != "cpu":
        return []
    return [Case("distributed", backend, device, "float32", name) for name in MODELS]


def _run(backend: str):
    """Run the workers and the single process once for ``backend``: ``(directory,
    error)``."""
    if backend in _RUNS:
        return _RUNS[backend]
    out = tempfile.mkdtemp(prefix=f"unidl-distributed-{backend}-")
    env = {**os.environ, "UNIDL_BACKEND": backend}
    worker = ["-m", "unidl_conformance.distributed_worker", "--out", out]
    commands = [
        [sys.executable, "-m", "unidl", "launch", "--nproc", str(WORLD), "--backend", backend,
         "--timeout", str(int(TIMEOUT / 2)), *worker, "--role", "worker",
         "--timeout", str(TIMEOUT / 2)],
        [sys.executable, *worker, "--role", "reference", "--world", str(WORLD)],
    ]
    error = None
    for command in commands:
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            error = f"`{' '.join(command[1:4])} ...` took over {TIMEOUT:g} s"
            break
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-12:]
            error = f"`{' '.join(command[1:4])} ...` exited {done.returncode}: " + \
                " | ".join(tail)
            break
    _RUNS[backend] = (out, error)
    return _RUNS[backend]


def run_distributed(case: Case) -> Result:
    """Compare both workers' weights of the case's model with the single process's."""
    rtol, atol = OPTIMIZER_TOLERANCES["float32"]
    result = Result(case, "pass", seed=SEED, rtol=rtol, atol=atol)
    out, error = _run(case.backend)
    if error is not None:
        result.status, result.message = "fail", f"{case.target}: {error}"
        return result
    try:
        expected = _weights(out, f"{case.target}-reference")
        ranks = [_weights(out, f"{case.target}-rank{r}") for r in range(WORLD)]
    except OSError as exc:
        result.status, result.message = "fail", f"{case.target}: no weights file: {exc}"
        return result
    got = np.concatenate(ranks[0])
    cmp = compare(got, np.concatenate(expected), rtol, atol)
    result.ratio, result.max_abs, result.max_rel = cmp.ratio, cmp.max_abs, cmp.max_rel
    differ = [r for r in range(1, WORLD) if not np.array_equal(np.concatenate(ranks[r]), got)]
    if differ:
        result.status = "fail"
        result.message = f"{case.target}: the weights of rank(s) {differ} differ from rank 0's"
    elif not cmp.ok:
        result.status = "fail"
        result.message = (f"{case.target}: the {WORLD} workers' weights differ from one "
                          f"process's on the concatenated batches at {cmp.message}")
    return result


def _weights(out: str, stem: str) -> list:
    with np.load(os.path.join(out, f"{stem}.npz")) as f:
        return [f[k].astype("float64").ravel() for k in sorted(f.files)]
