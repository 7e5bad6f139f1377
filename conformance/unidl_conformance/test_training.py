"""Training-parity conformance as pytest cases: every training model x backend x device."""

from __future__ import annotations

import pytest

from unidl_conformance.pytest_plugin import case_params, check_result
from unidl_conformance.training import run_training

CASES = case_params("training")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_training(case):
    check_result(case, run_training)
