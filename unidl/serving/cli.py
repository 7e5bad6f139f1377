"""``unidl serve MODEL_FILE``: load a saved model and serve it under uvicorn until SIGTERM or
Ctrl-C, then finish the in-flight requests and exit with status 0."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

__all__ = ["serve", "default_name"]

#: how long a shutdown waits for in-flight requests before cancelling them (seconds)
GRACEFUL_SHUTDOWN_S = 30


def _say(message: str) -> None:
    print(f"unidl serve: {message}", file=sys.stderr, flush=True)


def default_name(model_file: str) -> str:
    """The model's name when ``--name`` is not given: the file name without its extension
    (``digits.unidl`` -> ``digits``)."""
    base = os.path.basename(os.path.normpath(model_file))
    return os.path.splitext(base)[0] or "model"


def _access_logging() -> None:
    """The ``unidl.serve`` logger to stderr: ``<UTC time> <message>``, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(message)s",
                                  datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log = logging.getLogger("unidl.serve")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def _load(model_file: str, backend: str | None):
    """The model in ``model_file`` on ``backend`` (or the default), or None after saying
    why not."""
    import unidl

    try:
        if backend:
            unidl.set_backend(backend)
        if not os.path.exists(model_file):
            _say(f"no model file {model_file!r}")
            return None
        return unidl.load_model(model_file, compile=False)
    except Exception as exc:  # noqa: BLE001 - a message, not a traceback
        _say(f"cannot serve {model_file!r}: {exc}")
        return None


def _server_class(on_ready):
    """A ``uvicorn.Server`` that calls ``on_ready(host, port)`` once it is listening."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and self.servers:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                on_ready(host, port)

    return Server


def serve(model_file: str, host: str = "127.0.0.1", port: int = 8501,
          backend: str | None = None, name: str | None = None, max_batch_size: int = 32,
          batch_timeout_ms: float = 0.0, max_body_bytes: int | None = None) -> int:
    """Serve ``model_file`` until SIGTERM/SIGINT; the exit status (0 after a clean shutdown,
    2 when the model or the options are unusable)."""
    try:
        import uvicorn

        from unidl.serving.app import DEFAULT_MAX_BODY_BYTES, create_app
    except ImportError as exc:
        _say(f"{exc}" if "unidl[serve]" in str(exc) else
             f"needs Starlette and uvicorn ({exc}): pip install 'unidl[serve]'")
        return 2
    model = _load(model_file, backend)
    if model is None:
        return 2
    name = name or default_name(model_file)
    try:
        app = create_app(model, name=name, max_batch_size=max_batch_size,
                         batch_timeout_ms=batch_timeout_ms,
                         max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES)
    except ValueError as exc:
        _say(str(exc))
        return 2
    _access_logging()
    import unidl

    def ready(bound_host, bound_port):
        _say(f"serving model {name!r} ({model_file}, backend {unidl.backend_name()}) at "
             f"http://{bound_host}:{bound_port}/v1/models/{name} (max batch {max_batch_size}, "
             f"batch timeout {batch_timeout_ms:g} ms); SIGTERM or Ctrl-C stops")

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    server = _server_class(ready)(config)
    stopped = []
    # uvicorn re-raises the signal that stopped it once it has shut down; these handlers
    # receive it so that a clean shutdown exits with 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopped.append(signum))
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot start (the port is taken...)
        if server.started:
            raise
    if not server.started:
        _say(f"could not start serving on {host}:{port} (uvicorn's error is above)")
        return 1
    _say(f"stopped ({signal.Signals(stopped[0]).name if stopped else 'shutdown'})")
    return 0
