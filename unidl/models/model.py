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

from unidl import tree
from unidl.errors import UnidlError
from unidl.layers.base import Layer
from unidl.models.training import TrainingMixin

__all__ = ["Model", "WeightsFileError", "WeightsFileNotFoundError", "weights_format",
           "WEIGHTS_FORMATS"]


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
        self._saved_input_shape = _batch_free_shapes(inputs)
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

    def export(self, filepath, format=None, **options) -> str:
        """Export the inference pass to run without unidl: ``format="onnx"`` (a ``.onnx``
        file), ``"torch"`` (a ``torch.export`` program, ``.pt2``) or ``"tf_saved_model"``
        (a SavedModel directory), from whichever backend the model lives on, with a
        dynamic batch axis. See :func:`unidl.export.export_model` and
        ``docs/deployment.md``; returns ``filepath``."""
        from unidl.export import export_model

        return export_model(self, filepath, format, **options)

    def quantize(self, mode="int8", calibration_data=None, **kwargs) -> None:
        """Quantize this model in place (as Keras 3's ``model.quantize``): Dense, Conv and
        Embedding layers become int8 ones; ``calibration_data`` (None: dynamic) calibrates
        the activation ranges. See :func:`unidl.quantization.quantize`, which returns a
        quantized copy instead, and ``docs/efficiency.md``."""
        from unidl.quantization import quantize_in_place

        quantize_in_place(self, mode, calibration_data, **kwargs)

    # -- saving -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """Functional models: the layer graph (inputs, layers, calls, outputs); subclassed
        models: the base layer's config (override it to return your constructor's
        arguments, and register the class with ``@unidl.saving.register_serializable()``)."""
        config = Layer.get_config(self)
        if self._graph is not None:
            from unidl.models.functional import graph_config

            config.update(graph_config(self))
        return config

    @classmethod
    def from_config(cls, config: dict):
        """The model a :meth:`get_config` describes (its layers already rebuilt)."""
        config = dict(config)
        if "nodes" in config:
            from unidl.models.functional import graph_from_config

            inputs, outputs = graph_from_config(config)
            keep = {k: config[k] for k in ("name", "dtype", "trainable") if k in config}
            return cls(inputs=inputs, outputs=outputs, **keep)
        return cls(**config)

    def save(self, filepath) -> None:
        """Save the whole model (architecture, weights, compile configuration, optimizer
        state) to a ``.unidl`` file, atomically; :func:`unidl.load_model` reads it on any
        backend. A ``.keras`` path writes a Keras 3 file instead (Sequential and functional
        models), which Keras loads. See :mod:`unidl.saving` and ``docs/deployment.md``."""
        from unidl.saving.model_file import save_model

        save_model(self, filepath)

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON (no weights); :func:`unidl.models.model_from_json`
        rebuilds it. ``kwargs`` go to ``json.dumps`` (e.g. ``indent=2``)."""
        from unidl.saving.model_file import model_to_json

        return model_to_json(self, **kwargs)

    def save_weights(self, filepath) -> None:
        """Save the weights to ``filepath``, atomically: ``.weights.safetensors`` (or any
        ``.safetensors``), or ``.npz`` (NumPy's archive, no pickle). The directory must
        exist. :meth:`load_weights` reads the file back on any backend."""
        from unidl.saving.weights import save_weights

        save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        """Load weights saved by :meth:`save_weights` (never executes code from the file).

        An unbuilt model whose input shape is known (``input_shape=`` on its first layer, or
        built from :func:`unidl.Input`) is built first. Nothing is assigned unless every
        array fits: a :class:`~unidl.saving.WeightsFileError` names the file and what was
        expected and found (missing file, not a unidl weights file, truncated or corrupt,
        the number of arrays, or the first weight whose shape differs).
        """
        from unidl.saving.weights import load_weights

        load_weights(self, filepath)


from unidl.saving.weights import (  # noqa: E402  (re-exported: they lived here)
    WEIGHTS_FORMATS,
    WeightsFileError,
    WeightsFileNotFoundError,
    weights_format,
)


def _batch_free_shapes(inputs):
    """The shapes of ``inputs`` (a structure of tensors) with the batch axis unknown: how a
    subclassed model is rebuilt when loaded."""
    from unidl import ops

    def shape(x):
        try:
            return {"__shape__": [None] + list(ops.shape(x))[1:], "dtype": ops.dtype(x)}
        except Exception:
            return None

    return tree.map_structure(shape, inputs)
