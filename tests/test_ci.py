"""CI runs the main job and fails when a conformance case fails (``.ci/run`` -> ``dev.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, make_dist

_PLUGIN = """
from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_ci_broken_impl import Broken

    return Broken()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="cibroken", load=_load, description="relu leaks negatives")]
"""

_IMPL = """
import numpy as np

from unidl_numpy.backend import NumpyBackend


class Broken(NumpyBackend):
    def __init__(self):
        super().__init__()
        self.kernels["relu"] = lambda x: np.where(x > 0, x, 0.01 * x)  # a leaky relu: wrong
"""


def _ci(tmp_path, *args):
    site = make_dist(tmp_path, "unidl-ci-broken", {"cibroken": "unidl_ci_broken"}, modules={
        "unidl_ci_broken.py": _PLUGIN, "unidl_ci_broken_impl.py": _IMPL})
    env = dict(os.environ, PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--no-setup", "--steps",
                           "conformance", "--", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=600)


@pytest.mark.parametrize("backend, code", [("cibroken", 1), ("numpy", 0)])
def test_ci_fails_exactly_when_a_conformance_case_fails(tmp_path, backend, code):
    report = tmp_path / "report.json"
    proc = _ci(tmp_path, "--backend", backend, "--check", "forward", "-k", "relu",
               "--report", str(report))
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out[-3000:]
    assert report.exists()
    if code:
        assert "forward relu on cibroken/cpu" in out and "FAILED conformance" in out, out[-3000:]
    else:
        assert "all passed" in out


def test_ci_runs_the_full_main_job_and_the_tests_by_default():
    import dev

    assert dev.CI_STEPS == ("setup", "backends", "lint", "conformance", "tests")
    assert dev._ci_options([]) == (False, list(dev.CI_STEPS), [])


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["python3 dev.py conformance", "python3 dev.py test"]


def test_setup_reuses_a_venv_made_from_the_same_pyproject(tmp_path, monkeypatch):
    import dev

    venv = tmp_path / ".venv"
    monkeypatch.setattr(dev, "VENV", venv)
    monkeypatch.setattr(dev, "STAMP", venv / ".unidl-setup")
    calls = []
    monkeypatch.setattr(dev, "_run", lambda cmd, **kw: calls.append(cmd) or 0)
    python = dev.venv_python()
    python.parent.mkdir(parents=True)
    python.write_text("")
    (venv / ".unidl-setup").write_text(dev._setup_key())
    assert dev.setup() == python and calls == []
    (venv / ".unidl-setup").write_text("made from an older pyproject.toml")
    dev.setup()
    installs = [c for c in calls if "install" in c]
    # torch pinned, first; then unidl; then the JAX backend, a distribution of its own
    assert [c[-1] for c in installs] == [dev.TORCH, ".[all,dev]", f"./{dev.JAX_PLUGIN}"]
