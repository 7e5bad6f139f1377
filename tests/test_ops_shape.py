"""Reduction and shape-op semantics the conformance suite does not pin down.

Errors that name the op (bad reshape, axis out of range, empty max) on every backend, result
dtypes of integer reductions, tie and NaN rules of argmax/top_k/sort, NumPy forms of
``pad``/``split``/``take`` arguments, and gradient rules (ties, zeros, unused outputs).
"""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import ops
from unidl.errors import OpError


def _np(x):
    return ops.to_numpy(x)


def _t(values, dtype=None):
    return ops.convert_to_tensor(np.asarray(values), dtype)


# ---- errors name the op ------------------------------------------------------------------
def test_bad_reshape_names_the_op(backend):
    with pytest.raises(OpError) as err:
        ops.reshape(ops.zeros((2, 3)), (4, 2))
    msg = str(err.value)
    assert msg.startswith("reshape:")
    assert "6 elements" in msg and "(4, 2)" in msg
    with pytest.raises(OpError, match="reshape: expected at most one -1"):
        ops.reshape(ops.zeros((2, 3)), (-1, -1))
    with pytest.raises(OpError, match="reshape:.*divide"):
        ops.reshape(ops.zeros((2, 3)), (4, -1))


@pytest.mark.parametrize("call", [
    lambda x: ops.sum(x, 2),
    lambda x: ops.mean(x, -3),
    lambda x: ops.max(x, (0, 5)),
    lambda x: ops.argmax(x, 2),
    lambda x: ops.cumsum(x, 3),
    lambda x: ops.any(x, -4),
    lambda x: ops.flip(x, 2),
    lambda x: ops.expand_dims(x, 4),
    lambda x: ops.squeeze(x, 2),
    lambda x: ops.sort(x, 2),
    lambda x: ops.take(x, _t([0]), 2),
    lambda x: ops.concatenate([x, x], 2),
    lambda x: ops.stack([x, x], 3),
    lambda x: ops.split(x, 2, 2),
], ids=["sum", "mean", "max", "argmax", "cumsum", "any", "flip", "expand_dims", "squeeze",
        "sort", "take", "concatenate", "stack", "split"])
def test_axis_out_of_range_is_an_op_error(backend, call):
    with pytest.raises(OpError, match=r"axis -?\d+ is out of range for a tensor of rank"):
        call(ops.ones((2, 3)))


def test_other_shape_errors_explain_themselves(backend):
    x = ops.ones((2, 3))
    with pytest.raises(OpError, match="squeeze: expected axis 1 to have size 1"):
        ops.squeeze(x, 1)
    with pytest.raises(OpError, match="transpose: expected a permutation"):
        ops.transpose(x, (0, 0))
    with pytest.raises(OpError, match="concatenate: expected shapes equal except on axis 0"):
        ops.concatenate([x, ops.ones((2, 4))], 0)
    with pytest.raises(OpError, match="split: expected a number of sections that divides"):
        ops.split(x, 2, 1)
    with pytest.raises(OpError, match="broadcast_to: expected a shape that"):
        ops.broadcast_to(x, (4, 3))
    with pytest.raises(OpError, match="slice: expected a slice inside"):
        ops.slice(x, (1, 1), (2, 2))
    with pytest.raises(OpError, match="top_k: expected 0 <= k <= 3"):
        ops.top_k(x, 4)
    with pytest.raises(OpError, match="scatter_add: expected updates of shape"):
        ops.scatter_add(x, _t([0, 1]), ops.ones((2, 2)))
    with pytest.raises(OpError, match="pad: expected mode"):
        ops.pad(x, 1, "edge")


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin"])
def test_empty_reductions_without_identity_raise(backend, name):
    op = getattr(ops, name)
    with pytest.raises(OpError, match=f"{name}: expected a non-empty"):
        op(ops.zeros((0, 3)), 0)
    with pytest.raises(OpError, match=f"{name}: expected a non-empty"):
        op(ops.zeros((0, 3)))
    assert ops.shape(op(ops.zeros((0, 3)), 1)) == (0,)  # reducing a non-empty axis is fine


def test_index_out_of_range_raises(backend):
    if backend == "tensorflow" and unidl.current_device() != "cpu":
        pytest.skip("TF on GPU returns zeros for out-of-range gather indices")
    with pytest.raises(OpError, match="take"):
        ops.take(ops.ones((2, 3)), _t([3]), 1)
    with pytest.raises(OpError, match="gather"):
        ops.gather(ops.ones((2, 3)), _t([-3]))


# ---- reduction dtypes and values ---------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64"])
def test_integer_sum_and_prod_keep_the_dtype(backend, dtype):
    x = _t(np.arange(1, 7).reshape(2, 3), dtype)
    assert ops.dtype(ops.sum(x)) == dtype
    assert ops.dtype(ops.prod(x, 0)) == dtype
    assert ops.dtype(ops.cumsum(x, 1)) == dtype
    np.testing.assert_array_equal(_np(ops.sum(x, 1)), [6, 15])
    np.testing.assert_array_equal(_np(ops.prod(x, 0)), [4, 10, 18])


def test_integer_sum_wraps_the_same_everywhere(backend):
    x = _t([100, 100, 100], "int8")
    assert int(_np(ops.sum(x))) == np.int8(300 - 256)
    assert int(_np(ops.prod(_t([16, 16, 3], "uint8")))) == (16 * 16 * 3) % 256


def test_bool_reductions(backend):
    b = _t([[True, False, True], [False, False, False]], "bool")
    assert ops.dtype(ops.sum(b)) == "int32"
    np.testing.assert_array_equal(_np(ops.sum(b, 1)), [2, 0])
    assert ops.dtype(ops.cumsum(b)) == "int32"
    assert ops.dtype(ops.max(b)) == "bool"
    np.testing.assert_array_equal(_np(ops.max(b, 1)), [True, False])
    np.testing.assert_array_equal(_np(ops.any(b, 1)), [True, False])
    np.testing.assert_array_equal(_np(ops.all(ops.zeros((0, 2)), 0)), [True, True])
    assert ops.dtype(ops.mean(b)) == "float32"
    assert ops.dtype(ops.argmax(b)) == "int64"


def test_keepdims_axis_none_and_scalars(backend):
    x = ops.ones((2, 3, 4))
    assert ops.shape(ops.sum(x, None, True)) == (1, 1, 1)
    assert ops.shape(ops.argmax(x, None, True)) == (1, 1, 1)
    assert ops.shape(ops.var(x, (0, -1), True)) == (1, 3, 1)
    assert ops.shape(ops.logsumexp(x, -2)) == (2, 4)
    s = ops.convert_to_tensor(2.5)
    for op in (ops.sum, ops.mean, ops.max, ops.prod, ops.logsumexp, ops.argmax):
        assert ops.shape(op(s)) == ()
    assert ops.shape(ops.cumsum(s)) == (1,)
    assert ops.shape(ops.sum(x, ())) == (2, 3, 4)  # no axis: nothing reduced


def test_argmax_ties_and_nan_follow_numpy(backend):
    x = _t([[1.0, 3.0, 3.0], [np.nan, 2.0, np.nan], [2.0, np.nan, -np.inf]], "float32")
    np.testing.assert_array_equal(_np(ops.argmax(x, 1)), [1, 0, 1])
    np.testing.assert_array_equal(_np(ops.argmin(x, 1)), [0, 0, 1])
    assert int(_np(ops.argmax(x))) == 3


def test_logsumexp_is_stable(backend):
    x = _t([[1000.0, 1000.0], [-1000.0, -1000.0], [-np.inf, -np.inf]], "float32")
    out = _np(ops.logsumexp(x, 1)).astype(np.float64)
    np.testing.assert_allclose(out[:2], [1000 + np.log(2), -1000 + np.log(2)], rtol=1e-6)
    assert out[2] == -np.inf


def test_var_and_std_ddof(backend):
    x = _t([1.0, 2.0, 3.0, 4.0], "float32")
    np.testing.assert_allclose(_np(ops.var(x, ddof=1)), np.var([1, 2, 3, 4], ddof=1), rtol=1e-6)
    np.testing.assert_allclose(_np(ops.std(x)), np.std([1, 2, 3, 4]), rtol=1e-6)
    assert ops.dtype(ops.std(_t([1, 2], "int32"))) == "float32"


# ---- shape ops: NumPy forms --------------------------------------------------------------
def test_split_numpy_semantics(backend):
    x = _t(np.arange(6.0), "float32")
    sizes = [ops.shape(p)[0] for p in ops.split(x, [1, 4])]
    assert sizes == [1, 3, 2]
    assert [ops.shape(p)[0] for p in ops.split(x, [-2, 10])] == [4, 2, 0]
    pieces = ops.split(x, [3, 1])  # overlapping, as numpy.split gives
    np.testing.assert_array_equal(_np(pieces[2]), [1, 2, 3, 4, 5])
    assert len(ops.split(x, 3)) == 3


def test_pad_forms_and_modes(backend):
    x = _t(np.arange(6).reshape(2, 3), "int32")
    for width in (1, (1, 2), ((1, 2),), ((1, 0), (2, 1))):
        np.testing.assert_array_equal(_np(ops.pad(x, width)), np.pad(np.arange(6).reshape(2, 3),
                                                                    width))
    r = _np(ops.pad(_t([1.0, 2.0, 3.0]), (5, 4), "REFLECT"))
    np.testing.assert_array_equal(r, np.pad([1.0, 2.0, 3.0], (5, 4), "reflect"))
    s = _np(ops.pad(_t([1.0, 2.0]), (3, 1), "symmetric"))
    np.testing.assert_array_equal(s, np.pad([1.0, 2.0], (3, 1), "symmetric"))
    c = ops.pad(_t([[True]], "bool"), 1, constant_values=True)
    assert ops.dtype(c) == "bool" and _np(c).all()


def test_take_gather_scatter_and_negative_indices(backend):
    x = _t(np.arange(12.0).reshape(3, 4), "float32")
    np.testing.assert_array_equal(_np(ops.take(x, _t([-1, 0]), 1)), [[3, 0], [7, 4], [11, 8]])
    np.testing.assert_array_equal(_np(ops.take(x, _t([11, -12]))), [11, 0])
    g = ops.gather(x, _t([[2, -3]], "int8"))
    assert ops.shape(g) == (1, 2, 4)
    out = ops.scatter_add(ops.zeros((3,)), _t([0, 0, -1]), _t([1.0, 2.0, 5.0], "float32"))
    np.testing.assert_array_equal(_np(out), [3.0, 0.0, 5.0])
    idx = _t([[1], [-1], [0]])
    np.testing.assert_array_equal(_np(ops.take_along_axis(x, idx, 1)), [[1], [7], [8]])


def test_one_hot(backend):
    out = ops.one_hot(_t([0, 2, -1, 5]), 3)
    assert ops.dtype(out) == "float32"
    np.testing.assert_array_equal(_np(out), [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert ops.shape(ops.one_hot(_t([[1, 2]]), 4, axis=0)) == (4, 1, 2)
    assert ops.dtype(ops.one_hot(_t([1]), 2, dtype="bool")) == "bool"


def test_top_k_sort_argsort_ties_and_nan(backend):
    x = _t([[1.0, 2.0, 2.0, np.nan, 0.0, np.nan]], "float32")
    values, idx = ops.top_k(x, 4)
    assert ops.dtype(idx) == "int64"
    np.testing.assert_array_equal(_np(idx), [[3, 5, 1, 2]])
    np.testing.assert_array_equal(_np(values)[0, 2:], [2.0, 2.0])
    np.testing.assert_array_equal(_np(ops.argsort(x)), [[4, 0, 1, 2, 3, 5]])
    s = _np(ops.sort(x))
    np.testing.assert_array_equal(s[0, :4], [0, 1, 2, 2])
    assert np.isnan(s[0, 4:]).all()
    b = _t([True, False, True, False], "bool")
    np.testing.assert_array_equal(_np(ops.argsort(b)), [1, 3, 0, 2])
    np.testing.assert_array_equal(_np(ops.top_k(b, 3)[1]), [0, 2, 1])


def test_python_lists_are_accepted(backend):
    out = ops.concatenate([[1, 2], [3]])
    assert ops.dtype(out) == "int32"
    np.testing.assert_array_equal(_np(out), [1, 2, 3])
    assert ops.dtype(ops.stack([ops.ones((2,), "float16"), [1, 2]])) == "float16"


# ---- gradients ---------------------------------------------------------------------------
def test_max_gradient_splits_ties_equally(backend):
    x = _t([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], "float32")
    g = _np(unidl.grad(lambda v: ops.sum(ops.max(v, 1)))(x))
    np.testing.assert_allclose(g, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    g = _np(unidl.grad(lambda v: ops.min(v))(x))
    np.testing.assert_allclose(g, [[1, 0, 0], [0, 0, 0]])


def test_prod_gradient_with_zeros(backend):
    x = _t([[1.0, 0.0, 3.0], [2.0, 2.0, 0.5], [0.0, 0.0, 1.0]], "float64")
    g = _np(unidl.grad(lambda v: ops.sum(ops.prod(v, 1)))(x))
    np.testing.assert_allclose(g, [[0, 3, 0], [1, 1, 4], [0, 0, 0]])


def test_unused_split_and_top_k_outputs_get_zero_gradient(backend):
    x = _t(np.arange(6.0), "float64")
    g = _np(unidl.grad(lambda v: ops.sum(ops.split(v, 3)[1]))(x))
    np.testing.assert_array_equal(g, [0, 0, 1, 1, 0, 0])
    g = _np(unidl.grad(lambda v: ops.sum(ops.top_k(v, 2)[0]))(x))
    np.testing.assert_array_equal(g, [0, 0, 0, 0, 1, 1])


def test_integer_inputs_get_no_gradient_rule_output():
    from unidl.spec import get_spec

    with unidl.use_backend("numpy"):
        x = _t([1, 2, 3], "int32")
        for name in ("sum", "prod", "max", "cumsum"):
            spec = get_spec(name)
            out = getattr(ops, name)(x)
            args = spec.bind_args((x,), {})
            assert spec.grad(ops.ones_like(out), out, *args) == (None,)
