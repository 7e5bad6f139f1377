"""Convolution and pooling ops: error messages, padding semantics, cross-framework agreement.

The conformance suite checks every backend against the float64 references; these tests pin
the semantics the references encode against the frameworks' own implementations
(TensorFlow's ``"SAME"``, ``tf.nn.conv2d_transpose``, ``tf.nn.depthwise_conv2d``) and check
the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import ops


def _np(x):
    return np.asarray(ops.to_numpy(x), dtype=np.float64)


def _rand(rng, shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def _close(got, want, tol=1e-4):
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- error messages -----------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_conv2d_error_names_op_on_3d_input(name):
    with unidl.use_backend(name):
        with pytest.raises(unidl.OpError) as info:
            ops.conv2d(np.ones((5, 6, 3), np.float32), np.ones((3, 3, 3, 4), np.float32))
    msg = str(info.value)
    assert msg.startswith("conv2d:")
    assert "4-D input" in msg and "3-D input" in msg and "(5, 6, 3)" in msg


@pytest.mark.parametrize("name", BACKENDS)
def test_conv2d_error_on_channel_mismatch(name):
    with unidl.use_backend(name):
        with pytest.raises(unidl.OpError) as info:
            ops.conv2d(np.ones((1, 5, 5, 4), np.float32), np.ones((3, 3, 3, 6), np.float32),
                       groups=2)
    msg = str(info.value)
    assert msg.startswith("conv2d:") and "groups" in msg and "got 4" in msg


@pytest.mark.parametrize("name", BACKENDS)
def test_conv_and_pool_reject_bad_arguments(name):
    x = np.ones((1, 5, 5, 2), np.float32)
    with unidl.use_backend(name):
        with pytest.raises(unidl.OpError, match="^conv2d: expected padding"):
            ops.conv2d(x, np.ones((3, 3, 2, 2), np.float32), padding="full")
        with pytest.raises(unidl.OpError, match="^conv2d_transpose: expected output_padding"):
            ops.conv2d_transpose(x, np.ones((3, 3, 2, 2), np.float32), strides=2,
                                 output_padding=2)
        with pytest.raises(unidl.OpError, match="^max_pool: expected a 3-D input"):
            ops.max_pool(np.ones((5, 5), np.float32), 2)
        with pytest.raises(unidl.OpError, match="^avg_pool: expected padded spatial sizes"):
            ops.avg_pool(x, 6)


# ---- TensorFlow's "same" padding on every backend -----------------------------------------
SAME_CASES = [((7, 8), (3, 3), 2, 1), ((6, 7), (2, 4), 2, 1), ((5, 5), (4, 4), (2, 3), 1),
              ((9, 9), (3, 3), 3, 1), ((8, 7), (3, 2), 1, 2), ((4, 4), (1, 1), 2, 1)]


@pytest.mark.parametrize("size,k,s,d", SAME_CASES)
def test_same_stride2_matches_tensorflow_padding_on_torch(size, k, s, d):
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = _rand(rng, (2, *size, 3))
    kernel = _rand(rng, (*k, 3, 4))
    want = tf.nn.conv2d(x, kernel, strides=s, padding="SAME", dilations=d).numpy()
    with unidl.use_backend("torch"):
        got = _np(ops.conv2d(x, kernel, strides=s, padding="same", dilation_rate=d))
        got_cf = _np(ops.conv2d(x.transpose(0, 3, 1, 2), kernel, strides=s, padding="same",
                                dilation_rate=d, data_format="channels_first"))
    assert got.shape == want.shape
    _close(got, want)
    _close(got_cf, want.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("size,k,s", [((7, 8), (3, 3), 2), ((5, 6), (2, 3), (1, 2)),
                                      ((5, 5), (2, 2), None)])
def test_pool_same_matches_tensorflow(name, size, k, s):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    x = _rand(rng, (2, *size, 3))
    strides = k if s is None else s
    want_max = tf.nn.max_pool2d(x, k, strides, "SAME").numpy()
    want_avg = tf.nn.avg_pool2d(x, k, strides, "SAME").numpy()  # padding not averaged
    with unidl.use_backend(name):
        _close(_np(ops.max_pool(x, k, s, "same")), want_max, 1e-6)
        _close(_np(ops.avg_pool(x, k, s, "same")), want_avg, 1e-5)


@pytest.mark.parametrize("name", BACKENDS)
def test_avg_pool_same_excludes_padding(name):
    x = np.ones((1, 3, 3, 1), np.float32)
    with unidl.use_backend(name):
        out = _np(ops.avg_pool(x, 2, 2, "same"))
        out1d = _np(ops.avg_pool(np.ones((1, 3, 1), np.float32), 2, 2, "same"))
    np.testing.assert_array_equal(out, np.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(out1d, np.ones((1, 2, 1)))


# ---- transposed and depthwise convolutions against TensorFlow -----------------------------
def _keras_deconv_length(n, k, padding, output_padding, s, d):
    k = k + (k - 1) * (d - 1)
    if output_padding is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + output_padding


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("padding,s,op_", [("valid", 2, None), ("same", 2, None),
                                           ("valid", 3, None), ("same", 2, 1),
                                           ("valid", 2, 1), ("same", 1, None)])
def test_conv2d_transpose_matches_tensorflow(name, padding, s, op_):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(2)
    x = _rand(rng, (2, 4, 5, 3))
    kernel = _rand(rng, (3, 2, 4, 3))  # (kh, kw, out, in)
    out_hw = [_keras_deconv_length(n, k, padding, op_, s, 1) for n, k in zip((4, 5), (3, 2))]
    want = tf.nn.conv2d_transpose(x, kernel, [2, *out_hw, 4], s, padding.upper()).numpy()
    with unidl.use_backend(name):
        got = _np(ops.conv2d_transpose(x, kernel, s, padding, op_))
    assert got.shape == want.shape
    _close(got, want)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("s,padding", [(1, "valid"), (2, "same"), (1, "same")])
def test_depthwise_matches_tensorflow_channel_order(name, s, padding):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(3)
    x = _rand(rng, (2, 6, 7, 3))
    kernel = _rand(rng, (3, 3, 3, 2))
    want = tf.nn.depthwise_conv2d(x, kernel, [1, s, s, 1], padding.upper()).numpy()
    with unidl.use_backend(name):
        got = _np(ops.depthwise_conv2d(x, kernel, s, padding))
    _close(got, want)


# ---- layouts and gradients ----------------------------------------------------------------
def test_channels_first_is_a_transpose(backend):
    rng = np.random.default_rng(4)
    x = _rand(rng, (2, 7, 6, 4))
    kernel = _rand(rng, (3, 2, 2, 4))
    cl = _np(ops.conv2d(x, kernel, 2, "same", "channels_last", 1, 2))
    cf = _np(ops.conv2d(x.transpose(0, 3, 1, 2), kernel, 2, "same", "channels_first", 1, 2))
    _close(cf, cl.transpose(0, 3, 1, 2))
    x1 = _rand(rng, (2, 9, 3))
    k1 = _rand(rng, (3, 3, 5))
    cl1 = _np(ops.conv1d(x1, k1, 2, "same"))
    cf1 = _np(ops.conv1d(x1.transpose(0, 2, 1), k1, 2, "same", "channels_first"))
    _close(cf1, cl1.transpose(0, 2, 1))


def test_max_pool_gradient_goes_to_first_maximum(backend):
    x = np.ones((1, 4, 4, 1), np.float32)
    g = np.ones((1, 2, 2, 1), np.float32)
    got = _np(ops.max_pool_backprop(x, g, 3, 1, "valid"))[0, ..., 0]
    want = np.zeros((4, 4))
    want[:2, :2] = 1.0
    np.testing.assert_array_equal(got, want)
    picked = _np(ops.max_pool_select(x, np.arange(16.0, dtype=np.float32).reshape(1, 4, 4, 1),
                                     3, 1, "valid"))
    np.testing.assert_array_equal(picked[0, ..., 0], [[0.0, 1.0], [4.0, 5.0]])


def test_conv2d_gradient_matches_finite_differences(backend):
    """Strided, dilated, grouped, asymmetric 'same' padding, channels_first, float64."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 7, 6))
    kernel = rng.standard_normal((3, 2, 2, 6))
    u = rng.standard_normal((2, 6, 4, 3))

    def loss(x, kernel):
        y = ops.conv2d(x, kernel, 2, "same", "channels_first", (1, 2), 2)
        return ops.sum(ops.multiply(y, u))

    gx, gk = unidl.grad(loss, argnums=(0, 1))(x, kernel)
    eps = 1e-6
    for arg, grad_ in ((0, gx), (1, gk)):
        v = rng.standard_normal(np.shape((x, kernel)[arg]))
        plus = [x, kernel]
        minus = [x, kernel]
        plus[arg] = plus[arg] + eps * v
        minus[arg] = minus[arg] - eps * v
        fd = (float(_np(loss(*plus))) - float(_np(loss(*minus)))) / (2 * eps)
        np.testing.assert_allclose(np.sum(_np(grad_) * v), fd, rtol=1e-6, atol=1e-6)
