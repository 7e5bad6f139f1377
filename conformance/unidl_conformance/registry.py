"""Which checks exist and how their cases are enumerated and run (one table)."""

from __future__ import annotations

import importlib

__all__ = ["CHECKS", "cases_for", "runner_for"]

#: check name -> (module, case-listing function, runner function)
_TABLE = {
    "forward": ("unidl_conformance.forward", "forward_cases", "run_forward"),
    "grad": ("unidl_conformance.grad", "grad_cases", "run_grad"),
    "optimizer": ("unidl_conformance.optimizer", "optimizer_cases", "run_optimizer"),
    "layer": ("unidl_conformance.layers", "layer_cases", "run_layer"),
    "training": ("unidl_conformance.training", "training_cases", "run_training"),
    "metric": ("unidl_conformance.metrics", "metric_cases", "run_metric"),
    "distributed": ("unidl_conformance.distributed", "distributed_cases", "run_distributed"),
}
CHECKS = tuple(_TABLE)


def _entry(check: str):
    try:
        return _TABLE[check]
    except KeyError:
        raise ValueError(f"unknown check {check!r}; checks are {', '.join(CHECKS)}") from None


def cases_for(check: str, backend: str, device: str, dtypes):
    module, cases, _ = _entry(check)
    return getattr(importlib.import_module(module), cases)(backend, device, dtypes)


def runner_for(check: str):
    module, _, runner = _entry(check)
    return getattr(importlib.import_module(module), runner)
