"""Random image augmentation: RandomFlip, RandomCrop, RandomContrast, RandomBrightness,
GaussianNoise here, and RandomRotation, RandomTranslation, RandomZoom in
:mod:`unidl.layers.augmentation_transforms` (Keras 3 names, arguments and conventions).
They change their inputs only when called with ``training=True`` and return them unchanged
otherwise (RandomCrop excepted: see its doc).

**Portable randomness.** The random parameters of each call (flip decisions, angles, shifts,
zoom factors, crop corners, contrast and brightness factors, the noise itself) are drawn on
the host with NumPy, from the layer's own generator when it has a ``seed`` and otherwise from
a generator seeded by :func:`unidl.random.next_seed` (so :func:`unidl.random.set_seed`
fixes them), and then applied with unidl ops. The same seed therefore gives the same
augmented images on every backend: bit for bit for flips, crops and the brightness,
contrast and noise arithmetic, within float32 tolerance where pixels are interpolated
(rotation, translation, zoom: the ``affine_transform`` op). This holds in and out of
deterministic mode (the draws are a few numbers per image, except GaussianNoise's).

One exception: inside a function traced into a graph (TensorFlow's ``tf.function``: a
model's compiled train step outside deterministic mode), host draws would be frozen into the
graph, the same on every step. There the layers draw from the backend's own generator
instead (uniform numbers assembled from the random bits of ``ops.dropout``), so each step
still gets new parameters, but not the host's. In deterministic mode models run their train
steps eagerly, so host draws, and equality across backends, are kept.

Image layers take channels-last ``(batch, height, width, channels)`` batches or single
images (``data_format="channels_first"`` is transposed); a NumPy array given on a backend
whose tensors are not NumPy arrays comes back as a NumPy array, so the layers also work in a
data pipeline's ``map``.

Example:
    >>> import numpy as np, unidl
    >>> from unidl import layers
    >>> with unidl.use_backend("numpy"):
    ...     flip = layers.RandomFlip("horizontal", seed=3)
    ...     x = np.arange(6.0).reshape(1, 1, 3, 2)
    ...     y = flip(x, training=True)
    ...     bool((y == x).all() or (y == x[:, :, ::-1]).all()), flip(x) is x
    (True, True)
"""

from __future__ import annotations

import math

import numpy as np

import unidl
from unidl import ops
from unidl import random as _random
from unidl.layers.base import Layer, LayerError
from unidl.layers.core import _seed_stream, normalize_data_format
from unidl.layers.preprocessing import (
    ImageBatch,
    aspect_crop_box,
    crop,
    image_output_shape,
    positive_int,
)

__all__ = ["RandomFlip", "RandomCrop", "RandomContrast", "RandomBrightness", "GaussianNoise"]


# ---- random draws ---------------------------------------------------------------------------
def host_values_readable() -> bool:
    """Whether values made now can be read on the host: False while a backend traces a graph
    (a tensor made then is symbolic), where host draws would be frozen into the graph."""
    return not unidl.current_backend().is_tracing()


def _graph_uniform(template, bits: int = 24):
    """Uniform numbers in ``[0, 1)`` of ``template``'s shape (a tensor), from the backend's
    own generator: ``bits`` random bits, each from ``ops.dropout`` of ones at rate 1/2."""
    ones = ops.ones_like(ops.stop_gradient(template), dtype="float32")
    u = ops.zeros_like(ones)
    for i in range(bits):
        bit = ops.dropout(ones, 0.5, None, True)  # 0 or 2, each with probability 1/2
        u = ops.add(u, ops.multiply(bit, 0.5 ** (i + 2)))
    return u


class _RandomLayer(Layer):
    """A layer drawing random parameters per call (see the module docstring)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._seeds = _seed_stream(seed)

    def _generator(self) -> np.random.Generator:
        """The host generator of one call: the layer's stream, or one from unidl.random."""
        if self._seeds is not None:
            return self._seeds
        return np.random.default_rng(_random.next_seed())

    def _uniform(self, x, count: int, low=0.0, high=1.0):
        """``(batch, count)`` uniform numbers in ``[low, high)`` for the batch ``x``: a
        float64 NumPy array drawn on the host, or (inside a traced graph) a float32 tensor."""
        batch = ops.shape(x)[0]
        if batch is not None and host_values_readable():
            return self._generator().uniform(low, high, size=(int(batch), count))
        first = x  # (batch, 1, 1, 1) from splits: the batch may be unknown in a graph
        for axis in (1, 2, 3):
            first = ops.split(first, [1], axis=axis)[0]
        template = ops.tile(ops.reshape(first, (-1, 1)), (1, count))
        return ops.add(ops.multiply(_graph_uniform(template), high - low), low)

    def _tensor(self, values, dtype):
        return ops.convert_to_tensor(values, dtype) if isinstance(values, np.ndarray) \
            else ops.cast(values, dtype)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _xp(values):
    """The array namespace of ``values``: NumPy for host draws, unidl.ops for tensors."""
    return np if isinstance(values, np.ndarray) else ops


def _factor_pair(layer: str, factor, low: float, high: float, name: str = "factor") -> tuple:
    """A number ``f`` (as ``(-f, f)``, clipped to the bounds) or a ``(lower, upper)`` pair,
    each within ``[low, high]``."""
    if isinstance(factor, (int, float, np.integer, np.floating)) and \
            not isinstance(factor, bool):
        f = abs(float(factor))
        pair = (max(-f, low), f)
        check = (float(factor),)
    else:
        try:
            pair = tuple(sorted(float(v) for v in factor))
        except TypeError:
            pair = ()
        check = pair
        if len(pair) != 2:
            raise ValueError(f"{layer}: expected {name} as a number or a pair of numbers, "
                             f"got {factor!r}")
    if any(not low <= v <= high for v in check):
        raise ValueError(f"{layer}: expected {name} within [{low}, {high}], got {factor!r}")
    return pair


def _choice(layer: str, name: str, value, allowed) -> str:
    v = str(value).lower()
    if v not in allowed:
        raise ValueError(f"{layer}: expected {name} in {allowed}, got {value!r}")
    return v


# ---- flips and crops: exact ---------------------------------------------------------------
class RandomFlip(_RandomLayer):
    """Flip each image left-right (``"horizontal"``), upside down (``"vertical"``), or both
    at once (``"horizontal_and_vertical"``, the default: one decision per image, as Keras),
    each with probability 1/2 (a uniform draw ``<= 0.5``).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     layers.RandomFlip("vertical", seed=0)(np.ones((2, 3, 3, 1)), training=True).shape
        (2, 3, 3, 1)
    """

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = _choice("RandomFlip", "mode", mode, self._MODES)
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        images = ImageBatch(self, inputs, self.data_format, self.dtype)
        x = images.x
        u = self._uniform(x, 1)
        flip = ops.reshape(self._tensor(_xp(u).less_equal(u, 0.5), "bool"), (-1, 1, 1, 1))
        for axis, mode in ((2, "horizontal"), (1, "vertical")):
            if mode in self.mode:
                x = ops.where(flip, ops.flip(x, axis=axis), x)
        return images.restore(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "data_format": self.data_format}


class RandomCrop(_RandomLayer):
    """Cut a random ``height x width`` window out of the images while training (one window
    per batch, as Keras: its corner uniform over every position). Otherwise, and while
    training on images not larger than the target in both dimensions, the images are
    resized to the target after cutting out the largest centred window with its aspect
    ratio (Keras's ``smart_resize``, what Keras documents for inference). This is the one
    augmentation layer that is not the identity outside training: its output shape must
    not depend on ``training`` (Keras 3.15's layer returns its inputs unchanged there, so a
    model with a ``Flatten`` after it fails at inference).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     layers.RandomCrop(2, 3, seed=1)(np.ones((4, 5, 6, 3)), training=True).shape
        (4, 2, 3, 3)
    """

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height = positive_int("RandomCrop", "height", height)
        self.width = positive_int("RandomCrop", "width", width)
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs, training=None):
        images = ImageBatch(self, inputs, self.data_format, self.dtype)
        (h, w), x = images.size, images.x
        if h is None or w is None:
            raise LayerError(self, f"needs images of known height and width, got shape "
                                   f"{tuple(ops.shape(x))}")
        if training and h > self.height and w > self.width:
            if host_values_readable():  # one corner for the batch: floors of uniforms
                rng = self._generator()
                top = int(rng.uniform(0.0, h - self.height + 1.0))
                left = int(rng.uniform(0.0, w - self.width + 1.0))
                return images.restore(crop(x, top, left, self.height, self.width))
            return images.restore(self._graph_crop(x, h, w))
        y = crop(x, *aspect_crop_box(h, w, self.height, self.width))
        if tuple(ops.shape(y)[1:3]) != (self.height, self.width):
            y = ops.resize(y, (self.height, self.width), "bilinear")
        return images.restore(y)

    def _graph_crop(self, x, h, w):
        u = _graph_uniform(ops.zeros((2,), "float32"))
        corner = ops.cast(ops.floor(ops.multiply(
            u, ops.convert_to_tensor([h - self.height + 1.0, w - self.width + 1.0]))), "int32")
        top, left = ops.split(ops.reshape(corner, (2,)), 2)
        rows = ops.add(ops.arange(self.height, dtype="int32"), top)
        cols = ops.add(ops.arange(self.width, dtype="int32"), left)
        return ops.take(ops.take(x, rows, axis=1), cols, axis=2)

    def compute_output_shape(self, input_shape):
        return image_output_shape(input_shape, self.data_format, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "data_format": self.data_format}


# ---- pixel values ----------------------------------------------------------------------------
def _value_range(layer: str, value_range) -> tuple:
    try:
        pair = tuple(sorted(float(v) for v in value_range))
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{layer}: expected value_range as (low, high), got {value_range!r}")
    return pair


class RandomContrast(_RandomLayer):
    """Scale each image's deviation from its per-channel mean by a random factor:
    ``(x - mean) * c + mean``, clipped to ``value_range``, with ``c`` uniform in
    ``[1 - lower, 1 + upper]`` (``factor`` a number ``f`` in ``[0, 1]``, meaning ``lower =
    upper = f``, or a ``(lower, upper)`` pair), as Keras documents it (Keras 3.15's code
    draws from ``[1, 1 + f]`` for a number ``f``).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.RandomContrast(0.5, seed=0)(np.full((1, 2, 2, 1), 7.0), training=True)
        ...     y.tolist()  # a flat image has no contrast to change
        [[[[7.0], [7.0]], [[7.0], [7.0]]]]
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.data_format = normalize_data_format(data_format)
        if isinstance(factor, (int, float, np.integer, np.floating)):
            if not 0.0 <= float(factor) <= 1.0:
                raise ValueError(f"RandomContrast: expected factor within [0, 1], got "
                                 f"{factor!r}")
            self.factor = (float(factor), float(factor))
        else:
            pair = _factor_pair("RandomContrast", factor, 0.0, 1.0)
            self.factor = pair
        self.value_range = _value_range("RandomContrast", value_range)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        images = ImageBatch(self, inputs, self.data_format, self.dtype)
        x = images.x
        lower, upper = self.factor
        c = ops.reshape(self._tensor(self._uniform(x, 1, 1.0 - lower, 1.0 + upper),
                                     self.dtype), (-1, 1, 1, 1))
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        y = ops.add(ops.multiply(ops.subtract(x, mean), c), mean)
        return images.restore(ops.clip(y, *self.value_range))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range), "data_format": self.data_format}


class RandomBrightness(_RandomLayer):
    """Add a random offset to each image, ``u * (high - low)`` with ``u`` uniform in
    ``factor`` (a number ``f`` in ``[-1, 1]`` meaning ``[-f, f]``, or a ``(lower, upper)``
    pair) and ``(low, high) = value_range``, then clip to ``value_range`` (Keras's rule).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.RandomBrightness((0.5, 0.5), value_range=(0, 1))
        ...     y(np.full((1, 1, 2, 1), 0.25), training=True).ravel().tolist()
        [0.75, 0.75]
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_pair("RandomBrightness", factor, -1.0, 1.0)
        self.value_range = _value_range("RandomBrightness", value_range)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        images = ImageBatch(self, inputs, "channels_last", self.dtype)
        x = images.x
        low, high = self.value_range
        u = self._uniform(x, 1, *self.factor)
        xp = _xp(u)
        delta = ops.reshape(self._tensor(xp.multiply(u, high - low), self.dtype),
                            (-1, 1, 1, 1))
        return images.restore(ops.clip(ops.add(x, delta), low, high))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}


class GaussianNoise(_RandomLayer):
    """Add zero-mean normal noise of standard deviation ``stddev`` while training (a
    regularizer; any input shape). The noise is drawn on the host (one standard normal per
    element, NumPy's generator), so it is the same on every backend for the same seed; in a
    traced graph it comes from the backend's generator (Box-Muller on 16-bit uniforms).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     noise = layers.GaussianNoise(0.1, seed=0)
        ...     y = noise(np.zeros((1000,)), training=True)
        ...     0.08 < float(y.std()) < 0.12, noise(np.zeros((3,))).tolist()
        (True, [0.0, 0.0, 0.0])
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        stddev = float(stddev)
        if not stddev >= 0.0:
            raise ValueError(f"GaussianNoise: expected stddev >= 0, got {stddev}")
        self.stddev = stddev

    def call(self, inputs, training=None):
        if not training or self.stddev == 0.0:
            return inputs
        numpy_in = isinstance(inputs, np.ndarray) and not ops.is_tensor(inputs)
        x = ops.convert_to_tensor(inputs)
        if ops.dtype(x) != self.dtype:
            x = ops.cast(x, self.dtype)
        shape = tuple(ops.shape(x))
        if all(d is not None for d in shape) and host_values_readable():
            z = self._generator().standard_normal(size=shape)
            noise = ops.convert_to_tensor(np.multiply(z, self.stddev), self.dtype)
        else:
            u1 = ops.add(_graph_uniform(x, 16), 2.0 ** -17)  # in (0, 1)
            u2 = _graph_uniform(x, 16)
            z = ops.multiply(ops.sqrt(ops.multiply(ops.log(u1), -2.0)),
                             ops.cos(ops.multiply(u2, 2 * math.pi)))
            noise = ops.cast(ops.multiply(z, self.stddev), self.dtype)
        y = ops.add(x, noise)
        return ops.to_numpy(y) if numpy_in else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}
