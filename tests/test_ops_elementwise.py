"""Elementwise and creation semantics the conformance suite does not pin down.

Dtype promotion with weak Python scalars, floor division/modulo signs, rounding ties,
creation dtype rules, error messages that name the op, and gradient tie rules.
"""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import ops
from unidl.errors import OpError


def _np(x):
    return ops.to_numpy(x)


def _t(values, dtype):
    return ops.convert_to_tensor(np.asarray(values), dtype)


# ---- promotion --------------------------------------------------------------------------
def test_weak_python_scalars_keep_the_tensor_dtype(backend):
    h = _t([1.0, 2.0], "float16")
    assert ops.dtype(ops.multiply(h, 2)) == "float16"
    assert ops.dtype(ops.multiply(h, 2.5)) == "float16"
    assert ops.dtype(ops.add(3, h)) == "float16"
    i8 = _t([1, 2], "int8")
    assert ops.dtype(ops.add(i8, 1)) == "int8"
    assert ops.dtype(ops.maximum(i8, 0)) == "int8"
    assert ops.dtype(ops.multiply(i8, 2.5)) == "float32"  # a float scalar with ints
    b = _t([True, False], "bool")
    assert ops.dtype(ops.add(b, 1)) == "int32"
    np.testing.assert_allclose(_np(ops.multiply(h, 2.5)).astype(np.float32), [2.5, 5.0])


def test_int_with_float16_gives_float16(backend):
    out = ops.add(_t([1, 2], "int32"), _t([0.5, 0.25], "float16"))
    assert ops.dtype(out) == "float16"
    np.testing.assert_allclose(_np(out).astype(np.float32), [1.5, 2.25])
    assert ops.dtype(ops.multiply(_t([1], "int64"), _t([1.0], "float16"))) == "float16"
    assert ops.dtype(ops.subtract(_t([1], "uint8"), _t([1], "int8"))) == "int16"


def test_divide_is_true_division(backend):
    out = ops.divide(_t([7, -7], "int32"), _t([2, 2], "int32"))
    assert ops.dtype(out) == "float32"
    np.testing.assert_array_equal(_np(out), [3.5, -3.5])
    assert ops.dtype(ops.divide(_t([1.0], "float16"), 2)) == "float16"


def test_where_promotes_x_and_y(backend):
    c = _t([True, False, True], "bool")
    out = ops.where(c, _t([1, 2, 3], "int32"), _t([0.5, 0.5, 0.5], "float16"))
    assert ops.dtype(out) == "float16"
    np.testing.assert_array_equal(_np(out).astype(np.float32), [1, 0.5, 3])
    assert ops.dtype(ops.where(c, _t([1, 2, 3], "int8"), 0)) == "int8"


# ---- integer-like semantics -------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "float32", "float64"])
def test_floor_divide_and_mod_follow_python(backend, dtype):
    xs = [7, -7, 7, -7, 6, -6, 0]
    ys = [2, 2, -2, -2, 3, 4, -3]
    q = ops.floor_divide(_t(xs, dtype), _t(ys, dtype))
    r = ops.mod(_t(xs, dtype), _t(ys, dtype))
    assert ops.dtype(q) == dtype and ops.dtype(r) == dtype
    np.testing.assert_array_equal(_np(q), [x // y for x, y in zip(xs, ys)])
    np.testing.assert_array_equal(_np(r), [x % y for x, y in zip(xs, ys)])


def test_float_mod_sign_follows_divisor(backend):
    r = _np(ops.mod(_t([-7.5, 7.5, 5.25], "float32"), _t([2.0, -2.0, -0.5], "float32")))
    np.testing.assert_allclose(r, [-7.5 % 2.0, 7.5 % -2.0, 5.25 % -0.5])
    assert r[0] > 0 and r[1] < 0


def test_round_half_to_even(backend):
    out = ops.round(_t([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], "float32"))
    np.testing.assert_array_equal(_np(out), [-2, -2, -0, 0, 2, 2])


def test_maximum_minimum_and_clip_propagate_nan(backend):
    x = _t([np.nan, 1.0, -5.0], "float32")
    assert np.isnan(_np(ops.maximum(x, 0.0))[0])
    assert np.isnan(_np(ops.minimum(0.0, x))[0])
    np.testing.assert_array_equal(_np(ops.clip(x, -1.0, 2.0)), [np.nan, 1.0, -1.0])


def test_clip_bounds(backend):
    x = _t([-3, 0, 3], "int32")
    np.testing.assert_array_equal(_np(ops.clip(x, None, 1)), [-3, 0, 1])
    np.testing.assert_array_equal(_np(ops.clip(x, 0)), [0, 0, 3])
    assert ops.dtype(ops.clip(x, 0, 1)) == "int32"
    # x_min > x_max: the result is x_max everywhere (NumPy and PyTorch order)
    np.testing.assert_array_equal(_np(ops.clip(x, 2, 1)), [1, 1, 1])
    lo = _t([[-1], [1]], "int32")
    assert ops.shape(ops.clip(x, lo, 5)) == (2, 3)


def test_sign_of_nan_is_nan(backend):
    out = _np(ops.sign(_t([np.nan, -2.0, 0.0, 3.0], "float32")))
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], [-1, 0, 1])


def test_erf_values(backend):
    import math

    xs = [-np.inf, -3.0, -0.5, 0.0, 1e-4, 0.7, 2.4, 2.6, 5.0, np.inf]
    out = _np(ops.erf(_t(xs, "float64")))
    np.testing.assert_allclose(out, [math.erf(v) for v in xs], rtol=1e-14, atol=1e-15)


# ---- creation ---------------------------------------------------------------------------
def test_creation_dtype_rules(backend):
    assert ops.dtype(ops.zeros((2,))) == "float32"
    assert ops.dtype(ops.ones(3, dtype="int8")) == "int8"
    assert ops.dtype(ops.full((2,), 1)) == "int32"
    assert ops.dtype(ops.full((2,), 1.5)) == "float32"
    assert ops.dtype(ops.full((2,), True)) == "bool"
    assert ops.dtype(ops.full((2,), 1, dtype="float16")) == "float16"
    assert ops.dtype(ops.arange(5)) == "int32"
    assert ops.dtype(ops.arange(0, 2, 0.5)) == "float32"
    assert ops.dtype(ops.linspace(0, 1, 3)) == "float32"
    assert ops.dtype(ops.eye(2)) == "float32"
    x = _t([1, 2], "int16")
    assert ops.dtype(ops.zeros_like(x)) == "int16"
    assert ops.dtype(ops.full_like(x, 7)) == "int16"
    assert ops.dtype(ops.ones_like(x, dtype="float64")) == "float64"
    np.testing.assert_array_equal(_np(ops.arange(5)), np.arange(5))
    np.testing.assert_array_equal(_np(ops.arange(10, 0, -3)), [10, 7, 4, 1])
    np.testing.assert_array_equal(_np(ops.arange(5, 2)), np.zeros(0))
    np.testing.assert_allclose(_np(ops.linspace(0, 1, 4, endpoint=False)), [0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(_np(ops.eye(2, 3, k=1)), np.eye(2, 3, 1))


def test_cast_truncates_toward_zero(backend):
    out = ops.cast(_t([-2.7, -0.5, 0.5, 2.7], "float32"), "int32")
    assert ops.dtype(out) == "int32"
    np.testing.assert_array_equal(_np(out), [-2, 0, 0, 2])
    np.testing.assert_array_equal(_np(ops.cast(_t([0.0, -0.1, np.nan], "float32"), "bool")),
                                  [False, True, True])


# ---- errors name the op -----------------------------------------------------------------
def test_shape_errors_name_the_op(backend):
    with pytest.raises(OpError, match=r"^add: .*cannot be broadcast"):
        ops.add(ops.ones((2, 3)), ops.ones((4,)))
    with pytest.raises(OpError, match=r"^where: "):
        ops.where(_t([True, False], "bool"), ops.ones((3,)), ops.ones((3,)))
    with pytest.raises(OpError, match=r"^arange: .*nonzero step"):
        ops.arange(0, 5, 0)


# ---- gradients --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_maximum_minimum_split_ties(name):
    if name not in [b.name for b in unidl.list_backends() if b.error is None]:
        pytest.skip(f"{name} not installed")
    with unidl.use_backend(name):
        x = _t([1.0, 2.0, 3.0], "float64")
        y = _t([1.0, 1.0, 4.0], "float64")
        g = _t([1.0, 1.0, 1.0], "float64")
        _, vjp_max = unidl.vjp(ops.maximum, x, y)
        gx, gy = vjp_max(g)
        np.testing.assert_allclose(_np(gx), [0.5, 1.0, 0.0])
        np.testing.assert_allclose(_np(gy), [0.5, 0.0, 1.0])
        _, vjp_min = unidl.vjp(ops.minimum, x, y)
        gx, gy = vjp_min(g)
        np.testing.assert_allclose(_np(gx), [0.5, 0.0, 1.0])
        np.testing.assert_allclose(_np(gy), [0.5, 1.0, 0.0])


def test_stop_gradient_and_where_gradients(backend):
    x = _t([1.0, -2.0, 3.0], "float32")
    c = _t([True, False, True], "bool")

    def f(x):
        return ops.add(ops.where(c, ops.multiply(x, 3.0), 0.0), ops.stop_gradient(x))

    out, vjp_fn = unidl.vjp(f, x)
    np.testing.assert_allclose(_np(out), [4.0, -2.0, 12.0])
    (gx,) = vjp_fn(ops.ones((3,)))
    np.testing.assert_allclose(_np(gx), [3.0, 0.0, 3.0])
