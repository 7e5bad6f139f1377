"""Gradient conformance as pytest cases: every differentiable op x backend x device x dtype."""

from __future__ import annotations

import pytest

from unidl_conformance.grad import run_grad
from unidl_conformance.pytest_plugin import case_params, check_result

CASES = case_params("grad")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_grad(case):
    check_result(case, run_grad)
