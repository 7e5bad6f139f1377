"""NumPy recurrent kernels: ``lstm`` as one loop over preallocated buffers.

Every gate comes from one exponential per step: ``sigmoid(z) = 1 / (1 + exp(-z))`` and
``tanh(z) = 2 sigmoid(2 z) - 1``, so the weights are scaled once per call by -1 (by -2 for the
cell gate) and each step runs ``exp``, ``+ 1`` and ``1 / .`` in place on its ``(batch, 4u)``
block. float16 inputs are computed in float32 and rounded once at the end. Gradients come
from the spec's rule through the engine.
"""

import numpy as np

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


KERNELS = {
    "lstm": lstm,
}
