"""unidl.Variable on every backend: storage, assignment, ops, gradients, compiled functions."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import ops


def test_construction_and_properties(backend):
    v = unidl.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    assert v.shape == (2, 3)
    assert v.dtype == "float32"
    assert v.ndim == 2 and v.size == 6 and len(v) == 2
    assert v.name == "w" and v.trainable
    assert v.backend == backend
    assert v.device == "cpu"
    assert ops.is_tensor(v.value)
    np.testing.assert_array_equal(v.numpy(), np.arange(6).reshape(2, 3))
    assert "unidl.Variable 'w'" in repr(v) and "float32" in repr(v)


def test_default_dtypes_follow_convert_to_tensor(backend):
    assert unidl.Variable(1.5).dtype == "float32"
    assert unidl.Variable(3).dtype == "int32"
    assert unidl.Variable(np.zeros(2)).dtype == "float64"
    assert unidl.Variable([1, 2], dtype="float64").dtype == "float64"
    v = unidl.Variable(np.ones(3), dtype="float16", trainable=False)
    assert v.dtype == "float16" and not v.trainable


def test_native_storage(backend):
    v = unidl.Variable([1.0, 2.0])
    if backend == "torch":
        import torch

        assert isinstance(v.storage, torch.Tensor)
        assert v.storage.requires_grad and v.storage.is_leaf
        assert not unidl.Variable([1.0], trainable=False).storage.requires_grad
    elif backend == "tensorflow":
        import tensorflow as tf

        assert isinstance(v.storage, tf.Variable)
    else:
        assert isinstance(v.storage, np.ndarray)


def test_assign_family(backend):
    v = unidl.Variable([1.0, 2.0, 3.0])
    storage = v.storage
    assert v.assign([4.0, 5.0, 6.0]) is v
    np.testing.assert_allclose(v.numpy(), [4, 5, 6])
    v.assign_add(np.array([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(v.numpy(), [5, 6, 7])
    v.assign_sub(ops.convert_to_tensor([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(v.numpy(), [4.5, 5.5, 6.5])
    v.assign(0.0)  # a scalar fills the variable
    np.testing.assert_allclose(v.numpy(), [0, 0, 0])
    v.assign(np.array([1, 2, 3], dtype=np.int64))  # converted to the variable's dtype
    assert v.dtype == "float32"
    assert v.storage is storage  # updated in place, same native object
    if backend == "torch":
        assert v.storage.is_leaf and v.storage.requires_grad


def test_assign_wrong_shape_raises(backend):
    v = unidl.Variable(np.zeros((2, 2), np.float32), name="k")
    with pytest.raises(ValueError, match="shape"):
        v.assign(np.zeros((3,), np.float32))


def test_numpy_is_a_copy(backend):
    v = unidl.Variable([1.0, 2.0])
    snap = v.numpy()
    v.assign([7.0, 8.0])
    np.testing.assert_allclose(snap, [1, 2])


def test_ops_accept_variables_and_operators(backend):
    a = unidl.Variable([[1.0, 2.0], [3.0, 4.0]])
    b = unidl.Variable([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(ops.to_numpy(ops.add(a, b)), [[2, 2], [3, 5]])
    np.testing.assert_allclose(ops.to_numpy(a + 1.0), [[2, 3], [4, 5]])
    np.testing.assert_allclose(ops.to_numpy(1.0 - a), [[0, -1], [-2, -3]])
    np.testing.assert_allclose(ops.to_numpy(a * b), [[1, 0], [0, 4]])
    np.testing.assert_allclose(ops.to_numpy(a / 2.0), [[0.5, 1], [1.5, 2]])
    np.testing.assert_allclose(ops.to_numpy(2.0 / a), [[2, 1], [2 / 3, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(ops.to_numpy(a @ b), [[1, 2], [3, 4]])
    np.testing.assert_allclose(ops.to_numpy(-a), [[-1, -2], [-3, -4]])
    np.testing.assert_allclose(ops.to_numpy(a ** 2), [[1, 4], [9, 16]])
    np.testing.assert_allclose(ops.to_numpy(a[1]), [3, 4])
    np.testing.assert_allclose(np.asarray(a), [[1, 2], [3, 4]])
    assert float(unidl.Variable(2.5)) == 2.5 and int(unidl.Variable(3)) == 3


def test_grad_with_respect_to_variable(backend):
    w = unidl.Variable([1.0, 2.0, 3.0])

    def loss(v):
        return ops.sum(ops.multiply(v, v))

    g = unidl.grad(loss)(w)
    np.testing.assert_allclose(ops.to_numpy(g), [2, 4, 6])

    # read through a closure instead of the argument
    def closure(_v):
        return ops.sum(ops.multiply(w, 3.0))

    np.testing.assert_allclose(ops.to_numpy(unidl.grad(closure)(w)), [3, 3, 3])
    np.testing.assert_allclose(w.numpy(), [1, 2, 3])  # untouched


def test_variable_on_its_own_backend_after_switch():
    with unidl.use_backend("numpy"):
        v = unidl.Variable([1.0, 2.0])
    assert v.backend == "numpy"
    v.assign([3.0, 4.0])
    np.testing.assert_allclose(v.numpy(), [3, 4])


def test_tensorflow_assign_inside_tf_function():
    tf = pytest.importorskip("tensorflow")
    with unidl.use_backend("tensorflow"):
        v = unidl.Variable([1.0, 2.0])

        @tf.function
        def step(d):
            v.assign_add(d)
            return ops.sum(v)

        out = step(tf.constant([1.0, 1.0]))
        out = step(tf.constant([1.0, 1.0]))
        assert float(out) == 7.0
        np.testing.assert_allclose(v.numpy(), [3, 4])
