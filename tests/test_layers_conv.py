"""Convolution, pooling and attention layers against independent NumPy formulas, per backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import unidl
from unidl import layers, ops
from unidl.layers.base import LayerError

RNG = np.random.default_rng(1234)


def _r(*shape, dtype="float32"):
    return RNG.normal(size=shape).astype(dtype)


def _np(x):
    return np.asarray(ops.to_numpy(x))


def _close(got, want, tol=2e-5):
    got = _np(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- independent NumPy references ---------------------------------------------------------
def _same_pads(n, k_eff, s):
    out = -(-n // s)
    total = max((out - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def ref_conv2d(x, k, strides=(1, 1), padding="valid", dilation=(1, 1), groups=1):
    """Channels-last cross-correlation, taps accumulated one by one."""
    n, h, w, c = x.shape
    kh, kw, cin_g, f = k.shape
    (sh, sw), (dh, dw) = strides, dilation
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "same":
        ph, pw = _same_pads(h, eh, sh), _same_pads(w, ew, sw)
    elif padding == "valid":
        ph, pw = (0, 0), (0, 0)
    else:  # explicit ((top, bottom), (left, right))
        ph, pw = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), ph, pw, (0, 0)))
    oh = (xp.shape[1] - eh) // sh + 1
    ow = (xp.shape[2] - ew) // sw + 1
    out = np.zeros((n, oh, ow, f))
    fg = f // groups
    for a in range(kh):
        for b in range(kw):
            win = xp[:, a * dh: a * dh + (oh - 1) * sh + 1: sh,
                     b * dw: b * dw + (ow - 1) * sw + 1: sw, :]
            for g in range(groups):
                out[..., g * fg:(g + 1) * fg] += win[..., g * cin_g:(g + 1) * cin_g] @ \
                    k[a, b, :, g * fg:(g + 1) * fg]
    return out


def ref_conv1d(x, k, stride=1, padding="valid", dilation=1, groups=1):
    if padding == "causal":
        padding = ((0, 0), ((k.shape[0] - 1) * dilation, 0))
    y = ref_conv2d(x[:, None], k[None], (1, stride), padding, (1, dilation), groups)
    return y[:, 0]


def ref_depthwise2d(x, k, strides=(1, 1), padding="valid", dilation=(1, 1)):
    n, h, w, c = x.shape
    kh, kw, _, m = k.shape
    (sh, sw), (dh, dw) = strides, dilation
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    ph, pw = (_same_pads(h, eh, sh), _same_pads(w, ew, sw)) if padding == "same" else \
        ((0, 0), (0, 0))
    xp = np.pad(x.astype(np.float64), ((0, 0), ph, pw, (0, 0)))
    oh = (xp.shape[1] - eh) // sh + 1
    ow = (xp.shape[2] - ew) // sw + 1
    out = np.zeros((n, oh, ow, c, m))
    for a in range(kh):
        for b in range(kw):
            win = xp[:, a * dh: a * dh + (oh - 1) * sh + 1: sh,
                     b * dw: b * dw + (ow - 1) * sw + 1: sw, :]
            out += win[..., None] * k[a, b]
    return out.reshape(n, oh, ow, c * m)


def ref_conv2d_transpose(x, k, strides=(1, 1), padding="valid", output_padding=None):
    """Scatter every input pixel through the kernel, then crop as the matching conv2d pads."""
    n, h, w, c = x.shape
    kh, kw, f, _ = k.shape
    sh, sw = strides
    full = np.zeros((n, (h - 1) * sh + kh, (w - 1) * sw + kw, f))
    for i in range(h):
        for j in range(w):
            full[:, i * sh: i * sh + kh, j * sw: j * sw + kw, :] += np.einsum(
                "nc,abfc->nabf", x[:, i, j, :].astype(np.float64), k)
    sizes = []
    for dim, (nin, kk, s) in enumerate(((h, kh, sh), (w, kw, sw))):
        if output_padding is None:
            size = nin * s + max(kk - s, 0) if padding == "valid" else nin * s
        else:
            pad = 0 if padding == "valid" else kk // 2
            size = (nin - 1) * s + kk - 2 * pad + output_padding[dim]
        sizes.append(size)
    starts = [0 if padding == "valid" else _same_pads(size, kk, s)[0]
              for size, kk, s in zip(sizes, (kh, kw), (sh, sw))]
    big = np.zeros((n, max(full.shape[1], starts[0] + sizes[0]),
                    max(full.shape[2], starts[1] + sizes[1]), f))
    big[:, :full.shape[1], :full.shape[2]] = full
    return big[:, starts[0]: starts[0] + sizes[0], starts[1]: starts[1] + sizes[1]]


def ref_pool2d(x, pool, strides, padding, kind):
    n, h, w, c = x.shape
    (ph_, pw_), (sh, sw) = pool, strides
    if padding == "same":
        pads = (_same_pads(h, ph_, sh), _same_pads(w, pw_, sw))
    else:
        pads = ((0, 0), (0, 0))
    xp = np.pad(x.astype(np.float64), ((0, 0), pads[0], pads[1], (0, 0)),
                constant_values=np.nan)
    oh = (xp.shape[1] - ph_) // sh + 1
    ow = (xp.shape[2] - pw_) // sw + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * sh: i * sh + ph_, j * sw: j * sw + pw_, :]
            out[:, i, j] = np.nanmax(win, axis=(1, 2)) if kind == "max" else \
                np.nanmean(win, axis=(1, 2))
    return out


def ref_mha(q, v, k, weights, num_heads, key_dim, mask=None, causal=False):
    """Multi-head attention from the Keras weight layout, in float64."""
    wq, bq, wk, bk, wv, bv, wo, bo = [np.asarray(w, np.float64) for w in weights]
    qp = np.einsum("btd,dhk->bthk", q, wq) + bq
    kp = np.einsum("bsd,dhk->bshk", k, wk) + bk
    vp = np.einsum("bsd,dhk->bshk", v, wv) + bv
    scores = np.einsum("bthk,bshk->bhts", qp, kp) / math.sqrt(key_dim)
    t, s = q.shape[1], v.shape[1]
    allowed = np.ones((q.shape[0], t, s), bool)
    if mask is not None:
        allowed &= np.asarray(mask, bool)
    if causal:
        allowed &= np.tril(np.ones((t, s), bool))[None]
    allowed = allowed[:, None]
    scores = np.where(allowed, scores, -np.inf)
    mx = np.max(scores, axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    e = np.where(allowed, np.exp(scores - mx), 0.0)
    denom = e.sum(-1, keepdims=True)
    probs = np.where(denom > 0, e / np.where(denom > 0, denom, 1.0), 0.0)
    ctx = np.einsum("bhts,bshk->bthk", probs, vp)
    out = np.einsum("bthk,hko->bto", ctx, wo) + bo
    return out, probs


def _set_random_weights(layer, scale=0.5):
    layer.set_weights([RNG.normal(scale=scale, size=w.shape).astype("float32")
                       for w in layer.get_weights()])
    return layer.get_weights()


# ---- convolutions -------------------------------------------------------------------------
CONV2D_CASES = [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=(2, 3), strides=2, padding="same", activation="relu"),
    dict(filters=6, kernel_size=3, dilation_rate=2, padding="same", groups=3),
    dict(filters=2, kernel_size=(3, 1), strides=(1, 2), use_bias=False, activation="tanh"),
]


@pytest.mark.parametrize("case", CONV2D_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_conv2d_forward(backend, case):
    x = _r(2, 7, 8, 3)
    layer = layers.Conv2D(**case)
    layer(x)
    w = _set_random_weights(layer)
    k = w[0]
    want = ref_conv2d(x, k, layer.strides, layer.padding, layer.dilation_rate, layer.groups)
    if layer.use_bias:
        want = want + w[1]
        assert w[1].shape == (case["filters"],)
    want = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh}.get(
        case.get("activation"), lambda a: a)(want)
    assert k.shape == layer.kernel_size + (3 // layer.groups, case["filters"])
    _close(layer(x), want)


def test_conv2d_channels_first(backend):
    x = _r(2, 3, 6, 5)
    layer = layers.Conv2D(4, 3, padding="same", data_format="channels_first")
    layer(x)
    k, b = _set_random_weights(layer)
    want = ref_conv2d(np.transpose(x, (0, 2, 3, 1)), k, padding="same") + b
    _close(layer(x), np.transpose(want, (0, 3, 1, 2)))


@pytest.mark.parametrize("case", [
    dict(filters=3, kernel_size=3),
    dict(filters=3, kernel_size=3, strides=2, padding="same", activation="relu"),
    dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2),
    dict(filters=4, kernel_size=2, groups=2),
], ids=lambda c: "-".join(map(str, c.values())))
def test_conv1d_forward(backend, case):
    x = _r(2, 9, 4)
    layer = layers.Conv1D(**case)
    layer(x)
    k, b = _set_random_weights(layer)
    want = ref_conv1d(x, k, layer.strides[0], layer.padding, layer.dilation_rate[0],
                      layer.groups) + b
    if case.get("activation") == "relu":
        want = np.maximum(want, 0)
    _close(layer(x), want)


def test_conv2d_rejects_3d_input(backend):
    layer = layers.Conv2D(4, 3, name="my_conv")
    with pytest.raises(LayerError) as info:
        layer(_r(2, 5, 3))
    msg = str(info.value)
    assert "my_conv" in msg
    assert "expected a 4-D input (batch, height, width, channels), got shape (2, 5, 3)" in msg
    layer(_r(2, 5, 5, 3))  # builds
    with pytest.raises(LayerError, match="my_conv.*expected a 4-D input"):
        layer(_r(2, 5, 3))
    with pytest.raises(LayerError, match="my_conv.*3 channels"):
        layer(_r(2, 5, 5, 2))


def test_conv_argument_errors():
    with pytest.raises(LayerError, match="groups"):
        layers.Conv2D(5, 3, groups=2)
    with pytest.raises(LayerError, match="padding"):
        layers.Conv2D(5, 3, padding="causal")
    with pytest.raises(LayerError, match="kernel_size"):
        layers.Conv2D(5, (3, 3, 3))
    with pytest.raises(LayerError, match="dilation_rate"):
        layers.Conv2D(5, 3, strides=2, dilation_rate=2)
    with pytest.raises(LayerError, match="output_padding"):
        layers.Conv2DTranspose(5, 3, strides=2, output_padding=2)


@pytest.mark.parametrize("hw,kernel,strides,padding,output_padding,want_hw", [
    ((4, 5), 3, 2, "valid", None, (9, 11)),
    ((4, 5), 3, 2, "same", None, (8, 10)),
    ((3, 3), 2, 3, "valid", None, (9, 9)),
    ((4, 5), 3, 2, "valid", 1, (10, 12)),
    ((4, 4), (4, 3), (2, 1), "same", (1, 0), (7, 4)),
    ((3, 4), 3, 1, "same", None, (3, 4)),
])
def test_conv2d_transpose_shapes_and_values(backend, hw, kernel, strides, padding,
                                            output_padding, want_hw):
    x = _r(2, *hw, 3)
    layer = layers.Conv2DTranspose(5, kernel, strides=strides, padding=padding,
                                   output_padding=output_padding)
    layer(x)
    k, b = _set_random_weights(layer)
    assert k.shape == layer.kernel_size + (5, 3)
    y = layer(x)
    assert tuple(ops.shape(y)) == (2, *want_hw, 5)
    want = ref_conv2d_transpose(x, k, layer.strides, padding, layer.output_padding) + b
    _close(y, want)


def test_conv1d_transpose(backend):
    x = _r(2, 5, 3)
    layer = layers.Conv1DTranspose(4, 3, strides=2)
    layer(x)
    k, b = _set_random_weights(layer)
    want = ref_conv2d_transpose(x[:, None], k[None], (1, 2), "valid")[:, 0] + b
    _close(layer(x), want)
    assert tuple(ops.shape(layer(x))) == (2, 11, 4)


@pytest.mark.parametrize("case", [
    dict(kernel_size=3),
    dict(kernel_size=(2, 3), strides=2, padding="same", depth_multiplier=2),
    dict(kernel_size=3, padding="same", dilation_rate=2, depth_multiplier=3,
         activation="relu"),
], ids=lambda c: "-".join(map(str, c.values())))
def test_depthwise_conv2d(backend, case):
    x = _r(2, 7, 6, 3)
    layer = layers.DepthwiseConv2D(**case)
    layer(x)
    k, b = _set_random_weights(layer)
    assert k.shape == layer.kernel_size + (3, layer.depth_multiplier)
    assert b.shape == (3 * layer.depth_multiplier,)
    want = ref_depthwise2d(x, k, layer.strides, layer.padding, layer.dilation_rate) + b
    if case.get("activation") == "relu":
        want = np.maximum(want, 0)
    _close(layer(x), want)


@pytest.mark.parametrize("case", [
    dict(filters=4, kernel_size=3),
    dict(filters=5, kernel_size=3, strides=2, padding="same", depth_multiplier=2,
         activation="relu"),
], ids=lambda c: "-".join(map(str, c.values())))
def test_separable_conv2d_is_depthwise_then_pointwise(backend, case):
    x = _r(2, 7, 6, 3)
    layer = layers.SeparableConv2D(**case)
    layer(x)
    dk, pk, b = _set_random_weights(layer)
    assert dk.shape == layer.kernel_size + (3, layer.depth_multiplier)
    assert pk.shape == (1, 1, 3 * layer.depth_multiplier, case["filters"])
    dw = ref_depthwise2d(x, dk, layer.strides, layer.padding, layer.dilation_rate)
    want = np.einsum("nhwc,cf->nhwf", dw, pk[0, 0]) + b
    if case.get("activation") == "relu":
        want = np.maximum(want, 0)
    _close(layer(x), want)
    assert layer.count_params() == dk.size + pk.size + b.size


def test_depthwise_and_separable_1d(backend):
    x = _r(2, 8, 3)
    dw = layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same")
    dw(x)
    k, b = _set_random_weights(dw)
    want = ref_depthwise2d(x[:, None], k[None], padding="same")[:, 0] + b
    _close(dw(x), want)
    sep = layers.SeparableConv1D(4, 3, strides=2)
    sep(x)
    dk, pk, b = _set_random_weights(sep)
    want = ref_depthwise2d(x[:, None], dk[None], (1, 2))[:, 0] @ pk[0] + b
    _close(sep(x), want)


def test_conv_gradients_match_formula(backend):
    x = _r(2, 6, 5, 3)
    g = _r(2, 3, 3, 4)
    layer = layers.Conv2D(4, 3, strides=2, padding="same")
    layer(x)
    k, _ = _set_random_weights(layer)

    def loss(kernel, bias):
        return ops.sum(ops.multiply(layer(x), g))

    gk, gb = unidl.grad(loss, argnums=(0, 1))(layer.kernel, layer.bias)
    ph, pw = _same_pads(6, 3, 2), _same_pads(5, 3, 2)
    xp = np.pad(x.astype(np.float64), ((0, 0), ph, pw, (0, 0)))
    want_k = np.zeros(k.shape)
    for a in range(3):
        for b in range(3):
            win = xp[:, a: a + 5: 2, b: b + 5: 2, :]
            want_k[a, b] = np.einsum("nijc,nijo->co", win, g)
    _close(gk, want_k, 1e-4)
    _close(gb, g.sum(axis=(0, 1, 2)), 1e-4)


# ---- pooling ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool,strides,padding", [
    (2, None, "valid"), (3, 2, "valid"), (3, 2, "same"), ((2, 3), (1, 2), "same"),
])
def test_pooling2d(backend, kind, pool, strides, padding):
    x = _r(2, 7, 8, 3)
    cls = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    layer = cls(pool, strides=strides, padding=padding)
    p = layer.pool_size
    s = layer.strides
    assert s == (p if strides is None else layer.strides)
    _close(layer(x), ref_pool2d(x, p, s, padding, kind))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling1d_and_channels_first(backend, kind):
    x = _r(2, 9, 3)
    cls1 = layers.MaxPooling1D if kind == "max" else layers.AveragePooling1D
    want = ref_pool2d(x[:, None], (1, 3), (1, 2), "same", kind)[:, 0]
    _close(cls1(3, strides=2, padding="same")(x), want)
    x2 = _r(2, 3, 6, 5)  # channels_first
    cls2 = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    want2 = ref_pool2d(np.transpose(x2, (0, 2, 3, 1)), (2, 2), (2, 2), "valid", kind)
    _close(cls2(data_format="channels_first")(x2), np.transpose(want2, (0, 3, 1, 2)))


def test_global_pooling(backend):
    x = _r(2, 4, 5, 3)
    _close(layers.GlobalAveragePooling2D()(x), x.mean(axis=(1, 2)))
    _close(layers.GlobalMaxPooling2D(keepdims=True)(x), x.max(axis=(1, 2), keepdims=True))
    _close(layers.GlobalAveragePooling2D(data_format="channels_first")(x), x.mean(axis=(2, 3)))
    x1 = _r(2, 6, 3)
    _close(layers.GlobalMaxPooling1D()(x1), x1.max(axis=1))
    _close(layers.GlobalAveragePooling1D(keepdims=True)(x1), x1.mean(axis=1, keepdims=True))
    mask = np.array([[1, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 0]], bool)
    want = (x1 * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    _close(layers.GlobalAveragePooling1D()(x1, mask=mask), want)
    with pytest.raises(LayerError, match="expected a 4-D input"):
        layers.GlobalAveragePooling2D()(x1)
    with pytest.raises(LayerError, match="expected a 3-D input"):
        layers.MaxPooling1D()(x)


def test_keras_aliases():
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.AvgPool1D is layers.AveragePooling1D
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert layers.GlobalMaxPool1D is layers.GlobalMaxPooling1D
    assert layers.Convolution2D is layers.Conv2D


# ---- multi-head attention -----------------------------------------------------------------
@pytest.mark.parametrize("causal,masked", [(False, False), (True, False), (True, True),
                                           (False, True)])
def test_mha_matches_numpy(backend, causal, masked):
    q, v = _r(2, 4, 6), _r(2, 5, 6)
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=2)
    mha(q, v)
    w = _set_random_weights(mha)
    assert [a.shape for a in w] == [(6, 3, 2), (3, 2), (6, 3, 2), (3, 2), (6, 3, 2), (3, 2),
                                    (3, 2, 6), (6,)]
    mask = None
    if masked:
        mask = RNG.random((2, 4, 5)) > 0.4
        mask[1, 2] = False  # a query with nothing to attend to: all-zero probabilities
    out, scores = mha(q, v, attention_mask=mask, use_causal_mask=causal,
                      return_attention_scores=True)
    want, want_p = ref_mha(q, v, v, w, 3, 2, mask, causal)
    _close(out, want, 5e-5)
    _close(scores, want_p, 5e-5)
    _close(mha(q, v, attention_mask=mask, use_causal_mask=causal), want, 5e-5)


def test_mha_key_value_dim_and_output_shape(backend):
    q, v, k = _r(2, 3, 5), _r(2, 4, 6), _r(2, 4, 7)
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=8)
    y = mha(q, v, key=k)
    assert tuple(ops.shape(y)) == (2, 3, 8)
    w = mha.get_weights()
    assert [a.shape for a in w] == [(5, 2, 3), (2, 3), (7, 2, 3), (2, 3), (6, 2, 4), (2, 4),
                                    (2, 4, 8), (8,)]
    w = _set_random_weights(mha)
    wq, bq, wk, bk, wv, bv, wo, bo = [a.astype(np.float64) for a in w]
    qp = np.einsum("btd,dhk->bthk", q, wq) + bq
    kp = np.einsum("bsd,dhk->bshk", k, wk) + bk
    vp = np.einsum("bsd,dhk->bshk", v, wv) + bv
    s = np.einsum("bthk,bshk->bhts", qp, kp) / math.sqrt(3)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = np.einsum("bhts,bshk,hko->bto", p, vp, wo) + bo
    _close(mha(q, v, k), want, 5e-5)
    assert mha.count_params() == sum(a.size for a in w)


def test_mha_dropout_and_training(backend):
    q = _r(2, 4, 6)
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, dropout=0.5)
    a = _np(mha(q, q))
    _close(mha(q, q, training=False), a)
    b = _np(mha(q, q, training=True))
    assert b.shape == a.shape and np.all(np.isfinite(b))
    assert not np.allclose(a, b)


def test_mha_gradient_matches_finite_differences(backend):
    q = RNG.normal(size=(1, 3, 4))
    v = RNG.normal(size=(1, 2, 4))
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=2, dtype="float64")
    mha(q, v)
    w = [RNG.normal(scale=0.5, size=a.shape) for a in mha.get_weights()]
    mha.set_weights(w)
    g = RNG.normal(size=(1, 3, 4))

    def loss(qq):
        return ops.sum(ops.multiply(mha(qq, v, use_causal_mask=True), g))

    got = _np(unidl.grad(loss)(ops.convert_to_tensor(q)))
    eps, num = 1e-6, np.zeros_like(q)
    for idx in np.ndindex(q.shape):
        qp, qm = q.copy(), q.copy()
        qp[idx] += eps
        qm[idx] -= eps
        num[idx] = ((ref_mha(qp, v, v, w, 2, 2, causal=True)[0] * g).sum()
                    - (ref_mha(qm, v, v, w, 2, 2, causal=True)[0] * g).sum()) / (2 * eps)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-7)


def test_mha_functional_and_config(backend):
    qi, vi = unidl.Input((4, 6)), unidl.Input((5, 3))
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    out = mha(qi, vi)
    assert out.shape == (None, 4, 6)
    model = unidl.Model([qi, vi], out)
    q, v = _r(2, 4, 6), _r(2, 5, 3)
    _close(model([q, v]), _np(mha(q, v)))
    config = mha.get_config()
    clone = layers.MultiHeadAttention(**{**config, "name": "clone"})
    assert clone.get_config()["key_dim"] == 3 and clone.num_heads == 2
    with pytest.raises(LayerError):
        mha(q)


# ---- models and configs -------------------------------------------------------------------
def test_conv_stack_in_sequential_and_functional(backend):
    model = unidl.Sequential([
        layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 3)),
        layers.MaxPooling2D(),
        layers.SeparableConv2D(6, 3),
        layers.Conv2DTranspose(2, 3, strides=2),
        layers.GlobalAveragePooling2D(),
    ])
    x = _r(2, 8, 8, 3)
    assert tuple(ops.shape(model(x))) == (2, 2)
    inp = unidl.Input((9, 3))
    y = layers.Conv1D(4, 3, padding="causal")(inp)
    y = layers.AveragePooling1D(3)(y)
    assert y.shape == (None, 3, 4)


@pytest.mark.parametrize("cls,args", [
    (layers.Conv1D, (3, 2)), (layers.Conv2D, (3, (2, 3))), (layers.Conv2DTranspose, (3, 2)),
    (layers.Conv1DTranspose, (3, 2)), (layers.DepthwiseConv2D, (3,)),
    (layers.SeparableConv2D, (4, 3)), (layers.MaxPooling2D, ()), (layers.AveragePooling1D, ()),
    (layers.GlobalMaxPooling2D, ()),
])
def test_get_config_round_trip(cls, args):
    layer = cls(*args, name=f"orig_{cls.__name__.lower()}")
    config = layer.get_config()
    config["name"] = config["name"] + "_clone"
    clone = cls(**config)
    a, b = layer.get_config(), clone.get_config()
    a.pop("name")
    b.pop("name")
    assert a == b
