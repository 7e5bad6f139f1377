"""Independent float64 formula-level references for layers (written from the definitions,
not from unidl's ops): Conv2D, BatchNormalization, LSTM, GRU, MultiHeadAttention.

Each takes ``(weights, inputs, call_kwargs)`` with weights in the layer's ``get_weights()``
order (Keras order) and returns the expected output.
"""

from __future__ import annotations

import math

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def conv2d_layer(weights, xs, kwargs):
    """Conv2D(4, 3, strides=2, padding="same"), channels-last, by explicit loops."""
    kernel, bias = weights
    x = xs[0]
    n, h, w, _ = x.shape
    kh, kw, _, cout = kernel.shape
    s = 2
    oh, ow = math.ceil(h / s), math.ceil(w / s)
    ph = max((oh - 1) * s + kh - h, 0)
    pw = max((ow - 1) * s + kw - w, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * s:i * s + kh, j * s:j * s + kw, :]
            out[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return out + bias


def batch_norm_training(weights, xs, kwargs, eps=1e-3):
    gamma, beta = weights[0], weights[1]
    x = xs[0]
    mean, var = x.mean(0), x.var(0)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def batch_norm_inference(weights, xs, kwargs, eps=1e-3):
    gamma, beta, moving_mean, moving_var = weights
    return gamma * (xs[0] - moving_mean) / np.sqrt(moving_var + eps) + beta


def lstm_layer(weights, xs, kwargs):
    """LSTM(return_sequences=True), Keras gate order i, f, c, o."""
    kernel, recurrent, bias = weights
    x = xs[0]
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    outs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1)


def gru_layer(weights, xs, kwargs):
    """GRU(return_sequences=True, reset_after=True), Keras gate order z, r, h."""
    kernel, recurrent, bias = weights
    x = xs[0]
    units = recurrent.shape[0]
    b_in, b_rec = bias[0], bias[1]
    h = np.zeros((x.shape[0], units))
    outs = []
    for t in range(x.shape[1]):
        xi = x[:, t] @ kernel + b_in
        hr = h @ recurrent + b_rec
        z = _sigmoid(xi[:, :units] + hr[:, :units])
        r = _sigmoid(xi[:, units:2 * units] + hr[:, units:2 * units])
        hh = np.tanh(xi[:, 2 * units:] + r * hr[:, 2 * units:])
        h = z * h + (1 - z) * hh
        outs.append(h)
    return np.stack(outs, 1)


def _mha(weights, query, value, causal):
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    q = np.einsum("btd,dhk->bthk", query, wq) + bq
    k = np.einsum("bsd,dhk->bshk", value, wk) + bk
    v = np.einsum("bsd,dhk->bshk", value, wv) + bv
    scores = np.einsum("bthk,bshk->bhts", q, k) / math.sqrt(wq.shape[-1])
    if causal:
        t, s = scores.shape[-2:]
        mask = np.tril(np.ones((t, s), dtype=bool))
        scores = np.where(mask, scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p = p / p.sum(-1, keepdims=True)
    ctx = np.einsum("bhts,bshk->bthk", p, v)
    return np.einsum("bthk,hkd->btd", ctx, wo) + bo


def mha_layer(weights, xs, kwargs):
    return _mha(weights, xs[0], xs[1], causal=False)


def mha_layer_causal(weights, xs, kwargs):
    return _mha(weights, xs[0], xs[1], causal=True)
