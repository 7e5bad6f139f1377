"""Numeric and image preprocessing layers: Rescaling, Normalization, Resizing, CenterCrop
(Keras 3 names, arguments and conventions; CategoryEncoding is in
:mod:`unidl.layers.encoding`, the vocabulary layers in :mod:`unidl.layers.lookup`).

They compute with :mod:`unidl.ops`, so they run inside models on every backend and are
differentiated like any layer. Image layers take channels-last ``(batch, height, width,
channels)`` batches (``data_format="channels_first"`` is transposed), or single ``(height,
width, channels)`` images; given a NumPy array on a backend whose tensors are not NumPy
arrays, they return a NumPy array (so they also work in a data pipeline's ``map``).
``Resizing`` and ``CenterCrop`` use the ``resize`` op (``tf.image.resize`` semantics, see
``unidl/spec/image.py``). ``Normalization.adapt`` reads NumPy arrays, tensors, or any
iterable of batches (arrays or ``(x, ...)`` tuples), such as a ``unidl.data.Dataset``.

Example:
    >>> import numpy as np, unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     norm = layers.Normalization()
    ...     norm.adapt(np.array([[0.0, 10.0], [2.0, 30.0]]))
    ...     ops.to_numpy(norm(np.array([[1.0, 20.0]]))).tolist()
    [[0.0, 0.0]]
"""

from __future__ import annotations

import numpy as np

from unidl import ops
from unidl.layers.base import Layer, LayerError
from unidl.layers.core import normalize_data_format

__all__ = ["Rescaling", "Normalization", "Resizing", "CenterCrop"]

#: Keras's ``backend.epsilon()``, the floor of Normalization's standard deviation
EPSILON = 1e-7


# ---- helpers shared with unidl.layers.augmentation -------------------------------------------
class ImageBatch:
    """A layer's image inputs as a channels-last batch (``x``), and :meth:`restore` putting a
    result back into the inputs' form: unbatched, channels-first, NumPy."""

    def __init__(self, layer, inputs, data_format="channels_last", dtype=None):
        self.numpy = isinstance(inputs, np.ndarray) and not ops.is_tensor(inputs)
        x = ops.convert_to_tensor(inputs)
        shape = tuple(ops.shape(x))
        if len(shape) not in (3, 4):
            raise LayerError(layer, f"expected images of shape (height, width, channels) or "
                                    f"(batch, height, width, channels), got shape {shape}")
        self.unbatched = len(shape) == 3
        self.channels_first = data_format == "channels_first"
        if self.unbatched:
            x = ops.expand_dims(x, 0)
        if self.channels_first:
            x = ops.transpose(x, (0, 2, 3, 1))
        if dtype is not None and ops.dtype(x) != dtype:
            x = ops.cast(x, dtype)
        self.x = x

    @property
    def size(self) -> tuple:
        """``(height, width)`` of the images (static ints)."""
        return tuple(ops.shape(self.x)[1:3])

    def restore(self, y):
        """``y`` (a channels-last batch) in the form the inputs came in."""
        if self.channels_first:
            y = ops.transpose(y, (0, 3, 1, 2))
        if self.unbatched:
            y = ops.squeeze(y, 0)
        return ops.to_numpy(y) if self.numpy else y


def image_output_shape(input_shape, data_format, height=None, width=None) -> tuple:
    """``input_shape`` with its rows and columns replaced by ``height``, ``width``."""
    out = list(input_shape)
    rows = len(out) - (2 if data_format == "channels_first" else 3)
    if height is not None:
        out[rows], out[rows + 1] = height, width
    return tuple(out)


def positive_int(layer_name: str, name: str, value) -> int:
    """``value`` as an int >= 1; ValueError naming the layer otherwise."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = 0
    if v < 1 or v != value:
        raise ValueError(f"{layer_name}: expected {name} as a positive int, got {value!r}")
    return v


def aspect_crop_box(height: int, width: int, target_h: int, target_w: int) -> tuple:
    """``(top, left, crop_h, crop_w)``: the largest centred window of a ``height x width``
    image with the aspect ratio of ``target_h x target_w`` (Keras's ``smart_resize``)."""
    crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
    crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
    return int(float(height - crop_h) / 2), int(float(width - crop_w) / 2), crop_h, crop_w


def crop(x, top: int, left: int, height: int, width: int):
    """``x[:, top:top + height, left:left + width, :]`` (static bounds; any batch size)."""
    rows, cols = tuple(ops.shape(x)[1:3])
    if (top, height) != (0, rows):
        x = ops.split(x, [top, top + height], axis=1)[1]
    if (left, width) != (0, cols):
        x = ops.split(x, [left, left + width], axis=2)[1]
    return x


def batches_of(data):
    """The batches of ``data`` for ``adapt``: a NumPy array or a tensor (of any backend) is
    one batch; any other iterable (a list of arrays, a generator, a dataset) yields batches,
    an ``(x, ...)`` tuple giving its ``x``."""
    if isinstance(data, np.ndarray) or ops.is_tensor(data) or (
            hasattr(data, "shape") and hasattr(data, "dtype")):
        yield data
        return
    if not hasattr(data, "__iter__"):
        raise TypeError(f"adapt expects a NumPy array, a tensor or an iterable of batches, "
                        f"got {type(data).__name__}")
    for batch in data:
        if isinstance(batch, tuple) and batch:
            batch = batch[0]
        elif isinstance(batch, dict):
            raise TypeError("adapt expects batches of arrays or (x, ...) tuples, got a dict")
        yield batch


def host_array(x) -> np.ndarray:
    """``x`` (a NumPy array, list or any backend's tensor) as a NumPy array."""
    return x if isinstance(x, np.ndarray) else np.asarray(ops.to_numpy(x))


# ---- Rescaling -------------------------------------------------------------------------------
class Rescaling(Layer):
    """``inputs * scale + offset`` in the layer's dtype (e.g. ``scale=1/255`` maps pixel
    values to ``[0, 1]``; ``scale=1/127.5, offset=-1`` to ``[-1, 1]``). ``scale`` and
    ``offset`` are numbers or per-channel sequences (broadcast against the last axis).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     ops.to_numpy(layers.Rescaling(1 / 127.5, offset=-1)(np.array([0, 255]))).tolist()
        [-1.0, 1.0]
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _number_or_list(scale, "Rescaling", "scale")
        self.offset = _number_or_list(offset, "Rescaling", "offset")

    def call(self, inputs):
        numpy_in = isinstance(inputs, np.ndarray) and not ops.is_tensor(inputs)
        x = ops.convert_to_tensor(inputs)
        if ops.dtype(x) != self.dtype:
            x = ops.cast(x, self.dtype)
        scale = ops.convert_to_tensor(self.scale, self.dtype)
        offset = ops.convert_to_tensor(self.offset, self.dtype)
        y = ops.add(ops.multiply(x, scale), offset)
        return ops.to_numpy(y) if numpy_in else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _number_or_list(value, layer: str, name: str):
    arr = np.asarray(value, np.float64)
    if arr.ndim > 1 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{layer}: expected {name} as a finite number or a sequence of "
                         f"numbers, got {value!r}")
    return float(arr) if arr.ndim == 0 else arr.tolist()


# ---- Normalization ---------------------------------------------------------------------------
class Normalization(Layer):
    """Standardize features: ``(x - mean) / max(sqrt(variance), 1e-7)`` (with ``invert=True``
    the inverse, ``mean + x * max(sqrt(variance), 1e-7)``), as Keras.

    ``axis`` names the axes that keep their own statistics (default: the last, one mean per
    feature; ``None``: one mean for everything). Give ``mean`` and ``variance`` (numbers or
    arrays broadcast against the kept axes), or learn them with :meth:`adapt`, which stores
    them in the non-trainable weights ``mean`` and ``variance`` (so they are saved with the
    model's weights).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     layer = layers.Normalization(mean=2.0, variance=4.0)
        ...     ops.to_numpy(layer(np.array([[0.0, 4.0]]))).tolist()
        [[-1.0, 1.0]]
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        self.axis = (int(axis),) if isinstance(axis, (int, np.integer)) else tuple(
            int(a) for a in axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization: give both mean and variance or neither, got "
                             f"mean={mean!r}, variance={variance!r}")
        self.input_mean = None if mean is None else np.asarray(mean, np.float64).tolist()
        self.input_variance = None if variance is None else np.asarray(
            variance, np.float64).tolist()
        if mean is not None and np.shape(mean) != np.shape(variance):
            raise ValueError(f"Normalization: mean and variance need the same shape, got "
                             f"{np.shape(mean)} and {np.shape(variance)}")
        self.invert = bool(invert)
        self._adapted = None  # (mean, variance) learned before the layer was built

    def _keep_axes(self, ndim: int) -> tuple:
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise LayerError(self, f"axis {self.axis} is out of range for inputs of rank "
                                   f"{ndim}")
        return tuple(sorted(a % ndim for a in self.axis))

    def build(self, input_shape):
        shape = tuple(input_shape)
        self._keep = self._keep_axes(len(shape))
        if any(shape[a] is None for a in self._keep):
            raise LayerError(self, f"the kept axes {self.axis} need known sizes, got inputs of "
                                   f"shape {shape}")
        self._stats_shape = tuple(int(shape[a]) for a in self._keep)
        self._broadcast = tuple(int(shape[a]) if a in self._keep else 1
                                for a in range(len(shape)))
        if self.input_mean is None:
            self.mean = self.add_weight(self._stats_shape, "zeros", trainable=False,
                                        name="mean")
            self.variance = self.add_weight(self._stats_shape, "ones", trainable=False,
                                            name="variance")
            if self._adapted is not None:
                self._assign(*self._adapted)
        self.built = True

    def _assign(self, mean, variance):
        self.mean.assign(np.asarray(mean, self.dtype).reshape(self._stats_shape))
        self.variance.assign(np.asarray(variance, self.dtype).reshape(self._stats_shape))

    def adapt(self, data) -> None:
        """Learn ``mean`` and ``variance`` from ``data`` (a NumPy array or tensor, or an
        iterable of batches: arrays or ``(x, ...)`` tuples), over every axis but the kept
        ones, in float64 on the host (batches merged with Chan's parallel formula)."""
        if self.input_mean is not None:
            raise LayerError(self, "was given mean and variance: adapt would ignore them")
        count, mean, m2, shape, first = 0, None, None, None, None
        for batch in batches_of(data):
            x = host_array(batch).astype(np.float64)
            first = x.shape if first is None else first
            keep = self._keep_axes(x.ndim)
            if shape is not None and tuple(x.shape[a] for a in keep) != shape:
                raise LayerError(self, f"adapt got batches whose kept axes differ: "
                                       f"{shape} and {tuple(x.shape[a] for a in keep)}")
            shape = tuple(x.shape[a] for a in keep)
            reduce = tuple(a for a in range(x.ndim) if a not in keep)
            n = int(np.prod([x.shape[a] for a in reduce], dtype=np.int64))
            if n == 0:
                continue
            b_mean = x.mean(axis=reduce)
            b_m2 = ((x - x.mean(axis=reduce, keepdims=True)) ** 2).sum(axis=reduce)
            if count == 0:
                count, mean, m2 = n, b_mean, b_m2
                continue
            delta = b_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + b_m2 + delta ** 2 * (count * n / total)
            count = total
        if count == 0:
            raise LayerError(self, "adapt got no data")
        if not self.built:  # (as Keras: built for the data's shape, any batch size)
            self._adapted = (mean, m2 / count)
            self.build((None,) + tuple(first[1:]))
            return
        if tuple(np.shape(mean)) != self._stats_shape:
            raise LayerError(self, f"was built for statistics of shape {self._stats_shape}, "
                                   f"adapt got data giving {tuple(np.shape(mean))}")
        self._assign(mean, m2 / count)

    def _stats(self):
        if self.input_mean is None:
            return self.mean, self.variance
        shape = self._broadcast
        keep_sizes = self._stats_shape

        def expand(v):
            v = np.asarray(v, np.float64)
            if v.ndim:  # aligned with the kept axes from the right, as Keras
                full = [1] * len(keep_sizes)
                full[len(full) - v.ndim:] = v.shape
                v = v.reshape(full)
            v = np.array(np.broadcast_to(v, keep_sizes))
            return ops.convert_to_tensor(v.reshape(shape), self.dtype)

        return expand(self.input_mean), expand(self.input_variance)

    def call(self, inputs):
        numpy_in = isinstance(inputs, np.ndarray) and not ops.is_tensor(inputs)
        x = ops.convert_to_tensor(inputs)
        if ops.dtype(x) != self.dtype:
            x = ops.cast(x, self.dtype)
        if len(ops.shape(x)) != len(self._broadcast):
            raise LayerError(self, f"was built for inputs of rank {len(self._broadcast)}, got "
                                   f"shape {tuple(ops.shape(x))}")
        mean, variance = self._stats()
        if self.input_mean is None:  # (weights made before the dtype changed: cast them)
            mean = ops.reshape(ops.cast(mean, self.dtype), self._broadcast)
            variance = ops.reshape(ops.cast(variance, self.dtype), self._broadcast)
        std = ops.maximum(ops.sqrt(variance), EPSILON)
        if self.invert:
            y = ops.add(mean, ops.multiply(x, std))
        else:
            y = ops.divide(ops.subtract(x, mean), std)
        return ops.to_numpy(y) if numpy_in else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        axis = None if not self.axis else (self.axis[0] if len(self.axis) == 1 else
                                           list(self.axis))
        return {**super().get_config(), "axis": axis, "mean": self.input_mean,
                "variance": self.input_variance, "invert": self.invert}


# ---- Resizing, CenterCrop -------------------------------------------------------------------
def _interpolation(layer: str, value) -> str:
    v = str(value).lower()
    if v not in ("bilinear", "nearest"):
        raise ValueError(f"{layer}: expected interpolation 'bilinear' or 'nearest', got "
                         f"{value!r}")
    return v


class Resizing(Layer):
    """Resize images to ``(height, width)`` as ``tf.image.resize`` with ``antialias=False``
    (the ``resize`` op: half-pixel centres, ``"bilinear"`` or ``"nearest"``). With
    ``crop_to_aspect_ratio=True`` the largest centred window with the target's aspect ratio
    is cut out first, so the images are not distorted (Keras's rule).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.Resizing(2, 2)(np.arange(16.0).reshape(1, 4, 4, 1))
        ...     ops.to_numpy(y)[0, :, :, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = positive_int("Resizing", "height", height)
        self.width = positive_int("Resizing", "width", width)
        self.interpolation = _interpolation("Resizing", interpolation)
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs):
        images = ImageBatch(self, inputs, self.data_format)
        x = images.x
        if self.crop_to_aspect_ratio:
            x = crop(x, *aspect_crop_box(*images.size, self.height, self.width))
        y = ops.resize(x, (self.height, self.width), self.interpolation)
        if ops.dtype(y) != self.dtype:
            y = ops.cast(y, self.dtype)
        return images.restore(y)

    def compute_output_shape(self, input_shape):
        return image_output_shape(input_shape, self.data_format, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "data_format": self.data_format}


class CenterCrop(Layer):
    """Cut the centred ``height x width`` window out of each image (the extra row or column
    of an odd difference goes to the bottom/right, as Keras). An image smaller than the
    target in either dimension is instead cropped to the target's aspect ratio and resized
    (bilinear), as Keras's ``smart_resize``.

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     y = layers.CenterCrop(2, 2)(np.arange(16.0).reshape(1, 4, 4, 1))
        ...     ops.to_numpy(y)[0, :, :, 0].tolist()
        [[5.0, 6.0], [9.0, 10.0]]
    """

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = positive_int("CenterCrop", "height", height)
        self.width = positive_int("CenterCrop", "width", width)
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs):
        images = ImageBatch(self, inputs, self.data_format, self.dtype)
        h, w = images.size
        if h >= self.height and w >= self.width:
            y = crop(images.x, (h - self.height) // 2, (w - self.width) // 2, self.height,
                     self.width)
        else:
            x = crop(images.x, *aspect_crop_box(h, w, self.height, self.width))
            y = ops.resize(x, (self.height, self.width), "bilinear")
        return images.restore(y)

    def compute_output_shape(self, input_shape):
        return image_output_shape(input_shape, self.data_format, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "data_format": self.data_format}
