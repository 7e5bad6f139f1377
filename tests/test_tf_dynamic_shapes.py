"""TensorFlow kernels inside ``tf.function`` with axes of unknown length (a traced signature
with ``None`` dimensions): the results equal the NumPy backend's on the concrete input."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import ops

tf = pytest.importorskip("tensorflow")

CASES = {
    "split equal, unknown axis": lambda x: ops.split(x, 2, axis=1),
    "split at points, unknown axis": lambda x: ops.split(x, [1, -1, 9], axis=1),
    "split, known axis": lambda x: ops.split(x, 2, axis=-1),
    "tile": lambda x: [ops.tile(x, (1, 2, 1))],
    "pad constant": lambda x: [ops.pad(x, ((0, 0), (1, 1), (0, 0)))],
    "pad reflect": lambda x: [ops.pad(x, ((0, 0), (1, 2), (0, 0)), mode="reflect")],
    "pad symmetric": lambda x: [ops.pad(x, ((1, 0), (2, 1), (0, 0)), mode="symmetric")],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tensorflow_kernels_accept_unknown_dimensions(name):
    fn = CASES[name]
    x = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    with unidl.use_backend("numpy"):
        want = [ops.to_numpy(v) for v in fn(x)]
    with unidl.use_backend("tensorflow"):
        traced = tf.function(lambda t: list(fn(t)), autograph=False,
                             input_signature=[tf.TensorSpec([None, None, 6], tf.float32)])
        got = [v.numpy() for v in traced(tf.constant(x))]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
