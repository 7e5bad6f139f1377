"""The table of conformance cases: check x backend x device x dtype x target."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from unidl.backend.registry import get_backend, list_backends, plugin_manager
from unidl_conformance.known import KnownFailure, match_known

__all__ = ["Case", "Result", "selected_backends", "known_failures", "case_seed"]


@dataclass(frozen=True)
class Case:
    check: str  # forward, grad, optimizer, layer, training
    backend: str
    device: str
    dtype: str
    target: str  # op, layer, optimizer or training-case name

    @property
    def id(self) -> str:
        return f"{self.check}-{self.backend}-{self.device}-{self.dtype}-{self.target}"


@dataclass
class Result:
    case: Case
    status: str  # pass, fail, known, xpass, error
    max_abs: float = 0.0
    max_rel: float = 0.0
    ratio: float = 0.0
    rtol: float = 0.0
    atol: float = 0.0
    seed: int = 0
    message: str = ""
    reason: str = ""
    details: list = field(default_factory=list)

    def as_dict(self) -> dict:
        c = self.case
        return {"check": c.check, "backend": c.backend, "device": c.device, "dtype": c.dtype,
                "case": c.target, "status": self.status, "max_abs_error": _num(self.max_abs),
                "max_rel_error": _num(self.max_rel), "error_over_tolerance": _num(self.ratio),
                "rtol": self.rtol, "atol": self.atol, "seed": self.seed,
                "message": self.message, "reason": self.reason}


def _num(v):
    return None if v is None or not np.isfinite(v) else float(v)


def case_seed(*parts: str) -> int:
    """A seed that depends only on the case's names (stable across runs and processes)."""
    return zlib.crc32("/".join(parts).encode()) & 0x7FFFFFFF


def selected_backends(names=None) -> list[str]:
    """Backends to check: ``names`` or every backend that loads."""
    if names:
        return list(names)
    return [b.name for b in list_backends() if b.error is None]


def backend_devices(name: str, devices=None) -> list[str]:
    have = get_backend(name).devices()
    if devices:
        return [d for d in devices if d in have]
    return have


def known_failures(backend: str) -> list[KnownFailure]:
    out: list[KnownFailure] = []
    for result in plugin_manager().hook.unidl_known_failures(backend_name=backend):
        if result:
            out.extend(result)
    return out


def strict(case: Case):
    """The backend's strict-numerics context (TF32 and similar modes off) for ``case``."""
    return get_backend(case.backend).strict_numerics()


def lookup_known(case: Case):
    return match_known(known_failures(case.backend), case.check, case.target, case.dtype,
                       case.device)
