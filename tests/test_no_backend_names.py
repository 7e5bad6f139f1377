"""Capabilities, not names: outside ``plugins/``, product code never compares a backend's name
with a framework's (a third-party backend gets every behaviour through ``Backend``'s
capabilities; see docs/writing-a-backend.md)."""

from __future__ import annotations

import re

from tests.conftest import ROOT

_NAME = r"""["'](?:numpy|torch|tensorflow|jax)["']"""
#: ``x == "torch"``, ``"torch" != x``, ``x in ("numpy", ...)``, ``"torch" in sys.modules``
COMPARISON = re.compile(
    rf"""(?:==|!=|\bis(?:\s+not)?|\bin)\s*[(\[{{]?\s*{_NAME}"""
    rf"""|{_NAME}\s*(?:==|!=|\bin\b|\bnot\s+in\b)""")
PRODUCT = ("unidl", "conformance", "examples")


def _offenders(paths, root=ROOT):
    out = []
    for path in paths:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if COMPARISON.search(code):
                out.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    return out


def _product_files():
    files = [ROOT / "dev.py"]
    for folder in PRODUCT:
        files.extend(sorted((ROOT / folder).rglob("*.py")))
    return files


def test_no_backend_name_comparisons_outside_plugins():
    offenders = _offenders(_product_files())
    assert not offenders, "compare capabilities, not names:\n" + "\n".join(offenders)


def test_the_check_catches_the_forms_it_forbids(tmp_path):
    probe = tmp_path / "probe.py"
    forms = ['if be.name == "tensorflow":', "if 'torch' in sys.modules:",
             'ok = name in ("numpy", "torch")', 'if "numpy" != backend:',
             'if backend is not "jax":']
    probe.write_text("\n".join(forms) + '\nwith unidl.use_backend("numpy"): pass\n')
    assert len(_offenders([probe], root=tmp_path)) == len(forms)
