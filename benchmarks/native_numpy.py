"""The reference a NumPy user writes by hand: forward and backward derived on paper.

Convolutions are im2col (``sliding_window_view`` + one matmul; the input gradient is the
col2im of one matmul), max pooling is a reshape, the LSTM is backpropagated through time
with the gates kept from the forward pass, and Adam updates the arrays in place. The first
layer's input gradient is not computed (nothing needs it), as autograd would not either.
"""

from __future__ import annotations

import numpy as np
from common import EPSILON, LEARNING_RATE
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32


# -- pieces ---------------------------------------------------------------------------------------
def _xent(logits, y):
    """Mean cross-entropy from logits and its gradient with respect to the logits."""
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = float(np.log(s[:, 0]).mean() - z[np.arange(n), y].mean())
    d = e / s
    d[np.arange(n), y] -= 1.0
    d /= n
    return loss, d


def _xent_loss(logits, y):
    """Mean cross-entropy from logits (no gradient)."""
    z = logits - logits.max(axis=1, keepdims=True)
    return float(np.log(np.exp(z).sum(axis=1)).mean() - z[np.arange(len(y)), y].mean())


def _im2col(x, k):
    """(N, H, W, C) -> (N*Ho*Wo, k*k*C) patches, ordered (kh, kw, C) like a Keras kernel."""
    n, h, w, c = x.shape
    win = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, Ho, Wo, C, k, k)
    cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3))
    return cols.reshape(n * (h - k + 1) * (w - k + 1), k * k * c)


def _col2im(dcols, shape, k):
    """The adjoint of ``_im2col``: scatter-add patch gradients back to (N, H, W, C)."""
    n, h, w, c = shape
    ho, wo = h - k + 1, w - k + 1
    d = dcols.reshape(n, ho, wo, k, k, c)
    dx = np.zeros(shape, dtype=dcols.dtype)
    for a in range(k):
        for b in range(k):
            dx[:, a:a + ho, b:b + wo, :] += d[:, :, :, a, b, :]
    return dx


def _pool(x):
    """2x2 max pool, stride 2, 'valid'; returns the output and what the backward needs."""
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    r = x[:, :2 * h2, :2 * w2, :].reshape(n, h2, 2, w2, 2, c)
    out = r.max(axis=(2, 4))
    return out, (r, out, x.shape)


def _pool_back(g, saved):
    r, out, shape = saved
    n, h2, _, w2, _, c = r.shape
    mask = r == out[:, :, None, :, None, :]
    d = (mask * g[:, :, None, :, None, :]).reshape(n, 2 * h2, 2 * w2, c)
    if d.shape == shape:
        return d
    dx = np.zeros(shape, dtype=g.dtype)
    dx[:, :2 * h2, :2 * w2, :] = d
    return dx


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class Adam:
    """In-place Adam, as torch.optim.Adam (and unidl.optimizers.Adam)."""

    def __init__(self, params, lr=LEARNING_RATE, b1=0.9, b2=0.999, eps=EPSILON):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def apply(self, params, grads):
        self.t += 1
        b1, b2 = self.b1, self.b2
        step = self.lr / (1.0 - b1 ** self.t)
        sqrt_bc2 = (1.0 - b2 ** self.t) ** 0.5
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= sqrt_bc2
            denom += self.eps
            p -= (step * m) / denom


# -- models ---------------------------------------------------------------------------------------
class MLP:
    def __init__(self, w, rng):
        self.w, self.rng = w, rng

    def forward(self, x):
        W1, b1, W2, b2 = self.w
        return np.maximum(x @ W1 + b1, 0.0) @ W2 + b2

    def loss_and_grads(self, x, y):
        W1, b1, W2, b2 = self.w
        z1 = x @ W1 + b1
        h = np.maximum(z1, 0.0)
        mask = (self.rng.random(h.shape, dtype=F32) >= 0.2) * F32(1.0 / 0.8)
        hd = h * mask
        self.logits = hd @ W2 + b2
        loss, dl = _xent(self.logits, y)
        dW2, db2 = hd.T @ dl, dl.sum(axis=0)
        dz1 = (dl @ W2.T) * mask
        dz1 *= z1 > 0
        return loss, [x.T @ dz1, dz1.sum(axis=0), dW2, db2]


class CNN:
    def __init__(self, w, rng):
        self.w = w

    def _conv(self, x, K, b):
        n, h, w, _ = x.shape
        cols = _im2col(x, 3)
        z = (cols @ K.reshape(-1, K.shape[-1])).reshape(n, h - 2, w - 2, K.shape[-1]) + b
        return z, cols

    def forward(self, x):
        K1, b1, K2, b2, W, b = self.w
        p1, _ = _pool(np.maximum(self._conv(x, K1, b1)[0], 0.0))
        p2, _ = _pool(np.maximum(self._conv(p1, K2, b2)[0], 0.0))
        return p2.reshape(p2.shape[0], -1) @ W + b

    def loss_and_grads(self, x, y):
        K1, b1, K2, b2, W, b = self.w
        n = x.shape[0]
        z1, cols1 = self._conv(x, K1, b1)
        p1, s1 = _pool(np.maximum(z1, 0.0))
        z2, cols2 = self._conv(p1, K2, b2)
        p2, s2 = _pool(np.maximum(z2, 0.0))
        f = p2.reshape(n, -1)
        self.logits = f @ W + b
        loss, dl = _xent(self.logits, y)
        dW, db = f.T @ dl, dl.sum(axis=0)
        dz2 = _pool_back((dl @ W.T).reshape(p2.shape), s2)
        dz2 *= z2 > 0
        g2 = dz2.reshape(-1, dz2.shape[-1])
        dK2, db2 = (cols2.T @ g2).reshape(K2.shape), g2.sum(axis=0)
        dp1 = _col2im(g2 @ K2.reshape(-1, K2.shape[-1]).T, p1.shape, 3)
        dz1 = _pool_back(dp1, s1)
        dz1 *= z1 > 0
        g1 = dz1.reshape(-1, dz1.shape[-1])
        dK1, db1 = (cols1.T @ g1).reshape(K1.shape), g1.sum(axis=0)
        return loss, [dK1, db1, dK2, db2, dW, db]


class LSTM:
    def __init__(self, w, rng):
        self.w = w

    def _run(self, x, keep):
        Wk, U, bias = self.w[0], self.w[1], self.w[2]
        n, steps, feat = x.shape
        u = U.shape[0]
        xz = (x.reshape(n * steps, feat) @ Wk + bias).reshape(n, steps, 4 * u)
        h = np.zeros((n, u), F32)
        c = np.zeros((n, u), F32)
        if keep:
            gates = np.empty((steps, n, 4 * u), F32)
            hs = np.empty((steps + 1, n, u), F32)
            cs = np.empty((steps + 1, n, u), F32)
            tcs = np.empty((steps, n, u), F32)
            hs[0], cs[0] = h, c
        for t in range(steps):
            z = xz[:, t] + h @ U
            sig = _sigmoid(z)
            i, f, o = sig[:, :u], sig[:, u:2 * u], sig[:, 3 * u:]
            g = np.tanh(z[:, 2 * u:3 * u])
            c = f * c + i * g
            tc = np.tanh(c)
            h = o * tc
            if keep:
                gates[t] = sig
                gates[t, :, 2 * u:3 * u] = g
                hs[t + 1], cs[t + 1], tcs[t] = h, c, tc
        return h, ((gates, hs, cs, tcs) if keep else None)

    def forward(self, x):
        h, _ = self._run(x, False)
        return h @ self.w[3] + self.w[4]

    def loss_and_grads(self, x, y):
        Wk, U, _, Wd, bd = self.w
        n, steps, feat = x.shape
        u = U.shape[0]
        h, (gates, hs, cs, tcs) = self._run(x, True)
        self.logits = h @ Wd + bd
        loss, dl = _xent(self.logits, y)
        dWd, dbd = h.T @ dl, dl.sum(axis=0)
        dh = dl @ Wd.T
        dc = np.zeros((n, u), F32)
        dU = np.zeros_like(U)
        dxz = np.empty((n, steps, 4 * u), F32)
        for t in range(steps - 1, -1, -1):
            gt = gates[t]
            i, f, g, o = gt[:, :u], gt[:, u:2 * u], gt[:, 2 * u:3 * u], gt[:, 3 * u:]
            tc = tcs[t]
            dc += dh * o * (1.0 - tc * tc)
            dz = dxz[:, t]
            dz[:, :u] = dc * g * i * (1.0 - i)
            dz[:, u:2 * u] = dc * cs[t] * f * (1.0 - f)
            dz[:, 2 * u:3 * u] = dc * i * (1.0 - g * g)
            dz[:, 3 * u:] = dh * tc * o * (1.0 - o)
            dU += hs[t].T @ dz
            dh = dz @ U.T
            dc *= f
        dz2 = dxz.reshape(n * steps, 4 * u)
        dWk = x.reshape(n * steps, feat).T @ dz2
        return loss, [dWk, dU, dz2.sum(axis=0), dWd, dbd]


MODELS = {"mlp": MLP, "cnn": CNN, "lstm": LSTM}


def steps(name: str, weights, x: np.ndarray, y: np.ndarray):
    """``(train, infer)`` callables of the hand-written NumPy model."""
    params = [np.array(w, dtype=F32, copy=True) for w in weights]
    model = MODELS[name](params, np.random.default_rng(0))
    opt = Adam(params)
    x = np.ascontiguousarray(x, dtype=F32)

    def train():
        loss, grads = model.loss_and_grads(x, y)
        opt.apply(params, grads)
        return loss

    def infer():
        return model.forward(x)

    return train, infer


def loops(name: str, weights, fit_batches, train_batch, eval_batches):
    """The loops a NumPy user writes for what ``fit``, ``train_on_batch``, ``evaluate`` and
    ``predict`` do (see ``loop.py``), from the hand-derived models above: ``fit`` and
    ``evaluate`` compute the loss and the number of correct predictions every step,
    ``predict`` concatenates the outputs. Returns ``{call: zero-argument callable}``."""
    def fresh():
        params = [np.array(w, dtype=F32, copy=True) for w in weights]
        return MODELS[name](params, np.random.default_rng(0)), params, Adam(params)

    model, params, opt = fresh()
    tob_model, tob_params, tob_opt = fresh()

    def fit():
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in fit_batches:
            loss, grads = model.loss_and_grads(np.asarray(xb, F32), yb)
            opt.apply(params, grads)
            loss_sum += loss * len(yb)
            correct += int((model.logits.argmax(1) == yb).sum())
            seen += len(yb)
        return loss_sum / seen, correct / seen

    def train_on_batch():
        xb, yb = train_batch
        loss, grads = tob_model.loss_and_grads(np.asarray(xb, F32), yb)
        tob_opt.apply(tob_params, grads)
        return loss

    def evaluate():
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in eval_batches:
            logits = model.forward(np.asarray(xb, F32))
            loss_sum += _xent_loss(logits, yb) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
        return loss_sum / seen, correct / seen

    def predict():
        return np.concatenate([model.forward(np.asarray(xb, F32)) for xb, _ in eval_batches])

    return {"fit": fit, "train_on_batch": train_on_batch, "evaluate": evaluate,
            "predict": predict}


def dispatch_pair():
    """A tiny op through unidl and straight through NumPy (same inputs)."""
    from unidl import ops

    a, b = np.ones(4, F32), np.ones(4, F32)
    return (lambda: ops.add(a, b)), (lambda: np.add(a, b))


def check_gradients(name: str, weights, x, y, eps=1e-5):
    """Finite-difference spot check of the hand-derived gradients (float64; used by tests)."""
    params = [np.array(w, dtype=np.float64) for w in weights]
    model = MODELS[name](params, np.random.default_rng(0))
    if name == "mlp":  # dropout off for the check
        model.rng = _NoDrop()
    x = x.astype(np.float64)
    _, grads = model.loss_and_grads(x, y)
    rng = np.random.default_rng(1)
    worst = 0.0
    for p, g in zip(params, grads):
        for _ in range(3):
            idx = tuple(int(rng.integers(0, s)) for s in p.shape)
            old = p[idx]
            p[idx] = old + eps
            lp, _ = model.loss_and_grads(x, y)
            p[idx] = old - eps
            lm, _ = model.loss_and_grads(x, y)
            p[idx] = old
            fd = (lp - lm) / (2 * eps)
            worst = max(worst, abs(fd - g[idx]) / max(1e-3, abs(fd)))
    return worst


class _NoDrop:
    def random(self, shape, dtype=None):
        return np.ones(shape, dtype=np.float64)
