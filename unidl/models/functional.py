"""The functional API: ``unidl.Input`` and layers called on symbolic tensors.

Example:
    >>> import unidl
    >>> from unidl import layers
    >>> with unidl.use_backend("numpy"):
    ...     x = unidl.Input((4,))
    ...     y = layers.Dense(2)(x)
    ...     model = unidl.Model(x, y)
    ...     model.output_shape
    (None, 2)
"""

from __future__ import annotations

import numpy as np

from unidl import tree
from unidl.layers.base import LayerError, SymbolicTensor

__all__ = ["Input", "call_symbolic", "FunctionalGraph", "graph_config", "graph_from_config"]

_DUMMY_BATCH = 2
_DUMMY_DIM = 16
_DUMMY_DIM2 = 19


def Input(shape, dtype="float32", name=None, batch_size=None):  # noqa: N802 (Keras name)
    """A symbolic input of one example's ``shape`` (the batch axis is added, unknown)."""
    from unidl.layers.base import unique_name

    return SymbolicTensor((batch_size,) + tuple(shape), dtype=dtype, producer=None,
                          name=name or unique_name("input"))


def _dummy(sym: SymbolicTensor, fill: int = _DUMMY_DIM):
    from unidl import ops

    shape = [(_DUMMY_BATCH if i == 0 else fill) if d is None else d
             for i, d in enumerate(sym.shape)]
    return ops.zeros(tuple(shape), dtype=sym.dtype)


def _run_dummy(layer, leaves, treedef, fill):
    concrete = [_dummy(v, fill) if isinstance(v, SymbolicTensor) else v for v in leaves]
    inputs, args, kwargs = tree.unflatten(treedef, concrete)
    return layer(inputs, *args, **kwargs)


def call_symbolic(layer, inputs, args, kwargs):
    """Record ``layer(inputs, *args, **kwargs)`` on symbolic tensors; return symbolic outputs.

    Symbolic tensors may appear in ``inputs`` and in the other arguments. Output shapes come
    from ``layer.compute_output_shape`` when it gives one, else from running the layer on
    small zero tensors (which also builds its weights): the batch axis maps back to ``None``,
    and when other axes are unknown the layer runs twice with two sizes, and every output axis
    whose size changed is unknown too.
    """
    from unidl import ops

    leaves, treedef = tree.flatten((inputs, list(args), dict(kwargs)))
    symbols = [v for v in leaves if isinstance(v, SymbolicTensor)]
    batch_unknown = any(v.shape and v.shape[0] is None for v in symbols)
    inner_unknown = any(d is None for v in symbols for d in v.shape[1:])
    try:
        out = _run_dummy(layer, leaves, treedef, _DUMMY_DIM)
        other = _run_dummy(layer, leaves, treedef, _DUMMY_DIM2) if inner_unknown else None
    except LayerError:
        raise
    except Exception as exc:
        shapes = [v.shape for v in symbols]
        raise LayerError(layer, f"cannot be called on inputs of shape "
                                f"{shapes[0] if len(shapes) == 1 else shapes}: {exc}") from None
    out_leaves, out_tree = tree.flatten(out)
    other_leaves = tree.flatten(other)[0] if other is not None else None
    node = Node(layer, inputs, args, kwargs)
    symbolic = []
    for k, o in enumerate(out_leaves):
        shape = list(ops.shape(o))
        if batch_unknown and shape and shape[0] == _DUMMY_BATCH:
            shape[0] = None
        if other_leaves is not None:
            shape = [None if d != d2 else d for d, d2 in zip(shape, ops.shape(other_leaves[k]))]
        symbolic.append(SymbolicTensor(shape, ops.dtype(o), producer=node, index=k,
                                       name=f"{layer.name}/out{k}"))
    declared = _declared_shape(layer, symbols)
    if declared is not None and len(symbolic) == 1:
        symbolic[0].shape = declared
    node.outputs = symbolic
    layer._last_output_shape = symbolic[0].shape if len(symbolic) == 1 else \
        [t.shape for t in symbolic]
    return tree.unflatten(out_tree, symbolic)


def _declared_shape(layer, symbols):
    """``layer.compute_output_shape`` for the symbolic inputs, when the layer defines it."""
    try:
        shape = layer.compute_output_shape(symbols[0].shape if len(symbols) == 1 else
                                           [s.shape for s in symbols])
    except Exception:
        return None
    if isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, int) for d in shape):
        return tuple(shape)
    return None


class Node:
    """One recorded layer call of the functional API."""

    __slots__ = ("layer", "inputs", "args", "kwargs", "outputs")

    def __init__(self, layer, inputs, args, kwargs):
        self.layer, self.inputs, self.args, self.kwargs = layer, inputs, args, kwargs
        self.outputs = []


class FunctionalGraph:
    """The layer calls between symbolic ``inputs`` and ``outputs``, in execution order."""

    def __init__(self, inputs, outputs):
        self.inputs = inputs
        self.outputs = outputs
        in_leaves, _ = tree.flatten(inputs)
        out_leaves, _ = tree.flatten(outputs)
        for v in in_leaves + out_leaves:
            if not isinstance(v, SymbolicTensor):
                raise ValueError("Model(inputs, outputs) needs symbolic tensors made from "
                                 f"unidl.Input and layer calls; got {type(v).__name__}")
        self.input_leaves = in_leaves
        input_ids = {id(v) for v in in_leaves}
        order, seen = [], set()

        def visit(sym):
            if id(sym) in input_ids:
                return
            if sym.producer is None:
                raise ValueError(f"output depends on input {sym.name!r} that is not among "
                                 "the model's inputs")
            node = sym.producer
            if id(node) in seen:
                return
            seen.add(id(node))
            for s in tree.flatten((node.inputs, list(node.args), dict(node.kwargs)))[0]:
                if isinstance(s, SymbolicTensor):
                    visit(s)
            order.append(node)

        for v in out_leaves:
            visit(v)
        self.nodes = order
        self.layers = []
        for node in order:
            if all(node.layer is not layer for layer in self.layers):
                self.layers.append(node.layer)

    def run(self, inputs, training=None):
        values = {}
        given, _ = tree.flatten(inputs)
        if len(given) != len(self.input_leaves):
            raise ValueError(f"the model has {len(self.input_leaves)} input(s), got {len(given)}")
        for sym, v in zip(self.input_leaves, given):
            values[id(sym)] = v
        for node in self.nodes:
            leaves, treedef = tree.flatten((node.inputs, list(node.args), dict(node.kwargs)))
            concrete = [values[id(s)] if isinstance(s, SymbolicTensor) else s for s in leaves]
            inputs, args, kw = tree.unflatten(treedef, concrete)
            kw.setdefault("training", training)
            out = node.layer(inputs, *args, **kw)
            for s, o in zip(node.outputs, tree.flatten(out)[0]):
                values[id(s)] = o
        out_leaves, out_tree = tree.flatten(self.outputs)
        return tree.unflatten(out_tree, [values[id(s)] for s in out_leaves])


def dummy_batch(shape, dtype):
    """Zeros of a batch shape with None replaced (used to build models from input_shape)."""
    return np.zeros([_DUMMY_BATCH if d is None else d for d in shape], dtype=dtype)


# -- configs: the graph as JSON values and back --------------------------------------------------
def graph_config(model) -> dict:
    """The functional graph of ``model``: its input tensors, layers, layer calls (each
    tensor named by ``{"__tensor__": [node, output]}``, node -1 for the model's inputs) and
    outputs. Layers appear as objects (:func:`unidl.saving.serialize` turns them into
    configs)."""
    g = model._graph
    ids = {id(s): [-1, k] for k, s in enumerate(g.input_leaves)}
    for n, node in enumerate(g.nodes):
        for k, out in enumerate(node.outputs):
            ids[id(out)] = [n, k]
    layer_index = {id(layer): i for i, layer in enumerate(g.layers)}

    def encode(value):
        if isinstance(value, SymbolicTensor):
            return {"__tensor__": ids[id(value)]}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return value

    return {"input_tensors": [{"shape": list(s.shape), "dtype": s.dtype, "name": s.name}
                              for s in g.input_leaves],
            "inputs": encode(model._input_spec), "layers": list(g.layers),
            "nodes": [{"layer": layer_index[id(node.layer)], "inputs": encode(node.inputs),
                       "args": encode(list(node.args)), "kwargs": encode(dict(node.kwargs))}
                      for node in g.nodes],
            "outputs": encode(model._output_spec)}


def graph_from_config(config: dict):
    """``(inputs, outputs)`` symbolic structures rebuilt from :func:`graph_config`'s values
    (its layers already objects), by calling each layer as the saved graph did."""
    inputs = [Input(tuple(t["shape"][1:]), dtype=t["dtype"], name=t.get("name"),
                    batch_size=t["shape"][0]) for t in config["input_tensors"]]
    produced: list = []

    def decode(value):
        if isinstance(value, dict) and set(value) == {"__tensor__"}:
            node, k = value["__tensor__"]
            return inputs[k] if node == -1 else produced[node][k]
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        return value

    layers = config["layers"]
    for n, node in enumerate(config["nodes"]):
        layer = layers[node["layer"]]
        out = layer(decode(node["inputs"]), *decode(node["args"]), **decode(node["kwargs"]))
        produced.append(tree.flatten(out)[0])
        if len(produced) != n + 1:  # pragma: no cover - defensive
            raise ValueError("graph config: nodes out of order")
    return decode(config["inputs"]), decode(config["outputs"])
