"""torch's compiled steps replay a recorded tape of their kernel and autograd calls
(``unidl_torch.tape`` over ``unidl.backend.tape``): the replayed steps give the eager steps'
results bit for bit, and the cases a tape cannot repeat run eagerly."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import layers

torch = pytest.importorskip("torch")


def _model(eager=False, dropout=True):
    unidl.random.set_seed(3)
    stack = [layers.Dense(16, activation="relu", input_shape=(8,)),
             layers.BatchNormalization()]
    if dropout:
        stack.append(layers.Dropout(0.3))
    model = unidl.Sequential(stack + [layers.Dense(3)])
    model.compile(unidl.optimizers.Adam(1e-2),
                  unidl.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], run_eagerly=eager)
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(100, 8)).astype("float32"), rng.integers(0, 3, 100)


def _compiled_in(fn, depth=0):
    """The tape-compiled functions inside ``fn``'s closures (the step wrappers)."""
    if hasattr(fn, "tapes"):
        return [fn]
    if depth > 3:
        return []
    return [c for cell in getattr(fn, "__closure__", None) or ()
            for c in _compiled_in(cell.cell_contents, depth + 1)]


def _tape_states(model):
    """``{step kind: [tape state per call signature]}`` of a model's compiled steps."""
    return {kind: [type(t).__name__ for c in _compiled_in(step) for t in c.tapes.values()]
            for (kind, _), step in model._steps.items()}


def _run(model, x, y):
    unidl.random.set_seed(7)  # (the dropout masks: torch's generator, from here on)
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    results = [model.evaluate(x, y, batch_size=16, verbose=0) for _ in range(3)] + [
               model.predict(x, batch_size=16, verbose=0) for _ in range(3)] + [
               model.train_on_batch(x[:16], y[:16]), model.train_on_batch(x[:16], y[:16]),
               model.train_on_batch(x[:16], y[:16])]
    return history, results, model.get_weights()


def test_replayed_steps_equal_the_eager_steps_bit_for_bit():
    """BatchNorm statistics, fresh dropout masks per step (torch's generator, drawn in the
    same order), Adam, the metrics: the same numbers as ``run_eagerly=True``."""
    x, y = _data()
    with unidl.use_backend("torch"):
        taped, eager = _model(), _model(eager=True)
        h1, r1, w1 = _run(taped, x, y)
        h2, r2, w2 = _run(eager, x, y)
        states = _tape_states(taped)
    assert h1 == h2
    for a, b in zip(r1 + w1, r2 + w2):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for kind in ("train", "test", "predict", "train_batch"):
        assert "_Tape" in states[kind], (kind, states)


def test_a_step_under_no_grad_runs_eagerly_and_still_trains():
    """Inside ``torch.no_grad()`` the step's own switch to grad mode is not on the tape, so
    such a step is never replayed (and trains as it does eagerly)."""
    x, y = _data()
    with unidl.use_backend("torch"):
        model, eager = _model(dropout=False), _model(eager=True, dropout=False)
        with torch.no_grad():
            h1 = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
            h2 = eager.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
        states = _tape_states(model)
    assert h1 == h2 and h1["loss"][1] < h1["loss"][0]
    assert "_Tape" not in states["train"]


def test_second_order_gradients_are_not_recorded():
    """A step that differentiates twice runs eagerly, every call."""
    from unidl import ops

    with unidl.use_backend("torch"):
        be = unidl.current_backend()
        v = unidl.Variable(ops.convert_to_tensor([1.0, 2.0]))

        def step(x):
            inner = unidl.grad(lambda w: ops.sum(ops.multiply(ops.multiply(w, w), w)))
            return unidl.grad(lambda w: ops.sum(inner(w)))(ops.multiply(v.value, x))

        compiled = be.compile_function(step)
        outs = [ops.to_numpy(compiled(ops.convert_to_tensor(1.0))) for _ in range(4)]
        assert all(type(t).__name__ != "_Tape" for t in compiled.tapes.values())
    for out in outs:
        np.testing.assert_allclose(out, [6.0, 12.0])
