"""The unidl conformance suite: checks a backend against the spec and against the others."""

from unidl_conformance.known import KnownFailure

__all__ = ["KnownFailure"]
