"""pluggy plugin declaring the ``jax`` backend (found through the ``unidl`` entry point of the
``unidl-jax`` distribution). Importing this module imports no framework."""

from __future__ import annotations

from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_jax.backend import JaxBackend  # imports jax

    return JaxBackend()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="jax", load=_load, distributions=("jax",), extra=None,
                         description="JAX: jax.numpy/lax kernels, jax.vjp, jax.jit steps")]


@hookimpl
def unidl_known_failures(backend_name):
    if backend_name != "jax":
        return None
    from unidl_jax.known_failures import KNOWN_FAILURES

    return KNOWN_FAILURES
