"""What ``unidl conformance`` prints and writes: a terminal summary no wider than 100 columns
(failures first), reports that open on the failures and a per-backend summary, and report
files with the permissions of an ordinary new file."""

from __future__ import annotations

import json
import os
import stat
from html.parser import HTMLParser

import pytest

from unidl import dtypes as _dt
from unidl_conformance.cases import Case, Result
from unidl_conformance.report import render_text, to_html, to_json, to_markdown, write_report
from unidl_conformance.runner import Run
from unidl_conformance.summary import RATIO_BINS
from unidl_conformance.terminal import WIDTH

LONG_BACKEND = "a_really_long_third_party_backend_name"
LONG_DEVICE = "xla:/job:localhost/task:0/device:TPU:0"
LONG_OP = "a_deliberately_long_operation_name_for_width_checks"
DEVICES = ["cpu", "cuda:0", "cuda:1", LONG_DEVICE]
TARGETS = ("add", LONG_OP)
REASON = ("this backend has no native bfloat16 and its emulation lacks most loops, so the "
          "backend does not claim the dtype for any op of the spec at all")


def _result(check, backend, device, dtype, target, status="pass", ratio=0.25, message="",
            reason=""):
    return Result(Case(check, backend, device, dtype, target), status, max_abs=1e-7,
                  max_rel=1e-6, ratio=ratio, rtol=1e-5, atol=1e-6, seed=4242,
                  message=message, reason=reason)


def _failures():
    """(case fields, status, message): long words, newlines, long names."""
    return [
        (("forward", LONG_BACKEND, LONG_DEVICE, "bfloat16", LONG_OP), "fail",
         f"{LONG_OP}[large] output 0: mismatch at (3, 7): got nan, expected 1.0 " * 4),
        (("optimizer", LONG_BACKEND, "cuda:1", "float32", "adam[amsgrad,weight_decay]"),
         "fail", "x" * 250),
        (("grad", "numpy", "cpu", "float64", "tanh"), "error",
         "Traceback (most recent call last):\n  File 'x.py', line 1\nValueError: boom"),
    ]


def synthetic_run() -> Run:
    """A run with long names, every dtype, four devices, failures, known failures and an
    unexpected pass (no backend runs: the results are made up)."""
    results = []
    for backend, devices in (("numpy", ["cpu"]), (LONG_BACKEND, DEVICES)):
        for device in devices:
            for dtype in _dt.DTYPES:
                for target in TARGETS:
                    status, reason = "pass", ""
                    if backend == LONG_BACKEND and dtype == "float16":
                        status, reason = "known", REASON
                    results.append(_result("forward", backend, device, dtype, target, status,
                                           reason=reason))
    results.append(_result("layer", LONG_BACKEND, "cpu", "float32", "LSTM", "xpass",
                           reason="LSTM was broken in 1.0"))
    for fields, status, message in _failures():
        results.append(_result(*fields, status=status, ratio=float("inf"), message=message))
    backends = {"numpy": {"version": "2.2.6", "devices": ["cpu"]},
                LONG_BACKEND: {"version": "10.20.30.dev20250101+cu130.gabcdef0123456789",
                               "devices": DEVICES}}
    return Run(results=results, backends=backends, seconds=12.5, options={},
               reference={"name": "numpy", "version": "2.2.6"})


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("only_problems", [False, True])
def test_terminal_output_fits_100_columns(only_problems):
    run = synthetic_run()
    text = render_text(run, only_problems=only_problems)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    # each failure on its own lines, naming check, case, backend/device/dtype and the message
    starts = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    assert len(starts) == len(run.failed) == 3
    for (check, backend, device, dtype, target), status, message in _failures():
        head = "FAILED" if status == "fail" else "ERROR"
        assert f"{head} {check} {target} on {backend}/{device}/{dtype}:" in _flat(text)
        assert _flat(message)[:60] in _flat(text)
    assert "XPASS layer LSTM" in _flat(text)
    # no matrix: no row per case, no column per backend/device/dtype
    assert not any(line.startswith(("forward:", "layer:")) for line in lines)
    counts = run.counts()
    assert lines[-1] == (f"{len(run.results)} cases in 12.5s: {counts['pass']} pass, 2 fail, "
                         f"1 error, {counts['known']} known, 1 xpass")


def test_terminal_output_orders_failures_summary_known_totals():
    run = synthetic_run()
    text = render_text(run)
    known = len(DEVICES) * len(TARGETS)  # float16 on every device of LONG_BACKEND
    order = [text.index(s) for s in ("Unexpected failures (3):", "Backends (reference: numpy",
                                     f"Known failures ({known + 1} cases",  # + the XPASS
                                     f"{len(run.results)} cases in")]
    assert order == sorted(order), order
    flat = _flat(text)
    # per backend: version, devices, one row per dtype and per device, worst error/tolerance
    assert "10.20.30.dev20250101+cu130.gabcdef0123456789" in flat
    assert f"devices: {', '.join(DEVICES)}" in flat
    block = text[text.index(f"\n{LONG_BACKEND} "):text.index("\nKnown failures (")]
    rows = {line.split()[0]: line.split()[1:] for line in block.splitlines()[2:]
            if line.startswith("  ") and not line.startswith("  worst")}
    # cases pass fail error known xpass worst
    assert rows["float16"] == [str(known), "0", "0", "0", str(known), "0", "-"]
    # float32: every device and target, the LSTM unexpected pass, the optimizer failure
    assert rows["float32"][:4] == [str(known + 2), str(known), "1", "0"]
    for dev in DEVICES:  # and one row per device, as that backend ran on several
        assert any(line.startswith(f"  on {dev}"[:23]) for line in block.splitlines()), dev
    assert "worst passing case: forward add on cpu/bool at 0.25 of its tolerance" in flat
    assert f"{LONG_BACKEND} ({known} cases: forward; float16): {REASON[:40]}" in flat


def test_terminal_matrix_only_on_request():
    run = synthetic_run()
    text = render_text(run, show_matrix=True)
    head, rest = text.split("\n", 1)
    assert f"{LONG_BACKEND}/{LONG_DEVICE}/bf16" in head  # full names in the matrix header
    assert any(line.startswith(f"forward:{LONG_OP}") for line in rest.splitlines())
    assert "Unexpected failures (3):" in rest
    problems = render_text(run, show_matrix=True, only_problems=True)
    rows = [line.split()[0] for line in problems.splitlines()
            if line.startswith(("forward:", "layer:", "grad:", "optimizer:"))]
    # every matrix row here has a failure or a known failure (float16 is known everywhere)
    assert sorted(rows) == sorted({f"forward:{t}" for t in TARGETS}
                                  | {"layer:LSTM", "grad:tanh",
                                     "optimizer:adam[amsgrad,weight_decay]"})


def test_narrower_width_is_respected():
    text = render_text(synthetic_run(), width=72)
    assert max(len(line) for line in text.splitlines()) <= 72


def _positions(text: str, markers) -> list[int]:
    return [text.index(m) for m in markers]


def test_html_report_opens_on_failures_then_backends_then_known_then_matrix():
    page = to_html(synthetic_run())
    order = _positions(page, ["104 cases in 12.5 s", "<h2>Unexpected failures (3)</h2>",
                              "<h2>Backends</h2>", "<h2>Known failures</h2>",
                              "<h2>Matrix</h2>"])
    assert order == sorted(order), order
    failures = page[order[1]:order[2]]
    assert "got nan, expected 1.0" in failures and "4242" in failures and "1e-05" in failures
    assert "Traceback (most recent call last):" in failures
    backends = page[order[2]:order[3]]
    assert f"<h3>{LONG_BACKEND} 10.20.30" in backends and "(the reference backend)" in backends
    assert "<th>dtype</th>" in backends and "<th>check</th>" in backends
    assert "<td>cuda:1</td>" in backends  # a row per device: that backend ran on four
    known = page[order[3]:order[4]]
    assert known.count(REASON) == 1 and "LSTM was broken in 1.0" in known
    assert "class='fail'" in page[order[4]:] and "class='known'" in page[order[4]:]


def test_markdown_report_has_the_same_order():
    md = to_markdown(synthetic_run())
    order = _positions(md, ["**92** pass", "## Unexpected failures (3)", "## Backends",
                            "## Known failures", "## Matrix"])
    assert order == sorted(order), order
    assert md.startswith("# unidl conformance report")
    assert "Reference backend: numpy 2.2.6." in md
    assert f"| forward | {LONG_OP} | {LONG_BACKEND}/{LONG_DEVICE}/bfloat16 | fail |" in md
    # a newline in a message does not break the table
    assert "Traceback (most recent call last): File 'x.py', line 1 ValueError: boom" in md
    assert f"| {LONG_BACKEND} | {REASON} | 8 | 0 | forward | float16 |" in md
    assert "| float16 | 8 | 0 | 0 | 0 | 8 | 0 | - |" in md


def test_json_names_the_reference():
    data = json.loads(to_json(synthetic_run()))
    assert data["reference"] == {"name": "numpy", "version": "2.2.6"}
    assert len(data["results"]) == len(synthetic_run().results)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_reports_get_the_mode_of_an_ordinary_new_file(tmp_path, umask):
    run = synthetic_run()
    old = os.umask(umask)
    try:
        (tmp_path / "plain.txt").write_text("x")
        for name in ("r.json", "r.md", "r.html"):
            write_report(run, str(tmp_path / name))
            write_report(run, str(tmp_path / name))  # replacing a report: same mode
    finally:
        os.umask(old)
    plain = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert plain == 0o666 & ~umask
    for name in ("r.json", "r.md", "r.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == plain, name
    # atomic: no temporary file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "r.html", "r.json",
                                                          "r.md"]


class _Histograms(HTMLParser):
    """Each ``<svg class='ratio-hist'>``: its backend and its bins' ``data-count``s."""

    def __init__(self):
        super().__init__()
        self.found: list = []  # [(backend, [count, ...])]
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "svg" and attrs.get("class") == "ratio-hist":
            self.found.append((attrs["data-backend"], []))
        elif tag == "rect" and attrs.get("class") == "bin":
            self.found[-1][1].append(int(attrs["data-count"]))


def test_html_report_has_an_error_histogram_per_backend():
    """One inline SVG per backend in its summary, whose bins add up to its passing cases;
    the ratios fall in the documented bins (0 alone, log-scaled below 0.1, 0.1 steps)."""
    run = synthetic_run()
    ratios = [0.0, 5e-5, 5e-4, 5e-3, 0.05, 0.1, 0.15, 0.55, 0.95, 1.0]
    run.results += [_result("grad", "numpy", "cpu", "float32", f"op{i}", ratio=r)
                    for i, r in enumerate(ratios)]
    parser = _Histograms()
    page = to_html(run)
    parser.feed(page)
    assert [name for name, _ in parser.found] == ["numpy", LONG_BACKEND]
    assert parser.scripts == 0
    for name, counts in parser.found:
        passing = sum(r.status == "pass" for r in run.results if r.case.backend == name)
        assert len(counts) == len(RATIO_BINS) and sum(counts) == passing, name
    numpy_counts = dict(zip((label for _, _, label in RATIO_BINS), parser.found[0][1]))
    base = len(TARGETS) * len(_dt.DTYPES)  # (synthetic_run's numpy passes: ratio 0.25)
    assert numpy_counts == {"0": 1, "<1e-4": 1, "1e-4": 1, "1e-3": 1, "1e-2": 1, "0.1": 2,
                            "0.2": base, "0.3": 0, "0.4": 0, "0.5": 1, "0.6": 0,
                            "0.7": 0, "0.8": 0, "0.9": 2}
    backends = page[page.index("<h2>Backends</h2>"):page.index("<h2>Known failures</h2>")]
    assert backends.count("<svg class='ratio-hist'") == 2  # (in the per-backend summary)
    md = to_markdown(run)
    rows = [line for line in md.splitlines() if line.startswith("| cases |")]
    assert [int(row.split("|")[-2]) for row in rows] == [sum(c) for _, c in parser.found]
