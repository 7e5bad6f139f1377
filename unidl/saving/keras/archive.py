"""The ``.keras`` archive: a zip of ``metadata.json``, ``config.json`` and
``model.weights.h5``, read into a unidl model and written from one."""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile

from unidl.saving.files import SaveFileNotFoundError, atomic_write, check_directory
from unidl.saving.keras.compiling import (
    compile_from_keras,
    compile_to_keras,
    optimizer_arrays,
    restore_optimizer,
)
from unidl.saving.keras.configs import KerasConfigError
from unidl.saving.keras.graph import masking_layers, model_from_keras, model_to_keras
from unidl.saving.keras.weights_h5 import (
    WEIGHTS_MEMBER,
    assign_weights,
    read_weights,
    require_h5py,
    write_weights,
)
from unidl.saving.model_file import ModelFileError

__all__ = ["KERAS_VERSION", "load_keras_model", "save_keras_model"]

#: the Keras version written into metadata.json (the Keras 3 release unidl's format follows)
KERAS_VERSION = "3.15.1"
METADATA, CONFIG = "metadata.json", "config.json"
#: a member may not expand more than this many times its stored size (a zip bomb otherwise)
_MAX_EXPANSION, _BOMB_FLOOR = 200, 1 << 26


# -- reading -------------------------------------------------------------------------------------
def load_keras_model(filepath, custom_objects=None, compile=True):
    """The unidl model of a Keras 3 ``.keras`` file (see ``docs/deployment.md``)."""
    path = os.fspath(filepath)
    where = f"cannot load {path!r}"
    require_h5py()
    members = _read_archive(path, where)
    spec = _read_config(members, where)
    try:
        model, layouts = model_from_keras(spec, where, custom_objects)
    except KerasConfigError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{where}: cannot rebuild its model from {CONFIG}: "
                             f"{type(exc).__name__}: {exc}") from None
    arrays = read_weights(members[WEIGHTS_MEMBER], where)
    assign_weights(model, layouts, arrays, where)
    _warn_masks(model, f"load_model({path!r})", "Keras computed its predictions with")
    if compile and spec.get("compile_config"):
        label = f"load_model({path!r})"
        if compile_from_keras(model, spec["compile_config"], label, custom_objects):
            restore_optimizer(model, layouts, arrays, label)
    return model


def _warn_masks(model, where, keras_side):
    names = masking_layers(model)
    if names:
        warnings.warn(f"{where}: {names} use mask_zero=True: {keras_side} the mask passed on "
                      "to the following layers automatically; unidl passes masks only where a "
                      "call gives them (mask=...), so predictions on padded inputs differ",
                      stacklevel=4)


def _read_archive(path, where) -> dict:
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise SaveFileNotFoundError(f"{where}: the file {what}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for member in (CONFIG, WEIGHTS_MEMBER):
                if member not in names:
                    extra = " (weights as .npz are not supported)" if \
                        "model.weights.npz" in names else ""
                    raise ModelFileError(f"{where}: not a complete Keras .keras archive: it has "
                                         f"no {member}{extra}; it holds {names[:6]}")
            assets = [n for n in names if n.startswith("assets/")]
            if assets:
                raise ModelFileError(f"{where}: the archive holds Keras assets ({assets[:3]}: "
                                     "e.g. a lookup layer's vocabulary), which unidl does not "
                                     "read; the model would not predict as in Keras")
            for info in archive.infolist():
                if info.file_size > max(_BOMB_FLOOR, _MAX_EXPANSION * info.compress_size):
                    raise ModelFileError(f"{where}: member {info.filename!r} declares "
                                         f"{info.file_size} bytes from {info.compress_size} "
                                         "stored; refusing a likely zip bomb")
            return {n: archive.read(n) for n in (METADATA, CONFIG, WEIGHTS_MEMBER)
                    if n in names}
    except ModelFileError:
        raise
    except zipfile.BadZipFile as exc:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head.startswith(b"PK"):
            raise ModelFileError(f"{where}: the file is truncated or corrupt ({exc})") from None
        raise ModelFileError(f"{where}: not a Keras .keras file (expected a zip archive; the "
                             f"file {'is empty' if not head else f'starts with {head!r}'})"
                             ) from None
    except (OSError, EOFError, ValueError) as exc:
        raise ModelFileError(f"{where}: the file is truncated or corrupt ({exc})") from None


def _read_config(members, where) -> dict:
    try:
        spec = json.loads(members[CONFIG])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{where}: {CONFIG} is not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or "class_name" not in spec or "config" not in spec:
        raise ModelFileError(f"{where}: {CONFIG} is not a Keras model config (expected "
                             "class_name and config)")
    return spec


# -- writing -------------------------------------------------------------------------------------
def save_keras_model(model, filepath) -> None:
    """Write ``model`` (``Sequential`` or functional) as a Keras 3 ``.keras`` file,
    atomically."""
    from datetime import datetime

    path = os.fspath(filepath)
    where = f"model.save({path!r})"
    require_h5py()
    check_directory(path, "model.save")
    spec, layouts = model_to_keras(model, where)  # (an unbuilt or subclassed model: an error)
    _warn_masks(model, where, "Keras will compute predictions with")
    compile_config = compile_to_keras(model, where)
    if compile_config is not None:
        spec["compile_config"] = compile_config
    optimizer = optimizer_arrays(model, layouts) if compile_config is not None else None
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(METADATA, json.dumps(metadata))
        archive.writestr(CONFIG, json.dumps(spec))
        archive.writestr(WEIGHTS_MEMBER, write_weights(model, layouts, optimizer))
    atomic_write(path, buffer.getvalue())
