"""``unidl serve``: TF Serving's REST API over a unidl model (status, metadata, predict in the
row and columnar formats), request validation (every bad request a 4xx with a message, the
server serving on), batching of concurrent requests, and the command: 8 concurrent clients,
SIGTERM with requests in flight, the request log."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import unidl
from unidl import layers
from unidl.serving.batching import Batcher
from unidl.serving.validation import RequestError, TensorSpec, to_array

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from unidl.serving import create_app  # noqa: E402

ROWS = 8
#: batched and single predictions agree to float32 rounding (BLAS sums in another order)
TOL = {"rtol": 1e-5, "atol": 1e-6}
STATUS = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                    "status": {"error_code": "OK", "error_message": ""}}]}
LOG_LINE = re.compile(r"^\S+Z method=(GET|POST) path=(\S+) status=(\d{3}) "
                      r"latency_ms=\d+\.\d\d rows=(\d+|-) batch=(\d+|-)$")


def _mlp(seed: int = 0):
    """The README's MLP on 8x8 digits (untrained; its weights drawn from ``seed``)."""
    unidl.random.set_seed(seed)
    return unidl.Sequential([layers.Flatten(input_shape=(8, 8)),
                             layers.Dense(32, activation="relu"),
                             layers.Dense(10, activation="softmax")])


def _samples(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 8, 8)).astype("float32")


class Client:
    """A keep-alive HTTP/1.1 connection; ``request`` returns (status, parsed JSON or text,
    headers)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        text = resp.read().decode("utf-8")
        if resp.getheader("connection", "").lower() == "close":
            self.reconnect()
        try:
            return resp.status, json.loads(text), dict(resp.getheaders())
        except ValueError:
            return resp.status, text, dict(resp.getheaders())

    def predict(self, x, path="/v1/models/m:predict"):
        status, answer, _ = self.request("POST", path, {"instances": np.asarray(x).tolist()})
        assert status == 200, answer
        return np.asarray(answer["predictions"], dtype="float32")

    def reconnect(self):
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def close(self):
        self.conn.close()


@contextlib.contextmanager
def live(app):
    """``app`` under uvicorn in a thread of this process, on a free port; yields a Client."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    client = Client(server.servers[0].sockets[0].getsockname()[1])
    try:
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(60)


@pytest.fixture
def served(backend):
    """(model, client) for the MLP served in-process as ``m`` on each installed backend."""
    model = _mlp()
    with live(create_app(model, name="m")) as client:
        yield model, client


# -- status, metadata, predict: every backend -------------------------------------------------
def test_status_metadata_and_health(served):
    _, client = served
    assert client.request("GET", "/v1/models/m")[:2] == (200, STATUS)
    assert client.request("GET", "/v1/models/m/versions/1")[:2] == (200, STATUS)
    assert client.request("GET", "/healthz")[0] == 200
    assert client.request("GET", "/v1/health")[0] == 200
    status, meta, _ = client.request("GET", "/v1/models/m/metadata")
    assert status == 200 and meta["model_spec"] == {"name": "m", "signature_name": "",
                                                    "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (spec,) = sig["inputs"].values()
    assert spec["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in spec["tensor_shape"]["dim"]] == ["-1", "8", "8"]
    (out,) = sig["outputs"].values()
    assert [d["size"] for d in out["tensor_shape"]["dim"]] == ["-1", "10"]


def test_predict_row_and_columnar_formats_equal_model_predict(served):
    model, client = served
    x = _samples(3)
    want = model.predict(x)
    np.testing.assert_allclose(client.predict(x), want, **TOL)
    np.testing.assert_allclose(client.predict(x[:1], "/v1/models/m/versions/1:predict"),
                               want[:1], **TOL)
    status, answer, headers = client.request("POST", "/v1/models/m:predict", {
        "signature_name": "serving_default", "inputs": x.tolist()})
    assert status == 200 and headers["content-type"] == "application/json"
    np.testing.assert_allclose(np.asarray(answer["outputs"], "float32"), want, **TOL)
    status, answer, _ = client.request("POST", "/v1/models/m:predict",
                                       {"instances": [{"x": s} for s in x.tolist()]})
    assert status == 200  # a single-input model takes its one input under any name
    np.testing.assert_allclose(np.asarray(answer["predictions"], "float32"), want, **TOL)
    ints = np.arange(64).reshape(1, 8, 8) % 3  # JSON integers for a float input
    np.testing.assert_allclose(client.predict(ints), model.predict(ints.astype("float32")),
                               **TOL)


def _row(value=0.5):
    return [[value] * 8 for _ in range(8)]


def _with(value, i=2, j=3):
    """One sample whose element [i][j] is ``value``."""
    sample = _row()
    sample[i][j] = value
    return {"instances": [_row(), sample]}


BAD_REQUESTS = [  # (method, path, body, status, what the message must say)
    ("POST", "/v1/models/m:predict", b"", 400, "the request body is empty"),
    ("POST", "/v1/models/m:predict", b'{"instances": [', 400, "not valid JSON"),
    ("POST", "/v1/models/m:predict", b"\xff\xfe", 400, "not UTF-8"),
    ("POST", "/v1/models/m:predict", b"[" * 100_000, 400, "nested too deeply"),
    ("POST", "/v1/models/m:predict", [1, 2], 400, "must be a JSON object"),
    ("POST", "/v1/models/m:predict", {}, 400, 'needs "instances"'),
    ("POST", "/v1/models/m:predict", {"instance": [_row()]}, 400, "unknown key 'instance'"),
    ("POST", "/v1/models/m:predict", {"instances": [_row()], "inputs": [_row()]}, 400,
     'both "instances" and "inputs"'),
    ("POST", "/v1/models/m:predict", {"instances": []}, 400, '"instances" is empty'),
    ("POST", "/v1/models/m:predict", {"instances": 3}, 400,
     '"instances" must be a list with one entry per sample, got the number 3'),
    ("POST", "/v1/models/m:predict", {"instances": [_row(), _row()[:7]]}, 400,
     "instances[1] has 7 elements but instances[0] has 8 elements"),
    ("POST", "/v1/models/m:predict", _with([1.0, 2.0]), 400,
     "instances[1][2][3] is a list of 2 elements but instances[0][0][0] has no list"),
    ("POST", "/v1/models/m:predict", {"instances": [[[0.5] * 7] * 8]}, 400,
     "expected samples of shape (8, 8) for input 'input"),
    ("POST", "/v1/models/m:predict", {"instances": [[[0.5] * 7] * 8]}, 400,
     "got 1 sample(s) of shape (8, 7)"),
    ("POST", "/v1/models/m:predict", {"inputs": [0.5] * 64}, 400,
     "inputs: expected samples of shape (8, 8)"),
    ("POST", "/v1/models/m:predict", _with("a"), 400,
     'instances[1][2][3]: expected a number (input \'input'),
    ("POST", "/v1/models/m:predict", _with("a"), 400, 'got the string "a"'),
    ("POST", "/v1/models/m:predict", _with(True), 400, "got true (a boolean)"),
    ("POST", "/v1/models/m:predict", _with(None), 400, "got null"),
    ("POST", "/v1/models/m:predict", _with({"b64": "AA=="}), 400, "got an object"),
    ("POST", "/v1/models/m:predict", json.dumps(_with(0.5)).replace("0.5", "NaN", 1), 400,
     "instances[0][0][0]: NaN is not a finite float32 number"),
    ("POST", "/v1/models/m:predict", _with(1e39), 400,
     "instances[1][2][3]: 1e+39 is not a finite float32 number"),
    ("POST", "/v1/models/m:predict", {"signature_name": "other", "instances": [_row()]}, 400,
     "signature_name 'other' not found"),
    ("POST", "/v1/models/m:predict", {"inputs": {"a": [_row()], "b": [_row()]}}, 400,
     "missing input 'input"),
    ("POST", "/v1/models/m:classify", {"instances": [_row()]}, 400, "':classify' is not"),
    ("POST", "/v1/models/other:predict", {"instances": [_row()]}, 404,
     "model 'other' not found; this server serves 'm'"),
    ("GET", "/v1/models/other", None, 404, "model 'other' not found"),
    ("GET", "/v1/models/m/versions/2", None, 404, "has no version '2'"),
    ("POST", "/v1/models/m/versions/2:predict", {"instances": [_row()]}, 404,
     "has no version '2'"),
    ("GET", "/v1/nothing", None, 404, "no endpoint /v1/nothing"),
    ("GET", "/v1/models/m:predict", None, 405, "takes POST, not GET"),
    ("POST", "/v1/models/m", b"{}", 405, "does not take POST"),
]


def test_bad_requests_get_4xx_with_a_message_and_the_server_keeps_serving(served):
    model, client = served
    x = _samples(1)
    for method, path, body, status, message in BAD_REQUESTS:
        got, answer, headers = client.request(method, path, body)
        where = f"{method} {path} {str(body)[:60]}"
        assert got == status, (where, answer)
        assert isinstance(answer, dict) and set(answer) == {"error"}, (where, answer)
        assert message in answer["error"], (where, answer)
        assert "Traceback" not in answer["error"] and "File \"" not in answer["error"]
        assert headers["content-type"] == "application/json"
        if status == 405:
            allowed = {"POST"} if path.endswith(":predict") else {"GET", "HEAD"}
            assert set(headers["allow"].split(", ")) == allowed
        np.testing.assert_allclose(client.predict(x), model.predict(x), **TOL)


# -- limits, structure, batching: one backend ---------------------------------------------
def test_too_large_bodies_get_413_by_length_and_while_streaming():
    with unidl.use_backend("numpy"):
        app = create_app(_mlp(), name="m", max_body_bytes=1000)
    with live(app) as client:
        status, answer, _ = client.request("POST", "/v1/models/m:predict", b" " * 5000)
        assert status == 413 and "5000 bytes, over the limit of 1000 bytes" in answer["error"]
        client.reconnect()

        def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(10):
                yield b" " * 400

        client.conn.request("POST", "/v1/models/m:predict", body=chunks(),
                            encode_chunked=True)
        resp = client.conn.getresponse()
        assert resp.status == 413 and b"over the limit of 1000 bytes" in resp.read()
        client.reconnect()
        assert client.request("GET", "/healthz")[0] == 200


def test_a_model_with_named_inputs_and_outputs():
    with unidl.use_backend("numpy"):
        a, b = unidl.Input((3,), name="a"), unidl.Input((2,), name="b")
        joined = layers.Concatenate()([a, b])
        model = unidl.Model({"a": a, "b": b}, [layers.Dense(2)(joined), layers.Dense(1)(joined)])
        app = create_app(model, name="two")
        xa, xb = np.ones((2, 3), "float32"), np.arange(4, dtype="float32").reshape(2, 2)
        want = model.predict({"a": xa, "b": xb})
    with live(app) as client:
        status, answer, _ = client.request("POST", "/v1/models/two:predict", {
            "instances": [{"a": xa[i].tolist(), "b": xb[i].tolist()} for i in range(2)]})
        assert status == 200, answer
        for i, row in enumerate(answer["predictions"]):
            assert set(row) == {"output_0", "output_1"}
            np.testing.assert_allclose(row["output_0"], want[0][i], **TOL)
        status, answer, _ = client.request("POST", "/v1/models/two:predict", {
            "inputs": {"a": xa.tolist(), "b": xb.tolist()}})
        assert status == 200, answer
        np.testing.assert_allclose(answer["outputs"]["output_1"], want[1], **TOL)
        for body, message in [
                ({"inputs": xa.tolist()}, "the model has 2 inputs ('a', 'b')"),
                ({"inputs": {"a": xa.tolist(), "b": xb[:1].tolist()}},
                 "inputs['a'] has 2, inputs['b'] has 1"),
                ({"instances": [{"a": [1, 2, 3]}]}, "instances[0]: missing input 'b'"),
                ({"instances": [{"a": [1, 2, 3], "b": [1, 2], "c": 1}]}, "unknown input 'c'"),
                ({"instances": [[1, 2, 3]]}, "expected an object of inputs by name")]:
            status, answer, _ = client.request("POST", "/v1/models/two:predict", body)
            assert status == 400 and message in answer["error"], answer


def test_validation_of_integer_and_bool_inputs():
    ints = TensorSpec("ids", (2,), "int32")
    assert to_array([[1, 2]], ints, "x", str).dtype == np.int32
    for value, message in [([[1, 2.5]], "expected an integer (input 'ids' is int32), got "
                                        "the number 2.5"),
                           ([[1, 2 ** 40]], "1099511627776 is out of range"),
                           ([[1, 10 ** 30]], "is out of range"),
                           ([[True, 1]], "got true (a boolean)")]:
        with pytest.raises(RequestError, match=re.escape(message)):
            to_array(value, ints, "x", lambda idx: f"x{list(idx)}")
    flags = TensorSpec("f", (), "bool")
    assert to_array([True, False], flags, "x", str).tolist() == [True, False]
    with pytest.raises(RequestError, match="expected true or false"):
        to_array([1, 0], flags, "x", str)
    floats = TensorSpec("v", (None,), "float32")  # an axis of any length
    assert to_array([[1, 2, 3]], floats, "x", str).shape == (1, 3)
    with pytest.raises(RequestError, match="1e400|not a finite"):
        to_array([[10 ** 400]], floats, "x", str)


def _run_batcher(batcher, requests, gap_s=0.0):
    """Submit ``requests`` (lists of arrays) concurrently, ``gap_s`` apart; return results."""
    async def main():
        async def one(i, arrays):
            await asyncio.sleep(i * gap_s)
            try:
                return await batcher.submit(arrays)
            except Exception as exc:  # noqa: BLE001
                return exc

        try:
            return await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_concurrent_requests_run_as_one_prediction_with_per_request_results():
    with unidl.use_backend("numpy"):
        model = _mlp()
    calls = []

    def predict(arrays):
        calls.append(len(arrays[0]))
        with unidl.use_backend("numpy"):
            return [model.predict(arrays[0], batch_size=len(arrays[0]))]

    sizes = [1, 3, 2, 1, 1]
    xs = [_samples(n, seed=i) for i, n in enumerate(sizes)]
    results = _run_batcher(Batcher(predict, max_batch_size=8, batch_timeout_ms=1000),
                           [[x] for x in xs])
    assert calls == [8]  # all five requests filled one batch of 8 (no waiting for 1 s)
    for x, (outputs, batch) in zip(xs, results):
        assert batch == 8
        with unidl.use_backend("numpy"):
            np.testing.assert_allclose(outputs[0], model.predict(x), **TOL)

    calls.clear()  # over max_batch_size: split across predictions, never a request
    results = _run_batcher(Batcher(predict, max_batch_size=4, batch_timeout_ms=1000),
                           [[x] for x in xs])
    assert calls == [4, 4] and [r[1] for r in results] == [4, 4, 4, 4, 4]
    calls.clear()  # batching off
    _run_batcher(Batcher(predict, max_batch_size=1, batch_timeout_ms=1000), [[x] for x in xs])
    assert calls == sizes
    calls.clear()  # a timeout of 0 never waits for more requests
    _run_batcher(Batcher(predict, max_batch_size=8, batch_timeout_ms=0), [[x] for x in xs],
                 gap_s=0.2)
    assert calls == sizes


def test_a_failing_request_does_not_fail_its_batch_and_shapes_are_not_mixed():
    def predict(arrays):
        if (arrays[0] < 0).any():
            raise ValueError("negative input")
        return [arrays[0].sum(axis=tuple(range(1, arrays[0].ndim)))]

    good, bad, other = np.ones((2, 3)), -np.ones((1, 3)), np.ones((1, 5))
    batcher = Batcher(predict, max_batch_size=16, batch_timeout_ms=50)
    results = _run_batcher(batcher, [[good], [bad], [other], [good]])
    assert isinstance(results[1], ValueError)
    assert results[0][0][0].tolist() == [3.0, 3.0] and results[3][0][0].tolist() == [3.0, 3.0]
    assert results[2][0][0].tolist() == [5.0]  # (its own prediction: another sample shape)
    assert results[2][1] == 1


def test_the_request_log_has_one_line_per_request(caplog):
    with unidl.use_backend("numpy"):
        app = create_app(_mlp(), name="m")
    with caplog.at_level("INFO", logger="unidl.serve"), live(app) as client:
        client.predict(_samples(2))
        client.request("POST", "/v1/models/m:predict", b"{")
        client.request("GET", "/v1/models/m")
    lines = [r.getMessage() for r in caplog.records if r.name == "unidl.serve"]
    assert [line.split(" latency_ms")[0] for line in lines] == [
        "method=POST path=/v1/models/m:predict status=200",
        "method=POST path=/v1/models/m:predict status=400",
        "method=GET path=/v1/models/m status=200"]
    assert re.search(r"latency_ms=\d+\.\d\d rows=2 batch=2$", lines[0])
    assert lines[1].endswith("rows=- batch=-")


# -- the command -----------------------------------------------------------------------------
needs_saving = pytest.mark.skipif(not hasattr(unidl, "load_model"),
                                  reason="model.save / unidl.load_model not available")


class ServeProcess:
    """``unidl serve`` in a subprocess on a free port; its stderr goes to ``log``."""

    def __init__(self, model_file, log, *options):
        self.log = log
        self.stderr = open(log, "w")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unidl", "serve", str(model_file), "--port", "0",
             "--name", "m", *options], stdout=subprocess.DEVNULL, stderr=self.stderr, env=env)
        self.port = self._wait_ready()

    def _wait_ready(self, timeout=120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", self.text())
            if found:
                port = int(found.group(1))
                if Client(port).request("GET", "/healthz")[0] == 200:
                    return port
            assert self.proc.poll() is None, f"unidl serve exited:\n{self.text()}"
            time.sleep(0.1)
        raise AssertionError(f"unidl serve did not start:\n{self.text()}")

    def text(self) -> str:
        with open(self.log) as f:
            return f.read()

    def stop(self, timeout=60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.stderr.close()


@pytest.fixture
def saved_mlp(tmp_path):
    with unidl.use_backend("numpy"):
        model = _mlp(seed=3)
        path = tmp_path / "mlp.unidl"
        model.save(str(path))
    return model, path


CONCURRENCY_BACKENDS = [b for b in ("numpy", "torch") if b in
                        [x.name for x in unidl.list_backends() if x.error is None]]


@needs_saving
@pytest.mark.parametrize("serve_backend", CONCURRENCY_BACKENDS)
def test_8_concurrent_clients_200_requests_each(saved_mlp, tmp_path, serve_backend):
    model, path = saved_mlp
    server = ServeProcess(path, tmp_path / "serve.log", "--backend", serve_backend)
    clients, per_client = 8, 200
    rng = np.random.default_rng(1)
    work = [[_samples(int(rng.integers(1, 4)), seed=c * 1000 + i) for i in range(per_client)]
            for c in range(clients)]
    with unidl.use_backend("numpy"):
        want = [[model.predict(x) for x in xs] for xs in work]
    errors, answers = [], [[None] * per_client for _ in range(clients)]

    def run(c):
        client = Client(server.port)
        try:
            for i, x in enumerate(work[c]):
                answers[c][i] = client.predict(x)
        except Exception as exc:  # noqa: BLE001 - counted below
            errors.append(f"client {c}, request {i}: {exc!r}")
        finally:
            client.close()

    start = time.monotonic()
    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    elapsed = time.monotonic() - start
    code = server.stop()
    assert not errors, errors[:5]
    for c in range(clients):
        for i in range(per_client):
            np.testing.assert_allclose(answers[c][i], want[c][i], **TOL)
    log = [line for line in server.text().splitlines() if "method=" in line]
    predicts = [LOG_LINE.match(line) for line in log if ":predict" in line]
    assert len(predicts) == clients * per_client and all(predicts)
    assert all(m.group(3) == "200" for m in predicts)
    batched = max(int(m.group(5)) for m in predicts)
    print(f"{serve_backend}: {clients * per_client} requests, 0 errors, {elapsed:.1f} s, "
          f"largest batch {batched} samples")
    assert code == 0


@needs_saving
def test_sigterm_finishes_in_flight_requests_and_exits_0(saved_mlp, tmp_path):
    model, path = saved_mlp
    # a long batch window keeps the requests in flight when SIGTERM arrives
    server = ServeProcess(path, tmp_path / "serve.log", "--batch-timeout-ms", "1500")
    xs = [_samples(1, seed=i) for i in range(3)]
    answers = [None] * len(xs)

    def run(i):
        client = Client(server.port)
        try:
            answers[i] = client.predict(xs[i])
        except Exception as exc:  # noqa: BLE001 - checked below
            answers[i] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert server.proc.poll() is None
    code = server.stop()
    for t in threads:
        t.join(60)
    with unidl.use_backend("numpy"):
        for x, got in zip(xs, answers):
            assert isinstance(got, np.ndarray), got
            np.testing.assert_allclose(got, model.predict(x), **TOL)
    assert code == 0, server.text()
    assert "stopped (SIGTERM)" in server.text() and "Traceback" not in server.text()


def test_serve_says_what_is_wrong_with_its_arguments(tmp_path, capsys):
    from unidl.cli import main

    assert main(["serve", str(tmp_path / "missing.unidl")]) == 2
    assert "no model file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "m.unidl", "--max-batch-size", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_import_unidl_imports_no_server_library():
    from tests.conftest import run_python

    out = run_python("import sys, unidl; print(sorted(m for m in ('starlette', 'uvicorn') "
                     "if m in sys.modules))")
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
