"""pluggy plugin declaring the ``numpy`` backend (found through the ``unidl`` entry point)."""

from __future__ import annotations

from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_numpy.backend import NumpyBackend

    return NumpyBackend()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="numpy", load=_load, distributions=("numpy",),
                         description="NumPy on the CPU, with unidl's own autodiff engine")]


@hookimpl
def unidl_known_failures(backend_name):
    if backend_name != "numpy":
        return None
    from unidl_numpy.known_failures import KNOWN_FAILURES

    return KNOWN_FAILURES
