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
import tempfile

import numpy as np

from unidl import tree
from unidl.errors import UnidlError
from unidl.layers.base import Layer, LayerError
from unidl.models.training import TrainingMixin

__all__ = ["Model"]


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

    def summary(self, line_length: int = 78, print_fn=None) -> None:
        """Print the layers with their output shapes and parameter counts."""
        from unidl.models.summary import summary_lines

        for line in summary_lines(self, line_length):
            (print_fn or print)(line)

    # -- weights on disk -----------------------------------------------------------------
    def save_weights(self, filepath: str) -> None:
        """Save the weights to a ``.npz`` file (no pickle); written atomically."""
        if not self.built:
            raise LayerError(self, "is not built; nothing to save")
        arrays = {f"w{i:04d}": w for i, w in enumerate(self.get_weights())}
        names = np.array([w.name for w in self.weights])
        directory = os.path.dirname(os.path.abspath(filepath)) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".unidl-", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, __names__=names, **arrays)
            os.replace(tmp, filepath)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load_weights(self, filepath: str) -> None:
        """Load weights saved by :meth:`save_weights` (never executes code from the file)."""
        try:
            with np.load(filepath, allow_pickle=False) as data:
                keys = sorted(k for k in data.files if k.startswith("w"))
                values = [data[k] for k in keys]
        except (OSError, ValueError) as exc:
            raise UnidlError(f"cannot load weights from {filepath!r}: the file is missing, "
                             f"truncated or not a unidl weights file ({exc})") from None
        self.set_weights(values)
