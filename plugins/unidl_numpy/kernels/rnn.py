"""NumPy recurrent kernels: ``lstm`` and ``gru``, each one loop over preallocated buffers.

LSTM: every gate comes from one exponential per step: ``sigmoid(z) = 1 / (1 + exp(-z))`` and
``tanh(z) = 2 sigmoid(2 z) - 1``, so the weights are scaled once per call by -1 (by -2 for the
cell gate) and each step runs ``exp``, ``+ 1`` and ``1 / .`` in place on its ``(batch, 4u)``
block. GRU: the z and r columns of the weights (and biases) are scaled by -1 once per call, so
both sigmoid gates are one ``exp`` and ``+ 1`` on a ``(batch, 2u)`` block, used by dividing;
the candidate is one ``tanh``. float16 inputs are computed in float32 and rounded once at the
end. Gradients come from the spec's rules through the engine.
"""

import numpy as np

from unidl.spec.gru import gru_shapes
from unidl.spec.rnn import lstm_shapes


def _gate_scale(u, dtype):
    """-1 for the columns of the sigmoid gates (i, f, o), -2 for the cell gate's."""
    return np.repeat(np.array([-1.0, -2.0, -1.0], dtype), [2 * u, u, u])


def _lstm(x, h0, c0, kernel, recurrent_kernel, bias):
    batch, steps, _ = x.shape
    u = h0.shape[1]
    dt = x.dtype
    scale = _gate_scale(u, dt)
    w = kernel * scale
    rk = recurrent_kernel * scale
    b = None if bias is None else bias * scale
    outputs = np.empty((batch, steps, u), dt)
    s = np.empty((batch, 4 * u), dt)
    rz = np.empty((batch, 4 * u), dt)
    tmp = np.empty((batch, u), dt)
    i, f, g, o = s[:, :u], s[:, u:2 * u], s[:, 2 * u:3 * u], s[:, 3 * u:]
    c = np.array(c0, dtype=dt, copy=True)
    h = h0
    for t in range(steps):
        # each step's input projection is a small matmul: no (batch, time, 4u) buffer
        np.matmul(x[:, t], w, out=s)
        np.matmul(h, rk, out=rz)
        s += rz
        if b is not None:
            s += b
        np.exp(s, out=s)  # (overflow to inf gives the right limit, 0, below)
        s += 1.0
        np.reciprocal(s, out=s)  # sigmoid of i, f, o; sigmoid(2 z) of g
        g *= 2.0
        g -= 1.0  # tanh of g
        c *= f
        np.multiply(i, g, out=tmp)
        c += tmp
        h = outputs[:, t]
        # tanh(c) = 2 / (1 + exp(-2 c)) - 1
        np.multiply(c, -2.0, out=tmp)
        np.exp(tmp, out=tmp)
        tmp += 1.0
        np.divide(2.0, tmp, out=h)
        h -= 1.0
        h *= o
    return outputs, h.copy(), c


def lstm(x, h0, c0, kernel, recurrent_kernel, bias=None):
    # NumPy would broadcast some wrong shapes through the in-place updates: check them first
    lstm_shapes(x.shape, h0.shape, c0.shape, kernel.shape, recurrent_kernel.shape,
                None if bias is None else bias.shape)
    with np.errstate(over="ignore"):
        if x.dtype == np.float16:
            f32 = [None if a is None else a.astype(np.float32)
                   for a in (x, h0, c0, kernel, recurrent_kernel, bias)]
            return tuple(a.astype(np.float16) for a in _lstm(*f32))
        return _lstm(x, h0, c0, kernel, recurrent_kernel, bias)


def _gru_weights(kernel, recurrent_kernel, bias, reset_after):
    """``(w, rk, b_x, b_h)``: the weights with the z, r columns negated (``exp`` then gives
    ``1 / sigmoid - 1``), the bias added to the input projection (the recurrent bias of the
    z, r gates folded in) and the one added to the candidate's recurrent projection (or
    ``None``)."""
    u = recurrent_kernel.shape[0]
    scale = np.repeat(np.array([-1.0, 1.0], kernel.dtype), [2 * u, u])
    w = kernel * scale
    rk = recurrent_kernel * scale
    if bias is None:
        return w, rk, None, None
    if not reset_after:
        return w, rk, bias * scale, None
    b_x = bias[0] * scale
    b_x[:2 * u] -= bias[1, :2 * u]
    return w, rk, b_x, bias[1, 2 * u:].copy()


def _gru(x, h0, kernel, recurrent_kernel, bias, reset_after):
    """The GRU loop. With ``s = 1 + exp(-a)`` for the z, r pre-activations ``a`` (so
    ``z = 1 / s_z``), ``r * c`` is ``c / s_r`` and ``z (h - n)`` is ``(h - n) / s_z``: no
    reciprocal is taken (an overflow to inf gives the right limit, 0). The input projections
    of every step are one stacked matmul (small GEMMs, one per sequence)."""
    batch, steps, _ = x.shape
    u = h0.shape[1]
    dt = x.dtype
    w, rk, b_x, b_h = _gru_weights(kernel, recurrent_kernel, bias, reset_after)
    if not reset_after:  # separate, contiguous blocks: h @ U_zr and (r h) @ U_h
        rk_zr, rk_h = np.ascontiguousarray(rk[:, :2 * u]), np.ascontiguousarray(rk[:, 2 * u:])
    xp = np.matmul(x, w)
    if b_x is not None:
        xp += b_x
    outputs = np.empty((batch, steps, u), dt)
    s = np.empty((batch, 2 * u), dt)
    rz = np.empty((batch, 3 * u if reset_after else 2 * u), dt)
    n, rh = np.empty((batch, u), dt), np.empty((batch, u), dt)
    s_z, s_r = s[:, :u], s[:, u:]
    h = h0
    for t in range(steps):
        xp_t = xp[:, t]
        if reset_after:
            np.matmul(h, rk, out=rz)
            np.add(xp_t[:, :2 * u], rz[:, :2 * u], out=s)
            np.exp(s, out=s)
            s += 1.0
            rn = rz[:, 2 * u:]
            if b_h is not None:
                rn += b_h
            rn /= s_r  # r * (h U_h + b_h)
            np.add(xp_t[:, 2 * u:], rn, out=n)
        else:
            np.matmul(h, rk_zr, out=rz)
            np.add(xp_t[:, :2 * u], rz, out=s)
            np.exp(s, out=s)
            s += 1.0
            np.divide(h, s_r, out=rh)  # r * h
            np.matmul(rh, rk_h, out=n)
            n += xp_t[:, 2 * u:]
        np.tanh(n, out=n)
        h_new = outputs[:, t]  # n + z (h - n)
        np.subtract(h, n, out=h_new)
        h_new /= s_z
        h_new += n
        h = h_new
    return outputs, h.copy()


def gru(x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    # NumPy would broadcast some wrong shapes through the in-place updates: check them first
    gru_shapes(x.shape, h0.shape, kernel.shape, recurrent_kernel.shape,
               None if bias is None else bias.shape, reset_after)
    with np.errstate(over="ignore"):
        if x.dtype == np.float16:
            f32 = [None if a is None else a.astype(np.float32)
                   for a in (x, h0, kernel, recurrent_kernel, bias)]
            return tuple(a.astype(np.float16) for a in _gru(*f32, reset_after))
        return _gru(x, h0, kernel, recurrent_kernel, bias, reset_after)


KERNELS = {
    "lstm": lstm,
    "gru": gru,
}
