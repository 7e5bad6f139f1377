"""Every pluggy hook of unidl, in one place.

Hooks are few and coarse: they run when backends are discovered, loaded and certified,
never per op. A backend is registered once and its kernels are bound once into a plain
table; pluggy is not on the hot path.

A plugin is a module (or object) with functions of these names, advertised through the
``unidl`` entry-point group::

    [project.entry-points.unidl]
    mybackend = "my_package.plugin"
"""

from __future__ import annotations

import pluggy

PROJECT = "unidl"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["hookspec", "hookimpl", "PROJECT"]


@hookspec
def unidl_register_backends() -> list:
    """Declare the backends this plugin provides. **Collected** (all results are used).

    Return a list of :class:`unidl.backend.BackendEntry`. Declaring must be cheap and must
    not import the framework: the entry's ``load`` callable does that, only when the backend
    is selected or inspected.
    """


@hookspec
def unidl_backend_kernels(backend_name: str) -> dict:
    """Extra or faster kernels for an already declared backend. **Collected**.

    Return a ``{op_name: kernel}`` dict (or ``None``); later plugins override earlier ones.
    Called once when the backend is loaded; the kernels are bound into its table then.
    """


@hookspec
def unidl_known_failures(backend_name: str) -> list:
    """Known conformance failures of a backend. **Collected**.

    Return a list of :class:`unidl_conformance.KnownFailure` (or ``None``). Each names the
    check, the case, the dtype and device it applies to, and the reason.
    """


@hookspec(firstresult=True)
def unidl_default_backend() -> str | None:
    """The backend to use when ``UNIDL_BACKEND`` is not set. **First result** wins.

    The built-in plugins do not implement it (the default is ``numpy``).
    """
