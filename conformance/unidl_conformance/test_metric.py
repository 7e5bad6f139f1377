"""Metric conformance as pytest cases: every metric configuration x backend x device x dtype."""

from __future__ import annotations

import pytest

from unidl_conformance.metrics import run_metric
from unidl_conformance.pytest_plugin import case_params, check_result

CASES = case_params("metric")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_metric(case):
    check_result(case, run_metric)
