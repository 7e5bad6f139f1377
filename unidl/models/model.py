"""``unidl.Model``: functional (``Model(inputs, outputs)``) or subclassed, with training.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> class TwoLayer(unidl.Model):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = layers.Dense(8, activation="relu")
    ...         self.out = layers.Dense(1)
    ...     def call(self, x, training=None):
    ...         return self.out(self.hidden(x))
    >>> with unidl.use_backend("numpy"):
    ...     m = TwoLayer()
    ...     ops.shape(m(ops.ones((2, 3))))
    (2, 1)
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
import zlib

import numpy as np

from unidl import tree
from unidl.errors import UnidlError
from unidl.layers.base import Layer
from unidl.models.training import TrainingMixin

__all__ = ["Model", "WeightsFileError", "WeightsFileNotFoundError", "weights_format"]


class Model(TrainingMixin, Layer):
    """A layer with ``compile``, ``fit``, ``evaluate``, ``predict`` and ``summary``.

    Build it either functionally, ``Model(inputs, outputs)`` from :func:`unidl.Input`, or by
    subclassing and defining ``call`` (layers assigned in ``__init__`` are tracked).
    """

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        Layer.__init__(self, name=name, **kwargs)
        self._graph = None
        self._input_spec = None
        self._output_spec = None
        TrainingMixin.__init__(self)
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model(inputs, outputs) needs both inputs and outputs")
            from unidl.models.functional import FunctionalGraph

            self._graph = FunctionalGraph(inputs, outputs)
            self._functional_layers = self._graph.layers
            self._input_spec, self._output_spec = inputs, outputs
            self.built = True

    # -- structure --------------------------------------------------------------------------
    @property
    def layers(self):
        if self._graph is not None:
            return list(self._graph.layers)
        return [layer for layer in self._tracked_layers]

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model {self.name!r} has no layer named {name!r}; it has "
                         f"{[layer.name for layer in self.layers]}")

    @property
    def inputs(self):
        return self._input_spec

    @property
    def outputs(self):
        return self._output_spec

    @property
    def input_shape(self):
        return tree.map_structure(lambda s: s.shape, self._input_spec) \
            if self._input_spec is not None else None

    @property
    def output_shape(self):
        return tree.map_structure(lambda s: s.shape, self._output_spec) \
            if self._output_spec is not None else None

    def call(self, inputs, training=None):
        if self._graph is not None:
            return self._graph.run(inputs, training=training)
        raise UnidlError(f"{type(self).__name__} must define call() (or be built as "
                         "Model(inputs, outputs))")

    def _maybe_build(self, inputs):
        if self.built:
            return
        if hasattr(self, "_stack"):  # Sequential: build symbolically to record shapes
            from unidl import ops

            shape = tuple(ops.shape(inputs))
            self.build((None,) + shape[1:])
            return
        self.built = True

    def build(self, input_shape=None):
        if input_shape is not None and self._graph is None and not self.built:
            from unidl.models.functional import dummy_batch

            self(dummy_batch(input_shape, "float32"))
        self.built = True

    def summary(self, line_length: int | None = None, print_fn=None) -> None:
        """Print the layers with their output shapes and parameter counts.

        ``line_length``: the table's width (default: as wide as the longest layer name,
        class and shape need, at least 78 and at most 120 characters); entries that do not
        fit their column wrap onto more lines.
        """
        from unidl.models.summary import summary_lines

        for line in summary_lines(self, line_length):
            (print_fn or print)(line)

    # -- weights on disk -----------------------------------------------------------------
    def save_weights(self, filepath) -> None:
        """Save the weights to a ``.npz`` file (NumPy arrays, no pickle), written atomically.

        The extension must be one :func:`weights_format` accepts (``.npz``); the directory
        must exist. :meth:`load_weights` reads the file back on any backend.
        """
        path = os.fspath(filepath)
        weights_format(path, "save_weights")
        if not self.built:
            raise WeightsFileError(f"save_weights({path!r}): model {self.name!r} is not built, "
                                   "so it has no weights to save yet; call it on a batch "
                                   "(model(x[:1])) or model.build(input_shape) first")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise WeightsFileNotFoundError(f"save_weights({path!r}): the directory "
                                           f"{directory!r} does not exist; create it first "
                                           "(os.makedirs)")
        arrays = {f"w{i:04d}": w for i, w in enumerate(self.get_weights())}
        names = np.array([w.name for w in self.weights], dtype=str)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".unidl-", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, __names__=names, **arrays)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load_weights(self, filepath) -> None:
        """Load weights saved by :meth:`save_weights` (never executes code from the file).

        An unbuilt model whose input shape is known (``input_shape=`` on its first layer, or
        built from :func:`unidl.Input`) is built first. Nothing is assigned unless every
        array fits: a :class:`WeightsFileError` names the file and what was expected and
        found (missing file, not a unidl weights file, truncated or corrupt, the number of
        arrays, or the first weight whose shape differs).
        """
        path = os.fspath(filepath)
        names, values = _read_weights_file(path)
        self._build_for_loading(path, len(values))
        weights = self.weights
        where = f"cannot load weights from {path!r} into model {self.name!r}"
        if len(values) != len(weights):
            raise WeightsFileError(f"{where}: the file holds {len(values)} arrays, the model "
                                   f"has {len(weights)} weights")
        for i, (w, v, saved) in enumerate(zip(weights, values, names)):
            if tuple(v.shape) != tuple(w.shape):
                raise WeightsFileError(f"{where}: weight {i} {w.name!r} has shape "
                                       f"{tuple(w.shape)} in the model, but array {i} in the "
                                       f"file ({saved!r}) has shape {tuple(v.shape)}")
        self.set_weights(values)

    def _build_for_loading(self, path, count) -> None:
        """Build a model that has no weights yet from its known input shape, or raise."""
        if self.weights or not count:
            return
        stack = getattr(self, "_stack", None)
        shape = self._batch_input_shape or (stack[0]._batch_input_shape if stack else None)
        if shape is not None:
            self.built = False
            self.build(shape)
        if not self.weights:
            raise WeightsFileError(f"cannot load weights from {path!r} into model "
                                   f"{self.name!r}: the model has no weights yet (it is not "
                                   "built and its input shape is unknown); call it on a batch "
                                   "(model(x[:1])) or model.build(input_shape) first. The "
                                   f"file holds {count} arrays")


class WeightsFileError(UnidlError, ValueError):
    """A weights file cannot be written or read into a model; the message names the file,
    what was expected and what was found.

    Example:
        >>> import unidl
        >>> from unidl.models.model import WeightsFileError
        >>> with unidl.use_backend("numpy"):
        ...     model = unidl.Sequential([unidl.layers.Dense(1, input_shape=(2,))])
        ...     try:
        ...         model.save_weights("model.weights.h5")
        ...     except WeightsFileError as exc:
        ...         print(exc)  # doctest: +NORMALIZE_WHITESPACE
        save_weights: cannot use 'model.weights.h5': its extension .h5 (Keras' HDF5) is not
        a weights format unidl supports; unidl weights files are .npz (NumPy .npz archive):
        name it e.g. model.weights.npz
    """


class WeightsFileNotFoundError(WeightsFileError, FileNotFoundError):
    """The weights file, or the directory to write it in, does not exist."""


# The weights formats unidl reads and writes, by extension (a later change adds safetensors).
WEIGHTS_FORMATS = {".npz": "NumPy .npz archive"}
_OTHER_FORMATS = {".h5": "Keras' HDF5", ".hdf5": "HDF5", ".keras": "a Keras model archive",
                  ".pt": "a PyTorch pickle", ".pth": "a PyTorch pickle",
                  ".safetensors": "safetensors, not supported yet"}


def weights_format(filepath, what="save_weights") -> str:
    """The weights format of ``filepath`` by its extension (a key of ``WEIGHTS_FORMATS``);
    a ValueError naming ``what`` and the supported formats for any other extension.

    Example:
        >>> from unidl.models.model import weights_format
        >>> weights_format("ckpt/model.npz")
        '.npz'
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
    stem = os.path.splitext(os.path.basename(path))[0] or "model"
    raise WeightsFileError(f"{what}: cannot use {path!r}: {found}; unidl weights files are "
                           f"{supported}: name it e.g. {stem}.npz")


def _corrupt(path, detail) -> WeightsFileError:
    return WeightsFileError(f"cannot load weights from {path!r}: the file is truncated or "
                            f"corrupt ({detail}); save it again with save_weights")


def _read_weights_file(filepath) -> tuple[list, list]:
    """``(names, arrays)`` from a weights file written by ``Model.save_weights``, read
    without unpickling anything; a :class:`WeightsFileError` names the file and what is
    wrong with it (missing, not a unidl weights file, truncated or corrupt)."""
    path = os.fspath(filepath)
    weights_format(path, "load_weights")
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise WeightsFileNotFoundError(f"cannot load weights from {path!r}: the file {what}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head.startswith(b"PK"):
        raise WeightsFileError(f"cannot load weights from {path!r}: not a unidl weights file "
                               "(expected a .npz zip archive written by save_weights; the "
                               f"file {'is empty' if not head else f'starts with {head!r}'})")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted((k for k in data.files if _ARRAY_KEY.fullmatch(k)),
                          key=lambda k: int(k[1:]))
            if not keys and "__names__" not in data.files:
                raise WeightsFileError(f"cannot load weights from {path!r}: not a unidl "
                                       "weights file (a .npz archive without save_weights' "
                                       f"w0000, w0001, ... arrays; it holds {data.files[:8]})")
            values = [data[k] for k in keys]
            names = [str(n) for n in data["__names__"]] if "__names__" in data.files \
                else keys
    except WeightsFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise WeightsFileError(f"cannot load weights from {path!r}: not a unidl weights "
                                   "file (it holds pickled Python objects, which unidl never "
                                   "loads)") from None
        raise _corrupt(path, exc) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
        raise _corrupt(path, exc) from None
    bad = next((i for i, v in enumerate(values) if v.dtype.kind not in "biuf"), None)
    if bad is not None or len(names) != len(values):
        found = f"array {keys[bad]!r} has dtype {values[bad].dtype}" if bad is not None else \
            f"it names {len(names)} weights but holds {len(values)} arrays"
        raise WeightsFileError(f"cannot load weights from {path!r}: not a unidl weights file "
                               f"({found})")
    return names, values


_ARRAY_KEY = re.compile(r"w\d{4,}")
