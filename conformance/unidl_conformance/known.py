"""Known conformance failures: declared per backend, one file each, each with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["KnownFailure", "match_known"]


@dataclass(frozen=True)
class KnownFailure:
    """A case a backend is known to fail, and why.

    Fields are glob patterns matched against a case: ``check`` (``forward``, ``grad``,
    ``optimizer``, ``layer``, ``training``), ``case`` (the op, layer or optimizer name),
    ``dtype`` and ``device``.

    Attributes:
        reason: why it fails; shown in reports.
        run: ``False`` (default) reports the case as a known failure without running it
            (unsupported dtype, say); ``True`` runs it and expects it to fail, and reports it
            as an unexpected pass if it does not.
    """

    check: str = "*"
    case: str = "*"
    dtype: str = "*"
    device: str = "*"
    reason: str = ""
    run: bool = False

    def matches(self, check: str, case: str, dtype: str, device: str) -> bool:
        return (fnmatchcase(check, self.check) and fnmatchcase(case, self.case)
                and fnmatchcase(dtype, self.dtype) and fnmatchcase(device, self.device))


def match_known(known, check, case, dtype, device):
    """The first KnownFailure of ``known`` matching the case, or None."""
    for k in known:
        if k.matches(check, case, dtype, device):
            return k
    return None
