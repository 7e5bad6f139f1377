"""Neural-network ops: activations, softmax, normalization, dropout.

Activations are composites written from other unidl ops; every bundled backend also gives a
fused kernel (``torch.nn.functional``, ``tf.nn``), and each op has an explicit gradient rule
so the NumPy engine uses the fast kernel too. Integer inputs are cast to the default float.

Definitions (Keras 3 where the frameworks differ):

* ``gelu(x, approximate=True)``: the tanh approximation by default, as in Keras;
  ``approximate=False`` is the exact ``x * Phi(x)`` (with ``erf``).
* ``hard_sigmoid(x) = relu6(x + 3) / 6`` (Keras 3, PyTorch ``hardsigmoid``).
* ``leaky_relu`` slope 0.2 by default (Keras); ``softplus`` is computed stably.
* ``softmax`` / ``log_softmax`` subtract the maximum first: logits of ``1e4`` or ``-inf`` are
  fine (a slice that is all ``-inf`` gives NaN, as everywhere).
* ``batch_norm`` is the inference form: ``(x - mean) / sqrt(variance + epsilon) * scale +
  offset`` with the statistics given for the channel axis ``axis``; 1-D ``mean``, ``variance``,
  ``offset``, ``scale`` lie along that axis, full-rank ones broadcast as they are.
* ``layer_norm`` normalizes over ``axis`` (int or tuple) with the biased variance; ``gamma`` and
  ``beta`` have the shape of the normalized axes (in axis order), or broadcast at full rank.
* ``dropout(x, rate, seed, training)``: with an int ``seed`` the mask is *portable*, made on
  the host by ``np.random.default_rng(seed).random(x.shape) >= rate``, and kept values are
  ``x * (1 / (1 - rate))`` (the factor rounded to ``x``'s dtype), so every backend returns the
  same tensor. With ``seed=None`` each backend uses its own fast random generator.
"""

from __future__ import annotations

import math

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.export.rules import OnnxOp
from unidl.spec import _textbook as T
from unidl.spec import samples as S
from unidl.spec.core import COMPOSITE, Sample, ShapeMismatch, defop
from unidl.spec.rules import normalize_axes, normalize_axis, same_shape

__all__ = ["SELU_ALPHA", "SELU_SCALE", "dropout_mask", "check_rate", "norm_axes",
           "param_broadcast_shape"]

FLOATS = _dt.FLOAT_DTYPES
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _shape(x) -> tuple:
    return tuple(ops.shape(x))


def _where_pos(x, a, b):
    """``a`` where ``x > 0``, else ``b``."""
    return ops.where(ops.greater(x, 0.0), a, b)


# ---- float64 references, from the definitions (see unidl/spec/_textbook.py) -----------------
# Activations are evaluated element by element with Python floats and ``math`` (NaN
# propagates as it does through max/min), softmax and the normalizations lane by lane with
# ``math.fsum``; no NumPy routine (and no helper of this module the kernels use) is involved.
def _activation(fn):
    """A reference applying ``fn(v, *params)`` to every element ``v`` of ``x``."""

    def reference(x, *params):
        return T.pointwise(lambda v: fn(float(v), *params), x, dtype=np.float64)

    reference.__doc__ = fn.__doc__
    return reference


def _relu(v):
    return v if v > 0 or v != v else 0.0


def _relu6(v):
    return v if v != v else min(max(v, 0.0), 6.0)


def _leaky_relu(v, slope=0.2):
    return v if v > 0 else v * slope


def _elu(v, alpha=1.0):
    return v if v > 0 else alpha * math.expm1(v)


def _selu(v):
    return SELU_SCALE * (v if v > 0 else SELU_ALPHA * math.expm1(v))


def _gelu(v, approximate=True):
    if approximate:
        return 0.5 * v * (1.0 + math.tanh(_GELU_C * (v + _GELU_K * v * v * v)))
    return 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))


def _hard_sigmoid(v):
    return v if v != v else min(max(v + 3.0, 0.0), 6.0) / 6.0


def _softplus(v):
    """``log(1 + exp(v)) = max(v, 0) + log1p(exp(-|v|))`` (no overflowing exp)."""
    return v if v != v else max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def _softmax_lane(lane):
    """``exp(v - m) / sum(exp(v - m))`` with ``m`` the lane's maximum (NaN: a NaN lane)."""
    if not lane:
        return []
    if any(v != v for v in lane):
        return [T.NAN] * len(lane)
    m = max(lane)
    e = [T.ieee(math.exp, v - m) for v in lane]
    total = T.fsum(e)
    return [T.div(v, total) for v in e]


def _log_softmax_lane(lane):
    """``(v - m) - log(sum(exp(v - m)))`` with ``m`` the lane's maximum."""
    if not lane:
        return []
    if any(v != v for v in lane):
        return [T.NAN] * len(lane)
    m = max(lane)
    z = [v - m for v in lane]
    lse = T.ieee(math.log, T.fsum([T.ieee(math.exp, v) for v in z]))
    return [v - lse for v in z]


def _param_reader(p, x_shape, axes):
    """Read a normalization parameter at an index of ``x``: a full-rank one broadcasts, any
    other lies along ``axes`` (one dimension per axis, in order)."""
    p = np.asarray(p)
    if p.ndim == len(x_shape):
        return T.reader(p, x_shape)
    read = T.reader(p)
    return lambda idx: read([idx[a] for a in axes])


def _batch_norm_reference(x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``, element by element."""
    x = np.asarray(x)
    axes = (axis % max(x.ndim, 1),)
    rx = T.reader(x)
    m, v = _param_reader(mean, x.shape, axes), _param_reader(variance, x.shape, axes)
    s = None if scale is None else _param_reader(scale, x.shape, axes)
    o = None if offset is None else _param_reader(offset, x.shape, axes)

    def value(idx):
        y = (rx(idx) - m(idx)) / math.sqrt(v(idx) + epsilon)
        y = y if s is None else y * s(idx)
        return y if o is None else y + o(idx)

    return T.build(x.shape, value, np.float64)


def _layer_norm_reference(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` with the mean and the biased
    variance of each group of elements over ``axis`` (sums with ``math.fsum``)."""
    x = np.asarray(x)
    axes = T.axes_of(axis, x.ndim)
    kept = [k for k in range(x.ndim) if k not in axes]
    kept_shape, groups = T.lanes(x, axes)
    stats = {}
    for pos, group in zip(T.positions(kept_shape), groups):
        mu = T.fsum(group) / len(group)
        var = T.fsum([(v - mu) * (v - mu) for v in group]) / len(group)
        stats[pos] = (mu, math.sqrt(var + epsilon))
    rx = T.reader(x)
    g = None if gamma is None else _param_reader(gamma, x.shape, axes)
    b = None if beta is None else _param_reader(beta, x.shape, axes)

    def value(idx):
        mu, sd = stats[tuple(idx[k] for k in kept)]
        y = (rx(idx) - mu) / sd
        y = y if g is None else y * g(idx)
        return y if b is None else y + b(idx)

    return T.build(x.shape, value, np.float64)


def _dropout_reference(x, rate, seed=None, training=True):
    """``x / (1 - rate)`` where the portable mask keeps the element, else 0.

    The mask is the op's definition: ``np.random.default_rng(seed).random(x.shape) >= rate``
    (uniforms drawn on the host); the comparison and the scaling are done here per element.
    """
    x = np.asarray(x)
    if not training or rate == 0:
        return x
    uniforms = T.flat_values(np.random.default_rng(int(seed)).random(x.shape))
    values = [v / (1.0 - rate) if u >= rate else 0.0
              for v, u in zip(T.flat_values(x), uniforms)]
    return T.finish(values, x.shape, np.float64)


def _act_samples(low=-5.0, high=5.0, params=()):
    """Unary samples plus one sample per extra parameter tuple."""
    base = S.unary(low, high)

    def gen(dtype, rng):
        out = base(dtype, rng)
        for p in params:
            out.append(Sample((S.rand(rng, (3, 4), dtype, low, high), *p), name=f"params{p}"))
        return out

    return gen


def _act(name, signature="x", *, impl, reference, grad, samples=None, onnx=None, doc=""):
    defop(name, signature, kind=COMPOSITE, impl=impl, float_inputs=True, shape_rule=same_shape,
          reference=reference, grad=grad, samples=samples or _act_samples(), dtypes=FLOATS,
          tol="elementwise", export={"onnx": onnx} if onnx else {}, doc=doc)


# ---- activations --------------------------------------------------------------------------
# ONNX converters (``g``: an unidl.export.onnx.OnnxBuilder); gelu and silu have no ONNX op at
# the exported opset and are converted through their implementations.
def _onnx_attrs(op_type, **names):
    """A converter for ``op_type`` whose attributes are the op's arguments ``names`` maps
    (``{attribute: position after x}``)."""
    def convert(g, x, *args):
        return g.op(op_type, [x], **{k: float(args[i]) for k, i in names.items()})

    return OnnxOp(op_type, convert)


_act("relu", impl=lambda x: ops.maximum(x, 0.0), reference=_activation(_relu),
     grad=lambda g, out, x: (_where_pos(x, g, 0.0),), onnx="Relu",
     doc="Rectified linear unit, ``max(x, 0)``.")


def _relu6_grad(g, out, x):
    return (_where_pos(x, ops.where(ops.less(x, 6.0), g, 0.0), 0.0),)


_act("relu6", impl=lambda x: ops.minimum(ops.maximum(x, 0.0), 6.0),
     reference=_activation(_relu6), grad=_relu6_grad, samples=_act_samples(-9.0, 9.0),
     onnx=OnnxOp("Clip", lambda g, x: g.op("Clip", [x, g.const(0.0, g.dtype(x)),
                                                     g.const(6.0, g.dtype(x))])),
     doc="``min(max(x, 0), 6)``.")

_act("leaky_relu", "x, negative_slope=0.2",
     impl=lambda x, s: _where_pos(x, x, ops.multiply(x, s)),
     reference=_activation(_leaky_relu),
     grad=lambda g, out, x, s: (_where_pos(x, g, ops.multiply(g, s)),),
     samples=_act_samples(params=[(0.01,), (0.5,)]),
     onnx=_onnx_attrs("LeakyRelu", alpha=0),
     doc="``x`` where positive, ``negative_slope * x`` elsewhere (Keras default 0.2).")

_act("elu", "x, alpha=1.0",
     impl=lambda x, a: _where_pos(x, x, ops.multiply(ops.expm1(x), a)),
     reference=_activation(_elu),
     grad=lambda g, out, x, a: (_where_pos(x, g, ops.multiply(g, ops.add(out, a))),),
     samples=_act_samples(params=[(0.5,), (2.0,)]), onnx=_onnx_attrs("Elu", alpha=0),
     doc="Exponential linear unit: ``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.")

_act("selu",
     impl=lambda x: ops.multiply(_where_pos(x, x, ops.multiply(ops.expm1(x), SELU_ALPHA)),
                                 SELU_SCALE),
     reference=_activation(_selu),
     grad=lambda g, out, x: (_where_pos(x, ops.multiply(g, SELU_SCALE),
                                        ops.multiply(g, ops.add(out,
                                                                SELU_SCALE * SELU_ALPHA))),),
     onnx=OnnxOp("Selu", lambda g, x: g.op("Selu", [x], alpha=SELU_ALPHA, gamma=SELU_SCALE)),
     doc="Scaled ELU with the self-normalizing constants of Klambauer et al.")


def _gelu_impl(x, approximate=True):
    if approximate:
        u = ops.multiply(ops.add(x, ops.multiply(ops.multiply(ops.multiply(x, x), x), _GELU_K)),
                         _GELU_C)
        return ops.multiply(ops.multiply(x, 0.5), ops.add(ops.tanh(u), 1.0))
    return ops.multiply(ops.multiply(x, 0.5), ops.add(ops.erf(ops.multiply(x, _INV_SQRT2)), 1.0))


def _gelu_grad(g, out, x, approximate=True):
    if approximate:
        x2 = ops.multiply(x, x)
        t = ops.tanh(ops.multiply(ops.add(x, ops.multiply(ops.multiply(x2, x), _GELU_K)),
                                  _GELU_C))
        # d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)
        du = ops.multiply(ops.add(ops.multiply(x2, 3.0 * _GELU_K), 1.0), _GELU_C)
        d = ops.add(ops.multiply(ops.add(t, 1.0), 0.5),
                    ops.multiply(ops.multiply(ops.multiply(x, 0.5),
                                              ops.subtract(1.0, ops.multiply(t, t))), du))
    else:
        # d/dx = Phi(x) + x phi(x)
        cdf = ops.multiply(ops.add(ops.erf(ops.multiply(x, _INV_SQRT2)), 1.0), 0.5)
        pdf = ops.multiply(ops.exp(ops.multiply(ops.multiply(x, x), -0.5)), _INV_SQRT_2PI)
        d = ops.add(cdf, ops.multiply(x, pdf))
    return (ops.multiply(g, d),)


_act("gelu", "x, approximate=True", impl=_gelu_impl, reference=_activation(_gelu),
     grad=_gelu_grad, samples=_act_samples(params=[(False,), (True,)]),
     doc="""Gaussian error linear unit.

     ``approximate=True`` (the default, as in Keras) is the tanh form
     ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``; ``approximate=False`` the exact
     ``0.5 x (1 + erf(x / sqrt(2)))``.""")


def _sigmoid_impl(x):
    return ops.divide(1.0, ops.add(ops.exp(ops.negative(x)), 1.0))


_act("sigmoid", impl=_sigmoid_impl, reference=_activation(T.sigmoid),
     grad=lambda g, out, x: (ops.multiply(g, ops.multiply(out, ops.subtract(1.0, out))),),
     samples=_act_samples(-8.0, 8.0, params=[]), onnx="Sigmoid",
     doc="Logistic sigmoid ``1 / (1 + exp(-x))``.")


def _hard_sigmoid_grad(g, out, x):
    inside = ops.where(ops.less(x, 3.0), ops.multiply(g, 1.0 / 6.0), 0.0)
    return (ops.where(ops.greater(x, -3.0), inside, 0.0),)


_act("hard_sigmoid",
     impl=lambda x: ops.multiply(ops.minimum(ops.maximum(ops.add(x, 3.0), 0.0), 6.0), 1.0 / 6.0),
     reference=_activation(_hard_sigmoid), grad=_hard_sigmoid_grad,
     samples=_act_samples(-5.0, 5.0),
     onnx=OnnxOp("HardSigmoid", lambda g, x: g.op("HardSigmoid", [x], alpha=1.0 / 6.0,
                                                  beta=0.5)),
     doc="``relu6(x + 3) / 6`` (Keras 3 definition).")


def _softplus_impl(x):
    return ops.add(ops.log1p(ops.exp(ops.negative(ops.abs(x)))), ops.maximum(x, 0.0))


_act("softplus", impl=_softplus_impl, reference=_activation(_softplus),
     grad=lambda g, out, x: (ops.multiply(g, ops.sigmoid(x)),),
     samples=_act_samples(-30.0, 30.0), onnx="Softplus",
     doc="``log(1 + exp(x))``, computed stably for large ``|x|``.")


def _silu_grad(g, out, x):
    s = ops.sigmoid(x)
    return (ops.multiply(g, ops.multiply(s, ops.add(ops.multiply(x, ops.subtract(1.0, s)),
                                                    1.0))),)


_act("silu", impl=lambda x: ops.multiply(x, ops.sigmoid(x)),
     reference=_activation(lambda v: v * T.sigmoid(v)), grad=_silu_grad,
     doc="Sigmoid linear unit (swish), ``x * sigmoid(x)``.")


# ---- softmax ------------------------------------------------------------------------------
def _axis_rule(x, axis=-1, *rest):
    normalize_axis(axis, len(x))
    return tuple(x)


def _softmax_impl(x, axis=-1):
    e = ops.exp(ops.subtract(x, ops.stop_gradient(ops.max(x, axis, True))))
    return ops.divide(e, ops.sum(e, axis, True))


def _log_softmax_impl(x, axis=-1):
    z = ops.subtract(x, ops.stop_gradient(ops.max(x, axis, True)))
    return ops.subtract(z, ops.log(ops.sum(ops.exp(z), axis, True)))


def _softmax_grad(g, out, x, axis=-1):
    return (ops.multiply(out, ops.subtract(g, ops.sum(ops.multiply(g, out), axis, True))),)


def _log_softmax_grad(g, out, x, axis=-1):
    return (ops.subtract(g, ops.multiply(ops.exp(out), ops.sum(g, axis, True))),)


def _softmax_samples(dtype, rng):
    def r(shape, low=-5.0, high=5.0):
        return S.rand(rng, shape, dtype, low, high)

    return [
        Sample((r((3, 4)), -1), name="(3,4),axis=-1"),
        Sample((r((3, 4)), 0), name="(3,4),axis=0"),
        Sample((r((2, 3, 5)), 1), name="(2,3,5),axis=1"),
        Sample((r((2, 3, 5)), -2), name="(2,3,5),axis=-2"),
        Sample((r((5,)), 0), name="(5,)"),
        Sample((np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1.0, 0.0], [-1e4, -1e4, -1e4 + 2.0]]),
                -1), name="large_logits"),
        Sample((np.array([[-np.inf, 0.0, 1.0], [2.0, -np.inf, -np.inf]]), -1), name="-inf",
               grad=False),
        Sample((np.array([[np.nan, 0.0, 1.0], [1.0, 2.0, 3.0]]), -1), name="nan", grad=False),
        Sample((r((0, 3)), -1), name="empty_rows", grad=False),
        Sample((r((3, 0)), -1), name="empty_axis", grad=False),
    ]


def _softmax_onnx(op_type):
    def convert(g, x, axis=-1):
        if not isinstance(axis, (int, np.integer)):
            g.unsupported("several axes")
        return g.op(op_type, [x], axis=int(axis))

    return OnnxOp(op_type, convert)


defop("softmax", "x, axis=-1", kind=COMPOSITE, impl=_softmax_impl, float_inputs=True,
      shape_rule=_axis_rule, reference=lambda x, axis=-1: T.along(_softmax_lane, x, axis),
      grad=_softmax_grad,
      samples=_softmax_samples, dtypes=FLOATS, tol="reduction",
      export={"onnx": _softmax_onnx("Softmax")},
      doc="``exp(x) / sum(exp(x))`` along ``axis``, stable for large logits.")

defop("log_softmax", "x, axis=-1", kind=COMPOSITE, impl=_log_softmax_impl, float_inputs=True,
      shape_rule=_axis_rule,
      reference=lambda x, axis=-1: T.along(_log_softmax_lane, x, axis), grad=_log_softmax_grad,
      samples=_softmax_samples, dtypes=FLOATS, tol="reduction",
      export={"onnx": _softmax_onnx("LogSoftmax")},
      doc="``x - logsumexp(x)`` along ``axis``, stable for large logits.")


# ---- normalization ------------------------------------------------------------------------
def param_broadcast_shape(param_shape, x_shape, axes) -> tuple | None:
    """Shape to reshape a normalization parameter to so that it broadcasts against ``x``.

    A parameter with one dimension per axis in ``axes`` (sorted) is laid along those axes;
    one of ``x``'s rank is used as it is (``None`` is returned: no reshape needed).
    """
    param_shape, x_shape = tuple(param_shape), tuple(x_shape)
    if len(param_shape) == len(x_shape):
        return None
    if len(param_shape) != len(axes):
        raise ShapeMismatch(f"expected a parameter of shape {tuple(x_shape[a] for a in axes)} "
                            f"(or of rank {len(x_shape)}), got {param_shape}")
    out = [1] * len(x_shape)
    for a, d in zip(axes, param_shape):
        out[a] = d
    return tuple(out)


def _check_params(x, axes, **params):
    want = tuple(x[a] for a in axes)
    for name, p in params.items():
        if p is None:
            continue
        p = tuple(p)
        if len(p) == len(x):
            ok = all(d in (1, xd) for d, xd in zip(p, x))
        else:
            ok = p == want
        if not ok:
            raise ShapeMismatch(f"expected {name} of shape {want} (or broadcastable at rank "
                                f"{len(x)}), got {p} for x of shape {tuple(x)}")


def _batch_norm_shape(x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    axes = (normalize_axis(axis, len(x)),) if len(x) else ()
    _check_params(tuple(x), axes, mean=mean, variance=variance, offset=offset, scale=scale)
    return tuple(x)


def _bparam(p, x_shape, axes):
    if p is None:
        return None
    shp = param_broadcast_shape(_shape(p), x_shape, axes)
    return p if shp is None else ops.reshape(p, shp)


def _batch_norm_impl(x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    xs = _shape(x)
    axes = (normalize_axis(axis, len(xs)),)
    inv = ops.divide(1.0, ops.sqrt(ops.add(_bparam(variance, xs, axes), epsilon)))
    if scale is not None:
        inv = ops.multiply(inv, _bparam(scale, xs, axes))
    y = ops.multiply(ops.subtract(x, _bparam(mean, xs, axes)), inv)
    if offset is not None:
        y = ops.add(y, _bparam(offset, xs, axes))
    return y


def _reduce_to_param(t, p, x_shape, axes):
    """Sum a full-shape gradient ``t`` back to parameter ``p``'s layout along ``axes``."""
    if p is None:
        return None
    if len(_shape(p)) == len(x_shape):
        return t  # same rank: the engine sums broadcast dimensions back
    others = tuple(i for i in range(len(x_shape)) if i not in axes)
    return ops.sum(t, others, False) if others else t


def _batch_norm_grad(g, out, x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    xs = _shape(x)
    axes = (normalize_axis(axis, len(xs)),)
    inv = ops.divide(1.0, ops.sqrt(ops.add(_bparam(variance, xs, axes), epsilon)))
    sc = _bparam(scale, xs, axes)
    xc = ops.subtract(x, _bparam(mean, xs, axes))
    gs = g if sc is None else ops.multiply(g, sc)  # gradient of the normalized value
    gx = ops.multiply(gs, inv)
    gvar = ops.multiply(ops.multiply(gs, xc), ops.multiply(ops.multiply(ops.multiply(inv, inv),
                                                                        inv), -0.5))
    return (gx,
            _reduce_to_param(ops.negative(gx), mean, xs, axes),
            _reduce_to_param(gvar, variance, xs, axes),
            _reduce_to_param(g, offset, xs, axes),
            _reduce_to_param(ops.multiply(g, ops.multiply(xc, inv)), scale, xs, axes))


def _batch_norm_samples(dtype, rng):
    def r(shape, low=-3.0, high=3.0):
        return S.rand(rng, shape, dtype, low, high)

    def stats(c):
        return r((c,)), r((c,), 0.2, 2.0), r((c,)), r((c,), 0.5, 2.0)

    m, v, o, s = stats(3)
    m4, v4, o4, s4 = stats(4)
    return [
        Sample((r((5, 3)), m, v, o, s, 1e-3, -1), name="(5,3),axis=-1"),
        Sample((r((2, 3, 4, 2)), m, v, o, s, 1e-3, 1), name="(2,3,4,2),axis=1"),
        Sample((r((2, 5, 4)), m4, v4, None, None, 1e-3, -1), name="no_offset_scale"),
        Sample((r((2, 4)), m4, v4, o4, None, 0.1, 1), name="offset_only,eps=0.1"),
        Sample((r((2, 5, 4)), m4.reshape(1, 1, 4), v4.reshape(1, 1, 4), o4, s4, 1e-3, -1),
               name="full_rank_stats"),
        Sample((r((0, 3)), m, v, o, s, 1e-3, -1), name="empty_batch", grad=False),
    ]


def _batch_norm_onnx(g, x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    """ONNX ``BatchNormalization`` (channels on axis 1: ``x`` transposed there and back)."""
    shape = g.shape(x)
    r = len(shape)
    params = [p for p in (mean, variance, offset, scale) if p is not None]
    if r < 2 or any(len(g.shape(p)) != 1 for p in params):
        g.unsupported("statistics of full rank, or an input of rank < 2")
    a = normalize_axis(axis, r)
    c, dtype = shape[a], g.dtype(x)
    scale = scale if scale is not None else g.const(np.ones(c), dtype)
    offset = offset if offset is not None else g.const(np.zeros(c), dtype)
    others = [i for i in range(r) if i != a]
    perm = others[:1] + [a] + others[1:]
    y = g.op("BatchNormalization", [g.transpose(x, perm), scale, offset, mean, variance],
             epsilon=float(epsilon))
    return g.transpose(y, np.argsort(perm))


defop("batch_norm", "x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1",
      kind=COMPOSITE, impl=_batch_norm_impl, tensors="x, mean, variance, offset, scale",
      float_inputs=True, shape_rule=_batch_norm_shape, reference=_batch_norm_reference,
      grad=_batch_norm_grad, samples=_batch_norm_samples, dtypes=FLOATS, tol="elementwise",
      export={"onnx": OnnxOp("BatchNormalization", _batch_norm_onnx)},
      doc="""Batch normalization with given statistics (the inference form).

      ``(x - mean) / sqrt(variance + epsilon) * scale + offset``, the statistics laid along
      the channel axis ``axis`` (-1: channels-last). ``offset`` and ``scale`` are optional.""")


def norm_axes(axis, ndim: int) -> tuple[int, ...]:
    """``layer_norm``'s ``axis`` (int or sequence) as sorted non-negative axes."""
    if axis is None:
        raise ShapeMismatch("expected an int or a tuple of ints for axis, got None")
    return normalize_axes(axis, ndim)


def _layer_norm_shape(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    axes = norm_axes(axis, len(x))
    _check_params(tuple(x), axes, gamma=gamma, beta=beta)
    return tuple(x)


def _group_size(x_shape, axes) -> int:
    return int(np.prod([x_shape[a] for a in axes], dtype=np.int64))


def _layer_norm_stats(x, axes):
    n = float(max(_group_size(_shape(x), axes), 1))
    mu = ops.multiply(ops.sum(x, axes, True), 1.0 / n)
    xc = ops.subtract(x, mu)
    var = ops.multiply(ops.sum(ops.multiply(xc, xc), axes, True), 1.0 / n)
    return xc, var, n


def _layer_norm_impl(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    xs = _shape(x)
    axes = norm_axes(axis, len(xs))
    xc, var, _ = _layer_norm_stats(x, axes)
    y = ops.multiply(xc, ops.divide(1.0, ops.sqrt(ops.add(var, epsilon))))
    if gamma is not None:
        y = ops.multiply(y, _bparam(gamma, xs, axes))
    if beta is not None:
        y = ops.add(y, _bparam(beta, xs, axes))
    return y


def _layer_norm_grad(g, out, x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    xs = _shape(x)
    axes = norm_axes(axis, len(xs))
    xc, var, n = _layer_norm_stats(x, axes)
    inv = ops.divide(1.0, ops.sqrt(ops.add(var, epsilon)))
    xhat = ops.multiply(xc, inv)
    gh = g if gamma is None else ops.multiply(g, _bparam(gamma, xs, axes))

    def mean(t):
        return ops.multiply(ops.sum(t, axes, True), 1.0 / n)

    gx = ops.multiply(inv, ops.subtract(ops.subtract(gh, mean(gh)),
                                        ops.multiply(xhat, mean(ops.multiply(gh, xhat)))))
    others = tuple(i for i in range(len(xs)) if i not in axes)

    def reduce(t, p):
        if p is None:
            return None
        if len(_shape(p)) == len(xs) or not others:
            return t
        return ops.sum(t, others, False)

    return gx, reduce(ops.multiply(g, xhat), gamma), reduce(g, beta)


def _layer_norm_samples(dtype, rng):
    def r(shape, low=-3.0, high=3.0):
        return S.rand(rng, shape, dtype, low, high)

    return [
        Sample((r((4, 5)), r((5,)), r((5,)), -1, 1e-3), name="(4,5),axis=-1"),
        Sample((r((2, 3, 4)), r((3, 4)), r((3, 4)), (-2, -1), 1e-3), name="axis=(-2,-1)"),
        Sample((r((2, 3, 4)), r((3,)), r((3,)), 1, 1e-3), name="axis=1"),
        Sample((r((2, 3, 4)), r((2, 4)), None, (0, 2), 1e-5), name="axis=(0,2),no_beta"),
        Sample((r((3, 6)), None, None, -1, 1e-3), name="no_params"),
        Sample((r((2, 3, 4)), r((1, 1, 4)), r((1, 1, 4)), -1, 1e-3), name="full_rank_params"),
        Sample((r((0, 4)), r((4,)), r((4,)), -1, 1e-3), name="empty_batch", grad=False),
    ]


def _layer_norm_onnx(g, x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    """ONNX ``LayerNormalization`` over the trailing axes from ``axis`` on."""
    shape = g.shape(x)
    axes = norm_axes(axis, len(shape))
    tail = tuple(shape[axes[0]:])
    if axes != tuple(range(axes[0], len(shape))) or None in tail or any(
            tuple(g.shape(p)) != tail for p in (gamma, beta) if p is not None):
        g.unsupported("normalized axes that are not the trailing ones, or parameters that "
                      "are not of their shape")
    gamma = gamma if gamma is not None else g.const(np.ones(tail), g.dtype(x))
    return g.op("LayerNormalization", [x, gamma, beta], axis=axes[0], epsilon=float(epsilon))


defop("layer_norm", "x, gamma=None, beta=None, axis=-1, epsilon=1e-3", kind=COMPOSITE,
      impl=_layer_norm_impl, tensors="x, gamma, beta", float_inputs=True,
      shape_rule=_layer_norm_shape, reference=_layer_norm_reference, grad=_layer_norm_grad,
      samples=_layer_norm_samples, dtypes=FLOATS, tol="reduction",
      export={"onnx": OnnxOp("LayerNormalization", _layer_norm_onnx)},
      doc="""Layer normalization: statistics (mean, biased variance) over ``axis``.

      ``(x - mean) / sqrt(var + epsilon) * gamma + beta``; ``axis`` is an int or a tuple,
      ``gamma`` and ``beta`` (optional) have the shape of the normalized axes.""")


# ---- dropout ------------------------------------------------------------------------------
def check_rate(rate) -> float:
    """``rate`` as a float in ``[0, 1)``; raises ValueError otherwise."""
    r = float(rate)
    if not 0.0 <= r < 1.0:
        raise ValueError(f"expected a dropout rate in [0, 1), got {rate!r}")
    return r


def dropout_mask(shape, rate: float, seed: int) -> np.ndarray:
    """The portable keep-mask of ``dropout`` (a NumPy bool array of ``shape``)."""
    return np.asarray(np.random.default_rng(int(seed)).random(tuple(shape)) >= rate)


def _dropout_shape(x, rate, seed=None, training=True):
    try:
        check_rate(rate)
    except (TypeError, ValueError) as exc:
        raise ShapeMismatch(str(exc)) from None
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ShapeMismatch(f"expected an int seed or None, got {type(seed).__name__}")
    return tuple(x)


def _dropout_grad(g, out, x, rate, seed=None, training=True):
    r = check_rate(rate)
    if not training or r == 0.0:
        return (g,)
    if seed is not None:
        mask = ops.convert_to_tensor(dropout_mask(_shape(x), r, seed))
    else:  # no seed to replay: kept elements are the non-zero outputs
        mask = ops.not_equal(out, 0.0)
    return (ops.where(mask, ops.multiply(g, 1.0 / (1.0 - r)), 0.0),)


def _dropout_samples(dtype, rng):
    def r(shape):
        return S.rand(rng, shape, dtype, -3.0, 3.0, avoid_zero=True)

    return [
        Sample((r((4, 5)), 0.5, 42, True), name="rate=0.5"),
        Sample((r((2, 3, 4)), 0.25, 7, True), name="rate=0.25"),
        Sample((r((3, 4)), 0.0, 1, True), name="rate=0"),
        Sample((r((3, 4)), 0.5, 3, False), name="inference"),
        Sample((r(()), 0.3, 5, True), name="scalar"),
        Sample((r((0, 3)), 0.5, 11, True), name="empty", grad=False),
    ]


def _dropout_onnx(g, x, rate, seed=None, training=True):
    if training and check_rate(rate) > 0.0:
        g.unsupported("dropout with training=True (random) in an inference graph")
    return g.op("Identity", [x])


defop("dropout", "x, rate, seed=None, training=True", float_inputs=True,
      shape_rule=_dropout_shape, reference=_dropout_reference, grad=_dropout_grad,
      samples=_dropout_samples, dtypes=FLOATS, tol="elementwise",
      export={"onnx": OnnxOp("Identity", _dropout_onnx)},
      doc="""Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

      ``training=False`` or ``rate == 0`` returns ``x``. With an int ``seed`` the mask is
      ``np.random.default_rng(seed).random(x.shape) >= rate``, made on the host, so every
      backend gives the same result; with ``seed=None`` the backend's own generator is used.""")
