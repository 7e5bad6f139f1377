"""Which checks exist and how their cases are enumerated."""

from __future__ import annotations

__all__ = ["CHECKS", "cases_for", "runner_for"]

CHECKS = ("forward", "grad")


def cases_for(check: str, backend: str, device: str, dtypes):
    if check == "forward":
        from unidl_conformance.forward import forward_cases

        return forward_cases(backend, device, dtypes)
    if check == "grad":
        from unidl_conformance.grad import grad_cases

        return grad_cases(backend, device, dtypes)
    raise ValueError(f"unknown check {check!r}; checks are {', '.join(CHECKS)}")


def runner_for(check: str):
    if check == "forward":
        from unidl_conformance.forward import run_forward

        return run_forward
    if check == "grad":
        from unidl_conformance.grad import run_grad

        return run_grad
    raise ValueError(f"unknown check {check!r}")
