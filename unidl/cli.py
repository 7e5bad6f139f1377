"""The ``unidl`` command: ``unidl backends``, ``unidl conformance``, ``unidl ops``."""

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


def _cmd_conformance(args) -> int:
    try:
        from unidl_conformance.report import render_text, write_report
        from unidl_conformance.runner import run
    except ImportError as exc:  # pragma: no cover - the suite ships with unidl
        print(f"unidl: the conformance suite is not installed ({exc})", file=sys.stderr)
        return 2
    import os

    from unidl.backend.registry import list_backends

    for path in args.report or []:
        if os.path.splitext(path)[1].lower() not in (".json", ".md", ".markdown", ".html",
                                                     ".htm"):
            print(f"unidl: unknown report format {path!r}; use .json, .md or .html",
                  file=sys.stderr)
            return 2
    if args.backend:
        known = {b.name: b for b in list_backends(load=False)}
        for name in _split(args.backend):
            if name not in known:
                print(f"unidl: unknown backend {name!r}; installed: {', '.join(sorted(known))}",
                      file=sys.stderr)
                return 2
    problem = _check_selection(args)
    if problem:
        print(f"unidl: {problem}", file=sys.stderr)
        return 2
    result = run(backends=_split(args.backend), devices=_split(args.device),
                 dtypes=_split(args.dtype), checks=_split(args.check), pattern=args.k,
                 quick=args.quick, fail_fast=args.fail_fast, progress=not args.no_progress)
    if not result.results:
        print("unidl: no conformance case matches the selection", file=sys.stderr)
        return 2
    print(render_text(result, only_problems=args.only_problems))
    for path in args.report or []:
        write_report(result, path)
        print(f"report written to {path}")
    return 1 if result.failed else 0


def _cmd_ops(args) -> int:
    from unidl.spec import all_specs

    for spec in all_specs():
        onnx = spec.export.get("onnx")
        print(f"{spec.name}({spec.signature_source()})  [{spec.kind}"
              f"{', onnx: ' + onnx if onnx else ''}]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unidl", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("backends", help="list discovered backends with version and devices")
    b.add_argument("--no-load", action="store_true", help="do not import the frameworks")
    b.set_defaults(func=_cmd_backends)

    c = sub.add_parser("conformance", help="check backends against the spec and each other")
    c.add_argument("--backend", action="append", help="backend(s) to check (default: all)")
    c.add_argument("--device", action="append", help="device(s) (default: all of each backend)")
    c.add_argument("--dtype", action="append", help="dtype(s) (default: all)")
    c.add_argument("--check", action="append",
                   help="checks: forward,grad,optimizer,layer,training (default: all)")
    c.add_argument("-k", metavar="PATTERN", help="only cases whose name matches (substring or "
                   "glob; comma-separated alternatives)")
    c.add_argument("--report", action="append", metavar="FILE",
                   help="write a report (.json, .md or .html); repeatable")
    c.add_argument("--quick", action="store_true",
                   help="float32 on each backend's default device only")
    c.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    c.add_argument("--no-progress", action="store_true", help="no progress output")
    c.add_argument("--only-problems", action="store_true",
                   help="print only matrix rows with a failure or known failure")
    c.set_defaults(func=_cmd_conformance)

    o = sub.add_parser("ops", help="list every op of the spec (signature, kind, ONNX name)")
    o.set_defaults(func=_cmd_ops)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
