"""The fused ``gru`` op and the GRU layer's use of it.

The layer runs as one ``ops.gru`` when that is equivalent to its time loop; these tests
compare the two paths (outputs, and gradients with respect to the inputs, the weights and the
initial state) on every installed backend and in both reset modes, check that the loop is
kept where the fused op does not apply (mask, active dropout, other activations or cells),
and check the op's gradient rule (every combination of cotangents, and a second derivative
through it on NumPy).
"""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import ops
from unidl.errors import OpError
from unidl.layers.cells import GRUCell
from unidl.layers.rnn import GRU, RNN
from unidl.spec import get_spec
from unidl.tolerances import tolerance

B, T, F, U = 3, 5, 4, 3
DT = "float64"  # both paths in float64: they must agree to rounding
RTOL, ATOL = tolerance(DT, "contraction")
RESET = pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after",
                                                                   "reset_before"])


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (B, T, F)), rng


def _weights(rng, reset_after=True, use_bias=True):
    """Keras-layout GRU weights: kernel, recurrent kernel (and bias)."""
    w = [rng.uniform(-0.6, 0.6, (F, 3 * U)), rng.uniform(-0.6, 0.6, (U, 3 * U))]
    if use_bias:
        w.append(rng.uniform(-0.5, 0.5, (2, 3 * U) if reset_after else (3 * U,)))
    return w


def _force_loop(monkeypatch):
    monkeypatch.setattr(RNN, "_uses_fused_gru", lambda self, mask, training: False)


def _loss_of(layer, calls, coef, outs, call_kw):
    """A scalar loss of the layer's outputs (random fixed coefficients); the outputs are kept
    in ``outs``."""

    def loss(v, ws, states):
        for _ in range(calls):
            y = layer(v, initial_state=states, **call_kw)
        ys = y if isinstance(y, list) else [y]
        outs[:] = [ops.to_numpy(ops.stop_gradient(o)) for o in ys]
        total = 0.0
        for o in ys:
            c = ops.convert_to_tensor(coef.standard_normal(ops.shape(o)))
            total = ops.add(total, ops.sum(ops.multiply(o, c)))
        return total

    return loss


def _run(kwargs, x, weights, fused, monkeypatch, initial_state=None, calls=1, **call_kw):
    """Outputs and gradients (w.r.t. x, the weights and the initial state) of one layer."""
    with monkeypatch.context() as m:
        if not fused:
            _force_loop(m)
        layer = GRU(U, dtype=DT, **kwargs)
        layer.build(np.shape(x))
        layer.set_weights(weights)
        xt = ops.convert_to_tensor(x)
        init = None if initial_state is None else [ops.convert_to_tensor(s)
                                                    for s in initial_state]
        outs = []
        loss = _loss_of(layer, calls, np.random.default_rng(1), outs, call_kw)
        assert layer._uses_fused_gru(call_kw.get("mask"), call_kw.get("training")) == fused
        if init is None:
            grads = unidl.grad(lambda v, ws: loss(v, ws, None), argnums=(0, 1))(
                xt, layer.trainable_weights)
        else:
            grads = unidl.grad(loss, argnums=(0, 1, 2))(xt, layer.trainable_weights, init)
        flat = [grads[0], *grads[1]] + (list(grads[2]) if init is not None else [])
        return outs, [ops.to_numpy(g) for g in flat]


def _compare(a, b):
    (out_a, g_a), (out_b, g_b) = a, b
    assert len(out_a) == len(out_b) and len(g_a) == len(g_b)
    for p, q in zip(out_a + g_a, out_b + g_b):
        assert p.shape == q.shape
        np.testing.assert_allclose(p, q, rtol=RTOL, atol=ATOL)


CONFIGS = {
    "last_output": {},
    "sequences_and_state": dict(return_sequences=True, return_state=True),
    "go_backwards": dict(go_backwards=True, return_sequences=True, return_state=True),
    "go_backwards_last": dict(go_backwards=True),
    "no_bias": dict(use_bias=False, return_sequences=True, return_state=True),
    "time_major": dict(time_major=True, return_sequences=True, return_state=True),
    "inference_dropout": dict(dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
}


@RESET
@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_matches_loop(backend, name, reset_after, monkeypatch):
    kwargs = dict(CONFIGS[name], reset_after=reset_after)
    x, rng = _data()
    if kwargs.get("time_major"):
        x = x.transpose(1, 0, 2)
    w = _weights(rng, reset_after, kwargs.get("use_bias", True))
    call_kw = {"training": False} if "dropout" in kwargs else {}
    fused = _run(kwargs, x, w, True, monkeypatch, **call_kw)
    loop = _run(kwargs, x, w, False, monkeypatch, **call_kw)
    _compare(fused, loop)


@RESET
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_matches_loop_with_initial_state(backend, reset_after, go_backwards, monkeypatch):
    x, rng = _data(2)
    w = _weights(rng, reset_after)
    init = [rng.uniform(-1, 1, (B, U))]
    kwargs = dict(return_sequences=True, return_state=True, go_backwards=go_backwards,
                  reset_after=reset_after)
    _compare(_run(kwargs, x, w, True, monkeypatch, initial_state=init),
             _run(kwargs, x, w, False, monkeypatch, initial_state=init))


@RESET
def test_fused_matches_loop_stateful(backend, reset_after, monkeypatch):
    x, rng = _data(3)
    w = _weights(rng, reset_after)
    kwargs = dict(stateful=True, return_state=True, reset_after=reset_after)
    _compare(_run(kwargs, x, w, True, monkeypatch, calls=2),
             _run(kwargs, x, w, False, monkeypatch, calls=2))


def test_one_step_sequence(backend, monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (B, 1, F))
    w = _weights(rng)
    kwargs = dict(return_sequences=True, return_state=True)
    _compare(_run(kwargs, x, w, True, monkeypatch), _run(kwargs, x, w, False, monkeypatch))


def _layer(**kwargs):
    layer = GRU(U, **kwargs)
    layer.build((B, T, F))
    return layer


def test_fallback_conditions(backend):
    mask = np.ones((B, T), bool)
    assert _layer()._uses_fused_gru(None, None)
    assert _layer(reset_after=False)._uses_fused_gru(None, True)
    assert not _layer()._uses_fused_lstm(None, None)
    assert not _layer()._uses_fused_gru(ops.convert_to_tensor(mask), None)
    assert not _layer(dropout=0.5)._uses_fused_gru(None, True)
    assert not _layer(recurrent_dropout=0.5)._uses_fused_gru(None, True)
    assert _layer(dropout=0.5, recurrent_dropout=0.5)._uses_fused_gru(None, False)
    assert not _layer(activation="relu")._uses_fused_gru(None, None)
    assert not _layer(recurrent_activation="hard_sigmoid")._uses_fused_gru(None, None)
    assert _layer(activation=ops.tanh, recurrent_activation=ops.sigmoid)._uses_fused_gru(
        None, None)

    class MyCell(GRUCell):
        pass

    custom = RNN(MyCell(U))
    custom.build((B, T, F))
    assert not custom._uses_fused_gru(None, None)
    builtin = RNN(GRUCell(U))
    builtin.build((B, T, F))
    assert builtin._uses_fused_gru(None, None)


@pytest.mark.parametrize("case", ["mask", "dropout"])
def test_fallback_is_taken(backend, case, monkeypatch):
    """With a mask, or dropout in training, the layer runs its loop: ops.gru is not called."""
    calls = []
    real = ops.gru
    monkeypatch.setattr(ops, "gru", lambda *a: calls.append(1) or real(*a))
    x, _ = _data(4)
    if case == "mask":
        mask = np.ones((B, T), bool)
        mask[0, 3:] = False
        _layer()(x, mask=mask)
    else:
        _layer(dropout=0.4, recurrent_dropout=0.3)(x, training=True)
    assert calls == []
    _layer()(x)
    assert calls == [1]


# ---- the op itself ------------------------------------------------------------------------------
def _op_args(rng, reset_after=True, bias=True, steps=4):
    return [rng.uniform(-1, 1, (2, steps, 3)), rng.uniform(-1, 1, (2, 2)),
            rng.uniform(-0.8, 0.8, (3, 6)), rng.uniform(-0.8, 0.8, (2, 6)),
            (rng.uniform(-0.5, 0.5, (2, 6) if reset_after else (6,)) if bias else None)]


def _numeric_vjp(args, reset_after, cts, eps=1e-6):
    """Finite-difference cotangents of every tensor argument of the float64 reference."""
    ref = get_spec("gru").reference

    def f(a):
        outs = ref(*a, reset_after)
        return sum(float(np.sum(c * o)) for c, o in zip(cts, outs) if c is not None)

    out = []
    for k, a in enumerate(args):
        if a is None:
            out.append(None)
            continue
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [v if v is None else v.copy() for v in args]
            minus = [v if v is None else v.copy() for v in args]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            g[idx] = (f(plus) - f(minus)) / (2 * eps)
        out.append(g)
    return out


def _op_vjp(args, reset_after, which, cts):
    """The op's cotangents of its present tensor arguments on the active backend."""
    present = [k for k, a in enumerate(args) if a is not None]
    tensors = [ops.convert_to_tensor(args[k]) for k in present]

    def f(*ts):
        full = [None] * 5
        for k, t in zip(present, ts):
            full[k] = t
        outs = ops.gru(*full, reset_after)
        return [outs[k] for k in which]

    _, vjp_fn = unidl.vjp(f, *tensors)
    got = vjp_fn([ops.convert_to_tensor(cts[k]) for k in which])
    return present, [ops.to_numpy(g) for g in got]


@RESET
@pytest.mark.parametrize("which", [(0,), (1,), (0, 1)])
def test_op_gradient_with_partial_cotangents(backend, reset_after, which):
    """Cotangents for any subset of (outputs, h); the other is unused (None)."""
    rng = np.random.default_rng(len(which) + 3 * reset_after)
    args = _op_args(rng, reset_after, bias=which != (1,), steps=1 if which == (0, 1) else 4)
    shapes = [(2, args[0].shape[1], 2), (2, 2)]
    cts = [rng.standard_normal(shapes[k]) if k in which else None for k in range(2)]
    expected = _numeric_vjp(args, reset_after, cts)
    present, got = _op_vjp(args, reset_after, which, cts)
    for k, g in zip(present, got):
        np.testing.assert_allclose(g, expected[k], rtol=1e-5, atol=1e-6, err_msg=f"argument {k}")


def _second_derivative(fused, reset_after, monkeypatch):
    """d/dw of <grad_x loss, v> for a GRU layer (w: its weights), a Hessian-vector product
    through the first gradient."""
    x, rng = _data(8)
    w = _weights(rng, reset_after)
    v = ops.convert_to_tensor(rng.standard_normal(x.shape))
    with monkeypatch.context() as m:
        if not fused:
            _force_loop(m)
        layer = GRU(U, dtype=DT, return_sequences=True, reset_after=reset_after)
        layer.build(x.shape)
        layer.set_weights(w)
        assert layer._uses_fused_gru(None, None) == fused
        coef = ops.convert_to_tensor(rng.standard_normal((B, T, U)))

        def loss(xt, ws):
            return ops.sum(ops.multiply(ops.tanh(layer(xt)), coef))

        def directional(ws, xt):
            return ops.sum(ops.multiply(unidl.grad(loss)(xt, ws), v))

        got = unidl.grad(directional)(layer.trainable_weights, ops.convert_to_tensor(x))
        return [ops.to_numpy(g) for g in got]


@RESET
def test_grad_of_grad_matches_loop_numpy(reset_after, monkeypatch):
    """A second derivative through the spec's gradient rule (unidl's engine on NumPy) equals
    the one through the cell loop."""
    with unidl.use_backend("numpy"):
        fused = _second_derivative(True, reset_after, monkeypatch)
        loop = _second_derivative(False, reset_after, monkeypatch)
    assert len(fused) == len(loop) == 3
    for a, b in zip(fused, loop):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


@RESET
def test_op_matches_reference_float32(backend, reset_after):
    rng = np.random.default_rng(5)
    args = _op_args(rng, reset_after, steps=6)
    want = get_spec("gru").reference(*args, reset_after)
    got = ops.gru(*[None if a is None else ops.convert_to_tensor(a, "float32") for a in args],
                  reset_after)
    rtol, atol = tolerance("float32", "contraction")
    assert len(got) == 2
    for g, w in zip(got, want):
        assert ops.dtype(g) == "float32"
        np.testing.assert_allclose(ops.to_numpy(g), w, rtol=rtol, atol=atol)


def test_op_shape_errors(backend):
    rng = np.random.default_rng(6)
    args = _op_args(rng)
    bad = list(args)
    bad[2] = rng.uniform(size=(3, 8))
    with pytest.raises(OpError, match=r"expected kernel of shape \(3, 6\), got \(3, 8\)"):
        ops.gru(*bad)
    with pytest.raises(OpError, match=r"expected bias of shape \(6,\), got \(2, 6\)"):
        ops.gru(*args, reset_after=False)
    with pytest.raises(OpError, match=r"expected bias of shape \(2, 6\), got \(6,\)"):
        ops.gru(*args[:4], rng.uniform(size=(6,)))
    with pytest.raises(OpError, match="at least one time step"):
        ops.gru(rng.uniform(size=(2, 0, 3)), *args[1:])


@pytest.mark.parametrize("kwargs", [{}, dict(reset_after=False, go_backwards=True),
                                    dict(return_sequences=True, use_bias=False)],
                         ids=["default", "reset_before_backwards", "sequences_no_bias"])
def test_model_exports_to_one_onnx_gru_node(kwargs, tmp_path):
    """A GRU model (dynamic batch) exports as an ONNX ``GRU`` node whose outputs match
    ``predict``."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    x, rng = _data(9)
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([GRU(U, input_shape=(T, F), **kwargs), unidl.layers.Dense(2)])
        model.layers[0].set_weights(_weights(rng, kwargs.get("reset_after", True),
                                             kwargs.get("use_bias", True)))
        want = model.predict(x.astype(np.float32), verbose=0)
        path = tmp_path / "gru.onnx"
        model.export(path, format="onnx")
    graph = onnx.load(str(path)).graph
    assert [n.op_type for n in graph.node].count("GRU") == 1
    session = onnxruntime.InferenceSession(str(path))
    for batch in (B, 1):
        got = session.run(None, {session.get_inputs()[0].name: x[:batch].astype(np.float32)})[0]
        np.testing.assert_allclose(got, want[:batch], rtol=1e-5, atol=1e-6)
