"""``unidl serve`` against ``model.predict`` in-process: requests per second and p50/p99 latency.

    python benchmarks/serve.py [--backend NAME] [--requests N] [--clients C] [--batch B]

The model is the README's MLP on 8x8 digits (Flatten-Dense(128, relu)-Dense(10, softmax)),
saved with ``model.save`` and served by ``unidl serve`` in a subprocess on 127.0.0.1: without
server-side batching (``--max-batch-size 1``), with the default batching that never waits
(``--max-batch-size 32 --batch-timeout-ms 0``: a batch is what queued during the previous
prediction) and with a 2 ms window (``--batch-timeout-ms 2``). Every request carries the same ``B``
samples as the in-process ``model.predict(x)`` it is compared with. Each scenario runs ``N``
requests per client, with 1 client and with ``C`` concurrent clients (threads, one keep-alive
connection each, JSON encoded ahead, answers parsed); in-process, ``C`` threads call
``model.predict`` on the same model. Clients, server and in-process calls share this
machine's cores. Latency is per request (send to parsed answer); requests/s is total
requests / wall time. The first answer of each server is checked against ``model.predict``.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_model(backend: str):
    """The README's MLP on 8x8 inputs, on ``backend``, with fixed weights."""
    import unidl
    from unidl import layers

    unidl.set_backend(backend)
    unidl.random.set_seed(0)
    return unidl.Sequential([layers.Flatten(input_shape=(8, 8)),
                             layers.Dense(128, activation="relu"),
                             layers.Dense(10, activation="softmax")])


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_clients(call, clients: int, requests: int) -> tuple[float, list]:
    """Run ``call(client_index, request_index)`` ``requests`` times in each of ``clients``
    threads started together; (wall seconds, per-request latencies in seconds)."""
    latencies = [[] for _ in range(clients)]
    errors = []
    barrier = threading.Barrier(clients + 1)

    def worker(c):
        barrier.wait()
        try:
            for i in range(requests):
                t0 = time.perf_counter()
                call(c, i)
                latencies[c].append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - reported after the run
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    return wall, [x for lat in latencies for x in lat]


class Server:
    """``unidl serve`` in a subprocess (stderr to a file) on a free port."""

    def __init__(self, model_file: str, backend: str, options: list, log_path: str):
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unidl", "serve", model_file, "--port", "0", "--name", "m",
             "--backend", backend, *options],
            stdout=subprocess.DEVNULL, stderr=self.log, cwd=ROOT)
        self.port = self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                found = re.search(r"http://127\.0\.0\.1:(\d+)/", f.read())
            if found:
                return int(found.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        with open(self.log_path) as f:
            raise RuntimeError(f"unidl serve did not start:\n{f.read()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.log.close()
        return code


def measure_server(port: int, bodies: list, clients: int, requests: int, expected):
    """(wall s, latencies) of ``clients`` x ``requests`` predict requests to ``port``."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=120)
             for _ in range(clients)]
    headers = {"Content-Type": "application/json"}

    def call(c, i):
        conn = conns[c]
        conn.request("POST", "/v1/models/m:predict", bodies[(c * requests + i) % len(bodies)],
                     headers)
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {answer}")
        return answer

    first = np.asarray(call(0, 0)["predictions"], dtype=np.float32)
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    for c in range(clients):  # warm-up: connections open, every client once
        for i in range(5):
            call(c, i)
    try:
        return run_clients(call, clients, requests)
    finally:
        for conn in conns:
            conn.close()


def measure_in_process(model, inputs: list, clients: int, requests: int):
    """(wall s, latencies) of ``clients`` threads calling ``model.predict`` ``requests``
    times each on the same inputs the requests carry."""
    import unidl

    backend = unidl.backend_name()

    def call(c, i):
        with unidl.use_backend(backend):
            model.predict(inputs[(c * requests + i) % len(inputs)], verbose=0)

    for i in range(20):
        call(0, i)
    return run_clients(call, clients, requests)


def row(label: str, clients: int, wall: float, latencies: list) -> list:
    return [label, str(clients), str(len(latencies)), f"{len(latencies) / wall:,.0f}",
            f"{percentile(latencies, 50) * 1e3:.2f}", f"{percentile(latencies, 99) * 1e3:.2f}"]


def print_table(rows: list) -> None:
    header = ["", "clients", "requests", "requests/s", "p50 ms", "p99 ms"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=os.environ.get("UNIDL_BACKEND", "numpy"))
    p.add_argument("--requests", type=int, default=500, help="requests per client (500)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    p.add_argument("--batch", type=int, default=1, help="samples per request (1)")
    args = p.parse_args(argv)

    model = build_model(args.backend)
    rng = np.random.default_rng(0)
    inputs = [rng.random((args.batch, 8, 8), dtype=np.float32) for _ in range(64)]
    bodies = [json.dumps({"instances": x.tolist()}).encode() for x in inputs]
    expected = model.predict(inputs[0])
    rows = []
    for clients in (1, args.clients):
        wall, lat = measure_in_process(model, inputs, clients, args.requests)
        rows.append(row("in-process `model.predict`", clients, wall, lat))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mlp.unidl")
        model.save(path)
        for label, options in [("server, batching off (`--max-batch-size 1`)",
                                ["--max-batch-size", "1"]),
                               ("server, batching on (32, 0 ms: the default)", []),
                               ("server, batching on (32, 2 ms)",
                                ["--batch-timeout-ms", "2"])]:
            server = Server(path, args.backend, options, os.path.join(tmp, "serve.log"))
            try:
                for clients in (1, args.clients):
                    wall, lat = measure_server(server.port, bodies, clients, args.requests,
                                               expected)
                    rows.append(row(label, clients, wall, lat))
            finally:
                code = server.stop()
            if code != 0:
                print(f"warning: unidl serve exited with {code}", file=sys.stderr)
    print(f"backend {args.backend}, {args.batch} sample(s) of 8x8 per request, "
          f"{os.cpu_count()} CPU core(s)\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
