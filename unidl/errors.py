"""Exceptions raised by unidl.

Every error a user can trigger names what went wrong in unidl's terms (the op or layer,
what was expected, what was given) instead of surfacing a raw backend traceback.
"""

from __future__ import annotations

__all__ = [
    "UnidlError",
    "OpError",
    "BackendError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "MissingKernelError",
    "GradientError",
    "DistributedError",
]


class UnidlError(Exception):
    """Base class of every error raised by unidl itself."""


class OpError(UnidlError, ValueError, TypeError):
    """An op was called with arguments it cannot accept.

    Subclasses both ``ValueError`` and ``TypeError`` so code written against NumPy or a
    framework keeps catching it.
    """

    def __init__(self, op: str, message: str):
        self.op = op
        super().__init__(f"{op}: {message}")


class BackendError(UnidlError):
    """A backend could not be selected or used."""


class BackendNotFoundError(BackendError, ValueError):
    """No backend of that name is installed."""


class BackendUnavailableError(BackendError, ImportError):
    """The backend is known but its framework failed to import."""


class MissingKernelError(BackendError, NotImplementedError):
    """The active backend provides no kernel for a primitive op."""


class GradientError(UnidlError, ValueError):
    """A gradient was requested in a way that cannot be answered."""


class DistributedError(UnidlError, RuntimeError):
    """Data-parallel training could not start or go on: no distributed engine on the
    backend, a bad launch configuration, or a collective that failed or timed out (a worker
    died). The message names the rank, the world size and what was being exchanged."""
