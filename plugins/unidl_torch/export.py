"""``model.export(path, format="torch")``: a ``torch.export`` program saved as ``.pt2``.

The model's traced graph (:mod:`unidl.export.graph`, from whichever backend the model lives
on) is replayed with this backend's unidl kernels inside a ``torch.nn.Module`` whose buffers
are the graph's constants (the weights, named after them), exported by ``torch.export``
with a dynamic batch dimension and written by ``torch.export.save``. Loading needs torch
only::

    program = torch.export.load("model.pt2")
    y = program.module()(x)   # x: (batch, ...) as model.predict takes it
"""

from __future__ import annotations

import re

import numpy as np
import torch

from unidl.backend.state import use_backend
from unidl.export import ExportError
from unidl.export.files import atomic_file
from unidl.export.graph import Graph, run_graph

__all__ = ["export_torch", "GraphModule"]

FORMAT = "torch"


def _failure(node, exc) -> ExportError:
    return ExportError(f"{node.where()} cannot be exported to format {FORMAT!r}: "
                       f"{_first_line(exc)}")


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:400]


def _buffer_names(graph: Graph) -> list[str]:
    names, taken = [], set()
    for k, v in enumerate(graph.constants()):
        base = re.sub(r"\W", "_", v.name) if v.name else f"constant_{k}"
        name, n = base, 0
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names.append(name)
    return names


class GraphModule(torch.nn.Module):
    """A traced unidl graph as a module: ``forward(x)`` replays it with the torch kernels."""

    def __init__(self, graph: Graph, backend):
        super().__init__()
        self._graph = graph
        self._backend_name = backend.name
        self._constants = []
        with use_backend(backend.name):
            for name, v in zip(_buffer_names(graph), graph.constants()):
                self.register_buffer(name, backend.convert(np.asarray(v.array)).detach().clone())
                self._constants.append((v.id, name))

    def forward(self, x):
        with use_backend(self._backend_name):
            constants = {vid: getattr(self, name) for vid, name in self._constants}
            outs = run_graph(self._graph, [x], constants, fail=_failure)
        return outs[0] if len(outs) == 1 else tuple(outs)


def _program(graph: Graph, backend):
    (value,) = graph.input_values()
    example = torch.zeros((2,) + tuple(value.shape[1:]), dtype=backend.native_dtype(value.dtype))
    module = GraphModule(graph, backend).eval()
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        return torch.export.export(module, (example,), dynamic_shapes={"x": {0: batch}},
                                   strict=False)


def export_torch(graph: Graph, path, **options) -> str:
    """Write ``graph`` as a ``torch.export`` program at ``path`` (atomically).

    Raises:
        ExportError: an op cannot be captured (naming the layer and the op), the graph has
            several inputs, or an option is unknown.
    """
    from unidl.backend.registry import get_backend

    if options:
        raise ExportError(f"format {FORMAT!r} takes no options, got {sorted(options)}")
    if len(graph.inputs) != 1:
        raise ExportError(f"format {FORMAT!r}: exports take one input, the graph has "
                          f"{len(graph.inputs)}")
    backend = get_backend("torch")
    try:
        program = _program(graph, backend)
    except ExportError:
        raise
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ExportError) else None
        if cause is not None:
            raise cause from exc
        raise ExportError(f"format {FORMAT!r}: torch.export could not capture the model "
                          f"with a dynamic batch axis: {_first_line(exc)}") from exc
    with atomic_file(path) as tmp:
        torch.export.save(program, tmp)
    return str(path)
