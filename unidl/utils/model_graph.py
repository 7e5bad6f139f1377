"""A model's layer graph, for pictures: nodes (inputs, layer calls, nested models) with their
input and output shapes, and the edges between them.

* a functional model: its recorded graph (a node per layer call, several inputs and outputs,
  merges);
* a ``Sequential`` model: the chain its build recorded (an input, then each layer);
* a nested model (a model used as a layer): one node of kind ``"model"``;
* a subclassed model: its tracked layers in the order they were assigned, joined in that
  order, with a note that ``call()`` decides how they really connect.

Example:
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.utils.model_graph import model_graph
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(4, input_shape=(3,), name="hidden"),
    ...                               layers.Dense(1, name="score")])
    ...     graph = model_graph(model)
    >>> [(node.name, node.class_name) for node in graph.nodes][1:]
    [('hidden', 'Dense'), ('score', 'Dense')]
    >>> graph.edges
    [(0, 1), (1, 2)]
    >>> graph.nodes[2].output_shapes
    [(None, 1)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unidl.utils._common import PlotError

__all__ = ["GraphNode", "ModelGraph", "model_graph", "SUBCLASSED_NOTE"]

SUBCLASSED_NOTE = ("subclassed model: its layers in the order they were assigned; "
                   "call() decides how they connect")


@dataclass
class GraphNode:
    """One box: ``kind`` is ``"input"``, ``"layer"`` or ``"model"`` (a nested model)."""

    name: str
    class_name: str
    kind: str = "layer"
    input_shapes: list = field(default_factory=list)
    output_shapes: list = field(default_factory=list)
    dtypes: list = field(default_factory=list)
    detail: str | None = None


@dataclass
class ModelGraph:
    """The nodes, the ``(source, target)`` edges between their indices, and the model's
    name, class and (for subclassed models) a note; ``dashed``: the edges are only the
    order of the layers, not known connections."""

    name: str
    class_name: str
    nodes: list
    edges: list
    note: str | None = None
    dashed: bool = False


def _unbuilt(model) -> PlotError:
    return PlotError(f"plot_model: model {model.name!r} ({type(model).__name__}) is not built, "
                     "so its layers and shapes are unknown: call it on a batch first "
                     "(model(x), or fit/predict), or give its first layer input_shape=...")


def _class(layer) -> str:
    return type(layer).__name__


def _shape(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _layer_node(layer, name, inputs, outputs) -> GraphNode:
    from unidl.models.model import Model

    kind = "model" if isinstance(layer, Model) else "layer"
    detail = None
    if kind == "model":
        count = len(layer.layers)
        detail = f"{count} layer{'s' if count != 1 else ''}"
    return GraphNode(name, _class(layer), kind, [_shape(s.shape) for s in inputs],
                     [_shape(s.shape) for s in outputs], [s.dtype for s in outputs], detail)


def _functional(model, graph) -> ModelGraph:
    """Nodes and edges of a recorded graph (a functional model, or a built Sequential)."""
    from unidl import tree
    from unidl.layers.base import SymbolicTensor

    nodes, edges, producer = [], [], {}
    for sym in graph.input_leaves:
        producer[id(sym)] = len(nodes)
        nodes.append(GraphNode(sym.name or "input", "InputLayer", "input", [_shape(sym.shape)],
                               [_shape(sym.shape)], [sym.dtype]))
    calls: dict = {}
    for node in graph.nodes:
        layer = node.layer
        calls[id(layer)] = calls.get(id(layer), 0) + 1
        name = layer.name if calls[id(layer)] == 1 else f"{layer.name} (call {calls[id(layer)]})"
        leaves = tree.flatten((node.inputs, list(node.args), dict(node.kwargs)))[0]
        inputs = [s for s in leaves if isinstance(s, SymbolicTensor)]
        index = len(nodes)
        nodes.append(_layer_node(layer, name, inputs, node.outputs))
        for s in inputs:
            edge = (producer[id(s)], index)
            if edge not in edges:
                edges.append(edge)
        for s in node.outputs:
            producer[id(s)] = index
    return ModelGraph(model.name, _class(model), nodes, edges)


def _subclassed(model) -> ModelGraph:
    """The tracked layers in order (shapes where a symbolic call recorded them)."""
    nodes = []
    for layer in model.layers:
        shape = getattr(layer, "_last_output_shape", None)
        outputs = [] if shape is None else (
            [_shape(s) for s in shape] if shape and isinstance(shape[0], (list, tuple))
            else [_shape(shape)])
        node = _layer_node(layer, layer.name, [], [])
        node.output_shapes = outputs
        nodes.append(node)
    edges = [(i, i + 1) for i in range(len(nodes) - 1)]
    return ModelGraph(model.name, _class(model), nodes, edges, SUBCLASSED_NOTE, dashed=True)


def model_graph(model) -> ModelGraph:
    """The :class:`ModelGraph` of a built ``model`` (a :class:`PlotError` saying to call
    it on a batch when it is not built)."""
    from unidl.layers.base import Layer
    from unidl.models.functional import FunctionalGraph

    if not isinstance(model, Layer):
        raise PlotError(f"plot_model takes a unidl model, got {type(model).__name__}")
    graph = getattr(model, "_graph", None)
    if graph is not None:
        return _functional(model, graph)
    if hasattr(model, "_stack"):  # Sequential: the chain recorded when it was built
        if not model.built or model.inputs is None:
            raise _unbuilt(model)
        return _functional(model, FunctionalGraph(model.inputs, model.outputs))
    if not model.built:
        raise _unbuilt(model)
    if not model.layers:
        raise PlotError(f"plot_model: model {model.name!r} ({_class(model)}) has no layers "
                        "to draw")
    return _subclassed(model)
