"""Forward conformance as pytest cases: every op x backend x device x dtype."""

from __future__ import annotations

import pytest

from unidl_conformance.forward import run_forward
from unidl_conformance.pytest_plugin import case_params, check_result

CASES = case_params("forward")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward(case):
    check_result(case, run_forward)
