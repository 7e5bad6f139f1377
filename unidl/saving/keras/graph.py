"""Models between Keras 3 configs and unidl: ``Sequential`` and functional models (nested
ones included), their layer calls (``inbound_nodes`` of ``__keras_tensor__`` references) and
the order of ``model.layers`` that names each layer's weights in ``model.weights.h5``.

Every function returns, with the model, its *layout*: ``{id(model): [(keras_class, layer)]}``,
Keras' ``model.layers`` in Keras' order (``None`` for an ``InputLayer``), for each model.
"""

from __future__ import annotations

from unidl.saving.keras.configs import (
    KerasConfigError,
    dtype_from_keras,
    dtype_to_keras,
    layer_from_keras,
    layer_to_keras,
    object_from_keras,
)

__all__ = ["model_from_keras", "model_to_keras", "keras_layer_order", "masking_layers"]

_FUNCTIONAL = ("Functional", "Model")
_TENSOR = "__keras_tensor__"


# -- reading -------------------------------------------------------------------------------------
def model_from_keras(spec: dict, where: str, custom_objects=None, layouts=None):
    """``(model, layouts)``: the unidl model a Keras model config describes."""
    layouts = {} if layouts is None else layouts
    name = spec.get("class_name")
    config = spec.get("config") or {}
    if name == "Sequential":
        model = _sequential_from_keras(config, where, custom_objects, layouts)
    elif name in _FUNCTIONAL and "layers" in config and "input_layers" in config:
        model = _functional_from_keras(config, where, custom_objects, layouts)
    else:
        raise KerasConfigError(
            f"{where}: the model is a {name!r} ({spec.get('module')!r}); unidl reads Keras "
            "Sequential and functional models (a subclassed Keras model's config does not "
            "describe its layers' calls)")
    return model, layouts


def _input_batch_shape(config: dict, where: str):
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None and config.get("shape") is not None:
        shape = [config.get("batch_size")] + list(config["shape"])
    if shape is None:
        raise KerasConfigError(f"{where}: InputLayer {config.get('name')!r} has no batch_shape")
    return tuple(None if d is None else int(d) for d in shape)


def _is_model(spec) -> bool:
    return spec.get("class_name") == "Sequential" or (
        spec.get("class_name") in _FUNCTIONAL and "input_layers" in (spec.get("config") or {}))


def _build_layer(spec, where, custom_objects, layouts):
    if _is_model(spec):
        return model_from_keras(spec, where, custom_objects, layouts)[0]
    return layer_from_keras(spec, where, custom_objects)


def _sequential_from_keras(config, where, custom_objects, layouts):
    import unidl

    shape = config.get("build_input_shape")
    layers, order = [], []
    for spec in config.get("layers", []):
        if spec.get("class_name") == "InputLayer":
            shape = _input_batch_shape(spec.get("config") or {}, where)
            continue
        layer = _build_layer(spec, where, custom_objects, layouts)
        layers.append(layer)
        order.append((spec["class_name"], layer))
    model = unidl.Sequential(layers, name=config.get("name"))
    if shape is not None and not model.built:
        model.build(tuple(shape))
    if config.get("trainable") is False:
        model.trainable = False
    layouts[id(model)] = order
    return model


class _NotReady(Exception):
    """A layer call's input comes from a call not made yet."""


def _functional_from_keras(config, where, custom_objects, layouts):
    import unidl

    produced: dict[str, list] = {}  # layer name -> outputs of each of its calls (flat)
    offsets: dict[str, int] = {}    # nested Keras functional models count a built-in call
    queue, layers, order = [], {}, []
    for spec in config["layers"]:
        lname = spec.get("name") or (spec.get("config") or {}).get("name")
        if spec.get("class_name") == "InputLayer":
            inner = spec.get("config") or {}
            shape = _input_batch_shape(inner, where)
            tensor = unidl.Input(shape[1:], dtype=dtype_from_keras(inner.get("dtype"), where)
                                 or "float32", name=lname, batch_size=shape[0])
            produced[lname] = [[tensor]]
            order.append(("InputLayer", None))
            continue
        layer = _build_layer(spec, where, custom_objects, layouts)
        layers[lname], produced[lname] = layer, []
        offsets[lname] = 1 if spec.get("class_name") in _FUNCTIONAL else 0
        order.append((spec["class_name"], layer))
        queue.append([lname, list(spec.get("inbound_nodes") or [])])
    _run_calls(queue, layers, produced, offsets, where, custom_objects)

    def tensors(ref):
        if isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str):
            return _tensor(produced, offsets, ref, where)
        if isinstance(ref, dict):
            return {k: tensors(v) for k, v in ref.items()}
        return [tensors(r) for r in ref]

    model = unidl.Model(inputs=tensors(config["input_layers"]),
                        outputs=tensors(config["output_layers"]), name=config.get("name"))
    if config.get("trainable") is False:
        model.trainable = False
    layouts[id(model)] = order
    return model


def _run_calls(queue, layers, produced, offsets, where, custom_objects):
    """Make every recorded layer call, in the file's layer order, deferring a call whose
    inputs do not exist yet (shared layers), as Keras does."""
    while any(nodes for _, nodes in queue):
        progress = False
        for entry in queue:
            lname, nodes = entry
            while nodes:
                try:
                    args, kwargs = _node_arguments(nodes[0], produced, offsets, where,
                                                   custom_objects)
                except _NotReady:
                    break
                from unidl import tree

                out = layers[lname](*args, **kwargs)
                produced[lname].append(tree.flatten(out)[0])
                nodes.pop(0)
                progress = True
        if not progress:
            stuck = [lname for lname, nodes in queue if nodes]
            raise KerasConfigError(f"{where}: the layer calls of {stuck} refer to tensors no "
                                   "layer produces (a corrupt or cyclic functional config)")


def _tensor(produced, offsets, history, where):
    lname, node, index = history[0], int(history[1]), int(history[2])
    if lname not in produced:
        raise KerasConfigError(f"{where}: a layer call refers to layer {lname!r}, which the "
                               "model config does not define")
    calls = produced[lname]
    node -= offsets.get(lname, 0)
    if node >= len(calls):
        raise _NotReady()
    return calls[node][index]


def _node_arguments(node, produced, offsets, where, custom_objects):
    """``(args, kwargs)`` of one recorded Keras layer call, tensors resolved."""
    if isinstance(node, list):  # the older format: [[layer, node, tensor, kwargs], ...]
        tensors = [_tensor(produced, offsets, ref, where) for ref in node]
        kwargs = node[0][3] if node and len(node[0]) > 3 else {}
        return [tensors[0] if len(tensors) == 1 else tensors], dict(kwargs)

    def decode(value):
        if isinstance(value, dict) and value.get("class_name") == _TENSOR:
            return _tensor(produced, offsets, value["config"]["keras_history"], where)
        if isinstance(value, dict) and value.get("class_name") == "__tuple__":
            return tuple(decode(v) for v in value["config"]["value"])
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict) and "class_name" not in value:
            return {k: decode(v) for k, v in value.items()}
        return object_from_keras(value, where, custom_objects)

    kwargs = {k: v for k, v in decode(node.get("kwargs") or {}).items() if v is not None}
    return list(decode(node.get("args") or [])), kwargs  # (None: the call's default)


# -- writing -------------------------------------------------------------------------------------
def model_to_keras(model, where: str, layouts=None):
    """``(spec, layouts)``: the Keras 3 config dict of a unidl ``Sequential`` or functional
    model (and of the models nested in it)."""
    from unidl.models.sequential import Sequential

    layouts = {} if layouts is None else layouts
    if isinstance(model, Sequential):
        return _sequential_to_keras(model, where, layouts), layouts
    if getattr(model, "_graph", None) is not None:
        return _functional_to_keras(model, where, layouts), layouts
    raise KerasConfigError(f"{where}: model {model.name!r} is a subclassed "
                           f"{type(model).__name__}; a .keras file describes Sequential and "
                           "functional models only (Keras would need your Python class)")


def _layer_spec(layer, where, layouts):
    from unidl.models.model import Model

    if isinstance(layer, Model):
        return model_to_keras(layer, where, layouts)[0]
    return layer_to_keras(layer, where)


def _input_layer_spec(name, shape, dtype, functional):
    spec = {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": list(shape), "dtype": dtype, "sparse": False,
                       "ragged": False, "name": name, "optional": False},
            "registered_name": None}
    if functional:
        spec.update(name=name, inbound_nodes=[])
    return spec


def _sequential_to_keras(model, where, layouts):
    spec_in = model._input_spec
    if spec_in is None:
        raise KerasConfigError(f"{where}: Sequential model {model.name!r} is not built; call it "
                               "on a batch or build(input_shape) first")
    shape = list(spec_in.shape)
    layers = [_input_layer_spec(spec_in.name or f"{model.name}_input", shape, spec_in.dtype,
                                False)]
    layers += [_layer_spec(layer, where, layouts) for layer in model.layers]
    layouts[id(model)] = [(_class_of(layer), layer) for layer in model.layers]
    config = {"name": model.name, "trainable": model.trainable,
              "dtype": dtype_to_keras(model.dtype), "layers": layers,
              "build_input_shape": shape}
    return {"module": "keras", "class_name": "Sequential", "config": config,
            "registered_name": None, "build_config": {"input_shape": shape}}


def _class_of(layer) -> str:
    from unidl.models.model import Model
    from unidl.models.sequential import Sequential

    if isinstance(layer, Sequential):
        return "Sequential"
    return "Functional" if isinstance(layer, Model) else type(layer).__name__


def _keras_call(node, layer):
    """The Keras ``(args, kwargs)`` of a unidl layer call (MultiHeadAttention packs its
    tensors into a dict in unidl's graph; Keras passes query and value positionally)."""
    from unidl.layers.attention import MultiHeadAttention

    inputs, args, kwargs = node.inputs, list(node.args), dict(node.kwargs)
    if isinstance(layer, MultiHeadAttention) and isinstance(inputs, dict) and "query" in inputs:
        packed = dict(inputs)
        return [packed.pop("query"), packed.pop("value")] + args, {**packed, **kwargs}
    return [inputs] + args, kwargs


def _flat(value) -> list:
    """Keras' flattening order: lists in order, dicts by sorted key."""
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _flat(v)]
    if isinstance(value, dict):
        return [leaf for k in sorted(value) for leaf in _flat(value[k])]
    return [value]


def _functional_to_keras(model, where, layouts):
    from unidl.layers.base import SymbolicTensor

    g = model._graph
    history, calls = {}, {}
    for t in g.input_leaves:
        history[id(t)] = [t.name, 0, 0]
    for node in g.nodes:
        n = calls.get(id(node.layer), 0)
        calls[id(node.layer)] = n + 1
        for k, out in enumerate(node.outputs):
            history[id(out)] = [node.layer.name, n, k]

    def encode(value):
        if isinstance(value, SymbolicTensor):
            return {"class_name": _TENSOR, "config": {"shape": list(value.shape),
                                                      "dtype": value.dtype,
                                                      "keras_history": history[id(value)]}}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return value

    inbound: dict[int, list] = {}
    for node in g.nodes:
        args, kwargs = _keras_call(node, node.layer)
        inbound.setdefault(id(node.layer), []).append({"args": encode(args),
                                                       "kwargs": encode(kwargs)})
    order = keras_layer_order(model)
    _check_unique_names(order, model, where)
    specs = []
    for kind, obj in order:
        if kind == "InputLayer":
            specs.append(_input_layer_spec(obj.name, obj.shape, obj.dtype, True))
            continue
        spec = _layer_spec(obj, where, layouts)
        spec.update(name=obj.name, inbound_nodes=inbound.get(id(obj), []))
        specs.append(spec)
    layouts[id(model)] = [("InputLayer", None) if kind == "InputLayer" else (kind, obj)
                          for kind, obj in order]
    config = {"name": model.name, "trainable": model.trainable, "layers": specs,
              "input_layers": _refs(model._input_spec, history),
              "output_layers": _refs(model._output_spec, history)}
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": config, "registered_name": "Functional",
            "build_config": {"input_shape": None}}


def _check_unique_names(order, model, where):
    """Keras refers to a functional model's layers and inputs by name: they must differ."""
    names = [obj.name for _, obj in order]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise KerasConfigError(f"{where}: model {model.name!r} has several layers or inputs "
                               f"named {twice}; Keras needs unique names (pass name=... when "
                               "creating them)")


def _refs(structure, history):
    from unidl.layers.base import SymbolicTensor

    if isinstance(structure, SymbolicTensor):
        return history[id(structure)]
    if isinstance(structure, dict):
        return {k: _refs(v, history) for k, v in structure.items()}
    return [_refs(v, history) for v in structure]


# -- Keras' order of a functional model's layers ---------------------------------------------------
def keras_layer_order(model) -> list:
    """``[(keras_class, layer or input tensor)]``: the order Keras 3 gives a functional model's
    ``layers`` (``keras.src.ops.function.map_graph``: a depth-first walk from the outputs
    numbers the operations; they are sorted by depth from the inputs, ties by that number),
    input tensors as ``("InputLayer", tensor)``. Keras names each layer's weights group by
    its class and its place in this order, so the file must follow it."""
    from unidl.layers.base import SymbolicTensor

    g = model._graph
    producer = {}  # id(tensor) -> node key
    parents, op_of = {}, {}
    for k, t in enumerate(g.input_leaves):
        producer[id(t)] = ("input", k)
        parents[("input", k)], op_of[("input", k)] = [], ("input", k)
    for n, node in enumerate(g.nodes):
        key = ("node", n)
        args, kwargs = _keras_call(node, node.layer)
        parents[key] = [producer[id(t)] for t in _flat([args, kwargs])
                        if isinstance(t, SymbolicTensor)]
        op_of[key] = ("layer", id(node.layer))
        for out in node.outputs:
            producer[id(out)] = key
    visited, finished, index = [], set(), {}

    def walk(key):
        if key in finished:
            return
        index.setdefault(op_of[key], len(index))
        for parent in parents[key]:
            walk(parent)
        finished.add(key)
        visited.append(key)

    for out in _flat(model._output_spec):
        walk(producer[id(out)])
    depth, op_depth = {}, {}
    for key in reversed(visited):
        d = max(depth.setdefault(key, 0), op_depth.get(op_of[key], 0))
        op_depth[op_of[key]] = depth[key] = d
        for parent in parents[key]:
            depth[parent] = max(d + 1, depth.get(parent, 0))
    for k in range(len(g.input_leaves)):
        if ("input", k) not in op_depth:
            op_depth[("input", k)], index[("input", k)] = 0, -1
    ops = sorted(op_depth, key=lambda op: (-op_depth[op], index[op]))
    layer_of = {("layer", id(node.layer)): node.layer for node in g.nodes}
    return [("InputLayer", g.input_leaves[op[1]]) if op[0] == "input"
            else (_class_of(layer_of[op]), layer_of[op]) for op in ops]


def masking_layers(model) -> list:
    """Names of the layers (nested models included) that make a mask Keras would pass on
    to the following layers by itself (``Embedding(mask_zero=True)``); unidl passes masks
    only where a call gives them, so predictions on padded inputs differ."""
    out = []
    for layer in getattr(model, "layers", []):
        if getattr(layer, "mask_zero", False):
            out.append(layer.name)
        if hasattr(layer, "_graph") or hasattr(layer, "_stack"):
            out.extend(masking_layers(layer))
    return out
