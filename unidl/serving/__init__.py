"""``unidl serve``: a model server speaking TensorFlow Serving's REST API, on any backend.

``create_app(model, ...)`` makes the Starlette app (needs the ``serve`` extra:
``pip install 'unidl[serve]'``); :mod:`unidl.serving.validation` checks requests and
:mod:`unidl.serving.batching` batches concurrent ones. ``import unidl`` imports none of this,
and importing this package imports Starlette only when ``create_app`` is used.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name):
    if name == "create_app":
        from unidl.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'unidl.serving' has no attribute {name!r}")
