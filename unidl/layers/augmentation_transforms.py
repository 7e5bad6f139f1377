"""Random geometric augmentation: RandomRotation, RandomTranslation, RandomZoom (Keras 3
names, arguments and conventions). Each draws one projective transform per image and applies
the ``affine_transform`` op (TensorFlow's ``ImageProjectiveTransformV3``: see
``unidl/spec/image.py``), so the images match Keras's on TensorFlow for the same parameters.
The parameters are drawn as for every augmentation layer (on the host, portable across
backends; see :mod:`unidl.layers.augmentation`); only ``training=True`` transforms.

Example:
    >>> import numpy as np, unidl
    >>> from unidl import layers
    >>> with unidl.use_backend("numpy"):
    ...     zoom = layers.RandomZoom((0.5, 0.5), fill_mode="constant")  # always zoom out 1.5x
    ...     y = zoom(np.ones((1, 5, 5, 1)), training=True)
    ...     float(y[0, 2, 2, 0]), float(y[0, 0, 0, 0])  # the centre stays, the border fills
    (1.0, 0.0)
"""

from __future__ import annotations

import math

from unidl import ops
from unidl.layers.augmentation import _choice, _factor_pair, _RandomLayer, _xp
from unidl.layers.core import normalize_data_format
from unidl.layers.preprocessing import ImageBatch

__all__ = ["RandomRotation", "RandomTranslation", "RandomZoom"]

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("bilinear", "nearest")


class _AffineLayer(_RandomLayer):
    """Draws one projective transform per image and applies ``ops.affine_transform``."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        name = type(self).__name__
        self.fill_mode = _choice(name, "fill_mode", fill_mode, _FILL_MODES)
        self.interpolation = _choice(name, "interpolation", interpolation, _INTERPOLATIONS)
        self.fill_value = float(fill_value)
        self.data_format = normalize_data_format(data_format)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        images = ImageBatch(self, inputs, self.data_format, self.dtype)
        h, w = images.size
        transforms = self._transforms(images.x, int(h), int(w))
        y = ops.affine_transform(images.x, transforms, self.interpolation, self.fill_mode,
                                 self.fill_value)
        return images.restore(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value,
                "data_format": self.data_format}


def _affine_rows(xp, a0, a1, a2, b0, b1, b2):
    """``(batch, 8)`` transforms from six ``(batch,)`` columns (no projective part)."""
    zero = xp.zeros_like(a0)
    return xp.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


class RandomRotation(_AffineLayer):
    """Rotate each image about its centre by a random angle (Keras's transform: ``factor``
    is a fraction of a full turn, a number ``f`` meaning ``[-f, f]``, or a ``(lower,
    upper)`` pair; positive angles turn counter-clockwise). Pixels coming from outside the
    image follow ``fill_mode`` (``"reflect"``, ``"wrap"``, ``"constant"`` with
    ``fill_value``, ``"nearest"``); ``interpolation`` is ``"bilinear"`` or ``"nearest"``.

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     rot = layers.RandomRotation(0.1, seed=0)
        ...     rot(np.ones((2, 5, 5, 1)), training=True).shape
        (2, 5, 5, 1)
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor_pair("RandomRotation", factor, -1.0, 1.0)

    def _transforms(self, x, h, w):
        low, high = self.factor
        angle = self._uniform(x, 1, 2 * math.pi * low, 2 * math.pi * high)
        xp = _xp(angle)
        angle = xp.reshape(angle, (-1,))
        cos, sin = xp.cos(angle), xp.sin(angle)
        cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
        a2 = xp.add(xp.subtract(cx, xp.multiply(cos, cx)), xp.multiply(sin, cy))
        b2 = xp.subtract(xp.subtract(cy, xp.multiply(sin, cx)), xp.multiply(cos, cy))
        return _affine_rows(xp, cos, xp.negative(sin), a2, sin, cos, b2)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


class RandomTranslation(_AffineLayer):
    """Shift each image by a random fraction of its height and width: ``height_factor``
    and ``width_factor`` are numbers ``f`` (meaning ``[-f, f]``) or ``(lower, upper)`` pairs
    in ``[-1, 1]``; positive values move the content down and right (Keras's convention).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     shift = layers.RandomTranslation(0.2, 0.2, fill_mode="constant", seed=0)
        ...     shift(np.ones((2, 5, 5, 1)), training=True).shape
        (2, 5, 5, 1)
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _factor_pair("RandomTranslation", height_factor, -1.0, 1.0,
                                          "height_factor")
        self.width_factor = _factor_pair("RandomTranslation", width_factor, -1.0, 1.0,
                                         "width_factor")

    def _transforms(self, x, h, w):
        u = self._uniform(x, 2)
        xp = _xp(u)
        du, dv = (xp.reshape(p, (-1,)) for p in xp.split(u, 2, axis=1))
        (hl, hh), (wl, wh) = self.height_factor, self.width_factor
        dy = xp.multiply(xp.add(xp.multiply(du, hh - hl), hl), float(h))
        dx = xp.multiply(xp.add(xp.multiply(dv, wh - wl), wl), float(w))
        one = xp.add(xp.zeros_like(dx), 1.0)
        zero = xp.zeros_like(dx)
        return _affine_rows(xp, one, zero, xp.negative(dx), zero, one, xp.negative(dy))

    def get_config(self):
        return {**super().get_config(), "height_factor": list(self.height_factor),
                "width_factor": list(self.width_factor)}


class RandomZoom(_AffineLayer):
    """Zoom each image about its centre by a random factor: ``1 + u`` with ``u`` uniform in
    ``height_factor`` (a number ``f`` meaning ``[-f, f]``, or a ``(lower, upper)`` pair in
    ``(-1, 1]``); positive values zoom out, negative ones in (Keras's convention).
    ``width_factor=None`` keeps the aspect ratio (one factor for both axes).

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     zoom = layers.RandomZoom(0.3, seed=0)
        ...     zoom(np.ones((2, 5, 5, 1)), training=True).shape
        (2, 5, 5, 1)
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _zoom_pair(height_factor, "height_factor")
        self.width_factor = None if width_factor is None else _zoom_pair(width_factor,
                                                                         "width_factor")

    def _transforms(self, x, h, w):
        u = self._uniform(x, 2)
        xp = _xp(u)
        uh, uw = (xp.reshape(p, (-1,)) for p in xp.split(u, 2, axis=1))
        hl, hh = self.height_factor
        zh = xp.add(xp.multiply(uh, hh - hl), 1.0 + hl)
        if self.width_factor is None:
            zw = zh
        else:
            wl, wh = self.width_factor
            zw = xp.add(xp.multiply(uw, wh - wl), 1.0 + wl)
        zero = xp.zeros_like(zh)
        x_off = xp.multiply(xp.subtract(1.0, zw), (w - 1) / 2.0)
        y_off = xp.multiply(xp.subtract(1.0, zh), (h - 1) / 2.0)
        return _affine_rows(xp, zw, zero, x_off, zero, zh, y_off)

    def get_config(self):
        return {**super().get_config(), "height_factor": list(self.height_factor),
                "width_factor": None if self.width_factor is None else list(
                    self.width_factor)}


def _zoom_pair(factor, name):
    pair = _factor_pair("RandomZoom", factor, -1.0, 1.0, name)
    if pair[0] <= -1.0:
        raise ValueError(f"RandomZoom: expected {name} within (-1, 1], got {factor!r}")
    return pair
