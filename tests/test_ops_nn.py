"""linalg and nn ops: error messages, stability and portability across backends."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import ops
from unidl.spec.linalg import einsum_expand
from unidl.spec.nn import dropout_mask


def _np(x):
    return np.asarray(ops.to_numpy(x))


# ---- matmul / dot / tensordot / einsum --------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_matmul_error_names_both_shapes(name):
    with unidl.use_backend(name):
        with pytest.raises(unidl.OpError) as info:
            ops.matmul(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))
    msg = str(info.value)
    assert msg.startswith("matmul: inner dimensions differ")
    assert "(2, 3)" in msg and "(4, 5)" in msg


@pytest.mark.parametrize("name", BACKENDS)
def test_matmul_batch_error_names_both_shapes(name):
    with unidl.use_backend(name):
        with pytest.raises(unidl.OpError) as info:
            ops.matmul(np.ones((2, 3, 4), np.float32), np.ones((5, 4, 2), np.float32))
    msg = str(info.value)
    assert "batch dimensions" in msg and "(2, 3, 4)" in msg and "(5, 4, 2)" in msg


def test_matmul_broadcasting_and_vectors(backend):
    rng = np.random.default_rng(0)
    cases = [((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((4,), (4,))]
    for sa, sb in cases:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        got = _np(ops.matmul(a, b))
        np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-10, atol=1e-10)


def test_matmul_int32(backend):
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    b = np.arange(12, dtype=np.int32).reshape(3, 4)
    out = ops.matmul(a, b)
    assert ops.dtype(out) == "int32"
    np.testing.assert_array_equal(_np(out), a @ b)


def test_dot_follows_numpy(backend):
    rng = np.random.default_rng(1)
    for sa, sb in [((2, 3, 4), (5, 4, 2)), ((3,), (3,)), ((), (2, 2)), ((2, 3), (3,))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        np.testing.assert_allclose(_np(ops.dot(a, b)), np.dot(a, b), rtol=1e-10, atol=1e-10)


def test_einsum_varargs_implicit_and_broadcast(backend):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    np.testing.assert_allclose(_np(ops.einsum("ij,jk", a, b)), a @ b, rtol=1e-10)
    c, d = rng.standard_normal((1, 3)), rng.standard_normal((2, 3))
    np.testing.assert_allclose(_np(ops.einsum("ij,ij->ij", c, d)), c * d, rtol=1e-10)
    m = rng.standard_normal((3, 3))
    np.testing.assert_allclose(_np(ops.einsum("ii", m)), np.trace(m), rtol=1e-10)
    e = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(_np(ops.einsum("...ij,jk->...ik", e, b)), e @ b, rtol=1e-10)


def test_einsum_expand():
    terms, out, shape = einsum_expand("...ij,jk", ((2, 3, 4), (4, 5)))
    assert len(terms[0]) == 3 and out[-2:] == "ik" and shape == (2, 3, 5)
    assert einsum_expand("ij,ij->ij", ((1, 3), (2, 3)))[2] == (2, 3)
    with pytest.raises(unidl.OpError, match="einsum"):
        with unidl.use_backend("numpy"):
            ops.einsum("ij,jk->ik", np.ones((2, 3)), np.ones((4, 5)))


def test_tensordot_axes(backend):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((4, 3, 2))
    got = _np(ops.tensordot(a, b, ([1, 0], [0, 1])))
    np.testing.assert_allclose(got, np.tensordot(a, b, ([1, 0], [0, 1])), rtol=1e-10)
    got = _np(ops.tensordot(a, b, ([-2], [0])))
    np.testing.assert_allclose(got, np.tensordot(a, b, ([1], [0])), rtol=1e-10)


@pytest.mark.parametrize("name", ["matmul", "einsum", "tensordot"])
def test_linalg_grads_match_numpy_engine_and_torch(name):
    """The spec's rules (NumPy engine) against torch's autograd, with broadcasting."""
    if "torch" not in BACKENDS:
        pytest.skip(f"torch not installed ({BACKENDS})")
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2))
    calls = {
        "matmul": (lambda x, y: ops.matmul(x, y), a, b),
        "einsum": (lambda x, y: ops.einsum("abij,bjk->aik", x, y), a, b),
        "tensordot": (lambda x, y: ops.tensordot(x, y, ([3], [1])), a, b),
    }
    fn, x, y = calls[name]
    grads = {}
    for be in ("numpy", "torch"):
        with unidl.use_backend(be):
            out, vjp = unidl.vjp(fn, ops.convert_to_tensor(x), ops.convert_to_tensor(y))
            ct = np.random.default_rng(5).standard_normal(ops.shape(out))
            grads[be] = [_np(g) for g in vjp(ops.convert_to_tensor(ct))]
    for g_np, g_t in zip(grads["numpy"], grads["torch"]):
        np.testing.assert_allclose(g_np, g_t, rtol=1e-9, atol=1e-9)


# ---- activations and softmax ------------------------------------------------------------
def test_softmax_large_logits_finite(backend):
    x = np.array([1e4, 0.0], np.float32)
    sm = _np(ops.softmax(x))
    lsm = _np(ops.log_softmax(x))
    assert np.all(np.isfinite(sm)) and np.all(np.isfinite(lsm))
    np.testing.assert_allclose(sm, [1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(lsm, [0.0, -1e4], rtol=1e-6)


def test_softmax_minus_inf_and_negative_axis(backend):
    x = np.array([[-np.inf, 0.0], [1.0, 1.0]], np.float32)
    np.testing.assert_allclose(_np(ops.softmax(x, -1)), [[0.0, 1.0], [0.5, 0.5]], atol=1e-7)
    np.testing.assert_allclose(_np(ops.softmax(x, -2))[:, 1], [0.2689414, 0.7310586], rtol=1e-5)


def test_gelu_defaults_to_tanh_approximation(backend):
    x = np.linspace(-4, 4, 17)
    approx = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(_np(ops.gelu(x)), approx, rtol=1e-6, atol=1e-7)
    assert not np.allclose(_np(ops.gelu(x, approximate=False)), approx, rtol=1e-6, atol=1e-7)


def test_hard_sigmoid_is_keras3(backend):
    x = np.array([-4.0, -3.0, 0.0, 1.5, 3.0, 4.0])
    np.testing.assert_allclose(_np(ops.hard_sigmoid(x)), np.clip(x + 3, 0, 6) / 6, atol=1e-7)


def test_integer_inputs_become_float(backend):
    out = ops.relu(np.array([-1, 2], np.int32))
    assert ops.dtype(out) == "float32"


# ---- normalization -----------------------------------------------------------------------
def test_layer_norm_matches_batch_norm_with_own_stats(backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 6))
    mean, var = x.mean(-1), x.var(-1)
    ln = _np(ops.layer_norm(x, axis=-1))
    bn = _np(ops.batch_norm(x, mean, var, axis=0))
    np.testing.assert_allclose(ln, bn, rtol=1e-9, atol=1e-9)


# ---- dropout -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_dropout_with_seed_is_identical_across_backends(dtype):
    x = np.random.default_rng(7).uniform(-3, 3, (16, 9)).astype(dtype)
    outs = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            outs[name] = _np(ops.dropout(x, 0.3, seed=123))
    mask = dropout_mask(x.shape, 0.3, 123)
    for name, out in outs.items():
        assert out.dtype == np.dtype(dtype), name
        assert np.array_equal(out != 0, mask), name
        np.testing.assert_array_equal(out, outs[BACKENDS[0]], err_msg=name)


def test_dropout_inference_and_rate_checks(backend):
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(_np(ops.dropout(x, 0.5, seed=1, training=False)), x)
    np.testing.assert_array_equal(_np(ops.dropout(x, 0.0)), x)
    out = _np(ops.dropout(x, 0.5))  # backend RNG: values are 0 or 2
    assert set(np.unique(out)).issubset({0.0, 2.0})
    with pytest.raises(unidl.OpError, match="dropout"):
        ops.dropout(x, 1.0, seed=1)
