"""pytest integration: options to choose backends, devices and dtypes, and case helpers.

Registered through the ``pytest11`` entry point, so an installed unidl lets a plugin author
run ``pytest --pyargs unidl_conformance --unidl-backend NAME``. Environment variables
``UNIDL_CONFORMANCE_BACKENDS``, ``..._DEVICES``, ``..._DTYPES`` (comma separated) do the same.
``--unidl-reference NAME`` (or ``UNIDL_CONFORMANCE_REFERENCE``) chooses the reference backend
the others are compared with (see :mod:`unidl_conformance.reference`).
"""

from __future__ import annotations

import os

import pytest

from unidl import dtypes as _dt
from unidl_conformance.reference import DEFAULT_REFERENCE, ENV_VAR

_OPTIONS = {"backends": None, "devices": None, "dtypes": None}
_SET_REFERENCE = []  # the previous setting, while --unidl-reference is in force


def pytest_addoption(parser):
    group = parser.getgroup("unidl", "unidl conformance")
    group.addoption("--unidl-backend", action="append", default=None,
                    help="backend to check (repeatable; default: every installed backend)")
    group.addoption("--unidl-device", action="append", default=None,
                    help="device to check (repeatable; default: every device of the backend)")
    group.addoption("--unidl-dtype", action="append", default=None,
                    help="dtype to check (repeatable; default: every dtype)")
    group.addoption("--unidl-reference", default=None, metavar="NAME",
                    help="the reference backend the others are compared with (default: "
                         f"${ENV_VAR}, else {DEFAULT_REFERENCE})")


def pytest_configure(config):
    for key, opt in (("backends", "unidl_backend"), ("devices", "unidl_device"),
                     ("dtypes", "unidl_dtype")):
        value = config.getoption(opt, default=None)
        if value:
            _OPTIONS[key] = [v for item in value for v in item.split(",")]
    name = config.getoption("unidl_reference", default=None)
    if name:
        from unidl_conformance.reference import set_reference

        try:
            _SET_REFERENCE.append(set_reference(name))
        except ValueError as exc:
            raise pytest.UsageError(f"--unidl-reference: {exc}") from None


def pytest_unconfigure(config):
    """Put back the reference setting that ``--unidl-reference`` replaced."""
    if _SET_REFERENCE:
        from unidl_conformance.reference import set_reference

        set_reference(_SET_REFERENCE.pop())


def _env_list(name):
    v = os.environ.get(name)
    return [s.strip() for s in v.split(",") if s.strip()] if v else None


def selection():
    backends = _OPTIONS["backends"] or _env_list("UNIDL_CONFORMANCE_BACKENDS")
    devices = _OPTIONS["devices"] or _env_list("UNIDL_CONFORMANCE_DEVICES")
    dtypes = _OPTIONS["dtypes"] or _env_list("UNIDL_CONFORMANCE_DTYPES") or list(_dt.DTYPES)
    return backends, devices, dtypes


def case_params(check: str):
    """Every case of ``check`` for the selected backends, devices and dtypes."""
    from unidl_conformance.cases import backend_devices, selected_backends
    from unidl_conformance.reference import reference_problem
    from unidl_conformance.registry import cases_for

    problem = reference_problem()
    if problem:
        raise pytest.UsageError(problem)
    backends, devices, dtypes = selection()
    out = []
    for b in selected_backends(backends):
        for d in backend_devices(b, devices):
            out.extend(cases_for(check, b, d, dtypes))
    return out


def check_result(case, runner):
    """Run ``case`` with ``runner`` and turn its Result into a pytest outcome."""
    from unidl_conformance.cases import lookup_known, strict

    known = lookup_known(case)
    if known is not None and not known.run:
        pytest.xfail(f"known failure: {known.reason}")
    with strict(case):
        result = runner(case)
    if known is not None:
        if result.status != "pass":
            pytest.xfail(f"known failure: {known.reason} ({result.message})")
        return
    assert result.status == "pass", (
        f"{case.check} {case.target} on {case.backend}/{case.device}/{case.dtype}: "
        f"{result.message}"
    )
