"""Initializers, regularizers, activations and the core / merge / reshaping / normalization
layers, checked against independent NumPy formulas on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import activations, initializers, layers, ops, regularizers
from unidl.layers.base import LayerError

RNG = np.random.default_rng(1234)


def _x(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, size=shape).astype("float32")


def _np(t):
    return np.asarray(ops.to_numpy(t))


def close(a, b, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(_np(a) if not isinstance(a, np.ndarray) else a, b, rtol=rtol,
                               atol=atol)


# ---- initializers ----------------------------------------------------------------------------
def test_compute_fans_follow_keras():
    assert initializers.compute_fans(()) == (1.0, 1.0)
    assert initializers.compute_fans((7,)) == (7.0, 7.0)
    assert initializers.compute_fans((3, 5)) == (3.0, 5.0)
    assert initializers.compute_fans((3, 3, 4, 8)) == (36.0, 72.0)
    assert initializers.compute_fans((5, 2, 6)) == (10.0, 30.0)


@pytest.mark.parametrize("name, scale, mode, dist", [
    ("glorot_uniform", 1.0, "fan_avg", "uniform"),
    ("glorot_normal", 1.0, "fan_avg", "truncated"),
    ("he_uniform", 2.0, "fan_in", "uniform"),
    ("he_normal", 2.0, "fan_in", "truncated"),
    ("lecun_uniform", 1.0, "fan_in", "uniform"),
    ("lecun_normal", 1.0, "fan_in", "truncated"),
])
def test_variance_scaling_presets(name, scale, mode, dist):
    shape = (3, 3, 40, 60)  # fan_in 360, fan_out 540
    fan_in, fan_out = 360.0, 540.0
    n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
    w = initializers.get(name)(shape, dtype="float32")
    assert w.shape == shape and w.dtype == np.float32
    var = scale / n
    if dist == "uniform":
        limit = math.sqrt(3 * var)
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > 0.98 * limit
    else:
        std = math.sqrt(var) / 0.87962566103423978
        assert np.abs(w).max() <= 2 * std + 1e-7
    np.testing.assert_allclose(w.var(), var, rtol=0.05)
    assert abs(w.mean()) < 0.05 * math.sqrt(var)


def test_plain_random_initializers():
    u = initializers.RandomUniform(-0.3, 0.1)((200, 100))
    assert u.min() >= -0.3 and u.max() < 0.1 and abs(u.mean() + 0.1) < 0.01
    n = initializers.RandomNormal(1.0, 0.5)((200, 100))
    assert abs(n.mean() - 1.0) < 0.02 and abs(n.std() - 0.5) < 0.02
    t = initializers.TruncatedNormal(0.0, 0.5)((200, 100))
    assert np.abs(t).max() <= 1.0
    d = initializers.get("uniform")((1000,))
    assert np.abs(d).max() <= 0.05  # Keras "uniform": RandomUniform(-0.05, 0.05)


def test_constant_zeros_ones_identity_and_dtypes():
    assert initializers.get("zeros")((2, 3), "float64").dtype == np.float64
    assert (initializers.get("ones")((2,), "int32") == 1).all()
    np.testing.assert_array_equal(initializers.constant(2.5)((2, 2)), np.full((2, 2), 2.5))
    np.testing.assert_array_equal(initializers.Constant([1.0, 2.0])((3, 2))[2], [1.0, 2.0])
    np.testing.assert_array_equal(initializers.get("identity")((2, 3)), np.eye(2, 3))
    assert initializers.get("glorot_uniform")((4,), "float16").dtype == np.float16


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 2, 5)])
def test_orthogonal(shape):
    w = initializers.orthogonal(gain=2.0)(shape, "float64")
    assert w.shape == shape
    m = w.reshape(-1, shape[-1])
    if m.shape[0] >= m.shape[1]:
        np.testing.assert_allclose(m.T @ m, 4.0 * np.eye(m.shape[1]), atol=1e-10)
    else:
        np.testing.assert_allclose(m @ m.T, 4.0 * np.eye(m.shape[0]), atol=1e-10)


def test_initializer_seed_and_host_generator():
    a = initializers.GlorotUniform(seed=3)((4, 4))
    np.testing.assert_array_equal(a, initializers.GlorotUniform(seed=3)((4, 4)))
    init = initializers.HeNormal(seed=5)
    np.testing.assert_array_equal(init((3, 3)), init((3, 3)))
    unidl.random.set_seed(11)
    b = initializers.get("he_uniform")((5, 5))
    unidl.random.set_seed(11)
    np.testing.assert_array_equal(b, initializers.get("he_uniform")((5, 5)))


def test_initializers_get():
    assert isinstance(initializers.get("glorot_uniform"), initializers.GlorotUniform)
    assert isinstance(initializers.get("GlorotUniform"), initializers.GlorotUniform)
    assert isinstance(initializers.get("HeNormal"), initializers.HeNormal)
    assert isinstance(initializers.get("truncated_normal"), initializers.TruncatedNormal)
    inst = initializers.Orthogonal(gain=0.5)
    assert initializers.get(inst) is inst
    assert isinstance(initializers.get(initializers.Zeros), initializers.Zeros)
    cfg = initializers.serialize(initializers.VarianceScaling(2.0, "fan_out", "uniform", 4))
    again = initializers.get(cfg)
    assert isinstance(again, initializers.VarianceScaling) and again.get_config() == \
        cfg["config"]
    assert initializers.get({"class_name": "random_normal", "config": {"stddev": 2.0}}).stddev \
        == 2.0

    def fn(shape, dtype=None):
        return np.full(shape, 7.0)

    assert initializers.get(fn) is fn
    assert initializers.get(None) is None
    with pytest.raises(ValueError, match="glorot_uniform"):
        initializers.get("glorot_unifrom")
    with pytest.raises(ValueError):
        initializers.VarianceScaling(mode="fan_sideways")


# ---- regularizers ----------------------------------------------------------------------------
def test_regularizer_values(backend):
    w = np.array([[1.0, -2.0], [0.5, 0.0]], dtype="float32")
    t = ops.convert_to_tensor(w)
    close(regularizers.L1(0.1)(t), 0.1 * np.abs(w).sum())
    close(regularizers.L2(0.2)(t), 0.2 * (w ** 2).sum())
    close(regularizers.L1L2(0.1, 0.2)(t), 0.1 * np.abs(w).sum() + 0.2 * (w ** 2).sum())
    close(regularizers.get("l1")(t), 0.01 * np.abs(w).sum())
    close(regularizers.get("l2")(t), 0.01 * (w ** 2).sum())
    close(regularizers.get("l1_l2")(t), 0.01 * np.abs(w).sum() + 0.01 * (w ** 2).sum())
    close(regularizers.L1L2()(t), 0.0)
    v = w / np.linalg.norm(w, axis=1, keepdims=True).clip(1e-6)
    p = v @ v.T
    close(regularizers.OrthogonalRegularizer(0.5)(t), 0.5 * 0.5 * np.abs(p[0, 1] * 2) / 1.0)


def test_regularizers_get():
    assert isinstance(regularizers.get("L2"), regularizers.L2)
    assert regularizers.get("l2").l2 == 0.01
    r = regularizers.L1L2(0.3, 0.0)
    assert regularizers.get(r) is r
    assert regularizers.get(regularizers.serialize(r)).get_config() == {"l1": 0.3, "l2": 0.0}
    assert regularizers.get(None) is None
    with pytest.raises(ValueError, match="l1_l2"):
        regularizers.get("l3")
    with pytest.raises(ValueError):
        regularizers.L2(-1.0)


def test_layer_losses_include_weight_penalties(backend):
    layer = layers.Dense(2, kernel_regularizer=regularizers.L2(0.5), bias_regularizer="l1",
                         bias_initializer="ones")
    layer(ops.ones((1, 3)))
    k = layer.kernel.numpy()
    losses = [float(_np(v)) for v in layer.losses]
    np.testing.assert_allclose(sorted(losses), sorted([0.5 * (k ** 2).sum(), 0.01 * 2]),
                               rtol=1e-5)


# ---- activations -----------------------------------------------------------------------------
def _sig(x):
    return 1 / (1 + np.exp(-x))


_ERF = np.vectorize(math.erf)
_ACTS = {
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + _ERF(x / math.sqrt(2))),
    "sigmoid": _sig,
    "hard_sigmoid": lambda x: np.clip(x + 3, 0, 6) / 6,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "silu": lambda x: x * _sig(x),
    "swish": lambda x: x * _sig(x),
    "hard_silu": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "log_softmax": lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
    "tanh": np.tanh,
    "exponential": np.exp,
    "linear": lambda x: x,
}


def test_activations_match_numpy(backend):
    x = _x(3, 5, low=-7.0, high=7.0)
    x64 = x.astype(np.float64)
    t = ops.convert_to_tensor(x)
    for name, ref in _ACTS.items():
        close(activations.get(name)(t), ref(x64), rtol=2e-5, atol=2e-6)
    assert activations.get(None)(t) is t
    close(activations.relu(t, max_value=1.0), np.clip(x64, 0, 1))
    close(activations.relu(t, negative_slope=0.1, threshold=1.0),
          np.where(x64 > 1.0, x64, 0.1 * (x64 - 1.0)))
    close(layers.Activation("gelu")(t), _ACTS["gelu"](x64), rtol=2e-5, atol=2e-6)


def test_activations_get():
    def f(x):
        return x

    assert activations.get(f) is f
    assert activations.get("swish") is activations.silu
    assert activations.serialize(activations.get("relu")) == "relu"
    with pytest.raises(ValueError, match="relu6"):
        activations.get("rleu")


# ---- Dense -----------------------------------------------------------------------------------
def test_dense_forward_nd_and_weights(backend):
    x = _x(2, 3, 4)
    layer = layers.Dense(5, activation="tanh", name="dense_nd")
    y = layer(x)
    k, b = layer.get_weights()
    assert k.shape == (4, 5) and b.shape == (5,)
    close(y, np.tanh(x.astype(np.float64) @ k + b), rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 25
    assert [w.name for w in layer.weights] == ["dense_nd/kernel", "dense_nd/bias"]
    new = [RNG.normal(size=(4, 5)).astype("float32"), np.ones(5, "float32")]
    layer.set_weights(new)
    close(layer(x[0]), np.tanh(x[0] @ new[0] + 1.0), rtol=1e-5, atol=1e-6)
    with pytest.raises(LayerError, match="set_weights"):
        layer.set_weights(new[:1])

    nobias = layers.Dense(3, use_bias=False, kernel_initializer="ones")
    close(nobias(ops.ones((2, 4))), np.full((2, 3), 4.0))
    assert len(nobias.weights) == 1 and nobias.count_params() == 12


def test_dense_wrong_input_names_layer(backend):
    layer = layers.Dense(2, name="my_dense")
    layer(ops.ones((3, 4)))
    with pytest.raises(LayerError, match="my_dense.*last dimension 4.*\\(3, 5\\)"):
        layer(ops.ones((3, 5)))
    with pytest.raises(LayerError, match="my_dense"):
        layer(ops.ones((4,)))


def test_identical_initial_weights_across_backends():
    got = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            unidl.random.set_seed(0)
            d = layers.Dense(4, kernel_initializer="glorot_normal", bias_initializer="he_uniform")
            e = layers.Embedding(7, 3)
            d(ops.ones((1, 6)))
            e(ops.convert_to_tensor([[1, 2]]))
            got[name] = d.get_weights() + e.get_weights()
    first = got[BACKENDS[0]]
    for name in BACKENDS[1:]:
        for a, b in zip(first, got[name]):
            np.testing.assert_array_equal(a, b)


# ---- shape layers -----------------------------------------------------------------------------
def test_flatten_reshape_permute_repeat(backend):
    x = _x(2, 3, 4, 5)
    close(layers.Flatten()(x), x.reshape(2, -1), atol=0)
    close(layers.Flatten(data_format="channels_first")(x),
          np.transpose(x, (0, 2, 3, 1)).reshape(2, -1), atol=0)
    close(layers.Flatten()(x[:, 0, 0, 0]), x[:, 0, 0, 0].reshape(2, 1), atol=0)
    close(layers.Reshape((5, -1))(x), x.reshape(2, 5, 12), atol=0)
    close(layers.Reshape((60,))(x), x.reshape(2, 60), atol=0)
    with pytest.raises(LayerError, match="reshape"):
        layers.Reshape((7, -1), name="bad_reshape")(x)
    close(layers.Permute((3, 1, 2))(x), np.transpose(x, (0, 3, 1, 2)), atol=0)
    with pytest.raises(LayerError):
        layers.Permute((2, 1))(x)
    v = _x(2, 4)
    close(layers.RepeatVector(3)(v), np.repeat(v[:, None, :], 3, axis=1), atol=0)
    close(layers.Identity()(v), v, atol=0)
    close(layers.Lambda(lambda t, k: ops.multiply(t, k), arguments={"k": 3.0})(v), 3 * v)


def test_dropout(backend):
    x = _x(4, 50, low=0.5, high=1.5)
    layer = layers.Dropout(0.4)
    close(layer(x), x, atol=0)
    close(layer(x, training=False), x, atol=0)
    close(layers.Dropout(0.0)(x, training=True), x, atol=0)
    y = _np(layer(x, training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-6)
    assert 0.3 < 1 - kept.mean() < 0.5
    noise = _np(layers.Dropout(0.5, noise_shape=(None, 1, 6), seed=2)(
        ops.ones((3, 5, 6)), training=True))
    assert (noise == noise[:, :1, :]).all() and set(np.unique(noise)) <= {0.0, 2.0}
    with pytest.raises(LayerError):
        layers.Dropout(0.5, noise_shape=(3, 2, 6))(ops.ones((3, 5, 6)), training=True)


def test_seeded_dropout_is_portable():
    masks = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            layer = layers.Dropout(0.5, seed=7)
            masks[name] = [_np(layer(ops.ones((4, 6)), training=True)) for _ in range(2)]
    first = masks[BACKENDS[0]]
    assert not np.array_equal(first[0], first[1])  # a fresh mask per call
    for name in BACKENDS[1:]:
        for a, b in zip(first, masks[name]):
            np.testing.assert_array_equal(a, b)


# ---- Embedding --------------------------------------------------------------------------------
def test_embedding(backend):
    layer = layers.Embedding(10, 4, mask_zero=True, name="emb")
    ids = np.array([[1, 0, 9], [3, 3, 0]], dtype="int32")
    y = layer(ops.convert_to_tensor(ids))
    table = layer.get_weights()[0]
    assert table.shape == (10, 4) and np.abs(table).max() <= 0.05
    close(y, table[ids], atol=0)
    np.testing.assert_array_equal(_np(layer.compute_mask(ops.convert_to_tensor(ids))), ids != 0)
    close(layer(ids.astype("float32")), table[ids], atol=0)
    assert layer.count_params() == 40
    assert layers.Embedding(5, 2).compute_mask(ops.convert_to_tensor(ids)) is None


# ---- merge --------------------------------------------------------------------------------------
def test_merge_layers(backend):
    a, b, c = _x(2, 3), _x(2, 3), _x(1, 3)
    close(layers.Add()([a, b, c]), a + b + c)
    close(layers.Subtract()([a, b]), a - b)
    close(layers.Multiply()([a, b, c]), a * b * c)
    close(layers.Average()([a, b]), (a + b) / 2)
    close(layers.Maximum()([a, b]), np.maximum(a, b))
    close(layers.Minimum()([a, c]), np.minimum(a, c))
    close(layers.Concatenate()([a, b]), np.concatenate([a, b], -1), atol=0)
    close(layers.Concatenate(axis=0)([a, c]), np.concatenate([a, c], 0), atol=0)
    close(layers.add([a, b]), a + b)
    with pytest.raises(LayerError, match="exactly 2"):
        layers.Subtract()([a, b, c])
    with pytest.raises(LayerError, match="add_bad"):
        layers.Add(name="add_bad")([a, _x(2, 4)])
    with pytest.raises(LayerError, match="concatenate"):
        layers.Concatenate(axis=0)([a, _x(2, 4)])
    with pytest.raises(LayerError, match="list"):
        layers.Add()(a)


# ---- reshaping ----------------------------------------------------------------------------------
def _np_bilinear_axis(x, axis, k):
    n = x.shape[axis]
    src = (np.arange(n * k) + 0.5) / k - 0.5
    lo = np.floor(src)
    w = src - lo
    i0 = np.clip(lo, 0, n - 1).astype(int)
    i1 = np.clip(lo + 1, 0, n - 1).astype(int)
    shp = [1] * x.ndim
    shp[axis] = n * k
    w = w.reshape(shp)
    return np.take(x, i0, axis) * (1 - w) + np.take(x, i1, axis) * w


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_image_reshaping_layers(backend, data_format):
    x = _x(2, 4, 5, 3)
    if data_format == "channels_first":
        x = np.transpose(x, (0, 3, 1, 2))
        h, w = 2, 3
    else:
        h, w = 1, 2
    pw = [(0, 0)] * 4
    pw[h], pw[w] = (1, 2), (0, 3)
    close(layers.ZeroPadding2D(((1, 2), (0, 3)), data_format=data_format)(x), np.pad(x, pw),
          atol=0)
    sl = [slice(None)] * 4
    sl[h], sl[w] = slice(1, 4), slice(2, 4)
    close(layers.Cropping2D(((1, 0), (2, 1)), data_format=data_format)(x), x[tuple(sl)],
          atol=0)
    up = np.repeat(np.repeat(x, 2, axis=h), 3, axis=w)
    close(layers.UpSampling2D((2, 3), data_format=data_format)(x), up, atol=0)
    bil = _np_bilinear_axis(_np_bilinear_axis(x.astype(np.float64), h, 2), w, 3)
    close(layers.UpSampling2D((2, 3), data_format=data_format, interpolation="bilinear")(x),
          bil, rtol=1e-5, atol=1e-6)
    with pytest.raises(LayerError, match="rank 4"):
        layers.ZeroPadding2D(data_format=data_format)(x[0])


def test_1d_reshaping_layers(backend):
    x = _x(2, 5, 3)
    close(layers.ZeroPadding1D((2, 1))(x), np.pad(x, ((0, 0), (2, 1), (0, 0))), atol=0)
    close(layers.Cropping1D((1, 2))(x), x[:, 1:3], atol=0)
    close(layers.UpSampling1D(3)(x), np.repeat(x, 3, axis=1), atol=0)
    with pytest.raises(LayerError, match="nothing"):
        layers.Cropping1D((3, 2))(x)


# ---- normalization ------------------------------------------------------------------------
def test_batch_normalization_training_and_inference(backend):
    x = _x(6, 3, 4, low=-1.0, high=3.0)
    x64 = x.astype(np.float64)
    bn = layers.BatchNormalization(momentum=0.8, epsilon=1e-3, gamma_initializer="ones",
                                   name="bn")
    gamma, beta = np.array([1.5, 0.5, 2.0, 1.0]), np.array([0.1, -0.2, 0.0, 0.3])
    bn(x)  # build (inference: moving stats 0 / 1)
    assert [w.name for w in bn.weights] == ["bn/gamma", "bn/beta", "bn/moving_mean",
                                            "bn/moving_variance"]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    assert bn.count_params() == 16
    bn.set_weights([gamma, beta, np.zeros(4), np.ones(4)])
    close(bn(x), x64 / np.sqrt(1 + 1e-3) * gamma + beta, rtol=1e-5, atol=1e-5)

    mean, var = x64.mean(axis=(0, 1)), x64.var(axis=(0, 1))
    y = bn(x, training=True)
    close(y, (x64 - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-4, atol=1e-4)
    mm, mv = 0.2 * mean, 0.8 + 0.2 * var
    close(bn.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-6)
    close(bn.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-6)
    bn(x, training=True)
    close(bn.moving_mean.numpy(), 0.8 * mm + 0.2 * mean, rtol=1e-5, atol=1e-6)
    close(bn.moving_variance.numpy(), 0.8 * mv + 0.2 * var, rtol=1e-5, atol=1e-6)

    mm, mv = bn.moving_mean.numpy().astype(np.float64), bn.moving_variance.numpy()
    ref = (x64 - mm) / np.sqrt(mv + 1e-3) * gamma + beta
    close(bn(x, training=False), ref, rtol=1e-4, atol=1e-4)
    bn.trainable = False  # frozen: inference even with training=True, no update
    close(bn(x, training=True), ref, rtol=1e-4, atol=1e-4)
    close(bn.moving_mean.numpy(), mm, rtol=1e-6, atol=0)
    with pytest.raises(LayerError, match="bn.*4 features"):
        bn(_x(6, 3, 5))
    with pytest.raises(LayerError, match="rank 3"):
        bn(_x(6, 4))


def test_batch_normalization_channels_first_no_affine(backend):
    x = _x(4, 3, 2, 2).astype(np.float64)
    bn = layers.BatchNormalization(axis=1, center=False, scale=False, dtype="float64")
    y = bn(x, training=True)
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    close(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-10, atol=1e-10)
    assert len(bn.weights) == 2 and not bn.trainable_weights


def test_batch_normalization_gradients_agree_across_backends():
    x = _x(5, 3)
    grads = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            bn = layers.BatchNormalization(gamma_initializer=initializers.Constant(
                [1.0, 2.0, 0.5]))
            dense = layers.Dense(2, kernel_initializer=initializers.Constant(
                [[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]]))

            def loss(ws, bn=bn, dense=dense):
                return ops.sum(ops.square(dense(bn(x, training=True))))

            bn(x)
            dense(ops.ones((1, 3)))
            ws = bn.trainable_weights + dense.trainable_weights
            grads[name] = [_np(g) for g in unidl.grad(loss)(ws)]
    # a NumPy reference of the batch-stat gradient of gamma
    xh = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    k = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])
    y = xh * np.array([1.0, 2.0, 0.5]) @ k
    g_gamma = ((2 * y @ k.T) * xh).sum(0)
    for name, g in grads.items():
        np.testing.assert_allclose(g[0], g_gamma, rtol=1e-3, atol=1e-4, err_msg=name)
        for a, b in zip(g, grads[BACKENDS[0]]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)


def test_layer_normalization(backend):
    x = _x(2, 3, 4)
    x64 = x.astype(np.float64)
    ln = layers.LayerNormalization(epsilon=1e-3, name="ln")
    y = ln(x)
    mu, var = x64.mean(-1, keepdims=True), x64.var(-1, keepdims=True)
    close(y, (x64 - mu) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
    assert ln.count_params() == 8
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    ln.set_weights([gamma, beta])
    close(ln(x), (x64 - mu) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-4, atol=1e-4)
    ln2 = layers.LayerNormalization(axis=(1, 2), center=False)
    mu2, var2 = x64.mean((1, 2), keepdims=True), x64.var((1, 2), keepdims=True)
    close(ln2(x), (x64 - mu2) / np.sqrt(var2 + 1e-3), rtol=1e-4, atol=1e-5)
    assert ln2.weights[0].shape == (3, 4)
    with pytest.raises(LayerError, match="ln"):
        ln(_x(2, 3, 5))


def test_symbolic_calls_and_configs(backend):
    from unidl.models.functional import Input

    inp = Input((6,))
    h = layers.Dense(4, activation="relu")(inp)
    h = layers.Concatenate()([h, layers.Reshape((6,))(inp)])
    h = layers.RepeatVector(2)(h)
    assert h.shape == (None, 2, 10)
    ids = Input((5,), dtype="int32")
    assert layers.Embedding(9, 3)(ids).shape == (None, 5, 3)
    cfg = layers.Dense(3, activation="relu", kernel_regularizer="l2").get_config()
    assert cfg["units"] == 3 and cfg["activation"] == "relu"
    assert cfg["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.01}}
    cfg.pop("name")
    again = layers.Dense(**cfg)
    assert again.units == 3 and isinstance(again.kernel_initializer, initializers.GlorotUniform)
    bn_cfg = layers.BatchNormalization(axis=1, momentum=0.9).get_config()
    assert bn_cfg["axis"] == 1 and bn_cfg["momentum"] == 0.9


def test_layer_names_follow_keras_snake_case():
    from unidl.naming import snake_case

    cases = {"Conv2D": "conv2d", "Conv2DTranspose": "conv2d_transpose", "Conv1D": "conv1d",
             "MaxPooling2D": "max_pooling2d", "GlobalAveragePooling1D": "global_average_pooling1d",
             "SimpleRNN": "simple_rnn", "LSTM": "lstm", "MultiHeadAttention":
             "multi_head_attention", "BatchNormalization": "batch_normalization", "L1L2": "l1_l2"}
    assert {k: snake_case(k) for k in cases} == cases
    conv = layers.Conv2D(4, 3)
    assert conv.name.startswith("conv2d") and "conv2_d" not in conv.name


def test_sequential_takes_an_input_first_as_keras():
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([unidl.Input((5,)), layers.Dense(3), layers.Dense(2)])
        assert model.built and model.count_params() == 5 * 3 + 3 + 3 * 2 + 2
        with pytest.raises(TypeError, match="unidl.Input"):
            unidl.Sequential([layers.Dense(3), unidl.Input((5,))])
