"""TensorFlow convolution and pooling kernels.

Everything runs as 2-D NHWC (TensorFlow's CPU kernels support only that layout): 1-D inputs
get a height of 1, channels-first inputs are transposed. Padding always comes from the shared
geometry (``unidl.spec.conv``) and is passed as ``EXPLICIT`` paddings, so every backend pads
identically.

TensorFlow's CPU kernels lack some gradients: ``Conv2DBackpropInput``/``Filter`` reject
dilation > 1 and groups > 1, and the depthwise backprops reject dilation > 1 and unequal
strides. The kernels here work around them: a dilated kernel is built explicitly (zeros
between taps), groups are split, unequal depthwise strides are done at stride 1 on a
zero-upsampled gradient. Grouped/dilated forward convolutions keep TensorFlow's fused op and
get their gradient through ``tf.custom_gradient`` from those workarounds, so native autodiff
(any order) works. float16/bfloat16 are computed in float32 and rounded once.

An empty batch never reaches a convolution or ``MaxPoolWithArgmax`` kernel
(:func:`unidl_tensorflow.onednn.if_batch`). oneDNN's convolutions (CPUs where TensorFlow
enables oneDNN) return the input's shape for it, its fused filter-and-bias gradient fails on
it, TensorFlow's depthwise filter gradient returns uninitialized memory for it on every CPU,
and ``MaxPoolWithArgmax`` rejects it.

TensorFlow's ``MaxPool`` drops a NaN in its window (every mode), and XLA's ``reduce_max``
drops it too: ``max_pool`` and ``global_max_pool`` put it back
(:mod:`unidl_tensorflow.kernels.nan`), as the spec's rule (NumPy's ``max``) has it.
"""

from __future__ import annotations

import tensorflow as tf

from unidl.backend.conv_kernels import conv_kernels
from unidl.spec import conv as C
from unidl_tensorflow import onednn
from unidl_tensorflow.kernels import facts
from unidl_tensorflow.kernels.nan import max_pool_keeping_nan, reduced_nan

_LOW = (tf.float16, tf.bfloat16)


# ---- layout helpers -----------------------------------------------------------------------
def _up(*ts):
    ts = [tf.convert_to_tensor(t) for t in ts]
    dt = ts[0].dtype
    if dt in _LOW:
        return [tf.cast(t, tf.float32) for t in ts], dt
    return ts, dt


def _down(y, dt):
    return y if y.dtype == dt else tf.cast(y, dt)


class _G2:
    """A geometry as 2-D NHWC: 1-D geometries get a unit height."""

    def __init__(self, geo):
        self.geo = geo
        one = geo.rank == 1
        self.kernel = (1, *geo.kernel) if one else tuple(geo.kernel)
        self.strides = (1, *geo.strides) if one else tuple(geo.strides)
        self.dilation = (1, *geo.dilation) if one else tuple(geo.dilation)
        self.pads = ((0, 0), *geo.pads) if one else tuple(geo.pads)
        self.in_sizes = (1, *geo.in_sizes) if one else tuple(geo.in_sizes)
        self.out_sizes = (1, *geo.out_sizes) if one else tuple(geo.out_sizes)
        self.eff = tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation))

    @property
    def strides4(self):
        return [1, self.strides[0], self.strides[1], 1]

    @property
    def explicit(self):
        """``explicit_paddings`` for the raw ops (flat, NHWC)."""
        (t, b), (left, right) = self.pads
        return [0, 0, t, b, left, right, 0, 0]

    @property
    def nested(self):
        (t, b), (left, right) = self.pads
        return [[0, 0], [t, b], [left, right], [0, 0]]

    @property
    def named(self):
        """``"VALID"`` or ``"SAME"`` where the pads are what TensorFlow's named padding
        gives, else None. Named padding selects TensorFlow's fast kernels: with
        ``EXPLICIT`` padding (even all zeros) the CPU convolution gradients run 2-3x
        slower (a small CNN's train step: 1.5-2x)."""
        if not any(p for pair in self.pads for p in pair):
            return "VALID"
        for n, s, e, o, (b, a) in zip(self.in_sizes, self.strides, self.eff,
                                      self.out_sizes, self.pads):
            total = max((o - 1) * s + e - n, 0)
            if o != -(-n // s) or (b, a) != (total // 2, total - total // 2):
                return None
        return "SAME"

    @property
    def padding(self):
        """``padding`` for ``tf.nn`` ops: a name where one fits, else the nested pads."""
        return self.named or self.nested

    @property
    def raw_padding(self):
        """``{padding, explicit_paddings}`` for the raw backprop ops."""
        named = self.named
        if named:
            return {"padding": named, "explicit_paddings": []}
        return {"padding": "EXPLICIT", "explicit_paddings": self.explicit}


def _nhwc(x, geo):
    if not geo.channels_last:
        x = tf.transpose(x, [0, *range(2, geo.rank + 2), 1])
    if geo.rank == 1:
        x = tf.expand_dims(x, 1)
    return x


def _unnhwc(y, geo):
    if geo.rank == 1:
        y = tf.squeeze(y, 1)
    if not geo.channels_last:
        y = tf.transpose(y, [0, geo.rank + 1, *range(1, geo.rank + 1)])
    return y


def _kernel2d(kernel, geo):
    return tf.expand_dims(kernel, 0) if geo.rank == 1 else kernel


def _unkernel2d(kernel, geo):
    return tf.squeeze(kernel, 0) if geo.rank == 1 else kernel


def _spread(t, axis, factor):
    """Insert ``factor - 1`` zeros between the elements of ``t`` along ``axis``."""
    if factor == 1:
        return t
    n = t.shape[axis]
    t = tf.expand_dims(t, axis + 1)
    pads = [[0, 0]] * len(t.shape)
    pads[axis + 1] = [0, factor - 1]
    t = tf.pad(t, pads)
    shape = [-1 if i == 0 else s for i, s in enumerate(t.shape)]
    shape = shape[:axis] + [n * factor] + shape[axis + 2:]
    t = tf.reshape(t, shape)
    begin = [0] * len(shape)
    size = [-1] * len(shape)
    size[axis] = (n - 1) * factor + 1
    return tf.slice(t, begin, size)


def _dilate(kernel, dilation):
    """A kernel with explicit zeros between its taps (so dilation becomes 1)."""
    return _spread(_spread(kernel, 0, dilation[0]), 1, dilation[1])


def _in_sizes4(t, g2, channels):
    return tf.stack([tf.shape(t)[0], g2.in_sizes[0], g2.in_sizes[1], channels])


# ---- convolution building blocks (NHWC, 2-D) ----------------------------------------------
def _bi(g, kernel, g2, groups, batch_from):
    """Input gradient of a convolution: ``g`` (N, OH, OW, O) -> (N, H, W, C)."""
    if g2.dilation != (1, 1):
        kernel = _dilate(kernel, g2.dilation)
    cg = kernel.shape[2]
    if groups > 1:
        gs = tf.split(g, groups, axis=3)
        ks = tf.split(kernel, groups, axis=3)
        return tf.concat([_bi1(gi, ki, g2, cg, batch_from) for gi, ki in zip(gs, ks)], axis=3)
    return _bi1(g, kernel, g2, cg, batch_from)


def _bi1(g, kernel, g2, channels, batch_from):
    return tf.raw_ops.Conv2DBackpropInput(
        input_sizes=_in_sizes4(batch_from, g2, channels), filter=kernel, out_backprop=g,
        strides=g2.strides4, **g2.raw_padding)


def _bk(x, g, kshape4, g2, groups):
    """Kernel gradient of a convolution: -> (kh, kw, C / groups, O)."""
    kh, kw, cg, o = kshape4
    eff = [g2.eff[0], g2.eff[1], cg, o // groups]
    if groups > 1:
        xs = tf.split(x, groups, axis=3)
        gs = tf.split(g, groups, axis=3)
        k = tf.concat([_bk1(xi, gi, eff, g2) for xi, gi in zip(xs, gs)], axis=3)
    else:
        k = _bk1(x, g, eff, g2)
    if g2.dilation != (1, 1):
        k = k[::g2.dilation[0], ::g2.dilation[1]]
    return k


def _bk1(x, g, eff, g2):
    return tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=eff, out_backprop=g, strides=g2.strides4, **g2.raw_padding)


def _fwd(x, kernel, g2, groups):
    """Forward convolution: fused TF op; custom gradient where TF's CPU has none."""
    if groups == 1 and g2.dilation == (1, 1):
        return tf.nn.conv2d(x, kernel, g2.strides4, g2.padding)
    kshape = list(kernel.shape)

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.nn.conv2d(x, kernel, g2.strides4, g2.padding,
                         dilations=[1, g2.dilation[0], g2.dilation[1], 1])

        def grad(dy):
            return _bi(dy, kernel, g2, groups, x), _bk(x, dy, kshape, g2, groups)

        return y, grad

    return conv(x, kernel)


def _conv(x, kernel, geo, groups, bias=None):
    """The convolution, or zeros where it has no output element (an empty batch, no output
    channel). oneDNN's ``Conv2D`` returns a wrong shape for an empty batch, and fails for
    zero output channels (CPUs where TensorFlow enables oneDNN). A batch unknown at trace
    time is checked at run time only where oneDNN runs (:func:`onednn.if_batch`)."""
    out_shape = geo.out_shape(kernel.shape[-1])
    if 0 in out_shape[1:]:
        return onednn.batch_zeros(x, out_shape, x.dtype)
    return onednn.if_batch(x, lambda: _conv_nonempty(x, kernel, geo, groups, bias),
                           lambda: onednn.batch_zeros(x, out_shape, x.dtype),
                           dynamic=onednn.enabled())


def _conv_nonempty(x, kernel, geo, groups, bias):
    """The convolution, with the fact that proves it finite in a graph (:mod:`facts`)."""
    (xu, ku), dt = _up(x, kernel)
    g2 = _G2(geo)
    y = _fwd(_nhwc(xu, geo), _kernel2d(ku, geo), g2, groups)
    if bias is not None:  # a BiasAdd, which Grappler fuses into the convolution
        y = tf.nn.bias_add(y, tf.cast(bias, y.dtype) if bias.dtype != y.dtype else bias)
    return facts.conv_fact(_down(_unnhwc(y, geo), dt), x, kernel, bias,
                           recompute=lambda: _conv_nonempty(x, kernel, geo, groups, bias))


def _conv_backprop_input(g, kernel, geo, groups, batch_like=None):
    (g, kernel), dt = _up(g, kernel)
    g2 = _G2(geo)
    gn = _nhwc(g, geo)
    x = _bi(gn, _kernel2d(kernel, geo), g2, groups, gn if batch_like is None else batch_like)
    return _down(_unnhwc(x, geo), dt)


def _conv_backprop_kernel(x, g, kernel_shape, geo, groups):
    (x, g), dt = _up(x, g)
    g2 = _G2(geo)
    kshape4 = (1, *kernel_shape) if geo.rank == 1 else tuple(kernel_shape)
    k = _bk(_nhwc(x, geo), _nhwc(g, geo), kshape4, g2, groups)
    return _down(_unkernel2d(k, geo), dt)



# ---- depthwise ----------------------------------------------------------------------------
def _dw_native(g2):
    """TF's depthwise ops handle only equal strides (dilation is made explicit)."""
    return g2.strides[0] == g2.strides[1]


def _dw_fwd(x, kernel, g2):
    kernel = _dilate(kernel, g2.dilation)
    x, padding = _dw_padding(x, g2)
    if _dw_native(g2):
        return tf.nn.depthwise_conv2d(x, kernel, g2.strides4, padding)
    y = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], padding)
    return y[:, ::g2.strides[0], ::g2.strides[1]][:, :g2.out_sizes[0], :g2.out_sizes[1]]


def _dw_padding(x, g2):
    """``(x, padding)`` for ``depthwise_conv2d``. Explicit padding, except in a graph that
    oneDNN may fuse: there Grappler fuses an explicitly padded ``DepthwiseConv2dNative`` with
    the ``BiasAdd`` after it into a oneDNN kernel that aborts the whole process (tensorflow-
    cpu 2.21: "Check failed: index >= 0 && index < num_total_dims ... H" in
    tensor_format.h), so the padding is a ``tf.pad`` and the convolution ``VALID``."""
    if not onednn.in_fusing_graph():
        return x, g2.nested
    if any(p for pair in g2.pads for p in pair):
        x = tf.pad(x, g2.nested)
    return x, "VALID"


def _upsample_g(g, g2):
    """``g`` zero-upsampled to the stride-1 output size (for unequal strides)."""
    g = _spread(_spread(g, 1, g2.strides[0]), 2, g2.strides[1])
    full = [n + b + a - e + 1 for n, (b, a), e in zip(g2.in_sizes, g2.pads, g2.eff)]
    return tf.pad(g, [[0, 0], [0, full[0] - g.shape[1]], [0, full[1] - g.shape[2]], [0, 0]])


def _dw_bi(g, kernel, g2, batch_from):
    c = kernel.shape[2]
    kernel = _dilate(kernel, g2.dilation)
    strides = g2.strides4
    if not _dw_native(g2):
        g, strides = _upsample_g(g, g2), [1, 1, 1, 1]
    return tf.nn.depthwise_conv2d_backprop_input(_in_sizes4(batch_from, g2, c), kernel, g,
                                                 strides, g2.nested)


def _dw_bk(x, g, kshape4, g2):
    kh, kw, c, m = kshape4
    strides = g2.strides4
    if not _dw_native(g2):
        g, strides = _upsample_g(g, g2), [1, 1, 1, 1]
    k = tf.nn.depthwise_conv2d_backprop_filter(x, [g2.eff[0], g2.eff[1], c, m], g, strides,
                                               g2.nested)
    if g2.dilation != (1, 1):
        k = k[::g2.dilation[0], ::g2.dilation[1]]
    return k


def depthwise_conv2d(x, kernel, strides, padding, data_format, dilation_rate):
    """The depthwise convolution; zeros for an empty batch, which no kernel sees.

    oneDNN's ``DepthwiseConv2dNative`` returns the input's shape for an empty batch (CPUs
    where TensorFlow enables oneDNN). TensorFlow's own filter gradient returns
    uninitialized memory for it on every CPU. So a batch unknown at trace time is always
    checked at run time (:func:`onednn.if_batch`).
    """
    geo = C.depthwise_geometry(tuple(x.shape), tuple(kernel.shape), strides, padding,
                               data_format, dilation_rate)
    out_shape = geo.out_shape(kernel.shape[2] * kernel.shape[3])

    def compute():
        (xu, ku), dt = _up(x, kernel)
        return _down(_unnhwc(_dw_fwd(_nhwc(xu, geo), ku, _G2(geo)), geo), dt)

    return onednn.if_batch(x, compute, lambda: onednn.batch_zeros(x, out_shape, x.dtype))


def depthwise_conv2d_backprop_input(g, kernel, input_shape, strides, padding, data_format,
                                    dilation_rate):
    geo = C.dw_bi_geometry(tuple(g.shape), tuple(kernel.shape), input_shape, strides, padding,
                           data_format, dilation_rate)
    (g, kernel), dt = _up(g, kernel)
    gn = _nhwc(g, geo)
    return _down(_unnhwc(_dw_bi(gn, kernel, _G2(geo), gn), geo), dt)


def depthwise_conv2d_backprop_kernel(x, g, kernel_shape, strides, padding, data_format,
                                     dilation_rate):
    """The depthwise kernel gradient; zeros for an empty batch. TensorFlow's
    ``DepthwiseConv2dNativeBackpropFilter`` returns uninitialized memory for an empty batch,
    on every CPU."""
    kernel_shape = tuple(int(v) for v in kernel_shape)
    geo = C.dw_bk_geometry(tuple(x.shape), tuple(g.shape), kernel_shape, strides, padding,
                           data_format, dilation_rate)

    def compute():
        (xu, gu), dt = _up(x, g)
        return _down(_dw_bk(_nhwc(xu, geo), _nhwc(gu, geo), kernel_shape, _G2(geo)), dt)

    return onednn.if_batch(x, compute, lambda: tf.zeros(kernel_shape, x.dtype))


# ---- pooling ------------------------------------------------------------------------------
def _pool_args(geo):
    g2 = _G2(geo)
    pad = "SAME" if geo.padded else "VALID"  # geometry pads are TF's own "SAME" pads
    return [1, *g2.kernel, 1], g2.strides4, pad


def _pool_geo(x, pool_size, strides, padding, data_format, op):
    return C.pool_geometry(tuple(x.shape), pool_size, strides, padding, data_format, op)


def max_pool(x, pool_size, strides, padding, data_format):
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "max_pool")
    fact = facts.of(x)
    (x,), dt = _up(x)
    k, s, pad = _pool_args(geo)
    y = max_pool_keeping_nan(_nhwc(x, geo), k, s, pad, fact)  # (MaxPool drops NaN)
    return facts.pass_on(_down(_unnhwc(y, geo), dt), fact)


def avg_pool(x, pool_size, strides, padding, data_format):
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "avg_pool")
    (x,), dt = _up(x)
    k, s, pad = _pool_args(geo)
    return _down(_unnhwc(tf.nn.avg_pool2d(_nhwc(x, geo), k, s, pad), geo), dt)


def _argmax(xn, geo):
    """Flat NHWC index of each window's first maximum (padded cells never win)."""
    k, s, pad = _pool_args(geo)
    _, idx = tf.nn.max_pool_with_argmax(tf.stop_gradient(xn), k, s, pad,
                                        include_batch_in_index=True)
    return idx


def max_pool_backprop(x, g, pool_size, strides, padding, data_format):
    """The max-pool input gradient; zeros for an empty batch, which ``MaxPoolWithArgmax``
    rejects ("tensor_in must not be empty", every CPU)."""
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "max_pool_backprop")

    def compute():
        (xu, gu), dt = _up(x, g)
        xn, gn = _nhwc(xu, geo), _nhwc(gu, geo)
        idx = _argmax(xn, geo)
        total = tf.size(xn, out_type=tf.int64)
        flat = tf.math.unsorted_segment_sum(tf.reshape(gn, [-1]), tf.reshape(idx, [-1]),
                                            total)
        return _down(_unnhwc(tf.reshape(flat, tf.shape(xn)), geo), dt)

    return onednn.if_batch(x, compute, lambda: tf.zeros_like(x))


def max_pool_select(x, h, pool_size, strides, padding, data_format):
    """``h`` at each window's maximum of ``x``; empty for an empty batch (see
    :func:`max_pool_backprop`)."""
    geo = _pool_geo(x, pool_size, strides, padding, data_format, "max_pool_select")

    def compute():
        (xu, hu), dt = _up(x, h)
        xn, hn = _nhwc(xu, geo), _nhwc(hu, geo)
        idx = _argmax(xn, geo)
        return _down(_unnhwc(tf.gather(tf.reshape(hn, [-1]), idx), geo), dt)

    return onednn.if_batch(x, compute,
                           lambda: onednn.batch_zeros(x, geo.out_shape(), x.dtype))


def avg_pool_backprop(g, input_shape, pool_size, strides, padding, data_format):
    input_shape = tuple(int(v) for v in input_shape)
    geo = C.pool_geometry(input_shape, pool_size, strides, padding, data_format,
                          "avg_pool_backprop")
    (g,), dt = _up(g)
    k, s, pad = _pool_args(geo)
    gn = _nhwc(g, geo)
    g2 = _G2(geo)
    shape = tf.stack([tf.shape(gn)[0], g2.in_sizes[0], g2.in_sizes[1], geo.channels])
    x = tf.raw_ops.AvgPoolGrad(orig_input_shape=shape, grad=gn, ksize=k, strides=s,
                               padding=pad)
    return _down(_unnhwc(x, geo), dt)


def global_avg_pool(x, data_format, keepdims):
    (x,), dt = _up(x)
    axes = list(C._global_axes(len(x.shape), data_format))
    return _down(tf.reduce_mean(x, axis=axes, keepdims=keepdims), dt)


def global_max_pool(x, data_format, keepdims):
    axes = list(C._global_axes(len(x.shape), data_format))
    return reduced_nan(tf.reduce_max(x, axis=axes, keepdims=keepdims), x, axes, keepdims)


KERNELS = {
    **conv_kernels(_conv, _conv_backprop_input, _conv_backprop_kernel),
    "depthwise_conv2d": depthwise_conv2d,
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "global_avg_pool": global_avg_pool,
    "global_max_pool": global_max_pool,
    "depthwise_conv2d_backprop_input": depthwise_conv2d_backprop_input,
    "depthwise_conv2d_backprop_kernel": depthwise_conv2d_backprop_kernel,
    "max_pool_backprop": max_pool_backprop,
    "max_pool_select": max_pool_select,
    "avg_pool_backprop": avg_pool_backprop,
}
