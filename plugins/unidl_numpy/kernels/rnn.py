"""NumPy recurrent kernels: ``lstm`` and ``gru``, each one loop over preallocated buffers.

LSTM: every gate comes from one exponential per step: ``sigmoid(z) = 1 / (1 + exp(-z))`` and
``tanh(z) = 2 sigmoid(2 z) - 1``, so the stacked weights ``[kernel; recurrent_kernel; bias]``
are scaled once per call by -1 (by -2 for the cell gate) and each step runs one matmul of
``[x_t, h, 1]``, then ``exp``, ``+ 1`` and ``1 / .`` in place on its ``(batch, 4u)`` block:
the same operations as the spec's gradient rule, which recomputes the gates, so that while a
gradient may follow the loop keeps them for the gradient kernel (``unidl_numpy.rnn_grads``)
instead. GRU: the z and r columns of the weights (and biases) are scaled by -1 once per call, so
both sigmoid gates are one ``exp`` and ``+ 1`` on a ``(batch, 2u)`` block, used by dividing;
the candidate is one ``tanh``. float16 inputs are computed in float32 and rounded once at the
end. The GRU's gradient comes from the spec's rule through the engine.
"""

import numpy as np

from unidl.spec.gru import gru_shapes
from unidl.spec.rnn import lstm_shapes
from unidl_numpy import saved


def _gate_scale(u, dtype):
    """-1 for the columns of the sigmoid gates (i, f, o), -2 for the cell gate's."""
    return np.repeat(np.array([-1.0, -2.0, -1.0], dtype), [2 * u, u, u])


def _lstm(x, h0, c0, kernel, recurrent_kernel, bias, keep=False):
    """The loop; with ``keep``, also every step's ``[x_t, h_prev, 1]``, gates, cell-gate
    tanh and cell state (what the gradient rule recomputes, computed here the same way)."""
    batch, steps, feat = x.shape
    u = h0.shape[1]
    dt = x.dtype
    one, two, limit = dt.type(1.0), dt.type(2.0), dt.type(80.0)
    parts = [kernel, recurrent_kernel] + ([bias[None]] if bias is not None else [])
    w_neg = np.multiply(np.concatenate(parts, axis=0), _gate_scale(u, dt))
    k = w_neg.shape[0]
    n = steps if keep else 1
    xh = np.empty((n, batch, k), dt)
    s_all = np.empty((n, batch, 4 * u), dt)
    gt_all = np.empty((n, batch, u), dt)
    cs = np.empty((steps + 1 if keep else 2, batch, u), dt)
    cs[0] = c0
    if bias is not None:
        xh[:, :, k - 1] = one
    outputs = np.empty((batch, steps, u), dt)
    tmp = np.empty((batch, u), dt)
    h = h0
    for t in range(steps):
        j = t if keep else 0
        xt, s, gt = xh[j], s_all[j], gt_all[j]
        xt[:, :feat] = x[:, t]
        xt[:, feat:feat + u] = h
        # z = [x_t, h, 1] @ w (scaled by -1, by -2 for the cell gate); the gates are
        # 1 / (1 + exp(-z)) and tanh(z) = 2 sigmoid(2 z) - 1, as in the spec's rule
        np.matmul(xt, w_neg, out=s)
        np.minimum(s, limit, out=s)
        np.exp(s, out=s)
        np.add(s, one, out=s)
        np.divide(one, s, out=s)
        i, f, o = s[:, :u], s[:, u:2 * u], s[:, 3 * u:]
        np.multiply(s[:, 2 * u:3 * u], two, out=gt)
        np.subtract(gt, one, out=gt)
        c_prev, c = (cs[t], cs[t + 1]) if keep else (cs[t % 2], cs[(t + 1) % 2])
        np.multiply(f, c_prev, out=c)
        np.multiply(i, gt, out=tmp)
        np.add(c, tmp, out=c)
        h = outputs[:, t]
        # tanh(c) = 2 / (1 + exp(-2 c)) - 1
        np.multiply(c, -2.0, out=tmp)
        np.exp(tmp, out=tmp)
        tmp += 1.0
        np.divide(2.0, tmp, out=h)
        h -= 1.0
        h *= o
    c = cs[steps if keep else steps % 2]
    result = (outputs, h.copy(), c.copy())
    if keep:  # (for the gradient kernel, ``unidl_numpy.rnn_grads``)
        saved.put("lstm", outputs, (xh, s_all, gt_all, cs))
    return result


def lstm(x, h0, c0, kernel, recurrent_kernel, bias=None):
    # NumPy would broadcast some wrong shapes through the in-place updates: check them first
    lstm_shapes(x.shape, h0.shape, c0.shape, kernel.shape, recurrent_kernel.shape,
                None if bias is None else bias.shape)
    with np.errstate(over="ignore"):
        if x.dtype == np.float16:
            f32 = [None if a is None else a.astype(np.float32)
                   for a in (x, h0, c0, kernel, recurrent_kernel, bias)]
            return tuple(a.astype(np.float16) for a in _lstm(*f32))
        keep = x.shape[1] > 0 and saved.wanted()
        return _lstm(x, h0, c0, kernel, recurrent_kernel, bias, keep)


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
