"""The ``unidl`` command: ``unidl backends``, ``unidl conformance``, ``unidl ops``,
``unidl launch``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_backends(args) -> int:
    from unidl.backend.registry import list_backends

    rows = list_backends(load=not args.no_load)
    table = [("backend", "version", "devices", "status")]
    for b in rows:
        status = "ok" if b.error is None else f"error: {b.error}"
        if b.error is None and b.missing_ops:
            status = f"ok, missing kernels: {', '.join(b.missing_ops)}"
        if b.error is None and not b.loaded:
            status = "not loaded"
        table.append((b.name, b.version or "-", ", ".join(b.devices) or "-", status))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return 0


def _split(values):
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _check_selection(args) -> str | None:
    """Why the --check/--dtype/--device selection of ``args`` is unusable, or None."""
    from unidl import dtypes as _dt
    from unidl_conformance.cases import selected_backends
    from unidl_conformance.registry import CHECKS

    for check in _split(args.check) or []:
        if check not in CHECKS:
            return f"unknown check {check!r}; checks are {', '.join(CHECKS)}"
    for dt in _split(args.dtype) or []:
        if dt not in _dt.DTYPES:
            return f"unknown dtype {dt!r}; dtypes are {', '.join(_dt.DTYPES)}"
    if args.device:
        from unidl.backend.registry import get_backend

        have = {}
        for name in selected_backends(_split(args.backend)):
            for dev in get_backend(name).devices():
                have.setdefault(dev, name)
        missing = [d for d in _split(args.device) if d not in have]
        if missing:
            return (f"no selected backend has device {', '.join(map(repr, missing))}; "
                    f"their devices are {', '.join(have)}")
    return None


def _usage_problem(args) -> str | None:
    """Why the options of ``unidl conformance`` are unusable (before anything runs), or None."""
    import os

    from unidl.backend.registry import list_backends
    from unidl_conformance.reference import reference_problem

    for path in args.report or []:
        if os.path.splitext(path)[1].lower() not in (".json", ".md", ".markdown", ".html",
                                                     ".htm"):
            return f"unknown report format {path!r}; use .json, .md or .html"
    if args.backend:
        known = {b.name: b for b in list_backends(load=False)}
        for name in _split(args.backend):
            if name not in known:
                return f"unknown backend {name!r}; installed: {', '.join(sorted(known))}"
    return reference_problem(args.reference) or _check_selection(args)


def _terminal_width() -> int:
    """100 columns, or fewer on a narrower terminal (never under 60)."""
    import shutil

    from unidl_conformance.terminal import WIDTH

    if not sys.stdout.isatty():
        return WIDTH
    return max(60, min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns))


def _cmd_conformance(args) -> int:
    try:
        from unidl_conformance.report import render_text, write_report
        from unidl_conformance.runner import run
    except ImportError as exc:  # pragma: no cover - the suite ships with unidl
        print(f"unidl: the conformance suite is not installed ({exc})", file=sys.stderr)
        return 2
    problem = _usage_problem(args)
    if problem:
        print(f"unidl: {problem}", file=sys.stderr)
        return 2
    result = run(backends=_split(args.backend), devices=_split(args.device),
                 dtypes=_split(args.dtype), checks=_split(args.check), pattern=args.k,
                 quick=args.quick, fail_fast=args.fail_fast, progress=not args.no_progress,
                 reference=args.reference)
    if not result.results:
        print("unidl: no conformance case matches the selection", file=sys.stderr)
        return 2
    width = _terminal_width()
    print(render_text(result, only_problems=args.only_problems, width=width,
                      show_matrix=args.matrix))
    for path in args.report or []:
        try:
            write_report(result, path)
        except OSError as exc:
            print(f"unidl: cannot write report {path!r}: {exc}", file=sys.stderr)
            return 2
        print(f"report written to {path}")  # (a path is never wrapped: it is copied)
    return 1 if result.failed else 0


def _cmd_ops(args) -> int:
    from unidl.spec import all_specs

    for spec in all_specs():
        onnx = spec.export.get("onnx")
        print(f"{spec.name}({spec.signature_source()})  [{spec.kind}"
              f"{', onnx: ' + onnx if onnx else ''}]")
    return 0


def _cmd_serve(args) -> int:
    from unidl.serving.cli import serve

    return serve(args.model_file, host=args.host, port=args.port, backend=args.backend,
                 name=args.name, max_batch_size=args.max_batch_size,
                 batch_timeout_ms=args.batch_timeout_ms, max_body_bytes=args.max_body_bytes)


def _at_least(minimum, kind=int):
    """An argparse type: a ``kind`` number >= ``minimum``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    return parse


def _add_serve_parser(sub) -> None:
    s = sub.add_parser(
        "serve", help="serve a saved model with TensorFlow Serving's REST API",
        description="Serve a model saved with model.save() over HTTP with TensorFlow "
                    "Serving's REST API (GET /v1/models/NAME, GET /v1/models/NAME/metadata, "
                    "POST /v1/models/NAME:predict, GET /healthz). Concurrent requests are "
                    "batched into one prediction. Stops on SIGTERM or Ctrl-C after the "
                    "in-flight requests (exit status 0). Needs `pip install 'unidl[serve]'`. "
                    "See docs/deployment.md.")
    s.add_argument("model_file", metavar="MODEL_FILE", help="a .unidl file from model.save()")
    s.add_argument("--port", type=_at_least(0), default=8501,
                   help="TCP port (default 8501, TF Serving's REST port; 0: any free port, "
                        "printed at start)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every "
                        "interface)")
    s.add_argument("--backend", help="backend to run the model on (default: $UNIDL_BACKEND, "
                                     "else numpy)")
    s.add_argument("--name", help="the model's name in URLs (default: the file name without "
                                  "its extension)")
    s.add_argument("--max-batch-size", type=_at_least(1), default=32, metavar="N",
                   help="most samples per prediction when batching concurrent requests "
                        "(default 32; 1 turns batching off)")
    s.add_argument("--batch-timeout-ms", type=_at_least(0.0, float), default=0.0, metavar="T",
                   help="how long the oldest queued request waits for others to join its "
                        "batch (default 0: a batch is what queued during the previous prediction)")
    s.add_argument("--max-body-bytes", type=_at_least(1), default=None, metavar="B",
                   help="largest request body accepted, else 413 (default 16 MiB)")
    s.set_defaults(func=_cmd_serve)


def _cmd_launch(args) -> int:
    from unidl.distribute.launch import LaunchOptions, launch
    from unidl.errors import BackendNotFoundError, DistributedError

    if args.program is None:
        print("unidl launch: error: no script given (unidl launch [options] script.py "
              "[args...], or -m module [args...])", file=sys.stderr)
        return 2
    workers = tuple(w.strip() for w in (args.workers or "").split(",") if w.strip())
    options = LaunchOptions(nproc=args.nproc, timeout=args.timeout, nnodes=args.nnodes,
                            node_rank=args.node_rank, master_addr=args.master_addr,
                            master_port=args.master_port, workers=workers,
                            backend=args.backend, module=args.module)
    try:
        return launch(args.nproc, [args.program, *args.args], options)
    except (DistributedError, BackendNotFoundError) as exc:
        message = str(exc).removeprefix("unidl launch: ")
        print(f"unidl launch: error: {message}", file=sys.stderr)
        return 2


def _add_launch_parser(sub) -> None:
    s = sub.add_parser(
        "launch", help="run a script on N data-parallel workers (DataParallel)",
        usage="unidl launch [options] script.py [args...] | -m module [args...]",
        description="Start NPROC workers running the script (with its arguments: everything "
                    "after it goes to the script) on the backend's own distributed runtime "
                    "(the backend's launcher: torchrun on torch, TF_CONFIG clusters on "
                    "tensorflow). Worker output lines are prefixed [rank N]. When a worker "
                    "fails, the others get --timeout seconds to end, then are stopped, and one "
                    "line names the rank that failed first. Exit status: 0 when every worker "
                    "succeeded, else the failed worker's (128+N for signal N); 2 for a usage "
                    "error. Several machines: run it on each with --nnodes and --node-rank, "
                    "plus --master-addr/--master-port (torch) or --workers (tensorflow).")
    s.add_argument("--nproc", type=_at_least(1), default=1, metavar="N",
                   help="workers on this machine (default 1)")
    s.add_argument("--backend", help="backend (default: $UNIDL_BACKEND, else the default "
                                     "backend); it needs a distributed engine")
    s.add_argument("--timeout", type=_at_least(0.001, float), default=30.0, metavar="S",
                   help="seconds the other workers get to end after one failed, before they "
                        "are stopped (default 30)")
    s.add_argument("--nnodes", type=_at_least(1), default=1, metavar="N",
                   help="machines taking part (default 1)")
    s.add_argument("--node-rank", type=_at_least(0), default=0, metavar="I",
                   help="this machine's index among --nnodes (default 0); it runs ranks "
                        "I*NPROC .. I*NPROC+NPROC-1")
    s.add_argument("--master-addr", default="127.0.0.1", metavar="HOST",
                   help="rank 0's machine, where the workers meet (rendezvous backends such as "
                        "torch; default 127.0.0.1)")
    s.add_argument("--master-port", type=_at_least(1), default=None, metavar="PORT",
                   help="port of that meeting point (default: a free one; required with "
                        "--nnodes > 1)")
    s.add_argument("--workers", metavar="HOST:PORT,...",
                   help="every worker's address in rank order, NNODES*NPROC of them, the same "
                        "on each machine (backends configured by an address list such as "
                        "tensorflow's TF_CONFIG; default: free loopback ports)")
    s.add_argument("-m", "--module", action="store_true",
                   help="run a module (python -m MODULE) instead of a script")
    s.add_argument("program", nargs="?", metavar="script.py", help="the worker script "
                   "(or module with -m)")
    s.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    s.set_defaults(func=_cmd_launch)


def build_parser() -> argparse.ArgumentParser:
    from unidl import __version__

    p = argparse.ArgumentParser(prog="unidl", description=__doc__)
    p.add_argument("--version", action="version", version=f"unidl {__version__}",
                   help="print the version of unidl and exit")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("backends", help="list discovered backends with version and devices")
    b.add_argument("--no-load", action="store_true", help="do not import the frameworks")
    b.set_defaults(func=_cmd_backends)

    try:
        from unidl_conformance.reference import DEFAULT_REFERENCE, ENV_VAR
    except ImportError:  # pragma: no cover - the suite ships with unidl
        DEFAULT_REFERENCE, ENV_VAR = "?", "UNIDL_CONFORMANCE_REFERENCE"
    c = sub.add_parser(
        "conformance", help="check backends against the spec and each other",
        description="Run the conformance suite. Prints, within 100 columns, the unexpected "
                    "failures with their messages, a summary per backend (version, devices, "
                    "counts per dtype, worst error / tolerance), the known failures by reason "
                    "and the totals; the full matrix is in the reports (or --matrix). Exit "
                    "status: 0 when nothing failed unexpectedly, 1 otherwise, 2 for a usage "
                    "error.")
    c.add_argument("--backend", action="append", help="backend(s) to check (default: all)")
    c.add_argument("--device", action="append", help="device(s) (default: all of each backend)")
    c.add_argument("--dtype", action="append", help="dtype(s) (default: all)")
    c.add_argument("--check", action="append",
                   help="checks: forward,grad,optimizer,layer,training,metric (default: all)")
    c.add_argument("-k", metavar="PATTERN", help="only cases whose name matches (substring or "
                   "glob; comma-separated alternatives)")
    c.add_argument("--report", action="append", metavar="FILE",
                   help="write a report (.json, .md or .html); repeatable")
    c.add_argument("--quick", action="store_true",
                   help="float32 on each backend's default device only")
    c.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    c.add_argument("--no-progress", action="store_true", help="no progress output")
    c.add_argument("--reference", metavar="NAME",
                   help="the reference backend layers, gradients and training runs are "
                        f"compared with (default: ${ENV_VAR}, else {DEFAULT_REFERENCE})")
    c.add_argument("--only-problems", action="store_true",
                   help="list the failures and one line per known failure, without the "
                        "per-backend summary (with --matrix: only the matrix rows with a "
                        "failure or known failure)")
    c.add_argument("--matrix", action="store_true",
                   help="also print the full matrix (one column per backend/device/dtype; "
                        "wider than the terminal); it is always in the reports")
    c.set_defaults(func=_cmd_conformance)

    o = sub.add_parser("ops", help="list every op of the spec (signature, kind, ONNX name)")
    o.set_defaults(func=_cmd_ops)
    _add_serve_parser(sub)
    _add_launch_parser(sub)
    from unidl.efficiency import add_parser as add_efficiency_parser  # unidl efficiency

    add_efficiency_parser(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
