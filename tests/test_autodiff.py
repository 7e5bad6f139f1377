"""unidl.grad / value_and_grad / vjp on every backend: structures, Variables, higher order,
errors, and agreement of a small MLP's gradients across backends."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import ops
from unidl.tolerances import GRAD_TOLERANCES


def t(x, dtype="float32"):
    return ops.convert_to_tensor(np.asarray(x), dtype)


def n(x):
    return ops.to_numpy(x)


def test_grad_of_simple_function(backend):
    g = unidl.grad(lambda x: ops.sum(ops.multiply(ops.sin(x), x)))(t([0.5, 1.0, 2.0], "float64"))
    x = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(n(g), np.cos(x) * x + np.sin(x), rtol=1e-12)


def test_nested_structures_and_argnums(backend):
    def f(params, scale, data):
        return ops.sum(ops.multiply(ops.add(ops.matmul(data["x"], params["w"]), params["b"][0]),
                                    scale))

    params = {"w": t(np.ones((3, 2))), "b": [t([0.5, -0.5])]}
    data = {"x": t(np.arange(6.0).reshape(2, 3))}
    gp, gs = unidl.grad(f, argnums=(0, 1))(params, t(2.0), data)
    assert set(gp) == {"w", "b"} and isinstance(gp["b"], list)
    np.testing.assert_allclose(n(gp["w"]), 2 * np.tile(np.arange(6.0).reshape(2, 3).sum(0)[:, None],
                                                       (1, 2)))
    np.testing.assert_allclose(n(gp["b"][0]), [4.0, 4.0])
    expected_s = float((np.arange(6.0).reshape(2, 3) @ np.ones((3, 2)) + [0.5, -0.5]).sum())
    assert float(n(gs)) == pytest.approx(expected_s)


def test_value_and_grad_has_aux(backend):
    def f(x):
        y = ops.square(x)
        return ops.sum(y), {"y": y}

    (value, aux), g = unidl.value_and_grad(f, has_aux=True)(t([1.0, 3.0]))
    assert float(n(value)) == 10.0
    np.testing.assert_allclose(n(aux["y"]), [1.0, 9.0])
    np.testing.assert_allclose(n(g), [2.0, 6.0])


def test_grad_with_respect_to_variables(backend):
    w = unidl.Variable(np.array([1.0, 2.0], "float32"), name="w")
    b = unidl.Variable(np.array(0.5, "float32"), name="b")

    def loss(variables, x):
        return ops.sum(ops.square(ops.add(ops.multiply(x, w), b)))  # reads by closure

    gw, gb = unidl.grad(loss)([w, b], t([3.0, -1.0]))
    y = np.array([3.0, -1.0]) * [1.0, 2.0] + 0.5
    np.testing.assert_allclose(n(gw), 2 * y * [3.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(n(gb), 2 * y.sum(), rtol=1e-6)
    assert w.numpy().tolist() == [1.0, 2.0]  # reading restored after differentiation


def test_vjp_with_cotangent(backend):
    out, f_vjp = unidl.vjp(lambda x: ops.multiply(x, x), t([1.0, 2.0, 3.0]))
    (g,) = f_vjp(t([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(n(g), [2.0, 0.0, -6.0])


def test_stop_gradient(backend):
    g = unidl.grad(lambda x: ops.sum(ops.multiply(x, ops.stop_gradient(x))))(t([2.0, 3.0]))
    np.testing.assert_allclose(n(g), [2.0, 3.0])


def test_unused_argument_gets_zeros(backend):
    g = unidl.grad(lambda x, y: ops.sum(x), argnums=1)(t([1.0]), t([5.0, 6.0]))
    np.testing.assert_allclose(n(g), [0.0, 0.0])


@pytest.mark.parametrize("case", ["elementwise", "matmul", "reduction"])
def test_grad_of_grad(backend, case):
    x0 = np.array([0.3, -1.2, 0.7])
    if case == "elementwise":
        def f(x):
            return ops.sum(ops.multiply(ops.exp(x), ops.sin(x)))
        # d2/dx2 of e^x sin x = 2 e^x cos x
        expected = 2 * np.exp(x0) * np.cos(x0)
    elif case == "matmul":
        a = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 1.0, 1.0]])

        def f(x):
            y = ops.matmul(t(a, "float64"), x)
            return ops.sum(ops.multiply(y, y))
        # f = |A x|^2, grad = 2 A^T A x, second derivative along ones: sum of rows of 2 A^T A
        expected = (2 * a.T @ a).sum(1)
    else:
        def f(x):
            return ops.multiply(ops.logsumexp(x), ops.mean(ops.square(x)))
        expected = None

    def directional(x):  # d/dx of <grad f(x), 1>
        return ops.sum(unidl.grad(f)(x))

    second = n(unidl.grad(directional)(t(x0, "float64")))
    if expected is None:  # compare with NumPy's engine, itself checked by finite differences
        with unidl.use_backend("numpy"):
            expected = n(unidl.grad(directional)(t(x0, "float64")))
        eps = 1e-5
        fd = [(float(n(directional(t(x0 + eps * e, "float64")))) -
               float(n(directional(t(x0 - eps * e, "float64"))))) / (2 * eps)
              for e in np.eye(3)] if unidl.backend_name() == "numpy" else expected
        np.testing.assert_allclose(expected, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(second, expected, rtol=1e-9, atol=1e-10)


def test_errors(backend):
    with pytest.raises(unidl.GradientError, match="scalar"):
        unidl.grad(lambda x: ops.multiply(x, 2.0))(t([1.0, 2.0]))
    with pytest.raises(unidl.GradientError, match="argnums"):
        unidl.grad(lambda x: ops.sum(x), argnums=2)(t([1.0]))
    with pytest.raises(unidl.GradientError, match="int32"):
        unidl.grad(lambda x: ops.sum(x))(ops.convert_to_tensor([1, 2]))
    with pytest.raises(unidl.GradientError, match="cotangent"):
        unidl.vjp(lambda x: ops.multiply(x, 2.0), t([1.0, 2.0]))[1](t([1.0]))


def _mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = ops.tanh(ops.add(ops.matmul(x, w1), b1))
    logits = ops.add(ops.matmul(h, w2), b2)
    return ops.mean(ops.sparse_categorical_crossentropy(y, logits, True))


def test_mlp_value_and_grad_agrees_across_backends():
    """Must-show of the autodiff issue: same loss and gradients on every backend within the
    float32 gradient tolerance (GRAD_TOLERANCES['float32'])."""
    rng = np.random.default_rng(0)
    params = [rng.normal(0, 0.3, (6, 5)), rng.normal(0, 0.1, 5), rng.normal(0, 0.3, (5, 3)),
              rng.normal(0, 0.1, 3)]
    x, y = rng.normal(size=(8, 6)), rng.integers(0, 3, 8)
    results = {}
    for name in BACKENDS:
        with unidl.use_backend(name):
            p = [t(a) for a in params]
            value, grads = unidl.value_and_grad(_mlp_loss)(p, t(x), ops.convert_to_tensor(y))
            results[name] = (float(n(value)), [n(g) for g in grads])
    rtol, atol = GRAD_TOLERANCES["float32"]
    ref_value, ref_grads = results["numpy"]
    for name, (value, grads) in results.items():
        assert value == pytest.approx(ref_value, rel=1e-5), name
        for g, r in zip(grads, ref_grads):
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=name)
