"""The ``.unidl`` model file: ``Model.save`` and :func:`load_model`.

A ``.unidl`` file is a zip archive:

* ``config.json``: ``unidl_version``, ``format_version``, the architecture (``model``: the
  model's config, every layer, initializer, regularizer... as ``{"class_name",
  "registered_name", "config"}``), the compile configuration (``compile``: optimizer, loss,
  metrics, ...), the backend it was saved on, and a manifest of the arrays;
* ``model.weights.safetensors``: the weights, in ``Model.weights`` order;
* ``optimizer.safetensors``: the optimizer's state (step count, slots), when it has one;
* ``training_state.json``: in deterministic mode, the host random generator's state.

Nothing in the file is executed on load: classes are looked up by name among unidl's own
and those registered with :func:`unidl.saving.register_serializable` (or given in
``custom_objects``), arrays are safetensors, configs JSON.
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile

from unidl.saving.files import (
    SaveFileError,
    SaveFileNotFoundError,
    arrays_from_bytes,
    arrays_to_bytes,
    atomic_write,
    check_directory,
)
from unidl.saving.registry import SerializationError, deserialize, serialize
from unidl.saving.weights import assign_weights, weight_arrays

__all__ = ["FORMAT_VERSION", "ModelFileError", "save_model", "load_model", "model_to_json",
           "model_from_json", "clone_model"]

#: the version of the ``.unidl`` layout this unidl writes (and the newest it reads)
FORMAT_VERSION = 1
CONFIG, WEIGHTS, OPTIMIZER, TRAINING = ("config.json", "model.weights.safetensors",
                                        "optimizer.safetensors", "training_state.json")


class ModelFileError(SaveFileError):
    """A model file cannot be written, or read back into a model; the message names the file
    and what is wrong (not a model file, truncated or corrupt, a newer format, an unknown
    class, weights that do not fit the architecture)."""


# -- saving -------------------------------------------------------------------------------------
def save_model(model, filepath) -> None:
    """Write ``model`` to a ``.unidl`` file atomically (see the module docstring), or to a
    Keras 3 ``.keras`` file (Sequential and functional models; see
    :mod:`unidl.saving.keras`)."""
    path = os.fspath(filepath)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".keras":
        from unidl.saving.keras import save_keras_model

        return save_keras_model(model, path)
    if ext != ".unidl":
        raise ModelFileError(f"model.save: cannot use {path!r}: unidl model files end in "
                             ".unidl, or .keras for Keras 3 (weights only: "
                             "save_weights('x.weights.safetensors'))")
    if not model.built or not model.weights and _needs_build(model):
        raise ModelFileError(f"model.save({path!r}): model {model.name!r} is not built; call "
                             "it on a batch (model(x[:1])) or model.build(input_shape) first")
    check_directory(path, "model.save")
    members = _members(model)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    atomic_write(path, buffer.getvalue())


def _needs_build(model) -> bool:
    return not getattr(model, "_graph", None) and not getattr(model, "_stack", None)


def _members(model) -> dict[str, bytes]:
    """The archive's files for ``model``."""
    from unidl import __version__, current_backend
    from unidl import random as urandom

    be = current_backend()
    weights = weight_arrays(model)
    optimizer = _optimizer_arrays(model)
    config = {"unidl_version": __version__, "format_version": FORMAT_VERSION,
              "model": serialize_model(model),
              "build_input_shape": getattr(model, "_saved_input_shape", None),
              "compile": _compile_config(model),
              "saved_on": {"backend": be.name, "version": be.version()},
              "weights": {"count": len(weights), "names": [k.split("/", 1)[1] for k in weights]},
              "optimizer": {"count": len(optimizer)} if optimizer else None}
    members = {CONFIG: json.dumps(config, indent=1).encode(),
               WEIGHTS: arrays_to_bytes(weights, {"format": "unidl.weights"})}
    if optimizer:
        members[OPTIMIZER] = arrays_to_bytes(optimizer, {"format": "unidl.optimizer"})
    if urandom.is_deterministic():
        members[TRAINING] = json.dumps({"deterministic": True,
                                        "random": urandom.get_state()}).encode()
    return members


def serialize_model(model) -> dict:
    """The model's architecture as JSON values; a :class:`ModelFileError` says what cannot
    be saved (e.g. a Lambda layer's Python code)."""
    try:
        return serialize(model)
    except SerializationError as exc:
        raise ModelFileError(f"cannot save model {model.name!r}: {exc}") from None


def _compile_config(model):
    """The arguments ``compile`` got, as JSON values (the optimizer with its current
    configuration); None if the model is not compiled or they cannot be saved (a warning
    says why: the model is then saved uncompiled)."""
    args = getattr(model, "_compile_args", None)
    if args is None or model.optimizer is None:
        return None
    try:
        return serialize({**args, "optimizer": model.optimizer})
    except SerializationError as exc:
        warnings.warn(f"model.save: the compile configuration of {model.name!r} is not saved "
                      f"({exc}); load_model returns it uncompiled", stacklevel=4)
        return None


def _optimizer_arrays(model) -> dict:
    opt = getattr(model, "optimizer", None)
    if opt is None or not opt.built:
        return {}
    return {f"{i:04d}/{v.name}": v.numpy() for i, v in enumerate(opt.variables)}


# -- loading ------------------------------------------------------------------------------------
def load_model(filepath, custom_objects=None, compile=True):
    """The model saved in ``filepath`` (a ``.unidl`` file), on the active backend, whichever
    backend saved it; a ``.keras`` file (Keras 3, or ``model.save("x.keras")``) is read by
    :mod:`unidl.saving.keras`.

    Args:
        filepath: the file ``Model.save`` wrote (or Keras 3's ``model.save``).
        custom_objects: ``{name: class}`` for your own layers, losses... (classes registered
            with ``@unidl.saving.register_serializable()`` need not be listed).
        compile: compile it as it was saved, and restore the optimizer's state (training
            continues where it stopped); ``False`` returns it uncompiled.

    In deterministic mode (:func:`unidl.random.set_deterministic`) the host random
    generator's state saved with the model is restored too, so shuffling and dropout masks
    continue as if training had not stopped.

    Raises:
        ModelFileError: naming the file and what is wrong with it.
    """
    path = os.fspath(filepath)
    if os.path.splitext(path)[1].lower() == ".keras":
        from unidl.saving.keras import load_keras_model

        return load_keras_model(path, custom_objects=custom_objects, compile=compile)
    members = _read_archive(path)
    config = _read_config(path, members)
    model = _rebuild(path, config, custom_objects)
    names, values = _arrays(path, members, WEIGHTS, "weights")
    assign_weights(model, names, values, f"cannot load {path!r}: its weights do not fit its "
                                         "architecture")
    if compile and config.get("compile"):
        _compile(path, model, config["compile"], custom_objects)
        if OPTIMIZER in members:
            _restore_optimizer(path, model, members)
    if TRAINING in members:
        _restore_training_state(path, members[TRAINING])
    return model


def _read_archive(path) -> dict[str, bytes]:
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise SaveFileNotFoundError(f"cannot load model {path!r}: the file {what}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if CONFIG not in names:
                raise ModelFileError(f"cannot load model {path!r}: not a unidl model file "
                                     f"(a zip archive without {CONFIG}; it holds {names[:6]})")
            return {n: archive.read(n) for n in names if n in (CONFIG, WEIGHTS, OPTIMIZER,
                                                                TRAINING)}
    except ModelFileError:
        raise
    except zipfile.BadZipFile as exc:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head.startswith(b"PK"):
            raise ModelFileError(f"cannot load model {path!r}: the file is truncated or "
                                 f"corrupt ({exc})") from None
        raise ModelFileError(f"cannot load model {path!r}: not a unidl model file (expected "
                             "a zip archive written by model.save; the file "
                             f"{'is empty' if not head else f'starts with {head!r}'})") from None
    except (OSError, EOFError, ValueError) as exc:  # (zlib/CRC errors surface as these)
        raise ModelFileError(f"cannot load model {path!r}: the file is truncated or corrupt "
                             f"({exc})") from None


def _read_config(path, members) -> dict:
    try:
        config = json.loads(members[CONFIG])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot load model {path!r}: {CONFIG} is not valid JSON "
                             f"({exc})") from None
    version = config.get("format_version") if isinstance(config, dict) else None
    if not isinstance(version, int) or "model" not in config:
        raise ModelFileError(f"cannot load model {path!r}: {CONFIG} is not a unidl model "
                             "configuration (no format_version or model)")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"cannot load model {path!r}: it was written by unidl "
                             f"{config.get('unidl_version', '?')} in format version {version}; "
                             f"this unidl reads format versions up to {FORMAT_VERSION}: "
                             "upgrade unidl")
    for member in (WEIGHTS,):
        if member not in members:
            raise ModelFileError(f"cannot load model {path!r}: the archive has no {member}")
    return config


def _rebuild(path, config, custom_objects):
    """The model object of ``config``, built (so its weights exist)."""
    try:
        model = deserialize(config["model"], custom_objects)
    except SerializationError as exc:
        raise ModelFileError(f"cannot load model {path!r}: {exc}") from None
    shape = config.get("build_input_shape")
    if not model.weights and shape is not None:
        model(_dummy_inputs(shape), training=False)
    return model


def _dummy_inputs(saved):
    """Zeros shaped as a saved input structure (``{"__shape__": [None, ...]}`` leaves)."""
    from unidl import ops

    if isinstance(saved, dict) and "__shape__" in saved:
        shape = tuple(2 if d is None else int(d) for d in saved["__shape__"])
        return ops.zeros(shape, saved.get("dtype") or "float32")
    if isinstance(saved, list):
        return [_dummy_inputs(s) for s in saved]
    if isinstance(saved, dict):
        return {k: _dummy_inputs(v) for k, v in saved.items()}
    raise ModelFileError(f"unreadable input shape in the model file: {saved!r}")


def _arrays(path, members, member, what) -> tuple[list, list]:
    arrays = arrays_from_bytes(members[member], f"cannot load model {path!r}: {member}")
    try:
        keys = sorted(arrays, key=lambda k: int(k.split("/", 1)[0]))
    except ValueError:
        raise ModelFileError(f"cannot load model {path!r}: {member} does not hold unidl "
                             f"{what} arrays ({sorted(arrays)[:4]})") from None
    return [k.split("/", 1)[-1] for k in keys], [arrays[k] for k in keys]


def _compile(path, model, config, custom_objects) -> None:
    try:
        args = deserialize(config, custom_objects)
    except SerializationError as exc:
        raise ModelFileError(f"cannot load model {path!r}: its compile configuration: "
                             f"{exc}; pass compile=False to load it uncompiled") from None
    model.compile(**args)


def _restore_optimizer(path, model, members) -> None:
    """The optimizer's saved state, after building it for the model's trainable weights
    (in the order training builds it)."""
    names, values = _arrays(path, members, OPTIMIZER, "optimizer")
    opt = model.optimizer
    opt.build(model.trainable_weights)
    variables = opt.variables
    where = f"cannot load {path!r}: the saved optimizer state does not fit {type(opt).__name__}"
    if len(values) != len(variables):
        raise ModelFileError(f"{where}: the file holds {len(values)} arrays, the optimizer "
                             f"has {len(variables)} variables")
    for i, (v, a, name) in enumerate(zip(variables, values, names)):
        if tuple(a.shape) != tuple(v.shape):
            raise ModelFileError(f"{where}: variable {i} {v.name!r} has shape {tuple(v.shape)}"
                                 f", the file's {name!r} {tuple(a.shape)}")
    for v, a in zip(variables, values):
        v.assign(a)


def _restore_training_state(path, data: bytes) -> None:
    from unidl import random as urandom

    if not urandom.is_deterministic():
        return
    try:
        urandom.set_state(json.loads(data)["random"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"cannot load model {path!r}: {TRAINING} is corrupt "
                             f"({exc})") from None


# -- JSON and clones ----------------------------------------------------------------------------
def model_to_json(model, **kwargs) -> str:
    """The architecture of ``model`` as a JSON string (no weights)."""
    from unidl import __version__

    return json.dumps({"unidl_version": __version__, "format_version": FORMAT_VERSION,
                       "model": serialize_model(model),
                       "build_input_shape": getattr(model, "_saved_input_shape", None)},
                      **kwargs)


def model_from_json(json_string: str, custom_objects=None):
    """A new model (fresh weights) from :meth:`Model.to_json`'s string."""
    try:
        config = json.loads(json_string)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"model_from_json: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "model" not in config:
        raise ModelFileError("model_from_json: not a unidl model configuration (no 'model'; "
                             "use the string model.to_json() returns)")
    return _rebuild("<json>", config, custom_objects)


def clone_model(model, backend: str | None = None, custom_objects=None):
    """A copy of ``model`` (architecture and weights) on ``backend`` (default: the active
    one): how a model moves between backends in one process."""
    from unidl import use_backend

    config = {"model": serialize_model(model),
              "build_input_shape": getattr(model, "_saved_input_shape", None)}
    weights = model.get_weights()
    names = [w.name for w in model.weights]
    if backend is None:
        clone = _rebuild("<clone>", config, custom_objects)
    else:
        with use_backend(backend):
            clone = _rebuild("<clone>", config, custom_objects)
    assign_weights(clone, names, weights, f"clone_model({model.name!r})")
    return clone
