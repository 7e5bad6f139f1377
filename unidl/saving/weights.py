"""Weights files: ``Model.save_weights`` / ``load_weights``.

The format follows the extension: ``.weights.safetensors`` (or ``.safetensors``, the
default to use) holds the weights as safetensors; ``.npz`` (NumPy's archive, read without
unpickling) is kept for files written by earlier versions. Either way the arrays are in
:attr:`Model.weights` order, each named after its weight, and load on any backend.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib

import numpy as np

from unidl.saving.files import (
    SaveFileError,
    SaveFileNotFoundError,
    arrays_from_bytes,
    arrays_to_bytes,
    atomic_write,
    check_directory,
)

__all__ = ["WeightsFileError", "WeightsFileNotFoundError", "WEIGHTS_FORMATS", "weights_format",
           "save_weights", "load_weights", "weight_arrays", "read_weights_file"]

WEIGHTS_FORMATS = {".safetensors": "safetensors (.weights.safetensors)",
                   ".npz": "NumPy .npz archive"}
_OTHER_FORMATS = {".h5": "Keras' HDF5", ".hdf5": "HDF5", ".keras": "a Keras model archive",
                  ".unidl": "a whole unidl model: use model.save / unidl.load_model",
                  ".pt": "a PyTorch pickle", ".pth": "a PyTorch pickle"}


class WeightsFileError(SaveFileError):
    """A weights file cannot be written or read into a model; the message names the file,
    what was expected and what was found.

    Example:
        >>> import unidl
        >>> from unidl.saving import WeightsFileError
        >>> with unidl.use_backend("numpy"):
        ...     model = unidl.Sequential([unidl.layers.Dense(1, input_shape=(2,))])
        ...     try:
        ...         model.save_weights("model.weights.h5")
        ...     except WeightsFileError as exc:
        ...         print(exc)  # doctest: +NORMALIZE_WHITESPACE
        save_weights: cannot use 'model.weights.h5': its extension .h5 (Keras' HDF5) is not
        a weights format unidl supports; unidl weights files are .safetensors (safetensors
        (.weights.safetensors)), .npz (NumPy .npz archive): name it e.g.
        model.weights.safetensors
    """


class WeightsFileNotFoundError(WeightsFileError, SaveFileNotFoundError):
    """The weights file, or the directory to write it in, does not exist."""


def weights_format(filepath, what="save_weights") -> str:
    """The weights format of ``filepath`` by its extension (a key of ``WEIGHTS_FORMATS``);
    a :class:`WeightsFileError` naming ``what`` and the supported formats for any other.

    Example:
        >>> from unidl.saving import weights_format
        >>> weights_format("ckpt/model.weights.safetensors"), weights_format("old.npz")
        ('.safetensors', '.npz')
    """
    path = os.fspath(filepath)
    ext = os.path.splitext(path)[1].lower()
    if ext in WEIGHTS_FORMATS:
        return ext
    supported = ", ".join(f"{e} ({d})" for e, d in WEIGHTS_FORMATS.items())
    if not ext:
        found = "it has no extension, so no weights format"
    else:
        known = f" ({_OTHER_FORMATS[ext]})" if ext in _OTHER_FORMATS else ""
        found = f"its extension {ext}{known} is not a weights format unidl supports"
    stem = os.path.basename(path).split(".")[0] or "model"
    raise WeightsFileError(f"{what}: cannot use {path!r}: {found}; unidl weights files are "
                           f"{supported}: name it e.g. {stem}.weights.safetensors")


def weight_arrays(model) -> dict:
    """``{key: array}`` of the model's weights: keys ``"0000/dense/kernel"`` (the position
    in :attr:`Model.weights`, then the weight's name)."""
    return {f"{i:04d}/{w.name}": w.numpy() for i, w in enumerate(model.weights)}


def save_weights(model, filepath) -> None:
    """Write ``model``'s weights to ``filepath`` atomically (see the module docstring)."""
    path = os.fspath(filepath)
    ext = weights_format(path, "save_weights")
    if not model.built:
        raise WeightsFileError(f"save_weights({path!r}): model {model.name!r} is not built, "
                               "so it has no weights to save yet; call it on a batch "
                               "(model(x[:1])) or model.build(input_shape) first")
    check_directory(path, "save_weights", WeightsFileNotFoundError)
    arrays = weight_arrays(model)
    if ext == ".npz":
        data = _npz_bytes(arrays)
    else:
        from unidl import __version__

        data = arrays_to_bytes(arrays, {"format": "unidl.weights", "unidl_version": __version__})
    atomic_write(path, data)


def _npz_bytes(arrays: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    names = np.array([k.split("/", 1)[1] for k in arrays], dtype=str)
    np.savez(buffer, __names__=names,
             **{f"w{i:04d}": v for i, v in enumerate(arrays.values())})
    return buffer.getvalue()


def load_weights(model, filepath) -> None:
    """Assign the weights of ``filepath`` to ``model`` (building it first when its input
    shape is known); nothing is assigned unless every array fits."""
    path = os.fspath(filepath)
    names, values = read_weights_file(path)
    where = f"cannot load weights from {path!r} into model {model.name!r}"
    _build_for_loading(model, where, len(values))
    assign_weights(model, names, values, where)


def assign_weights(model, names, values, where: str) -> None:
    """Check every array against the model's weights (count, then each shape), then assign."""
    weights = model.weights
    if len(values) != len(weights):
        raise WeightsFileError(f"{where}: the file holds {len(values)} arrays, the model "
                               f"has {len(weights)} weights")
    for i, (w, v, saved) in enumerate(zip(weights, values, names)):
        if tuple(v.shape) != tuple(w.shape):
            raise WeightsFileError(f"{where}: weight {i} {w.name!r} has shape "
                                   f"{tuple(w.shape)} in the model, but array {i} in the "
                                   f"file ({saved!r}) has shape {tuple(v.shape)}")
    model.set_weights(values)


def _build_for_loading(model, where, count) -> None:
    """Build a model that has no weights yet from its known input shape, or raise."""
    if model.weights or not count:
        return
    stack = getattr(model, "_stack", None)
    shape = model._batch_input_shape or (stack[0]._batch_input_shape if stack else None)
    if shape is not None:
        model.built = False
        model.build(shape)
    if not model.weights:
        raise WeightsFileError(f"{where}: the model has no weights yet (it is not built and "
                               "its input shape is unknown); call it on a batch "
                               "(model(x[:1])) or model.build(input_shape) first. The file "
                               f"holds {count} arrays")


# -- reading ------------------------------------------------------------------------------------
def read_weights_file(path: str) -> tuple[list, list]:
    """``(names, arrays)`` of a weights file, read without executing anything; a
    :class:`WeightsFileError` names the file and what is wrong with it (missing, not a
    unidl weights file, truncated or corrupt)."""
    ext = weights_format(path, "load_weights")
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise WeightsFileNotFoundError(f"cannot load weights from {path!r}: the file {what}")
    with open(path, "rb") as fh:
        data = fh.read()
    if ext == ".npz":
        return _read_npz(path, data)
    return _read_safetensors(path, data)


def _not_weights(path, why) -> WeightsFileError:
    return WeightsFileError(f"cannot load weights from {path!r}: not a unidl weights file "
                            f"({why})")


def _corrupt(path, detail) -> WeightsFileError:
    return WeightsFileError(f"cannot load weights from {path!r}: the file is truncated or "
                            f"corrupt ({detail}); save it again with save_weights")


def _starts(data: bytes) -> str:
    return "is empty" if not data else f"starts with {data[:4]!r}"


def _read_safetensors(path, data) -> tuple[list, list]:
    if len(data) < 8:
        raise _not_weights(path, f"expected a safetensors file written by save_weights; the "
                                 f"file {_starts(data)}")
    header = int.from_bytes(data[:8], "little")
    if header > len(data) - 8 or data[8:9] != b"{":
        if data[:2] == b"PK" or data[:1] == b"\x80":
            raise _not_weights(path, "it is a zip or pickle file, not safetensors")
        if header > len(data) - 8 and data[8:9] == b"{":
            raise _corrupt(path, f"its header announces {header} bytes, the file holds "
                                 f"{len(data) - 8}")
        raise _not_weights(path, "expected a safetensors file written by save_weights")
    try:
        arrays = arrays_from_bytes(data, f"cannot load weights from {path!r}")
    except SaveFileError as exc:
        raise _corrupt(path, str(exc).rsplit("(", 1)[-1].rstrip(")")) from None
    if any(not _ST_KEY.fullmatch(k) for k in arrays):
        raise _not_weights(path, f"its arrays are not named as save_weights names them; "
                                 f"it holds {sorted(arrays)[:6]}")
    keys = sorted(arrays, key=lambda k: int(k.split("/", 1)[0]))
    return [k.split("/", 1)[1] for k in keys], [arrays[k] for k in keys]


_ST_KEY = re.compile(r"\d{4,}/.*")


def _read_npz(path, data) -> tuple[list, list]:
    import io

    if not data.startswith(b"PK"):
        raise _not_weights(path, "expected a .npz zip archive written by save_weights; the "
                                 f"file {_starts(data)}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            keys = sorted((k for k in npz.files if _NPZ_KEY.fullmatch(k)),
                          key=lambda k: int(k[1:]))
            if not keys and "__names__" not in npz.files:
                raise _not_weights(path, "a .npz archive without save_weights' w0000, "
                                         f"w0001, ... arrays; it holds {npz.files[:8]}")
            values = [npz[k] for k in keys]
            names = [str(n) for n in npz["__names__"]] if "__names__" in npz.files else keys
    except WeightsFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _not_weights(path, "it holds pickled Python objects, which unidl never "
                                     "loads") from None
        raise _corrupt(path, exc) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
        raise _corrupt(path, exc) from None
    bad = next((i for i, v in enumerate(values) if v.dtype.kind not in "biuf"), None)
    if bad is not None or len(names) != len(values):
        found = f"array {keys[bad]!r} has dtype {values[bad].dtype}" if bad is not None else \
            f"it names {len(names)} weights but holds {len(values)} arrays"
        raise _not_weights(path, found)
    return names, values


_NPZ_KEY = re.compile(r"w\d{4,}")
