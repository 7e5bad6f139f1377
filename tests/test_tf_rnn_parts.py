"""TensorFlow's recurrent kernels (``unidl_tensorflow.kernels.rnn``) run the spec's LSTM and GRU
composites as independent chains over parts of the batch in a graph on the CPU. The parts
cover the batch (each at least ``MIN_ROWS`` rows, as many as TensorFlow runs ops at once);
the values and gradients equal the composite run whole; eagerly the composite runs whole.

The composites themselves project the inputs time-major: traced on TensorFlow, no split takes
a sequence apart along its time axis, and the projection's bias add is 2-D (fused with the
matmul). Their values are checked against the float64 references by the conformance suite
and ``test_lstm_op.py``."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import ops
from unidl.spec import get_spec

tf = pytest.importorskip("tensorflow")

STEPS, FEATURES, UNITS = 4, 3, 5


@pytest.fixture
def rnn():
    with unidl.use_backend("tensorflow"):
        from unidl_tensorflow.kernels import rnn

        yield rnn


def _parts_in_graph(rnn, batch):
    out = []

    @tf.function(autograph=False)
    def probe(x):
        out.append(rnn.batch_parts(x))
        return x

    probe(tf.zeros((batch, STEPS, FEATURES)))
    return out[0]


@pytest.mark.parametrize("threads, batch, want", [
    (2, 128, [64, 64]), (2, 97, [49, 48]), (3, 97, [33, 32, 32]), (4, 100, [34, 33, 33]),
    (2, 63, [63]), (1, 128, [128]), (8, 256, [32] * 8)])
def test_the_parts_cover_the_batch(rnn, monkeypatch, threads, batch, want):
    monkeypatch.setattr(rnn, "_parallel_ops", lambda: threads)
    assert _parts_in_graph(rnn, batch) == want


def test_eagerly_and_with_an_unknown_batch_the_batch_is_one_part(rnn):
    assert rnn.batch_parts(tf.zeros((128, STEPS, FEATURES))) == [128]
    seen = []

    @tf.function(input_signature=[tf.TensorSpec((None, STEPS, FEATURES))])
    def probe(x):
        seen.append(rnn.batch_parts(x))
        return x

    probe(tf.zeros((128, STEPS, FEATURES)))
    assert seen == [[None]]


def _args(op, batch, bias=True, reset_after=True):
    rng = np.random.default_rng(batch)
    gates = (4 if op == "lstm" else 3) * UNITS
    states = [rng.normal(size=(batch, UNITS)) for _ in range(2 if op == "lstm" else 1)]
    b = None
    if bias:
        b = rng.uniform(-0.5, 0.5, (gates,) if op == "lstm" or not reset_after else (2, gates))
    args = [rng.normal(size=(batch, STEPS, FEATURES)), *states,
            rng.uniform(-0.7, 0.7, (FEATURES, gates)), rng.uniform(-0.7, 0.7, (UNITS, gates)), b]
    return [None if a is None else tf.constant(a, tf.float32) for a in args]


def _compiled_values_and_grads(fn, args, extra):
    present = [i for i, a in enumerate(args) if a is not None]

    @tf.function(autograph=False)
    def run(*values):
        full = list(args)
        for i, v in zip(present, values):
            full[i] = v
        with tf.GradientTape() as tape:
            tape.watch(values)
            outs = fn(*full, *extra)
            loss = tf.reduce_sum(outs[0] ** 2) + sum(tf.reduce_sum(o) for o in outs[1:])
        return outs, tape.gradient(loss, values)

    outs, grads = run(*(args[i] for i in present))
    return [t.numpy() for t in outs] + [g.numpy() for g in grads]


@pytest.mark.parametrize("op, bias, reset_after", [
    ("lstm", True, True), ("lstm", False, True), ("gru", True, True), ("gru", True, False),
    ("gru", False, False)])
def test_parts_give_the_values_and_gradients_of_one_chain(rnn, monkeypatch, op, bias,
                                                          reset_after):
    monkeypatch.setattr(rnn, "_parallel_ops", lambda: 3)
    args = _args(op, 97, bias, reset_after)
    extra = () if op == "lstm" else (reset_after,)
    assert _parts_in_graph(rnn, 97) == [33, 32, 32]
    got = _compiled_values_and_grads(rnn.KERNELS[op], args, extra)
    want = _compiled_values_and_grads(get_spec(op).impl, args, extra)
    assert len(got) == len(want) >= 5
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["lstm", "gru"])
def test_the_composite_takes_contiguous_steps(rnn, op):
    args = _args(op, 3)
    fn = tf.function(lambda *a: get_spec(op).impl(*a), autograph=False)
    graph = fn.get_concrete_function(*args).graph
    splits = [o for o in graph.get_operations() if o.type in ("Split", "SplitV")]
    data_axis = [(o.inputs[1], o.inputs[0]) if o.type == "Split" else o.inputs[::2]
                 for o in splits]
    time_splits = [(data, axis) for data, axis in data_axis if data.shape.rank == 3]
    assert time_splits, "the steps are taken apart by one split"
    for data, axis in time_splits:
        assert tf.get_static_value(axis) == 0
        assert data.shape.as_list()[0] == STEPS  # (time, batch, gates)
    projection = next(o for o in graph.get_operations() if o.type == "BiasAdd")
    assert projection.inputs[0].shape.rank == 2


def test_a_graph_holds_one_chain_per_part(rnn, monkeypatch):
    monkeypatch.setattr(rnn, "_parallel_ops", lambda: 2)
    args = _args("lstm", 64)
    graph = tf.function(rnn.KERNELS["lstm"], autograph=False).get_concrete_function(
        *args).graph
    recurrent = [o for o in graph.get_operations()
                 if o.type == "MatMul" and o.inputs[1].shape.as_list() == [UNITS, 4 * UNITS]]
    assert sorted(o.inputs[0].shape.as_list()[0] for o in recurrent) == [32] * 2 * STEPS


def test_a_model_trains_alike_with_and_without_parts(rnn, monkeypatch):
    from unidl import layers, losses, models

    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, STEPS, FEATURES)).astype("float32")
    y = rng.integers(0, 3, 128)
    runs, start = [], None
    for min_rows in (10_000, 32):
        monkeypatch.setattr(rnn, "MIN_ROWS", min_rows)
        monkeypatch.setattr(rnn, "_parallel_ops", lambda: 2)
        model = models.Sequential([layers.LSTM(UNITS, input_shape=(STEPS, FEATURES)),
                                   layers.Dense(3)])
        model.build((None, STEPS, FEATURES))
        start = start or model.get_weights()
        model.set_weights(start)
        model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(True))
        runs.append(model.fit(x, y, batch_size=64, epochs=3, verbose=0,
                              shuffle=False).history["loss"])
        runs.append(ops.to_numpy(model.predict(x, verbose=0)))
    np.testing.assert_allclose(runs[2], runs[0], rtol=1e-5)
    np.testing.assert_allclose(runs[3], runs[1], rtol=1e-4, atol=1e-5)
    assert runs[2][-1] < runs[2][0]
