"""The Starlette app behind ``unidl serve``: TF Serving's REST API over any unidl model.

Endpoints (``NAME`` is the served model's name, ``1`` its only version):

* ``GET /v1/models/NAME`` and ``GET /v1/models/NAME/versions/1``: the model's status;
* ``GET /v1/models/NAME/metadata`` (and ``.../versions/1/metadata``): its signature;
* ``POST /v1/models/NAME:predict`` (and ``.../versions/1:predict``): predictions, from
  ``{"instances": [...]}`` (row format) or ``{"inputs": ...}`` (columnar format);
* ``GET /healthz`` and ``GET /v1/health``: 200 once the model is loaded.

Every error is ``{"error": "..."}`` with a 4xx/5xx status, never a traceback. One log line per
request goes to the ``unidl.serve`` logger (INFO).

Example (in-process, e.g. in tests; ``unidl serve`` runs it under uvicorn):
    >>> from unidl.serving import create_app            # doctest: +SKIP
    >>> app = create_app(model, name="digits")          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("unidl serve needs Starlette and uvicorn: pip install 'unidl[serve]'") \
        from exc

import unidl
from unidl.serving.batching import Batcher
from unidl.serving.validation import (
    RequestError,
    Signature,
    flatten_outputs,
    format_predictions,
    parse_predict,
)

__all__ = ["create_app", "DEFAULT_MAX_BODY_BYTES", "VERSION", "ModelRunner"]

#: the largest request body accepted by default (``--max-body-bytes``): 16 MiB
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: the version every served model has (TF Serving's version directories do not apply)
VERSION = "1"

logger = logging.getLogger("unidl.serve")


class JSONResponse(Response):
    """Compact JSON; non-finite outputs are written ``NaN``/``Infinity`` as TF Serving does."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("utf-8")


def _error(message: str, status: int, headers=None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class ModelRunner:
    """Runs ``model.predict`` on one batch (in the batcher's worker thread) on the backend
    the model was built on."""

    def __init__(self, model, signature: Signature, backend: str):
        self.model = model
        self.signature = signature
        self.backend = backend
        self.output_names = None

    def predict(self, arrays: list) -> list:
        """The outputs (one array per output, samples first) for ``arrays`` (one per input)."""
        with unidl.use_backend(self.backend):
            out = self.model.predict(self.signature.model_input(arrays),
                                     batch_size=max(1, len(arrays[0])), verbose=0)
        self.output_names, arrays_out = flatten_outputs(out)
        return arrays_out

    def warmup(self) -> bool:
        """Predict zeros of batch sizes 1 and 2 (tracing and compiling ahead of the first
        request); False when the signature has axes of unknown length."""
        import numpy as np

        from unidl import dtypes as _dt

        specs = self.signature.inputs
        if any(s.shape is None or None in s.shape for s in specs):
            return False
        for n in (1, 2):
            self.predict([np.zeros((n,) + tuple(s.shape), _dt.numpy_dtype(s.dtype))
                          for s in specs])
        return True


class _Service:
    """The endpoints of one served model."""

    def __init__(self, runner: ModelRunner, batcher: Batcher, name: str, max_body_bytes: int):
        self.runner = runner
        self.batcher = batcher
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.ready = True  # the model is loaded when the app is made

    # -- lifecycle ---------------------------------------------------------------------------
    async def startup(self, warmup: bool) -> None:
        """Start the batcher; predict once on zeros (tracing, compiling) before serving."""
        self.batcher.start()
        if warmup:
            try:
                await self.batcher.run_in_worker(self.runner.warmup)
            except Exception as exc:  # noqa: BLE001 - a warning: requests will say more
                logger.warning("warm-up prediction failed: %s: %s", type(exc).__name__, exc)
        self.ready = True

    async def shutdown(self) -> None:
        """Stop batching once the in-flight requests are answered."""
        self.ready = False
        await self.batcher.close()

    # -- checks ------------------------------------------------------------------------------
    def _check_model(self, name: str, version: str | None) -> None:
        if name != self.name:
            raise RequestError(f"model {name!r} not found; this server serves {self.name!r} "
                               f"(GET /v1/models/{self.name})", 404)
        if version is not None and version != VERSION:
            raise RequestError(f"model {name!r} has no version {version!r}; its only version "
                               f"is {VERSION}", 404)

    # -- endpoints ---------------------------------------------------------------------------
    async def status(self, request) -> JSONResponse:
        """TF Serving's model status: ``{"model_version_status": [...]}``."""
        name = request.path_params["name"]
        if ":" in name:
            raise RequestError(f"{request.url.path} takes POST, not {request.method}", 405,
                               {"Allow": "POST"})
        self._check_model(name, request.path_params.get("version"))
        state = "AVAILABLE" if self.ready else "END"
        return JSONResponse({"model_version_status": [{
            "version": VERSION, "state": state,
            "status": {"error_code": "OK", "error_message": ""}}]})

    async def metadata(self, request) -> JSONResponse:
        """TF Serving's model metadata: the ``serving_default`` signature."""
        self._check_model(request.path_params["name"], request.path_params.get("version"))
        return JSONResponse({
            "model_spec": {"name": self.name, "signature_name": "", "version": VERSION},
            "metadata": {"signature_def": {
                "signature_def": self.runner.signature.metadata()}}})

    async def predict(self, request) -> JSONResponse:
        """``:predict``: check the request, predict within a batch, answer in its format."""
        self._check_model(request.path_params["name"], request.path_params.get("version"))
        verb = request.path_params["verb"]
        if verb != "predict":
            status = 400 if verb in ("classify", "regress") else 404
            raise RequestError(f"':{verb}' is not supported: the model has a predict signature "
                               f"only (POST /v1/models/{self.name}:predict)", status)
        body = await read_body(request, self.max_body_bytes)
        parsed = parse_predict(body, self.runner.signature)
        request.state.rows = parsed.rows
        outputs, batch = await self._submit(parsed.arrays)
        request.state.batch = batch
        return JSONResponse(format_predictions(self.runner.output_names, outputs,
                                               parsed.columnar))

    async def _submit(self, arrays: list):
        try:
            return await self.batcher.submit(arrays)
        except RequestError:
            raise
        except (ValueError, TypeError) as exc:  # the model refused the input
            raise RequestError(f"the model could not predict on this input: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a 500, without a traceback
            logger.error("prediction failed: %s: %s", type(exc).__name__, exc)
            raise RequestError(f"prediction failed: {type(exc).__name__}: {exc}", 500) \
                from None

    async def health(self, request) -> JSONResponse:
        """200 ``{"status": "ok"}`` while the model is loaded and serving, else 503."""
        if self.ready:
            return JSONResponse({"status": "ok", "model": self.name, "version": VERSION})
        return JSONResponse({"status": "unavailable", "model": self.name}, status_code=503)


async def read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 when over ``limit`` bytes: by its Content-Length
    before reading anything, and while streaming it (chunked bodies have no length)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(f"the request body is {int(length)} bytes, over the limit of "
                           f"{limit} bytes (--max-body-bytes)", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body is over the limit of {limit} bytes "
                               "(--max-body-bytes)", 413)
        chunks.append(chunk)
    return b"".join(chunks)


class AccessLog:
    """ASGI middleware: one line per request on the ``unidl.serve`` logger, in a fixed format
    (``method=POST path=/v1/models/m:predict status=200 latency_ms=1.84 rows=1 batch=4``;
    ``rows``: the request's samples, ``batch``: the samples of the prediction that served it,
    ``-`` where there was none)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state = scope.get("state") or {}
            path = scope.get("raw_path", b"").decode("latin-1") or scope.get("path", "")
            logger.info("method=%s path=%s status=%d latency_ms=%.2f rows=%s batch=%s",
                        scope.get("method", "-"), path, status[0],
                        (time.perf_counter() - start) * 1000.0, state.get("rows", "-"),
                        state.get("batch", "-"))


async def _request_error(request, exc: RequestError) -> JSONResponse:
    return _error(exc.message, exc.status, exc.headers)


async def _http_error(request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = (f"no endpoint {request.url.path}; the endpoints are GET /v1/models/NAME, "
                   "GET /v1/models/NAME/metadata, POST /v1/models/NAME:predict, GET /healthz")
    elif exc.status_code == 405:
        message = f"{request.url.path} does not take {request.method}"
        allow = (exc.headers or {}).get("Allow")
        message += f"; it takes {allow}" if allow else ""
    else:
        message = str(exc.detail)
    return _error(message, exc.status_code, exc.headers)


async def _server_error(request, exc: Exception) -> JSONResponse:
    return _error(f"internal error: {type(exc).__name__}: {exc}", 500)


def create_app(model, name: str = "model", max_batch_size: int = 32,
               batch_timeout_ms: float = 0.0, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               backend: str | None = None, warmup: bool = True) -> Starlette:
    """The Starlette app serving ``model`` under ``/v1/models/{name}``.

    ``max_batch_size`` (samples) and ``batch_timeout_ms`` configure the batching of
    concurrent requests (:mod:`unidl.serving.batching`; ``max_batch_size=1``: none);
    ``max_body_bytes`` limits a request body (413 beyond); predictions run on ``backend``
    (default: this thread's backend now, the one the model was made on). ``warmup``: predict
    once on zeros when the app starts, so the first request does not pay for tracing.
    """
    if not name or any(c in name for c in "/:?#% "):
        raise ValueError(f"model name {name!r} must be non-empty without '/', ':', '?', '#', "
                         "'%' or spaces")
    if int(max_body_bytes) < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    runner = ModelRunner(model, Signature.from_model(model), backend or unidl.backend_name())
    batcher = Batcher(runner.predict, max_batch_size, batch_timeout_ms)
    service = _Service(runner, batcher, name, int(max_body_bytes))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.startup(warmup)
        try:
            yield
        finally:
            await service.shutdown()

    routes = [
        Route("/v1/models/{name}:{verb}", service.predict, methods=["POST"]),
        Route("/v1/models/{name}/versions/{version}:{verb}", service.predict,
              methods=["POST"]),
        Route("/v1/models/{name}/versions/{version}/metadata", service.metadata,
              methods=["GET"]),
        Route("/v1/models/{name}/versions/{version}", service.status, methods=["GET"]),
        Route("/v1/models/{name}/metadata", service.metadata, methods=["GET"]),
        Route("/v1/models/{name}", service.status, methods=["GET"]),
        Route("/healthz", service.health, methods=["GET"]),
        Route("/v1/health", service.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(AccessLog)], lifespan=lifespan,
                    exception_handlers={RequestError: _request_error,
                                        HTTPException: _http_error,
                                        Exception: _server_error})
    app.state.service = service
    app.state.batcher = batcher
    return app
