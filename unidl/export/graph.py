"""A small backend-neutral graph of one traced forward pass: what every export format starts from.

A :class:`Graph` is a list of :class:`Node` objects, one per ``unidl.ops`` call of the
traced pass, in call order. A node holds the op's spec name and its canonical arguments:
tensor arguments are :class:`Ref` objects naming a :class:`Value` (the graph input, a
constant, or an earlier node's output), everything else is kept as traced (Python numbers,
tuples, strings), with :data:`~unidl.export.rules.BATCH` wherever the traced value was the
batch size. Weights are constants holding NumPy arrays. Each node remembers the layer
whose ``call`` ran it (for error messages) and, for a composite op, the nodes of its
implementation (a format without a rule for the op converts those instead).

:func:`run_graph` replays a graph with the active backend's kernels: the torch and
TensorFlow exporters run it inside ``torch.export`` and ``tf.function``.

Example:
    >>> import numpy as np
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.export.trace import trace_model
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Flatten(input_shape=(2, 3)), layers.Dense(4)])
    ...     graph = trace_model(model)
    >>> [node.op for node in graph.nodes]
    ['reshape', 'dense']
    >>> graph.nodes[0].args[1]  # the flatten's target shape, its batch entry made dynamic
    (-1, 6)
    >>> graph.value(graph.outputs[0]).shape
    (None, 4)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from unidl.export.rules import BATCH, ExportError

__all__ = ["Graph", "Node", "Ref", "Value", "BatchRewriter", "lower_batch", "run_graph",
           "map_args"]


@dataclass(frozen=True)
class Ref:
    """A tensor argument of a node: the id of a :class:`Value` of the graph."""

    id: int

    def __repr__(self) -> str:
        return f"%{self.id}"


@dataclass
class Value:
    """A tensor of the graph: its shape (``None`` where a size depends on the batch size)
    and dtype.

    ``kind`` is ``"input"``, ``"node"`` (an op's output), ``"weight"`` (a Variable of the
    model, ``array`` its value) or ``"constant"`` (a tensor the pass made without an op).
    ``batch_axes`` holds ``(axis, k)`` for each ``None``: that size is ``k`` times the batch
    size (``k`` is 1 for the batch axis; a sequence flattened to ``(batch * time, ...)``
    has ``k = time``).
    """

    id: int
    shape: tuple
    dtype: str
    kind: str
    name: str = ""
    array: np.ndarray | None = None
    batch_axes: tuple = ()


@dataclass
class Node:
    """One op call. ``outputs`` are value ids (several when the op returns a sequence,
    ``multi``); ``layer`` is ``(name, class name)`` of the layer that called it, or None;
    ``children``/``child_outputs``: a composite's implementation and the values of it that
    are the op's outputs (``child_outputs`` empty: no usable implementation)."""

    op: str
    args: tuple
    outputs: tuple
    multi: bool = False
    layer: tuple | None = None
    children: list = field(default_factory=list)
    child_outputs: tuple = ()

    def where(self) -> str:
        """``layer 'dense' (Dense), op 'matmul'`` (for messages)."""
        if self.layer is None:
            return f"op {self.op!r}"
        return f"layer {self.layer[0]!r} ({self.layer[1]}), op {self.op!r}"


@dataclass
class Graph:
    """A traced forward pass (see the module docstring)."""

    values: dict
    nodes: list
    inputs: list
    outputs: list
    name: str = "model"

    def value(self, vid: int) -> Value:
        return self.values[vid]

    def constants(self) -> list[Value]:
        """The weights and other constants, in the order the pass first used them."""
        return [v for v in self.values.values() if v.kind in ("weight", "constant")]

    def input_values(self) -> list[Value]:
        return [self.values[i] for i in self.inputs]

    def output_values(self) -> list[Value]:
        return [self.values[i] for i in self.outputs]

    def ops(self) -> list[str]:
        """The op names of the top-level nodes, in order."""
        return [n.op for n in self.nodes]


def map_args(args, fn):
    """``args`` with every :class:`Ref` (also inside lists and tuples) replaced by
    ``fn(ref)``."""
    if isinstance(args, Ref):
        return fn(args)
    if isinstance(args, (list, tuple)):
        return type(args)(map_args(a, fn) for a in args)
    return args


def contains_batch(value) -> bool:
    """Whether :data:`BATCH` occurs in ``value`` (a traced argument)."""
    if value is BATCH:
        return True
    if isinstance(value, (list, tuple)):
        return any(contains_batch(v) for v in value)
    return False


# ---- replay -------------------------------------------------------------------------------------
def run_graph(graph: Graph, inputs: list, constants: dict, fail=None) -> list:
    """Run ``graph`` with the active backend's kernels; returns the output tensors.

    Args:
        inputs: one native tensor per graph input.
        constants: ``{value id: tensor}`` for every constant of the graph (a format's
            parameters or buffers, or arrays).
        fail: ``fail(node, exc)`` returns the exception to raise when an op fails (default:
            the op's own error).
    """
    from unidl import ops
    from unidl.spec import get_spec

    env = dict(zip(graph.inputs, inputs))
    env.update(constants)
    for node in graph.nodes:
        args = map_args(node.args, lambda r: env[r.id])
        if get_spec(node.op).varargs:  # (traced canonically: the *args as one tuple)
            args = tuple(args[:-1]) + tuple(args[-1])
        try:
            out = getattr(ops, node.op)(*args)
        except Exception as exc:
            if fail is None:
                raise
            raise fail(node, exc) from exc
        if node.multi:
            env.update(zip(node.outputs, out))
        else:
            env[node.outputs[0]] = out
    return [env[i] for i in graph.outputs]


# ---- the batch size, made dynamic ---------------------------------------------------------------
class BatchRewriter:
    """Rewrites nodes whose traced arguments hold :data:`BATCH` with the op's ``batch``
    export rule (see :mod:`unidl.export.rules`).

    Attributes:
        batch_like: a :class:`Ref` to a tensor whose axis 0 is the batch (the model input).
        batch_sizes: the two batch sizes of the traces (to infer the shapes of new nodes).
    """

    def __init__(self, graph: Graph, batch_sizes: tuple, node: Node):
        self.graph = graph
        self.batch_like = Ref(graph.inputs[0])
        self.batch_sizes = batch_sizes
        self.node = node
        self.nodes: list[Node] = []
        self._ids = itertools.count(max(graph.values) + 1)

    def emit(self, op: str, *args):
        """Append a node calling ``op`` on ``args`` (Refs for tensors); returns its output
        Ref (a list of Refs for an op returning a sequence)."""
        from unidl.spec import get_spec

        spec = get_spec(op)
        args = tuple(self._const(a, i, spec) for i, a in enumerate(args))
        shapes, dtypes, multi = self._infer(spec, args)
        ids = []
        for shape, dtype in zip(shapes, dtypes):
            vid = next(self._ids)
            self.graph.values[vid] = Value(vid, shape, dtype, "node")
            ids.append(vid)
        self.nodes.append(Node(op, args, tuple(ids), multi, self.node.layer))
        refs = [Ref(i) for i in ids]
        return refs if multi else refs[0]

    def constant(self, array) -> Ref:
        """A new constant value holding ``array``."""
        from unidl import dtypes as _dt

        array = np.asarray(array)
        vid = next(self._ids)
        self.graph.values[vid] = Value(vid, array.shape, _dt.standardize(array.dtype),
                                       "constant", array=array)
        return Ref(vid)

    def dtype(self, arg) -> str:
        """The dtype of a tensor argument (a Ref or a Python number)."""
        from unidl import dtypes as _dt

        if isinstance(arg, Ref):
            return self.graph.value(arg.id).dtype
        return _dt.result_type(arg)

    def filled(self, shape, value, dtype):
        """A ``shape`` tensor (``shape[0]`` is :data:`BATCH`, nothing else is) filled with
        ``value``: zeros shaped ``(batch, 1, ..., 1)`` from :attr:`batch_like` (so no op
        sees the batch size) combined with ``full(shape[1:], value)``. None for any other
        shape."""
        from unidl import dtypes as _dt

        shape = (shape,) if shape is BATCH else tuple(shape)
        rest = shape[1:]
        if not shape or shape[0] is not BATCH or contains_batch(rest):
            return None
        dtype = _dt.standardize(dtype) if dtype is not None else _dt.result_type(value)
        like = self.graph.value(self.batch_like.id)
        width = int(np.prod(like.shape[1:], dtype=np.int64))
        flat = self.emit("reshape", self.batch_like, (-1, width))
        column = self.emit("take", flat, self.constant(np.zeros((1,), np.int64)), 1)
        column = self.emit("zeros_like", column, dtype)  # (batch, 1)
        column = self.emit("reshape", column, (-1,) + (1,) * len(rest))
        body = self.emit("full", rest, value, dtype)
        return self.emit("logical_or" if dtype == "bool" else "add", column, body)

    def _const(self, arg, pos, spec):
        if pos in spec.tensor_pos and isinstance(arg, np.ndarray):
            return self.constant(arg)
        return arg

    def _infer(self, spec, args):
        """Output shapes (batch axes None) and dtypes, from the spec's rules evaluated at
        both traced batch sizes."""
        results = []
        for b in self.batch_sizes:
            shapes = spec.result_shape(_abstract(self.graph, spec, args, b, True))
            results.append((shapes, spec.result_dtype(_abstract(self.graph, spec, args, b,
                                                                False))))
        (s2, dt), (s3, _) = results
        multi = isinstance(s2, list)
        s2, s3 = (s2, s3) if multi else ([s2], [s3])
        dts = list(dt) if isinstance(dt, (list, tuple)) else [dt] * len(s2)
        shapes = [tuple(None if a != b else a for a, b in zip(x, y)) for x, y in zip(s2, s3)]
        return shapes, dts, multi


def _abstract(graph, spec, args, batch, shapes: bool):
    """``args`` as a spec's rules take them: tensors as their shapes (batch axes ``batch``)
    or dtype names (Python numbers stay), :data:`BATCH` as ``batch``."""

    def tensor(a):
        if isinstance(a, Ref):
            v = graph.value(a.id)
            return tuple(batch if d is None else d for d in v.shape) if shapes else v.dtype
        if a is None or not shapes:
            return a
        return tuple(np.shape(a))

    def plain(a):
        if a is BATCH:
            return batch
        if isinstance(a, (list, tuple)):
            return type(a)(plain(x) for x in a)
        return a

    out = []
    for i, a in enumerate(args):
        if i in spec.tensor_pos:
            a = tensor(a)
        elif i in spec.tensor_list_pos:
            a = [tensor(x) for x in a]
        else:
            a = plain(a)
        out.append(a)
    return tuple(out)


def lower_batch(graph: Graph, batch_sizes: tuple) -> Graph:
    """``graph`` with every argument holding :data:`BATCH` rewritten by its op's ``batch``
    rule, so that no op is given the batch size (the exported batch axis stays dynamic).

    Raises:
        ExportError: an op has no rule for it (naming the layer, the op and the argument).
    """
    out_nodes = []
    for node in graph.nodes:
        if not contains_batch(node.args):
            out_nodes.append(_lower_children(graph, node, batch_sizes))
            continue
        out_nodes.extend(_rewrite(graph, node, batch_sizes))
    return replace(graph, nodes=out_nodes)


def _lower_children(graph, node, batch_sizes):
    """A composite's implementation with its batch arguments rewritten, or dropped (the
    nodes are only a fallback) when that is not possible."""
    if not node.children or not any(_has_batch(c) for c in node.children):
        return node
    try:
        sub = lower_batch(replace(graph, nodes=node.children), batch_sizes)
    except ExportError:
        return replace(node, children=[], child_outputs=())
    return replace(node, children=sub.nodes)


def _has_batch(node) -> bool:
    return contains_batch(node.args) or any(_has_batch(c) for c in node.children)


def _rewrite(graph, node, batch_sizes):
    from unidl.spec import get_spec

    spec = get_spec(node.op)
    rule = spec.export.get("batch")
    rewriter = BatchRewriter(graph, batch_sizes, node)
    got = rule(rewriter, *node.args) if rule is not None else None
    if got is None:
        names = [spec.param_names[i] for i, a in enumerate(node.args) if contains_batch(a)]
        raise ExportError(f"{node.where()}: its argument {', '.join(names)} "
                          f"({', '.join(repr(node.args[spec.param_names.index(n)]) for n in names)}"
                          f") depends on the batch size, and the op has no rule to express "
                          "that with a dynamic batch axis; compute it from tensor shapes "
                          "with -1 (e.g. ops.reshape(x, (-1, n))) instead")
    refs = got if isinstance(got, (list, tuple)) else [got]
    nodes = rewriter.nodes
    # later nodes refer to the rewritten node's output ids: the new nodes take them over
    for vid, ref in zip(node.outputs, refs):
        if any(ref.id in n.outputs for n in nodes):
            _rename(graph, nodes, ref.id, vid)
        else:  # (a rule returning an existing value)
            nodes.append(Node("stop_gradient", (ref,), (vid,), False, node.layer))
    return nodes


def _rename(graph, nodes, old, new):
    """Make value ``new`` (the traced one, kept) take the place of ``old`` in ``nodes``."""
    graph.values.pop(old)
    for k, n in enumerate(nodes):
        nodes[k] = replace(n, outputs=tuple(new if o == old else o for o in n.outputs),
                           args=map_args(n.args, lambda r: Ref(new) if r.id == old else r))
