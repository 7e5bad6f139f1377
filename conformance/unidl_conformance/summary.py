"""What every report shows, computed once: counts per backend (by dtype, check and device),
known failures grouped by reason, and the full matrix.

The terminal output (:mod:`unidl_conformance.terminal`) and the Markdown and HTML reports
(:mod:`unidl_conformance.report`) render these in the same order: totals, unexpected
failures, per-backend summary, known failures by reason, the matrix.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from unidl_conformance.cases import Result
from unidl_conformance.registry import CHECKS
from unidl_conformance.runner import Run

__all__ = ["STATUSES", "Tally", "BackendSummary", "KnownGroup", "backend_summaries",
           "known_groups", "matrix", "column", "cell", "totals_text", "reference_text",
           "SHORT_DTYPES", "RATIO_BINS", "ratio_histogram"]

#: every status a result can have, in report order
STATUSES = ("pass", "fail", "error", "known", "xpass")

SHORT_DTYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
                "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8",
                "bool": "bool"}


#: the bins of the error/tolerance histogram of passing cases: ``(low, high, label)``, a ratio
#: ``r`` falls in the bin with ``low <= r < high`` (exactly 0 in the first; the last bin
#: holds 1.0 too); log-scaled below 0.1, steps of 0.1 above
RATIO_BINS = ((0.0, 0.0, "0"), (0.0, 1e-4, "<1e-4"), (1e-4, 1e-3, "1e-4"), (1e-3, 1e-2, "1e-3"),
              (1e-2, 0.1, "1e-2")) + tuple((k / 10, (k + 1) / 10, f"0.{k}") for k in range(1, 10))


def _ratio_bin(ratio: float) -> int:
    """The index in :data:`RATIO_BINS` of a passing case's ratio (above 1, or not a number,
    in the last bin: a pass never has one)."""
    if ratio == 0.0:
        return 0
    for i, (low, high, _) in enumerate(RATIO_BINS[1:], start=1):
        if low <= ratio < high:
            return i
    return len(RATIO_BINS) - 1


def ratio_histogram(results) -> list[int]:
    """Counts of the passing ``results`` per bin of :data:`RATIO_BINS` (error over
    tolerance): how close to its tolerances a backend runs."""
    counts = [0] * len(RATIO_BINS)
    for r in results:
        if r.status == "pass":
            counts[_ratio_bin(r.ratio)] += 1
    return counts


@dataclass
class Tally:
    """Counts of results by status, and the worst error/tolerance of the passing ones."""

    counts: dict = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    worst: float = 0.0
    worst_result: Result | None = None

    def add(self, r: Result) -> None:
        self.counts[r.status] = self.counts.get(r.status, 0) + 1
        if r.status == "pass" and (self.worst_result is None or r.ratio > self.worst):
            self.worst, self.worst_result = r.ratio, r

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return self.counts.get("fail", 0) + self.counts.get("error", 0)


@dataclass
class BackendSummary:
    """One backend's part of a run."""

    name: str
    version: str
    devices: list  # the devices that ran, in the backend's order
    reported_devices: list  # every device the backend reports
    reference: bool  # whether this is the run's reference backend
    total: Tally = field(default_factory=Tally)
    by_dtype: dict = field(default_factory=dict)  # dtype -> Tally
    by_check: dict = field(default_factory=dict)  # check -> Tally
    by_device: dict = field(default_factory=dict)  # device -> Tally
    histogram: list = field(default_factory=list)  # passing cases per RATIO_BINS bin


@dataclass
class KnownGroup:
    """Known failures of one backend sharing one reason."""

    backend: str
    reason: str
    results: list = field(default_factory=list)

    @property
    def xpass(self) -> int:
        return sum(r.status == "xpass" for r in self.results)

    def values(self, attr: str) -> list:
        """The distinct ``check``/``dtype``/``device``/``target`` values, in order."""
        return list(OrderedDict.fromkeys(getattr(r.case, attr) for r in self.results))


def _ordered(keys, order) -> list:
    rank = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: (rank.get(k, len(rank)), k))


def _dtype_order():
    from unidl import dtypes as _dt

    return list(_dt.DTYPES)


def backend_summaries(run: Run) -> list[BackendSummary]:
    """One summary per backend that ran (in the order of ``run.backends``, then any other)."""
    ref = run.reference.get("name")
    names = list(run.backends) + sorted({r.case.backend for r in run.results} -
                                        set(run.backends))
    out = []
    for name in names:
        info = run.backends.get(name, {})
        mine = [r for r in run.results if r.case.backend == name]
        reported = list(info.get("devices", []))
        s = BackendSummary(name, str(info.get("version", "?")),
                           _ordered({r.case.device for r in mine}, reported), reported,
                           name == ref)
        for r in mine:
            s.total.add(r)
            for table, key in ((s.by_dtype, r.case.dtype), (s.by_check, r.case.check),
                               (s.by_device, r.case.device)):
                table.setdefault(key, Tally()).add(r)
        s.by_dtype = {k: s.by_dtype[k] for k in _ordered(s.by_dtype, _dtype_order())}
        s.by_check = {k: s.by_check[k] for k in _ordered(s.by_check, CHECKS)}
        s.by_device = {k: s.by_device[k] for k in s.devices}
        s.histogram = ratio_histogram(mine)
        out.append(s)
    return out


def known_groups(run: Run) -> list[KnownGroup]:
    """Known failures (and known failures that passed), grouped by backend and reason."""
    groups: dict = OrderedDict()
    for r in run.results:
        if r.status in ("known", "xpass"):
            key = (r.case.backend, r.reason)
            groups.setdefault(key, KnownGroup(*key)).results.append(r)
    return list(groups.values())


def column(r: Result) -> str:
    """The matrix column of ``r``: ``backend/device/dtype``."""
    c = r.case
    return f"{c.backend}/{c.device}/{c.dtype}"


def matrix(run: Run):
    """``(columns, rows)``: rows map ``check:target`` to ``{column: Result}``."""
    columns = list(OrderedDict.fromkeys(column(r) for r in run.results))
    rows: dict = OrderedDict()
    for r in run.results:
        rows.setdefault(f"{r.case.check}:{r.case.target}", {})[column(r)] = r
    return columns, rows


def cell(r: Result | None) -> str:
    """A matrix cell: the worst error over its tolerance (<= 1 passes), ``FAIL``, ``ERR``,
    ``kf`` (known failure), ``XP`` (known failure that passed) or ``-`` (no such case)."""
    if r is None:
        return "-"
    if r.status == "pass":
        return f"{r.ratio:.2f}" if r.ratio < 10 else "ok"
    return {"fail": "FAIL", "error": "ERR", "known": "kf", "xpass": "XP"}.get(r.status, r.status)


def totals_text(run: Run) -> str:
    """``N cases in Ts: a pass, b fail, c error, d known, e xpass``."""
    counts = run.counts()
    return (f"{len(run.results)} cases in {run.seconds:.1f}s: "
            + ", ".join(f"{counts.get(k, 0)} {k}" for k in STATUSES))


def reference_text(run: Run) -> str:
    """The run's reference backend and its version (``numpy 2.2.6``), or ``""``."""
    ref = run.reference or {}
    return f"{ref.get('name', '')} {ref.get('version', '')}".strip()
