"""The ``lstm`` and ``gru`` composites (TensorFlow's kernels) project the inputs time-major:
each step's slice of the projection is a contiguous block, and the bias is added to the 2-D
matmul (which TensorFlow fuses with it). Traced on TensorFlow, no split takes a sequence
apart along its time axis, and the projection's bias add is 2-D. Their values are checked
against the float64 references by the conformance suite and ``test_lstm_op.py``."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl.spec import get_spec

tf = pytest.importorskip("tensorflow")


def _args(op, steps=7, batch=3, features=4, units=5):
    rng = np.random.default_rng(0)
    gates = (4 if op == "lstm" else 3) * units
    states = [rng.normal(size=(batch, units)) for _ in range(2 if op == "lstm" else 1)]
    bias = rng.normal(size=(gates,) if op == "lstm" else (2, gates))
    args = [rng.normal(size=(batch, steps, features)), *states,
            rng.normal(size=(features, gates)), rng.normal(size=(units, gates)), bias]
    return [tf.constant(a, tf.float32) for a in args]


@pytest.mark.parametrize("op", ["lstm", "gru"])
def test_the_composite_takes_contiguous_steps(op):
    args = _args(op)
    with unidl.use_backend("tensorflow"):
        fn = tf.function(lambda *a: get_spec(op).impl(*a), autograph=False)
        graph = fn.get_concrete_function(*args).graph
    splits = [o for o in graph.get_operations() if o.type in ("Split", "SplitV")]
    time_splits = [o for o in splits if len(o.outputs) == 7]
    assert time_splits, "the steps are taken apart by one split"
    for o in time_splits:
        data = o.inputs[1] if o.type == "Split" else o.inputs[0]
        axis = o.inputs[0] if o.type == "Split" else o.inputs[2]
        assert tf.get_static_value(axis) == 0
        assert data.shape.as_list()[0] == 7  # (time, batch, gates)
    bias_adds = [o for o in graph.get_operations() if o.type == "BiasAdd"]
    assert bias_adds and all(o.inputs[0].shape.rank == 2 for o in bias_adds[:1])
