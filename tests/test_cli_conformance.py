"""``unidl conformance``: selection options, reports (JSON, Markdown, HTML) and exit status."""

from __future__ import annotations

import json
import re

import pytest

import unidl
from tests.conftest import BACKENDS, ROOT
from unidl.cli import main
from unidl.tolerances import tolerance

EXAMPLE = ROOT / "examples" / "third_party_backend" / "unidl_example_backend"

_SOFTMAX_OVERFLOW = """
import numpy as np

from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_numpy.backend import NumpyBackend

    class Broken(NumpyBackend):
        name = "overflowing"

        def __init__(self):
            super().__init__()
            self.kernels["softmax"] = lambda x, axis=-1: np.exp(x) / np.sum(
                np.exp(x), axis=axis, keepdims=True)

    return Broken()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="overflowing", load=_load)]
"""


def _conformance(*args) -> int:
    return main(["conformance", "--no-progress", *args])


def test_reports_and_exit_status_when_clean(tmp_path, capsys):
    html_path, json_path, md_path = (tmp_path / f"report.{e}" for e in ("html", "json", "md"))
    rc = _conformance("--backend", "numpy", "--check", "forward", "-k", "add,matmul",
                      "--dtype", "float32,float64", "--report", str(html_path),
                      "--report", str(json_path), "--report", str(md_path))
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = [ln for ln in out.splitlines() if not ln.startswith("report written to ")]
    assert max(len(line) for line in lines) <= 100  # (a report's path is never wrapped)
    # no failures to list; a summary of the backend: one row per dtype, then the totals
    assert "Unexpected failures" not in out
    assert re.search(r"^numpy \S+, the reference; devices: cpu$", out, re.M), out
    for dtype in ("float32", "float64"):
        assert re.search(rf"^  {dtype}\s+(\d+)\s+\1\s+0\s+0\s+0\s+0\s+\d\.\d\d$", out, re.M)
    assert re.search(r"^\d+ cases in \d+\.\ds: \d+ pass, 0 fail, 0 error, 0 known, 0 xpass$",
                     out, re.M), out
    assert out.rstrip().splitlines()[-3:] == [f"report written to {p}"
                                              for p in (html_path, json_path, md_path)]
    assert "forward:add" not in out  # the matrix is in the reports only

    data = json.loads(json_path.read_text())
    assert data["ran"] == {"backends": ["numpy"], "devices": ["numpy/cpu"],
                           "dtypes": ["float32", "float64"]}
    assert data["counts"]["pass"] == len(data["results"]) > 0
    cases = {(r["case"], r["dtype"]) for r in data["results"]}
    assert {("add", "float32"), ("add", "float64"), ("matmul", "float32"),
            ("scatter_add", "float64")} <= cases
    assert all(r["check"] == "forward" for r in data["results"])
    for r in data["results"]:
        assert set(r) >= {"backend", "device", "dtype", "check", "case", "status", "seed",
                          "max_abs_error", "max_rel_error", "error_over_tolerance", "rtol",
                          "atol"}
        assert r["backend"] == "numpy" and r["device"] == "cpu" and r["status"] == "pass"
        assert 0.0 <= r["error_over_tolerance"] <= 1.0
    add32 = next(r for r in data["results"] if (r["case"], r["dtype"]) == ("add", "float32"))
    assert (add32["rtol"], add32["atol"]) == tolerance("float32", "elementwise")

    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<table>" in page and "forward:matmul" in page and "class='pass'" in page
    # self-contained: no scripts, stylesheets or images fetched from anywhere
    assert not re.search(r"<(script|link|img)\b|src=|href=|url\(", page)

    md = md_path.read_text()
    assert md.startswith("# unidl conformance report")
    assert "**0** fail" in md and "## Unexpected failures (0)\n\nNone." in md
    assert "| float32 |" in md and "| case | numpy/cpu/float32 | numpy/cpu/float64 |" in md


def test_matrix_flag_prints_the_matrix(capsys):
    args = ("--backend", "numpy", "--check", "forward", "-k", "add,matmul", "--dtype",
            "float32,float64")
    assert _conformance(*args, "--matrix") == 0
    out = capsys.readouterr().out
    # one row per case, one column per backend/device/dtype, before the summary
    assert re.search(r"^\s+numpy/cpu/f32\s+numpy/cpu/f64$", out, re.M), out
    assert re.search(r"^forward:add\s+\d\.\d\d\s+\d\.\d\d$", out, re.M), out
    assert out.index("forward:add") < out.index("Backends")
    assert _conformance(*args, "--matrix", "--only-problems") == 0
    out = capsys.readouterr().out
    assert "forward:add" not in out and "Backends" not in out  # no problem row, no summary


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"unidl {unidl.__version__}\n"


def test_exit_status_1_when_a_case_fails(installed, tmp_path, capsys):
    installed("unidl-overflowing", {"overflowing": "unidl_overflowing_plugin"},
              modules={"unidl_overflowing_plugin.py": _SOFTMAX_OVERFLOW})
    json_path, md_path, html_path = (tmp_path / f"r.{e}" for e in ("json", "md", "html"))
    rc = _conformance("--backend", "overflowing", "--check", "forward", "-k", "softmax,add",
                      "--dtype", "float32", "--report", str(json_path), "--report", str(md_path),
                      "--report", str(html_path))
    out = capsys.readouterr().out
    assert rc == 1
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "FAILED forward softmax on overflowing/cpu/float32: softmax[large_logits]" in out
    # failures first, then the backend summary and the totals
    assert out.index("Unexpected failures (1):") < out.index("Backends") \
        < out.index("cases in")
    data = json.loads(json_path.read_text())
    n = len(data["results"])
    assert re.search(rf"^  float32\s+{n}\s+{n - 1}\s+1\s+0\s+0\s+0\s", out, re.M), out
    failed = [(r["check"], r["case"], r["backend"]) for r in data["results"]
              if r["status"] == "fail"]
    assert failed == [("forward", "softmax", "overflowing")]
    assert "## Unexpected failures (1)" in md_path.read_text()
    assert "<h2>Unexpected failures (1)</h2>" in html_path.read_text()
    assert "class='fail'" in html_path.read_text()


def test_fail_fast_stops_at_the_first_failure(installed, tmp_path, capsys):
    installed("unidl-overflowing", {"overflowing": "unidl_overflowing_plugin"},
              modules={"unidl_overflowing_plugin.py": _SOFTMAX_OVERFLOW})
    path = tmp_path / "r.json"
    rc = _conformance("--backend", "overflowing", "--check", "forward", "-k", "softmax,add",
                      "--fail-fast", "--report", str(path))
    assert rc == 1
    results = json.loads(path.read_text())["results"]
    assert results[-1]["status"] == "fail" and results[-1]["case"] == "softmax"
    assert sum(r["status"] == "fail" for r in results) == 1
    capsys.readouterr()


def test_known_failures_are_reported_and_do_not_fail_the_run(installed, tmp_path, capsys):
    installed("unidl-example-backend", {"example": "unidl_example_backend.plugin"},
              copy_packages=[EXAMPLE])
    path = tmp_path / "r.json"
    rc = _conformance("--backend", "example", "--check", "forward", "-k", "add",
                      "--dtype", "float32,bfloat16", "--report", str(path))
    assert rc == 0
    results = json.loads(path.read_text())["results"]
    statuses = {(r["case"], r["dtype"]): r["status"] for r in results}
    assert statuses[("add", "bfloat16")] == "known"
    assert statuses[("add", "float32")] == "pass"
    assert "NumPy has no bfloat16" in next(r["reason"] for r in results if r["dtype"] == "bfloat16")
    out = capsys.readouterr().out
    n_known = sum(r["status"] == "known" for r in results)
    assert f"{n_known} known" in out
    assert re.search(rf"^  example \({n_known} cases?: forward; bfloat16\): NumPy has no "
                     "bfloat16", out, re.M), out
    assert _conformance("--backend", "example", "--check", "forward", "-k", "add",
                        "--dtype", "float32,bfloat16", "--only-problems") == 0
    out = capsys.readouterr().out
    assert re.search(r"^  kf forward:add example/cpu/bfloat16: NumPy has no bfloat16", out, re.M)
    assert "Backends" not in out


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
def test_half_precision_has_its_own_tolerances(tmp_path, capsys):
    path = tmp_path / "r.json"
    rc = _conformance("--backend", "torch", "--check", "forward", "-k", "exp,matmul",
                      "--dtype", "float16,bfloat16", "--report", str(path))
    assert rc == 0
    for r in json.loads(path.read_text())["results"]:
        if r["case"] in ("exp", "matmul"):
            kind = "contraction" if r["case"] == "matmul" else "elementwise"
            assert (r["rtol"], r["atol"]) == tolerance(r["dtype"], kind), r
    capsys.readouterr()


def test_quick_and_default_selection():
    from unidl_conformance.runner import collect_cases

    quick = collect_cases(quick=True, checks=["forward"])
    assert set(BACKENDS) <= {c.backend for c in quick}  # default: every installed backend
    assert {c.dtype for c in quick} == {"float32"}
    full = collect_cases(backends=["numpy"])
    assert {c.check for c in full} == {"forward", "grad", "optimizer", "layer", "training",
                                       "metric"}
    assert {"float16", "float64", "int32", "bool"} <= {c.dtype for c in full}
    assert len(full) > len([c for c in quick if c.backend == "numpy"])


def test_progress_is_shown(capsys):
    rc = main(["conformance", "--backend", "numpy", "--check", "forward", "-k", "add",
               "--dtype", "float32"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "100%" in err and "cases" in err


def test_usage_errors_exit_2(tmp_path, capsys):
    assert _conformance("--backend", "no-such-backend") == 2
    assert "no-such-backend" in capsys.readouterr().err
    # a bad report name is refused before anything runs
    assert _conformance("--backend", "numpy", "--report", str(tmp_path / "r.txt")) == 2
    assert "unknown report format" in capsys.readouterr().err
    assert not (tmp_path / "r.txt").exists()
    # a report that cannot be written is an error, not a traceback
    assert _conformance("--backend", "numpy", "--check", "forward", "-k", "[a]dd", "--report",
                        str(tmp_path / "no" / "such" / "dir" / "r.json")) == 2
    assert "cannot write report" in capsys.readouterr().err
    for args, says in ((["--check", "forward,nope"], "unknown check 'nope'"),
                       (["--reference", "nope"], "unknown reference backend 'nope'"),
                       (["--dtype", "f32"], "unknown dtype 'f32'"),
                       (["--device", "cuda:7"], "no selected backend has device 'cuda:7'"),
                       (["--check", "forward", "-k", "no_such_op"], "no conformance case")):
        assert _conformance("--backend", "numpy", *args) == 2, args
        assert says in capsys.readouterr().err, args
