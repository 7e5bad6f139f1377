"""Conformance reports: the terminal matrix, JSON, Markdown and a self-contained HTML page."""

from __future__ import annotations

import html
import json
import os
import platform
import tempfile
from collections import OrderedDict

from unidl_conformance.runner import Run

__all__ = ["matrix", "render_text", "write_report", "to_json", "to_markdown", "to_html"]

_SHORT_DT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
             "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8",
             "bool": "bool"}


def _column(r) -> str:
    c = r.case
    return f"{c.backend}/{c.device}/{c.dtype}"


def matrix(run: Run):
    """``(columns, rows)``: rows map ``check:target`` to ``{column: Result}``."""
    columns = list(OrderedDict.fromkeys(_column(r) for r in run.results))
    rows: dict = OrderedDict()
    for r in run.results:
        rows.setdefault(f"{r.case.check}:{r.case.target}", {})[_column(r)] = r
    return columns, rows


def _cell(r) -> str:
    if r is None:
        return "-"
    if r.status == "pass":
        return f"{r.ratio:.2f}" if r.ratio < 10 else "ok"
    return {"fail": "FAIL", "error": "ERR", "known": "kf", "xpass": "XP"}.get(r.status, r.status)


def render_text(run: Run, only_problems: bool = False) -> str:
    """The matrix as text: each cell is the worst error over its tolerance (<= 1 passes),
    ``FAIL``, ``ERR``, ``kf`` (known failure), ``XP`` (known failure that passed) or ``-``."""
    columns, rows = matrix(run)
    heads = []
    for col in columns:
        b, d, t = col.split("/")
        heads.append(f"{b[:5]}/{d}/{_SHORT_DT.get(t, t)}")
    name_w = max([len(k) for k in rows] + [10])
    col_w = [max(len(h), 5) for h in heads]
    lines = [" " * name_w + "  " + "  ".join(h.rjust(w) for h, w in zip(heads, col_w))]
    for name, cells in rows.items():
        if only_problems and all(r.status == "pass" for r in cells.values()):
            continue
        lines.append(name.ljust(name_w) + "  " + "  ".join(
            _cell(cells.get(c)).rjust(w) for c, w in zip(columns, col_w)))
    counts = run.counts()
    lines.append("")
    lines.append(
        f"{len(run.results)} cases in {run.seconds:.1f}s: " +
        ", ".join(f"{counts.get(k, 0)} {k}" for k in ("pass", "fail", "error", "known", "xpass")))
    for r in run.failed:
        c = r.case
        lines.append(f"FAILED {c.check} {c.target} on {c.backend}/{c.device}/{c.dtype}: "
                     f"{r.message}")
    return "\n".join(lines)


def _meta(run: Run) -> dict:
    return {"backends": run.backends, "seconds": round(run.seconds, 2), "options": run.options,
            "counts": run.counts(), "python": platform.python_version(),
            "machine": platform.machine(), "platform": platform.platform()}


def to_json(run: Run) -> str:
    devices = sorted({(r.case.backend, r.case.device) for r in run.results})
    dtypes = sorted({r.case.dtype for r in run.results})
    return json.dumps({**_meta(run), "ran": {"backends": sorted(run.backends),
                                             "devices": [f"{b}/{d}" for b, d in devices],
                                             "dtypes": dtypes},
                       "results": [r.as_dict() for r in run.results]}, indent=1)


def to_markdown(run: Run) -> str:
    counts = run.counts()
    out = ["# unidl conformance report", ""]
    out.append(f"{len(run.results)} cases in {run.seconds:.1f} s: " + ", ".join(
        f"**{counts.get(k, 0)}** {k}" for k in ("pass", "fail", "error", "known", "xpass")))
    out += ["", "| backend | version | devices |", "|---|---|---|"]
    for name, info in run.backends.items():
        out.append(f"| {name} | {info['version']} | {', '.join(info['devices'])} |")
    out += ["", "## By backend, device and dtype", "",
            "| backend/device/dtype | pass | fail | known | worst error / tolerance |",
            "|---|---|---|---|---|"]
    groups: dict = OrderedDict()
    for r in run.results:
        groups.setdefault(_column(r), []).append(r)
    for col, rs in groups.items():
        worst = max((r.ratio for r in rs if r.status == "pass"), default=0.0)
        out.append(f"| {col} | {sum(r.status == 'pass' for r in rs)} | "
                   f"{sum(r.status in ('fail', 'error') for r in rs)} | "
                   f"{sum(r.status in ('known', 'xpass') for r in rs)} | {worst:.2f} |")
    if run.failed:
        out += ["", "## Failures", ""]
        for r in run.failed:
            c = r.case
            out.append(f"- `{c.check}` **{c.target}** on {c.backend}/{c.device}/{c.dtype}: "
                       f"{r.message}")
    known = [r for r in run.results if r.status in ("known", "xpass")]
    if known:
        out += ["", "## Known failures", ""]
        seen = set()
        for r in known:
            key = (r.case.backend, r.reason)
            if key in seen:
                continue
            seen.add(key)
            n = sum(1 for k in known if (k.case.backend, k.reason) == key)
            out.append(f"- {r.case.backend}: {r.reason} ({n} cases)")
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;
font-size:12px}th,td{border:1px solid #ccc;padding:2px 5px;text-align:center}th{background:#eee;
position:sticky;top:0}td.name{text-align:left;font-family:monospace}.pass{background:#c8f0c8}
.warn{background:#f4f0b0}.fail,.error{background:#f4a0a0;font-weight:bold}.known{background:#d8d8f4}
.xpass{background:#b0e0f0}.none{color:#aaa}"""


def to_html(run: Run) -> str:
    columns, rows = matrix(run)
    counts = run.counts()
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<title>unidl conformance report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>unidl conformance report</h1>",
             f"<p>{len(run.results)} cases in {run.seconds:.1f} s: " + ", ".join(
                 f"<b>{counts.get(k, 0)}</b> {k}" for k in
                 ("pass", "fail", "error", "known", "xpass")) + "</p>", "<ul>"]
    for name, info in run.backends.items():
        parts.append(f"<li>{esc(name)} {esc(info['version'])}: {esc(', '.join(info['devices']))}"
                     "</li>")
    parts.append("</ul><p>Cells: worst error as a fraction of its tolerance (&le; 1 passes); "
                 "hover for details. FAIL: unexpected failure; kf: known failure.</p>")
    parts.append("<table><tr><th>case</th>" + "".join(f"<th>{esc(c)}</th>" for c in columns) +
                 "</tr>")
    for name, cells in rows.items():
        parts.append(f"<tr><td class='name'>{esc(name)}</td>")
        for col in columns:
            r = cells.get(col)
            if r is None:
                parts.append("<td class='none'>-</td>")
                continue
            cls = r.status
            if r.status == "pass" and r.ratio > 0.5:
                cls = "warn"
            title = esc(f"{r.status}; max abs {r.max_abs:.3g}, max rel {r.max_rel:.3g}, "
                        f"rtol {r.rtol}, atol {r.atol}, seed {r.seed}. {r.message} {r.reason}")
            parts.append(f"<td class='{cls}' title='{title}'>{esc(_cell(r))}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    if run.failed:
        parts.append("<h2>Failures</h2><ul>")
        for r in run.failed:
            c = r.case
            parts.append(f"<li><b>{esc(c.check)} {esc(c.target)}</b> on "
                         f"{esc(c.backend)}/{esc(c.device)}/{esc(c.dtype)}: {esc(r.message)}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run: Run, path: str) -> None:
    """Write ``run`` to ``path`` as JSON, Markdown or HTML (chosen by the extension).

    The file is written to a temporary name and renamed, so no half-written report is left.
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
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".unidl-report-", suffix=ext)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
