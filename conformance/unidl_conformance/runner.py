"""Running conformance cases outside pytest (``unidl conformance``), with progress and results."""

from __future__ import annotations

import fnmatch
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

from unidl_conformance.cases import (
    Case,
    Result,
    backend_devices,
    lookup_known,
    selected_backends,
    strict,
)
from unidl_conformance.reference import reference_backend, reference_problem, use_reference
from unidl_conformance.registry import CHECKS, cases_for, runner_for

__all__ = ["Run", "collect_cases", "run_cases", "run"]

QUICK_DTYPES = ("float32",)


@dataclass
class Run:
    """The outcome of one conformance run."""

    results: list[Result] = field(default_factory=list)
    backends: dict = field(default_factory=dict)  # name -> {version, devices}
    seconds: float = 0.0
    options: dict = field(default_factory=dict)
    #: the reference backend the run compared with: {"name": ..., "version": ...}
    reference: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[Result]:
        """The unexpected failures: ``fail`` (a wrong result) and ``error`` (a crash)."""
        return [r for r in self.results if r.status in ("fail", "error")]

    def counts(self) -> dict:
        """``{status: number of results}``."""
        out: dict = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def _matches(target: str, pattern: str | None) -> bool:
    if not pattern:
        return True
    alternatives = [p.strip() for p in pattern.split(",") if p.strip()]
    for p in alternatives:
        if any(c in p for c in "*?["):
            if fnmatch.fnmatchcase(target, p):
                return True
        elif p in target:
            return True
    return False


def collect_cases(backends=None, devices=None, dtypes=None, checks=None, pattern=None,
                  quick=False) -> list[Case]:
    from unidl import dtypes as _dt

    dtypes = list(dtypes or (QUICK_DTYPES if quick else _dt.DTYPES))
    checks = list(checks or CHECKS)
    out = []
    for b in selected_backends(backends):
        devs = backend_devices(b, devices)
        if quick and not devices:
            devs = devs[:1]
        for d in devs:
            for check in checks:
                for case in cases_for(check, b, d, dtypes):
                    if _matches(case.target, pattern):
                        out.append(case)
    return out


class _Progress:
    def __init__(self, total: int, stream=None):
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self.start = time.perf_counter()
        self.last_pct = -10

    def update(self, done: int, case: Case, failures: int):
        if self.total == 0:
            return
        pct = 100 * done // self.total
        if self.tty:
            width = 30
            filled = width * done // self.total
            bar = "#" * filled + "." * (width - filled)
            label = f"{case.check} {case.backend}/{case.device}/{case.dtype} {case.target}"
            self.stream.write(f"\r[{bar}] {done}/{self.total} fail={failures} {label[:50]:<50}")
            self.stream.flush()
        elif pct >= self.last_pct + 10 or done == self.total:
            self.last_pct = pct
            elapsed = time.perf_counter() - self.start
            self.stream.write(f"  {pct:3d}% ({done}/{self.total} cases, {failures} failed, "
                              f"{elapsed:.0f}s)\n")
            self.stream.flush()

    def close(self):
        if self.tty and self.total:
            self.stream.write("\n")


def run_cases(cases: list[Case], fail_fast: bool = False, progress: bool = True) -> list[Result]:
    results = []
    bar = _Progress(len(cases)) if progress else None
    failures = 0
    for n, case in enumerate(cases, 1):
        known = lookup_known(case)
        if known is not None and not known.run:
            result = Result(case, "known", reason=known.reason)
        else:
            try:
                # a framework's warnings (e.g. torch's std() with no degrees of freedom, which
                # some samples mean to test) would only garble the progress bar
                with strict(case), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = runner_for(case.check)(case)
            except Exception as exc:  # a crash in one case must not end the run
                result = Result(case, "error", message=f"{type(exc).__name__}: {exc}")
            if known is not None:
                result.reason = known.reason
                result.status = "known" if result.status != "pass" else "xpass"
        if result.status in ("fail", "error"):
            failures += 1
        results.append(result)
        if bar:
            bar.update(n, case, failures)
        if fail_fast and failures:
            break
    if bar:
        bar.close()
    return results


def run(backends=None, devices=None, dtypes=None, checks=None, pattern=None, quick=False,
        fail_fast=False, progress=True, reference=None) -> Run:
    """Collect and run the selected cases; see ``unidl conformance --help``.

    ``reference`` names the reference backend for this run (default: the setting of
    :mod:`unidl_conformance.reference`); ValueError if it is unknown or does not load.
    """
    from unidl.backend.registry import get_backend

    problem = reference_problem(reference)
    if problem:
        raise ValueError(problem)
    t0 = time.perf_counter()
    with use_reference(reference):
        ref = reference_backend()
        cases = collect_cases(backends, devices, dtypes, checks, pattern, quick)
        info = {}
        for name in sorted({c.backend for c in cases} | set(selected_backends(backends))):
            be = get_backend(name)
            info[name] = {"version": be.version(), "devices": be.devices()}
        results = run_cases(cases, fail_fast=fail_fast, progress=progress)
    return Run(results=results, backends=info, seconds=time.perf_counter() - t0,
               options={"backends": backends, "devices": devices, "dtypes": dtypes,
                        "checks": checks, "pattern": pattern, "quick": quick,
                        "reference": ref},
               reference={"name": ref, "version": get_backend(ref).version()})
