"""The pluggy plugin: declares the ``example`` backend without importing anything heavy."""

from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_example_backend.backend import ExampleBackend

    return ExampleBackend()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="example", load=_load, distributions=("unidl-example-backend",),
                         description="example third-party backend (NumPy inside)")]


@hookimpl
def unidl_known_failures(backend_name):
    if backend_name != "example":
        return None
    from unidl_conformance import KnownFailure

    return [KnownFailure(dtype="bfloat16", reason="NumPy has no bfloat16")]
