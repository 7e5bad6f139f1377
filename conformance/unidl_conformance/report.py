"""Conformance reports: JSON, Markdown and a self-contained HTML page (and, re-exported from
:mod:`unidl_conformance.terminal`, the terminal output).

Markdown and HTML open on what needs attention, in this order: the totals, the unexpected
failures (message, error/tolerance, tolerance, seed), a summary per backend (version, devices,
counts per dtype, check and device, and a histogram of the error/tolerance ratios of its
passing cases: an inline SVG of plain rectangles in HTML, a one-row table in Markdown), the
known failures grouped by reason, and only then the full matrix (one row per case, one column
per backend/device/dtype).
"""

from __future__ import annotations

import html
import json
import os
import platform
import tempfile

from unidl_conformance.runner import Run
from unidl_conformance.summary import (
    RATIO_BINS,
    STATUSES,
    BackendSummary,
    backend_summaries,
    cell,
    known_groups,
    matrix,
    reference_text,
)
from unidl_conformance.terminal import render_matrix, render_text

__all__ = ["matrix", "render_text", "render_matrix", "write_report", "to_json", "to_markdown",
           "to_html"]


def _meta(run: Run) -> dict:
    return {"backends": run.backends, "reference": run.reference,
            "seconds": round(run.seconds, 2), "options": run.options, "counts": run.counts(),
            "python": platform.python_version(), "machine": platform.machine(),
            "platform": platform.platform()}


def to_json(run: Run) -> str:
    """Every result, with the run's metadata (backends, reference, counts, options)."""
    devices = sorted({(r.case.backend, r.case.device) for r in run.results})
    dtypes = sorted({r.case.dtype for r in run.results})
    return json.dumps({**_meta(run), "ran": {"backends": sorted(run.backends),
                                             "devices": [f"{b}/{d}" for b, d in devices],
                                             "dtypes": dtypes},
                       "results": [r.as_dict() for r in run.results]}, indent=1)


# ---- Markdown -------------------------------------------------------------------------------
def _md(text) -> str:
    """``text`` safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _md_table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out


def _tally_row(label: str, t) -> list:
    return [label, t.total, *(t.counts.get(k, 0) for k in STATUSES),
            f"{t.worst:.2f}" if t.worst_result is not None else "-"]


_TALLY_HEAD = ["cases", *STATUSES, "worst error / tolerance"]


def _md_totals(run: Run) -> list[str]:
    counts = run.counts()
    line = f"{len(run.results)} cases in {run.seconds:.1f} s: " + ", ".join(
        f"**{counts.get(k, 0)}** {k}" for k in STATUSES) + "."
    ref = reference_text(run)
    if ref:
        line += f" Reference backend: {ref}."
    return ["# unidl conformance report", "", line]


def _md_failures(run: Run) -> list[str]:
    out = ["", f"## Unexpected failures ({len(run.failed)})", ""]
    if not run.failed:
        return out + ["None."]
    rows = [[r.case.check, r.case.target, f"{r.case.backend}/{r.case.device}/{r.case.dtype}",
             r.status, r.message, f"{r.ratio:.3g}", r.rtol, r.atol, r.seed] for r in run.failed]
    return out + _md_table(["check", "case", "backend/device/dtype", "status", "message",
                            "error / tolerance", "rtol", "atol", "seed"], rows)


def _md_backend(s: BackendSummary) -> list[str]:
    role = " (the reference backend)" if s.reference else ""
    out = ["", f"### {_md(s.name)} {_md(s.version)}{role}", "",
           f"Devices: {_md(', '.join(s.devices) or '-')}"
           + (f" (reports {_md(', '.join(s.reported_devices))})"
              if s.reported_devices and s.reported_devices != s.devices else ""), ""]
    out += _md_table(["dtype", *_TALLY_HEAD],
                     [_tally_row(k, t) for k, t in s.by_dtype.items()]
                     + [_tally_row("all", s.total)])
    out += [""] + _md_table(["check", *_TALLY_HEAD],
                            [_tally_row(k, t) for k, t in s.by_check.items()])
    if len(s.by_device) > 1:
        out += [""] + _md_table(["device", *_TALLY_HEAD],
                                [_tally_row(k, t) for k, t in s.by_device.items()])
    return out + _md_histogram(s)


def _md_histogram(s: BackendSummary) -> list[str]:
    """The passing cases per error/tolerance bin, as a one-row table."""
    return ["", f"Passing cases by error / tolerance ({_HIST_NOTE}):", ""] + _md_table(
        ["error / tolerance", *(label for _, _, label in RATIO_BINS), "passing"],
        [["cases", *s.histogram, sum(s.histogram)]])


def _md_known(run: Run) -> list[str]:
    groups = known_groups(run)
    if not groups:
        return []
    rows = [[g.backend, g.reason or "(no reason given)", len(g.results), g.xpass,
             ", ".join(g.values("check")), ", ".join(g.values("dtype")),
             ", ".join(g.values("device"))] for g in groups]
    return ["", "## Known failures", ""] + _md_table(
        ["backend", "reason", "cases", "passed anyway", "checks", "dtypes", "devices"], rows)


def _md_matrix(run: Run) -> list[str]:
    columns, rows = matrix(run)
    out = ["", "## Matrix", "",
           "Cells: worst error as a fraction of its tolerance (<= 1 passes), FAIL, ERR, "
           "kf (known failure), XP (known failure that passed), - (no such case).", ""]
    return out + _md_table(["case", *columns],
                           [[name, *(cell(cells.get(c)) for c in columns)]
                            for name, cells in rows.items()])


def to_markdown(run: Run) -> str:
    """The report for a pull request: totals, failures, backends, known failures, matrix."""
    out = _md_totals(run) + _md_failures(run) + ["", "## Backends"]
    for s in backend_summaries(run):
        out += _md_backend(s)
    out += _md_known(run) + _md_matrix(run)
    return "\n".join(out) + "\n"


# ---- HTML -----------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;
font-size:12px;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 5px;text-align:center}
th{background:#eee;position:sticky;top:0}td.name,td.msg{text-align:left}td.name{font-family:
monospace}.pass{background:#c8f0c8}.warn{background:#f4f0b0}.fail,.error{background:#f4a0a0;
font-weight:bold}.known{background:#d8d8f4}.xpass{background:#b0e0f0}.none{color:#aaa}
.summary{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
figure.hist{margin:.5em 0;font-size:12px}figure.hist text{fill:#333}"""


def _h_table(head: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    """An HTML table; ``classes`` gives each column's cell class (``msg`` left-aligns)."""
    classes = classes or [""] * len(head)
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f"<td class='{c}'>{html.escape(str(v))}</td>" if c else
            f"<td>{html.escape(str(v))}</td>" for v, c in zip(row, classes)) + "</tr>")
    return "".join(out) + "</table>"


def _h_totals(run: Run) -> list[str]:
    esc = html.escape
    counts = run.counts()
    ref = reference_text(run)
    return ["<h1>unidl conformance report</h1>",
            f"<p>{len(run.results)} cases in {run.seconds:.1f} s: " + ", ".join(
                f"<b>{counts.get(k, 0)}</b> {k}" for k in STATUSES) + "."
            + (f" Reference backend: {esc(ref)}." if ref else "") + "</p>"]


def _h_failures(run: Run) -> list[str]:
    out = [f"<h2>Unexpected failures ({len(run.failed)})</h2>"]
    if not run.failed:
        return out + ["<p>None.</p>"]
    rows = [[r.case.check, r.case.target, f"{r.case.backend}/{r.case.device}/{r.case.dtype}",
             r.status, r.message, f"{r.ratio:.3g}", r.rtol, r.atol, r.seed] for r in run.failed]
    return out + [_h_table(["check", "case", "backend/device/dtype", "status", "message",
                            "error / tolerance", "rtol", "atol", "seed"], rows,
                           ["name", "name", "", "fail", "msg", "", "", "", ""])]


def _h_backend(s: BackendSummary) -> list[str]:
    esc = html.escape
    role = " (the reference backend)" if s.reference else ""
    devices = ", ".join(s.devices) or "-"
    if s.reported_devices and s.reported_devices != s.devices:
        devices += f" (reports {', '.join(s.reported_devices)})"
    tables = [_h_table(["dtype", *_TALLY_HEAD], [_tally_row(k, t) for k, t in s.by_dtype.items()]
                       + [_tally_row("all", s.total)]),
              _h_table(["check", *_TALLY_HEAD], [_tally_row(k, t)
                                                 for k, t in s.by_check.items()])]
    if len(s.by_device) > 1:
        tables.append(_h_table(["device", *_TALLY_HEAD],
                               [_tally_row(k, t) for k, t in s.by_device.items()]))
    tables.append(_svg_histogram(s.name, s.histogram))
    return [f"<h3>{esc(s.name)} {esc(s.version)}{role}</h3>", f"<p>Devices: {esc(devices)}</p>",
            "<div class='summary'>" + "".join(tables) + "</div>"]


_HIST_NOTE = "bins by lower edge; log-scaled below 0.1; 1 is the tolerance"
_BAR_W, _BAR_GAP, _PLOT_H, _MARGIN, _TOP = 26, 4, 90, 10, 16
_LOG_BINS = sum(high <= 0.1 for _, high, _ in RATIO_BINS)  # (0 and the log-scaled bins)


def _bin_text(low: float, high: float) -> str:
    """A bin's range for its tooltip: ``exactly 0``, ``[0.1, 0.2)``..."""
    if high == 0.0:
        return "exactly 0"
    if low == 0.0:
        return f"(0, {high:g})"
    return f"[{low:g}, {high:g}{']' if high == 1.0 else ')'}"


def _svg_bar(i: int, count: int, top: int) -> list[str]:
    """One bin: its rectangle (with a tooltip), the count above it, the label below."""
    low, high, label = RATIO_BINS[i]
    base = _TOP + _PLOT_H
    height = 0 if not count else max(1, round(_PLOT_H * count / top))
    x = _MARGIN + i * (_BAR_W + _BAR_GAP)
    mid = x + _BAR_W / 2
    fill = "#d9a520" if low >= 0.5 else "#4caf50"
    out = [f"<rect class='bin' x='{x}' y='{base - height}' width='{_BAR_W}' height='{height}' "
           f"fill='{fill}' data-bin='{html.escape(label)}' data-count='{count}'><title>"
           f"{html.escape(_bin_text(low, high))}: {count} passing</title></rect>"]
    if count:
        out.append(f"<text x='{mid}' y='{base - height - 3}'>{count}</text>")
    out.append(f"<text x='{mid}' y='{base + 12}'>{html.escape(label)}</text>")
    return out


def _svg_histogram(name: str, counts: list) -> str:
    """An inline SVG (plain rectangles, no script) of a backend's passing cases per
    error/tolerance bin (:data:`~unidl_conformance.summary.RATIO_BINS`)."""
    esc = html.escape
    width = 2 * _MARGIN + len(counts) * (_BAR_W + _BAR_GAP) - _BAR_GAP
    base, height = _TOP + _PLOT_H, _TOP + _PLOT_H + 34
    top = max(counts, default=0) or 1
    parts = [f"<figure class='hist'><svg class='ratio-hist' data-backend='{esc(name)}' "
             f"xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' font-size='9' text-anchor='middle' role='img'>",
             f"<title>{esc(name)}: {sum(counts)} passing cases by error / tolerance</title>",
             f"<line x1='{_MARGIN}' y1='{base}' x2='{width - _MARGIN}' y2='{base}' "
             "stroke='#888'/>"]
    for i, count in enumerate(counts):
        parts += _svg_bar(i, count, top)
    split = _MARGIN + _LOG_BINS * (_BAR_W + _BAR_GAP) - _BAR_GAP / 2  # (log | linear bins)
    parts.append(f"<line x1='{split}' y1='{_TOP}' x2='{split}' y2='{base}' stroke='#bbb' "
                 "stroke-dasharray='3,3'/>")
    parts.append(f"<text x='{width / 2}' y='{height - 4}'>error / tolerance</text></svg>")
    parts.append(f"<figcaption>{sum(counts)} passing cases by error / tolerance "
                 f"({esc(_HIST_NOTE)})</figcaption></figure>")
    return "".join(parts)


def _h_known(run: Run) -> list[str]:
    groups = known_groups(run)
    if not groups:
        return []
    rows = [[g.backend, g.reason or "(no reason given)", len(g.results), g.xpass,
             ", ".join(g.values("check")), ", ".join(g.values("dtype")),
             ", ".join(g.values("device"))] for g in groups]
    return ["<h2>Known failures</h2>",
            _h_table(["backend", "reason", "cases", "passed anyway", "checks", "dtypes",
                      "devices"], rows, ["", "msg", "", "", "", "", ""])]


def _h_matrix(run: Run) -> list[str]:
    esc = html.escape
    columns, rows = matrix(run)
    parts = ["<h2>Matrix</h2><p>Cells: worst error as a fraction of its tolerance (&le; 1 "
             "passes); hover for details. FAIL: unexpected failure; kf: known failure.</p>",
             "<table><tr><th>case</th>" + "".join(f"<th>{esc(c)}</th>" for c in columns) +
             "</tr>"]
    for name, cells in rows.items():
        parts.append(f"<tr><td class='name'>{esc(name)}</td>")
        for col in columns:
            r = cells.get(col)
            if r is None:
                parts.append("<td class='none'>-</td>")
                continue
            cls = "warn" if r.status == "pass" and r.ratio > 0.5 else r.status
            title = esc(f"{r.status}; max abs {r.max_abs:.3g}, max rel {r.max_rel:.3g}, "
                        f"rtol {r.rtol}, atol {r.atol}, seed {r.seed}. {r.message} {r.reason}")
            parts.append(f"<td class='{cls}' title='{title}'>{esc(cell(r))}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    return parts


def to_html(run: Run) -> str:
    """One self-contained page (inline CSS, no scripts): totals, failures, backends, known
    failures, then the colour-coded matrix."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<title>unidl conformance report</title>", f"<style>{_CSS}</style></head><body>"]
    parts += _h_totals(run) + _h_failures(run) + ["<h2>Backends</h2>"]
    for s in backend_summaries(run):
        parts += _h_backend(s)
    parts += _h_known(run) + _h_matrix(run)
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- writing --------------------------------------------------------------------------------
def _new_file_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:  # Linux: no process-wide change
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_report(run: Run, path: str) -> None:
    """Write ``run`` to ``path`` as JSON, Markdown or HTML (chosen by the extension).

    The file is written to a temporary name and renamed, so no half-written report is left.
    It gets the permissions an ordinary new file would get (``0o666`` less the umask), not
    the ``0o600`` of :func:`tempfile.mkstemp`.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        text = to_json(run)
    elif ext in (".md", ".markdown"):
        text = to_markdown(run)
    elif ext in (".html", ".htm"):
        text = to_html(run)
    else:
        raise ValueError(f"unknown report format {ext!r}; use .json, .md or .html")
    mode = _new_file_mode()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".unidl-report-", suffix=ext)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
