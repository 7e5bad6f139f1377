"""Known conformance failures of the NumPy backend, each with its reason."""

from unidl_conformance.known import KnownFailure

KNOWN_FAILURES = [
    KnownFailure(check="*", case="*", dtype="bfloat16",
                 reason="NumPy has no native bfloat16; ml_dtypes' bfloat16 lacks most ufunc "
                        "loops (transcendentals, matmul), so the backend does not claim it"),
]
