"""The terminal output of ``unidl conformance``: never wider than :data:`WIDTH` columns.

In order: the unexpected failures (each on its own lines, with its message), a summary per
backend (version, devices, counts per dtype and device, worst error/tolerance), the known
failures by reason, and the totals line. ``--only-problems`` replaces the per-backend summary
and the reasons with one line per known failure; ``--matrix`` prints the full matrix (as wide
as it needs) first. The full matrix is always in the report files.
"""

from __future__ import annotations

import textwrap

from unidl_conformance.runner import Run
from unidl_conformance.summary import (
    SHORT_DTYPES,
    STATUSES,
    BackendSummary,
    Tally,
    backend_summaries,
    cell,
    known_groups,
    matrix,
    reference_text,
    totals_text,
)

__all__ = ["WIDTH", "render_text", "render_matrix", "fit"]

#: the widest line the terminal output may have
WIDTH = 100
#: most lines of one failure's message before it is cut
MESSAGE_LINES = 4
_LABEL_MAX = 24


def one_line(text) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def plural(n: int, word: str) -> str:
    """``1 case``, ``2 cases``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def clip(line: str, width: int = WIDTH) -> str:
    """``line`` cut to at most ``width`` columns (ending in ``...`` when cut)."""
    return line if len(line) <= width else line[: max(width - 3, 0)] + "..."


def fit(text, width: int = WIDTH, first: str = "", indent: str = "    ",
        max_lines: int | None = None) -> list[str]:
    """``text`` on one line, wrapped to ``width`` columns: the first line starts with
    ``first``, the others with ``indent``; at most ``max_lines`` lines (cut with ``...``)."""
    return textwrap.wrap(one_line(text), width=width, initial_indent=first,
                         subsequent_indent=indent, break_long_words=True,
                         break_on_hyphens=False, max_lines=max_lines,
                         placeholder=" ...") or [first.rstrip()]


def _failure_lines(r, width: int) -> list[str]:
    c = r.case
    head = "FAILED" if r.status == "fail" else "ERROR"
    text = (f"{head} {c.check} {c.target} on {c.backend}/{c.device}/{c.dtype}: "
            f"{r.message or '(no message)'}")
    return fit(text, width, max_lines=MESSAGE_LINES)


def _failures(run: Run, width: int) -> list[str]:
    failed = run.failed
    if not failed:
        return []
    lines = [f"Unexpected failures ({len(failed)}):"]
    for r in failed:
        lines += _failure_lines(r, width)
    return lines


def _xpasses(run: Run, width: int) -> list[str]:
    xp = [r for r in run.results if r.status == "xpass"]
    if not xp:
        return []
    lines = [f"Known failures that passed ({len(xp)}; remove them from the known list):"]
    for r in xp:
        c = r.case
        lines += fit(f"XPASS {c.check} {c.target} on {c.backend}/{c.device}/{c.dtype}: "
                     f"{r.reason}", width, max_lines=2)
    return lines


def _table(rows: list[tuple[str, Tally]], head: str, width: int) -> list[str]:
    """A narrow table: label, cases, one column per status, worst error/tolerance."""
    names = ["cases", *STATUSES, "worst"]
    cells = [[str(t.total), *(str(t.counts.get(k, 0)) for k in STATUSES),
              f"{t.worst:.2f}" if t.worst_result is not None else "-"] for _, t in rows]
    label_w = min(max([len(head)] + [len(label) for label, _ in rows]), _LABEL_MAX)
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]
    out = ["  " + head.ljust(label_w) + "".join("  " + n.rjust(w) for n, w in zip(names, widths))]
    for (label, _), row in zip(rows, cells):
        out.append("  " + clip(label, label_w).ljust(label_w)
                   + "".join("  " + v.rjust(w) for v, w in zip(row, widths)))
    return [clip(line, width) for line in out]


def _backend_block(s: BackendSummary, width: int) -> list[str]:
    devices = ", ".join(s.devices) or "-"
    if s.reported_devices and list(s.reported_devices) != list(s.devices):
        devices += f" (of {', '.join(s.reported_devices)})"
    role = ", the reference" if s.reference else ""
    lines = fit(f"{s.name} {s.version}{role}; devices: {devices}", width)
    rows = [(dt, t) for dt, t in s.by_dtype.items()]
    if len(s.by_device) > 1:
        rows += [(f"on {dev}", t) for dev, t in s.by_device.items()]
    rows.append(("all", s.total))
    lines += _table(rows, "dtype", width)
    w = s.total.worst_result
    if w is not None:
        c = w.case
        lines += fit(f"worst passing case: {c.check} {c.target} on {c.device}/{c.dtype} at "
                     f"{w.ratio:.2f} of its tolerance", width, first="  ")
    return lines


def _backends(run: Run, width: int) -> list[str]:
    ref = reference_text(run)
    lines = fit(f"Backends (reference: {ref}):" if ref else "Backends:", width)
    for s in backend_summaries(run):
        lines += _backend_block(s, width)
    return lines


def _known(run: Run, width: int) -> list[str]:
    groups = known_groups(run)
    if not groups:
        return []
    n = sum(len(g.results) for g in groups)
    lines = [f"Known failures ({plural(n, 'case')}, by reason; details in the reports):"]
    for g in groups:
        where = ", ".join(g.values("check")) + "; " + ", ".join(g.values("dtype"))
        lines += fit(f"{g.backend} ({plural(len(g.results), 'case')}: {where}): "
                     f"{g.reason or '(no reason given)'}", width, first="  ", max_lines=2)
    return lines


def _known_rows(run: Run, width: int) -> list[str]:
    rows = [r for r in run.results if r.status == "known"]
    if not rows:
        return []
    lines = [f"Known failures ({len(rows)}):"]
    for r in rows:
        c = r.case
        lines.append(clip("  " + one_line(f"{cell(r)} {c.check}:{c.target} {c.backend}/"
                                          f"{c.device}/{c.dtype}: {r.reason}"), width))
    return lines


def render_matrix(run: Run, only_problems: bool = False) -> str:
    """The full matrix as text (one column per backend/device/dtype: as wide as it needs).
    ``only_problems`` keeps the rows with a failure, error or known failure."""
    columns, rows = matrix(run)
    heads = []
    for col in columns:
        b, rest = col.split("/", 1)  # a device name may have slashes of its own
        d, t = rest.rsplit("/", 1)
        heads.append(f"{b}/{d}/{SHORT_DTYPES.get(t, t)}")
    name_w = max([len(k) for k in rows] + [10])
    col_w = [max(len(h), 5) for h in heads]
    lines = [" " * name_w + "  " + "  ".join(h.rjust(w) for h, w in zip(heads, col_w))]
    for name, cells in rows.items():
        if only_problems and all(r.status == "pass" for r in cells.values()):
            continue
        lines.append(name.ljust(name_w) + "  " + "  ".join(
            cell(cells.get(c)).rjust(w) for c, w in zip(columns, col_w)))
    return "\n".join(line.rstrip() for line in lines)


def render_text(run: Run, only_problems: bool = False, width: int = WIDTH,
                show_matrix: bool = False) -> str:
    """The terminal output of ``run``; every line at most ``width`` columns (except the
    matrix that ``show_matrix`` adds at the top)."""
    sections = []
    if show_matrix:
        sections.append(render_matrix(run, only_problems).split("\n"))
    sections.append(_failures(run, width))
    sections.append(_xpasses(run, width))
    if only_problems:
        sections.append(_known_rows(run, width))
    else:
        sections.append(_backends(run, width))
        sections.append(_known(run, width))
    sections.append(fit(totals_text(run), width))
    return "\n\n".join("\n".join(s) for s in sections if s)
