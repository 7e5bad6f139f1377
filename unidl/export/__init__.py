"""Exporting a model to run without unidl: ONNX, a ``torch.export`` program, a SavedModel.

``model.export(path, format=...)`` (:func:`export_model`) traces the model's inference pass
once, on the backend that holds its weights, into a backend-neutral graph
(:mod:`unidl.export.graph`, :mod:`unidl.export.trace`) with a dynamic batch axis, then hands
it to the format's exporter:

* ``"onnx"`` (:mod:`unidl.export.onnx`): here in the core; needs the ``onnx`` package.
* any other format: offered by a backend through its ``BackendEntry.exporters`` declaration
  (``{format: fn(graph, path, **options)}``, see :class:`unidl.backend.Backend`); the
  bundled ones are ``"torch"`` (a ``.pt2`` ``torch.export`` program) and
  ``"tf_saved_model"`` (a SavedModel directory). Backends already loaded are asked first,
  then the other installed ones, loaded one at a time until one offers the format.

Example:
    >>> import os, tempfile
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.export import ExportError
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(2, input_shape=(3,))])
    ...     try:
    ...         model.export(os.path.join(tempfile.mkdtemp(), "m.bin"), format="tflite")
    ...     except ExportError as exc:
    ...         print(str(exc).split(";")[0])
    unknown export format 'tflite'
"""

from __future__ import annotations

import os

from unidl.export.rules import BATCH, ExportError, OnnxOp

__all__ = ["export_model", "find_exporter", "known_formats", "ExportError", "BATCH", "OnnxOp",
           "CORE_FORMATS"]

#: formats the core writes itself (no framework needed): name -> "module:function"
CORE_FORMATS = {"onnx": "unidl.export.onnx:export_onnx"}

#: the format a path's extension implies when ``format`` is not given
_BY_EXTENSION = {".onnx": "onnx", ".pt2": "torch"}


def _load(target: str):
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _declared_formats() -> dict[str, tuple[str, str]]:
    """``{format: (backend, "module:function")}`` as the installed backends declare them
    (``BackendEntry.exporters``: read at discovery, no framework imported)."""
    from unidl.backend.registry import backend_entries

    out: dict[str, tuple[str, str]] = {}
    for name, entry in backend_entries().items():
        for fmt, target in (entry.exporters or {}).items():
            out.setdefault(fmt, (name, target))
    return out


def find_exporter(format: str):
    """The function writing ``format``: ``fn(graph, path, **options)``.

    Raises:
        ExportError: no installed backend offers the format (the message lists those that
            are known).
    """
    if format in CORE_FORMATS:
        return _load(CORE_FORMATS[format])
    declared = _declared_formats()
    if format not in declared:
        raise ExportError(f"unknown export format {format!r}; known formats: "
                          f"{', '.join(repr(f) for f in known_formats())}")
    backend, target = declared[format]
    from unidl.backend.registry import get_backend

    try:
        get_backend(backend)  # (the exporter replays the graph with this backend's kernels)
    except Exception as exc:
        raise ExportError(f"export format {format!r} needs the {backend!r} backend, which "
                          f"does not load: {exc}") from None
    return _load(target)


def known_formats() -> list[str]:
    """Every format the core and the installed backends can write (no framework imported)."""
    return sorted(set(CORE_FORMATS) | set(_declared_formats()))


def _format_of(path: str, format: str | None) -> str:
    if format is not None:
        return str(format)
    ext = os.path.splitext(path)[1].lower()
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    raise ExportError(f"export({path!r}): give format= (one of "
                      f"{', '.join(repr(f) for f in known_formats())}); the extension "
                      f"{ext or '(none)'} does not say which")


def export_model(model, filepath, format: str | None = None, *, input_shape=None,
                 **options) -> str:
    """Export ``model``'s inference pass (``model(x, training=False)``) to ``filepath``.

    Args:
        model: a built :class:`unidl.Model` with one input, on any backend.
        filepath: the file (``"onnx"``, ``"torch"``) or directory (``"tf_saved_model"``) to
            write; its directory must exist. Written atomically.
        format: ``"onnx"``, ``"torch"``, ``"tf_saved_model"`` or another format a backend
            offers; default: from the extension (``.onnx``, ``.pt2``).
        input_shape: one example's shape, without the batch axis, for a model whose input
            shape is not recorded (a subclassed model).
        **options: passed to the exporter (``opset=`` for ONNX).

    Returns:
        ``filepath`` as a string.

    Raises:
        ExportError: unknown format, model not built, an op or layer the format cannot
            express (naming the layer, the op and the format), or a missing directory.
    """
    from unidl.export.files import check_directory
    from unidl.export.trace import model_input, trace_model

    path = os.fspath(filepath)
    format = _format_of(path, format)
    exporter = find_exporter(format)
    model_input(model, input_shape)  # (not built, several inputs: said before anything else)
    check_directory(path, format)
    graph = trace_model(model, input_shape)
    exporter(graph, path, **options)
    return path
