"""``unidl.Sequential``: a plain stack of layers."""

from __future__ import annotations

from unidl.layers.base import Layer, LayerError
from unidl.models.model import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A model that applies its layers one after another.

    Example:
        >>> import unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     model = unidl.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(1)])
        ...     model.count_params()
        21
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._stack = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        """Append a layer (building the model at once if the first layer knows its input).

        As in Keras, the first item may be ``unidl.Input(shape)`` instead of a layer: it
        gives the first layer its input shape."""
        from unidl.models.functional import SymbolicTensor

        if isinstance(layer, SymbolicTensor) and layer.producer is None and not self._stack:
            self._input_shape_given = tuple(layer.shape)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer (or unidl.Input(shape) first), "
                            f"got {type(layer).__name__}")
        given = getattr(self, "_input_shape_given", None)
        if given is not None and not self._stack and layer._batch_input_shape is None:
            layer._batch_input_shape = given
        self._stack.append(layer)
        self._track(layer)
        self.built = False
        first = self._stack[0]
        if first._batch_input_shape is not None:
            self.build(first._batch_input_shape)

    def pop(self):
        layer = self._stack.pop()
        self._tracked_layers.remove(layer)
        return layer

    @property
    def layers(self):
        return list(self._stack)

    def build(self, input_shape=None):
        if input_shape is None:
            if not self._stack or self._stack[0]._batch_input_shape is None:
                raise LayerError(self, "cannot build without an input shape: give the first "
                                       "layer input_shape=... or call the model on data")
            input_shape = self._stack[0]._batch_input_shape
        from unidl.models.functional import Input

        x = Input(tuple(input_shape[1:]), batch_size=input_shape[0])
        y = x
        for layer in self._stack:
            y = layer(y)
        self._input_spec = x
        self._output_spec = y
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self._stack:
            x = layer(x, training=training)
        return x

    # -- saving -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The layers in order, and the input shape the model was built for."""
        config = {**Layer.get_config(self), "layers": list(self._stack)}
        if self._input_spec is not None:
            config["build_input_shape"] = list(self._input_spec.shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        layers = config.pop("layers", [])
        shape = config.pop("build_input_shape", None)
        model = cls(layers=layers, **config)
        if shape is not None and not model.built:
            model.build(tuple(shape))
        return model
