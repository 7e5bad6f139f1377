"""The mapping table between Keras 3 configs and unidl's: layer classes, argument values
(dtype policies, initializers, regularizers, constraints, activations, schedules) and the
Keras-only arguments unidl ignores.

Reading turns a Keras object config into a unidl object; writing turns a unidl object into
the ``{"module", "class_name", "config", "registered_name"}`` dict Keras 3 deserializes.
Nothing here imports Keras, and nothing a file holds is ever imported or executed: classes
are looked up in unidl's own modules, ``custom_objects`` and unidl's registry only.
"""

from __future__ import annotations

import inspect

import numpy as np

from unidl.saving.model_file import ModelFileError

__all__ = ["KerasConfigError", "keras_snake_case", "layer_from_keras", "layer_to_keras",
           "object_from_keras", "object_to_keras", "dtype_to_keras", "filter_arguments"]


class KerasConfigError(ModelFileError):
    """A Keras config has no unidl equivalent (or a unidl model none in Keras); the message
    names the layer, the argument, and what was expected and found."""


#: Keras layer classes that hold Python code: Keras loads them only with safe_mode=False
CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
#: serialized-object classes that hold Python code
CODE_OBJECTS = ("__lambda__", "__function__", "function_with_code")

_ANY = object()
#: Keras-only arguments unidl ignores when they hold this value (_ANY: any value; they change
#: nothing for a float32 model on unidl). Any other Keras-only argument is an error unless None.
IGNORED = {"quantization_config": None, "lora_rank": None, "lora_alpha": None,
           "rms_scaling": False, "renorm": False, "renorm_clipping": None,
           "renorm_momentum": _ANY, "sparse": False, "ragged": False, "optional": False,
           "use_cudnn": _ANY, "flash_attention": _ANY, "autocast": _ANY, "implementation": _ANY,
           "shared_object_id": _ANY, "input_axes": None, "output_axes": None}

#: layer classes whose configs, weights and predictions are checked against Keras 3 both ways
#: (tests/test_keras_files.py); other unidl layers of a Keras name map by their argument
#: names, with a warning
VERIFIED = frozenset(
    "InputLayer Dense Dropout Flatten Reshape Permute Activation Identity Embedding "
    "Conv1D Conv2D Conv1DTranspose Conv2DTranspose SeparableConv1D SeparableConv2D "
    "DepthwiseConv1D DepthwiseConv2D MaxPooling1D MaxPooling2D AveragePooling1D "
    "AveragePooling2D GlobalAveragePooling1D GlobalAveragePooling2D GlobalMaxPooling1D "
    "GlobalMaxPooling2D BatchNormalization LayerNormalization LSTM GRU SimpleRNN RNN "
    "LSTMCell GRUCell SimpleRNNCell Bidirectional MultiHeadAttention Add Subtract Multiply "
    "Average Maximum Minimum Concatenate ZeroPadding1D ZeroPadding2D Cropping1D Cropping2D "
    "UpSampling1D UpSampling2D RepeatVector".split())

#: unidl-only arguments written to Keras only at this value (dropped), else an error
UNIDL_ONLY = {"time_major": False, "input_shape": None, "batch_input_shape": None}
#: unidl-only arguments per class (class name -> {argument: value dropped})
UNIDL_ONLY_BY_CLASS = {"Cropping1D": {"data_format": "channels_last"}}


def _one_pair(value):
    """unidl's ``((left, right),)`` of a 1-D padding or cropping as Keras' ``(left, right)``."""
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0],
                                                                           (list, tuple)):
        return list(value[0])
    return value


#: unidl values Keras spells otherwise (class name -> {argument: converter})
TO_KERAS_VALUES = {"ZeroPadding1D": {"padding": _one_pair},
                   "Cropping1D": {"cropping": _one_pair}}

_KERAS_MODULES = {"initializers": "keras.initializers", "regularizers": "keras.regularizers",
                  "constraints": "keras.constraints", "schedules": "keras.optimizers.schedules",
                  "losses": "keras.losses", "metrics": "keras.metrics",
                  "optimizers": "keras.optimizers", "layers": "keras.layers"}


def keras_snake_case(name: str) -> str:
    """A class name as Keras names its weights' groups (``MaxPooling2D`` ->
    ``max_pooling2d``; Keras' ``to_snake_case``, which differs from unidl's for ``L1L2``)."""
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# -- argument filtering --------------------------------------------------------------------------
def _parameters(cls) -> set | None:
    """The keyword arguments ``cls`` accepts (those of every ``__init__`` in its MRO, since
    unidl's constructors hand ``**kwargs`` up); None when one of them accepts anything."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.kind == p.VAR_KEYWORD and klass.__module__.split(".")[0] != "unidl":
                return None
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    from unidl.layers.base import Layer

    if issubclass(cls, Layer):
        names.add("batch_input_shape")
    return names


def filter_arguments(cls, config: dict, where: str) -> dict:
    """``config`` without the Keras-only arguments unidl's ``cls`` does not take: those of
    :data:`IGNORED` at their neutral value and any that is None; any other is an error."""
    accepted = _parameters(cls)
    out = {}
    for key, value in config.items():
        if key == "shared_object_id":
            continue
        if accepted is None or key in accepted:
            out[key] = value
            continue
        neutral = IGNORED.get(key, None)
        if value is None or neutral is _ANY or (key in IGNORED and value == neutral):
            continue
        raise KerasConfigError(f"{where}: the Keras argument {key}={value!r} has no unidl "
                               f"equivalent ({cls.__name__} takes "
                               f"{', '.join(sorted(accepted))})")
    return out


# -- classes -------------------------------------------------------------------------------------
def _unidl_module(module: str | None):
    """The unidl module holding the classes of a Keras module (None: not a known one)."""
    import unidl

    module = module or ""
    for kind, keras_module in _KERAS_MODULES.items():
        if module == keras_module or module.startswith(keras_module + "."):
            if kind == "schedules":
                return unidl.optimizers.schedules
            return getattr(unidl, kind)
    return None


def _lookup(spec: dict, custom_objects, kinds=None):
    """The unidl class a Keras object dict names: ``custom_objects``, unidl's registry (for
    ``package>Name`` registered names), then the unidl module matching its Keras module."""
    from unidl.saving.registry import lookup

    name, registered = spec.get("class_name"), spec.get("registered_name")
    for key in (registered, name):
        if key and custom_objects and (key in custom_objects
                                       or key.rsplit(">", 1)[-1] in custom_objects):
            return lookup(key, custom_objects)
    if registered and ">" in registered and not registered.startswith("keras"):
        found = lookup(registered, custom_objects)
        if found is not None:
            return found
    module = _unidl_module(spec.get("module"))
    if module is None and _is_keras_operation(spec.get("module")):
        return None  # keras.ops functions (e.g. ops.add) are not the layers of that name
    candidates = [module] if module is not None else [_unidl_module(k) for k in kinds or ()]
    for mod in candidates:
        cls = getattr(mod, name, None) if mod is not None and name else None
        if inspect.isclass(cls) and name in getattr(mod, "__all__", (name,)):
            return cls
    return None


def _is_keras_operation(module) -> bool:
    """Whether a Keras module path is one of ``keras.ops`` (functions used in a functional
    model, recorded as operations)."""
    parts = (module or "").split(".")
    return parts[:1] == ["keras"] and "ops" in parts[1:3]


def _refuse_code(spec, where):
    """An error for what Keras would load only with ``safe_mode=False`` (code), or by
    importing a Python function the file names."""
    name = spec.get("class_name")
    if spec.get("module") == "builtins" and name == "function":
        raise KerasConfigError(
            f"{where}: refers to the Python function {spec.get('config')!r}; unidl never "
            "imports code a file names. Use a built-in name (e.g. 'relu') or a class "
            "registered with @unidl.saving.register_serializable()")
    if name in CODE_OBJECTS or name in CODE_LAYERS:
        raise KerasConfigError(
            f"{where}: holds Python code ({name!r}), which Keras loads only with "
            "safe_mode=False; unidl never executes code from a file. Rebuild that part "
            "with unidl layers (or a class registered with "
            "@unidl.saving.register_serializable()) and load the weights")


# -- values: Keras -> unidl ----------------------------------------------------------------------
def _is_object(value) -> bool:
    return isinstance(value, dict) and "class_name" in value


def object_from_keras(value, where: str, custom_objects=None, kinds=None):
    """A Keras config value as unidl's: objects rebuilt from unidl's classes, dtype policies
    their dtype name, activations their name, tuples tuples; anything else as it is."""
    if isinstance(value, list):
        return [object_from_keras(v, where, custom_objects, kinds) for v in value]
    if not isinstance(value, dict):
        return value
    if not _is_object(value):
        return {k: object_from_keras(v, where, custom_objects, kinds) for k, v in value.items()
                if k != "shared_object_id"}
    _refuse_code(value, where)
    name, config = value["class_name"], value.get("config")
    if name == "__tuple__":
        return tuple(object_from_keras(config["value"], where, custom_objects, kinds))
    if name in ("__numpy__", "__tensor__"):
        return np.asarray(config["value"], dtype=config.get("dtype"))
    if name in ("DTypePolicy", "FloatDTypePolicy"):
        return dtype_from_keras(value, where)
    if name == "function" and isinstance(config, str):  # a built-in activation by name
        return config
    if (value.get("module") or "").startswith("keras.layers") or kinds == ("layers",):
        return layer_from_keras(value, where, custom_objects)
    cls = _lookup(value, custom_objects, kinds)
    if cls is None:
        raise KerasConfigError(f"{where}: {value.get('module') or 'Keras'} class {name!r} has "
                               "no unidl equivalent")
    args = object_from_keras(config or {}, f"{where} ({name})", custom_objects)
    args = filter_arguments(cls, args, f"{where} ({name})")
    try:
        return cls.from_config(args) if hasattr(cls, "from_config") else cls(**args)
    except Exception as exc:
        raise KerasConfigError(f"{where}: cannot rebuild {name} from its Keras config "
                               f"{args}: {type(exc).__name__}: {exc}") from None


def dtype_from_keras(value, where: str) -> str | None:
    """A Keras dtype (a name or a ``DTypePolicy`` dict) as a unidl dtype or policy name
    (``mixed_float16`` and ``mixed_bfloat16``: :mod:`unidl.mixed_precision`)."""
    if _is_object(value):
        value = (value.get("config") or {}).get("name")
    if value is None or not str(value).startswith("mixed_"):
        return value
    from unidl.mixed_precision import MIXED_POLICIES

    if value in MIXED_POLICIES:
        return value
    raise KerasConfigError(f"{where}: dtype policy {value!r} has no unidl equivalent (unidl "
                           f"has {', '.join(MIXED_POLICIES)})")


def layer_from_keras(spec: dict, where: str, custom_objects=None):
    """The unidl layer a Keras layer config describes (nested layers included)."""
    from unidl import layers as ulayers

    name = spec.get("class_name")
    inner = spec.get("config") or {}
    here = f"layer {inner.get('name', '?')!r} ({name})" if where is None else \
        f"{where}: layer {inner.get('name', '?')!r} ({name})"
    _refuse_code(spec, here)
    cls = _lookup(spec, custom_objects, ("layers",))
    if cls is None and _is_keras_operation(spec.get("module")):
        raise KerasConfigError(
            f"{here}: a Keras operation ({spec.get('module')}.{name}, a keras.ops function "
            "applied in the functional model), not a layer; unidl rebuilds layers only: use "
            "the equivalent keras.layers class in the Keras model")
    if cls is None or not isinstance(cls, type) or not issubclass(cls, ulayers.Layer) or \
            cls is ulayers.Lambda:
        raise KerasConfigError(
            f"{here}: unidl has no layer class {name!r} (module {spec.get('module')!r}); if "
            f"it is your own, pass custom_objects={{{name!r}: YourUnidlClass}} or register a "
            "unidl class with @unidl.saving.register_serializable()")
    if cls.__module__.startswith("unidl.") and name not in VERIFIED:
        _warn_unverified(here)
    args = {k: object_from_keras(v, here, custom_objects, _kinds_of(k))
            for k, v in inner.items()}
    if "dtype" in args:
        args["dtype"] = dtype_from_keras(inner["dtype"], here)
    args = filter_arguments(cls, args, here)
    try:
        if cls.__module__.startswith("unidl.") or not hasattr(cls, "from_config"):
            return cls(**args)
        return cls.from_config(args)
    except KerasConfigError:
        raise
    except Exception as exc:
        raise KerasConfigError(f"{here}: cannot build the unidl layer from its Keras config: "
                               f"{type(exc).__name__}: {exc}") from None


def _warn_unverified(here):
    import warnings

    warnings.warn(f"{here}: mapped to unidl by its class and argument names; this layer is "
                  "not among those checked against Keras (docs/deployment.md, Keras files): "
                  "compare a few predictions", stacklevel=5)


def _kinds_of(key: str):
    """Which unidl modules a config argument's objects come from, by its name."""
    for suffix, kinds in (("initializer", ("initializers",)),
                          ("regularizer", ("regularizers",)),
                          ("constraint", ("constraints",)), ("layer", ("layers",)),
                          ("cell", ("layers",))):
        if key == suffix or key.endswith("_" + suffix):
            return kinds
    return None


# -- values: unidl -> Keras ----------------------------------------------------------------------
def dtype_to_keras(dtype):
    """A unidl dtype name as Keras' ``DTypePolicy`` dict."""
    if dtype is None:
        return None
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": str(dtype)},
            "registered_name": None}


def _keras_module_of(obj) -> str | None:
    import unidl

    for kind, keras_module in _KERAS_MODULES.items():
        mod = unidl.optimizers.schedules if kind == "schedules" else getattr(unidl, kind)
        cls = getattr(mod, type(obj).__name__, None)
        if cls is type(obj):
            return keras_module
    return None


def object_to_keras(value, where: str, key: str = ""):
    """A unidl config value as Keras': objects as Keras object dicts (unidl's own in the
    matching ``keras.*`` module, registered ones by their registered name), unidl's
    ``{"class_name", "config"}`` dicts likewise (by the argument's name), tuples lists."""
    from unidl.layers.base import Layer

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [object_to_keras(v, where, key) for v in value]
    if isinstance(value, Layer):
        return layer_to_keras(value, where)
    if isinstance(value, dict):
        if "class_name" in value and "config" in value and _kinds_of(key):
            module = _KERAS_MODULES[_kinds_of(key)[0]]
            return {"module": module, "class_name": value["class_name"],
                    "config": object_to_keras(value["config"], where),
                    "registered_name": None}
        return {k: object_to_keras(v, where, k) for k, v in value.items()}
    if hasattr(value, "get_config") and not inspect.isclass(value):
        return _unidl_object_to_keras(value, where)
    if callable(value):
        return _callable_to_keras(value, where, key)
    return value


def _unidl_object_to_keras(obj, where):
    from unidl.saving.registry import registered_name

    module = _keras_module_of(obj)
    name = type(obj).__name__
    registered = None
    if module is None:
        registered = registered_name(type(obj))
        if registered is None or registered.startswith("unidl."):
            raise KerasConfigError(f"{where}: {name} has no Keras equivalent")
    return {"module": module, "class_name": name,
            "config": object_to_keras(obj.get_config(), f"{where} ({name})"),
            "registered_name": registered}


def _callable_to_keras(fn, where, key):
    from unidl import activations

    try:
        return activations.serialize(fn)
    except ValueError:
        pass
    name = getattr(fn, "__name__", None)
    for module in ("losses", "metrics"):
        import importlib

        mod = importlib.import_module(f"unidl.{module}")
        if name and getattr(mod, name, None) is fn:
            return name
    raise KerasConfigError(f"{where}: {key or 'a value'} is the Python function {fn!r}, which "
                           "a .keras file cannot hold without code (unidl never saves code)")


def layer_to_keras(layer, where: str | None = None) -> dict:
    """The Keras 3 config dict of a unidl layer (``module``, ``class_name``, ``config``,
    ``registered_name``); an error names a layer or an argument Keras has no equivalent
    for."""
    from unidl import layers as ulayers
    from unidl.saving.registry import registered_name

    cls = type(layer)
    name = cls.__name__
    here = f"layer {layer.name!r} ({name})" if where is None else \
        f"{where}: layer {layer.name!r} ({name})"
    registered = registered_name(cls)
    if cls is ulayers.Lambda:
        raise KerasConfigError(f"{here}: a Lambda layer holds Python code, which unidl never "
                               "saves; write a small layer class instead")
    builtin = getattr(ulayers, name, None) is cls
    if not builtin and (registered is None or registered.startswith("unidl.")):
        raise KerasConfigError(f"{here}: not a unidl layer Keras knows; register your class "
                               "with @unidl.saving.register_serializable() (Keras then needs "
                               "its own class of that registered name to load the file)")
    if builtin and name not in VERIFIED:
        _warn_unverified(here)
    config = _keras_layer_config(layer, here)
    return {"module": "keras.layers" if builtin else cls.__module__, "class_name": name,
            "config": config, "registered_name": None if builtin else registered}


def _keras_layer_config(layer, here) -> dict:
    """The unidl layer's config with Keras' names and values."""
    from unidl.layers.rnn import RNN, Bidirectional

    config = layer.get_config()
    if isinstance(layer, Bidirectional):
        config["layer"] = layer.forward_layer
        config["backward_layer"] = layer.backward_layer
    if type(layer) is RNN:
        config["cell"] = layer.cell
    dropped = {**UNIDL_ONLY, **UNIDL_ONLY_BY_CLASS.get(type(layer).__name__, {})}
    converters = TO_KERAS_VALUES.get(type(layer).__name__, {})
    out = {}
    for key, value in config.items():
        if key in converters:
            value = converters[key](value)
        if key in dropped:
            if value != dropped[key] and not (key in UNIDL_ONLY and value is None):
                raise KerasConfigError(f"{here}: {key}={value!r} has no Keras equivalent "
                                       f"(Keras supports only {dropped[key]!r})")
            continue
        out[key] = dtype_to_keras(value) if key == "dtype" else object_to_keras(value, here,
                                                                                  key)
    return out
