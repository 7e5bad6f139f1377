"""The conformance suite works from an installed wheel, without the source checkout.

The project is built into a wheel (``pip wheel``, offline, with the hatchling build backend
of the ``dev`` extra), installed into a fresh target folder, and run from a temporary
working directory with every path of the checkout removed from ``sys.path``: as the
``unidl conformance`` command and as a pytest plugin (``pytest --pyargs unidl_conformance``)
against the example third-party backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import BACKENDS, ROOT, make_dist

EXAMPLE = ROOT / "examples" / "third_party_backend" / "unidl_example_backend"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hatchling") is None,
    reason="building the wheel needs the hatchling build backend: pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """A folder holding the installed wheel of the project (like a site-packages)."""
    wheels = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", "-w", str(wheels),
                           str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (wheel,) = wheels.glob("unidl-*.whl")
    site = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                           "-q", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (site / "unidl_conformance" / "test_forward.py").exists()
    return site


def _run(code: str, paths: list, cwd, timeout: int = 600):
    """Run ``code`` with ``paths`` first on sys.path and no path of the checkout on it."""
    prelude = textwrap.dedent(f"""
        import sys
        _root = {str(ROOT)!r}
        _source = (_root, _root + "/plugins", _root + "/conformance", _root + "/tests",
                   _root + "/examples")
        # drop the checkout's source folders (an editable install puts them on the path);
        # keep site-packages, even of a virtual environment made inside the checkout
        sys.path[:] = {[str(p) for p in paths]!r} + [
            p for p in sys.path if p and p.rstrip("/") not in _source
            and not any(p.startswith(s + "/") for s in _source[1:])]
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.pop("UNIDL_BACKEND", None)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_conformance_command_runs_from_the_installed_wheel(target, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = _run("""
        import json
        import unidl, unidl_conformance, unidl_numpy
        from unidl.cli import main

        rc = main(["conformance", "--check", "forward", "-k", "add,matmul", "--dtype",
                   "float32,float64", "--report", "report.html", "--report", "report.json"])
        import unidl_conformance.forward
        print("FILES", json.dumps([unidl.__file__, unidl_conformance.__file__,
                                   unidl_numpy.__file__, unidl_conformance.forward.__file__]))
        sys.exit(rc)
    """, [target], work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("FILES "))
    for path in json.loads(line[len("FILES "):]):
        assert path.startswith(str(target) + os.sep), path
        assert not path.startswith(str(ROOT) + os.sep), path

    page = (work / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "forward:matmul" in page
    data = json.loads((work / "report.json").read_text())
    # the default: every installed backend, every device it reports
    assert set(BACKENDS) <= set(data["ran"]["backends"])
    for name in BACKENDS:
        for dev in data["backends"][name]["devices"]:
            assert f"{name}/{dev}" in data["ran"]["devices"]
    assert data["ran"]["dtypes"] == ["float32", "float64"]
    assert data["counts"].get("fail", 0) == 0 and data["counts"]["pass"] > 0

    # the wheel's console script
    script = target / "bin" / "unidl"
    assert script.exists()
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([str(script), "backends", "--no-load"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(name in proc.stdout for name in BACKENDS), proc.stdout


def test_pytest_plugin_runs_the_installed_suite_on_the_example_backend(target, tmp_path):
    example = make_dist(tmp_path, "unidl-example-backend",
                        {"example": "unidl_example_backend.plugin"}, copy_packages=[EXAMPLE])
    work = tmp_path / "work"
    work.mkdir()
    proc = _run("""
        import pytest
        import unidl_conformance, unidl_example_backend

        print("FILES", unidl_conformance.__file__, unidl_example_backend.__file__)
        sys.exit(pytest.main(["-v", "-p", "no:cacheprovider", "--pyargs", "unidl_conformance",
                              "--unidl-backend", "example", "--unidl-dtype", "float32",
                              "--unidl-dtype", "float64", "--unidl-dtype", "bfloat16",
                              "-k", "add or matmul or softmax or sgd or Dense or mlp"]))
    """, [target, example], work)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    files = next(ln for ln in proc.stdout.splitlines() if ln.startswith("FILES ")).split()[1:]
    assert files[0].startswith(str(target) + os.sep) and files[1].startswith(str(example))
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert not re.search(r"\d+ (failed|errors?)\b", summary), summary
    assert re.search(r"\d+ xfailed", summary), summary  # bfloat16: a declared known failure
    for module, case in (("forward", "forward-example-cpu-float64-add"),
                         ("grad", "grad-example-cpu-float32-matmul"),
                         ("optimizer", "optimizer-example-cpu-float64-sgd"),
                         ("layers", "layer-example-cpu-float32-Dense"),
                         ("training", "training-example-cpu-float32-mlp")):
        assert re.search(rf"test_{module}\.py::test_\w+\[{re.escape(case)}\] PASSED", out), \
            (module, case, out[-3000:])
