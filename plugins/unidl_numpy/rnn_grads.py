"""The gradient kernel of ``lstm`` for unidl's engine on NumPy: the spec's rule
(``unidl/spec/rnn.py``, ``_lstm_grad``) as one loop over preallocated buffers.

The spec's rule, run through the engine, dispatches some 40 ops per time step (the
concatenations, splits and scalar conversions included); this kernel performs the same
float operations with the same operands and the same association (each matmul on operands of
the same shapes and layout, so the same bits; ``tests/test_numpy_speed_paths.py`` checks
it), writing into buffers allocated once per call.
"""

from __future__ import annotations

import numpy as np

from unidl_numpy import saved as _saved
from unidl_numpy.kernels import rnn as _rnn

__all__ = ["lstm"]

_LIMIT = 80.0  # the spec's bound on -z before exp (float32 and float64)


def _forward(x, h0, c0, out_seq, w_neg, has_bias):
    """Recompute every step's stacked inputs ``[x_t, h_prev, 1]``, gate activations ``s``
    (sigmoid of z; of 2 z for the cell gate), cell-gate ``tanh`` and cell states."""
    batch, steps, feat = x.shape
    u = h0.shape[1]
    dt = x.dtype
    k = feat + u + (1 if has_bias else 0)
    one, two, limit = dt.type(1.0), dt.type(2.0), dt.type(_LIMIT)
    xh = np.empty((steps, batch, k), dt)
    xh[:, :, :feat] = x.transpose(1, 0, 2)
    xh[0, :, feat:feat + u] = h0
    xh[1:, :, feat:feat + u] = out_seq[:, :-1].transpose(1, 0, 2)
    if has_bias:
        xh[:, :, k - 1] = one
    s = np.empty((steps, batch, 4 * u), dt)
    gt = np.empty((steps, batch, u), dt)
    cs = np.empty((steps + 1, batch, u), dt)
    cs[0] = c0
    tmp = np.empty((batch, u), dt)
    for t in range(steps):
        st = s[t]
        np.matmul(xh[t], w_neg, out=st)
        np.minimum(st, limit, out=st)
        np.exp(st, out=st)
        np.add(st, one, out=st)
        np.divide(one, st, out=st)
        i, f, sg = st[:, :u], st[:, u:2 * u], st[:, 2 * u:3 * u]
        np.multiply(sg, two, out=gt[t])
        np.subtract(gt[t], one, out=gt[t])
        np.multiply(f, cs[t], out=cs[t + 1])
        np.multiply(i, gt[t], out=tmp)
        np.add(cs[t + 1], tmp, out=cs[t + 1])
    return xh, s, gt, cs


def _dz(dz, s, gt, c_prev, tc, dc, dh, u):
    """``dz = [dc, dc, 4 dc, dh] * ([g, c_prev, i, tanh(c)] * (s (1 - s)))``, blockwise."""
    one, four = s.dtype.type(1.0), s.dtype.type(4.0)
    np.subtract(one, s, out=dz)
    np.multiply(s, dz, out=dz)
    blocks = (dz[:, :u], dz[:, u:2 * u], dz[:, 2 * u:3 * u], dz[:, 3 * u:])
    for blk, b in zip(blocks, (gt, c_prev, s[:, :u], tc)):
        np.multiply(b, blk, out=blk)
    np.multiply(dc, blocks[0], out=blocks[0])
    np.multiply(dc, blocks[1], out=blocks[1])
    np.multiply(np.multiply(dc, four), blocks[2], out=blocks[2])
    np.multiply(dh, blocks[3], out=blocks[3])


def _backward(slots, g, out, x, h0, w, saved, feat, u):
    """Backpropagation through time, as the spec's loop; returns the rule's cotangents."""
    xh, s, gt, cs = saved
    g_seq, g_h, g_c = g
    batch, steps, _ = x.shape
    dt = x.dtype
    w_t = w.T
    hs = out[0]
    dz = np.empty((batch, 4 * u), dt)
    dx = np.empty(x.shape, dt) if 0 in slots else None
    dh_next, dc_next, dw = g_h, g_c, None
    for t in range(steps - 1, -1, -1):
        st = s[t]
        tc = np.tanh(cs[t + 1])
        dh = _plus(None if g_seq is None else g_seq[:, t], dh_next)
        if dh is None:
            dh = np.zeros_like(dc_next)
        q = np.multiply(hs[:, t], tc)
        np.subtract(st[:, 3 * u:], q, out=q)
        np.multiply(dh, q, out=q)
        dc = _plus(dc_next, q)
        _dz(dz, st, gt[t], cs[t], tc, dc, dh, u)
        dc_next = np.multiply(dc, st[:, u:2 * u])
        m = np.matmul(dz, w_t)
        if dx is not None:
            dx[:, t] = m[:, :feat]
        dh_next = m[:, feat:feat + u]
        term = np.matmul(xh[t].T, dz)
        dw = term if dw is None else np.add(dw, term, out=dw)
    db = dw[feat + u:].reshape(4 * u) if dw.shape[0] > feat + u else None
    return dx, dh_next, dc_next, dw[:feat], dw[feat:feat + u], db


def _plus(a, b):
    """``a + b`` of the ones that are not None (None if both are)."""
    if a is None:
        return b
    return a if b is None else np.add(a, b)


def lstm(slots, g, out, x, h0, c0, kernel, recurrent_kernel, bias=None):
    """The spec's ``lstm`` rule for float32/float64 NumPy arrays; None for anything else."""
    args = [a for a in (x, h0, c0, kernel, recurrent_kernel, bias) if a is not None]
    dt = x.dtype
    if dt not in (np.float32, np.float64) or any(
            a.__class__ is not np.ndarray or a.dtype != dt for a in args):
        return None
    if not isinstance(g, (list, tuple)) or len(g) != 3 or all(c is None for c in g) or any(
            c is not None and (c.__class__ is not np.ndarray or c.dtype != dt) for c in g):
        return None
    batch, steps, feat = x.shape
    u = h0.shape[1]
    if steps == 0 or batch == 0:
        return None
    parts = [kernel, recurrent_kernel] + ([bias[None]] if bias is not None else [])
    w = np.concatenate(parts, axis=0)
    saved = _saved.take("lstm", out[0])  # (kept by the forward: the same values)
    with np.errstate(over="ignore"):
        if saved is None:
            w_neg = np.multiply(w, _rnn._gate_scale(u, dt))
            saved = _forward(x, h0, c0, out[0], w_neg, bias is not None)
        return _backward(slots, g, out, x, h0, w, saved, feat, u)
