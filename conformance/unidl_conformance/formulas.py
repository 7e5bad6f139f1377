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


# ---- preprocessing and augmentation layers ----------------------------------------------------
# The augmentation layers draw their parameters on the host from ``numpy.random.default_rng(
# seed)`` (the layer's ``seed``); the layer suite calls a layer twice (once to build it), so
# these formulas replay the generator past the first call's draws. Written from Keras's
# definitions with NumPy, not from unidl's ops.
def rescaling_layer(scale, offset):
    def formula(weights, xs, kwargs):
        return xs[0] * np.asarray(scale) + np.asarray(offset)

    return formula


def normalization_layer(weights, xs, kwargs, mean=None, variance=None):
    """``(x - mean) / max(sqrt(variance), 1e-7)``; the statistics are the layer's weights
    unless given."""
    if mean is None:
        mean, variance = weights
    return (xs[0] - np.asarray(mean)) / np.maximum(np.sqrt(np.asarray(variance)), 1e-7)


def _f32_sources(n_in, n_out, nearest):
    """TensorFlow's half-pixel source positions of each output pixel, in float32."""
    scale = np.float32(n_in) / np.float32(n_out)
    centre = (np.arange(n_out).astype(np.float32) + np.float32(0.5)) * scale
    if nearest:
        return np.minimum(np.floor(centre), n_in - 1).astype(int)
    return centre - np.float32(0.5)


def resize_images(x, height, width, nearest=False):
    """``tf.image.resize`` (antialias off) of a ``(batch, h, w, c)`` array."""
    if nearest:
        rows = _f32_sources(x.shape[1], height, True)
        cols = _f32_sources(x.shape[2], width, True)
        return x[:, rows][:, :, cols]
    out = x
    for axis, size in ((2, width), (1, height)):
        n = out.shape[axis]
        src = _f32_sources(n, size, False).astype(np.float64)
        lo = np.floor(src)
        frac = (src - lo).astype(np.float32).astype(np.float64)
        a = np.take(out, np.clip(lo.astype(int), 0, n - 1), axis=axis)
        b = np.take(out, np.clip(np.ceil(src).astype(int), 0, n - 1), axis=axis)
        shape = [1] * 4
        shape[axis] = size
        out = a + (b - a) * frac.reshape(shape)
    return out


def resizing_layer(height, width, nearest=False, crop_aspect=False):
    def formula(weights, xs, kwargs):
        x = xs[0]
        if crop_aspect:
            x = _aspect_window(x, height, width)
        return resize_images(x, height, width, nearest)

    return formula


def _aspect_window(x, height, width):
    h, w = x.shape[1:3]
    ch = max(min(h, int(w * height / width)), 1)
    cw = max(min(w, int(h * width / height)), 1)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[:, top:top + ch, left:left + cw]


def center_crop_layer(height, width):
    def formula(weights, xs, kwargs):
        x = xs[0]
        top, left = (x.shape[1] - height) // 2, (x.shape[2] - width) // 2
        return x[:, top:top + height, left:left + width]

    return formula


def category_encoding_layer(num_tokens, mode):
    def formula(weights, xs, kwargs):
        ids = np.asarray(xs[0])
        out = np.zeros(ids.shape[:-1] + (num_tokens,))
        for idx in np.ndindex(ids.shape):
            out[idx[:-1] + (ids[idx],)] += 1.0
        return out if mode == "count" else np.minimum(out, 1.0)

    return formula


def integer_lookup_layer(vocabulary):
    def formula(weights, xs, kwargs):
        table = {v: i + 1 for i, v in enumerate(vocabulary)}  # 0: out of vocabulary
        return np.vectorize(lambda v: table.get(int(v), 0))(xs[0])

    return formula


def _replayed(seed, draw):
    """The second call's draws of a layer with ``seed`` (``draw(rng)`` is one call's)."""
    rng = np.random.default_rng(seed)
    draw(rng)
    return draw(rng)


def random_flip_layer(seed, mode):
    def formula(weights, xs, kwargs):
        x = xs[0]
        flip = _replayed(seed, lambda g: g.uniform(size=(x.shape[0], 1)))[:, 0] <= 0.5
        out = x.copy()
        for i in np.flatnonzero(flip):
            if "horizontal" in mode:
                out[i] = out[i][:, ::-1]
            if "vertical" in mode:
                out[i] = out[i][::-1]
        return out

    return formula


def random_crop_layer(seed, height, width):
    def formula(weights, xs, kwargs):
        x = xs[0]
        h, w = x.shape[1:3]
        top, left = _replayed(seed, lambda g: (int(g.uniform(0, h - height + 1)),
                                               int(g.uniform(0, w - width + 1))))
        return x[:, top:top + height, left:left + width]

    return formula


def random_contrast_layer(seed, factor, value_range):
    def formula(weights, xs, kwargs):
        x = xs[0]
        c = _replayed(seed, lambda g: g.uniform(1 - factor, 1 + factor, size=(len(x), 1)))
        mean = x.mean(axis=(1, 2), keepdims=True)
        return np.clip((x - mean) * c.reshape(-1, 1, 1, 1) + mean, *value_range)

    return formula


def random_brightness_layer(seed, factor, value_range):
    def formula(weights, xs, kwargs):
        x = xs[0]
        u = _replayed(seed, lambda g: g.uniform(-factor, factor, size=(len(x), 1)))
        delta = u.reshape(-1, 1, 1, 1) * (value_range[1] - value_range[0])
        return np.clip(x + delta, *value_range)

    return formula


def gaussian_noise_layer(seed, stddev):
    def formula(weights, xs, kwargs):
        x = xs[0]
        return x + _replayed(seed, lambda g: g.standard_normal(size=x.shape)) * stddev

    return formula


def _sample_bilinear(image, px, py, fill_mode):
    """Bilinear samples of one ``(h, w, c)`` image at float coordinates (``"reflect"``:
    mirrored with period 2n; ``"constant"``: zeros outside)."""
    h, w, _ = image.shape

    def fit(c, n):
        if fill_mode == "reflect":
            c = np.mod(c, 2 * n)
            c = np.where(c >= n, 2 * n - 1 - c, c)
            return np.clip(c, 0, n - 1)
        return c

    px, py = fit(px, w), fit(py, h)
    x0, y0 = np.floor(px), np.floor(py)
    out = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = (x0 + dx).astype(int), (y0 + dy).astype(int)
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            v = image[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)] * inside[..., None]
            wgt = (1 - np.abs(px - xi)) * (1 - np.abs(py - yi))
            out = out + v * wgt[..., None]
    return out


def random_rotation_layer(seed, factor, fill_mode):
    """Keras's rotation about the image centre (output -> input), bilinear."""
    def formula(weights, xs, kwargs):
        x = xs[0]
        n, h, w, _ = x.shape
        angles = _replayed(seed, lambda g: g.uniform(-2 * np.pi * factor, 2 * np.pi * factor,
                                                     size=(n, 1)))[:, 0]
        cx, cy = (w - 1) / 2, (h - 1) / 2
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        out = np.empty_like(x)
        for i, a in enumerate(angles):
            px = np.cos(a) * (xx - cx) - np.sin(a) * (yy - cy) + cx
            py = np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy) + cy
            out[i] = _sample_bilinear(x[i], px, py, fill_mode)
        return out

    return formula
