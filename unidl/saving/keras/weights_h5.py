"""``model.weights.h5``: Keras 3's HDF5 layout of a model's variables, read and written with
h5py (which only reads and writes arrays: nothing in the file is executed).

Each layer's variables are datasets ``vars/0``, ``vars/1``... under the layer's path
``layers/<snake_case class name>[_<n>]`` (numbered per class in Keras' ``model.layers``
order), nested layers under their attribute's name (an LSTM's ``cell``, a Bidirectional's
``forward_layer`` / ``backward_layer``, a MultiHeadAttention's ``query_dense``...), nested
models under their own ``layers/``; the optimizer's variables under ``optimizer/vars``.
unidl's weight layouts are Keras' (Dense ``(in, out)``, Conv ``(kh, kw, in, out)``, LSTM
gates i, f, c, o, GRU ``reset_after`` bias ``(2, 3 * units)``, BatchNormalization gamma,
beta, moving mean, moving variance), so arrays move unchanged.
"""

from __future__ import annotations

import io

import numpy as np

from unidl.saving.keras.configs import KerasConfigError, keras_snake_case
from unidl.saving.model_file import ModelFileError

__all__ = ["require_h5py", "layer_paths", "weight_groups", "read_weights", "write_weights",
           "keras_trainable_order", "optimizer_permutation", "WEIGHTS_MEMBER"]

WEIGHTS_MEMBER = "model.weights.h5"


class MissingDependencyError(ModelFileError, ImportError):
    """An optional package a file format needs is not installed."""


def require_h5py():
    """The ``h5py`` module, or an error saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError(
            "Keras .keras files need the h5py package (Keras stores weights as HDF5): "
            'pip install "unidl[keras]"') from None
    return h5py


# -- which variables go where ----------------------------------------------------------------------
def _own(layer) -> list:
    """A layer's own variables in Keras' order: trainable ones, then the others."""
    own = list(layer._own_weights)
    return [w for w in own if w.trainable] + [w for w in own if not w.trainable]


def _prefixed(prefix, groups):
    return [(f"{prefix}/{sub}" if sub else prefix, vs) for sub, vs in groups]


def weight_groups(layer) -> list:
    """``[(subpath, [variables])]`` of a (non-model) layer, in Keras' variable order; the
    subpath is where Keras saves that group's ``vars`` under the layer's path."""
    from unidl.layers.attention import MultiHeadAttention
    from unidl.layers.rnn import RNN, Bidirectional

    if isinstance(layer, Bidirectional):
        return (_prefixed("forward_layer", weight_groups(layer.forward_layer))
                + _prefixed("backward_layer", weight_groups(layer.backward_layer)))
    if isinstance(layer, RNN):
        return _prefixed("cell", weight_groups(layer.cell))
    if isinstance(layer, MultiHeadAttention):
        if not layer.built:
            return []
        subs = [("query_dense", layer._query_dense), ("key_dense", layer._key_dense),
                ("_gate_dense", layer._gate_dense), ("value_dense", layer._value_dense),
                ("output_dense", layer._output_dense)]
        return [(path, _own(sub)) for path, sub in subs if sub is not None]
    nested = [sub for sub in layer._tracked_layers if sub.weights]
    if nested:
        raise KerasConfigError(f"layer {layer.name!r} ({type(layer).__name__}) nests layers "
                               f"with weights ({[s.name for s in nested]}); unidl knows no "
                               "Keras weights layout for it")
    return [("", _own(layer))]


def layer_paths(model, layouts, prefix="") -> list:
    """``[(path, layer or None, [(group path, [variables])])]`` for every layer of ``model``
    in Keras' order, nested models expanded (``None``: an InputLayer)."""
    out, used = [], {}
    for kind, layer in layouts[id(model)]:
        base = keras_snake_case(kind)
        n = used.get(base)
        used[base] = 0 if n is None else n + 1
        name = base if n is None else f"{base}_{n + 1}"
        path = f"{prefix}layers/{name}"
        if layer is not None and id(layer) in layouts:
            out.append((path, layer, []))
            out.extend(layer_paths(layer, layouts, path + "/"))
            continue
        groups = [] if layer is None else _prefixed(path, weight_groups(layer))
        out.append((path, layer, groups))
    return out


def keras_trainable_order(model, layouts) -> list:
    """The model's trainable variables in Keras' ``model.trainable_variables`` order (the
    order of the optimizer's per-variable state in a ``.keras`` file)."""
    trainable = {id(v) for v in model.trainable_weights}
    return [v for _, _, groups in layer_paths(model, layouts) for _, vs in groups for v in vs
            if id(v) in trainable]


# -- reading ---------------------------------------------------------------------------------------
def _open(h5py, data: bytes, where: str):
    try:
        return h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{where}: {WEIGHTS_MEMBER} is not a readable HDF5 file (truncated "
                             f"or corrupt: {exc})") from None


def _datasets(h5py, group, prefix: str, where: str, out: dict) -> dict:
    """``{path: array}`` of every dataset under ``group``: plain numbers only, through hard
    links only (an external or soft link could reach another file)."""
    for name in group:
        link = group.get(name, getlink=True)
        path = f"{prefix}{name}"
        if not isinstance(link, h5py.HardLink):
            raise ModelFileError(f"{where}: {WEIGHTS_MEMBER} entry {path!r} is a "
                                 f"{type(link).__name__}; Keras writes arrays only")
        obj = group[name]
        if isinstance(obj, h5py.Group):
            _datasets(h5py, obj, path + "/", where, out)
            continue
        if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "biuf" or \
                h5py.check_dtype(vlen=obj.dtype) is not None:
            raise ModelFileError(f"{where}: {WEIGHTS_MEMBER} entry {path!r} is a "
                                 f"{type(obj).__name__} of {getattr(obj, 'dtype', '?')}, "
                                 "not an array of numbers")
        value = np.asarray(obj[()])
        if obj.attrs.get("dtype") in ("bfloat16", b"bfloat16"):
            import ml_dtypes

            value = value.astype(ml_dtypes.bfloat16)
        out[path] = value
    return out


def read_weights(data: bytes, where: str) -> dict:
    """``{path: array}`` of every array in a ``model.weights.h5``."""
    h5py = require_h5py()
    with _open(h5py, data, where) as f:
        return _datasets(h5py, f, "", where, {})


def _vars_of(arrays, group: str) -> list:
    keys = sorted((k for k in arrays if k.startswith(group + "/vars/")
                   and k[len(group) + 6:].isdigit()), key=lambda k: int(k.rsplit("/", 1)[1]))
    return keys


def assign_weights(model, layouts, arrays: dict, where: str) -> None:
    """Assign the file's arrays to the model's variables (all checked first: nothing is
    assigned unless every layer's arrays fit)."""
    plan, used = [], set()
    for _, layer, groups in layer_paths(model, layouts):
        for group, variables in groups:
            keys = _vars_of(arrays, group)
            label = f"layer {layer.name!r} ({type(layer).__name__})"
            if len(keys) != len(variables):
                raise ModelFileError(
                    f"{where}: {label}: the file holds {len(keys)} arrays under {group!r}, the "
                    f"unidl layer has {len(variables)} weights "
                    f"({[tuple(v.shape) for v in variables]})")
            for key, var in zip(keys, variables):
                value = arrays[key]
                if tuple(value.shape) != tuple(var.shape):
                    raise ModelFileError(f"{where}: {label}: weight {var.name!r} has shape "
                                         f"{tuple(var.shape)} in unidl, the file's {key!r} "
                                         f"{tuple(value.shape)}")
                plan.append((var, value))
                used.add(key)
    extra = sorted(k for k in arrays if k.startswith("layers/") and k not in used)
    if extra:
        raise ModelFileError(f"{where}: {WEIGHTS_MEMBER} holds arrays no unidl weight takes: "
                             f"{extra[:6]} (a layer with weights unidl's does not have)")
    for var, value in plan:
        var.assign(np.asarray(value).astype(np.dtype(var.numpy().dtype), copy=False))


# -- writing ---------------------------------------------------------------------------------------
def write_weights(model, layouts, optimizer=None) -> bytes:
    """The bytes of a ``model.weights.h5`` for ``model`` (and ``(name, arrays)`` of its
    optimizer's variables in Keras' order, if given)."""
    h5py = require_h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars").attrs["name"] = model.name
        for path, layer, groups in layer_paths(model, layouts):
            g = f.require_group(path)
            g.create_group("vars").attrs["name"] = layer.name if layer is not None else \
                path.rsplit("/", 1)[-1]
            for group, variables in groups:
                vars_group = f.require_group(group + "/vars")
                if "name" not in vars_group.attrs:
                    vars_group.attrs["name"] = group.rsplit("/", 1)[-1]
                for i, var in enumerate(variables):
                    _write_array(vars_group, str(i), var.numpy())
        if optimizer is not None:
            name, values = optimizer
            vars_group = f.create_group("optimizer/vars")
            vars_group.attrs["name"] = name
            for i, value in enumerate(values):
                _write_array(vars_group, str(i), value)
    return buffer.getvalue()


def _write_array(group, key, value):
    value = np.asarray(value)
    if value.dtype.name == "bfloat16":  # stored as Keras does: float values, marked
        group.create_dataset(key, data=value.astype(np.float32)).attrs["dtype"] = "bfloat16"
    else:
        group.create_dataset(key, data=value)


# -- optimizer state -------------------------------------------------------------------------------
def _slot_blocks(opt) -> list | None:
    """How Keras lays out the per-variable state of the optimizer ``opt`` mirrors:
    blocks of unidl slot indices, each block interleaved per variable (Keras'
    ``add_optimizer_variables`` with several names), the blocks one after the other. None
    where the state does not mean the same in Keras: SGD's and RMSprop's momentum buffers
    (Keras scales them by the learning rate), Nadam with another ``momentum_decay`` than
    Keras' 1.0."""
    from unidl import optimizers as o

    kind = type(opt)
    if kind in (o.Adam, o.AdamW):
        return [(0, 1), (2,)] if opt.amsgrad else [(0, 1)]
    if kind in (o.Adamax, o.Adadelta) or (kind is o.Nadam and opt.momentum_decay == 1.0):
        return [(0, 1)]
    if kind in (o.Adagrad, o.Lion):
        return [(0,)]
    if kind is o.SGD and not opt.momentum:
        return []
    if kind is o.RMSprop and not opt.momentum:
        return [(0,), (1,)] if opt.centered else [(0,)]
    return None


def optimizer_permutation(opt, keras_order) -> list | None:
    """``[unidl optimizer variable]`` in the order of Keras' optimizer variables for the same
    model (None: no equivalent layout): the step count and learning rate, the per-variable
    state by blocks, then optimizer-wide state (Nadam's momentum product). ``opt`` must be
    built for those variables."""
    blocks = _slot_blocks(opt)
    if blocks is None or any(id(v) not in opt._index for v in keras_order):
        return None
    out = [opt._iterations] + ([opt._lr_var] if opt._lr_var is not None else [])
    for block in blocks:
        for v in keras_order:
            slots = opt._slots[opt._index[id(v)]]
            out.extend(slots[s] for s in block)
    out.extend(opt._scalar_vars)
    return out if len(out) == len(opt.variables) else None
