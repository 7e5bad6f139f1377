"""What the package imports is what pyproject.toml declares."""

from __future__ import annotations

import ast
import re
import sys

import tomllib

from tests.conftest import ROOT

FIRST_PARTY = {"unidl", "unidl_numpy", "unidl_torch", "unidl_tensorflow", "unidl_conformance",
               "unidl_jax"}
#: plugins shipped as their own distribution (own pyproject.toml), checked against it
OWN_DISTRIBUTIONS = ("plugins/unidl_jax",)
#: import name -> distribution name, where they differ
DISTRIBUTION = {"tensorflow": "tensorflow-cpu", "yaml": "pyyaml"}


def _imported_top_level_modules(folder, skip=()):
    names = set()
    for path in folder.rglob("*.py"):
        if any(path.is_relative_to(ROOT / s) for s in skip):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _declared(pyproject=ROOT / "pyproject.toml"):
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return {re.split(r"[<>=!;\[ ]", r, maxsplit=1)[0].strip().lower().replace("_", "-")
            for r in reqs}


def test_every_third_party_import_is_declared():
    used = set()
    for folder in ("unidl", "plugins", "conformance"):
        used |= _imported_top_level_modules(ROOT / folder, skip=OWN_DISTRIBUTIONS)
    missing = _undeclared(used, _declared())
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def _undeclared(used, declared):
    third_party = used - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}
    return sorted(m for m in third_party
                  if DISTRIBUTION.get(m, m).lower().replace("_", "-") not in declared)


def test_separately_shipped_plugins_declare_their_imports_and_stay_out_of_the_wheel():
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    for folder in OWN_DISTRIBUTIONS:
        used = _imported_top_level_modules(ROOT / folder)
        declared = _declared(ROOT / folder / "pyproject.toml") | {"unidl-conformance"}
        missing = _undeclared(used - {"unidl_conformance"}, declared)
        assert not missing, f"{folder} imports {missing}, not declared in its pyproject.toml"
        assert not any(p.startswith(folder) for p in wheel["targets"]["wheel"]["packages"])
