"""Layer conformance as pytest cases: every layer x backend x device x dtype."""

from __future__ import annotations

import pytest

from unidl_conformance.layers import run_layer
from unidl_conformance.pytest_plugin import case_params, check_result

CASES = case_params("layer")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer(case):
    check_result(case, run_layer)
