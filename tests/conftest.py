"""Shared fixtures for unidl's unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import unidl
from unidl.backend import registry

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = [b.name for b in unidl.list_backends() if b.error is None
            and b.name in ("numpy", "torch", "tensorflow")]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once per installed built-in backend."""
    with unidl.use_backend(request.param):
        yield request.param


def run_python(code: str, env: dict | None = None, path: list[str] | None = None):
    """Run ``code`` in a fresh interpreter; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    if path:
        full_env["PYTHONPATH"] = os.pathsep.join(path + [full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=300)


def make_dist(tmp_path: Path, dist: str, entry_points: dict, modules: dict | None = None,
              copy_packages: list[Path] | None = None) -> Path:
    """Create an 'installed' distribution (a dist-info with entry points) under tmp_path."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = ["[unidl]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in (modules or {}).items():
        target = site / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))
    for pkg in copy_packages or []:
        shutil.copytree(pkg, site / pkg.name)
    return site


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install fake distributions for this test only (sys.path + fresh discovery)."""
    import importlib

    def install(*args, **kwargs):
        site = make_dist(tmp_path, *args, **kwargs)
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        registry.reset()
        return site

    yield install
    registry.reset()
