"""Image ops on channels-last batches ``(batch, height, width, channels)``: ``resize`` and
``affine_transform``. Both follow TensorFlow's kernels exactly, so that a model resized or
augmented with unidl sees the pixels Keras (on TensorFlow) would give it.

``resize(images, size, interpolation="bilinear")`` is ``tf.image.resize`` with
``antialias=False`` (half-pixel centres; Keras's ``Resizing``). For each spatial axis with
``n_in`` input and ``n_out`` output pixels, ``scale = n_in / n_out``, and output pixel ``o``
reads, with every step rounded to float32 as TensorFlow computes it:

* ``"bilinear"``: the source coordinate ``s = (o + 0.5) * scale - 0.5``; ``lower =
  max(floor(s), 0)``, ``upper = min(ceil(s), n_in - 1)``, ``lerp = s - floor(s)``; the value
  is ``a + (b - a) * lerp`` with ``a``, ``b`` the pixels at ``lower`` and ``upper``,
  interpolated along the width first, then along the height;
* ``"nearest"``: the pixel at ``min(max(floor((o + 0.5) * scale), 0), n_in - 1)``.

``affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant",
fill_value=0.0)`` is TensorFlow's ``ImageProjectiveTransformV3`` (Keras's
``ops.image.affine_transform`` with the TensorFlow backend). ``transforms`` holds 8 numbers
``[a0, a1, a2, b0, b1, b2, c0, c1]`` per image (shape ``(batch, 8)``, or ``(1, 8)`` for every
image), mapping each *output* pixel ``(x, y)`` (column, row) to the *input* point::

    k = c0 * x + c1 * y + 1
    x_in = (a0 * x + a1 * y + a2) / k        y_in = (b0 * x + b1 * y + b2) / k

(``k == 0`` gives ``fill_value``). Each input coordinate ``c`` on an axis of ``n`` pixels is
then mapped by ``fill_mode`` and clamped to ``[0, n - 1]``:

* ``"reflect"``: mirrored about the outer pixel edges, period ``2 n`` (``dcba|abcd|dcba``);
* ``"wrap"``: TensorFlow's rule, ``c + n * (floor(-c / (n - 1)) + 1)`` for ``c < 0`` and
  ``c - n * floor(c / (n - 1))`` for ``c > n - 1`` (a period-``n`` wrap for points within
  about one image of the border, as TensorFlow and scipy's legacy ``"wrap"``);
* ``"nearest"``: clamped (``aaaa|abcd|dddd``);
* ``"constant"``: kept as it is.

For ``n == 1`` every mode but ``"constant"`` maps to ``0``. The value is then read at the
point, every pixel outside the image reading ``fill_value``: ``"nearest"`` takes the pixel
at the rounded coordinates (ties away from zero); ``"bilinear"`` blends the four pixels
around the point, ``(y1 - y) * ((x1 - x) * v00 + (x - x0) * v01) + (y - y0) * ((x1 - x) *
v10 + (x - x0) * v11)`` with ``x0 = floor(x)``, ``x1 = x0 + 1`` (likewise ``y``), so that with
``"constant"`` the border pixels blend into ``fill_value`` over one pixel.
Coordinates are computed in float32 (float64 for float64 images); half-precision images
are interpolated in float32. There is no gradient with respect to ``transforms`` (as in
TensorFlow); the gradient with respect to ``images`` is the exact adjoint of the sampling.

Both ops are composites written from ``take``/``take_along_axis`` and elementwise ops, so they
run (and differentiate) on every backend; TensorFlow gives native kernels
(``ResizeBilinear``/``ResizeNearestNeighbor``, ``ImageProjectiveTransformV3``).

Example:
    >>> import numpy as np, unidl
    >>> from unidl import ops
    >>> with unidl.use_backend("numpy"):
    ...     img = np.arange(4.0).reshape(1, 2, 2, 1)
    ...     shift = np.array([[1.0, 0, 1.0, 0, 1.0, 0, 0, 0]])  # read one column to the right
    ...     ops.to_numpy(ops.affine_transform(img, shift))[0, :, :, 0].tolist()
    [[1.0, 0.0], [3.0, 0.0]]
"""

from __future__ import annotations

import math
import struct

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.spec import _textbook as T
from unidl.spec import samples as S
from unidl.spec.core import COMPOSITE, Sample, ShapeMismatch, defop

__all__ = ["INTERPOLATIONS", "FILL_MODES", "check_interpolation", "check_fill_mode",
           "resize_shape", "affine_shape", "resize_table"]

FLOATS = _dt.FLOAT_DTYPES
INTERPOLATIONS = ("bilinear", "nearest")
FILL_MODES = ("reflect", "wrap", "constant", "nearest")


# ---- argument checks and shape rules (shared by kernels) -----------------------------------
def check_interpolation(value) -> str:
    """``value`` as one of :data:`INTERPOLATIONS` (case-insensitive); ValueError otherwise."""
    v = str(value).lower()
    if v not in INTERPOLATIONS:
        raise ValueError(f"expected interpolation in {INTERPOLATIONS}, got {value!r}")
    return v


def check_fill_mode(value) -> str:
    """``value`` as one of :data:`FILL_MODES` (case-insensitive); ValueError otherwise."""
    v = str(value).lower()
    if v not in FILL_MODES:
        raise ValueError(f"expected fill_mode in {FILL_MODES}, got {value!r}")
    return v


def _image_shape(images) -> tuple:
    images = tuple(images)
    if len(images) != 4:
        raise ShapeMismatch(f"expected images of shape (batch, height, width, channels), got "
                            f"{images}")
    return images


def resize_shape(images, size, interpolation="bilinear"):
    """``(batch, height, width, channels)`` for ``size = (height, width)``."""
    batch, _, _, channels = _image_shape(images)
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ShapeMismatch(f"expected size as (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ShapeMismatch(f"expected a positive output size, got {tuple(size)}")
    try:
        check_interpolation(interpolation)
    except ValueError as exc:
        raise ShapeMismatch(str(exc)) from None
    return (batch, height, width, channels)


def affine_shape(images, transforms, interpolation="bilinear", fill_mode="constant",
                 fill_value=0.0):
    """The shape of ``images``, after checking ``transforms`` is ``(batch, 8)`` or ``(1, 8)``."""
    images = _image_shape(images)
    transforms = tuple(transforms)
    batch = images[0]
    rows_ok = batch is None or transforms[:1] and transforms[0] in (1, batch, None)
    if len(transforms) != 2 or transforms[1] not in (8, None) or not rows_ok:
        raise ShapeMismatch(f"expected transforms of shape ({batch}, 8) or (1, 8), got "
                            f"{transforms}")
    try:
        check_interpolation(interpolation)
        check_fill_mode(fill_mode)
    except ValueError as exc:
        raise ShapeMismatch(str(exc)) from None
    return images


# ---- resize: composite --------------------------------------------------------------------------
def resize_table(n_in: int, n_out: int, interpolation: str):
    """The source pixels of each of ``n_out`` output pixels along one axis, in float32 as
    TensorFlow computes them: ``(lower, upper, lerp)`` arrays for ``"bilinear"``, the index
    array for ``"nearest"``."""
    scale = np.float32(n_in) / np.float32(n_out)
    centres = np.arange(n_out, dtype=np.float32) + np.float32(0.5)
    if interpolation == "nearest":
        src = np.floor(centres * scale).astype(np.int64)
        return np.clip(src, 0, n_in - 1)
    src = centres * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), n_in - 1)
    return lower, upper, (src - floor).astype(np.float32)


def _lerp_axis(x, axis: int, n_out: int):
    """Linear interpolation of ``x`` along ``axis`` to ``n_out`` pixels (half-pixel centres)."""
    n_in = int(ops.shape(x)[axis])
    if n_in == n_out:
        return x
    lower, upper, lerp = resize_table(n_in, n_out, "bilinear")
    shape = [1] * 4
    shape[axis] = n_out
    w = ops.reshape(ops.convert_to_tensor(lerp, ops.dtype(x)), tuple(shape))
    a = ops.take(x, ops.convert_to_tensor(lower, "int32"), axis=axis)
    b = ops.take(x, ops.convert_to_tensor(upper, "int32"), axis=axis)
    return ops.add(a, ops.multiply(ops.subtract(b, a), w))


def _resize_impl(images, size, interpolation="bilinear"):
    interpolation = check_interpolation(interpolation)
    shape = resize_shape(ops.shape(images), size, interpolation)
    _, height, width, _ = shape
    in_h, in_w = (int(d) for d in ops.shape(images)[1:3])
    if interpolation == "nearest":
        x = images
        if height != in_h:
            x = ops.take(x, ops.convert_to_tensor(resize_table(in_h, height, "nearest"),
                                                  "int32"), axis=1)
        if width != in_w:
            x = ops.take(x, ops.convert_to_tensor(resize_table(in_w, width, "nearest"),
                                                  "int32"), axis=2)
        return x
    dtype = ops.dtype(images)
    x = images if dtype in ("float32", "float64") else ops.cast(images, "float32")
    x = _lerp_axis(_lerp_axis(x, 2, width), 1, height)  # width first, as TensorFlow
    return x if ops.dtype(x) == dtype else ops.cast(x, dtype)


# ---- resize: float64 reference ------------------------------------------------------------------
def _f32(v: float) -> float:
    """``v`` rounded to the nearest float32 (IEEE single precision, ties to even)."""
    return struct.unpack("f", struct.pack("f", v))[0]


def _source_pixels(o: int, n_in: int, n_out: int, interpolation: str):
    """Output pixel ``o``'s source pixels and weight, each step rounded to float32."""
    scale = _f32(float(n_in) / float(n_out))
    centre = _f32(_f32(o + 0.5) * scale)
    if interpolation == "nearest":
        i = min(max(math.floor(centre), 0), n_in - 1)
        return i, i, 0.0
    s = _f32(centre - 0.5)
    lo = math.floor(s)
    return max(lo, 0), min(math.ceil(s), n_in - 1), _f32(s - lo)


def _resize_reference(images, size, interpolation="bilinear"):
    """Every output pixel from the definition in the module docstring."""
    batch, in_h, in_w, channels = np.shape(images)
    height, width = (int(s) for s in size)
    read = T.reader(images)
    rows = [_source_pixels(o, in_h, height, interpolation) for o in range(height)]
    cols = [_source_pixels(o, in_w, width, interpolation) for o in range(width)]

    def value(idx):
        b, y, x, c = idx
        y0, y1, ly = rows[y]
        x0, x1, lx = cols[x]
        top = read((b, y0, x0, c)) + (read((b, y0, x1, c)) - read((b, y0, x0, c))) * lx
        bottom = read((b, y1, x0, c)) + (read((b, y1, x1, c)) - read((b, y1, x0, c))) * lx
        return top + (bottom - top) * ly

    return T.build((batch, height, width, channels), value, np.float64)


def _resize_samples(dtype, rng):
    def img(shape):
        return S.rand(rng, shape, dtype, -1.0, 1.0)

    out = []
    for interpolation in INTERPOLATIONS:
        out += [
            Sample((img((2, 4, 5, 3)), (7, 9), interpolation), name=f"{interpolation},up"),
            Sample((img((2, 9, 8, 2)), (4, 3), interpolation), name=f"{interpolation},down"),
            Sample((img((1, 6, 6, 1)), (9, 4), interpolation), name=f"{interpolation},mixed"),
            Sample((img((1, 5, 3, 2)), (5, 3), interpolation), name=f"{interpolation},same"),
            Sample((img((1, 1, 4, 2)), (3, 2), interpolation), name=f"{interpolation},one_row"),
            Sample((img((0, 3, 4, 2)), (6, 2), interpolation), name=f"{interpolation},empty",
                   grad=False),
        ]
    return out


defop("resize", "images, size, interpolation='bilinear'", kind=COMPOSITE, impl=_resize_impl,
      tensors="images", float_inputs=True, shape_rule=resize_shape,
      reference=_resize_reference, samples=_resize_samples, dtypes=FLOATS, tol="contraction",
      doc="""Resize channels-last images to ``size = (height, width)``, as
      ``tf.image.resize`` with ``antialias=False`` (half-pixel centres; ``"bilinear"`` or
      ``"nearest"``): see unidl/spec/image.py for the exact definition. Integer images are
      converted to float32.""")


# ---- affine_transform: composite ----------------------------------------------------------------
def _fit_coordinate(c, n: int, fill_mode: str):
    """Map coordinates ``c`` on an axis of ``n`` pixels by ``fill_mode`` (TensorFlow's rule)."""
    if fill_mode == "constant":
        return c
    last = float(n - 1)
    if fill_mode == "nearest" or n <= 1:
        return ops.clip(c, 0.0, last)
    if fill_mode == "reflect":
        period = 2.0 * n
        t = ops.add(ops.multiply(ops.floor(ops.divide(ops.negative(c), period)), period), c)
        below = ops.where(ops.less(t, -float(n)), ops.add(t, period),
                          ops.subtract(ops.negative(t), 1.0))
        u = ops.subtract(c, ops.multiply(ops.floor(ops.divide(c, period)), period))
        above = ops.where(ops.greater_equal(u, float(n)), ops.subtract(period - 1.0, u), u)
    else:  # wrap
        below = ops.add(c, ops.multiply(ops.add(ops.floor(ops.divide(ops.negative(c), last)),
                                                1.0), float(n)))
        above = ops.subtract(c, ops.multiply(ops.floor(ops.divide(c, last)), float(n)))
    mapped = ops.where(ops.less(c, 0.0), below, ops.where(ops.greater(c, last), above, c))
    return ops.clip(mapped, 0.0, last)


def _inside(x, y, height: int, width: int):
    """Whether the points ``(x, y)`` lie in ``[0, width - 1] x [0, height - 1]``."""
    return ops.logical_and(
        ops.logical_and(ops.greater_equal(x, 0.0), ops.less_equal(x, float(width - 1))),
        ops.logical_and(ops.greater_equal(y, 0.0), ops.less_equal(y, float(height - 1))))


def _read(flat, x, y, height: int, width: int, channels: int, fill):
    """Pixels of ``flat`` (batch, height * width, channels) at integer-valued coordinates
    ``x``, ``y`` (batch', height, width); points outside the image read ``fill``."""
    xi = ops.cast(ops.clip(x, 0.0, float(width - 1)), "int32")
    yi = ops.cast(ops.clip(y, 0.0, float(height - 1)), "int32")
    index = ops.reshape(ops.add(ops.multiply(yi, width), xi), (-1, height * width, 1))
    v = ops.reshape(ops.take_along_axis(flat, index, axis=1), (-1, height, width, channels))
    return ops.where(ops.expand_dims(_inside(x, y, height, width), -1), v, fill)


def _round_half_away(c):
    """``c`` rounded to the nearest integer, ties away from zero (C's ``round``)."""
    return ops.multiply(ops.sign(c), ops.floor(ops.add(ops.abs(c), 0.5)))


def _affine_impl(images, transforms, interpolation="bilinear", fill_mode="constant",
                 fill_value=0.0):
    interpolation = check_interpolation(interpolation)
    fill_mode = check_fill_mode(fill_mode)
    affine_shape(ops.shape(images), ops.shape(transforms), interpolation, fill_mode)
    _, height, width, channels = (None if d is None else int(d) for d in ops.shape(images))
    dtype = ops.dtype(images)
    cd = "float64" if dtype == "float64" else "float32"  # coordinates and interpolation
    x = images if dtype == cd else ops.cast(images, cd)
    t = ops.cast(ops.stop_gradient(transforms), cd)
    a0, a1, a2, b0, b1, b2, c0, c1 = (ops.reshape(p, (-1, 1, 1)) for p in ops.split(t, 8, 1))
    xs = ops.reshape(ops.arange(width, dtype=cd), (1, 1, width))
    ys = ops.reshape(ops.arange(height, dtype=cd), (1, height, 1))
    k = ops.add(ops.add(ops.multiply(c0, xs), ops.multiply(c1, ys)), 1.0)
    finite = ops.not_equal(k, 0.0)
    k = ops.where(finite, k, 1.0)
    x_in = ops.divide(ops.add(ops.add(ops.multiply(a0, xs), ops.multiply(a1, ys)), a2), k)
    y_in = ops.divide(ops.add(ops.add(ops.multiply(b0, xs), ops.multiply(b1, ys)), b2), k)
    px = _fit_coordinate(x_in, width, fill_mode)
    py = _fit_coordinate(y_in, height, fill_mode)
    flat = ops.reshape(x, (-1, height * width, channels))
    fill = ops.convert_to_tensor(float(fill_value), cd)
    if interpolation == "nearest":
        value = _read(flat, _round_half_away(px), _round_half_away(py), height, width,
                      channels, fill)
    else:
        x0, y0 = ops.floor(px), ops.floor(py)
        x1, y1 = ops.add(x0, 1.0), ops.add(y0, 1.0)
        wx0 = ops.expand_dims(ops.subtract(x1, px), -1)
        wx1 = ops.expand_dims(ops.subtract(px, x0), -1)
        wy0 = ops.expand_dims(ops.subtract(y1, py), -1)
        wy1 = ops.expand_dims(ops.subtract(py, y0), -1)

        def row(yy):
            v0 = _read(flat, x0, yy, height, width, channels, fill)
            v1 = _read(flat, x1, yy, height, width, channels, fill)
            return ops.add(ops.multiply(wx0, v0), ops.multiply(wx1, v1))

        value = ops.add(ops.multiply(wy0, row(y0)), ops.multiply(wy1, row(y1)))
    out = ops.where(ops.expand_dims(finite, -1), value, fill)
    return out if dtype == cd else ops.cast(out, dtype)


# ---- affine_transform: float64 reference --------------------------------------------------------
def _mapped(c: float, n: int, fill_mode: str) -> float:
    """One input coordinate after ``fill_mode`` (the module docstring's rules), clamped."""
    if fill_mode == "constant":
        return c
    if n <= 1:
        return 0.0
    if fill_mode == "reflect":
        period = 2 * n
        c = c - period * math.floor(c / period)  # into [0, 2n): mirror the second half
        if c >= n:
            c = period - 1 - c
    elif fill_mode == "wrap":
        if c < 0:
            c = c + n * (math.floor(-c / (n - 1)) + 1)
        elif c > n - 1:
            c = c - n * math.floor(c / (n - 1))
    return min(max(c, 0.0), float(n - 1))


def _affine_reference(images, transforms, interpolation="bilinear", fill_mode="constant",
                      fill_value=0.0):
    """Each output pixel from the definition in the module docstring (Python floats)."""
    batch, height, width, channels = np.shape(images)
    read = T.reader(images)
    table = np.asarray(transforms, np.float64).tolist()
    fill = float(fill_value)

    def pixel(b, r, q, c):  # row r, column q; outside the image: the fill value
        return read((b, r, q, c)) if 0 <= r < height and 0 <= q < width else fill

    def value(idx):
        b, y, x, c = idx
        a0, a1, a2, b0, b1, b2, c0, c1 = table[b if len(table) > 1 else 0]
        k = c0 * x + c1 * y + 1.0
        if k == 0:
            return fill
        px = _mapped((a0 * x + a1 * y + a2) / k, width, fill_mode)
        py = _mapped((b0 * x + b1 * y + b2) / k, height, fill_mode)
        if interpolation == "nearest":  # Python's round() ties to even: not this rule
            rx = math.copysign(math.floor(abs(px) + 0.5), px)
            ry = math.copysign(math.floor(abs(py) + 0.5), py)
            return pixel(b, int(ry), int(rx), c)
        q, r = math.floor(px), math.floor(py)
        top = (q + 1 - px) * pixel(b, r, q, c) + (px - q) * pixel(b, r, q + 1, c)
        bottom = (q + 1 - px) * pixel(b, r + 1, q, c) + (px - q) * pixel(b, r + 1, q + 1, c)
        return (r + 1 - py) * top + (py - r) * bottom

    return T.build((batch, height, width, channels), value, np.float64)


# ---- affine_transform: samples ------------------------------------------------------------------
def _rotation(degrees: float, height: int, width: int, tx=0.0, ty=0.0, zoom=1.0):
    """Keras's rotation (about the image centre), zoom and translation, as 8 numbers."""
    a = math.radians(degrees)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a0, a1 = zoom * math.cos(a), -zoom * math.sin(a)
    b0, b1 = zoom * math.sin(a), zoom * math.cos(a)
    return [a0, a1, tx + cx - cx * a0 - cy * a1, b0, b1, ty + cy - cx * b0 - cy * b1, 0.0, 0.0]


def _affine_samples(dtype, rng):
    def img(shape):
        return S.rand(rng, shape, dtype, -1.0, 1.0)

    def case(shape, transforms, interpolation, fill_mode, fill_value=0.0, name="", grad=True):
        args = (img(shape), np.asarray(transforms, np.float64), interpolation, fill_mode,
                fill_value)
        return Sample(args, name=f"{interpolation},{fill_mode},{name}", grad=grad, keep=(1,))

    h, w = 5, 6
    rotations = [_rotation(23.0, h, w), _rotation(-71.0, h, w, tx=0.37)]
    far = [_rotation(0.0, h, w, tx=-13.3, ty=9.2), _rotation(0.0, h, w, tx=17.6, ty=-11.1)]
    zoom = [_rotation(8.0, h, w, zoom=1.7, tx=0.21, ty=-0.43)]
    projective = [[0.9, 0.12, 0.4, -0.08, 1.1, -0.3, 0.031, -0.047],
                  [1.2, -0.2, -0.63, 0.15, 0.8, 0.7, -0.052, 0.021]]
    out = []
    for interpolation in INTERPOLATIONS:
        out += [
            case((2, h, w, 3), rotations, interpolation, "reflect", name="rotation"),
            case((2, h, w, 2), far, interpolation, "reflect", name="far"),
            case((2, h, w, 2), rotations, interpolation, "wrap", name="rotation"),
            case((2, h, w, 2), far, interpolation, "wrap", name="far"),
            case((3, h, w, 2), zoom, interpolation, "constant", 0.5, name="zoom,broadcast"),
            case((2, h, w, 1), projective, interpolation, "constant", -0.25, name="projective"),
            case((2, h, w, 2), projective, interpolation, "nearest", name="projective"),
            case((2, h, w, 2), far, interpolation, "nearest", name="far"),
        ]
    shift = [[1.0, 0.0, 2.0, 0.0, 1.0, -1.0, 0.0, 0.0]]  # whole pixels: exact on every dtype
    border = [[1.0, 0.0, -0.3, 0.0, 1.0, 0.7, 0.0, 0.0], [1.0, 0.0, 0.45, 0.0, 1.0, -0.6, 0.0, 0.0]]
    ties = [[1.0, 0.0, -0.5, 0.0, 1.0, 0.5, 0.0, 0.0]]  # x - 0.5, y + 0.5: rounding ties
    out += [
        case((2, 4, 5, 2), border, "bilinear", "constant", 1.5, name="border"),
        case((2, 4, 5, 2), border, "nearest", "constant", 1.5, name="border"),
        case((1, 4, 5, 2), ties, "nearest", "constant", 2.0, name="ties"),
        case((2, 4, 3, 2), shift, "nearest", "constant", 0.0, name="integer_shift"),
        case((1, 1, 4, 2), rotations[:1], "bilinear", "reflect", name="one_row"),
        case((0, h, w, 2), rotations[:1], "bilinear", "wrap", name="empty", grad=False),
    ]
    return out


defop("affine_transform",
      "images, transforms, interpolation='bilinear', fill_mode='constant', fill_value=0.0",
      kind=COMPOSITE, impl=_affine_impl, tensors="images, transforms", promote="images",
      float_inputs=True, shape_rule=affine_shape, reference=_affine_reference,
      samples=_affine_samples, dtypes=FLOATS, tol="contraction",
      doc="""Projective transforms of channels-last images (TensorFlow's
      ``ImageProjectiveTransformV3``): ``transforms`` (batch or 1, 8) maps each output pixel
      ``(x, y)`` to the input point ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``,
      ``k = c0 x + c1 y + 1``, read with ``interpolation`` (``"bilinear"``, ``"nearest"``)
      after ``fill_mode`` (``"reflect"``, ``"wrap"``, ``"constant"`` with ``fill_value``,
      ``"nearest"``). No gradient with respect to ``transforms``. The exact rules are in
      unidl/spec/image.py.""")
