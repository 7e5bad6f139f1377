"""Optimizer conformance as pytest cases: every optimizer option x backend x device x dtype."""

from __future__ import annotations

import pytest

from unidl_conformance.optimizer import run_optimizer
from unidl_conformance.pytest_plugin import case_params, check_result

CASES = case_params("optimizer")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_optimizer(case):
    check_result(case, run_optimizer)
