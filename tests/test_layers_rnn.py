"""Recurrent layers (SimpleRNN, LSTM, GRU, Bidirectional) against a NumPy per-step reference.

The reference below is written independently of unidl: explicit float64 formulas with Keras's
gate orders (LSTM i, f, c, o; GRU z, r, h) and Keras 3's masking semantics (a masked step keeps
the states and repeats the previous output; zeros with ``zero_output_for_mask``).
"""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import ops
from unidl.layers.base import LayerError
from unidl.layers.cells import GRUCell, LSTMCell, SimpleRNNCell
from unidl.layers.rnn import GRU, LSTM, RNN, Bidirectional, SimpleRNN
from unidl.tolerances import GRAD_TOLERANCES, tolerance

FWD = tolerance("float32", "contraction")
B, T, F, U = 3, 5, 4, 3

MASK = np.array([[1, 1, 1, 0, 0],
                 [0, 1, 0, 1, 1],
                 [0, 0, 0, 0, 0]], dtype=bool)


# ---- the independent NumPy reference -----------------------------------------------------------
def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def ref_rnn(kind, x, weights, go_backwards=False, mask=None, initial=None,
            zero_output_for_mask=False):
    """Return (last_output, outputs (batch, time, units) in processing order, final states)."""
    x = np.asarray(x, np.float64)
    w = [np.asarray(a, np.float64) for a in weights]
    k, r = w[0], w[1]
    u = r.shape[0]
    bsz, steps, _ = x.shape
    n_states = 2 if kind == "lstm" else 1
    states = [np.zeros((bsz, u)) for _ in range(n_states)] if initial is None else \
        [np.asarray(s, np.float64) for s in initial]
    prev = np.zeros((bsz, u))
    outs = []
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    for t in order:
        xt = x[:, t]
        if kind == "simple":
            h = np.tanh(xt @ k + w[2] + states[0] @ r)
            new = [h]
        elif kind == "lstm":
            h, c = states
            z = xt @ k + h @ r + w[2]
            i, f = _sig(z[:, :u]), _sig(z[:, u:2 * u])
            g, o = np.tanh(z[:, 2 * u:3 * u]), _sig(z[:, 3 * u:])
            c = f * c + i * g
            h = o * np.tanh(c)
            new = [h, c]
        elif kind == "gru":  # reset_after=True, bias (2, 3u)
            h = states[0]
            xp = xt @ k + w[2][0]
            hp = h @ r + w[2][1]
            z = _sig(xp[:, :u] + hp[:, :u])
            rr = _sig(xp[:, u:2 * u] + hp[:, u:2 * u])
            hh = np.tanh(xp[:, 2 * u:] + rr * hp[:, 2 * u:])
            h = z * h + (1 - z) * hh
            new = [h]
        else:  # "gru_before": reset_after=False, bias (3u,)
            h = states[0]
            xp = xt @ k + w[2]
            z = _sig(xp[:, :u] + h @ r[:, :u])
            rr = _sig(xp[:, u:2 * u] + h @ r[:, u:2 * u])
            hh = np.tanh(xp[:, 2 * u:] + (rr * h) @ r[:, 2 * u:])
            h = z * h + (1 - z) * hh
            new = [h]
        out = new[0]
        if mask is not None:
            m = mask[:, t][:, None]
            states = [np.where(m, a, b) for a, b in zip(new, states)]
            masked = np.where(m, out, prev)
            outs.append(np.where(m, out, 0.0) if zero_output_for_mask else masked)
            prev = masked
        else:
            states = new
            outs.append(out)
            prev = out
    return prev, np.stack(outs, axis=1), states


def make_layer(kind, **kw):
    if kind == "simple":
        return SimpleRNN(U, **kw)
    if kind == "lstm":
        return LSTM(U, **kw)
    return GRU(U, reset_after=(kind == "gru"), **kw)


def random_weights(kind, rng, features=F, units=U):
    g = {"simple": 1, "lstm": 4}.get(kind, 3)
    bias_shape = (2, 3 * units) if kind == "gru" else (g * units,)
    return [rng.normal(0, 0.6, (features, g * units)).astype(np.float32),
            rng.normal(0, 0.6, (units, g * units)).astype(np.float32),
            rng.normal(0, 0.3, bias_shape).astype(np.float32)]


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, T, F)).astype(np.float32), rng


def close(actual, expected, tol=FWD):
    np.testing.assert_allclose(ops.to_numpy(actual), expected, rtol=tol[0], atol=tol[1])


KINDS = ["simple", "lstm", "gru", "gru_before"]
OPTIONS = [
    dict(),
    dict(return_sequences=True),
    dict(return_sequences=True, go_backwards=True),
    dict(mask=True),
    dict(mask=True, return_sequences=True, go_backwards=True),
]


# ---- forward --------------------------------------------------------------------------------
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_reference(backend, kind, opts):
    x, rng = data()
    opts = dict(opts)
    use_mask = opts.pop("mask", False)
    layer = make_layer(kind, return_state=True, **opts)
    layer(x)
    w = random_weights(kind, rng)
    layer.set_weights(w)
    mask = MASK if use_mask else None
    out = layer(x, mask=mask)
    n_states = 2 if kind == "lstm" else 1
    assert isinstance(out, list) and len(out) == 1 + n_states
    last, seq, states = ref_rnn(kind, x, w, go_backwards=opts.get("go_backwards", False),
                                mask=mask)
    close(out[0], seq if opts.get("return_sequences") else last)
    for got, want in zip(out[1:], states):
        close(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_no_bias(backend, kind):
    x, rng = data(16)
    layer = make_layer(kind, use_bias=False, return_sequences=True)
    layer(x)
    w = random_weights(kind, rng)
    layer.set_weights(w[:2])
    close(layer(x, mask=MASK), ref_rnn(kind, x, w[:2] + [np.zeros_like(w[2])], mask=MASK)[1])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_initial_state_and_masked_prefix(backend, kind):
    """Outputs are zero before the first unmasked step while the states keep their initial
    values (Keras semantics); an all-masked row returns the initial states unchanged."""
    x, rng = data(1)
    layer = make_layer(kind, return_sequences=True, return_state=True)
    layer(x)
    w = random_weights(kind, rng)
    layer.set_weights(w)
    init = [rng.normal(size=(B, U)).astype(np.float32)
            for _ in range(2 if kind == "lstm" else 1)]
    out = layer(x, initial_state=init, mask=MASK)
    _, seq, states = ref_rnn(kind, x, w, mask=MASK, initial=init)
    close(out[0], seq)
    for got, want in zip(out[1:], states):
        close(got, want)
    assert np.all(ops.to_numpy(out[0])[2] == 0.0)
    close(out[1][2], init[0][2])
    # positional call order is Keras 3's: (sequences, initial_state, mask)
    out2 = layer(x, init, MASK)
    close(out2[0], seq)


def test_default_outputs_and_weights(backend):
    x, _ = data()
    lstm = LSTM(U)
    y = lstm(x)
    assert tuple(ops.shape(y)) == (B, U) and ops.dtype(y) == "float32"
    assert [tuple(v.shape) for v in lstm.weights] == [(F, 4 * U), (U, 4 * U), (4 * U,)]
    bias = lstm.weights[2].numpy()
    np.testing.assert_array_equal(bias, np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])
    gru = GRU(U)
    gru(x)
    assert [tuple(v.shape) for v in gru.weights] == [(F, 3 * U), (U, 3 * U), (2, 3 * U)]
    gru_b = GRU(U, reset_after=False, use_bias=False)
    gru_b(x)
    assert [tuple(v.shape) for v in gru_b.weights] == [(F, 3 * U), (U, 3 * U)]
    rnn = SimpleRNN(U)
    rnn(x)
    assert rnn.count_params() == F * U + U * U + U
    # the recurrent kernel is orthogonal by default
    rk = rnn.weights[1].numpy()
    np.testing.assert_allclose(rk @ rk.T, np.eye(U), atol=1e-5)
    assert lstm.units == U and lstm.activation == "tanh" and gru.reset_after is True


def test_time_major_matches_batch_major(backend):
    x, rng = data(2)
    a = GRU(U, return_sequences=True)
    b = GRU(U, return_sequences=True, time_major=True)
    a(x)
    b(np.transpose(x, (1, 0, 2)))
    w = random_weights("gru", rng)
    a.set_weights(w)
    b.set_weights(w)
    ya = ops.to_numpy(a(x))
    yb = ops.to_numpy(b(np.transpose(x, (1, 0, 2))))
    np.testing.assert_allclose(np.transpose(yb, (1, 0, 2)), ya, rtol=1e-6, atol=1e-6)


def test_stateful_continues_from_last_states(backend):
    x, rng = data(3)
    layer = LSTM(U, stateful=True, return_sequences=True)
    layer(x[:, :2])
    w = random_weights("lstm", rng)
    layer.set_weights(w)
    layer.reset_state()
    y1 = layer(x[:, :2])
    y2 = layer(x[:, 2:])
    _, seq, _ = ref_rnn("lstm", x, w)
    close(ops.concatenate([y1, y2], axis=1), seq)
    layer.reset_state()
    close(layer(x[:, :2]), seq[:, :2])
    with pytest.raises(LayerError):
        layer(x[:2])


def test_generic_rnn_with_cells(backend):
    x, rng = data(4)
    for cell, kind in ((SimpleRNNCell(U), "simple"), (LSTMCell(U), "lstm"),
                       (GRUCell(U), "gru")):
        layer = RNN(cell, return_sequences=True)
        layer(x)
        w = random_weights(kind, rng)
        layer.set_weights(w)
        close(layer(x), ref_rnn(kind, x, w)[1])
        # one step through the cell itself
        states = [ops.zeros((B, U))] * (2 if kind == "lstm" else 1)
        out, _ = cell(x[:, 0], states)
        close(out, ref_rnn(kind, x[:, :1], w)[0])


# ---- Bidirectional ----------------------------------------------------------------------------
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
def test_bidirectional_sequences(backend, merge_mode):
    x, rng = data(5)
    bi = Bidirectional(LSTM(U, return_sequences=True), merge_mode=merge_mode)
    bi(x)
    wf, wb = random_weights("lstm", rng), random_weights("lstm", rng)
    bi.set_weights(wf + wb)
    out = bi(x, mask=MASK)
    # Keras: with return_sequences both directions output zeros at masked steps
    _, fwd, _ = ref_rnn("lstm", x, wf, mask=MASK, zero_output_for_mask=True)
    _, bwd, _ = ref_rnn("lstm", x, wb, go_backwards=True, mask=MASK, zero_output_for_mask=True)
    bwd = bwd[:, ::-1]
    expected = {"concat": np.concatenate([fwd, bwd], -1), "sum": fwd + bwd,
                "ave": (fwd + bwd) / 2, "mul": fwd * bwd}
    if merge_mode is None:
        assert isinstance(out, list) and len(out) == 2
        close(out[0], fwd)
        close(out[1], bwd)
    else:
        close(out, expected[merge_mode])
    shape = (B, T, 2 * U) if merge_mode == "concat" else (B, T, U)
    if merge_mode is not None:
        assert tuple(ops.shape(out)) == shape


def test_bidirectional_last_output_and_states(backend):
    x, rng = data(6)
    bi = Bidirectional(GRU(U, return_state=True), merge_mode="concat")
    bi(x)
    assert bi.forward_layer.go_backwards is False and bi.backward_layer.go_backwards is True
    wf, wb = random_weights("gru", rng), random_weights("gru", rng)
    bi.set_weights(wf + wb)
    out, hf, hb = bi(x)
    lf, _, sf = ref_rnn("gru", x, wf)
    lb, _, sb = ref_rnn("gru", x, wb, go_backwards=True)
    assert tuple(ops.shape(out)) == (B, 2 * U)
    close(out, np.concatenate([lf, lb], -1))
    close(hf, sf[0])
    close(hb, sb[0])
    # initial_state: first half forward, second half backward
    init = [rng.normal(size=(B, U)).astype(np.float32) for _ in range(2)]
    out, _, _ = bi(x, initial_state=init)
    lf, _, _ = ref_rnn("gru", x, wf, initial=init[:1])
    lb, _, _ = ref_rnn("gru", x, wb, go_backwards=True, initial=init[1:])
    close(out, np.concatenate([lf, lb], -1))


def test_bidirectional_custom_backward_and_config(backend):
    fwd = SimpleRNN(U, return_sequences=True)
    bwd = SimpleRNN(U, return_sequences=True, go_backwards=True, activation="relu")
    bi = Bidirectional(fwd, backward_layer=bwd, merge_mode="sum")
    x, _ = data(7)
    assert tuple(ops.shape(bi(x))) == (B, T, U)
    with pytest.raises(LayerError):
        Bidirectional(fwd, backward_layer=SimpleRNN(U, return_sequences=True))
    with pytest.raises(LayerError):
        Bidirectional(fwd, merge_mode="max")
    config = bi.get_config()
    again = Bidirectional.from_config(config)
    assert again.merge_mode == "sum"
    assert again.backward_layer.get_config()["activation"] == "relu"
    assert tuple(ops.shape(again(x))) == (B, T, U)


# ---- gradients --------------------------------------------------------------------------------
def _numeric_grads(kind, x, w, mask, go_backwards, eps=1e-6):
    def loss(ws):
        _, seq, states = ref_rnn(kind, x, ws, go_backwards=go_backwards, mask=mask)
        return seq.sum() + sum(s.sum() for s in states)

    w64 = [a.astype(np.float64) for a in w]
    out = []
    for a in w64:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            hi = loss(w64)
            a[idx] = old - eps
            lo = loss(w64)
            a[idx] = old
            g[idx] = (hi - lo) / (2 * eps)
        out.append(g)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_weight_gradients_agree(kind):
    """Gradients of sum(outputs) + sum(states) w.r.t. the weights: each backend's autodiff
    (NumPy: unidl's engine) against float64 finite differences of the reference, and the
    backends against each other."""
    x, rng = data(8)
    w = random_weights(kind, rng)
    mask = MASK.copy()
    mask[2, 1] = True
    rtol, atol = GRAD_TOLERANCES["float32"]
    expected = _numeric_grads(kind, x, w, mask, go_backwards=True)
    results = {}
    for be in BACKENDS:
        with unidl.use_backend(be):
            layer = make_layer(kind, return_sequences=True, return_state=True,
                               go_backwards=True)
            layer(x)
            layer.set_weights(w)

            def loss(weights, layer=layer):
                seq, *states = layer(x, mask=mask)
                total = ops.sum(seq)
                for s in states:
                    total = ops.add(total, ops.sum(s))
                return total

            grads = unidl.grad(lambda ws: loss(ws))(layer.trainable_weights)
            results[be] = [ops.to_numpy(g) for g in grads]
        assert len(results[be]) == len(expected)
        for got, want in zip(results[be], expected):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=be)
    for be, grads in results.items():
        for got, ref in zip(grads, results["numpy"]):
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=be)


def test_input_gradient_flows(backend):
    x, _ = data(9)
    layer = Bidirectional(LSTM(U))
    layer(x)
    g = unidl.grad(lambda v: ops.sum(layer(v)))(ops.convert_to_tensor(x))
    g = ops.to_numpy(g)
    assert g.shape == x.shape and np.all(np.isfinite(g)) and np.abs(g).sum() > 0


# ---- dropout, functional API, errors, config ---------------------------------------------------
def test_dropout_only_in_training(backend):
    x, rng = data(10)
    layer = GRU(U, dropout=0.5, recurrent_dropout=0.5, return_sequences=True, seed=3)
    layer(x)
    w = random_weights("gru", rng)
    layer.set_weights(w)
    close(layer(x), ref_rnn("gru", x, w)[1])
    close(layer(x, training=False), ref_rnn("gru", x, w)[1])
    y = ops.to_numpy(layer(x, training=True))
    assert y.shape == (B, T, U) and np.all(np.isfinite(y))
    assert not np.allclose(y, ref_rnn("gru", x, w)[1], atol=1e-3)


def test_seeded_dropout_is_portable():
    x, rng = data(11)
    w = random_weights("lstm", rng)
    outs = []
    for be in BACKENDS:
        with unidl.use_backend(be):
            layer = LSTM(U, dropout=0.3, recurrent_dropout=0.3, seed=7)
            layer(x)
            layer.set_weights(w)
            outs.append(ops.to_numpy(layer(x, training=True)))
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=FWD[0], atol=FWD[1])


def test_functional_api_keeps_unknown_time(backend):
    from unidl.models.functional import Input

    inp = Input((None, F))
    seq = LSTM(U, return_sequences=True)(inp)
    assert seq.shape == (None, None, U)
    bi = Bidirectional(GRU(U, return_sequences=True, return_state=True))(seq)
    assert [t.shape for t in bi] == [(None, None, 2 * U), (None, U), (None, U)]
    last = SimpleRNN(2)(bi[0])
    assert last.shape == (None, 2)
    model = unidl.Model(inp, last)
    for steps in (2, 7):
        y = model(np.ones((4, steps, F), np.float32))
        assert tuple(ops.shape(y)) == (4, 2)


def test_errors_name_the_layer(backend):
    x, _ = data()
    layer = LSTM(U, name="my_lstm")
    layer(x)
    with pytest.raises(LayerError, match="my_lstm"):
        layer(np.ones((B, T, F + 1), np.float32))
    with pytest.raises(LayerError, match="my_lstm"):
        layer(np.ones((B, F), np.float32))
    with pytest.raises(LayerError):
        layer(x, mask=np.ones((B, T + 1), bool))
    with pytest.raises(LayerError):
        layer(x, initial_state=[np.zeros((B, U), np.float32)])
    with pytest.raises(LayerError):
        GRU(U)(np.ones((B, F), np.float32))
    with pytest.raises(LayerError):
        LSTM(0)


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip(kind):
    layer = make_layer(kind, return_sequences=True, go_backwards=True, dropout=0.25)
    config = layer.get_config()
    assert config["units"] == U and config["return_sequences"] is True
    assert config["dropout"] == 0.25 and config["activation"] == "tanh"
    again = type(layer).from_config(config)
    c2 = again.get_config()
    for key in ("units", "return_sequences", "go_backwards", "dropout", "activation",
                "recurrent_initializer", "use_bias"):
        assert c2[key] == config[key]
    if kind == "lstm":
        assert config["unit_forget_bias"] is True
    if kind.startswith("gru"):
        assert config["reset_after"] is (kind == "gru")


def test_float64_layer(backend):
    x, rng = data(12)
    layer = LSTM(U, dtype="float64", return_sequences=True)
    layer(x)
    w = random_weights("lstm", rng)
    layer.set_weights(w)
    y = layer(x)
    assert ops.dtype(y) == "float64"
    close(y, ref_rnn("lstm", x, w)[1], tol=(1e-6, 1e-6))


def test_stateful_under_grad(backend):
    """Stateful states are updated in place after each call; gradients still work."""
    x, _ = data(13)
    layer = LSTM(U, stateful=True)
    layer(x)
    for _ in range(2):
        grads = unidl.grad(lambda ws: ops.sum(layer(x)))(layer.trainable_weights)
        assert all(np.all(np.isfinite(ops.to_numpy(g))) for g in grads)
    assert len(layer.states) == 2 and layer.states[0].trainable is False


def test_fit_agrees_across_backends():
    """Sequential(GRU -> LSTM -> Dense).fit follows the same loss curve on every backend."""
    rng = np.random.default_rng(14)
    x = rng.normal(size=(16, 4, 3)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None].astype(np.float32)
    curves = {}
    for be in BACKENDS:
        with unidl.use_backend(be):
            unidl.random.set_seed(0)
            model = unidl.Sequential([GRU(4, return_sequences=True, input_shape=(4, 3)),
                                      LSTM(3), unidl.layers.Dense(1)])
            # run_eagerly: tf.function tracing with AutoGraph takes ~15 s for this model
            # (AutoGraph converts every unidl function it meets); graph mode is covered by the
            # training tests
            model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
            hist = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
            curves[be] = np.array(hist.history["loss"])
    assert curves["numpy"][-1] < curves["numpy"][0]
    for be, c in curves.items():
        np.testing.assert_allclose(c, curves["numpy"], rtol=1e-4, atol=1e-5, err_msg=be)


def test_embedding_mask_and_compute_mask(backend):
    """An Embedding(mask_zero=True) mask, passed explicitly, skips the padded steps."""
    from unidl.layers import Embedding

    ids = np.array([[3, 1, 2, 0, 0], [4, 4, 1, 2, 3]], np.int32)
    emb = Embedding(6, F, mask_zero=True)
    layer = GRU(U, return_sequences=True)
    mask = emb.compute_mask(ids)
    seq = layer(emb(ids), mask=mask)
    last = GRU.from_config(layer.get_config())
    last.return_sequences = False
    last(emb(ids))
    last.set_weights(layer.get_weights())
    close(last(emb(ids), mask=mask), ops.to_numpy(seq)[:, -1])
    close(last(emb(ids)[:1, :3]), ops.to_numpy(seq)[:1, 2])  # padding had no effect
    assert layer.compute_mask(ids, mask) is mask and last.compute_mask(ids, mask) is None
    bi = Bidirectional(LSTM(U, return_state=True), merge_mode=None)
    assert bi.compute_mask(ids, mask) == [None, None, None, None, None, None]
    assert layer.compute_output_shape((None, 7, F)) == (None, 7, U)
    assert bi.compute_output_shape((None, 7, F)) == [(None, U), (None, U)] + [(None, U)] * 4


def test_bidirectional_initial_weights(backend):
    x, rng = data(15)
    wf, wb = random_weights("simple", rng), random_weights("simple", rng)
    bi = Bidirectional(SimpleRNN(U), weights=wf + wb, merge_mode="sum")
    out = bi(x)
    close(out, ref_rnn("simple", x, wf)[0] + ref_rnn("simple", x, wb, go_backwards=True)[0])


@pytest.mark.parametrize("make", [lambda: LSTM(U), lambda: GRU(U), lambda: RNN(LSTMCell(U)),
                                  lambda: Bidirectional(LSTM(U))],
                         ids=["LSTM", "GRU", "RNN(cell)", "Bidirectional"])
def test_assigned_dtype_reaches_the_wrapped_layers(backend, make):
    """``layer.dtype = "float64"`` before the build gives float64 weights and a float64
    computation; a Bidirectional used to keep its LSTMs (and cast its input) in float32."""
    layer = make()
    layer.dtype = "float64"
    x = np.random.default_rng(0).standard_normal((B, T, F))
    y = layer(ops.convert_to_tensor(x, "float64"))
    assert ops.dtype(y) == "float64"
    assert {str(w.dtype) for w in layer.weights} == {"float64"}
