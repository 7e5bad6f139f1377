"""``unidl launch``: start the workers of a data-parallel run on the selected backend.

The core never starts workers itself: it looks up the backend's
:class:`unidl.backend.BackendEntry` (no framework imported) and calls its ``launcher``
(``"module:function"``) as ``fn(nproc, argv, options)``. A backend without one (NumPy) has
no distributed engine, and ``unidl launch`` refuses it.

Launchers that start their own processes use :func:`spawn_workers`, a small supervisor: it
prefixes every output line with ``[rank N]``, and when a worker fails it gives the others
``timeout`` seconds to end (their collectives normally fail by themselves with
:class:`unidl.errors.DistributedError`) before it stops them, then prints one line naming
the worker that failed first.

Example:
    >>> LaunchOptions(nproc=2).master_addr
    '127.0.0.1'
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from unidl.errors import DistributedError

__all__ = ["LaunchOptions", "launch", "spawn_workers", "free_port", "free_ports",
           "worker_command", "worker_environ", "describe_status", "exit_code", "report",
           "stop_signals", "Interrupted"]

#: seconds a worker (or a launcher's helper process) gets between SIGTERM and SIGKILL
KILL_GRACE = 5.0


@dataclass(frozen=True)
class LaunchOptions:
    """How ``unidl launch`` starts the workers.

    Attributes:
        nproc: workers on this machine (one replica each).
        timeout: seconds the other workers get to end by themselves after one failed,
            before they are stopped (and how long a launcher waits for its helpers to stop).
        nnodes: machines taking part; the world has ``nnodes * nproc`` workers, and this
            machine runs ranks ``node_rank * nproc`` to ``node_rank * nproc + nproc - 1``.
        node_rank: this machine's index, ``0 <= node_rank < nnodes``.
        master_addr, master_port: where the workers meet (rank 0's machine) on backends
            with a rendezvous (torch); ``master_port=None``: a free port, on one machine only.
        workers: ``host:port`` of every worker of the world, in rank order, on backends whose
            cluster is a list of addresses (TensorFlow's ``TF_CONFIG``); empty: free
            loopback ports (one machine).
        backend: the backend's name; None: ``$UNIDL_BACKEND``, else the default backend.
        module: ``argv[0]`` is a module to run as ``python -m`` rather than a script.
    """

    nproc: int = 1
    timeout: float = 30.0
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    workers: tuple[str, ...] = ()
    backend: str | None = None
    module: bool = False

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc

    def check(self) -> None:
        """Raise :class:`DistributedError` naming the first bad option."""
        problems = [
            (self.nproc >= 1, f"--nproc must be at least 1, got {self.nproc}"),
            (self.nnodes >= 1, f"--nnodes must be at least 1, got {self.nnodes}"),
            (0 <= self.node_rank < self.nnodes,
             f"--node-rank must be in 0..{self.nnodes - 1} (--nnodes {self.nnodes}), got "
             f"{self.node_rank}"),
            (self.timeout > 0, f"--timeout must be > 0 seconds, got {self.timeout:g}"),
            (self.master_port is None or 0 < self.master_port < 65536,
             f"--master-port must be in 1..65535, got {self.master_port}"),
            (not self.workers or len(self.workers) == self.world_size,
             f"--workers lists {len(self.workers)} addresses but the world has "
             f"{self.world_size} workers (--nnodes {self.nnodes} x --nproc {self.nproc})"),
        ]
        for ok, message in problems:
            if not ok:
                raise DistributedError(f"unidl launch: {message}")
        bad = [w for w in self.workers if not _is_address(w)]
        if bad:
            raise DistributedError(f"unidl launch: --workers wants host:port addresses, got "
                                   f"{', '.join(map(repr, bad))}")


def _is_address(text: str) -> bool:
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def launch(nproc: int, argv: list[str], options: LaunchOptions | None = None) -> int:
    """Start ``nproc`` workers running ``argv`` (``[script.py, args...]``, or ``[module,
    args...]`` with ``options.module``) on the selected backend, through its entry's
    launcher; return the workers' exit status (0: all succeeded).

    Raises:
        DistributedError: bad options, a missing script, or a backend without a launcher.
        BackendNotFoundError: no installed backend has that name.
    """
    options = dataclasses.replace(options or LaunchOptions(), nproc=nproc)
    options.check()
    argv = list(argv)
    _check_program(argv, options.module)
    name, fn = _resolve_launcher(options.backend)
    options = dataclasses.replace(options, backend=name)
    return int(fn(nproc, argv, options))


def _check_program(argv: list[str], module: bool) -> None:
    if not argv or not argv[0]:
        raise DistributedError("unidl launch: no script given (unidl launch [options] "
                               "script.py [args...], or -m module [args...])")
    if module:
        from importlib.util import find_spec

        try:
            found = find_spec(argv[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise DistributedError(f"unidl launch: no module named {argv[0]!r} (-m)")
    elif not os.path.isfile(argv[0]):
        raise DistributedError(f"unidl launch: script {argv[0]!r} not found")


def _resolve_launcher(name: str | None):
    """``(backend name, launcher function)``: the entry's ``launcher`` imported; the
    framework itself is not (the launcher module imports it when it needs to)."""
    from unidl.backend.registry import backend_entries, backend_names
    from unidl.backend.state import _default_name
    from unidl.errors import BackendNotFoundError

    name = (name or "").strip() or _default_name()
    entry = backend_entries().get(name)
    if entry is None:
        raise BackendNotFoundError(f"unidl launch: unknown backend {name!r}; installed "
                                   f"backends: {', '.join(backend_names()) or 'none'}")
    if not entry.launcher:
        raise DistributedError(
            f"unidl launch: the {name!r} backend has no distributed engine; data parallelism "
            "needs a backend that has one, such as torch or tensorflow (--backend NAME or "
            "UNIDL_BACKEND=NAME)")
    module, _, attr = entry.launcher.partition(":")
    try:
        return name, getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise DistributedError(f"unidl launch: the {name!r} backend's launcher "
                               f"{entry.launcher!r} failed to load: {exc}") from None


# -- helpers for launchers --------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS's choice; another process may take it
    before it is used, which is unlikely)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free TCP ports on ``host`` (all held open while choosing)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
        return ports


def worker_command(argv: list[str], options: LaunchOptions) -> list[str]:
    """The command line of one worker: this Python, unbuffered, running the script (or
    ``-m module``) with its arguments."""
    head = [sys.executable, "-u"] + (["-m"] if options.module else [])
    return head + list(argv)


def worker_environ(options: LaunchOptions, **extra: str) -> dict[str, str]:
    """This process's environment for a worker: ``UNIDL_BACKEND`` set to the launched
    backend, output unbuffered (lines arrive as printed), plus ``extra``."""
    env = dict(os.environ)
    if options.backend:
        env["UNIDL_BACKEND"] = options.backend
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def describe_status(code: int) -> str:
    """``"exit status 3"``, or ``"killed by signal SIGKILL"`` for a negative status."""
    if code >= 0:
        return f"exit status {code}"
    try:
        return f"killed by signal {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def exit_code(code: int) -> int:
    """A worker's status as the launcher's exit status (a signal N: 128 + N, as shells)."""
    return min(code, 255) if code >= 0 else min(128 - code, 255)


def report(message: str) -> None:
    """Print one of the launcher's own lines (``unidl launch: ...``) to stderr."""
    print(f"unidl launch: {message}", file=sys.stderr, flush=True)


class Interrupted(Exception):  # noqa: N818 (it is not an error: the user stopped the run)
    """The launcher received SIGTERM (see :func:`stop_signals`)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals():
    """Within: SIGTERM raises :class:`Interrupted` (and Ctrl-C ``KeyboardInterrupt``), so
    that the launcher can stop its workers before it exits. Nothing outside the main
    thread (signals cannot be handled there)."""
    def raise_interrupted(signum, frame):
        raise Interrupted(signum)

    try:
        previous, installed = signal.signal(signal.SIGTERM, raise_interrupted), True
    except ValueError:  # not the main thread
        previous, installed = None, False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def kill_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to ``proc``'s process group (it leads one: ``start_new_session``)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_processes(procs: list[subprocess.Popen], grace: float = KILL_GRACE) -> list:
    """SIGTERM every process still running (its whole group), SIGKILL those left after
    ``grace`` seconds; return those that were still running."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        kill_group(p, signal.SIGTERM)
    end = time.monotonic() + grace
    for p in alive:
        try:
            p.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_group(p, signal.SIGKILL)
    for p in alive:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(grace)
    return alive


# -- the supervisor ---------------------------------------------------------------------------
_print_lock = threading.Lock()


class _Worker:
    """One worker process, its output pumped line by line with a ``[rank N]`` prefix, and
    a thread that reports its exit (with the time) on ``events``."""

    def __init__(self, argv, env, index, events, registry):
        self.rank = int(env.get("RANK", index))
        self.status: int | None = None
        self.stopped = False
        self.threads: list[threading.Thread] = []
        # (registered as soon as the process exists: a stop signal arriving while its
        # output threads start must stop this worker too)
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        registry.append(self)
        prefix = f"[rank {self.rank}] "
        threads = [threading.Thread(target=_pump, args=(stream, out, prefix), daemon=True)
                   for stream, out in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))]
        threads.append(threading.Thread(target=self._wait, args=(events,), daemon=True))
        for t in threads:
            t.start()
            # (listed once started: a stop signal between two starts leaves the rest
            # unstarted, and joining those would raise)
            self.threads.append(t)

    def _wait(self, events):
        self.status = self.proc.wait()
        events.put(self)


def _pump(stream, out: str, prefix: str) -> None:
    """Copy ``stream``'s lines to this process's ``out`` ("stdout"/"stderr"), prefixed."""
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with _print_lock:
                target = getattr(sys, out)
                target.write(f"{prefix}{line}\n")
                target.flush()


def spawn_workers(argv: list[str], envs: list[dict], timeout: float) -> int:
    """Run one process of ``argv`` per environment in ``envs`` (complete environments, see
    :func:`worker_environ`; the rank shown is each env's ``RANK``, else its index) until all
    end; return 0 when all succeeded, else the status of the worker that failed first.

    When a worker fails, the others get ``timeout`` seconds to end by themselves, then are
    terminated (SIGTERM, then SIGKILL); one line names the failed worker. SIGTERM or Ctrl-C
    to the launcher stops every worker (status 128 + the signal).
    """
    events: queue.Queue = queue.Queue()
    workers: list[_Worker] = []
    try:
        with stop_signals():
            for i, env in enumerate(envs):
                _Worker(argv, env, i, events, workers)
            first = _supervise(workers, events, timeout)
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        stop_processes([w.proc for w in workers])
        report(f"interrupted ({signal.Signals(signum).name}): stopped the {len(workers)} "
               "workers")
        return 128 + signum
    except OSError as exc:
        stop_processes([w.proc for w in workers])
        raise DistributedError(f"unidl launch: could not start worker {len(workers)} "
                               f"({argv[0]}): {exc}") from None
    finally:
        for w in workers:
            for t in w.threads:
                t.join(KILL_GRACE)
    if first is None:
        return 0
    report(_failure_line(first, workers, timeout))
    return exit_code(first.status)


def _supervise(workers: list[_Worker], events: queue.Queue, timeout: float):
    """Wait for the workers in exit order; the first failure starts the ``timeout`` after
    which those still running are stopped. Returns the first failed worker, or None."""
    first, deadline, pending = None, None, len(workers)
    while pending:
        wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
        try:
            worker = events.get(timeout=wait)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                break
            continue
        pending -= 1
        if worker.status != 0 and first is None:
            first, deadline = worker, time.monotonic() + timeout
    if pending:
        for w in workers:
            w.stopped = w.proc.poll() is None
        stop_processes([w.proc for w in workers])
        for w in workers:
            w.status = w.proc.wait()
    return first


def _failure_line(first: _Worker, workers: list[_Worker], timeout: float) -> str:
    others = []
    for w in sorted(workers, key=lambda w: w.rank):
        if w is first:
            continue
        if w.stopped:
            others.append(f"rank {w.rank} stopped after the {timeout:g} s timeout")
        else:
            others.append(f"rank {w.rank} {describe_status(w.status)}")
    tail = f" (others: {'; '.join(others)})" if others else ""
    return (f"worker rank {first.rank} failed first: "
            f"{describe_status(first.status)}{tail}")
