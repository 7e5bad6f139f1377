"""Known conformance failures of the TensorFlow backend, each with its reason."""

from unidl_conformance.known import KnownFailure

KNOWN_FAILURES: list[KnownFailure] = []
