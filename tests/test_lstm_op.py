"""The fused ``lstm`` op and the LSTM layer's use of it.

The layer runs as one ``ops.lstm`` when that is equivalent to its time loop; these tests
compare the two paths (outputs and gradients) on every installed backend, check that the loop
is kept where the fused op does not apply (mask, active dropout, other activations or cells),
and check the op's gradient rule for every combination of cotangents.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import unidl
from unidl import ops
from unidl.errors import OpError
from unidl.layers.cells import LSTMCell
from unidl.layers.rnn import LSTM, RNN
from unidl.spec import get_spec
from unidl.tolerances import tolerance

B, T, F, U = 3, 5, 4, 3
DT = "float64"  # both paths in float64: they must agree to rounding
RTOL, ATOL = tolerance(DT, "contraction")


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (B, T, F)), rng


def _weights(rng, use_bias=True):
    w = [rng.uniform(-0.6, 0.6, (F, 4 * U)), rng.uniform(-0.6, 0.6, (U, 4 * U))]
    if use_bias:
        w.append(rng.uniform(-0.5, 0.5, (4 * U,)))
    return w


def _force_loop(monkeypatch):
    monkeypatch.setattr(RNN, "_uses_fused_lstm", lambda self, mask, training: False)


def _run(kwargs, x, weights, fused, monkeypatch, initial_state=None, calls=1, **call_kw):
    """Outputs and gradients (w.r.t. x, the weights and the initial states) of one layer."""
    with monkeypatch.context() as m:
        if not fused:
            _force_loop(m)
        layer = LSTM(U, dtype=DT, **kwargs)
        layer.build(np.shape(x))
        layer.set_weights(weights)
        xt = ops.convert_to_tensor(x)
        init = None if initial_state is None else [ops.convert_to_tensor(s)
                                                    for s in initial_state]
        coef = np.random.default_rng(1)
        outs = []

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

        if fused:
            assert layer._uses_fused_lstm(call_kw.get("mask"), call_kw.get("training"))
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


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_matches_loop(backend, name, monkeypatch):
    kwargs = CONFIGS[name]
    x, rng = _data()
    if kwargs.get("time_major"):
        x = x.transpose(1, 0, 2)
    w = _weights(rng, kwargs.get("use_bias", True))
    call_kw = {"training": False} if "dropout" in kwargs else {}
    fused = _run(kwargs, x, w, True, monkeypatch, **call_kw)
    loop = _run(kwargs, x, w, False, monkeypatch, **call_kw)
    _compare(fused, loop)


def test_fused_matches_loop_with_initial_state(backend, monkeypatch):
    x, rng = _data(2)
    w = _weights(rng)
    init = [rng.uniform(-1, 1, (B, U)), rng.uniform(-1, 1, (B, U))]
    kwargs = dict(return_sequences=True, return_state=True, go_backwards=True)
    _compare(_run(kwargs, x, w, True, monkeypatch, initial_state=init),
             _run(kwargs, x, w, False, monkeypatch, initial_state=init))


def test_fused_matches_loop_stateful(backend, monkeypatch):
    x, rng = _data(3)
    w = _weights(rng)
    kwargs = dict(stateful=True, return_state=True)
    _compare(_run(kwargs, x, w, True, monkeypatch, calls=2),
             _run(kwargs, x, w, False, monkeypatch, calls=2))


def _layer(**kwargs):
    layer = LSTM(U, **kwargs)
    layer.build((B, T, F))
    return layer


def test_fallback_conditions(backend):
    mask = np.ones((B, T), bool)
    assert _layer()._uses_fused_lstm(None, None)
    assert _layer()._uses_fused_lstm(None, True)
    assert not _layer()._uses_fused_lstm(ops.convert_to_tensor(mask), None)
    assert not _layer(dropout=0.5)._uses_fused_lstm(None, True)
    assert not _layer(recurrent_dropout=0.5)._uses_fused_lstm(None, True)
    assert _layer(dropout=0.5, recurrent_dropout=0.5)._uses_fused_lstm(None, False)
    assert not _layer(activation="relu")._uses_fused_lstm(None, None)
    assert not _layer(recurrent_activation="hard_sigmoid")._uses_fused_lstm(None, None)
    assert _layer(activation=ops.tanh, recurrent_activation=ops.sigmoid)._uses_fused_lstm(
        None, None)

    class MyCell(LSTMCell):
        pass

    custom = RNN(MyCell(U))
    custom.build((B, T, F))
    assert not custom._uses_fused_lstm(None, None)


@pytest.mark.parametrize("case", ["mask", "dropout"])
def test_fallback_is_taken(backend, case, monkeypatch):
    """With a mask, or dropout in training, the layer runs its loop: ops.lstm is not called."""
    calls = []
    real = ops.lstm
    monkeypatch.setattr(ops, "lstm", lambda *a: calls.append(1) or real(*a))
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
def _op_args(rng, bias=True, steps=4):
    return [rng.uniform(-1, 1, (2, steps, 3)), rng.uniform(-1, 1, (2, 2)),
            rng.uniform(-1, 1, (2, 2)), rng.uniform(-0.8, 0.8, (3, 8)),
            rng.uniform(-0.8, 0.8, (2, 8)), rng.uniform(-0.5, 0.5, (8,)) if bias else None]


def _numeric_vjp(args, cts, eps=1e-6):
    """Finite-difference cotangents of every tensor argument of the float64 reference."""
    ref = get_spec("lstm").reference

    def f(a):
        return sum(float(np.sum(c * o)) for c, o in zip(cts, ref(*a)) if c is not None)

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


@pytest.mark.parametrize("which", [c for n in (1, 2, 3)
                                   for c in itertools.combinations((0, 1, 2), n)])
def test_op_gradient_with_partial_cotangents(backend, which):
    """Cotangents for any subset of (outputs, h, c); the others are unused (None)."""
    rng = np.random.default_rng(sum(which) + len(which))
    args = _op_args(rng, bias=len(which) != 2, steps=1 if which == (0, 1, 2) else 4)
    shapes = [(2, args[0].shape[1], 2), (2, 2), (2, 2)]
    cts = [rng.standard_normal(shapes[k]) if k in which else None for k in range(3)]
    expected = _numeric_vjp(args, cts)
    present = [k for k, a in enumerate(args) if a is not None]
    tensors = [ops.convert_to_tensor(args[k]) for k in present]

    def f(*ts):
        full = [None] * 6
        for k, t in zip(present, ts):
            full[k] = t
        outs = ops.lstm(*full)
        return [outs[k] for k in which]

    _, vjp_fn = unidl.vjp(f, *tensors)
    got = vjp_fn([ops.convert_to_tensor(cts[k]) for k in which])
    for k, g in zip(present, got):
        np.testing.assert_allclose(ops.to_numpy(g), expected[k], rtol=1e-5, atol=1e-6,
                                   err_msg=f"argument {k}")


def test_op_matches_reference_float32(backend):
    rng = np.random.default_rng(5)
    args = _op_args(rng, steps=6)
    want = get_spec("lstm").reference(*args)
    got = ops.lstm(*[None if a is None else ops.convert_to_tensor(a, "float32") for a in args])
    rtol, atol = tolerance("float32", "contraction")
    assert len(got) == 3
    for g, w in zip(got, want):
        assert ops.dtype(g) == "float32"
        np.testing.assert_allclose(ops.to_numpy(g), w, rtol=rtol, atol=atol)


def test_op_shape_errors(backend):
    rng = np.random.default_rng(6)
    args = _op_args(rng)
    bad = list(args)
    bad[3] = rng.uniform(size=(3, 6))
    with pytest.raises(OpError, match=r"expected kernel of shape \(3, 8\), got \(3, 6\)"):
        ops.lstm(*bad)
    bad = list(args)
    bad[2] = rng.uniform(size=(2, 3))
    with pytest.raises(OpError, match=r"expected c0 of shape \(2, 2\), got \(2, 3\)"):
        ops.lstm(*bad)
    with pytest.raises(OpError, match="at least one time step"):
        ops.lstm(rng.uniform(size=(2, 0, 3)), *args[1:])
