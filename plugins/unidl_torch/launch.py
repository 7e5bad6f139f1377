"""``unidl launch`` on torch: ``torchrun`` (``python -m torch.distributed.run``) starts and
supervises the workers; it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``, which :class:`unidl_torch.distributed.TorchEngine` joins from.

One machine: ``torchrun --standalone`` (its own rendezvous on a free port), or the static
rendezvous at ``--master-addr/--master-port`` when a port is given. Several machines: run
``unidl launch --nnodes N --node-rank I --master-addr HOST --master-port P`` on each.

When a worker fails, torchrun stops the others at once (SIGTERM, SIGKILL after 30 s) and
prints a failure report; this launcher drops torchrun's own Python traceback, keeps the
report, and ends with one line naming the rank that failed first and its exit status (which
becomes ``unidl launch``'s status; torchrun's is always 1). Should torchrun still run
``timeout`` seconds after the failure, it is stopped with its workers. Worker output lines
are prefixed ``[rank N]`` (torchrun's ``--tee`` with a line prefix; logs in a temporary
folder, removed at the end).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib.util import find_spec

from unidl.distribute.launch import (
    KILL_GRACE,
    Interrupted,
    LaunchOptions,
    describe_status,
    exit_code,
    kill_group,
    report,
    stop_signals,
    worker_environ,
)
from unidl.errors import DistributedError

__all__ = ["launch_torch", "torchrun_command", "TorchrunOutput"]

#: torchrun's own grace between SIGTERM and SIGKILL when it stops its workers
TORCHRUN_GRACE = 30.0


def launch_torch(nproc: int, argv: list[str], options: LaunchOptions) -> int:
    """Run ``argv`` on ``nproc`` workers under torchrun; the workers' exit status."""
    if find_spec("torch") is None:
        raise DistributedError('unidl launch: torch is not installed (pip install '
                               '"unidl[torch]")')
    if options.workers:
        raise DistributedError("unidl launch: --workers is for backends configured by a list "
                               "of addresses; on torch use --master-addr and --master-port")
    if options.nnodes > 1 and options.master_port is None:
        raise DistributedError(
            f"unidl launch: torch on {options.nnodes} machines needs --master-port (and "
            "--master-addr: rank 0's machine), the same on every machine")
    with tempfile.TemporaryDirectory(prefix="unidl-launch-") as log_dir:
        env = worker_environ(options, TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE="[rank ${rank}] ")
        return _supervise(torchrun_command(argv, options, log_dir), env, options)


def torchrun_command(argv: list[str], options: LaunchOptions, log_dir: str) -> list[str]:
    """torchrun's command line for ``argv``: the workers' output teed to the console (with
    the rank prefix) and to ``log_dir``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={options.nproc}",
           "--tee=3", f"--log-dir={log_dir}", "--max-restarts=0"]
    if options.nnodes == 1 and options.master_port is None:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={options.nnodes}", f"--node-rank={options.node_rank}",
                f"--master-addr={options.master_addr}", f"--master-port={options.master_port}"]
    if options.module:
        cmd.append("--module")
    return cmd + list(argv)


def _supervise(cmd: list[str], env: dict, options: LaunchOptions) -> int:
    """Run torchrun, filter its stderr, stop it when it outlives the failure by
    ``options.timeout`` or on SIGTERM/Ctrl-C; report and return the status."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    output = TorchrunOutput()
    reader = threading.Thread(target=output.pump, args=(proc.stderr,), daemon=True)
    reader.start()
    try:
        with stop_signals():
            late = _wait(proc, output, options.timeout)
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        _stop(proc, TORCHRUN_GRACE + KILL_GRACE)
        reader.join(KILL_GRACE)
        report(f"interrupted ({signal.Signals(signum).name}): stopped torchrun and its workers")
        return 128 + signum
    reader.join(KILL_GRACE)
    return _conclude(proc.returncode, output, options, late)


def _wait(proc: subprocess.Popen, output: TorchrunOutput, timeout: float) -> bool:
    """Wait for torchrun to end; True when it was stopped ``timeout`` s after a worker
    failed (torchrun still closing its workers)."""
    while proc.poll() is None:
        failed_at = output.failed_at
        if failed_at is not None and time.monotonic() > failed_at + timeout:
            _stop(proc, KILL_GRACE)
            return True
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.2)
    return False


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """Stop torchrun: SIGTERM (it then stops its workers), and after ``grace`` seconds
    SIGKILL for torchrun and every worker (each leads its own session)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    if proc.poll() is None:
        children = _children(proc.pid)
        kill_group(proc, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        proc.wait()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc; elsewhere none)."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
    return found


def _conclude(status: int, output: TorchrunOutput, options: LaunchOptions, late: bool) -> int:
    """Print the final line; the launcher's exit status."""
    cause = output.root_cause
    if status == 0 and cause is None:
        return 0
    if cause is None and late:
        report(f"a worker failed and torchrun did not stop the others within the "
               f"{options.timeout:g} s timeout: stopped torchrun and its workers")
        return 1
    if cause is None:
        report(f"torchrun failed: {describe_status(status)} (see its messages above)")
        return exit_code(status) or 1
    stopped = (f"torchrun was stopped {options.timeout:g} s later" if late
               else "torchrun stopped the other workers")
    where = f" on {cause['host']}" if options.nnodes > 1 and cause.get("host") else ""
    report(f"worker rank {cause['rank']} (local rank {cause['local_rank']}{where}) failed "
           f"first: {describe_status(cause['exitcode'])}; {stopped}")
    return exit_code(cause["exitcode"]) or 1


#: torchrun's exceptions for a failed worker and for a signal (its traceback is dropped)
_OWN_ERRORS = ("torch.distributed.elastic.multiprocessing.errors.ChildFailedError",
               "torch.distributed.elastic.multiprocessing.api.SignalException")
#: torchrun stops the other workers before it logs the failure ("failed (exitcode: ...")
_FAILED = re.compile(r"Sending process \d+ closing signal|failed \(exitcode: -?\d+\)")
_RANK = re.compile(r"^\s*rank\s*:\s*(\d+) \(local_rank: (\d+)\)")
_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)")
_HOST = re.compile(r"^\s*host\s*:\s*(\S+)")


class TorchrunOutput:
    """torchrun's stderr, copied line by line to ours without torchrun's own Python
    traceback (of its ``ChildFailedError`` or ``SignalException``), parsed for its failure
    report.

    Attributes:
        failed_at: ``time.monotonic()`` when torchrun began stopping the workers after one
            failed (or reported the failure).
        root_cause: ``{"rank", "local_rank", "exitcode", "host"}`` of its "Root Cause
            (first observed failure)", once read.
    """

    def __init__(self):
        self.failed_at: float | None = None
        self.root_cause: dict | None = None
        self._in_cause = False
        self._traceback: list[str] | None = None

    def pump(self, stream) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
        if self._traceback:
            self._emit(self._traceback)

    def feed(self, line: str) -> None:
        """Take one line: parse it, and print it unless it is torchrun's traceback."""
        self._parse(line)
        if self._traceback is not None:
            if line.startswith((" ", "\t")):
                self._traceback.append(line)
                return
            held, self._traceback = self._traceback, None
            if line.startswith(_OWN_ERRORS):
                return
            self._emit(held)
        if line.startswith("Traceback (most recent call last):"):
            self._traceback = [line]
            return
        self._emit([line])

    def _parse(self, line: str) -> None:
        if self.failed_at is None and _FAILED.search(line):
            self.failed_at = time.monotonic()
        if "Root Cause (first observed failure)" in line:
            self._in_cause, self.root_cause = True, {}
            return
        if not self._in_cause:
            return
        for key, pattern in (("rank", _RANK), ("exitcode", _EXIT), ("host", _HOST)):
            match = pattern.search(line)
            if match and key not in self.root_cause:
                self.root_cause[key] = match.group(1) if key == "host" else int(match.group(1))
                if key == "rank":
                    self.root_cause["local_rank"] = int(match.group(2))
        if line.startswith("====="):
            self._in_cause = False
            if "rank" not in self.root_cause or "exitcode" not in self.root_cause:
                self.root_cause = None

    @staticmethod
    def _emit(lines: list[str]) -> None:
        sys.stderr.write("".join(f"{line}\n" for line in lines))
        sys.stderr.flush()
