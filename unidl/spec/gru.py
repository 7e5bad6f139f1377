"""Recurrent ops: ``gru``, a whole GRU layer's time loop as one op (Keras semantics).

``gru(x, h0, kernel, recurrent_kernel, bias=None, reset_after=True) -> (outputs, h)`` runs a
Keras GRU over every step of ``x`` (batch, time, features) from the state ``h0`` (batch,
units). The weights have the Keras layout: ``kernel (features, 3*units)``,
``recurrent_kernel (units, 3*units)``, the gates in the order update (z), reset (r),
candidate (h); ``bias`` is ``(2, 3*units)`` (input bias, recurrent bias) with
``reset_after=True`` and ``(3*units,)`` with ``reset_after=False``, or ``None``. At each step
``t``, with ``x_t = x[:, t]``, ``W`` and ``U`` split into ``W_z, W_r, W_h`` (columns)::

    reset_after=True (Keras's default; cuDNN, PyTorch and ONNX linear_before_reset=1):
        a = x_t @ W + b_in,  c = h @ U + b_rec
        z = sigmoid(a_z + c_z),  r = sigmoid(a_r + c_r),  n = tanh(a_h + r * c_h)
    reset_after=False:
        a = x_t @ W + b
        z = sigmoid(a_z + h @ U_z),  r = sigmoid(a_r + h @ U_r),  n = tanh(a_h + (r * h) @ U_h)
    h = z * h + (1 - z) * n

``outputs`` (batch, time, units) holds ``h`` after every step; ``h`` is the final state. ``x``
needs at least one time step. Running backwards (Keras's ``go_backwards``) is this op on the
input flipped along time; ``return_sequences`` picks ``outputs`` or ``h`` (the layer does
both, as for ``lstm``).

Kernels: torch runs ``torch.gru`` for ``reset_after=True`` (the composite otherwise: PyTorch has
no reset-before GRU); NumPy a loop on preallocated buffers; TensorFlow the composite, in a CPU
graph over parts of the batch side by side (its fused ``GRUBlockCell`` is one step of the
reset-before form, float32 only, and ``CudnnRNN`` needs a GPU). The gradient rule does not
replay the loop: the state entering each step is known from ``outputs``, so every gate of every
step is recomputed at once (two or three stacked matmuls over the ``(batch, time, .)``
sequences, no recurrence), and backpropagation through time is then one (``reset_after=True``)
or two matmuls per step on ``(batch, .)`` blocks, the other terms of each step folded into them
(see ``_grad_reset_after``); the weights' cotangents are computed once, over the whole sequence.
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
from unidl.spec.rnn import _expect, _steps_of, _sum_present, _time_major_projection

__all__ = ["gru_shapes", "gru_composite"]

FLOATS = _dt.FLOAT_DTYPES


# ---- shape rule -------------------------------------------------------------------------------
def gru_shapes(x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    """Output shapes ``[(batch, time, units), (batch, units)]``.

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
    gates = None if units is None else 3 * units
    _expect("kernel", kernel, (features, gates))
    _expect("recurrent_kernel", recurrent_kernel, (units, gates))
    if bias is not None:
        _expect("bias", bias, (2, gates) if reset_after else (gates,))
    return [(batch, time, units), (batch, units)]


# ---- float64 reference ------------------------------------------------------------------------
def _gru_reference(x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    """The gate equations of the module docstring, step by step and element by element: each
    pre-activation an exactly rounded sum (``math.fsum``) of its products and biases, the
    gates from ``math`` (see unidl/spec/_textbook.py)."""
    batch, steps, features = np.shape(x)
    units = np.shape(h0)[1]
    rx, rk, rr = T.reader(x), T.reader(kernel), T.reader(recurrent_kernel)
    w = [[rk((f, j)) for f in range(features)] for j in range(3 * units)]  # column j of W
    u = [[rr((i, j)) for i in range(units)] for j in range(3 * units)]  # column j of U
    b = [0.0] * (6 * units) if bias is None else T.flat_values(bias)
    # (input bias, recurrent bias) of each column; reset_after=False has one bias
    b_in = b[:3 * units]
    b_rec = b[3 * units:] if reset_after else [0.0] * (3 * units)
    h = np.asarray(h0).tolist()
    seq = [[None] * steps for _ in range(batch)]
    for t in range(steps):
        for n in range(batch):
            xs = [rx((n, t, f)) for f in range(features)]
            h[n] = _reference_step(xs, h[n], w, u, b_in, b_rec, reset_after)
            seq[n][t] = h[n]
    return [T.finish([v for row in seq for step in row for v in step], (batch, steps, units),
                     np.float64),
            T.finish([v for row in h for v in row], (batch, units), np.float64)]


def _reference_step(xs, hs, w, u, b_in, b_rec, reset_after):
    """One step of one sequence: the new state (a list of Python floats)."""
    units = len(hs)

    def pre(j, state):  # x @ W[:, j] + state @ U[:, j] + biases, exactly rounded
        return T.fsum([a * c for a, c in zip(xs, w[j])]
                      + [a * c for a, c in zip(state, u[j])] + [b_in[j], b_rec[j]])

    z = [T.sigmoid(pre(j, hs)) for j in range(units)]
    r = [T.sigmoid(pre(units + j, hs)) for j in range(units)]
    out = []
    for j in range(units):
        k = 2 * units + j
        if reset_after:  # x W_h + b_in + r * (h U_h + b_rec)
            inner = T.fsum([a * c for a, c in zip(hs, u[k])] + [b_rec[k]])
            cand = math.tanh(T.fsum([a * c for a, c in zip(xs, w[k])] + [b_in[k], r[j] * inner]))
        else:  # x W_h + b + (r * h) U_h
            cand = math.tanh(pre(k, [rv * hv for rv, hv in zip(r, hs)]))
        out.append(z[j] * hs[j] + (1.0 - z[j]) * cand)
    return out


# ---- composite implementation -----------------------------------------------------------------
def _biases(bias, reset_after, units):
    """``(input bias, recurrent bias)`` as ``(3u,)`` vectors (``None`` where absent)."""
    if bias is None:
        return None, None
    if not reset_after:
        return bias, None
    b_in, b_rec = ops.split(bias, 2, axis=0)
    return ops.reshape(b_in, (3 * units,)), ops.reshape(b_rec, (3 * units,))


def gru_composite(x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    """The op from other unidl ops: one input projection for the whole sequence, then a
    loop over time (also the torch kernel for ``reset_after=False``)."""
    # checked first, so that a mistake is reported in the terms of this op
    gru_shapes(*(None if a is None else ops.shape(a)
                 for a in (x, h0, kernel, recurrent_kernel, bias)), reset_after)
    steps = int(ops.shape(x)[1])
    units = int(ops.shape(h0)[-1])
    b_in, b_rec = _biases(bias, reset_after, units)
    # every step's input projection: one (time * batch, features) @ (features, 3u) matmul
    xp = _time_major_projection(x, kernel, b_in)
    if not reset_after:
        rk_zr, rk_h = ops.split(recurrent_kernel, [2 * units], axis=1)
    h = h0
    hs = []
    for xp_t in _steps_of(xp, steps, axis=0):
        x_zr, x_h = ops.split(xp_t, [2 * units], axis=-1)
        if reset_after:
            hp = ops.matmul(h, recurrent_kernel)
            if b_rec is not None:
                hp = ops.add(hp, b_rec)
            h_zr, h_h = ops.split(hp, [2 * units], axis=-1)
            z, r = ops.split(ops.sigmoid(ops.add(x_zr, h_zr)), 2, axis=-1)
            cand = ops.tanh(ops.add(x_h, ops.multiply(r, h_h)))
        else:
            z, r = ops.split(ops.sigmoid(ops.add(x_zr, ops.matmul(h, rk_zr))), 2, axis=-1)
            cand = ops.tanh(ops.add(x_h, ops.matmul(ops.multiply(r, h), rk_h)))
        h = ops.add(cand, ops.multiply(z, ops.subtract(h, cand)))  # z h + (1 - z) cand
        hs.append(h)
    return (ops.stack(hs, axis=1), h)


# ---- gradient rule ----------------------------------------------------------------------------
def _states_entering(h0, seq, steps):
    """The state entering each step, ``(batch, time, units)``: ``h0``, then ``outputs``
    without its last step."""
    first = ops.expand_dims(h0, 1)
    if steps == 1:
        return first
    batch, _, units = ops.shape(seq)
    return ops.concatenate([first, ops.slice(seq, (0, 0, 0), (batch, steps - 1, units))],
                           axis=1)


def _bptt(g_seq, g_h, steps, step):
    """Run ``step(t, dh) -> dh_prev`` from the last step to the first, ``dh`` the whole
    cotangent of the state after step ``t``; returns the cotangent of ``h0``."""
    seq_cts = _steps_of(g_seq, steps) if g_seq is not None else [None] * steps
    dh_next = g_h
    for t in range(steps - 1, -1, -1):
        dh_next = step(t, _sum_present(seq_cts[t], dh_next))
    return dh_next


def _gates(xp, hzr, units):
    """``(zr, z, r, x_h)`` from the input projection ``xp`` (.., 3u) and the recurrent
    pre-activations of the z, r gates ``hzr`` (.., 2u)."""
    x_zr, x_h = ops.split(xp, [2 * units], axis=-1)
    zr = ops.sigmoid(ops.add(x_zr, hzr))
    z, r = ops.split(zr, 2, axis=-1)
    return zr, z, r, x_h


def _derivatives(zr, z, n, h_prev):
    """``(s_r, a_z, a_n)``: ``sigmoid'`` of the reset gate, ``dh_t/da_z`` and ``dh_t/da_h``
    (``a`` the gates' pre-activations)."""
    s_z, s_r = ops.split(ops.multiply(zr, ops.subtract(1.0, zr)), 2, axis=-1)
    a_z = ops.multiply(ops.subtract(h_prev, n), s_z)
    a_n = ops.multiply(ops.subtract(1.0, z), ops.subtract(1.0, ops.multiply(n, n)))
    return s_r, a_z, a_n


def _project(seq, w, b=None):
    """``seq @ w (+ b)`` for a (batch, time, n) sequence, as a stacked matmul: one small GEMM
    per sequence, never one ``(batch * time, n)`` GEMM. OpenBLAS runs a GEMM that large on
    several threads, and on a machine whose cores are busy that stalled for milliseconds (a
    (1280, 32) @ (32, 96) product: 16 ms against 0.08 ms stacked, measured on 2 loaded
    cores; the two are equally fast on idle ones)."""
    y = ops.matmul(seq, w)
    return y if b is None else ops.add(y, b)


def _weight_cotangent(seq, d):
    """``sum_t seq_t^T d_t`` over every sequence and step: the cotangent of the weights of
    :func:`_project` (stacked GEMMs too, then a sum over the batch)."""
    return ops.sum(ops.matmul(ops.transpose(seq, (0, 2, 1)), d), axis=0)


def _grad_reset_after(dims, g, x, h_in, kernel, recurrent_kernel, b_in, b_rec):
    """``(dh0, dxp, dhp)`` for ``reset_after=True``: the cotangents of ``h0``, of the input
    projections ``x_t W + b_in`` and of the recurrent ones ``h U + b_rec`` (batch, time, 3u)."""
    steps, units = dims
    xp, hp = _project(x, kernel, b_in), _project(h_in, recurrent_kernel, b_rec)
    h_zr, h_h = ops.split(hp, [2 * units], axis=-1)
    zr, z, r, x_h = _gates(xp, h_zr, units)
    n = ops.tanh(ops.add(x_h, ops.multiply(r, h_h)))
    s_r, a_z, a_n = _derivatives(zr, z, n, h_in)
    # dh * m = [dhp (da_z, da_r, da_h * r), dh * z]; [dhp, dh z] @ [U^T; I] = dh_prev
    a_r = ops.multiply(ops.multiply(a_n, h_h), s_r)
    m = _steps_of(ops.concatenate([a_z, a_r, ops.multiply(a_n, r), z], axis=-1), steps)
    eye = ops.eye(units, dtype=ops.dtype(x))
    w_back = ops.concatenate([ops.transpose(recurrent_kernel), eye], axis=0)
    dhs, ps = [None] * steps, [None] * steps

    def step(t, dh):
        dhs[t] = dh
        ps[t] = ops.multiply(ops.concatenate([dh] * 4, axis=-1), m[t])
        return ops.matmul(ps[t], w_back)

    dh0 = _bptt(g[0], g[1], steps, step)
    dhp = ops.split(ops.stack(ps, axis=1), [3 * units], axis=-1)[0]
    # the input projection's cotangent: dhp's z and r parts, da_h for the candidate
    dxp = ops.concatenate([ops.split(dhp, [2 * units], axis=-1)[0],
                           ops.multiply(ops.stack(dhs, axis=1), a_n)], axis=-1)
    return dh0, dxp, dhp


def _grad_reset_before(dims, g, x, h_in, kernel, recurrent_kernel, b_in):
    """``(dh0, dxp, dzr, dn, rh)`` for ``reset_after=False``: the cotangents of ``h0``, of
    the input projections ``x_t W + b`` (batch, time, 3u) and of the z, r and candidate
    pre-activations (.., 2u), (.., u), and the reset states ``r * h`` (.., u)."""
    steps, units = dims
    rk_zr, rk_h = ops.split(recurrent_kernel, [2 * units], axis=1)
    zr, z, r, x_h = _gates(_project(x, kernel, b_in), _project(h_in, rk_zr), units)
    rh = ops.multiply(r, h_in)
    n = ops.tanh(ops.add(x_h, _project(rh, rk_h)))
    s_r, a_z, a_n = _derivatives(zr, z, n, h_in)
    # [dh, d(rh), dh, d(rh)] * m = [da_z, da_r, dh z, d(rh) r]; that @ [U_zr^T; I; I] = dh_prev
    m = _steps_of(ops.concatenate([a_z, ops.multiply(h_in, s_r), z, r], axis=-1), steps)
    a_n_t = _steps_of(a_n, steps)
    eye = ops.eye(units, dtype=ops.dtype(x))
    w_back = ops.concatenate([ops.transpose(rk_zr), eye, eye], axis=0)
    rk_h_t = ops.transpose(rk_h)
    dns, qs = [None] * steps, [None] * steps

    def step(t, dh):
        dns[t] = ops.multiply(dh, a_n_t[t])
        drh = ops.matmul(dns[t], rk_h_t)
        qs[t] = ops.multiply(ops.concatenate([dh, drh, dh, drh], axis=-1), m[t])
        return ops.matmul(qs[t], w_back)

    dh0 = _bptt(g[0], g[1], steps, step)
    dzr = ops.split(ops.stack(qs, axis=1), [2 * units], axis=-1)[0]
    dn = ops.stack(dns, axis=1)
    return dh0, ops.concatenate([dzr, dn], axis=-1), dzr, dn, rh


def _gru_grad(g, out, x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    steps = int(ops.shape(x)[1])
    units = int(ops.shape(h0)[-1])
    h_in = _states_entering(h0, out[0], steps)
    b_in, b_rec = _biases(bias, reset_after, units)
    if reset_after:
        dh0, dxp, dhp = _grad_reset_after((steps, units), g, x, h_in, kernel,
                                          recurrent_kernel, b_in, b_rec)
        drk = _weight_cotangent(h_in, dhp)
        db = None if bias is None else ops.stack(
            [ops.sum(dxp, axis=(0, 1)), ops.sum(dhp, axis=(0, 1))], axis=0)
    else:
        dh0, dxp, dzr, dn, rh = _grad_reset_before((steps, units), g, x, h_in, kernel,
                                                   recurrent_kernel, b_in)
        drk = ops.concatenate([_weight_cotangent(h_in, dzr), _weight_cotangent(rh, dn)],
                              axis=1)
        db = None if bias is None else ops.sum(dxp, axis=(0, 1))
    dx = ops.matmul(dxp, ops.transpose(kernel))
    return dx, dh0, _weight_cotangent(x, dxp), drk, db


# ---- samples ----------------------------------------------------------------------------------
def _gru_samples(dtype, rng):
    def r(shape, scale=1.0):
        return S.rand(rng, shape, dtype, -scale, scale)

    def case(batch, steps, features, units, reset_after=True, bias=True, zero_state=False,
             name=""):
        w = 1.0 / np.sqrt(features + units)
        b = None
        if bias:
            b = r((2, 3 * units) if reset_after else (3 * units,), 0.5)
        h0 = np.zeros((batch, units)) if zero_state else r((batch, units))
        args = (r((batch, steps, features)), h0, r((features, 3 * units), 2 * w),
                r((units, 3 * units), 2 * w), b, reset_after)
        mode = "after" if reset_after else "before"
        return Sample(args, name=f"{name},reset_{mode}")

    return [
        case(2, 3, 4, 3, name="(2,3,4),units=3"),
        case(2, 3, 4, 3, reset_after=False, name="(2,3,4),units=3"),
        case(3, 1, 2, 2, name="time=1"),
        case(3, 1, 2, 2, reset_after=False, name="time=1"),
        case(2, 4, 3, 2, bias=False, name="no_bias"),
        case(2, 4, 3, 2, reset_after=False, bias=False, name="no_bias"),
        case(1, 5, 2, 3, zero_state=True, name="zero_state"),
        case(0, 3, 2, 2, name="empty_batch"),
        case(0, 2, 3, 2, reset_after=False, name="empty_batch"),
        case(4, 6, 5, 4, name="(4,6,5),units=4"),
        case(4, 6, 5, 4, reset_after=False, name="(4,6,5),units=4"),
    ]


# ---- ONNX -------------------------------------------------------------------------------------
def _gru_onnx(g, x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    """ONNX ``GRU`` (``g``: an unidl.export.onnx.OnnxBuilder) with ``linear_before_reset``
    = ``reset_after``. ONNX orders the gates z, r, h as Keras; it wants time-major inputs,
    weights ``(1, 3u, in)``, the biases as one ``(1, 6u)`` row ``[input; recurrent]`` (the
    recurrent half zero for ``reset_after=False``, where ONNX adds it outside the reset, as
    nothing) and a state with a leading direction axis. ONNX Runtime (1.32) aborts the
    process on a recurrent node with an empty batch (``GRU`` and ``LSTM`` alike), so a graph
    traced with a known batch of 0 keeps the composite's ops."""
    if g.shape(x)[0] == 0:
        g.unsupported("an empty batch (ONNX Runtime aborts on a GRU node without sequences)")
    units = g.shape(kernel)[-1] // 3

    def weights(w):  # (in, 3u) -> (1, 3u, in)
        return g.unsqueeze(g.transpose(w, [1, 0]), [0])

    b = None
    if bias is not None and reset_after:
        b = g.op("Reshape", [bias, g.ints([1, 6 * units])])
    elif bias is not None:
        zeros = g.const(np.zeros(3 * units), g.dtype(bias))
        b = g.unsqueeze(g.op("Concat", [bias, zeros], axis=0), [0])
    seq, h = g.op("GRU", [g.transpose(x, [1, 0, 2]), weights(kernel), weights(recurrent_kernel),
                          b, None, g.unsqueeze(h0, [0])], outputs=2, hidden_size=int(units),
                  linear_before_reset=int(bool(reset_after)))
    return [g.transpose(g.squeeze(seq, [1]), [1, 0, 2]), g.squeeze(h, [0])]


defop("gru", "x, h0, kernel, recurrent_kernel, bias=None, reset_after=True", kind=COMPOSITE,
      impl=gru_composite, tensors="x, h0, kernel, recurrent_kernel, bias", float_inputs=True,
      shape_rule=gru_shapes, reference=_gru_reference, grad=_gru_grad, samples=_gru_samples,
      dtypes=FLOATS, tol="contraction",
      export={"onnx": OnnxOp("GRU", _gru_onnx)},
      doc="""A Keras GRU run over every time step: ``(outputs, h)``.

      ``x`` (batch, time, features) with at least one step; ``h0`` (batch, units); ``kernel``
      (features, 3*units), ``recurrent_kernel`` (units, 3*units), gates in the Keras order
      update, reset, candidate (``z, r, h``); ``bias`` (2, 3*units) (input, recurrent) with
      ``reset_after=True``, (3*units,) with ``reset_after=False``, or ``None``. Each step
      computes ``z = sigmoid(.)``, ``r = sigmoid(.)``, the candidate ``n = tanh(x_t W_h +
      b_h + r * (h U_h + b'_h))`` (``reset_after=True``) or ``tanh(x_t W_h + b_h +
      (r * h) U_h)``, and ``h = z * h + (1 - z) * n``. ``outputs`` (batch, time, units)
      holds ``h`` after every step; ``h`` is the final state.""")
