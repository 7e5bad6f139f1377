"""What an op's spec declares for export, next to its ``defop``: names, converters, batch rules.

Imported by the spec modules, so it imports nothing heavy (no ONNX, no framework).

* ``export={"onnx": "Relu"}``: the op is ONNX's ``Relu``, one to one (the op's tensor
  arguments are the ONNX node's inputs, in order; the op has no other arguments).
* ``export={"onnx": OnnxOp("Conv", convert)}``: the op maps to ONNX's ``Conv`` through
  ``convert(g, *args)``, which receives the op's canonical arguments (tensors as ONNX value
  names, everything else as traced) and builds ONNX nodes with ``g``, an
  :class:`unidl.export.onnx.OnnxBuilder`; it returns the name(s) of the op's output(s).
  An :class:`OnnxOp` is a ``str`` (the ONNX op type), so listings such as ``unidl ops`` show
  it as a name.
* ``export={"batch": rule}``: how a traced argument that equals the batch size (the
  :data:`BATCH` marker, e.g. the target shape of a flatten) is expressed without it, so the
  exported batch axis stays dynamic: ``rule(b, *args)`` returns the replacement output(s)
  built with ``b.emit(op, *args)`` (see :class:`unidl.export.graph.BatchRewriter`), or None
  when it cannot.

Example:
    >>> from unidl.export.rules import OnnxOp
    >>> rule = OnnxOp("Softmax", lambda g, x, axis=-1: g.op("Softmax", [x], axis=axis))
    >>> rule, rule == "Softmax", callable(rule.convert)
    ('Softmax', True, True)
"""

from __future__ import annotations

from collections.abc import Callable

from unidl.errors import UnidlError

__all__ = ["BATCH", "ExportError", "OnnxOp"]


class ExportError(UnidlError, ValueError):
    """A model cannot be exported as asked; the message names the format and, where one is
    to blame, the layer and the op."""


class _Batch:
    """The batch size, where a traced argument depends on it (a singleton: :data:`BATCH`)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "BATCH"

    def __reduce__(self):
        return (_Batch, ())


#: stands for the batch size in a traced argument (``reshape(x, (BATCH, 64))``)
BATCH = _Batch()


class OnnxOp(str):
    """An ONNX op type that carries the converter from the unidl op's arguments.

    Args:
        op_type: the main ONNX op the converter emits (what listings show).
        convert: ``convert(g, *args) -> name | list of names`` (see the module docstring).
    """

    convert: Callable

    def __new__(cls, op_type: str, convert: Callable):
        obj = super().__new__(cls, op_type)
        obj.convert = convert
        return obj

    def __reduce__(self):
        return (OnnxOp, (str(self), self.convert))
