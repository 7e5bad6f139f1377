"""Convolution and pooling ops.

Conventions (as in Keras):

* Inputs are channels-last by default, ``(batch, *spatial, channels)``; every op takes
  ``data_format="channels_last" | "channels_first"``.
* Convolution kernels are ``(*kernel_size, in_channels / groups, out_channels)``; transposed
  convolution kernels are ``(*kernel_size, out_channels, in_channels)``; depthwise kernels are
  ``(kh, kw, in_channels, multiplier)`` with output channel ``c * multiplier + m``.
* ``padding`` is ``"valid"``, ``"same"`` (TensorFlow's rule: output size ``ceil(n / stride)``,
  total padding ``max((out - 1) * stride + (k - 1) * dilation + 1 - n, 0)``, the odd pixel at
  the end), or explicit: an int (every side), or one entry per spatial dim, each an int
  (both sides) or a ``(before, after)`` pair. A 1-D op also takes a single ``(before, after)``
  pair. Pooling takes ``"valid"`` and ``"same"`` only.

Gradients are written with the internal primitives declared at the end of this module
(``conv_backprop_input``, ``conv_backprop_kernel``, ``depthwise_conv2d_backprop_input``,
``depthwise_conv2d_backprop_kernel``, ``max_pool_backprop``, ``max_pool_select``,
``avg_pool_backprop``). They are exact adjoints of the forward ops, so the set is closed under
differentiation (any order). Max pooling routes a window's gradient to the *first* maximum of
the window in row-major order (as PyTorch and ``tf.nn.max_pool_with_argmax`` do).

The geometry helpers (:func:`conv_geometry`, :func:`pool_geometry`,
:func:`conv_transpose_geometry`) are shared with the backends' kernels so that every backend
pads exactly the same way. The float64 references work the geometry out on their own from the
rules above, so the helpers are checked by the conformance suite too.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from unidl import ops
from unidl.export.rules import OnnxOp
from unidl.spec import _textbook as T
from unidl.spec.core import COMPOSITE, Sample, ShapeMismatch, defop

__all__ = [
    "Geometry",
    "conv_grads",
    "conv_geometry",
    "conv_transpose_geometry",
    "depthwise_geometry",
    "pool_geometry",
    "normalize_padding",
]

FLOATS = ("float16", "bfloat16", "float32", "float64")
DATA_FORMATS = ("channels_last", "channels_first")
_SPATIAL = {1: "width", 2: "height, width"}


# ---- geometry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    """Where a sliding window goes: sizes, strides, dilation, padding per spatial dim."""

    rank: int
    channels_last: bool
    batch: int | None
    in_sizes: tuple
    channels: int
    kernel: tuple
    strides: tuple
    dilation: tuple
    pads: tuple  # ((before, after), ...) per spatial dim
    out_sizes: tuple

    @property
    def effective_kernel(self) -> tuple:
        """Kernel extent once dilated: ``(k - 1) * d + 1``."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation))

    @property
    def padded_sizes(self) -> tuple:
        return tuple(n + b + a for n, (b, a) in zip(self.in_sizes, self.pads))

    @property
    def symmetric(self) -> bool:
        return all(b == a for b, a in self.pads)

    @property
    def padded(self) -> bool:
        return any(b or a for b, a in self.pads)

    def shape(self, spatial, channels) -> tuple:
        """A full shape in this geometry's data format."""
        if self.channels_last:
            return (self.batch, *spatial, channels)
        return (self.batch, channels, *spatial)

    def in_shape(self, channels=None) -> tuple:
        return self.shape(self.in_sizes, self.channels if channels is None else channels)

    def out_shape(self, channels=None) -> tuple:
        return self.shape(self.out_sizes, self.channels if channels is None else channels)


def _freeze(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(i) for i in v)
    return v


def _memo(fn):
    """Cache a geometry function (its arguments are shapes and small settings; kernels call
    it on every dispatch). Unhashable arguments fall back to an uncached call."""
    cached = functools.lru_cache(maxsize=2048)(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return cached(*args, **kwargs)
        except TypeError:  # a list somewhere: freeze to tuples and retry
            pass
        try:
            return cached(*[_freeze(a) for a in args],
                          **{k: _freeze(v) for k, v in kwargs.items()})
        except TypeError:
            return fn(*args, **kwargs)

    return wrapper


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _ints(value, rank: int, what: str, minimum: int = 1) -> tuple:
    if _is_int(value):
        out = (int(value),) * rank
    else:
        try:
            out = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ShapeMismatch(f"expected {what} to be an int or {rank} ints, "
                                f"got {value!r}") from None
        if len(out) != rank or not all(_is_int(v) for v in value):
            raise ShapeMismatch(f"expected {what} to be an int or {rank} ints, got {value!r}")
    if any(v < minimum for v in out):
        raise ShapeMismatch(f"expected {what} to be at least {minimum}, got {value!r}")
    return out


def _channels_last(data_format) -> bool:
    if data_format not in DATA_FORMATS:
        raise ShapeMismatch(f"expected data_format 'channels_last' or 'channels_first', "
                            f"got {data_format!r}")
    return data_format == "channels_last"


def normalize_padding(padding, rank: int, allow_explicit: bool = True):
    """``"valid"``, ``"same"`` or a tuple of ``(before, after)`` pairs, one per spatial dim."""
    if isinstance(padding, str):
        p = padding.lower()
        if p in ("valid", "same"):
            return p
    elif allow_explicit:
        if _is_int(padding):
            pairs = ((int(padding), int(padding)),) * rank
        else:
            try:
                seq = list(padding)
                if rank == 1 and len(seq) == 2 and all(_is_int(v) for v in seq):
                    seq = [tuple(seq)]
                pairs = []
                for item in seq:
                    if _is_int(item):
                        pairs.append((int(item), int(item)))
                    else:
                        pair = tuple(item)
                        if len(pair) != 2 or not all(_is_int(v) for v in pair):
                            raise ValueError
                        pairs.append((int(pair[0]), int(pair[1])))
                pairs = tuple(pairs)
            except (TypeError, ValueError):
                pairs = None
            if pairs is None or len(pairs) != rank:
                raise ShapeMismatch(
                    f"expected padding 'valid', 'same', an int or {rank} (before, after) "
                    f"pairs, got {padding!r}")
        if any(v < 0 for pair in pairs for v in pair):
            raise ShapeMismatch(f"expected non-negative padding, got {padding!r}")
        return pairs
    what = "'valid', 'same', an int or (before, after) pairs" if allow_explicit else \
        "'valid' or 'same'"
    raise ShapeMismatch(f"expected padding {what}, got {padding!r}")


def _same_pads(n: int, eff: int, stride: int) -> tuple:
    out = -(-n // stride)
    total = max((out - 1) * stride + eff - n, 0)
    return (total // 2, total - total // 2)


def _split_shape(shape, rank: int, channels_last: bool, op: str, what: str = "input"):
    shape = tuple(shape)
    if len(shape) != rank + 2:
        layout = (f"(batch, {_SPATIAL[rank]}, channels)" if channels_last
                  else f"(batch, channels, {_SPATIAL[rank]})")
        raise ShapeMismatch(
            f"expected a {rank + 2}-D {what} {layout} for a {rank}-D {op}, "
            f"got a {len(shape)}-D {what} of shape {shape}")
    if channels_last:
        return shape[0], shape[1:-1], shape[-1]
    return shape[0], shape[2:], shape[1]


def _window_geometry(x_shape, rank, window, strides, padding, data_format, dilation_rate, op,
                     allow_explicit=True, what="input"):
    cl = _channels_last(data_format)
    batch, sizes, channels = _split_shape(x_shape, rank, cl, op, what)
    if any(n is None for n in sizes):
        raise ShapeMismatch(f"expected static spatial sizes, got {tuple(x_shape)}")
    k = _ints(window, rank, "the window size")
    s = _ints(strides, rank, "strides")
    d = _ints(dilation_rate, rank, "dilation_rate")
    pad = normalize_padding(padding, rank, allow_explicit)
    eff = tuple((ki - 1) * di + 1 for ki, di in zip(k, d))
    if pad == "valid":
        pads = ((0, 0),) * rank
    elif pad == "same":
        pads = tuple(_same_pads(n, e, si) for n, e, si in zip(sizes, eff, s))
    else:
        pads = pad
    out = []
    for n, (b, a), e, si in zip(sizes, pads, eff, s):
        if pad == "same":
            out.append(-(-n // si))
        elif n + b + a < e:
            raise ShapeMismatch(
                f"expected padded spatial sizes of at least the (dilated) window size {eff}, "
                f"got {tuple(n + b + a for n, (b, a) in zip(sizes, pads))} for an "
                f"{what} of shape {tuple(x_shape)}")
        else:
            out.append((n + b + a - e) // si + 1)
    return Geometry(rank, cl, batch, tuple(sizes), channels, k, s, d, pads, tuple(out))


@_memo
def conv_geometry(x_shape, kernel_shape, strides, padding, data_format, dilation_rate, groups,
                  rank, op="convolution"):
    """Geometry of a ``rank``-D convolution; validates the kernel and ``groups``."""
    kernel_shape = tuple(kernel_shape)
    if len(kernel_shape) != rank + 2:
        raise ShapeMismatch(
            f"expected a {rank + 2}-D kernel (*kernel_size, in_channels / groups, "
            f"out_channels), got shape {kernel_shape}")
    if not _is_int(groups) or groups < 1:
        raise ShapeMismatch(f"expected groups to be a positive int, got {groups!r}")
    geo = _window_geometry(x_shape, rank, kernel_shape[:rank], strides, padding, data_format,
                           dilation_rate, op)
    if geo.channels != kernel_shape[-2] * groups:
        raise ShapeMismatch(
            f"expected the input to have kernel.shape[-2] * groups = "
            f"{kernel_shape[-2]} * {groups} = {kernel_shape[-2] * groups} channels, "
            f"got {geo.channels} (input shape {tuple(x_shape)})")
    if kernel_shape[-1] % groups:
        raise ShapeMismatch(f"expected out_channels (kernel.shape[-1] = {kernel_shape[-1]}) "
                            f"to be divisible by groups = {groups}")
    return geo


@_memo
def depthwise_geometry(x_shape, kernel_shape, strides, padding, data_format, dilation_rate,
                       op="depthwise_conv2d"):
    kernel_shape = tuple(kernel_shape)
    if len(kernel_shape) != 4:
        raise ShapeMismatch(f"expected a 4-D depthwise kernel (kh, kw, in_channels, "
                            f"multiplier), got shape {kernel_shape}")
    geo = _window_geometry(x_shape, 2, kernel_shape[:2], strides, padding, data_format,
                           dilation_rate, op)
    if geo.channels != kernel_shape[2]:
        raise ShapeMismatch(f"expected the input to have kernel.shape[2] = {kernel_shape[2]} "
                            f"channels, got {geo.channels} (input shape {tuple(x_shape)})")
    return geo


@_memo
def conv_transpose_geometry(x_shape, kernel_shape, strides, padding, output_padding,
                            data_format, dilation_rate, rank=2, op="conv2d_transpose"):
    """``(geometry, out_shape)``: the geometry of the *forward* convolution whose input
    gradient the transposed convolution computes, and the transposed op's output shape.

    Output sizes follow Keras' ``deconv_output_length``; explicit padding ``(b, a)`` gives
    ``(n - 1) * stride + (k - 1) * dilation + 1 - b - a + output_padding``.
    """
    kernel_shape = tuple(kernel_shape)
    if len(kernel_shape) != rank + 2:
        raise ShapeMismatch(f"expected a {rank + 2}-D kernel (*kernel_size, out_channels, "
                            f"in_channels), got shape {kernel_shape}")
    cl = _channels_last(data_format)
    batch, sizes, channels = _split_shape(x_shape, rank, cl, op)
    if channels != kernel_shape[-1]:
        raise ShapeMismatch(f"expected the input to have kernel.shape[-1] = {kernel_shape[-1]} "
                            f"channels, got {channels} (input shape {tuple(x_shape)})")
    k = kernel_shape[:rank]
    s = _ints(strides, rank, "strides")
    d = _ints(dilation_rate, rank, "dilation_rate")
    pad = normalize_padding(padding, rank)
    if output_padding is None:
        op_ = None
    else:
        op_ = _ints(output_padding, rank, "output_padding", minimum=0)
        if any(o >= si for o, si in zip(op_, s)):
            raise ShapeMismatch(f"expected output_padding smaller than the strides {s}, "
                                f"got {output_padding!r}")
    out = []
    for i, (n, ki, si, di) in enumerate(zip(sizes, k, s, d)):
        e = (ki - 1) * di + 1
        if op_ is None:
            if pad == "valid":
                length = n * si + max(e - si, 0)
            elif pad == "same":
                length = n * si
            else:
                length = (n - 1) * si + e - sum(pad[i])
        else:
            cut = 0 if pad == "valid" else 2 * (e // 2) if pad == "same" else sum(pad[i])
            length = (n - 1) * si + e - cut + op_[i]
        out.append(length)
    out_shape = (batch, *out, kernel_shape[-2]) if cl else (batch, kernel_shape[-2], *out)
    if any(n < 1 for n in out):
        raise ShapeMismatch(f"expected a positive output size, got {tuple(out)} for an input "
                            f"of shape {tuple(x_shape)}")
    geo = conv_geometry(out_shape, kernel_shape, s, padding, data_format, d, 1, rank, op)
    if geo.out_sizes != tuple(sizes):
        raise ShapeMismatch(
            f"expected padding/output_padding for which a convolution of the output "
            f"{tuple(out)} gives back the input sizes {tuple(sizes)}, got {geo.out_sizes}")
    return geo, out_shape


@_memo
def pool_geometry(x_shape, pool_size, strides, padding, data_format, op="pooling"):
    """Geometry of a pooling window; the rank is ``len(x_shape) - 2`` (1 or 2)."""
    x_shape = tuple(x_shape)
    if len(x_shape) not in (3, 4):
        raise ShapeMismatch(f"expected a 3-D input (1-D pooling) or a 4-D input (2-D pooling), "
                            f"got a {len(x_shape)}-D input of shape {x_shape}")
    rank = len(x_shape) - 2
    strides = pool_size if strides is None else strides
    return _window_geometry(x_shape, rank, pool_size, strides, padding, data_format, 1, op,
                            allow_explicit=False)


def _full_shape(shape, name="input_shape"):
    try:
        out = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ShapeMismatch(f"expected {name} to be a sequence of ints, got {shape!r}") from None
    return out


# ---- float64 references: explicit loops over output positions ------------------------------
# The textbook definitions: every output position of a window op gathers the input cells its
# kernel taps fall on (cells in the padding contribute nothing) and combines them. The window
# geometry (padding, output sizes, transposed output sizes) is worked out here from the rules
# in the module docstring, not with the geometry helpers above that the kernels share, so a
# kernel that pads or sizes differently disagrees with these references. Each position's
# window is vectorized over the batch and channels only.
_Win = namedtuple("_Win", "sizes kernel strides dilation pads out")


def _per_dim(v, rank):
    return (int(v),) * rank if isinstance(v, (int, np.integer)) else tuple(int(i) for i in v)


def _pads_of(padding, sizes, effective, strides):
    """``(before, after)`` per spatial dim: none for ``"valid"``; for ``"same"`` a total of
    ``max((ceil(n / s) - 1) * s + k_eff - n, 0)``, the odd cell after; explicit ones as
    written."""
    if not isinstance(padding, str):
        return _explicit_pads(padding, len(sizes))
    if padding.lower() == "valid":
        return ((0, 0),) * len(sizes)
    totals = [max((-(-n // s) - 1) * s + e - n, 0) for n, e, s in zip(sizes, effective, strides)]
    return tuple((t // 2, t - t // 2) for t in totals)


def _explicit_pads(padding, rank):
    """Explicit padding: an int (every side), one int or pair per dim, one pair in 1-D."""
    if isinstance(padding, (int, np.integer)):
        return ((int(padding), int(padding)),) * rank
    items = list(padding)
    if rank == 1 and len(items) == 2 and all(isinstance(v, (int, np.integer)) for v in items):
        return ((int(items[0]), int(items[1])),)
    return tuple((int(p), int(p)) if isinstance(p, (int, np.integer)) else
                 (int(p[0]), int(p[1])) for p in items)


def _window(sizes, kernel, strides, dilation, padding):
    """The geometry of a sliding window: ``out`` is the number of window placements per dim,
    ``(n + before + after - k_eff) // stride + 1``."""
    rank = len(sizes)
    s, d = _per_dim(strides, rank), _per_dim(dilation, rank)
    eff = [(k - 1) * di + 1 for k, di in zip(kernel, d)]
    pads = _pads_of(padding, sizes, eff, s)
    out = tuple((n + b + a - e) // si + 1 for n, (b, a), e, si in zip(sizes, pads, eff, s))
    return _Win(tuple(sizes), tuple(kernel), s, d, pads, out)


def _spatial(shape, channels_last):
    return tuple(shape[1:-1]) if channels_last else tuple(shape[2:])


def _site(pos, channels_last):
    """Index of the ``(batch, channels)`` slice at spatial position ``pos``."""
    return (slice(None), *pos, slice(None)) if channels_last else (slice(None), slice(None),
                                                                   *pos)


def _arranged(n, spatial, channels, channels_last):
    return (n, *spatial, channels) if channels_last else (n, channels, *spatial)


def _taps(win, pos):
    """``(tap, input position)`` of each kernel tap of output position ``pos`` that falls on
    the input: input position ``pos * stride + tap * dilation - pad_before``."""
    out = []
    for tap in T.positions(win.kernel):
        src = tuple(p * s + t * d - b for p, t, s, d, (b, _) in
                    zip(pos, tap, win.strides, win.dilation, win.pads))
        if all(0 <= i < n for i, n in zip(src, win.sizes)):
            out.append((tap, src))
    return out


def _groups(groups, cg, og):
    """``(input channels, output channels)`` slices of each group."""
    return [(slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)) for g in range(groups)]


def _ref_conv(x, kernel, win, cl, groups):
    """``out[n, p, o] = sum over taps t and the group's channels c of
    x[n, p * s + t * d - pad, c] * kernel[t, c, o]``."""
    o = kernel.shape[-1]
    parts = _groups(groups, kernel.shape[-2], o // groups)
    out = np.zeros(_arranged(x.shape[0], win.out, o, cl))
    for pos in T.positions(win.out):
        acc = out[_site(pos, cl)]
        for tap, src in _taps(win, pos):
            xv, w = x[_site(src, cl)], kernel[tap]
            for ci, oi in parts:
                acc[:, oi] += xv[:, ci] @ w[:, oi]
    return out


def _ref_conv_input_grad(g, kernel, win, cl, groups):
    """The adjoint of :func:`_ref_conv` in ``x``: each output position's ``g`` sent back
    through the taps onto the input cells they read."""
    c = kernel.shape[-2] * groups
    parts = _groups(groups, kernel.shape[-2], kernel.shape[-1] // groups)
    dx = np.zeros(_arranged(g.shape[0], win.sizes, c, cl))
    for pos in T.positions(win.out):
        gv = g[_site(pos, cl)]
        for tap, src in _taps(win, pos):
            cell, w = dx[_site(src, cl)], kernel[tap]
            for ci, oi in parts:
                cell[:, ci] += gv[:, oi] @ w[:, oi].T
    return dx


def _ref_conv_kernel_grad(x, g, kernel_shape, win, cl, groups):
    """The adjoint of :func:`_ref_conv` in the kernel: ``sum over n, p`` of input cell times
    output gradient, for every tap."""
    parts = _groups(groups, kernel_shape[-2], kernel_shape[-1] // groups)
    dk = np.zeros(tuple(kernel_shape))
    for pos in T.positions(win.out):
        gv = g[_site(pos, cl)]
        for tap, src in _taps(win, pos):
            xv, cell = x[_site(src, cl)], dk[tap]
            for ci, oi in parts:
                cell[:, oi] += xv[:, ci].T @ gv[:, oi]
    return dk


def _ref_depthwise(x, kernel, win, cl):
    """``out[n, p, c * M + m] = sum over taps t of x[n, p * s + t * d - pad, c] *
    kernel[t, c, m]``."""
    n, c, m = x.shape[0], kernel.shape[2], kernel.shape[3]
    out = np.zeros(_arranged(n, win.out, c * m, cl))
    for pos in T.positions(win.out):
        acc = out[_site(pos, cl)]
        for tap, src in _taps(win, pos):
            acc += (x[_site(src, cl)][:, :, None] * kernel[tap]).reshape(n, c * m)
    return out


def _ref_depthwise_input_grad(g, kernel, win, cl):
    """The adjoint of :func:`_ref_depthwise` in ``x``."""
    n, c, m = g.shape[0], kernel.shape[2], kernel.shape[3]
    dx = np.zeros(_arranged(n, win.sizes, c, cl))
    for pos in T.positions(win.out):
        gv = g[_site(pos, cl)].reshape(n, c, m)
        for tap, src in _taps(win, pos):
            dx[_site(src, cl)] += (gv * kernel[tap]).sum(-1)
    return dx


def _ref_depthwise_kernel_grad(x, g, kernel_shape, win, cl):
    """The adjoint of :func:`_ref_depthwise` in the kernel."""
    n, c, m = x.shape[0], kernel_shape[2], kernel_shape[3]
    dk = np.zeros(tuple(kernel_shape))
    for pos in T.positions(win.out):
        gv = g[_site(pos, cl)].reshape(n, c, m)
        for tap, src in _taps(win, pos):
            dk[tap] += (x[_site(src, cl)][:, :, None] * gv).sum(0)
    return dk


def _transposed_sizes(sizes, kernel, strides, dilation, padding, output_padding):
    """Output sizes of ``conv2d_transpose`` by Keras' ``deconv_output_length``."""
    rank = len(sizes)
    s, d = _per_dim(strides, rank), _per_dim(dilation, rank)
    op = None if output_padding is None else _per_dim(output_padding, rank)
    explicit = None if isinstance(padding, str) else _explicit_pads(padding, rank)
    out = []
    for i, (n, k) in enumerate(zip(sizes, kernel)):
        e = (k - 1) * d[i] + 1
        cut = sum(explicit[i]) if explicit else (2 * (e // 2) if padding.lower() == "same"
                                                 else 0)
        if op is not None:
            out.append((n - 1) * s[i] + e - cut + op[i])
        elif explicit:
            out.append((n - 1) * s[i] + e - cut)
        else:
            out.append(n * s[i] + (max(e - s[i], 0) if padding.lower() == "valid" else 0))
    return tuple(out)


def _pool_window(x_shape, pool_size, strides, padding, cl):
    sizes = _spatial(x_shape, cl)
    k = _per_dim(pool_size, len(sizes))
    return _window(sizes, k, k if strides is None else strides, 1, padding)


def _pool_cells(x, win, cl, pos):
    """``(taps, cells)``: the window of output position ``pos`` and its input cells (each
    ``(batch, channels)``), padding left out."""
    taps = _taps(win, pos)
    return taps, np.array([x[_site(src, cl)] for _, src in taps])


def _ref_max_pool_first(x, win, cl, pos):
    """``(taps, index)``: per (batch, channel) the index in ``taps`` of the window's first
    maximum (row-major): a later cell takes over only if it is strictly greater."""
    taps, cells = _pool_cells(x, win, cl, pos)
    best, first = cells[0].copy(), np.zeros(cells[0].shape, np.int64)
    for k in range(1, len(cells)):
        better = cells[k] > best
        best[better] = cells[k][better]
        first[better] = k
    return taps, first


def _channels(shape, cl):
    return shape[-1] if cl else shape[1]


def _conv_reference(rank, op):
    """The reference of ``conv1d`` (``rank`` 1) or ``conv2d``: :func:`_ref_conv` plus the
    bias at every output position."""

    def reference(x, kernel, strides=1, padding="valid", data_format="channels_last",
                  dilation_rate=1, groups=1, bias=None):
        cl = data_format == "channels_last"
        win = _window(_spatial(x.shape, cl), kernel.shape[:rank], strides, dilation_rate,
                      padding)
        y = _ref_conv(x, kernel, win, cl, groups)
        if bias is not None:
            for pos in T.positions(win.out):
                y[_site(pos, cl)] += bias
        return y
    return reference


def _tconv_reference(x, kernel, strides=1, padding="valid", output_padding=None,
                     data_format="channels_last", dilation_rate=1):
    """The input gradient of a convolution whose input has the transposed output's sizes."""
    cl = data_format == "channels_last"
    k = kernel.shape[:2]
    sizes = _transposed_sizes(_spatial(x.shape, cl), k, strides, dilation_rate, padding,
                              output_padding)
    return _ref_conv_input_grad(x, kernel, _window(sizes, k, strides, dilation_rate, padding),
                                cl, 1)


def _dw_reference(x, kernel, strides=1, padding="valid", data_format="channels_last",
                  dilation_rate=1):
    """:func:`_ref_depthwise` in the window of the arguments."""
    cl = data_format == "channels_last"
    win = _window(_spatial(x.shape, cl), kernel.shape[:2], strides, dilation_rate, padding)
    return _ref_depthwise(x, kernel, win, cl)


def _max_pool_reference(x, pool_size, strides=None, padding="valid",
                        data_format="channels_last"):
    """The maximum of each window's input cells (padding never wins)."""
    cl = data_format == "channels_last"
    win = _pool_window(x.shape, pool_size, strides, padding, cl)
    out = np.zeros(_arranged(x.shape[0], win.out, _channels(x.shape, cl), cl))
    for pos in T.positions(win.out):
        out[_site(pos, cl)] = _pool_cells(x, win, cl, pos)[1].max(axis=0)
    return out


def _avg_pool_reference(x, pool_size, strides=None, padding="valid",
                        data_format="channels_last"):
    """The mean of each window's input cells (padding is not counted)."""
    cl = data_format == "channels_last"
    win = _pool_window(x.shape, pool_size, strides, padding, cl)
    out = np.zeros(_arranged(x.shape[0], win.out, _channels(x.shape, cl), cl))
    for pos in T.positions(win.out):
        cells = _pool_cells(x, win, cl, pos)[1]
        out[_site(pos, cl)] = sum(cells) / len(cells)
    return out


def _global_reference(fn):
    """A reference reducing the spatial axes with ``fn`` over each group of elements."""

    def reference(x, data_format="channels_last", keepdims=False):
        x = np.asarray(x)
        axes = range(1, x.ndim - 1) if data_format == "channels_last" else range(2, x.ndim)
        return T.reduce(fn, x, tuple(axes), keepdims, np.float64)

    return reference


# ---- public op geometry wrappers (shape rules and references) ------------------------------
def _check_bias(bias, out_channels):
    if bias is not None and tuple(bias) != (out_channels,):
        raise ShapeMismatch(f"expected a bias of shape ({out_channels},) (the kernel's "
                            f"out_channels), got {tuple(bias)}")


def _conv_rule(rank, op):
    def rule(x, kernel, strides=1, padding="valid", data_format="channels_last",
             dilation_rate=1, groups=1, bias=None):
        geo = conv_geometry(x, kernel, strides, padding, data_format, dilation_rate, groups,
                            rank, op)
        _check_bias(bias, kernel[-1])
        return geo.out_shape(kernel[-1])
    return rule


def _bias_grad(g, data_format):
    """The cotangent of a convolution's bias: ``g`` summed over every axis but the channels'."""
    nd = len(ops.shape(g))
    ch = nd - 1 if data_format == "channels_last" else 1
    return ops.sum(g, tuple(i for i in range(nd) if i != ch), False)


def conv_grads(g, x, kernel, strides, padding, data_format, dilation_rate, groups, bias=None,
               slots=(0, 1, 2)):
    """Cotangents ``(x, kernel, bias)`` of ``conv1d``/``conv2d``; only the inputs in ``slots``
    are computed, the others are None (a layer's data input is usually not differentiated:
    its ``conv_backprop_input`` is the costly one skipped)."""
    gx = gk = gb = None
    if 0 in slots:
        gx = ops.conv_backprop_input(g, kernel, ops.shape(x), strides, padding, data_format,
                                     dilation_rate, groups)
    if 1 in slots:
        gk = ops.conv_backprop_kernel(x, g, ops.shape(kernel), strides, padding, data_format,
                                      dilation_rate, groups)
    if 2 in slots and bias is not None:
        gb = _bias_grad(g, data_format)
    return gx, gk, gb


def _conv_grad(g, out, x, kernel, strides, padding, data_format, dilation_rate, groups,
               bias=None):
    return conv_grads(g, x, kernel, strides, padding, data_format, dilation_rate, groups, bias)


def _conv_grad_partial(slots, g, out, x, *args):
    return conv_grads(g, x, *args, slots=slots)


# ---- samples ------------------------------------------------------------------------------
def _r(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape)


def _layout(shape_cl, data_format):
    """A channels-last shape ``(N, *spatial, C)`` in ``data_format``."""
    if data_format == "channels_last":
        return tuple(shape_cl)
    return (shape_cl[0], shape_cl[-1], *shape_cl[1:-1])


# (name, x shape channels-last, kernel shape, strides, padding, data_format, dilation, groups)
_CONV2D_CASES = [
    ("valid", (2, 5, 6, 3), (3, 3, 3, 4), 1, "valid", "channels_last", 1, 1),
    ("same_s2", (2, 7, 8, 3), (3, 3, 3, 4), 2, "same", "channels_last", 1, 1),
    ("same_even_k", (2, 6, 7, 2), (2, 4, 2, 3), (2, 3), "same", "channels_last", 1, 1),
    ("same_s1_even_k", (2, 5, 5, 2), (2, 2, 2, 3), 1, "same", "channels_last", 1, 1),
    ("dilation2_same", (2, 7, 7, 3), (3, 3, 3, 2), 1, "same", "channels_last", 2, 1),
    ("dilation2_valid", (2, 8, 7, 2), (2, 3, 2, 3), 1, "valid", "channels_last", (2, 1), 1),
    ("groups2", (2, 6, 5, 4), (3, 3, 2, 6), 1, "valid", "channels_last", 1, 2),
    ("explicit_pairs_s2", (2, 5, 6, 3), (3, 2, 3, 2), 2, ((1, 2), (0, 1)), "channels_last",
     1, 1),
    ("explicit_int", (2, 4, 5, 2), (3, 3, 2, 3), 1, 1, "channels_last", 1, 1),
    ("channels_first_same_s21", (2, 7, 6, 3), (3, 2, 3, 4), (2, 1), "same", "channels_first",
     1, 1),
    ("channels_first_groups_dil", (2, 9, 8, 4), (3, 2, 2, 4), 1, "same", "channels_first",
     2, 2),
    ("stride2_dilation2", (2, 9, 10, 2), (3, 3, 2, 2), 2, "valid", "channels_last", 2, 1),
    ("pointwise", (2, 3, 4, 5), (1, 1, 5, 2), 1, "valid", "channels_last", 1, 1),
    ("odd_valid_s3", (2, 11, 7, 1), (4, 3, 1, 2), 3, "valid", "channels_last", 1, 1),
]

_CONV1D_CASES = [
    ("valid", (2, 9, 3), (3, 3, 4), 1, "valid", "channels_last", 1, 1),
    ("same_s2", (2, 9, 3), (4, 3, 2), 2, "same", "channels_last", 1, 1),
    ("dilation2", (2, 10, 2), (3, 2, 3), 1, "same", "channels_last", 2, 1),
    ("groups2", (2, 7, 4), (3, 2, 4), 1, "valid", "channels_last", 1, 2),
    ("explicit", (2, 6, 2), (3, 2, 3), 2, (2, 1), "channels_last", 1, 1),
    ("channels_first", (2, 8, 3), (3, 3, 2), 2, "same", "channels_first", 1, 1),
    ("channels_first_groups_explicit", (2, 7, 6), (2, 2, 3), 1, [1], "channels_first", 1,
     3),
]


def _conv_samples(cases, with_empty=True):
    def gen(dtype, rng):
        out = []
        biased = set()  # the first case of each data format is also run with a bias
        for name, xs, ks, s, p, df, d, gr in cases:
            x = _r(rng, _layout(xs, df))
            k = _r(rng, ks)
            out.append(Sample((x, k, s, p, df, d, gr, None), name=name))
            if df not in biased:
                biased.add(df)
                b = _r(rng, (ks[-1],))
                out.append(Sample((x, k, s, p, df, d, gr, b), name=name + "+bias"))
        if with_empty:
            name, xs, ks, s, p, df, d, gr = cases[0]
            out.append(Sample((np.zeros((0,) + _layout(xs, df)[1:]), _r(rng, ks), s, p, df, d,
                               gr, None), name="empty_batch", grad=False))
        return out
    return gen


def _backprop_samples(cases, rank):
    """Samples for conv_backprop_input / conv_backprop_kernel from forward cases."""
    def gen_input(dtype, rng):
        out = []
        for name, xs, ks, s, p, df, d, gr in cases:
            xshape = _layout(xs, df)
            geo = conv_geometry(xshape, ks, s, p, df, d, gr, rank)
            g = _r(rng, geo.out_shape(ks[-1]))
            out.append(Sample((g, _r(rng, ks), xshape, s, p, df, d, gr), name=f"{rank}d_{name}"))
        return out

    def gen_kernel(dtype, rng):
        out = []
        for name, xs, ks, s, p, df, d, gr in cases:
            xshape = _layout(xs, df)
            geo = conv_geometry(xshape, ks, s, p, df, d, gr, rank)
            g = _r(rng, geo.out_shape(ks[-1]))
            out.append(Sample((_r(rng, xshape), g, ks, s, p, df, d, gr), name=f"{rank}d_{name}"))
        return out

    return gen_input, gen_kernel


def _merge(*gens):
    def gen(dtype, rng):
        return [s for g in gens for s in g(dtype, rng)]
    return gen


# ---- conv1d / conv2d ----------------------------------------------------------------------
_CONV_SIG = ("x, kernel, strides=1, padding='valid', data_format='channels_last', "
             "dilation_rate=1, groups=1, bias=None")

# ONNX (``g``: an unidl.export.onnx.OnnxBuilder): channels-first ``Conv`` with the padding the
# geometry above works out (TensorFlow's "same" included), inputs transposed from and results
# back to channels-last, kernels ``(*k, in / groups, out)`` transposed to ``(out, in, *k)``.
def _pads(geo) -> list:
    return [b for b, _ in geo.pads] + [a for _, a in geo.pads]


def _conv_onnx(g, x, kernel, strides=1, padding="valid", data_format="channels_last",
               dilation_rate=1, groups=1, bias=None):
    r = g.rank(x)
    geo = conv_geometry(g.shape(x), g.shape(kernel), strides, padding, data_format,
                        dilation_rate, groups, r - 2)
    w = g.transpose(kernel, [r - 1, r - 2] + list(range(r - 2)))
    y = g.op("Conv", [g.channels_first(x, data_format), w, bias], kernel_shape=list(geo.kernel),
             strides=list(geo.strides), dilations=list(geo.dilation), group=int(groups),
             pads=_pads(geo))
    return g.channels_last(y, data_format, r)


defop("conv1d", _CONV_SIG, tensors="x, kernel, bias", float_inputs=True,
      shape_rule=_conv_rule(1, "convolution"), reference=_conv_reference(1, "convolution"),
      grad=_conv_grad, grad_partial=_conv_grad_partial, samples=_conv_samples(_CONV1D_CASES),
      dtypes=FLOATS, tol="contraction", export={"onnx": OnnxOp("Conv", _conv_onnx)},
      doc="""1-D convolution (cross-correlation, as in every framework).

      ``x`` is ``(batch, width, channels)`` (``channels_first``: ``(batch, channels, width)``),
      ``kernel`` is ``(kw, in_channels / groups, out_channels)``. ``strides`` and
      ``dilation_rate`` are ints; ``padding`` is ``"valid"``, ``"same"`` (TF rule), an int or a
      ``(before, after)`` pair. ``groups`` splits the channels into independent groups.
      ``bias`` (``(out_channels,)``, optional) is added along the channel axis, in the
      convolution's kernel where the framework can (one output array, not two).""")

defop("conv2d", _CONV_SIG, tensors="x, kernel, bias", float_inputs=True,
      shape_rule=_conv_rule(2, "convolution"), reference=_conv_reference(2, "convolution"),
      grad=_conv_grad, grad_partial=_conv_grad_partial, samples=_conv_samples(_CONV2D_CASES),
      dtypes=FLOATS, tol="contraction", export={"onnx": OnnxOp("Conv", _conv_onnx)},
      doc="""2-D convolution (cross-correlation, as in every framework).

      ``x`` is ``(batch, height, width, channels)`` (``channels_first``:
      ``(batch, channels, height, width)``); ``kernel`` is
      ``(kh, kw, in_channels / groups, out_channels)`` as in Keras. ``strides`` and
      ``dilation_rate`` are an int or a pair. ``padding``: ``"valid"``; ``"same"`` with
      TensorFlow's rule (output ``ceil(n / stride)``, total padding
      ``max((out - 1) * stride + (k - 1) * dilation + 1 - n, 0)``, the odd pixel at the
      bottom/right); or explicit, an int or ``((top, bottom), (left, right))``. ``bias``
      (``(out_channels,)``, optional) is added along the channel axis, in the convolution's
      kernel where the framework can (one output array, not two).""")


# ---- conv2d_transpose ---------------------------------------------------------------------
def _tconv_rule(x, kernel, strides=1, padding="valid", output_padding=None,
                data_format="channels_last", dilation_rate=1):
    _, out_shape = conv_transpose_geometry(x, kernel, strides, padding, output_padding,
                                           data_format, dilation_rate)
    return out_shape


def _tconv_grad(g, out, x, kernel, strides, padding, output_padding, data_format,
                dilation_rate):
    return (
        ops.conv2d(g, kernel, strides, padding, data_format, dilation_rate, 1),
        ops.conv_backprop_kernel(g, x, ops.shape(kernel), strides, padding, data_format,
                                 dilation_rate, 1),
    )


# (name, x shape channels-last, kernel (kh, kw, out, in), strides, padding, output_padding,
#  data_format, dilation)
_TCONV_CASES = [
    ("valid_s1", (2, 4, 5, 3), (3, 3, 2, 3), 1, "valid", None, "channels_last", 1),
    ("valid_s2", (2, 4, 3, 3), (3, 3, 2, 3), 2, "valid", None, "channels_last", 1),
    ("same_s2", (2, 3, 4, 2), (3, 3, 3, 2), 2, "same", None, "channels_last", 1),
    ("same_s2_even_k", (2, 3, 4, 2), (4, 2, 3, 2), 2, "same", None, "channels_last", 1),
    ("valid_k_lt_s", (2, 3, 3, 2), (2, 2, 2, 2), 3, "valid", None, "channels_last", 1),
    ("valid_output_padding", (2, 3, 4, 2), (3, 3, 2, 2), 2, "valid", 1, "channels_last", 1),
    ("same_output_padding", (2, 3, 3, 2), (3, 2, 2, 2), (2, 3), "same", (1, 2),
     "channels_last", 1),
    ("dilation2_same", (2, 5, 4, 2), (3, 3, 2, 2), 1, "same", None, "channels_last", 2),
    ("explicit", (2, 4, 4, 2), (3, 3, 3, 2), 2, ((1, 0), (1, 1)), None, "channels_last", 1),
    ("channels_first", (2, 3, 5, 3), (3, 2, 2, 3), (2, 1), "same", None, "channels_first", 1),
]


def _tconv_samples(dtype, rng):
    out = []
    for name, xs, ks, s, p, op_, df, d in _TCONV_CASES:
        out.append(Sample((_r(rng, _layout(xs, df)), _r(rng, ks), s, p, op_, df, d), name=name))
    return out


def _tconv_onnx(g, x, kernel, strides=1, padding="valid", output_padding=None,
                data_format="channels_last", dilation_rate=1):
    """ONNX ``ConvTranspose``: the forward convolution's pads, and the output padding that
    gives this op's output size."""
    geo, out_shape = conv_transpose_geometry(g.shape(x), g.shape(kernel), strides, padding,
                                             output_padding, data_format, dilation_rate)
    extra = [o - ((n - 1) * s + e - b - a) for o, n, s, e, (b, a) in zip(
        geo.in_sizes, geo.out_sizes, geo.strides, geo.effective_kernel, geo.pads)]
    y = g.op("ConvTranspose", [g.channels_first(x, data_format), g.transpose(kernel,
                                                                             [3, 2, 0, 1])],
             kernel_shape=list(geo.kernel), strides=list(geo.strides),
             dilations=list(geo.dilation), pads=_pads(geo), output_padding=extra)
    return g.channels_last(y, data_format, 4)


defop("conv2d_transpose",
      "x, kernel, strides=1, padding='valid', output_padding=None, "
      "data_format='channels_last', dilation_rate=1",
      tensors="x, kernel", float_inputs=True, shape_rule=_tconv_rule,
      reference=_tconv_reference, grad=_tconv_grad, samples=_tconv_samples, dtypes=FLOATS,
      tol="contraction", export={"onnx": OnnxOp("ConvTranspose", _tconv_onnx)},
      doc="""2-D transposed convolution (the input-gradient of ``conv2d``), as Keras'
      ``Conv2DTranspose``.

      ``kernel`` is ``(kh, kw, out_channels, in_channels)``. The output size per spatial dim
      follows Keras' ``deconv_output_length``: without ``output_padding``, ``"valid"`` gives
      ``n * s + max(k_eff - s, 0)`` and ``"same"`` gives ``n * s``; with it,
      ``(n - 1) * s + k_eff - 2 * pad + output_padding`` (``pad`` is 0 for ``"valid"``,
      ``k_eff // 2`` for ``"same"``). Explicit padding ``(b, a)`` gives
      ``(n - 1) * s + k_eff - b - a + output_padding``. The result is exactly the gradient of
      ``conv2d`` (same strides, padding, dilation) applied to an input of the output's size,
      so ``"same"`` pads as TensorFlow does. ``output_padding`` must be below the stride.""")


# ---- depthwise_conv2d ---------------------------------------------------------------------
def _dw_rule(x, kernel, strides=1, padding="valid", data_format="channels_last",
             dilation_rate=1):
    geo = depthwise_geometry(x, kernel, strides, padding, data_format, dilation_rate)
    return geo.out_shape(kernel[2] * kernel[3])


def _dw_grad(g, out, x, kernel, strides, padding, data_format, dilation_rate):
    return (
        ops.depthwise_conv2d_backprop_input(g, kernel, ops.shape(x), strides, padding,
                                            data_format, dilation_rate),
        ops.depthwise_conv2d_backprop_kernel(x, g, ops.shape(kernel), strides, padding,
                                             data_format, dilation_rate),
    )


# (name, x shape channels-last, kernel (kh, kw, C, M), strides, padding, data_format, dilation)
_DW_CASES = [
    ("valid", (2, 5, 6, 3), (3, 3, 3, 2), 1, "valid", "channels_last", 1),
    ("same_s2", (2, 7, 8, 3), (3, 3, 3, 1), 2, "same", "channels_last", 1),
    ("same_s12_even_k", (2, 6, 7, 2), (2, 4, 2, 3), (1, 2), "same", "channels_last", 1),
    ("dilation2", (2, 7, 7, 2), (3, 3, 2, 2), 1, "same", "channels_last", 2),
    ("explicit", (2, 5, 6, 3), (3, 2, 3, 2), 2, ((1, 2), (0, 1)), "channels_last", 1),
    ("channels_first", (2, 7, 6, 4), (3, 2, 4, 2), (2, 1), "same", "channels_first", 1),
    ("stride2_dilation2", (2, 9, 9, 2), (2, 3, 2, 1), 2, "valid", "channels_last", 2),
]


def _dw_cases_samples(dtype, rng):
    out = []
    for name, xs, ks, s, p, df, d in _DW_CASES:
        out.append(Sample((_r(rng, _layout(xs, df)), _r(rng, ks), s, p, df, d), name=name))
    return out


def _dw_onnx(g, x, kernel, strides=1, padding="valid", data_format="channels_last",
             dilation_rate=1):
    """ONNX ``Conv`` with one group per input channel; output channel ``c * M + m``."""
    geo = depthwise_geometry(g.shape(x), g.shape(kernel), strides, padding, data_format,
                             dilation_rate)
    kh, kw, c, m = g.shape(kernel)
    w = g.op("Reshape", [g.transpose(kernel, [2, 3, 0, 1]), g.ints([c * m, 1, kh, kw])])
    y = g.op("Conv", [g.channels_first(x, data_format), w], kernel_shape=[kh, kw],
             strides=list(geo.strides), dilations=list(geo.dilation), group=int(c),
             pads=_pads(geo))
    return g.channels_last(y, data_format, 4)


defop("depthwise_conv2d",
      "x, kernel, strides=1, padding='valid', data_format='channels_last', dilation_rate=1",
      tensors="x, kernel", float_inputs=True, shape_rule=_dw_rule, reference=_dw_reference,
      grad=_dw_grad, samples=_dw_cases_samples, dtypes=FLOATS, tol="contraction",
      export={"onnx": OnnxOp("Conv", _dw_onnx)},
      doc="""2-D depthwise convolution: each input channel convolved with its own
      ``multiplier`` filters. ``kernel`` is ``(kh, kw, in_channels, multiplier)``; output
      channel ``c * multiplier + m`` (TensorFlow's order) has ``in_channels * multiplier``
      channels in all. Strides, padding and dilation as in :func:`conv2d`.""")


# ---- pooling ------------------------------------------------------------------------------
def _pool_rule(x, pool_size, strides=None, padding="valid", data_format="channels_last"):
    return pool_geometry(x, pool_size, strides, padding, data_format).out_shape()


# (name, x shape channels-last, pool_size, strides, padding, data_format)
_POOL_CASES = [
    ("2d_valid_2", (2, 6, 8, 3), 2, None, "valid", "channels_last"),
    ("2d_valid_3_s2_odd", (2, 7, 9, 2), 3, 2, "valid", "channels_last"),
    ("2d_same_3_s2", (2, 7, 8, 3), 3, 2, "same", "channels_last"),
    ("2d_same_2x3_s12", (2, 5, 7, 2), (2, 3), (1, 2), "same", "channels_last"),
    ("2d_same_2_odd", (2, 5, 5, 2), 2, None, "same", "channels_last"),
    ("2d_channels_first_same", (2, 7, 6, 3), (3, 2), (2, 2), "same", "channels_first"),
    ("1d_valid_2", (2, 8, 3), 2, None, "valid", "channels_last"),
    ("1d_same_3_s2", (2, 9, 2), 3, 2, "same", "channels_last"),
    ("1d_channels_first_same", (2, 7, 3), 2, 1, "same", "channels_first"),
]


def _pool_samples(dtype, rng):
    out = []
    for name, xs, k, s, p, df in _POOL_CASES:
        out.append(Sample((_r(rng, _layout(xs, df), -3.0, 3.0), k, s, p, df), name=name))
    return out


def _max_pool_grad(g, out, x, pool_size, strides, padding, data_format):
    return (ops.max_pool_backprop(x, g, pool_size, strides, padding, data_format),)


def _avg_pool_grad(g, out, x, pool_size, strides, padding, data_format):
    return (ops.avg_pool_backprop(g, ops.shape(x), pool_size, strides, padding, data_format),)


_POOL_SIG = "x, pool_size, strides=None, padding='valid', data_format='channels_last'"


def _pool_onnx(op_type, **attrs):
    """ONNX ``MaxPool``/``AveragePool`` (padded cells never win / are not counted)."""
    def convert(g, x, pool_size, strides=None, padding="valid", data_format="channels_last"):
        geo = pool_geometry(g.shape(x), pool_size, strides, padding, data_format)
        y = g.op(op_type, [g.channels_first(x, data_format)], kernel_shape=list(geo.kernel),
                 strides=list(geo.strides), pads=_pads(geo), **attrs)
        return g.channels_last(y, data_format, g.rank(x))

    return OnnxOp(op_type, convert)


defop("max_pool", _POOL_SIG, float_inputs=True, shape_rule=_pool_rule,
      reference=_max_pool_reference, grad=_max_pool_grad, samples=_pool_samples, dtypes=FLOATS,
      tol="exact", export={"onnx": _pool_onnx("MaxPool")},
      doc="""Max pooling over 1-D (3-D ``x``) or 2-D (4-D ``x``) windows.

      ``strides`` defaults to ``pool_size``; ``padding`` is ``"valid"`` or ``"same"``
      (TensorFlow's rule; padded cells never win). The gradient goes to the first maximum of
      each window in row-major order.""")

defop("avg_pool", _POOL_SIG, float_inputs=True, shape_rule=_pool_rule,
      reference=_avg_pool_reference, grad=_avg_pool_grad, samples=_pool_samples, dtypes=FLOATS,
      tol="reduction", export={"onnx": _pool_onnx("AveragePool", count_include_pad=0)},
      doc="""Average pooling over 1-D (3-D ``x``) or 2-D (4-D ``x``) windows.

      ``strides`` defaults to ``pool_size``; ``padding`` is ``"valid"`` or ``"same"``
      (TensorFlow's rule). With ``"same"`` the padded cells are left out of the average
      (each window is divided by the number of real cells it covers), as in TensorFlow.""")


# ---- global pooling -----------------------------------------------------------------------
def _global_axes(ndim, data_format):
    if ndim < 3:
        raise ShapeMismatch(f"expected an input with at least one spatial dim "
                            f"(batch, *spatial, channels), got rank {ndim}")
    if _channels_last(data_format):
        return tuple(range(1, ndim - 1))
    return tuple(range(2, ndim))


def _global_rule(x, data_format="channels_last", keepdims=False):
    axes = _global_axes(len(x), data_format)
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(x))
    return tuple(n for i, n in enumerate(x) if i not in axes)


def _global_samples(dtype, rng):
    return [
        Sample((_r(rng, (2, 5, 6, 3), -3, 3), "channels_last", False), name="2d"),
        Sample((_r(rng, (2, 5, 6, 3), -3, 3), "channels_last", True), name="2d_keepdims"),
        Sample((_r(rng, (2, 3, 4, 5), -3, 3), "channels_first", False), name="2d_cf"),
        Sample((_r(rng, (2, 3, 4, 5), -3, 3), "channels_first", True), name="2d_cf_keepdims"),
        Sample((_r(rng, (2, 7, 3), -3, 3), "channels_last", False), name="1d"),
        Sample((_r(rng, (3, 2, 7), -3, 3), "channels_first", True), name="1d_cf_keepdims"),
    ]


def _global_avg_impl(x, data_format="channels_last", keepdims=False):
    return ops.mean(x, axis=_global_axes(ops.ndim(x), data_format), keepdims=keepdims)


def _global_max_impl(x, data_format="channels_last", keepdims=False):
    return ops.max(x, axis=_global_axes(ops.ndim(x), data_format), keepdims=keepdims)


def _global_avg_onnx(g, x, data_format="channels_last", keepdims=False):
    """ONNX ``GlobalAveragePool`` for channels-first inputs; channels-last: ``ReduceMean``
    over the spatial axes (no transposes). (``global_max_pool`` is converted through
    ``max``, whose rule keeps NaN as unidl does.)"""
    axes = _global_axes(g.rank(x), data_format)
    if data_format == "channels_first":
        y = g.op("GlobalAveragePool", [x])
        return y if keepdims else g.squeeze(y, axes)
    return g.op("ReduceMean", [x, g.ints(axes)], keepdims=int(bool(keepdims)))


defop("global_avg_pool", "x, data_format='channels_last', keepdims=False", kind=COMPOSITE,
      impl=_global_avg_impl, float_inputs=True, shape_rule=_global_rule,
      reference=_global_reference(lambda g: T.fsum(g) / len(g)),
      samples=_global_samples, dtypes=FLOATS, tol="reduction",
      export={"onnx": OnnxOp("GlobalAveragePool", _global_avg_onnx)},
      doc="""Mean over every spatial axis: ``(batch, *spatial, channels)`` ->
      ``(batch, channels)`` (``keepdims``: spatial axes kept with size 1).""")

defop("global_max_pool", "x, data_format='channels_last', keepdims=False", kind=COMPOSITE,
      impl=_global_max_impl, float_inputs=True, shape_rule=_global_rule,
      reference=_global_reference(T.nan_max),
      samples=_global_samples, dtypes=FLOATS, tol="exact",
      doc="""Maximum over every spatial axis: ``(batch, *spatial, channels)`` ->
      ``(batch, channels)`` (``keepdims``: spatial axes kept with size 1).""")


# ==== internal primitives: the gradients of the ops above ===================================
# Each is the exact adjoint of a forward op, so their own gradients are ops of this module.

def _conv_rank(kernel_shape):
    rank = len(tuple(kernel_shape)) - 2
    if rank not in (1, 2):
        raise ShapeMismatch(f"expected a 3-D or 4-D kernel, got shape {tuple(kernel_shape)}")
    return rank


def _check_g(g_shape, want, what="g"):
    want = tuple(want)
    if tuple(g_shape) != want and not (len(g_shape) == len(want) and all(
            a == b or a is None or b is None for a, b in zip(g_shape, want))):
        raise ShapeMismatch(f"expected {what} of shape {want}, got {tuple(g_shape)}")


@_memo
def bi_geometry(g_shape, kernel_shape, input_shape, strides, padding, data_format,
                dilation_rate, groups, op="conv_backprop_input"):
    """Geometry of ``conv_backprop_input``; checks ``g`` against the forward output."""
    input_shape = _full_shape(input_shape)
    geo = conv_geometry(input_shape, kernel_shape, strides, padding, data_format,
                        dilation_rate, groups, _conv_rank(kernel_shape), op)
    _check_g(g_shape, geo.out_shape(tuple(kernel_shape)[-1]))
    return geo


@_memo
def bk_geometry(x_shape, g_shape, kernel_shape, strides, padding, data_format, dilation_rate,
                groups, op="conv_backprop_kernel"):
    kernel_shape = _full_shape(kernel_shape, "kernel_shape")
    geo = conv_geometry(x_shape, kernel_shape, strides, padding, data_format, dilation_rate,
                        groups, _conv_rank(kernel_shape), op)
    _check_g(g_shape, geo.out_shape(kernel_shape[-1]))
    return geo


def _bi_rule(g, kernel, input_shape, strides=1, padding="valid",
             data_format="channels_last", dilation_rate=1, groups=1):
    bi_geometry(g, kernel, input_shape, strides, padding, data_format, dilation_rate, groups)
    return _full_shape(input_shape)


def _bi_reference(g, kernel, input_shape, strides=1, padding="valid",
                  data_format="channels_last", dilation_rate=1, groups=1):
    """:func:`_ref_conv_input_grad` in the forward convolution's window."""
    cl = data_format == "channels_last"
    win = _window(_spatial(input_shape, cl), kernel.shape[:-2], strides, dilation_rate,
                  padding)
    return _ref_conv_input_grad(g, kernel, win, cl, groups)


def _bi_grad(h, out, g, kernel, input_shape, strides, padding, data_format, dilation_rate,
             groups):
    conv = ops.conv1d if ops.ndim(kernel) == 3 else ops.conv2d
    return (
        conv(h, kernel, strides, padding, data_format, dilation_rate, groups),
        ops.conv_backprop_kernel(h, g, ops.shape(kernel), strides, padding, data_format,
                                 dilation_rate, groups),
    )


def _bk_rule(x, g, kernel_shape, strides=1, padding="valid", data_format="channels_last",
             dilation_rate=1, groups=1):
    bk_geometry(x, g, kernel_shape, strides, padding, data_format, dilation_rate, groups)
    return _full_shape(kernel_shape, "kernel_shape")


def _bk_reference(x, g, kernel_shape, strides=1, padding="valid", data_format="channels_last",
                  dilation_rate=1, groups=1):
    """:func:`_ref_conv_kernel_grad` in the forward convolution's window."""
    cl = data_format == "channels_last"
    kernel_shape = tuple(int(v) for v in kernel_shape)
    win = _window(_spatial(x.shape, cl), kernel_shape[:-2], strides, dilation_rate, padding)
    return _ref_conv_kernel_grad(x, g, kernel_shape, win, cl, groups)


def _bk_grad(h, out, x, g, kernel_shape, strides, padding, data_format, dilation_rate, groups):
    conv = ops.conv1d if len(tuple(kernel_shape)) == 3 else ops.conv2d
    return (
        ops.conv_backprop_input(g, h, ops.shape(x), strides, padding, data_format,
                                dilation_rate, groups),
        conv(x, h, strides, padding, data_format, dilation_rate, groups),
    )


_BI1, _BK1 = _backprop_samples(_CONV1D_CASES, 1)
_BI2, _BK2 = _backprop_samples(_CONV2D_CASES, 2)

_BACKPROP_SIG = ("strides=1, padding='valid', data_format='channels_last', dilation_rate=1, "
                 "groups=1")

defop("conv_backprop_input", "g, kernel, input_shape, " + _BACKPROP_SIG, tensors="g, kernel",
      float_inputs=True, shape_rule=_bi_rule, reference=_bi_reference, grad=_bi_grad,
      samples=_merge(_BI1, _BI2), dtypes=FLOATS, tol="contraction",
      doc="""Internal: the gradient of ``conv1d``/``conv2d`` with respect to their input.

      ``g`` has the convolution's output shape, ``kernel`` the convolution's kernel (its rank
      picks 1-D or 2-D), ``input_shape`` is the full shape of the convolution's input; the
      other arguments are the convolution's. Used by the gradient rules.""")

defop("conv_backprop_kernel", "x, g, kernel_shape, " + _BACKPROP_SIG, tensors="x, g",
      float_inputs=True, shape_rule=_bk_rule, reference=_bk_reference, grad=_bk_grad,
      samples=_merge(_BK1, _BK2), dtypes=FLOATS, tol="contraction",
      doc="""Internal: the gradient of ``conv1d``/``conv2d`` with respect to their kernel.

      ``x`` is the convolution's input, ``g`` its output gradient, ``kernel_shape`` the full
      kernel shape (its length picks 1-D or 2-D). Used by the gradient rules.""")


# ---- depthwise internals ------------------------------------------------------------------
@_memo
def dw_bi_geometry(g_shape, kernel_shape, input_shape, strides, padding, data_format,
                   dilation_rate, op="depthwise_conv2d_backprop_input"):
    input_shape = _full_shape(input_shape)
    kernel_shape = tuple(kernel_shape)
    geo = depthwise_geometry(input_shape, kernel_shape, strides, padding, data_format,
                             dilation_rate, op)
    _check_g(g_shape, geo.out_shape(kernel_shape[2] * kernel_shape[3]))
    return geo


@_memo
def dw_bk_geometry(x_shape, g_shape, kernel_shape, strides, padding, data_format,
                   dilation_rate, op="depthwise_conv2d_backprop_kernel"):
    kernel_shape = _full_shape(kernel_shape, "kernel_shape")
    geo = depthwise_geometry(x_shape, kernel_shape, strides, padding, data_format,
                             dilation_rate, op)
    _check_g(g_shape, geo.out_shape(kernel_shape[2] * kernel_shape[3]))
    return geo


def _dw_bi_rule(g, kernel, input_shape, strides=1, padding="valid",
                data_format="channels_last", dilation_rate=1):
    dw_bi_geometry(g, kernel, input_shape, strides, padding, data_format, dilation_rate)
    return _full_shape(input_shape)


def _dw_bi_reference(g, kernel, input_shape, strides=1, padding="valid",
                     data_format="channels_last", dilation_rate=1):
    """:func:`_ref_depthwise_input_grad` in the forward convolution's window."""
    cl = data_format == "channels_last"
    win = _window(_spatial(input_shape, cl), kernel.shape[:2], strides, dilation_rate, padding)
    return _ref_depthwise_input_grad(g, kernel, win, cl)


def _dw_bi_grad(h, out, g, kernel, input_shape, strides, padding, data_format, dilation_rate):
    return (
        ops.depthwise_conv2d(h, kernel, strides, padding, data_format, dilation_rate),
        ops.depthwise_conv2d_backprop_kernel(h, g, ops.shape(kernel), strides, padding,
                                             data_format, dilation_rate),
    )


def _dw_bk_rule(x, g, kernel_shape, strides=1, padding="valid", data_format="channels_last",
                dilation_rate=1):
    dw_bk_geometry(x, g, kernel_shape, strides, padding, data_format, dilation_rate)
    return _full_shape(kernel_shape, "kernel_shape")


def _dw_bk_reference(x, g, kernel_shape, strides=1, padding="valid",
                     data_format="channels_last", dilation_rate=1):
    """:func:`_ref_depthwise_kernel_grad` in the forward convolution's window."""
    cl = data_format == "channels_last"
    kernel_shape = tuple(int(v) for v in kernel_shape)
    win = _window(_spatial(x.shape, cl), kernel_shape[:2], strides, dilation_rate, padding)
    return _ref_depthwise_kernel_grad(x, g, kernel_shape, win, cl)


def _dw_bk_grad(h, out, x, g, kernel_shape, strides, padding, data_format, dilation_rate):
    return (
        ops.depthwise_conv2d_backprop_input(g, h, ops.shape(x), strides, padding, data_format,
                                            dilation_rate),
        ops.depthwise_conv2d(x, h, strides, padding, data_format, dilation_rate),
    )


def _dw_backprop_samples():
    def gen_input(dtype, rng):
        out = []
        for name, xs, ks, s, p, df, d in _DW_CASES:
            xshape = _layout(xs, df)
            geo = depthwise_geometry(xshape, ks, s, p, df, d)
            g = _r(rng, geo.out_shape(ks[2] * ks[3]))
            out.append(Sample((g, _r(rng, ks), xshape, s, p, df, d), name=name))
        return out

    def gen_kernel(dtype, rng):
        out = []
        for name, xs, ks, s, p, df, d in _DW_CASES:
            xshape = _layout(xs, df)
            geo = depthwise_geometry(xshape, ks, s, p, df, d)
            g = _r(rng, geo.out_shape(ks[2] * ks[3]))
            out.append(Sample((_r(rng, xshape), g, ks, s, p, df, d), name=name))
        return out

    return gen_input, gen_kernel


_DWBI, _DWBK = _dw_backprop_samples()
_DW_BACKPROP_SIG = "strides=1, padding='valid', data_format='channels_last', dilation_rate=1"

defop("depthwise_conv2d_backprop_input", "g, kernel, input_shape, " + _DW_BACKPROP_SIG,
      tensors="g, kernel", float_inputs=True, shape_rule=_dw_bi_rule,
      reference=_dw_bi_reference, grad=_dw_bi_grad, samples=_DWBI, dtypes=FLOATS,
      tol="contraction",
      doc="""Internal: the gradient of ``depthwise_conv2d`` with respect to its input
      (``input_shape`` is the full input shape). Used by the gradient rules.""")

defop("depthwise_conv2d_backprop_kernel", "x, g, kernel_shape, " + _DW_BACKPROP_SIG,
      tensors="x, g", float_inputs=True, shape_rule=_dw_bk_rule, reference=_dw_bk_reference,
      grad=_dw_bk_grad, samples=_DWBK, dtypes=FLOATS, tol="contraction",
      doc="""Internal: the gradient of ``depthwise_conv2d`` with respect to its kernel
      (``kernel_shape`` is the full kernel shape). Used by the gradient rules.""")


# ---- pooling internals --------------------------------------------------------------------
def _mp_rule(x, g, pool_size, strides=None, padding="valid", data_format="channels_last"):
    geo = pool_geometry(x, pool_size, strides, padding, data_format, "max_pool_backprop")
    _check_g(g, geo.out_shape())
    return tuple(x)


def _mp_reference(x, g, pool_size, strides=None, padding="valid", data_format="channels_last"):
    """Each window's ``g`` added at the window's first maximum."""
    cl = data_format == "channels_last"
    win = _pool_window(x.shape, pool_size, strides, padding, cl)
    dx = np.zeros(x.shape)
    for pos in T.positions(win.out):
        taps, first = _ref_max_pool_first(x, win, cl, pos)
        for k, (_, src) in enumerate(taps):
            dx[_site(src, cl)] += g[_site(pos, cl)] * (first == k)
    return dx


def _mp_grad(h, out, x, g, pool_size, strides, padding, data_format):
    return (None, ops.max_pool_select(x, h, pool_size, strides, padding, data_format))


def _ms_rule(x, h, pool_size, strides=None, padding="valid", data_format="channels_last"):
    geo = pool_geometry(x, pool_size, strides, padding, data_format, "max_pool_select")
    _check_g(h, x, "h")
    return geo.out_shape()


def _ms_reference(x, h, pool_size, strides=None, padding="valid", data_format="channels_last"):
    """For each window, ``h`` at the window's first maximum of ``x``."""
    cl = data_format == "channels_last"
    win = _pool_window(x.shape, pool_size, strides, padding, cl)
    out = np.zeros(_arranged(x.shape[0], win.out, _channels(x.shape, cl), cl))
    for pos in T.positions(win.out):
        taps, first = _ref_max_pool_first(x, win, cl, pos)
        out[_site(pos, cl)] = sum(h[_site(src, cl)] * (first == k)
                                  for k, (_, src) in enumerate(taps))
    return out


def _ms_grad(g, out, x, h, pool_size, strides, padding, data_format):
    return (None, ops.max_pool_backprop(x, g, pool_size, strides, padding, data_format))


def _mp_samples(dtype, rng):
    out = []
    for name, xs, k, s, p, df in _POOL_CASES:
        xshape = _layout(xs, df)
        geo = pool_geometry(xshape, k, s, p, df)
        out.append(Sample((_r(rng, xshape, -3, 3), _r(rng, geo.out_shape()), k, s, p, df),
                          name=name))
    return out


def _ms_samples(dtype, rng):
    out = []
    for name, xs, k, s, p, df in _POOL_CASES:
        xshape = _layout(xs, df)
        out.append(Sample((_r(rng, xshape, -3, 3), _r(rng, xshape), k, s, p, df), name=name))
    return out


defop("max_pool_backprop", "x, g, " + _POOL_SIG[3:], tensors="x, g", float_inputs=True,
      shape_rule=_mp_rule, reference=_mp_reference, grad=_mp_grad, samples=_mp_samples,
      dtypes=FLOATS, tol="reduction",
      doc="""Internal: the gradient of ``max_pool`` with respect to ``x``: each window's
      ``g`` added at the window's first maximum (row-major). Used by the gradient rules.""")

defop("max_pool_select", "x, h, " + _POOL_SIG[3:], tensors="x, h", float_inputs=True,
      shape_rule=_ms_rule, reference=_ms_reference, grad=_ms_grad, samples=_ms_samples,
      dtypes=FLOATS, tol="exact",
      doc="""Internal: for each ``max_pool`` window of ``x``, the value of ``h`` (shaped like
      ``x``) at the window's first maximum; the adjoint of ``max_pool_backprop`` in ``g``.""")


def _ap_rule(g, input_shape, pool_size, strides=None, padding="valid",
             data_format="channels_last"):
    input_shape = _full_shape(input_shape)
    geo = pool_geometry(input_shape, pool_size, strides, padding, data_format,
                        "avg_pool_backprop")
    _check_g(g, geo.out_shape())
    return input_shape


def _ap_reference(g, input_shape, pool_size, strides=None, padding="valid",
                  data_format="channels_last"):
    """Each window's ``g`` divided by its number of input cells, spread over them."""
    cl = data_format == "channels_last"
    input_shape = tuple(int(v) for v in input_shape)
    win = _pool_window(input_shape, pool_size, strides, padding, cl)
    dx = np.zeros(input_shape)
    for pos in T.positions(win.out):
        taps = _taps(win, pos)
        for _, src in taps:
            dx[_site(src, cl)] += g[_site(pos, cl)] / len(taps)
    return dx


def _ap_grad(h, out, g, input_shape, pool_size, strides, padding, data_format):
    return (ops.avg_pool(h, pool_size, strides, padding, data_format),)


def _ap_samples(dtype, rng):
    out = []
    for name, xs, k, s, p, df in _POOL_CASES:
        xshape = _layout(xs, df)
        geo = pool_geometry(xshape, k, s, p, df)
        out.append(Sample((_r(rng, geo.out_shape()), xshape, k, s, p, df), name=name))
    return out


defop("avg_pool_backprop", "g, input_shape, " + _POOL_SIG[3:], tensors="g", float_inputs=True,
      shape_rule=_ap_rule, reference=_ap_reference, grad=_ap_grad, samples=_ap_samples,
      dtypes=FLOATS, tol="reduction",
      doc="""Internal: the gradient of ``avg_pool`` with respect to its input (shape
      ``input_shape``): each window's ``g`` divided by its cell count and spread over it.""")

