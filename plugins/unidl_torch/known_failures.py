"""Known conformance failures of the PyTorch backend, each with its reason."""

from unidl_conformance.known import KnownFailure

KNOWN_FAILURES: list[KnownFailure] = []
