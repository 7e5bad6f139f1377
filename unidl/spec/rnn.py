"""Recurrent ops: ``lstm``, a whole LSTM layer's time loop as one op.

``lstm(x, h0, c0, kernel, recurrent_kernel, bias=None) -> (outputs, h, c)`` runs a Keras LSTM
over every step of ``x`` (batch, time, features) from the states ``h0``, ``c0`` (batch,
units). The weights have the Keras layout: ``kernel (features, 4*units)``,
``recurrent_kernel (units, 4*units)``, ``bias (4*units,)`` (or ``None``), with the gates in
the order input, forget, cell, output. At each step ``t``::

    z = x[:, t] @ kernel + h @ recurrent_kernel + bias
    i, f, g, o = split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h = sigmoid(o) * tanh(c)

``outputs`` (batch, time, units) holds ``h`` after every step; ``h`` and ``c`` are the final
states. ``x`` needs at least one time step.

The composite implementation projects the inputs of every step with one matmul (time-major, so
that each step's slice is contiguous) and then loops over time; backends give fused kernels
(``torch.lstm``, a NumPy loop on preallocated buffers; TensorFlow runs the composite over parts
of the batch side by side). The gradient rule does not replay the loop op by op. The state
entering each step is known from ``outputs``, so each step's gates are one matmul
``[x_t, h_prev, 1] @ [kernel; recurrent_kernel; bias]`` and one ``exp`` (no recurrence), and
a short elementwise scan rebuilds the cell states; backpropagation through time then costs
two matmuls per step, one giving ``dx_t`` and ``dh_prev``, one adding the step's share of the
weights' cotangent. This works on ``(batch, 4*units)`` blocks, one step at a time, rather
than on ``(time * batch, 4*units)`` arrays in batched matmuls: on NumPy the batched form
makes several sequence-sized temporaries, and allocating them (page faults, with glibc's
default ``malloc``) cost more than the batched matmuls saved (benchmark LSTM train step
against hand-written BPTT, measured call by call: 1.5-1.7x batched, 1.4-1.5x per step).
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

__all__ = ["lstm_shapes"]

FLOATS = _dt.FLOAT_DTYPES


# ---- shape rule -------------------------------------------------------------------------------
def _eq(a, b) -> bool:
    """Whether two dimensions agree (an unknown ``None`` dimension agrees with any)."""
    return a is None or b is None or a == b


def _expect(name, got, want):
    got = tuple(got)
    if len(got) != len(want) or not all(_eq(g, w) for g, w in zip(got, want)):
        raise ShapeMismatch(f"expected {name} of shape {tuple(want)}, got {got}")


def lstm_shapes(x, h0, c0, kernel, recurrent_kernel, bias=None):
    """Output shapes ``[(batch, time, units), (batch, units), (batch, units)]``.

    Raises:
        ShapeMismatch: the shapes do not fit together.
    """
    x = tuple(x)
    if len(x) != 3:
        raise ShapeMismatch(f"expected x of shape (batch, time, features), got {x}")
    batch, time, features = x
    if time is not None and time < 1:
        raise ShapeMismatch(f"expected x with at least one time step, got shape {x}")
    h0 = tuple(h0)
    if len(h0) != 2:
        raise ShapeMismatch(f"expected h0 of shape (batch, units) = ({batch}, units), got {h0}")
    units = h0[1]
    _expect("h0", h0, (batch, units))
    _expect("c0", c0, (batch, units))
    gates = None if units is None else 4 * units
    _expect("kernel", kernel, (features, gates))
    _expect("recurrent_kernel", recurrent_kernel, (units, gates))
    if bias is not None:
        _expect("bias", bias, (gates,))
    return [(batch, time, units), (batch, units), (batch, units)]


# ---- float64 reference ------------------------------------------------------------------------
def _lstm_reference(x, h0, c0, kernel, recurrent_kernel, bias=None):
    """The gate equations of the module docstring, step by step and element by element: each
    pre-activation an exactly rounded sum (``math.fsum``) of products, the gates from
    ``math`` (see unidl/spec/_textbook.py)."""
    batch, steps, features = np.shape(x)
    units = np.shape(h0)[1]
    rx, rk, rr = T.reader(x), T.reader(kernel), T.reader(recurrent_kernel)
    # column j of [kernel; recurrent_kernel]: the weights of pre-activation j
    columns = [[rk((f, j)) for f in range(features)] + [rr((u, j)) for u in range(units)]
               for j in range(4 * units)]
    b_z = [0.0] * (4 * units) if bias is None else T.flat_values(bias)
    h, c = np.asarray(h0).tolist(), np.asarray(c0).tolist()
    seq = [[None] * steps for _ in range(batch)]
    for t in range(steps):
        for b in range(batch):
            inputs = [rx((b, t, f)) for f in range(features)] + h[b]
            z = [T.dot(inputs, w) + bz for w, bz in zip(columns, b_z)]
            i, f, g, o = (z[k * units:(k + 1) * units] for k in range(4))
            c[b] = [T.sigmoid(fu) * cu + T.sigmoid(iu) * math.tanh(gu)
                    for fu, cu, iu, gu in zip(f, c[b], i, g)]
            h[b] = [T.sigmoid(ou) * math.tanh(cu) for ou, cu in zip(o, c[b])]
            seq[b][t] = h[b]
    return [T.finish([v for row in seq for step in row for v in step], (batch, steps, units),
                     np.float64),
            T.finish([v for row in h for v in row], (batch, units), np.float64),
            T.finish([v for row in c for v in row], (batch, units), np.float64)]


# ---- composite implementation -----------------------------------------------------------------
def _steps_of(t, steps, axis=1):
    """``t`` (batch, time, n) as a list of ``steps`` (batch, n) tensors (``axis=0``: ``t``
    time-major, (time, batch, n))."""
    if steps == 1:
        return [ops.squeeze(t, axis)]
    return [ops.squeeze(p, axis) for p in ops.split(t, steps, axis=axis)]


def _time_major_projection(x, kernel, bias=None):
    """``x @ kernel + bias`` for every step of ``x`` (batch, time, features), time-major:
    (time, batch, n). One ``(time * batch, features)`` matmul on the transposed input, the
    bias added to that 2-D product, so that each step's slice is contiguous. On TensorFlow
    the matmul and the bias fuse into one op, and taking the steps apart (and putting their
    gradients back together) copies whole blocks instead of gathering rows. Measured on the
    benchmarks' LSTM (128 units, 50 steps of 32 features, batch 128) in a ``tf.function``:
    forward and gradients 36.6 -> 34.9 ms, forward 15.9 -> 14.2 ms, against the
    batch-major projection."""
    steps, features = ops.shape(x)[1], ops.shape(x)[2]
    flat = ops.reshape(ops.transpose(x, (1, 0, 2)), (-1, features))
    xz = ops.matmul(flat, kernel)
    if bias is not None:
        xz = ops.add(xz, bias)
    return ops.reshape(xz, (steps, -1, ops.shape(kernel)[-1]))


def _lstm_impl(x, h0, c0, kernel, recurrent_kernel, bias=None):
    # checked first, so that a mistake is reported in the terms of this op
    lstm_shapes(*(None if a is None else ops.shape(a)
                  for a in (x, h0, c0, kernel, recurrent_kernel, bias)))
    steps = int(ops.shape(x)[1])
    # every step's input projection: one (time * batch, features) @ (features, 4u) matmul
    xz = _time_major_projection(x, kernel, bias)
    h, c = h0, c0
    hs = []
    for xz_t in _steps_of(xz, steps, axis=0):
        z = ops.add(xz_t, ops.matmul(h, recurrent_kernel))
        zi, zf, zg, zo = ops.split(z, 4, axis=-1)
        c = ops.add(ops.multiply(ops.sigmoid(zf), c),
                    ops.multiply(ops.sigmoid(zi), ops.tanh(zg)))
        h = ops.multiply(ops.sigmoid(zo), ops.tanh(c))
        hs.append(h)
    return (ops.stack(hs, axis=1), h, c)


# ---- gradient rule ----------------------------------------------------------------------------
def _sum_present(*terms):
    """The sum of the terms that are not ``None`` (``None`` if all are)."""
    total = None
    for t in terms:
        if t is not None:
            total = t if total is None else ops.add(total, t)
    return total


#: -z beyond which exp(-z) could overflow (float16 overflows above 11.09); sigmoid(z) is
#: 0 there anyway
_EXP_LIMIT = {"float16": 11.0}


def _lstm_grad(g, out, x, h0, c0, kernel, recurrent_kernel, bias=None):
    # The weights are stacked as w = [kernel; recurrent_kernel; bias], so that each step's
    # pre-activations are one matmul z = [x_t, h_prev, 1] @ w, and the step's contribution to
    # dw one matmul [x_t, h_prev, 1]^T @ dz. All four gates come from one exp: sigmoid(z) =
    # 1 / (1 + exp(-z)) and tanh(z) = 2 sigmoid(2 z) - 1, so the forward matmul uses w scaled
    # by -1 (by -2 for the cell gate), and tanh'(z) = 4 s (1 - s) with s = sigmoid(2 z).
    # Only the gates, cell states and inputs of each step are kept for the backward loop.
    g_seq, g_h, g_c = g
    batch, steps, features = (int(d) for d in ops.shape(x))
    units = int(ops.shape(h0)[-1])
    dt = ops.dtype(x)
    limit = _EXP_LIMIT.get(dt, 80.0)
    parts = [kernel, recurrent_kernel] + ([ops.expand_dims(bias, 0)] if bias is not None else [])
    w = ops.concatenate(parts, axis=0)
    w_neg = ops.multiply(w, ops.convert_to_tensor(np.repeat([-1.0, -2.0, -1.0],
                                                            [2 * units, units, units]), dt))
    ones = [ops.ones((batch, 1), dt)] if bias is not None else []
    xs = _steps_of(x, steps)
    hs = _steps_of(out[0], steps)
    h_in = [h0] + hs[:-1]  # the state entering each step
    # recompute the gates and cell states of every step (a short scan: c depends on c_prev)
    xh, gates, cs = [], [], [c0]
    for t in range(steps):
        xh_t = ops.concatenate([xs[t], h_in[t]] + ones, axis=-1)
        e = ops.exp(ops.minimum(ops.matmul(xh_t, w_neg), limit))
        s = ops.divide(1.0, ops.add(e, 1.0))  # sigmoid of z (of 2 z for the cell gate)
        i, f, sg, o = ops.split(s, 4, axis=-1)
        gt = ops.subtract(ops.multiply(sg, 2.0), 1.0)  # tanh of the cell gate's z
        cs.append(ops.add(ops.multiply(f, cs[-1]), ops.multiply(i, gt)))
        xh.append(xh_t)
        gates.append((s, i, f, gt, o))
    # backpropagation through time: per step one (batch, 4u) @ (4u, features + units) matmul
    # (giving dx_t and dh_prev) and one (features + units + 1, batch) @ (batch, 4u) for dw
    w_t = ops.transpose(w)
    g_seq = _steps_of(g_seq, steps) if g_seq is not None else [None] * steps
    dh_next, dc_next = g_h, g_c
    dxs = [None] * steps
    dw = None
    for t in range(steps - 1, -1, -1):
        s, i, f, gt, o = gates[t]
        tc = ops.tanh(cs[t + 1])
        dh = _sum_present(g_seq[t], dh_next)
        if dh is None:  # only the final c has a cotangent
            dh = ops.zeros_like(dc_next)
        # dc += dh * o (1 - tanh(c)^2), with o tanh(c) = h
        dc = _sum_present(dc_next, ops.multiply(dh, ops.subtract(o, ops.multiply(hs[t], tc))))
        # dz = [dc, dc, 4 dc, dh] * [g, c_prev, i, tanh(c)] * s (1 - s)
        dz = ops.multiply(
            ops.concatenate([dc, dc, ops.multiply(dc, 4.0), dh], axis=-1),
            ops.multiply(ops.concatenate([gt, cs[t], i, tc], axis=-1),
                         ops.multiply(s, ops.subtract(1.0, s))))
        dc_next = ops.multiply(dc, f)
        dxs[t], dh_next = ops.split(ops.matmul(dz, w_t), [features, features + units],
                                    axis=-1)[:2]
        dw = _sum_present(dw, ops.matmul(ops.transpose(xh[t]), dz))
    dkernel, drk, dbias = ops.split(dw, [features, features + units], axis=0)
    return (ops.stack(dxs, axis=1), dh_next, dc_next, dkernel, drk,
            None if bias is None else ops.reshape(dbias, (4 * units,)))


# ---- samples ----------------------------------------------------------------------------------
def _lstm_samples(dtype, rng):
    def r(shape, scale=1.0):
        return S.rand(rng, shape, dtype, -scale, scale)

    def case(batch, steps, features, units, bias=True, zero_states=False, name=""):
        states = [np.zeros((batch, units)) if zero_states else r((batch, units))
                  for _ in range(2)]
        w = 1.0 / np.sqrt(features + units)
        args = (r((batch, steps, features)), *states, r((features, 4 * units), 2 * w),
                r((units, 4 * units), 2 * w), r((4 * units,), 0.5) if bias else None)
        return Sample(args, name=name)

    return [
        case(2, 3, 4, 3, name="(2,3,4),units=3"),
        case(3, 1, 2, 2, name="time=1"),
        case(2, 4, 3, 2, bias=False, name="no_bias"),
        case(1, 5, 2, 3, zero_states=True, name="zero_states"),
        case(4, 6, 5, 4, name="(4,6,5),units=4"),
    ]


# ---- ONNX -------------------------------------------------------------------------------------
def _lstm_onnx(g, x, h0, c0, kernel, recurrent_kernel, bias=None):
    """ONNX ``LSTM`` (``g``: an unidl.export.onnx.OnnxBuilder). ONNX wants time-major inputs,
    weights ``(1, 4u, in)`` with the gates in the order i, o, f, c (Keras: i, f, c, o), two
    biases (the recurrent one zero here) and states with a leading direction axis."""
    units = g.shape(kernel)[-1] // 4
    order = g.ints(np.concatenate([np.arange(k * units, (k + 1) * units) for k in (0, 3, 1, 2)]))

    def weights(w):  # (in, 4u), Keras order -> (1, 4u, in), ONNX order
        return g.unsqueeze(g.transpose(g.op("Gather", [w, order], axis=1), [1, 0]), [0])

    b = None
    if bias is not None:
        zeros = g.const(np.zeros(4 * units), g.dtype(bias))
        b = g.unsqueeze(g.op("Concat", [g.op("Gather", [bias, order], axis=0), zeros], axis=0),
                        [0])
    seq, h, c = g.op("LSTM", [g.transpose(x, [1, 0, 2]), weights(kernel),
                              weights(recurrent_kernel), b, None, g.unsqueeze(h0, [0]),
                              g.unsqueeze(c0, [0])], outputs=3, hidden_size=int(units))
    return [g.transpose(g.squeeze(seq, [1]), [1, 0, 2]), g.squeeze(h, [0]), g.squeeze(c, [0])]


defop("lstm", "x, h0, c0, kernel, recurrent_kernel, bias=None", kind=COMPOSITE,
      impl=_lstm_impl, tensors="x, h0, c0, kernel, recurrent_kernel, bias", float_inputs=True,
      shape_rule=lstm_shapes, reference=_lstm_reference, grad=_lstm_grad, samples=_lstm_samples,
      dtypes=FLOATS, tol="contraction", export={"onnx": OnnxOp("LSTM", _lstm_onnx)},
      doc="""A Keras LSTM run over every time step: ``(outputs, h, c)``.

      ``x`` (batch, time, features) with at least one step; ``h0``, ``c0`` (batch, units);
      ``kernel`` (features, 4*units), ``recurrent_kernel`` (units, 4*units), ``bias``
      (4*units,) or ``None``; gates in the Keras order input, forget, cell, output. Each step
      computes ``z = x_t @ kernel + h @ recurrent_kernel + bias``, splits it into ``i, f, g,
      o``, and updates ``c = sigmoid(f) * c + sigmoid(i) * tanh(g)``,
      ``h = sigmoid(o) * tanh(c)``. ``outputs`` (batch, time, units) holds ``h`` after every
      step; ``h`` and ``c`` are the final states.""")
