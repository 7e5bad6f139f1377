"""What the package imports is what pyproject.toml declares."""

from __future__ import annotations

import ast
import re
import sys

import tomllib

from tests.conftest import ROOT

FIRST_PARTY = {"unidl", "unidl_numpy", "unidl_torch", "unidl_tensorflow", "unidl_conformance"}
#: import name -> distribution name, where they differ
DISTRIBUTION = {"tensorflow": "tensorflow-cpu", "yaml": "pyyaml"}


def _imported_top_level_modules(folder):
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return {re.split(r"[<>=!;\[ ]", r, maxsplit=1)[0].strip().lower().replace("_", "-")
            for r in reqs}


def test_every_third_party_import_is_declared():
    used = set()
    for folder in ("unidl", "plugins", "conformance"):
        used |= _imported_top_level_modules(ROOT / folder)
    third_party = used - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}
    declared = _declared()
    missing = sorted(m for m in third_party
                     if DISTRIBUTION.get(m, m).lower().replace("_", "-") not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
