"""The conformance reference backend: the one backend every other is compared with.

Layers and training runs are checked against the same layer or model on the reference backend
in float64 (layers) or float32 (training), and gradients against the reference backend's
float64 gradient. The reference is one setting, resolved in this order:

1. :func:`set_reference` / :func:`use_reference` (``unidl conformance --reference NAME``,
   ``pytest --unidl-reference NAME``);
2. the environment variable ``UNIDL_CONFORMANCE_REFERENCE``;
3. :data:`DEFAULT_REFERENCE`.

Code that behaves differently for the reference backend compares a case's backend with
:func:`reference_backend`, never with a literal name.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["DEFAULT_REFERENCE", "ENV_VAR", "reference_backend", "reference_device",
           "reference_problem", "set_reference", "use_reference", "uses_own_engine"]

#: the reference backend when nothing else is chosen
DEFAULT_REFERENCE = "numpy"
#: the environment variable that overrides :data:`DEFAULT_REFERENCE`
ENV_VAR = "UNIDL_CONFORMANCE_REFERENCE"

_override: str | None = None


def reference_backend() -> str:
    """The name of the reference backend (explicit setting, else the environment, else the
    default)."""
    if _override:
        return _override
    return os.environ.get(ENV_VAR, "").strip() or DEFAULT_REFERENCE


def set_reference(name: str | None) -> str | None:
    """Make ``name`` the reference backend (None: back to the environment or the default).

    Returns the previous explicit setting. Raises ValueError when ``name`` is not an installed
    backend that loads.
    """
    global _override
    if name:
        problem = reference_problem(name)
        if problem:
            raise ValueError(problem)
    previous, _override = _override, name or None
    return previous


@contextlib.contextmanager
def use_reference(name: str | None):
    """Within this block ``name`` is the reference backend (None changes nothing)."""
    global _override
    if not name:
        yield reference_backend()
        return
    previous = set_reference(name)
    try:
        yield name
    finally:
        _override = previous


def reference_problem(name: str | None = None) -> str | None:
    """Why ``name`` (default: the current setting) cannot be the reference backend, or None."""
    from unidl.backend.registry import backend_names, get_backend

    source = ""
    if name is None:
        name = reference_backend()
        if not _override and os.environ.get(ENV_VAR, "").strip():
            source = f" (from {ENV_VAR})"
    names = backend_names()
    if name not in names:
        return (f"unknown reference backend {name!r}{source}; installed backends: "
                f"{', '.join(sorted(names)) or 'none'}")
    try:
        get_backend(name)
    except Exception as exc:
        return f"reference backend {name!r}{source} does not load: {exc}"
    return None


def reference_device() -> str:
    """The device the reference runs on: the reference backend's ``cpu``, else its default."""
    from unidl.backend.registry import get_backend

    be = get_backend(reference_backend())
    return "cpu" if "cpu" in be.devices() else be.default_device()


def uses_own_engine(name: str) -> bool:
    """Whether backend ``name`` is differentiated by unidl's own engine (the spec's gradient
    rules) rather than by its framework's autodiff."""
    from unidl.backend.registry import get_backend

    return not get_backend(name).native_autodiff
