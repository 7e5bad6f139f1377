"""Tracing a model's inference pass into a :class:`~unidl.export.graph.Graph`.

For the length of one ``model(x, training=False)`` call the thread's kernel table is
swapped for a *recording* table (as unidl's autodiff engine swaps in its traced table): each
op runs the backend's kernel (a composite its implementation, recorded too) and appends a
node naming the op, its arguments and the layer whose ``call`` ran it. Variables become
weight constants; tensors the pass made without an op become constants.

The batch axis is made symbolic by tracing twice, at batch sizes 2 and 3, with different
random inputs: an argument that differs between the traces and equals the batch size in
each becomes :data:`~unidl.export.rules.BATCH` (then rewritten by the op's ``batch`` rule,
:func:`~unidl.export.graph.lower_batch`); anything else that differs (another argument, a
constant, the sequence of ops) depends on the batch or the input in a way a graph cannot
hold, and is an :class:`~unidl.export.rules.ExportError` naming the layer and the op.

Example:
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.export.trace import trace_model
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(3, activation="relu", input_shape=(4,),
    ...                                            name="hidden")])
    ...     graph = trace_model(model)
    >>> [(node.op, node.layer) for node in graph.nodes]
    [('dense', ('hidden', 'Dense')), ('relu', ('hidden', 'Dense'))]
    >>> [(w.name, w.shape) for w in graph.constants()]
    [('hidden/kernel', (4, 3)), ('hidden/bias', (3,))]
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace

import numpy as np

from unidl.export.graph import Graph, Node, Ref, Value, lower_batch
from unidl.export.rules import BATCH, ExportError

__all__ = ["trace_model", "trace_function", "trace_call", "model_input", "BATCH_SIZES"]

#: the batch sizes of the two traces
BATCH_SIZES = (2, 3)

_PLAIN_SCALARS = (bool, int, float, complex, np.generic)


class _Recorder:
    """Turns op calls into nodes: values by object identity, nodes into the innermost
    open composite (or the graph)."""

    def __init__(self, be):
        from unidl.layers.base import Layer
        from unidl.variables import Variable

        self.be = be
        self.natives = frozenset(be.tensor_types)
        self.variable_cls = Variable
        self.layer_code = Layer.__call__.__code__
        self.ids = itertools.count()
        self.values: dict = {}
        self.by_object: dict = {}
        self.alive: list = []  # every traced object, so that object ids stay unique
        self.stack: list = [[]]

    # -- values -------------------------------------------------------------------------------
    def _new(self, obj, kind, name="", array=None, native=None) -> Ref:
        vid = next(self.ids)
        t = native if native is not None else obj
        if array is not None:
            shape, dtype = array.shape, _dtype_name(array.dtype)
        else:
            shape, dtype = tuple(self.be.shape_of(t)), self.be.dtype_of(t)
        self.values[vid] = Value(vid, tuple(int(d) for d in shape), dtype, kind, name, array)
        self.by_object[id(obj)] = vid
        self.alive.append(obj)
        return Ref(vid)

    def add_input(self, tensor) -> int:
        return self._new(tensor, "input").id

    def tensor(self, a):
        """A tensor argument as a :class:`Ref` (a Python number stays as it is)."""
        if a is None or isinstance(a, _PLAIN_SCALARS):
            return a
        vid = self.by_object.get(id(a))
        if vid is not None:
            return Ref(vid)
        if isinstance(a, self.variable_cls):
            native = a.__unidl_tensor__()
            ref = self._new(a, "weight", a.name, np.array(a.numpy()))
            self.by_object[id(native)] = ref.id
            self.alive.append(native)
            return ref
        if a.__class__ in self.natives:
            return self._new(a, "constant", array=np.array(self.be.to_numpy(a)))
        return self._new(a, "constant", array=np.array(a))

    def plain(self, a):
        """A non-tensor argument as traced (a native tensor there becomes a NumPy array)."""
        if isinstance(a, (list, tuple)):
            return type(a)(self.plain(v) for v in a)
        if a.__class__ in self.natives:
            return np.array(self.be.to_numpy(a))
        return a

    # -- nodes --------------------------------------------------------------------------------
    def record(self, spec, args, out, children, decomposed) -> None:
        """Append the node of one op call; ``decomposed``: a composite's implementation ran
        (its ``children`` are then the op's decomposition, possibly empty)."""
        refs = []
        for i, a in enumerate(args):
            if i in spec.tensor_pos:
                a = self.tensor(a)
            elif i in spec.tensor_list_pos:
                a = [self.tensor(v) for v in a]
            else:
                a = self.plain(a)
            refs.append(a)
        multi = isinstance(out, (list, tuple))
        outs = list(out) if multi else [out]
        child_outputs = tuple(self.tensor(o).id for o in outs) if decomposed else ()
        ids = tuple(self._new(o, "node").id for o in outs)
        self.stack[-1].append(Node(spec.name, tuple(refs), ids, multi, self.layer(),
                                   children, child_outputs))

    def layer(self):
        """``(name, class name)`` of the innermost layer whose ``__call__`` is running."""
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code is self.layer_code:
                layer = frame.f_locals.get("self")
                return (getattr(layer, "name", "?"), type(layer).__name__)
            frame = frame.f_back
        return None


def _dtype_name(dtype) -> str:
    from unidl import dtypes as _dt

    return _dt.standardize(dtype)


def _recording_table(be, rec: _Recorder):
    from unidl.backend.binding import Table, prepare
    from unidl.spec import all_specs
    from unidl.spec.core import COMPOSITE

    table = Table(f"{be.name}[export]")
    for spec in all_specs():
        impl = prepare(spec, spec.impl, be) if spec.kind == COMPOSITE else None
        setattr(table, spec.name, _recording_op(spec, getattr(be.table, spec.name), impl, rec))
    return table


def _recording_op(spec, kernel, impl, rec: _Recorder):
    """The op recorded: a composite runs its implementation, whose ops are recorded as its
    children (the backend's kernel where the implementation fails: no children then)."""
    def op(*args):
        for i in spec.tensor_pos:  # (weights first, so a composite's own ops see them)
            if isinstance(args[i], rec.variable_cls):
                rec.tensor(args[i])
        rec.stack.append([])
        decomposed = impl is not None
        try:
            out = impl(*args) if decomposed else kernel(*args)
        except Exception:
            if not decomposed:
                raise
            rec.stack[-1], decomposed = [], False
            out = kernel(*args)
        finally:
            children = rec.stack.pop()
        rec.record(spec, args, out, children, decomposed)
        return out

    op.__name__ = spec.name
    return op


# ---- one trace --------------------------------------------------------------------------------
def _trace_once(fn, be, arrays, name) -> Graph:
    from unidl import ops, tree
    from unidl.backend.state import STATE, use_backend

    with use_backend(be.name):
        xs = [ops.convert_to_tensor(a) for a in arrays]
        rec = _Recorder(be)
        inputs = [rec.add_input(x) for x in xs]
        saved = STATE.k
        STATE.k = _recording_table(be, rec)
        try:
            out = fn(*xs)
        finally:
            STATE.k = saved
        leaves, _ = tree.flatten(out)
        outputs = []
        for leaf in leaves:
            ref = rec.tensor(leaf)
            if not isinstance(ref, Ref):
                raise ExportError(f"the traced pass returns {leaf!r}, not a tensor")
            outputs.append(ref.id)
    return Graph(rec.values, rec.stack[0], inputs, outputs, name)


# ---- two traces, one graph -----------------------------------------------------------------
class _Merge:
    """Merges the traces at the two batch sizes; see the module docstring. A composite's
    implementation that cannot be merged (its own ops see ``batch * time`` rows, say) is
    dropped: it is only a fallback for formats without a rule for the op."""

    def __init__(self, a: Graph, b: Graph, sizes):
        self.a, self.b, self.sizes = a, b, tuple(sizes)
        self.values: dict = {}

    def graph(self) -> Graph:
        for vid in self.a.inputs:
            self.value(vid)
        nodes = self.nodes(self.a.nodes, self.b.nodes, None)
        for vid in self.a.outputs:
            self.value(vid)
        return replace(self.a, nodes=nodes, values=self.values)

    def nodes(self, xs, ys, parent):
        if [n.op for n in xs] != [n.op for n in ys]:
            first = next((i for i, (x, y) in enumerate(zip(xs, ys)) if x.op != y.op),
                         min(len(xs), len(ys)))
            at = xs[first] if first < len(xs) else ys[first]
            raise ExportError(f"{at.where()}: the forward pass runs different ops for a "
                              f"batch of {self.sizes[0]} and one of {self.sizes[1]} (or for "
                              "different inputs), so it has no one graph to export"
                              + (f" (inside {parent.where()})" if parent else ""))
        return [self.node(x, y) for x, y in zip(xs, ys)]

    def node(self, x: Node, y: Node) -> Node:
        from unidl.spec import get_spec

        if x.outputs != y.outputs or len(x.args) != len(y.args):
            raise ExportError(f"{x.where()}: its inputs differ between the traces")
        names = get_spec(x.op).param_names
        args = tuple(self.arg(p, q, x, names[min(i, len(names) - 1)])
                     for i, (p, q) in enumerate(zip(x.args, y.args)))
        for vid in x.outputs:
            self.value(vid)
        try:
            children, child_outputs = self.nodes(x.children, y.children, x), x.child_outputs
            for vid in child_outputs:
                self.value(vid)
        except ExportError:
            children, child_outputs = [], ()
        return replace(x, args=args, children=children, child_outputs=child_outputs)

    def arg(self, p, q, node, name):
        if isinstance(p, Ref) and p == q:
            self.value(p.id)
            return p
        if isinstance(p, (list, tuple)) and type(p) is type(q) and len(p) == len(q):
            return type(p)(self.arg(u, v, node, name) for u, v in zip(p, q))
        if isinstance(p, np.ndarray) and isinstance(q, np.ndarray):
            if p.shape == q.shape and np.array_equal(p, q, equal_nan=p.dtype.kind in "fc"):
                return p
        elif type(p) is type(q) and not isinstance(p, Ref) and (p == q or (p != p and q != q)):
            return p
        elif (type(p) is int and type(q) is int) and (p, q) == self.sizes:
            return BATCH
        raise ExportError(f"{node.where()}: its argument {name!r} is {p!r} for a batch of "
                          f"{self.sizes[0]} and {q!r} for a batch of {self.sizes[1]}: it "
                          "depends on the batch size or on the input values in a way an "
                          "exported graph cannot express")

    def value(self, vid) -> Value:
        """Value ``vid`` with its batch axes ``None`` (checked and remembered)."""
        got = self.values.get(vid)
        if got is not None:
            return got
        v, w = self.a.values[vid], self.b.values.get(vid)
        if w is None or w.kind != v.kind or len(w.shape) != len(v.shape):
            raise ExportError(f"{self.user(vid)}: its inputs differ between the traces")
        shape, per_example = [], []
        b2, b3 = self.sizes
        for axis, (d, e) in enumerate(zip(v.shape, w.shape)):
            if d != e and not (d * b3 == e * b2 and d % b2 == 0):
                raise ExportError(f"{self.user(vid)}: a tensor of shape {v.shape} for a batch "
                                  f"of {b2} has shape {w.shape} for one of {b3}: one of its "
                                  "sizes depends on the batch size but is not a multiple of "
                                  "it")
            shape.append(None if d != e else d)
            if d != e:
                per_example.append((axis, d // b2))
        if v.array is not None and not (
                v.array.shape == w.array.shape and np.array_equal(
                    v.array, w.array, equal_nan=v.array.dtype.kind in "fc")):
            raise ExportError(f"{self.user(vid)}: a tensor computed without unidl.ops (or "
                              "depending on the batch or the input) reaches it; an export "
                              "would freeze its value. Compute it with unidl.ops")
        got = self.values[vid] = replace(v, shape=tuple(shape),
                                         batch_axes=tuple(per_example))
        return got

    def user(self, vid) -> str:
        """Where value ``vid`` is first used or made (for messages)."""
        def visit(nodes):
            for n in nodes:
                if vid in n.outputs or _uses(n.args, vid):
                    return n
                hit = visit(n.children)
                if hit is not None:
                    return hit
            return None

        node = visit(self.a.nodes)
        return node.where() if node is not None else f"value {vid}"


def _uses(args, vid) -> bool:
    if isinstance(args, Ref):
        return args.id == vid
    if isinstance(args, (list, tuple)):
        return any(_uses(a, vid) for a in args)
    return False


# ---- entry points -----------------------------------------------------------------------------
def _example(shape, dtype, batch, seed):
    from unidl import dtypes as _dt

    rng = np.random.default_rng(seed)
    full = (batch,) + tuple(shape)
    if _dt.is_float(dtype):
        return rng.standard_normal(full).astype(_dt.numpy_dtype(dtype))
    if _dt.is_bool(dtype):
        return rng.random(full) < 0.5
    return rng.integers(0, 2, full).astype(_dt.numpy_dtype(dtype))


def trace_function(fn, be, shapes, dtypes, name="model", batch_sizes=BATCH_SIZES) -> Graph:
    """The graph of ``fn(*inputs)`` on backend ``be``, for inputs of per-example
    ``shapes`` and ``dtypes`` with a dynamic batch axis (see the module docstring)."""
    traces = []
    for k, batch in enumerate(batch_sizes):
        arrays = [_example(s, d, batch, 1000 * k + i)
                  for i, (s, d) in enumerate(zip(shapes, dtypes))]
        traces.append(_trace_once(fn, be, arrays, name))
    graph = _Merge(traces[0], traces[1], batch_sizes).graph()
    return lower_batch(graph, tuple(batch_sizes))


def trace_call(fn, be, arrays, name="model") -> Graph:
    """The graph of one call ``fn(*inputs)`` on backend ``be``, the inputs made from NumPy
    ``arrays``; every shape static (no batch axis)."""
    return _trace_once(fn, be, arrays, name)


def model_input(model, input_shape=None) -> tuple[tuple, str]:
    """``(per-example shape, dtype)`` of ``model``'s one input.

    Raises:
        ExportError: the model is not built, has several inputs, or its input shape is not
            known (pass ``input_shape``).
    """
    from unidl import tree

    if not model.built:
        raise ExportError(f"model {model.name!r} is not built: call it on a batch "
                          "(model(x[:1])) or build it (model.build(input_shape)) before "
                          "exporting it")
    spec = getattr(model, "inputs", None)
    leaves = tree.flatten(spec)[0] if spec is not None else []
    if len(leaves) > 1:
        raise ExportError(f"model {model.name!r} has {len(leaves)} inputs; export supports "
                          "models with one input")
    dtype = leaves[0].dtype if leaves else model.dtype
    if input_shape is not None:
        return tuple(int(d) for d in input_shape), dtype
    shape = leaves[0].shape if leaves else getattr(model, "_batch_input_shape", None)
    if shape is None or any(d is None for d in shape[1:]):
        raise ExportError(f"the input shape of model {model.name!r} is not known"
                          + (f" (it is {shape})" if shape is not None else "")
                          + ": pass input_shape=(...) (one example's shape, without the "
                          "batch axis) to export")
    return tuple(int(d) for d in shape[1:]), dtype


def model_backend(model):
    """The backend holding ``model``'s weights (the active one for a model without)."""
    from unidl.backend.registry import get_backend
    from unidl.backend.state import current_backend

    weights = model.weights
    return get_backend(weights[0].backend) if weights else current_backend()


def trace_model(model, input_shape=None, batch_sizes=BATCH_SIZES) -> Graph:
    """The graph of ``model(x, training=False)`` with a dynamic batch axis, traced on the
    backend that holds the model's weights.

    Raises:
        ExportError: see :func:`model_input` and the module docstring.
    """
    shape, dtype = model_input(model, input_shape)
    be = model_backend(model)
    return trace_function(lambda x: model(x, training=False), be, [shape], [dtype],
                          model.name, batch_sizes)
