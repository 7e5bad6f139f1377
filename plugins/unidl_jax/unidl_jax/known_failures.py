"""Known conformance failures of the JAX backend, each with its reason."""

from unidl_conformance.known import KnownFailure

KNOWN_FAILURES: list[KnownFailure] = []
