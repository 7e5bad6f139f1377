"""JAX image kernels: ``resize`` and ``affine_transform``, TensorFlow's pixels exactly.

``jax.image.resize`` and ``jax.scipy.ndimage.map_coordinates`` do not give the spec's
(TensorFlow's) results: the former weighs pixels by a kernel rather than reading TensorFlow's
float32 source positions, the latter has scipy's boundary modes and rounds ties to even. So
both kernels follow the spec's definitions (``unidl/spec/image.py``) with ``jax.numpy``
gathers, each one ``jax.jit`` function of its static arguments:

* ``resize``: the source pixels and weights of each output row and column come from the
  spec's :func:`~unidl.spec.image.resize_table` (host constants of the shapes); bilinear
  interpolates along the width, then the height, in float32 (float64 images in float64);
* ``affine_transform``: each output pixel's input point, mapped by the fill mode and read
  with ``take_along_axis`` (points outside the image read ``fill_value``); ``"nearest"``
  rounds ties away from zero; no gradient flows to ``transforms``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from unidl.spec.image import (
    affine_shape,
    check_fill_mode,
    check_interpolation,
    resize_shape,
    resize_table,
)


def _compute_dtype(dtype):
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


# ---- resize ---------------------------------------------------------------------------------
def _lerp_axis(x, axis: int, n_out: int):
    """Linear interpolation of ``x`` along ``axis`` to ``n_out`` pixels (half-pixel centres)."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    lower, upper, lerp = resize_table(n_in, n_out, "bilinear")
    shape = [1] * 4
    shape[axis] = n_out
    a, b = jnp.take(x, lower, axis=axis), jnp.take(x, upper, axis=axis)
    return a + (b - a) * jnp.asarray(lerp, x.dtype).reshape(shape)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _resize(images, size, interpolation):
    height, width = size
    in_h, in_w = images.shape[1:3]
    if interpolation == "nearest":
        x = images
        if height != in_h:
            x = jnp.take(x, resize_table(in_h, height, "nearest"), axis=1)
        if width != in_w:
            x = jnp.take(x, resize_table(in_w, width, "nearest"), axis=2)
        return x
    x = images.astype(_compute_dtype(images.dtype))
    x = _lerp_axis(_lerp_axis(x, 2, width), 1, height)  # width first, as TensorFlow
    return x.astype(images.dtype)


def resize(images, size, interpolation="bilinear"):
    interpolation = check_interpolation(interpolation)
    _, height, width, _ = resize_shape(tuple(images.shape), size, interpolation)
    return _resize(images, (height, width), interpolation)


# ---- affine_transform -----------------------------------------------------------------------
def _fit(c, n: int, fill_mode: str):
    """Coordinates ``c`` on an axis of ``n`` pixels after ``fill_mode`` (the spec's rules)."""
    if fill_mode == "constant":
        return c
    last = float(n - 1)
    if fill_mode == "nearest" or n <= 1:
        return jnp.clip(c, 0.0, last)
    if fill_mode == "reflect":
        period = 2.0 * n
        t = jnp.floor(-c / period) * period + c
        below = jnp.where(t < -n, t + period, -t - 1.0)
        u = c - jnp.floor(c / period) * period
        above = jnp.where(u >= n, period - 1.0 - u, u)
    else:  # wrap
        below = c + (jnp.floor(-c / last) + 1.0) * n
        above = c - jnp.floor(c / last) * n
    return jnp.clip(jnp.where(c < 0, below, jnp.where(c > last, above, c)), 0.0, last)


def _read(flat, x, y, shape, fill):
    """Pixels of ``flat`` (batch, height * width, channels) at the integer-valued points
    ``x``, ``y`` (batch or 1, height, width); points outside the image read ``fill``."""
    height, width, channels = shape
    xi = jnp.clip(x, 0.0, width - 1.0).astype(jnp.int32)
    yi = jnp.clip(y, 0.0, height - 1.0).astype(jnp.int32)
    index = (yi * width + xi).reshape(-1, height * width, 1)
    v = jnp.take_along_axis(flat, index, axis=1).reshape(-1, height, width, channels)
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return jnp.where(inside[..., None], v, fill)


def _round_half_away(c):
    return jnp.sign(c) * jnp.floor(jnp.abs(c) + 0.5)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _affine(images, transforms, interpolation, fill_mode, fill_value):
    _, height, width, channels = images.shape
    cd = _compute_dtype(images.dtype)
    t = lax.stop_gradient(transforms).astype(cd)
    a0, a1, a2, b0, b1, b2, c0, c1 = (t[:, i].reshape(-1, 1, 1) for i in range(8))
    xs = jnp.arange(width, dtype=cd).reshape(1, 1, width)
    ys = jnp.arange(height, dtype=cd).reshape(1, height, 1)
    k = c0 * xs + c1 * ys + 1.0
    finite = k != 0
    k = jnp.where(finite, k, 1.0)
    px = _fit((a0 * xs + a1 * ys + a2) / k, width, fill_mode)
    py = _fit((b0 * xs + b1 * ys + b2) / k, height, fill_mode)
    flat = images.astype(cd).reshape(-1, height * width, channels)
    fill = jnp.asarray(fill_value, cd)
    shape = (height, width, channels)
    if interpolation == "nearest":
        value = _read(flat, _round_half_away(px), _round_half_away(py), shape, fill)
    else:
        x0, y0 = jnp.floor(px), jnp.floor(py)
        x1, y1 = x0 + 1.0, y0 + 1.0

        def row(yy):
            return ((x1 - px)[..., None] * _read(flat, x0, yy, shape, fill)
                    + (px - x0)[..., None] * _read(flat, x1, yy, shape, fill))

        value = (y1 - py)[..., None] * row(y0) + (py - y0)[..., None] * row(y1)
    return jnp.where(finite[..., None], value, fill).astype(images.dtype)


def affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0):
    interpolation = check_interpolation(interpolation)
    fill_mode = check_fill_mode(fill_mode)
    affine_shape(tuple(images.shape), tuple(transforms.shape), interpolation, fill_mode)
    return _affine(images, transforms, interpolation, fill_mode, float(fill_value))


KERNELS = {
    "resize": resize,
    "affine_transform": affine_transform,
}
