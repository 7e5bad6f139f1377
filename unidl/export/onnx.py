"""ONNX export: a traced :class:`~unidl.export.graph.Graph` converted with each op's rule.

Each op's spec says how it maps to ONNX (``export={"onnx": ...}``, see
:mod:`unidl.export.rules`): a plain ONNX op name for a one-to-one op, or an
:class:`~unidl.export.rules.OnnxOp` whose converter builds the nodes with an
:class:`OnnxBuilder`. A composite op without a rule (or whose converter declines the
arguments) is converted through the ops of its implementation, recorded while tracing. An op
without tensor arguments (``zeros``, ``arange``) becomes a constant (its spec's reference).
Anything else is an :class:`~unidl.export.rules.ExportError` naming the layer and the op.

The model uses the default ONNX domain at opset :data:`OPSET`; the input is named ``input``
(``input_0``, ... for several), the output ``output`` (``output_0``, ...); the batch axis is the
symbolic dimension ``batch``. The ``onnx`` package is imported only here, when exporting.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> import unidl
    >>> from unidl import layers
    >>> import onnxruntime
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(2, activation="softmax", input_shape=(3,))])
    ...     path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    ...     _ = model.export(path, format="onnx")
    ...     x = np.ones((5, 3), np.float32)
    ...     expected = model.predict(x, verbose=0)
    >>> got = onnxruntime.InferenceSession(path).run(None, {"input": x})[0]
    >>> got.shape, bool(np.allclose(got, expected, rtol=1e-4, atol=1e-5))
    ((5, 2), True)
"""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt
from unidl.export.graph import Graph, Node, Ref
from unidl.export.rules import ExportError, OnnxOp

__all__ = ["OPSET", "OnnxBuilder", "to_onnx", "export_onnx"]

#: the ONNX opset of exported models (default domain); ONNX Runtime 1.14 and later run it
OPSET = 18

_FOLDABLE = ("Transpose", "Reshape", "Unsqueeze", "Squeeze", "Concat", "Gather", "Cast")


class Unsupported(Exception):
    """Raised by a converter that cannot express its op's arguments (see
    :meth:`OnnxBuilder.unsupported`); a composite is then converted through its ops."""


def _onnx():
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ExportError("format 'onnx' needs the onnx package: pip install onnx "
                          "(or pip install 'unidl[export]')") from exc
    return onnx


class OnnxBuilder:
    """What an op's ONNX converter builds with: ``convert(g, *args)`` gets the op's canonical
    arguments, tensors as ONNX value names, and returns its output name(s).

    Shapes (``None`` for the batch axis) and dtypes (unidl names) are known for the names of
    the traced values and of constants; :attr:`node` is the node being converted.
    """

    def __init__(self, graph: Graph, opset: int = OPSET):
        self.onnx = _onnx()
        self.graph = graph
        self.opset = opset
        self.nodes: list = []
        self.initializers: dict = {}  # name -> NumPy array
        self.names: dict = {}  # value id -> ONNX name
        self.info: dict = {}  # ONNX name -> (shape, dtype)
        self.taken: set = set()
        self.node: Node | None = None

    # -- names and facts ----------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A name not used yet, from ``hint``."""
        name, k = hint, 0
        while name in self.taken:
            k += 1
            name = f"{hint}:{k}"
        self.taken.add(name)
        return name

    def shape(self, name: str) -> tuple:
        """The shape of a traced value or constant (``None``: the batch axis)."""
        return self.info[name][0]

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def dtype(self, name: str) -> str:
        return self.info[name][1]

    def out_dtype(self, index: int = 0) -> str:
        """The dtype of the current node's output ``index``."""
        return self.graph.value(self.node.outputs[index]).dtype

    def value_of(self, name: str):
        """The NumPy value of a constant, else None."""
        return self.initializers.get(name)

    def elem_type(self, dtype: str) -> int:
        """The ``onnx.TensorProto`` element type of a unidl dtype."""
        if dtype == "bfloat16":  # (NumPy has no bfloat16 of its own)
            return self.onnx.TensorProto.BFLOAT16
        return self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(_dt.numpy_dtype(dtype)))

    def unsupported(self, reason: str):
        """Decline the current op's arguments (raises)."""
        raise Unsupported(reason)

    # -- building -----------------------------------------------------------------------------
    def const(self, value, dtype: str | None = None, hint: str = "const") -> str:
        """An initializer holding ``value`` (cast to ``dtype`` if given)."""
        array = np.asarray(value)
        if dtype is not None:
            array = array.astype(_dt.numpy_dtype(dtype))
        elif array.dtype == np.float64 and not isinstance(value, np.ndarray):
            array = array.astype(np.float32)
        name = self.fresh(hint)
        self.initializers[name] = np.array(array, order="C")  # (0-d arrays stay 0-d)
        self.info[name] = (tuple(array.shape), _dt.standardize(array.dtype))
        return name

    def ints(self, values) -> str:
        """A 1-D int64 constant (axes, shapes, sizes)."""
        return self.const(np.asarray(list(values), np.int64).reshape(-1), hint="ints")

    def tensor_attr(self, value, dtype: str):
        """A one-element ``TensorProto`` (``ConstantOfShape``'s ``value``)."""
        array = np.asarray([value]).astype(_dt.numpy_dtype(dtype))
        return self.onnx.numpy_helper.from_array(array)

    def op(self, op_type: str, inputs, outputs: int = 1, **attrs):
        """Append an ONNX node; returns its output name (a list for ``outputs > 1``).
        ``None`` inputs become empty (omitted optional) inputs; a reshaping of constants
        is computed here, not added."""
        inputs = ["" if i is None else i for i in inputs]
        while inputs and inputs[-1] == "":
            inputs.pop()
        folded = self._fold(op_type, inputs, attrs) if outputs == 1 else None
        if folded is not None:
            return self.const(folded, hint=self._hint(op_type))
        names = [self.fresh(self._hint(op_type)) for _ in range(outputs)]
        where = self.node.where() if self.node is not None else ""
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, name=names[0],
                                                     doc_string=where, **attrs))
        return names if outputs > 1 else names[0]

    def _hint(self, op_type):
        node = self.node
        prefix = node.layer[0] if node is not None and node.layer else "model"
        return f"{prefix}/{op_type}"

    def _fold(self, op_type, inputs, attrs):
        if op_type not in _FOLDABLE or not all(i in self.initializers for i in inputs):
            return None
        v = [self.initializers[i] for i in inputs]
        if op_type == "Transpose":
            return np.transpose(v[0], attrs.get("perm"))
        if op_type == "Reshape" and 0 not in v[1]:
            return v[0].reshape(tuple(int(d) for d in v[1]))
        if op_type == "Unsqueeze":
            return np.expand_dims(v[0], tuple(int(a) for a in v[1]))
        if op_type == "Squeeze" and len(v) == 2:
            return np.squeeze(v[0], tuple(int(a) for a in v[1]))
        if op_type == "Concat":
            return np.concatenate(v, axis=attrs["axis"])
        if op_type == "Gather":
            return np.take(v[0], v[1], axis=attrs.get("axis", 0))
        if op_type == "Cast":
            to = self.onnx.helper.tensor_dtype_to_np_dtype(attrs["to"])
            return v[0].astype(to)
        return None

    # -- helpers for converters ---------------------------------------------------------------
    def cast(self, x: str, dtype: str) -> str:
        """``x`` cast to unidl dtype ``dtype`` (its shape stays known)."""
        y = self.op("Cast", [x], to=self.elem_type(dtype))
        if x in self.info and y not in self.initializers:
            self.info[y] = (self.shape(x), dtype)
        return y

    def transpose(self, x: str, perm) -> str:
        perm = [int(p) for p in perm]
        if perm == sorted(perm):
            return x
        return self.op("Transpose", [x], perm=perm)

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes)])

    def squeeze(self, x: str, axes) -> str:
        return self.op("Squeeze", [x, self.ints(axes)])

    def channels_first(self, x: str, data_format: str, rank: int | None = None) -> str:
        """``x`` with its channel axis second (ONNX's layout for convolutions, pooling)."""
        r = self.rank(x) if rank is None else rank
        if data_format == "channels_first":
            return x
        return self.transpose(x, [0, r - 1] + list(range(1, r - 1)))

    def channels_last(self, y: str, data_format: str, rank: int) -> str:
        """The inverse of :meth:`channels_first` for a result of ``rank``."""
        if data_format == "channels_first":
            return y
        return self.transpose(y, [0] + list(range(2, rank)) + [1])

    # -- conversion ---------------------------------------------------------------------------
    def name_of(self, vid: int) -> str:
        """The ONNX name of value ``vid`` (constants become initializers when first used)."""
        name = self.names.get(vid)
        if name is None:
            v = self.graph.value(vid)
            if v.array is None:
                raise ExportError(f"value {vid} is used before it is computed")
            name = self.const(v.array, hint=v.name or "const")
            self.info[name] = (tuple(v.shape), v.dtype)
            self.names[vid] = name
        return name

    def bind(self, vid: int, name: str) -> None:
        v = self.graph.value(vid)
        self.names[vid] = name
        if name not in self.initializers:
            self.info[name] = (tuple(v.shape), v.dtype)

    def convert(self, node: Node) -> None:
        """Convert one node (see the module docstring for the order of the rules)."""
        from unidl.spec import get_spec

        spec = get_spec(node.op)
        rule = spec.export.get("onnx")
        reason = "the op has no ONNX rule"
        if not _has_tensor_args(spec, node.args):
            return self._constant(spec, node)
        if rule is not None:
            saved = (len(self.nodes), dict(self.names), set(self.initializers))
            try:
                return self._apply(spec, rule, node)
            except Unsupported as exc:
                reason = str(exc)
                self._rollback(*saved)
            except ExportError:
                raise
            except Exception as exc:  # (a converter that fails: its implementation may do)
                reason = f"its ONNX converter failed ({type(exc).__name__}: {exc})"
                self._rollback(*saved)
        if node.child_outputs:  # (a composite's implementation, possibly no op at all)
            for child in node.children:
                self.convert(child)
            for vid, cid in zip(node.outputs, node.child_outputs):
                self.bind(vid, self.name_of(cid))
            return None
        raise ExportError(f"{node.where()} cannot be exported to format 'onnx': {reason}")

    def _rollback(self, n_nodes, names, initializers):
        del self.nodes[n_nodes:]
        self.names = names
        for name in set(self.initializers) - initializers:
            del self.initializers[name]

    def _apply(self, spec, rule, node):
        saved, self.node = self.node, node
        try:
            args = self._inputs(spec, node)
            if isinstance(rule, OnnxOp):
                out = rule.convert(self, *args)
            elif any(i not in spec.tensor_pos for i in range(len(spec.param_names))):
                raise Unsupported(f"its spec names ONNX op {rule!r} but gives no converter for "
                                  "its other arguments")
            else:
                out = self.op(rule, list(args), outputs=len(node.outputs))
        finally:
            self.node = saved
        outs = out if isinstance(out, (list, tuple)) else [out]
        for vid, name in zip(node.outputs, outs):
            self.bind(vid, name)

    def _constant(self, spec, node):
        """An op without tensor arguments, computed once by its spec's reference."""
        for vid, value in zip(node.outputs, _as_list(spec.reference(*node.args))):
            v = self.graph.value(vid)
            self.bind(vid, self.const(np.asarray(value), v.dtype, hint=node.op))

    def _inputs(self, spec, node):
        """The node's arguments with tensors as ONNX names, promoted as unidl's binding
        promotes them (a Python number in a tensor position becomes a constant)."""
        target = self._target(spec, node)
        out = []
        for i, a in enumerate(node.args):
            promote = i in spec.promote_pos
            if i in spec.tensor_pos:
                a = self._tensor(a, target if promote else None, spec.float_inputs)
            elif i in spec.tensor_list_pos:
                a = [self._tensor(x, target if promote else None, spec.float_inputs) for x in a]
            out.append(a)
        return out

    def _target(self, spec, node):
        group = []
        for i in spec.promote_pos:
            items = node.args[i] if i in spec.tensor_list_pos else [node.args[i]]
            for a in items:
                if isinstance(a, Ref):
                    group.append(self.graph.value(a.id).dtype)
                elif isinstance(a, bool):
                    group.append("bool")
                elif isinstance(a, (int, float)):
                    group.append(a)
        if not group:
            return None
        target = _dt.result_type(*group)
        if spec.float_inputs and not _dt.is_float(target):
            target = _dt.DEFAULT_FLOAT
        return target

    def _tensor(self, a, target, float_inputs):
        if a is None:
            return None
        if isinstance(a, Ref):
            name = self.name_of(a.id)
            have = self.dtype(name)
            want = target or (_dt.DEFAULT_FLOAT if float_inputs and not _dt.is_float(have)
                              else None)
            return self.cast(name, want) if want and want != have else name
        array = np.asarray(a)
        dtype = target or _natural_dtype(a, float_inputs)
        return self.const(array, dtype)


def _natural_dtype(a, float_inputs) -> str:
    kind = np.asarray(a).dtype.kind
    if float_inputs or kind == "f":
        return _dt.DEFAULT_FLOAT if not isinstance(a, np.ndarray) else \
            _dt.standardize(np.asarray(a).dtype)
    if kind == "b":
        return "bool"
    return _dt.DEFAULT_INT if not isinstance(a, np.ndarray) else _dt.standardize(a.dtype)


def _has_tensor_args(spec, args) -> bool:
    return bool(spec.tensor_pos or spec.tensor_list_pos) and any(
        a is not None for i, a in enumerate(args)
        if i in spec.tensor_pos or i in spec.tensor_list_pos)


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


# ---- the model --------------------------------------------------------------------------------
def _value_info(b: OnnxBuilder, name: str, value):
    """A graph input's or output's type: the batch axis is the symbolic dim ``batch``
    (``batch*k`` for ``k`` examples' worth of rows)."""
    per = dict(value.batch_axes)
    dims = [int(d) if d is not None else "batch" if per.get(i, 1) == 1 else f"batch*{per[i]}"
            for i, d in enumerate(value.shape)]
    return b.onnx.helper.make_tensor_value_info(name, b.elem_type(value.dtype), dims)


def to_onnx(graph: Graph, opset: int = OPSET):
    """The ``onnx.ModelProto`` of ``graph``, checked with ``onnx.checker`` (full check).

    Raises:
        ExportError: an op cannot be converted (naming the layer and the op).
    """
    b = OnnxBuilder(graph, opset)
    helper = b.onnx.helper
    ins = graph.input_values()
    in_names = ["input"] if len(ins) == 1 else [f"input_{i}" for i in range(len(ins))]
    for v, name in zip(ins, in_names):
        b.taken.add(name)
        b.bind(v.id, name)
    for node in graph.nodes:
        b.convert(node)
    outs = graph.output_values()
    out_names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    for v, name in zip(outs, out_names):
        b.nodes.append(helper.make_node("Identity", [b.name_of(v.id)], [name], name=name))
    used = {i for n in b.nodes for i in n.input}
    initializers = [b.onnx.numpy_helper.from_array(a, name) for name, a in
                    b.initializers.items() if name in used]
    proto = helper.make_graph(b.nodes, graph.name,
                              [_value_info(b, n, v) for n, v in zip(in_names, ins)],
                              [_value_info(b, n, v) for n, v in zip(out_names, outs)],
                              initializer=initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(proto, opset_imports=opsets, producer_name="unidl",
                              ir_version=helper.find_min_ir_version_for(opsets))
    try:
        b.onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # (a converter bug: say where)
        raise ExportError(f"format 'onnx': the converted graph fails onnx.checker: {exc}") \
            from exc
    return model


def export_onnx(graph: Graph, path: str, opset: int = OPSET) -> str:
    """Write ``graph`` as an ONNX file at ``path`` (atomically); returns ``path``.

    Raises:
        ExportError: ``opset`` is older than :data:`OPSET` (the converters emit its forms),
            or an op cannot be converted.
    """
    from unidl.export.files import atomic_file

    if not isinstance(opset, int) or opset < OPSET:
        raise ExportError(f"format 'onnx': opset must be an int >= {OPSET} (the converters "
                          f"write opset {OPSET} forms), got {opset!r}")
    model = to_onnx(graph, opset)
    with atomic_file(path) as tmp:
        _onnx().save_model(model, tmp)
    return path
