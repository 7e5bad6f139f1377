"""Loss ops: per-example losses, reduced over the class/feature axis only (never the batch).

Keras 3 semantics throughout:

* from probabilities (``from_logits=False``) the output is clipped to ``[EPSILON, 1 - EPSILON]``
  with ``EPSILON = 1e-7``; the categorical losses first divide the output by its sum along the
  class axis (so unnormalized scores are accepted);
* from logits the losses use the stable ``log_softmax`` / ``softplus`` forms, so logits of
  ``+-1e4`` give finite losses and gradients.

Each op is a composite (its implementation from other unidl ops is the fallback for backends
without a kernel) with its own gradient rule; NumPy, PyTorch and TensorFlow give fused kernels
(``torch.nn.functional.cross_entropy``, ``tf.nn.sparse_softmax_cross_entropy_with_logits``…).
The gradient of the clip is taken as 1 inside ``[EPSILON, 1 - EPSILON]`` (bounds included,
as ``torch.clamp`` and ``tf.clip_by_value`` do) and 0 outside.
"""

from __future__ import annotations

import math

import numpy as np

from unidl import dtypes as _dt
from unidl import ops
from unidl.spec import _textbook as T
from unidl.spec.core import COMPOSITE, Sample, ShapeMismatch, defop
from unidl.spec.rules import broadcast_shapes, normalize_axis

__all__ = ["EPSILON"]

#: the fuzz factor of Keras: probabilities are clipped to ``[EPSILON, 1 - EPSILON]``.
EPSILON = 1e-7

FLOATS = _dt.FLOAT_DTYPES


# ---- shape and dtype rules -------------------------------------------------------------------
def _class_axis(output_shape, axis) -> int:
    if len(output_shape) == 0:
        raise ShapeMismatch("expected an output of rank >= 1 (with a class axis), got a scalar")
    return normalize_axis(axis, len(output_shape))


def _sparse_shape(target, output, from_logits=False, axis=-1):
    output = tuple(output)
    ax = _class_axis(output, axis)
    want = output[:ax] + output[ax + 1:]
    t = tuple(target)
    if t == want or (len(t) == len(output) and t[ax] == 1 and t[:ax] + t[ax + 1:] == want):
        return want
    raise ShapeMismatch(
        f"expected integer labels of shape {want} (the output's shape {output} without its "
        f"class axis {axis}), got {t}"
    )


def _sparse_mean_shape(target, output, from_logits=False, axis=-1):
    _sparse_shape(target, output, from_logits, axis)  # (checks the labels' shape)
    return ()


def _same_shape_class(target, output, from_logits=False, axis=-1):
    output, target = tuple(output), tuple(target)
    ax = _class_axis(output, axis)
    if target != output:
        raise ShapeMismatch(f"expected target and output of the same shape, got target "
                            f"{target} and output {output}")
    return output[:ax] + output[ax + 1:]


def _binary_shape(target, output, from_logits=False):
    target, output = tuple(target), tuple(output)
    if target != output:
        raise ShapeMismatch(f"expected target and output of the same shape, got target "
                            f"{target} and output {output}")
    if len(output) == 0:
        raise ShapeMismatch("expected an output of rank >= 1 (the loss averages its last "
                            "axis), got a scalar")
    return output[:-1]


def _mse_shape(y_true, y_pred):
    shape = broadcast_shapes(y_true, y_pred)
    if len(shape) == 0:
        raise ShapeMismatch("expected y_true/y_pred of rank >= 1 (the loss averages the last "
                            "axis), got scalars")
    return shape[:-1]


def _sparse_dtype(target, output, from_logits=False, axis=-1):
    return output if _dt.is_float(output) else _dt.DEFAULT_FLOAT


# ---- float64 references, from the definitions (see unidl/spec/_textbook.py) -----------------
# Lane by lane along the class axis with Python floats, ``math`` and ``math.fsum``; nothing is
# shared with any backend's kernel.
def _clipped(p):
    return min(max(p, EPSILON), 1.0 - EPSILON)


def _log_probs_lane(lane, from_logits):
    """``log p`` of one lane of scores: ``log_softmax`` of logits (the maximum factored out),
    or the log of the scores divided by their sum and clipped to ``[EPSILON, 1 - EPSILON]``."""
    if from_logits:
        m = T.nan_max(lane)
        m = m if math.isfinite(m) else 0.0
        lse = m + T.ieee(math.log, T.fsum([T.ieee(math.exp, v - m) for v in lane]))
        return [v - lse for v in lane]
    total = T.fsum(lane)
    return [math.log(_clipped(T.div(v, total))) for v in lane]


def _class_lanes(output, axis):
    """``(kept shape, lanes of output along the class axis)``."""
    output = np.asarray(output, np.float64)
    return T.lanes(output, (axis % output.ndim,))


def _ref_sparse(target, output, from_logits=False, axis=-1):
    """``-log p[target]`` per example."""
    kept_shape, lanes = _class_lanes(output, axis)
    labels = T.flat_values(target)  # one label per example (a size-1 class axis is the same)
    losses = [-_log_probs_lane(lane, from_logits)[int(t)] for lane, t in zip(lanes, labels)]
    return T.finish(losses, kept_shape, np.float64)


def _ref_sparse_mean(target, output, from_logits=False, axis=-1):
    """The mean of the per-example losses (``math.fsum``; NaN for none)."""
    losses = [float(v) for v in _ref_sparse(target, output, from_logits, axis).ravel()]
    return np.float64(T.div(T.fsum(losses), len(losses)))


def _ref_categorical(target, output, from_logits=False, axis=-1):
    """``-sum(target * log p)`` per example."""
    kept_shape, lanes = _class_lanes(output, axis)
    _, targets = _class_lanes(target, axis)
    losses = [-T.fsum([t * lp for t, lp in zip(tl, _log_probs_lane(lane, from_logits))])
              for lane, tl in zip(lanes, targets)]
    return T.finish(losses, kept_shape, np.float64)


def _binary_one(t, z, from_logits):
    """One element's binary cross-entropy."""
    if from_logits:
        # log(1 + e^z) - t z = max(z, 0) - t z + log1p(e^-|z|), no exp overflows
        return max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))
    c = _clipped(z)
    return -(t * math.log(c) + (1.0 - t) * math.log(1.0 - c))


def _ref_binary(target, output, from_logits=False):
    """The mean over the last axis of the elementwise binary cross-entropy."""
    kept_shape, lanes = _class_lanes(output, -1)
    _, targets = _class_lanes(target, -1)
    losses = [T.div(T.fsum([_binary_one(t, z, from_logits) for t, z in zip(tl, lane)]),
                    len(lane)) for tl, lane in zip(targets, lanes)]
    return T.finish(losses, kept_shape, np.float64)


def _ref_mse(y_true, y_pred):
    """The mean over the last axis of ``(y_pred - y_true) ** 2`` (broadcast)."""
    diff = T.pointwise(lambda t, p: (p - t) * (p - t), np.asarray(y_true, np.float64),
                       np.asarray(y_pred, np.float64))
    kept_shape, lanes = _class_lanes(diff, -1)
    return T.finish([T.div(T.fsum(lane), len(lane)) for lane in lanes], kept_shape,
                    np.float64)


# ---- composite implementations (fallback for backends without a kernel) ----------------------
def _axis_of(x, axis) -> int:
    return axis % max(len(ops.shape(x)), 1)


def _labels(target, output, ax):
    if len(ops.shape(target)) == len(ops.shape(output)):
        target = ops.squeeze(target, ax)
    return target


def _log_probs(output, from_logits, ax):
    if from_logits:
        return ops.log_softmax(output, axis=ax)
    p = ops.divide(output, ops.sum(output, axis=ax, keepdims=True))
    return ops.log(ops.clip(p, EPSILON, 1.0 - EPSILON))


def _impl_sparse(target, output, from_logits=False, axis=-1):
    ax = _axis_of(output, axis)
    target = _labels(target, output, ax)
    lp = _log_probs(output, from_logits, ax)
    idx = ops.expand_dims(ops.cast(target, "int64"), ax)
    return ops.negative(ops.squeeze(ops.take_along_axis(lp, idx, axis=ax), ax))


def _impl_sparse_mean(target, output, from_logits=False, axis=-1):
    return ops.mean(ops.sparse_categorical_crossentropy(target, output, from_logits, axis))


def _impl_categorical(target, output, from_logits=False, axis=-1):
    ax = _axis_of(output, axis)
    lp = _log_probs(output, from_logits, ax)
    return ops.negative(ops.sum(ops.multiply(target, lp), axis=ax))


def _impl_binary(target, output, from_logits=False):
    if from_logits:
        per = ops.subtract(ops.softplus(output), ops.multiply(target, output))
    else:
        c = _clip(output)
        per = ops.negative(ops.add(
            ops.multiply(target, ops.log(c)),
            ops.multiply(ops.subtract(1.0, target), ops.log(_clip(ops.subtract(1.0, output))))))
    return ops.mean(per, axis=-1)


def _clip(p):
    # 1 - clip(z) is computed as clip(1 - z): 1 - 1e-7 is not exact in float32
    return ops.clip(p, EPSILON, 1.0 - EPSILON)


def _impl_mse(y_true, y_pred):
    return ops.mean(ops.square(ops.subtract(y_pred, y_true)), axis=-1)


# ---- gradient rules ---------------------------------------------------------------------------
def _clip_mask(p):
    """1 where ``p`` lies in ``[EPSILON, 1 - EPSILON]`` (the clip passes gradients), else 0."""
    inside = ops.logical_and(ops.greater_equal(p, EPSILON), ops.less_equal(p, 1.0 - EPSILON))
    return ops.cast(inside, ops.dtype(p))


def _grad_sparse(g, out, target, output, from_logits=False, axis=-1):
    ax = _axis_of(output, axis)
    t = _labels(target, output, ax)
    dt = ops.dtype(output)
    n = ops.shape(output)[ax]
    onehot = ops.one_hot(ops.cast(t, "int64"), n, axis=ax, dtype=dt)
    ge = ops.expand_dims(g, ax)
    if from_logits:
        # d/dz [-log_softmax(z)_t] = softmax(z) - onehot(t)
        return None, ops.multiply(ge, ops.subtract(ops.softmax(output, axis=ax), onehot))
    s = ops.sum(output, axis=ax, keepdims=True)
    p = ops.divide(output, s)
    p_t = ops.sum(ops.multiply(p, onehot), axis=ax, keepdims=True)
    c_t = ops.clip(p_t, EPSILON, 1.0 - EPSILON)
    # loss = -log(clip(p_t)); p = output / s, so d p_t / d output_j = (onehot_j - p_t) / s
    coef = ops.divide(ops.multiply(ge, _clip_mask(p_t)), ops.multiply(c_t, s))
    return None, ops.multiply(coef, ops.subtract(p_t, onehot))


def _grad_sparse_mean(g, out, target, output, from_logits=False, axis=-1):
    """:func:`_grad_sparse` of the cotangent ``g / examples`` given to every example."""
    per_example = _sparse_shape(ops.shape(target), ops.shape(output), from_logits, axis)
    count = math.prod(per_example)
    ge = ops.broadcast_to(ops.divide(g, float(max(count, 1))), per_example)
    return _grad_sparse(ge, None, target, output, from_logits, axis)


def _grad_categorical(g, out, target, output, from_logits=False, axis=-1):
    ax = _axis_of(output, axis)
    ge = ops.expand_dims(g, ax)
    if from_logits:
        lp = ops.log_softmax(output, axis=ax)
        # d/dz_j [-sum_k t_k log_softmax(z)_k] = softmax(z)_j * sum_k t_k - t_j
        tsum = ops.sum(target, axis=ax, keepdims=True)
        dz = ops.subtract(ops.multiply(ops.exp(lp), tsum), target)
        return ops.negative(ops.multiply(ge, lp)), ops.multiply(ge, dz)
    s = ops.sum(output, axis=ax, keepdims=True)
    p = ops.divide(output, s)
    c = ops.clip(p, EPSILON, 1.0 - EPSILON)
    dt = ops.negative(ops.multiply(ge, ops.log(c)))
    # a_k = d loss / d p_k;  d loss / d output_j = (a_j - sum_k a_k p_k) / s
    a = ops.negative(ops.divide(ops.multiply(ops.multiply(ge, target), _clip_mask(p)), c))
    ap = ops.sum(ops.multiply(a, p), axis=ax, keepdims=True)
    return dt, ops.divide(ops.subtract(a, ap), s)


def _grad_binary(g, out, target, output, from_logits=False):
    n = ops.shape(output)[-1]
    ge = ops.divide(ops.expand_dims(g, -1), float(max(n, 1)))
    if from_logits:
        # d/dz [softplus(z) - t z] = sigmoid(z) - t;  d/dt = -z
        return (ops.negative(ops.multiply(ge, output)),
                ops.multiply(ge, ops.subtract(ops.sigmoid(output), target)))
    c = _clip(output)
    one_minus = _clip(ops.subtract(1.0, output))  # 1 - c, computed exactly
    dt = ops.negative(ops.multiply(ge, ops.subtract(ops.log(c), ops.log(one_minus))))
    dc = ops.subtract(ops.divide(ops.subtract(1.0, target), one_minus), ops.divide(target, c))
    return dt, ops.multiply(ops.multiply(ge, dc), _clip_mask(output))


def _grad_mse(g, out, y_true, y_pred):
    shape = broadcast_shapes(ops.shape(y_true), ops.shape(y_pred))
    scale = 2.0 / float(max(shape[-1], 1))
    d = ops.multiply(ops.multiply(ops.expand_dims(g, -1), scale), ops.subtract(y_pred, y_true))
    return ops.negative(d), d


# ---- samples ----------------------------------------------------------------------------------
#: (output shape, class axis) pairs used by the categorical losses
_CLASS_SHAPES = [((4, 5), -1), ((2, 3, 4), -1), ((2, 5, 3), 1), ((6,), -1), ((3, 4), 0),
                 ((0, 5), -1)]


def _scores(rng, shape, from_logits):
    if from_logits:
        return rng.uniform(-3.0, 3.0, size=shape)
    return rng.uniform(0.05, 1.0, size=shape)  # unnormalized: the loss divides by the sum


def _without(shape, ax):
    ax = ax % len(shape)
    return shape[:ax] + shape[ax + 1:]


def _large_logits(rng, shape):
    z = rng.uniform(-1e4, 1e4, size=shape)
    z[0, 0] = 1e4
    z[1, :] = -1e4
    z[1, -1] = 1e4
    return z


def _sparse_samples(dtype, rng):
    out = []
    for shape, axis in _CLASS_SHAPES:
        for fl in (True, False):
            labels = rng.integers(0, shape[axis], size=_without(shape, axis))
            out.append(Sample((labels, _scores(rng, shape, fl), fl, axis), keep=(0,),
                              name=f"{shape},axis={axis},logits={fl}", grad=0 not in shape))
    labels = rng.integers(0, 5, size=(4, 1))
    out.append(Sample((labels, _scores(rng, (4, 5), True), True, -1), keep=(0,),
                      name="labels(4,1)"))
    z = _large_logits(rng, (4, 6))
    labels = np.array([0, 0, 5, 3])
    out.append(Sample((labels, z, True, -1), keep=(0,), name="large_logits"))
    probs = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    out.append(Sample((np.array([0, 0, 2]), probs, False, -1), keep=(0,), name="clipped",
                      grad=False))
    return out


def _soft_target(rng, shape, ax):
    t = rng.uniform(0.0, 1.0, size=shape)
    return t / np.sum(t, axis=ax, keepdims=True) if t.size else t


def _one_hot_target(rng, shape, ax):
    labels = rng.integers(0, shape[ax], size=_without(shape, ax))
    return np.moveaxis(np.eye(shape[ax])[labels], -1, ax)


def _categorical_samples(dtype, rng):
    out = []
    for shape, axis in _CLASS_SHAPES:
        for fl in (True, False):
            t = _soft_target(rng, shape, axis) if fl else _one_hot_target(rng, shape, axis)
            out.append(Sample((t, _scores(rng, shape, fl), fl, axis),
                              name=f"{shape},axis={axis},logits={fl}", grad=0 not in shape))
    # targets that do not sum to one (allowed; the gradient must account for it)
    out.append(Sample((rng.uniform(0.0, 1.0, (3, 4)), _scores(rng, (3, 4), True), True, -1),
                      name="unnormalized_target"))
    out.append(Sample((rng.uniform(0.0, 1.0, (3, 4)), _scores(rng, (3, 4), False), False, -1),
                      name="unnormalized_target_probs"))
    z = _large_logits(rng, (4, 6))
    out.append(Sample((_one_hot_target(rng, (4, 6), -1), z, True, -1), name="large_logits"))
    probs = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    target = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    out.append(Sample((target, probs, False, -1), name="clipped", grad=False))
    return out


def _binary_samples(dtype, rng):
    out = []
    for shape in [(4, 5), (2, 3, 4), (6,), (3, 1), (0, 3)]:
        for fl in (True, False):
            t = rng.uniform(0.0, 1.0, size=shape)
            if fl:
                t = np.round(t)
            z = rng.uniform(-3.0, 3.0, size=shape) if fl else rng.uniform(0.02, 0.98, size=shape)
            out.append(Sample((t, z, fl), name=f"{shape},logits={fl}", grad=0 not in shape))
    z = rng.uniform(-1e4, 1e4, size=(3, 4))
    z[0, 0], z[0, 1] = 1e4, -1e4
    out.append(Sample((np.round(rng.uniform(0, 1, (3, 4))), z, True), name="large_logits"))
    probs = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1e-9]])
    target = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    out.append(Sample((target, probs, False), name="clipped", grad=False))
    return out


def _mse_samples(dtype, rng):
    out = []
    for st, sp in [((4, 5), (4, 5)), ((2, 3, 4), (2, 3, 4)), ((3, 1), (3, 4)), ((4,), (3, 4)),
                   ((6,), (6,)), ((0, 3), (0, 3))]:
        out.append(Sample((rng.uniform(-3, 3, st), rng.uniform(-3, 3, sp)), name=f"{st}x{sp}",
                          grad=0 not in sp))
    specials = np.array([[np.nan, 1.0], [np.inf, 2.0], [0.0, 1.0]])
    out.append(Sample((np.ones((3, 2)), specials), name="nan_inf", grad=False))
    return out


# ---- the ops ---------------------------------------------------------------------------------
defop("sparse_categorical_crossentropy", "target, output, from_logits=False, axis=-1",
      tensors="target, output", promote="output", kind=COMPOSITE, impl=_impl_sparse,
      dtype_rule=_sparse_dtype, shape_rule=_sparse_shape, reference=_ref_sparse,
      grad=_grad_sparse, samples=_sparse_samples, dtypes=FLOATS, tol="reduction",
      doc="""Cross-entropy between integer labels ``target`` and class scores ``output``.

      ``target`` holds class indices of ``output``'s shape without its class ``axis`` (a
      trailing size-1 axis in that place is accepted and squeezed). With ``from_logits`` the
      loss is ``-log_softmax(output)[target]``; otherwise ``output`` is divided by its sum over
      ``axis``, clipped to ``[1e-7, 1 - 1e-7]`` and the loss is ``-log(p[target])`` (Keras 3).
      Returns one loss per example (the output's shape without ``axis``); no batch mean.
      Labels out of ``[0, classes)`` are an error on PyTorch and TensorFlow.""")

defop("mean_sparse_categorical_crossentropy", "target, output, from_logits=False, axis=-1",
      tensors="target, output", promote="output", kind=COMPOSITE, impl=_impl_sparse_mean,
      dtype_rule=_sparse_dtype, shape_rule=_sparse_mean_shape, reference=_ref_sparse_mean,
      grad=_grad_sparse_mean, samples=_sparse_samples, dtypes=FLOATS, tol="reduction",
      doc="""The mean of :func:`sparse_categorical_crossentropy` over every example: one
      scalar, NaN for no example.

      The loss objects' batch mean (``reduction="sum_over_batch_size"`` without sample
      weights) where a backend has a kernel for it: PyTorch's ``cross_entropy`` reduces in
      the same kernel (4.7 us less per evaluation step of a 128-sample batch than the loss
      per example and a separate ``mean``, on a 2-core Xeon).""")

defop("categorical_crossentropy", "target, output, from_logits=False, axis=-1",
      tensors="target, output", kind=COMPOSITE, impl=_impl_categorical, float_inputs=True,
      shape_rule=_same_shape_class, reference=_ref_categorical, grad=_grad_categorical,
      samples=_categorical_samples, dtypes=FLOATS, tol="reduction",
      doc="""Cross-entropy ``-sum(target * log p, axis)`` between a target distribution and
      ``output`` (same shape).

      ``p = log_softmax(output)`` with ``from_logits``; otherwise ``p`` is ``output`` divided by
      its sum over ``axis`` and clipped to ``[1e-7, 1 - 1e-7]`` (Keras 3). Targets need not sum
      to one. Returns one loss per example (the shape without ``axis``).""")

defop("binary_crossentropy", "target, output, from_logits=False",
      tensors="target, output", kind=COMPOSITE, impl=_impl_binary, float_inputs=True,
      shape_rule=_binary_shape, reference=_ref_binary, grad=_grad_binary,
      samples=_binary_samples, dtypes=FLOATS, tol="reduction",
      doc="""Binary cross-entropy averaged over the last axis (as ``keras.losses``).

      Elementwise ``softplus(z) - t z`` from logits (stable for any ``z``), otherwise
      ``-(t log c + (1 - t) log(1 - c))`` with ``c = clip(output, 1e-7, 1 - 1e-7)``; then the
      mean over the last axis. ``target`` and ``output`` have the same shape (rank >= 1).""")

defop("mean_squared_error", "y_true, y_pred", tensors="y_true, y_pred", kind=COMPOSITE,
      impl=_impl_mse, float_inputs=True, shape_rule=_mse_shape, reference=_ref_mse,
      grad=_grad_mse, samples=_mse_samples, dtypes=FLOATS, tol="reduction",
      doc="""``mean(square(y_pred - y_true), axis=-1)``, with broadcasting (rank >= 1).""")
