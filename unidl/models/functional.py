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

__all__ = ["Input", "call_symbolic", "FunctionalGraph"]

_DUMMY_BATCH = 2
_DUMMY_DIM = 3


def Input(shape, dtype="float32", name=None, batch_size=None):  # noqa: N802 (Keras name)
    """A symbolic input of one example's ``shape`` (the batch axis is added, unknown)."""
    from unidl.layers.base import unique_name

    return SymbolicTensor((batch_size,) + tuple(shape), dtype=dtype, producer=None,
                          name=name or unique_name("input"))


def _dummy(sym: SymbolicTensor):
    from unidl import ops

    shape = [(_DUMMY_BATCH if i == 0 else _DUMMY_DIM) if d is None else d
             for i, d in enumerate(sym.shape)]
    if sym.dtype.startswith(("int", "uint")):
        return ops.zeros(tuple(shape), dtype=sym.dtype)
    return ops.zeros(tuple(shape), dtype=sym.dtype)


def call_symbolic(layer, inputs, args, kwargs):
    """Record ``layer(inputs, *args, **kwargs)`` on symbolic tensors; return symbolic outputs.

    Output shapes come from running the layer once on small zero tensors of the input shapes
    (which also builds its weights), with the batch axis mapped back to ``None``.
    """
    from unidl import ops

    leaves, treedef = tree.flatten(inputs)
    concrete = [_dummy(v) if isinstance(v, SymbolicTensor) else v for v in leaves]
    batch_unknown = any(isinstance(v, SymbolicTensor) and v.shape and v.shape[0] is None
                        for v in leaves)
    call_kwargs = dict(kwargs)
    try:
        out = layer(tree.unflatten(treedef, concrete), *args, **call_kwargs)
    except LayerError:
        raise
    except Exception as exc:
        shapes = [v.shape for v in leaves if isinstance(v, SymbolicTensor)]
        raise LayerError(layer, f"cannot be called on inputs of shape "
                                f"{shapes[0] if len(shapes) == 1 else shapes}: {exc}") from None
    out_leaves, out_tree = tree.flatten(out)
    node = Node(layer, inputs, args, kwargs)
    symbolic = []
    for k, o in enumerate(out_leaves):
        shape = list(ops.shape(o))
        if batch_unknown and shape and shape[0] == _DUMMY_BATCH:
            shape[0] = None
        symbolic.append(SymbolicTensor(shape, ops.dtype(o), producer=node, index=k,
                                       name=f"{layer.name}/out{k}"))
    node.outputs = symbolic
    layer._last_output_shape = symbolic[0].shape if len(symbolic) == 1 else \
        [t.shape for t in symbolic]
    return tree.unflatten(out_tree, symbolic)


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
            for s in tree.flatten(node.inputs)[0]:
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
            leaves, treedef = tree.flatten(node.inputs)
            concrete = [values[id(s)] if isinstance(s, SymbolicTensor) else s for s in leaves]
            kw = dict(node.kwargs)
            kw.setdefault("training", training)
            out = node.layer(tree.unflatten(treedef, concrete), *node.args, **kw)
            for s, o in zip(node.outputs, tree.flatten(out)[0]):
                values[id(s)] = o
        out_leaves, out_tree = tree.flatten(self.outputs)
        return tree.unflatten(out_tree, [values[id(s)] for s in out_leaves])


def dummy_batch(shape, dtype):
    """Zeros of a batch shape with None replaced (used to build models from input_shape)."""
    return np.zeros([_DUMMY_BATCH if d is None else d for d in shape], dtype=dtype)
