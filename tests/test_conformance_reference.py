"""The conformance reference backend is one setting: ``--reference``, the environment variable
``UNIDL_CONFORMANCE_REFERENCE``, ``--unidl-reference`` under pytest, default ``numpy``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from tests.conftest import BACKENDS, ROOT
from unidl.cli import main
from unidl_conformance import reference
from unidl_conformance.grad import reference_label
from unidl_conformance.runner import run

# the NumPy backend with a tanh 0.1 % off: as a reference, everything using tanh disagrees
_SKEWED = """
import numpy as np

from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_numpy.backend import NumpyBackend

    class Skewed(NumpyBackend):
        name = "skewed"

        def __init__(self):
            super().__init__()
            self.kernels["tanh"] = lambda x: np.tanh(x) * 1.001

    return Skewed()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="skewed", load=_load)]
"""

SELECTION = ("--backend", "numpy", "--check", "layer,grad", "-k", "[D]ense,[t]anh",
             "--dtype", "float64")


@pytest.fixture
def skewed(installed, monkeypatch):
    monkeypatch.delenv(reference.ENV_VAR, raising=False)
    installed("unidl-skewed", {"skewed": "unidl_skewed_plugin"},
              modules={"unidl_skewed_plugin.py": _SKEWED})


def _conformance(*args) -> int:
    return main(["conformance", "--no-progress", *args])


def _report(tmp_path, *args):
    path = tmp_path / "r.json"
    rc = _conformance(*SELECTION, *args, "--report", str(path))
    return rc, json.loads(path.read_text())


def test_the_default_reference_is_numpy(monkeypatch):
    monkeypatch.delenv(reference.ENV_VAR, raising=False)
    assert reference.DEFAULT_REFERENCE == "numpy"
    assert reference.reference_backend() == reference.DEFAULT_REFERENCE
    assert reference_label() == "unidl's engine on numpy"


def test_layers_and_gradients_are_compared_with_the_chosen_reference(skewed, tmp_path, capsys):
    rc, data = _report(tmp_path)
    assert rc == 0 and data["reference"]["name"] == "numpy"
    assert {r["case"] for r in data["results"]} == {"Dense", "tanh"}
    capsys.readouterr()

    rc, data = _report(tmp_path, "--reference", "skewed")
    out = capsys.readouterr().out
    assert rc == 1
    assert data["reference"]["name"] == "skewed" and data["options"]["reference"] == "skewed"
    assert "Backends (reference: skewed" in out
    failed = {r["check"]: r["message"] for r in data["results"] if r["status"] == "fail"}
    assert set(failed) == {"layer", "grad"}, failed
    assert "Dense: forward differs from skewed float64" in failed["layer"]
    assert "float64 gradient of unidl's engine on skewed" in failed["grad"]
    # the setting holds for that run only
    assert reference.reference_backend() == "numpy"


def test_the_environment_variable_chooses_the_reference(skewed, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(reference.ENV_VAR, "skewed")
    rc, data = _report(tmp_path)
    assert rc == 1 and data["reference"]["name"] == "skewed"
    rc, data = _report(tmp_path, "--reference", "numpy")  # the option wins
    assert rc == 0 and data["reference"]["name"] == "numpy"
    capsys.readouterr()


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
def test_another_real_backend_as_reference(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(reference.ENV_VAR, raising=False)
    path = tmp_path / "r.json"
    rc = _conformance("--reference", "torch", "--backend", "numpy,torch", "--check",
                      "layer,grad", "-k", "[D]ense,[L]STM,[t]anh,[m]atmul",
                      "--dtype", "float32,float64", "--report", str(path))
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads(path.read_text())
    assert data["reference"]["name"] == "torch"
    assert {r["backend"] for r in data["results"]} == {"numpy", "torch"}
    assert {r["case"] for r in data["results"]} == {"Dense", "LSTM", "tanh", "matmul"}
    assert "torch" in out and "the reference" in out
    with reference.use_reference("torch"):  # natively differentiated: its own autodiff
        assert reference_label() == "torch's autodiff"


def test_an_unknown_reference_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv(reference.ENV_VAR, raising=False)
    assert _conformance("--backend", "numpy", "-k", "add", "--reference", "nope") == 2
    err = capsys.readouterr().err
    assert "unknown reference backend 'nope'" in err and "numpy" in err
    monkeypatch.setenv(reference.ENV_VAR, "nope")
    assert _conformance("--backend", "numpy", "-k", "add") == 2
    assert f"unknown reference backend 'nope' (from {reference.ENV_VAR})" in \
        capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown reference backend 'nope'"):
        run(backends=["numpy"], pattern="add", progress=False)
    with pytest.raises(ValueError, match="unknown reference backend 'other'"):
        reference.set_reference("other")


def _pytest_layers(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-q",
                           "--pyargs", "unidl_conformance.test_layers", "--unidl-backend",
                           "numpy", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


def test_pytest_option_rejects_an_unknown_reference(tmp_path):
    proc = _pytest_layers(tmp_path, "--unidl-reference", "nope")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--unidl-reference: unknown reference backend 'nope'" in proc.stderr


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
def test_pytest_option_chooses_the_reference(tmp_path):
    proc = _pytest_layers(tmp_path, "--unidl-reference", "torch", "-k", "Dense")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout


_BACKEND_NAMES = {"numpy", "torch", "tensorflow"}


def test_no_backend_name_is_hard_coded_in_the_suite():
    """Only ``DEFAULT_REFERENCE`` names a backend; nothing compares with a literal name."""
    found = []
    for path in sorted((ROOT / "conformance" / "unidl_conformance").glob("*.py")):
        tree = ast.parse(path.read_text())
        allowed = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "DEFAULT_REFERENCE"
                    for t in node.targets):
                allowed.add(id(node.value))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in _BACKEND_NAMES
                    and id(node) not in allowed):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not found, found
