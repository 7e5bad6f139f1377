"""TensorFlow's cheap NaN proofs (``unidl_tensorflow.kernels.facts``): a compiled
convolution + relu + max pool chain takes the fused, check-free path only where its inputs
prove it finite, and keeps every NaN otherwise: a NaN in the data, and a NaN that the
sum that overflows from finite inputs (which can make ``inf - inf``, depending on how the
kernel orders its sums)."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import ops

tf = pytest.importorskip("tensorflow")


def _chain(x, k1, k2):
    """Two Conv2D(bias) + relu + MaxPooling2D blocks, as the benchmark CNN."""
    for k in (k1, k2):
        x = ops.max_pool(ops.relu(ops.conv2d(x, k, bias=ops.ones((k.shape[-1],)))), 2)
    return x


def _inputs(scale=1.0):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 10, 10, 2)).astype("float32")
    k1 = (rng.normal(size=(3, 3, 2, 4)) * 0.3 * scale).astype("float32")
    k2 = (rng.normal(size=(1, 1, 4, 3)) * 0.3).astype("float32")
    return x, k1, k2


def _overflowing():
    """Finite inputs whose first convolution overflows at one pixel: ``1e40 - 1e40``, which
    is ``inf`` with fused multiply-adds and NaN where the products are rounded first."""
    x, k1, k2 = _inputs()
    k1[:] = 0
    k1[0, 0, 0, 1], k1[0, 0, 1, 1] = 1e30, -1e30
    x[2, 3, 3] = (1e10, 1e10)
    return x, k1, k2


CASES = {
    "finite": _inputs,
    "nan_in_the_data": lambda: _with_nan(*_inputs()),
    "inf_in_the_data": lambda: _with_inf(*_inputs()),
    "overflow": _overflowing,
    "huge_but_finite": lambda: _inputs(scale=1e15),
}


def _with_nan(x, k1, k2):
    x[1, 4, 5, 0] = np.nan
    return x, k1, k2


def _with_inf(x, k1, k2):
    x[1, 4, 5, 0] = np.inf
    return x, k1, k2


def _run(args, compiled):
    with unidl.use_backend("tensorflow"):
        fn = unidl.current_backend().compile_function(_chain) if compiled else _chain
        return ops.to_numpy(fn(*(ops.convert_to_tensor(a) for a in args)))


@pytest.mark.parametrize("case", CASES)
def test_compiled_chain_equals_eager_and_numpy(case):
    args = CASES[case]()
    eager = _run(args, compiled=False)
    np.testing.assert_array_equal(_run(args, compiled=True), eager)  # (NaN where eager has)
    with unidl.use_backend("numpy"):
        ref = ops.to_numpy(_chain(*(ops.convert_to_tensor(a) for a in args)))
    np.testing.assert_array_equal(np.isnan(eager), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(eager), np.isinf(ref))
    if case in ("nan_in_the_data", "overflow"):
        assert not np.isfinite(eager).all()


def _facts_in_graph(x, k1, k2):
    """``[(ok, bound, max|t|)]`` for the first convolution, its relu and its pool, read in
    one ``tf.function``."""
    from unidl_tensorflow.kernels import conv, facts, nn

    @tf.function(autograph=False)
    def probe(x, k1):
        z = conv.KERNELS["conv2d"](x, k1, 1, "valid", "channels_last", 1, 1,
                                   bias=tf.ones((k1.shape[-1],)))
        r = nn.relu(z)
        p = conv.max_pool(r, 2, 2, "valid", "channels_last")
        return [(*facts.of(t).ok_bound(), tf.reduce_max(tf.abs(t))) for t in (z, r, p)]

    return [tuple(v.numpy() for v in row) for row in probe(tf.constant(x), tf.constant(k1))]


@pytest.mark.parametrize("case, proven", [("finite", True), ("huge_but_finite", True),
                                          ("nan_in_the_data", False),
                                          ("inf_in_the_data", False),
                                          ("overflow", False)])
def test_a_fact_holds_only_where_the_tensor_is_finite(case, proven):
    for ok, bound, largest in _facts_in_graph(*CASES[case]()):
        assert bool(ok) is proven
        if proven:
            assert largest <= bound


def test_a_proven_chain_runs_no_check_over_the_pool_input():
    """The graph holds no reduction of a pool-sized tensor outside the cold branches, and on
    oneDNN CPUs the relu is ``Relu`` (fusable), not ``Maximum``."""
    from unidl_tensorflow import onednn

    x, k1, k2 = _inputs()
    with unidl.use_backend("tensorflow"):
        fn = tf.function(_chain, autograph=False)
        graph = fn.get_concrete_function(*(tf.constant(a) for a in (x, k1, k2))).graph
    ops_ = graph.get_operations()
    pooled_inputs = [op.inputs[0].shape for op in ops_ if op.type == "MaxPool"]
    sums = [op for op in ops_ if op.type == "Sum" and op.inputs[0].shape in pooled_inputs]
    assert len(pooled_inputs) == 2 and not sums
    types = {op.type for op in ops_}
    assert ("Relu" in types and "Maximum" not in types) if onednn.enabled() else True


def test_compiled_max_pool_gradient_equals_tensorflow_own():
    """The graph max pool's gradient is ``MaxPoolGrad``, as TensorFlow's ``MaxPool``."""
    x, k1, k2 = _inputs()

    def loss(v):
        return ops.sum(ops.square(_chain(v, ops.convert_to_tensor(k1),
                                         ops.convert_to_tensor(k2))))

    with unidl.use_backend("tensorflow"):
        g = unidl.grad(loss)
        xt = ops.convert_to_tensor(x)
        compiled = ops.to_numpy(unidl.current_backend().compile_function(g)(xt))
        eager = ops.to_numpy(g(xt))
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)


def _chain_loss(x, k1, k2):
    return ops.sum(ops.square(_chain(x, k1, k2)))


def _compiled_chain_gradients(args):
    with unidl.use_backend("tensorflow"):
        g = unidl.grad(_chain_loss, argnums=(0, 1, 2))
        tensors = [ops.convert_to_tensor(a) for a in args]
        return [ops.to_numpy(t) for t in unidl.current_backend().compile_function(g)(*tensors)]


@pytest.mark.parametrize("case", CASES)
def test_the_relu_gradient_is_the_taken_branch_gradient(case, monkeypatch):
    """The relu's ``tf.cond`` passes its cotangent to the fused relu whichever branch ran.
    The gradients with respect to the data and both kernels are those of a graph whose relu
    is always the NaN-keeping one (NaN where they are NaN), also where that branch ran."""
    from unidl_tensorflow.kernels import nn

    args = CASES[case]()
    got = _compiled_chain_gradients(args)
    monkeypatch.setattr(nn, "_fused_if_finite", lambda x, fact: nn._unfused_relu(x))
    want = _compiled_chain_gradients(args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)  # (NaN where w has)


def test_the_cold_branch_adds_nothing_to_the_gradient():
    """No gradient of the recomputed convolution: no zeros the size of its input or kernel
    added to the real gradients."""
    x, k1, k2 = (tf.constant(a) for a in _inputs())
    with unidl.use_backend("tensorflow"):
        g = tf.function(unidl.grad(_chain_loss, argnums=(0, 1, 2)), autograph=False)
        graph = g.get_concrete_function(x, k1, k2).graph
    ops_ = graph.get_operations()
    assert not [op for op in ops_ if op.type == "AddN"]
    assert not [op for op in ops_ if op.type == "ZerosLike" and op.inputs[0].shape.rank]
