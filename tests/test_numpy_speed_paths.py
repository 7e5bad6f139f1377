"""The NumPy backend's fast paths for training steps compute what the general paths compute.

* The recorded tape (``unidl_numpy.tape``, the backend's ``compile_function``): a replayed
  step gives the eager step's results, and a tape is not reused where it would be wrong:
  other shapes or dtypes, the gradient kernels switched off, a variable given a new storage,
  a step whose Python computes arrays outside the kernels; dropout draws a new mask on every
  replay, from the generator ``unidl.random.set_seed`` seeds.
* The gradient kernels that take what their forward kernel kept (``unidl_numpy.saved``):
  ``lstm``'s gates and the loss's softmax give the spec rule's cotangents to the bit, as do
  the kernels computing them afresh.
"""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import layers, ops

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _numpy():
    with unidl.use_backend("numpy"):
        yield


def _be():
    return unidl.current_backend()


def _tapes(compiled):
    """The tape states of a compiled function, by call signature."""
    return {k: type(v).__name__ for k, v in compiled.tapes.items()}


def _mlp(dropout=0.0, seed=0):
    unidl.random.set_seed(seed)
    stack = [layers.Dense(16, activation="relu", input_shape=(12,))]
    if dropout:
        stack.append(layers.Dropout(dropout))
    model = unidl.Sequential(stack + [layers.Dense(5)])
    return model


def _compile(model, **kw):
    model.compile(optimizer=unidl.optimizers.Adam(0.01),
                  loss=unidl.losses.SparseCategoricalCrossentropy(from_logits=True), **kw)
    return model


def _data(n=32, seed=1, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 12)).astype(dtype), rng.integers(0, 5, n)


def _train(model, batches):
    return [float(ops.to_numpy(model._step("train")(ops.convert_to_tensor(x),
                                                      ops.convert_to_tensor(y), None)))
            for x, y in batches]


# -- the tape -------------------------------------------------------------------------------------
def test_numpy_steps_are_compiled_to_a_tape():
    be = _be()
    assert be.compile_by_default and be.compile_traces
    model = _compile(_mlp())
    x, y = _data()
    model._ensure_built(ops.convert_to_tensor(x))
    _train(model, [(x, y)] * 3)
    step = model._step("train")
    compiled = [c.cell_contents for c in step.__closure__
                if type(c.cell_contents).__name__ == "_Compiled"]
    assert any("_Tape" in _tapes(c).values() for c in compiled)


def test_replayed_steps_equal_eager_steps_across_shapes_and_dtypes():
    """Weights and losses after steps of two batch sizes and two dtypes, compiled (recorded,
    then replayed) and eager (``run_eagerly``): the same bits."""
    batches = [_data(32, s) for s in range(4)] + [_data(7, s) for s in range(4, 8)] \
        + [_data(32, s) for s in range(8, 11)]
    runs = []
    for eager in (False, True):
        model = _compile(_mlp(), run_eagerly=eager)
        model._ensure_built(ops.convert_to_tensor(batches[0][0]))
        losses = _train(model, batches)
        runs.append((losses, [w.numpy() for w in model.weights]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert a.tobytes() == b.tobytes()


def test_a_tape_per_signature():
    calls = []

    def fn(x, y):
        calls.append(1)
        return ops.add(ops.multiply(x, 2.0), y)

    f = _be().compile_function(fn)
    a32, a64 = np.ones((3,), np.float32), np.ones((3,), np.float64)
    for _ in range(4):
        np.testing.assert_array_equal(f(a32, a32.copy()), np.full(3, 3.0, np.float32))
    assert len(calls) == 2  # recorded twice (the second checks the first), then replayed
    out = f(a64, a64 * 4)
    assert out.dtype == np.float64 and out.tolist() == [6.0] * 3
    out = f(np.arange(4, dtype=np.float32), np.zeros(4, np.float32))
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert len(_tapes(f)) == 3 and len(calls) == 4
    assert f(a32 * 5, a32).tolist() == [11.0] * 3 and len(calls) == 4  # (replayed)
    b = np.full((3,), 2.0, np.float32)  # (one array as both arguments: its own tape)
    assert [f(b, b).tolist() for _ in range(3)] == [[6.0] * 3] * 3
    assert f(b, a32).tolist() == [5.0] * 3 and len(calls) == 6


def test_a_step_computing_arrays_outside_the_kernels_is_not_replayed():
    def fn(x):
        doubled = np.asarray(x) * 2  # (NumPy on the data, not through unidl's ops)
        return ops.add(doubled, 1.0)

    f = _be().compile_function(fn)
    for k in range(5):
        x = np.full((4,), float(k), np.float32)
        assert f(x).tolist() == [2.0 * k + 1.0] * 4
    assert list(_tapes(f).values()) == ["bool"]  # (eager from now on)


def test_a_view_of_the_data_made_outside_the_kernels_is_not_replayed():
    def fn(x):
        return ops.multiply(x[:2], 3.0)  # (a view sliced by NumPy itself)

    f = _be().compile_function(fn)
    for k in range(4):
        x = np.full((4,), float(k), np.float32)
        assert f(x).tolist() == [3.0 * k] * 2
    assert list(_tapes(f).values()) == ["bool"]


def test_a_variable_given_a_new_storage_is_read_anew():
    v = unidl.Variable(np.ones((2,), np.float32))

    def fn(x):
        return ops.multiply(x, v)

    f = _be().compile_function(fn)
    x = np.full((2,), 3.0, np.float32)
    for _ in range(3):
        assert f(x).tolist() == [3.0, 3.0]
    v.assign(np.full((2,), 2.0, np.float32))  # (in place: the tape reads the same storage)
    assert f(x).tolist() == [6.0, 6.0]
    v._assign_native(np.full((1,), 5.0, np.float32))  # (another shape: a new storage)
    assert f(x).tolist() == [15.0, 15.0]
    assert f(x).tolist() == [15.0, 15.0]
    assert f(x).tolist() == [15.0, 15.0]


def test_variables_updated_in_the_step_are_updated_on_replay():
    v = unidl.Variable(np.zeros((2,), np.float32))

    def fn(x):
        v.assign(ops.add(v.value, x))
        return v.value

    f = _be().compile_function(fn)
    for k in range(1, 6):
        f(np.ones((2,), np.float32))
        assert v.numpy().tolist() == [float(k)] * 2


def test_spec_rules_only_gets_its_own_tape():
    from unidl.autodiff.engine import spec_rules_only

    model = _compile(_mlp())
    x, y = _data()
    model._ensure_built(ops.convert_to_tensor(x))
    _train(model, [(x, y)] * 3)
    with spec_rules_only():
        _train(model, [(x, y)] * 3)
    step = model._step("train")
    keys = [k for c in step.__closure__ if type(c.cell_contents).__name__ == "_Compiled"
            for k in c.cell_contents.tapes]
    assert {k[1] for k in keys} == {False, True}


def test_dropout_draws_a_new_mask_on_every_replay_from_the_seeded_generator():
    layer = layers.Dropout(0.5, seed=1)  # (its own seed stream would be frozen: not used)
    f = _be().compile_function(lambda x: layer(x, training=True))
    x = np.ones((64,), np.float32)

    def masks(seed):
        unidl.random.set_seed(seed)
        return [ops.to_numpy(f(x)).tobytes() for _ in range(6)]

    a = masks(3)
    assert "_Tape" in _tapes(f).values()
    assert len(set(a)) == 6  # (a frozen mask would repeat)
    assert masks(3) == a  # (set_seed reseeds the generator the replayed kernel reads)
    assert masks(4) != a


def test_training_with_dropout_follows_the_seed():
    def run(seed):
        model = _compile(_mlp(dropout=0.5, seed=0))
        x, y = _data()
        model._ensure_built(ops.convert_to_tensor(x))
        unidl.random.set_seed(seed)
        return _train(model, [(x, y)] * 6)

    a = run(3)
    assert a == run(3) and a != run(4)


def test_prediction_replays_without_dropout():
    model = _compile(_mlp(dropout=0.5))
    x, _ = _data()
    model._ensure_built(ops.convert_to_tensor(x))
    want = model(ops.convert_to_tensor(x), training=False)
    predict = model._step("predict")
    for _ in range(4):
        assert ops.to_numpy(predict(ops.convert_to_tensor(x))).tobytes() == \
            ops.to_numpy(want).tobytes()


def test_deterministic_mode_runs_eagerly():
    calls = []

    def fn(x):
        calls.append(1)
        return ops.multiply(x, 2.0)

    f = _be().compile_function(fn)
    unidl.random.set_deterministic(True)
    try:
        for _ in range(4):
            f(np.ones((2,), np.float32))
    finally:
        unidl.random.set_deterministic(False)
    assert len(calls) == 4 and not f.tapes


def test_nothing_is_recorded_inside_a_differentiation():
    calls = []

    def fn(x):
        calls.append(1)
        return ops.sum(ops.multiply(x, x))

    f = _be().compile_function(fn)
    g = unidl.grad(f)
    for _ in range(3):
        assert ops.to_numpy(g(np.full((2,), 3.0, np.float32))).tolist() == [6.0, 6.0]
    assert len(calls) == 3 and not f.tapes


# -- gradient kernels -----------------------------------------------------------------------------
def _lstm_args(rng, dt, bias, b=4, t=5, f=3, u=6):
    def r(*shape):
        return rng.standard_normal(shape).astype(dt)

    return (r(b, t, f), r(b, u), r(b, u), r(f, 4 * u), r(u, 4 * u), r(4 * u) if bias else None)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kept", [False, True])
def test_lstm_grad_kernel_equals_the_spec_rule_bitwise(dt, bias, kept):
    """With the gates kept by the forward kernel (as in a training step) or recomputed."""
    from unidl.backend.state import STATE
    from unidl.spec.core import get_spec
    from unidl_numpy import saved
    from unidl_numpy.grad_kernels import GRAD_KERNELS

    rng = np.random.default_rng(3)
    for pattern in ((0, 1, 0), (1, 1, 1), (1, 0, 0), (0, 0, 1)):
        args = _lstm_args(rng, dt, bias)
        STATE.tracing += kept  # (the forward keeps its gates while a gradient may follow)
        try:
            out = ops.lstm(*args)
        finally:
            STATE.tracing -= kept
        assert (saved._KEPT.get("lstm", (None,))[0] is out[0]) == kept
        g = [rng.standard_normal(o.shape).astype(dt) if m else None
             for o, m in zip(out, pattern)]
        got = GRAD_KERNELS["lstm"]([0, 1, 2, 3, 4, 5], g, out, *args)
        assert saved.take("lstm", out[0]) is None  # (taken by the kernel)
        want = get_spec("lstm").grad(g, out, *args)
        for i in range(6):
            if want[i] is None:
                assert got[i] is None
                continue
            w = np.asarray(ops.to_numpy(want[i]))
            assert got[i].dtype == w.dtype and got[i].shape == w.shape
            assert got[i].tobytes() == w.tobytes(), (pattern, i)


def test_lstm_forward_keeps_nothing_outside_a_differentiation():
    from unidl_numpy import saved

    out = ops.lstm(*_lstm_args(np.random.default_rng(0), np.float32, True))
    assert saved.take("lstm", out[0]) is None


@pytest.mark.parametrize("labels", ["in range", "out of range"])
def test_cross_entropy_grad_kernel_with_the_kept_softmax_equals_the_spec_rule(labels):
    from unidl.backend.state import STATE
    from unidl.spec.core import get_spec
    from unidl_numpy.grad_kernels import GRAD_KERNELS

    rng = np.random.default_rng(4)
    logits = rng.standard_normal((16, 10)).astype(np.float32)
    target = rng.integers(0, 10, 16)
    if labels == "out of range":
        target[[2, 5]] = [-1, -3]  # (no one-hot row: the gradient is the softmax there)
    for kept in (True, False):
        STATE.tracing += kept  # (the forward keeps its softmax while a gradient may follow)
        try:
            out = ops.sparse_categorical_crossentropy(target, logits, True, -1)
        finally:
            STATE.tracing -= kept
        g = rng.standard_normal(out.shape).astype(np.float32)
        got = GRAD_KERNELS["sparse_categorical_crossentropy"]([1], g, out, target, logits,
                                                              True, -1)
        want = np.asarray(ops.to_numpy(get_spec("sparse_categorical_crossentropy").grad(
            g, out, target, logits, True, -1)[1]))
        assert got[1].tobytes() == want.tobytes()


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_backprop_kernel_with_the_kept_columns_equals_computing_them(padding):
    """The im2col columns a convolution keeps (while a gradient may follow) give the kernel
    gradient's bits; another geometry or another input does not take them."""
    from unidl.backend.state import STATE
    from unidl_numpy import saved

    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 9, 9, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    args = ((1, 1), padding, "channels_last", (1, 1), 1)
    want_out = ops.conv2d(x, k, *args)
    g = rng.standard_normal(want_out.shape).astype(np.float32)
    want = ops.conv_backprop_kernel(x, g, k.shape, *args)
    STATE.tracing += 1
    try:
        out = ops.conv2d(x, k, *args)
    finally:
        STATE.tracing -= 1
    assert out.tobytes() == want_out.tobytes()
    assert any(v[0] is x for v in saved._BY_INPUT.values())
    other = ops.conv_backprop_kernel(x.copy(), g, k.shape, *args)  # (another input array)
    assert any(v[0] is x for v in saved._BY_INPUT.values())
    got = ops.conv_backprop_kernel(x, g, k.shape, *args)
    assert not any(v[0] is x for v in saved._BY_INPUT.values())  # (taken)
    assert got.tobytes() == want.tobytes() == other.tobytes()


def test_results_in_dicts_and_lists_are_the_replay_s_own():
    def fn(x):
        return {"double": ops.multiply(x, 2.0), "pair": [ops.add(x, 1.0), None]}

    f = _be().compile_function(fn)
    for k in range(4):
        out = f(np.full((2,), float(k), np.float32))
        assert out["double"].tolist() == [2.0 * k] * 2
        assert out["pair"][0].tolist() == [k + 1.0] * 2 and out["pair"][1] is None
    assert "_Tape" in _tapes(f).values()


@pytest.mark.parametrize("padding, data_format, strides", [
    ("valid", "channels_last", 2), ("same", "channels_first", 2), ("valid", "channels_last", 1)])
def test_max_pool_grad_kernel_equals_the_spec_rule_bitwise(padding, data_format, strides):
    """The kernel takes the forward's maxima instead of computing them again; ties (a relu's
    zeros) and a NaN go to each window's first maximum either way."""
    from unidl.spec.core import get_spec
    from unidl_numpy.grad_kernels import GRAD_KERNELS

    rng = np.random.default_rng(5)
    x = np.maximum(rng.standard_normal((3, 4, 7, 7)), 0).astype(np.float32)
    x[0, 1, 2, 2] = np.nan
    if data_format == "channels_last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    args = (x, 2, strides, padding, data_format)
    out = ops.to_numpy(ops.max_pool(*args))
    g = rng.standard_normal(out.shape).astype(np.float32)
    (got,) = GRAD_KERNELS["max_pool"]([0], g, out, *args)
    (want,) = get_spec("max_pool").grad(g, out, *args)
    assert got.tobytes() == np.asarray(ops.to_numpy(want)).tobytes()
