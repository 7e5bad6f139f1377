"""Distributed-parity conformance as pytest cases: every model x backend with a launcher."""

from __future__ import annotations

import pytest

from unidl_conformance.distributed import run_distributed
from unidl_conformance.pytest_plugin import case_params, check_result

CASES = case_params("distributed")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_distributed(case):
    check_result(case, run_distributed)
