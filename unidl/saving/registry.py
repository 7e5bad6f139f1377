"""Which classes a saved file may name, and turning objects into JSON configs and back.

A config names its class by a *registered name*: ``"unidl.layers>Dense"`` for unidl's own
classes, ``"Package>Name"`` for classes registered with :func:`register_serializable`.
Loading looks the name up in ``custom_objects`` and in this registry only: a name it does not
know is an error naming it, never an import of a module the file names.

Example:
    >>> import unidl
    >>> from unidl import layers, saving
    >>> @saving.register_serializable(package="Example")
    ... class Scale(layers.Layer):
    ...     def __init__(self, factor=2.0, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.factor = factor
    ...     def call(self, x):
    ...         return x * self.factor
    ...     def get_config(self):
    ...         return {**super().get_config(), "factor": self.factor}
    >>> config = saving.serialize(Scale(3.0, name="scale"))
    >>> config["registered_name"], config["config"]["factor"]
    ('Example>Scale', 3.0)
    >>> saving.deserialize(config).factor
    3.0
"""

from __future__ import annotations

import inspect

import numpy as np

from unidl.errors import UnidlError

__all__ = ["register_serializable", "registered_name", "lookup", "serialize", "deserialize",
           "SerializationError"]

_CUSTOM: dict[str, type] = {}
_NAME_OF: dict[type, str] = {}
_BUILTIN: dict[str, type] = {}
#: unidl's own modules whose public classes a file may name, by the prefix of their names
_BUILTIN_MODULES = ("layers", "models", "losses", "metrics", "optimizers",
                    "optimizers.schedules", "initializers", "regularizers", "constraints",
                    "pruning.schedules", "pruning.wrapper", "mixed_precision",
                    "quantization")


class SerializationError(UnidlError, ValueError):
    """An object cannot be saved, or a saved config cannot be turned back into one."""


def register_serializable(package: str = "Custom", name: str | None = None):
    """Class decorator: let saved files name this class as ``"package>name"``.

    ``name`` defaults to the class name. The class needs ``get_config()`` returning its
    constructor arguments (JSON values, or objects that serialize themselves) and, if its
    constructor does not take them as keywords, a ``from_config(config)`` classmethod.
    """
    if "|" in package or ">" in package:
        raise ValueError(f"register_serializable: package {package!r} may not hold '>' or '|'")

    def decorate(cls):
        key = f"{package}>{name or cls.__name__}"
        known = _CUSTOM.get(key)
        if known is not None and known is not cls and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"register_serializable: {key!r} is already registered for "
                             f"{known.__module__}.{known.__qualname__}")
        _CUSTOM[key] = cls
        _NAME_OF[cls] = key
        return cls

    return decorate


def _builtins() -> dict[str, type]:
    if not _BUILTIN:
        import importlib

        for module_name in _BUILTIN_MODULES:
            module = importlib.import_module(f"unidl.{module_name}")
            for attr in getattr(module, "__all__", ()):
                obj = getattr(module, attr, None)
                if inspect.isclass(obj) and not issubclass(obj, BaseException):
                    _BUILTIN.setdefault(f"unidl.{module_name}>{attr}", obj)
                    _NAME_OF.setdefault(obj, f"unidl.{module_name}>{obj.__name__}")
    return _BUILTIN


def registered_name(cls) -> str | None:
    """The name files use for ``cls`` (None: not registered)."""
    _builtins()
    return _NAME_OF.get(cls)


def lookup(name: str, custom_objects: dict | None = None):
    """The class a file calls ``name`` (a registered name or a class name), from
    ``custom_objects`` first, then the registry; None when unknown."""
    custom_objects = custom_objects or {}
    if name in custom_objects:
        return custom_objects[name]
    short = name.rsplit(">", 1)[-1]
    if short in custom_objects:
        return custom_objects[short]
    return _CUSTOM.get(name) or _builtins().get(name)


# -- serializing ---------------------------------------------------------------------------------
def serialize(obj):
    """``obj`` as JSON values: objects with ``get_config`` become
    ``{"class_name", "registered_name", "config"}`` (recursively), tuples lists, NumPy
    scalars and small arrays Python numbers and lists.

    Raises:
        SerializationError: naming what cannot be saved and why (a plain function or a
            lambda holds code, which unidl never stores; an unregistered class).
    """
    return _to_json(obj, "object")


def _to_json(value, where: str):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _to_json(v, f"{where}.{k}") for k, v in value.items()}
    if hasattr(value, "get_config") and not inspect.isclass(value):
        return _object_to_json(value, where)
    if callable(value):
        name = _function_name(value)
        if name is not None:
            return name
        raise SerializationError(
            f"cannot save {where}: {value!r} is a Python function; unidl never saves code. "
            "Use a built-in name (e.g. 'relu') or a class with get_config registered with "
            "@unidl.saving.register_serializable()")
    raise SerializationError(f"cannot save {where}: a {type(value).__name__} is not a JSON "
                             "value and has no get_config")


def _object_to_json(obj, where: str) -> dict:
    cls = type(obj)
    name = registered_name(cls)
    if name is None:
        raise SerializationError(
            f"cannot save {where}: class {cls.__qualname__} is not registered; decorate it "
            "with @unidl.saving.register_serializable() (and give it get_config)")
    config = obj.get_config()
    return {"class_name": cls.__name__, "registered_name": name,
            "config": _to_json(config, f"{where} ({cls.__name__})")}


def _function_name(fn) -> str | None:
    """The name of a built-in activation function (``relu``), or None."""
    from unidl import activations

    name = getattr(fn, "__name__", None)
    try:
        return name if name and activations.get(name) is fn else None
    except (ValueError, TypeError):
        return None


# -- deserializing -------------------------------------------------------------------------------
def deserialize(config, custom_objects: dict | None = None):
    """The object a :func:`serialize` config describes (nested objects first).

    Raises:
        SerializationError: an unknown class (named, with how to make it known) or a class
            whose ``from_config`` rejects the config.
    """
    return _from_json(config, custom_objects or {})


def _is_object(value) -> bool:
    return isinstance(value, dict) and "registered_name" in value and "config" in value


def _from_json(value, custom_objects):
    if isinstance(value, list):
        return [_from_json(v, custom_objects) for v in value]
    if not isinstance(value, dict):
        return value
    if not _is_object(value):
        return {k: _from_json(v, custom_objects) for k, v in value.items()}
    name = value["registered_name"]
    cls = lookup(name, custom_objects) or lookup(value.get("class_name", ""), custom_objects)
    if cls is None:
        raise SerializationError(
            f"the file names class {name!r}, which unidl does not know; if it is your own, "
            "register it with @unidl.saving.register_serializable() before loading, or pass "
            f"custom_objects={{{value.get('class_name', name)!r}: TheClass}}")
    config = _from_json(value["config"], custom_objects)
    try:
        if hasattr(cls, "from_config"):
            return cls.from_config(config)
        return cls(**config)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"cannot rebuild {name!r} from its saved config: "
                                 f"{type(exc).__name__}: {exc}") from None
