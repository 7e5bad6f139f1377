"""The core asks a backend what it can do (compile, seed, run without gradients, add in
place), never its name: a third-party backend gets each behaviour by declaring it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import layers, ops

_PLUGIN = """
from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_capable_impl import Capable

    return Capable()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="capable", load=_load, description="declares capabilities")]
"""

_IMPL = """
from unidl_numpy.backend import NumpyBackend

CALLS = {"compile": [], "seed": [], "deterministic": [], "inference": 0}


class Capable(NumpyBackend):
    compile_by_default = True
    compile_traces = True

    def compile_function(self, fn, jit=False):
        CALLS["compile"].append(getattr(fn, "__name__", "step"))
        return fn

    def inference_function(self, fn):
        def run(*args):
            CALLS["inference"] += 1
            return fn(*args)

        return run

    def seed(self, seed):
        CALLS["seed"].append(seed)
        super().seed(seed)

    def set_deterministic(self, enabled):
        CALLS["deterministic"].append(enabled)
"""


@pytest.fixture
def capable(installed):
    installed("unidl-capable", {"capable": "unidl_capable"}, modules={
        "unidl_capable.py": _PLUGIN, "unidl_capable_impl.py": _IMPL})
    import unidl_capable_impl

    for value in unidl_capable_impl.CALLS.values():
        if isinstance(value, list):
            value.clear()
    unidl_capable_impl.CALLS["inference"] = 0
    yield unidl_capable_impl.CALLS
    unidl.random.set_deterministic(False)


def _small_model():
    model = unidl.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)),
                              layers.Dropout(0.5), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_a_third_party_backend_gets_compilation_by_declaring_it(capable):
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    with unidl.use_backend("capable"):
        model = _small_model()
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        model.predict(x, batch_size=4, verbose=0)
    assert capable["compile"], "compile_by_default did not make fit compile its step"
    assert capable["inference"] >= 2  # predict's two batches ran through inference_function


def test_traced_compilation_is_skipped_for_deterministic_training(capable):
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    with unidl.use_backend("capable"):
        unidl.random.set_deterministic(True)
        model = _small_model()
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        compiled_while_deterministic = list(capable["compile"])
        model.evaluate(x, y, verbose=0)
    # host-drawn dropout masks must not be frozen into a traced train step; evaluation
    # (no masks) still compiles
    assert compiled_while_deterministic == []
    assert capable["compile"]
    assert capable["deterministic"] == [True]


def test_set_seed_reaches_a_third_party_backend_loaded_before_and_after(capable):
    unidl.random.set_seed(7)
    with unidl.use_backend("capable"):  # loads it: seeded on load
        assert capable["seed"] == [7]
        unidl.random.set_seed(8)
    assert capable["seed"] == [7, 8]


@pytest.mark.parametrize("name", BACKENDS)
def test_set_seed_repeats_each_backends_own_dropout_masks(name):
    with unidl.use_backend(name):
        masks = []
        for _ in range(2):
            unidl.random.set_seed(3)
            masks.append(ops.to_numpy(ops.dropout(ops.ones((16, 16)), 0.5)) != 0)
        assert 0 < masks[0].sum() < masks[0].size
        np.testing.assert_array_equal(masks[0], masks[1])


def test_add_to_variable_default_adds_and_returns_the_storage():
    from unidl.backend import Backend

    be = unidl.backend.get_backend("numpy")
    storage = np.zeros(3, "float32")
    out = Backend.add_to_variable(be, storage, np.ones(3, "float32"))
    np.testing.assert_array_equal(out, np.ones(3))


# -- the process backend and threads ---------------------------------------------------------
@pytest.fixture
def restore_backend():
    saved = unidl.backend_name()
    yield
    unidl.set_backend(saved)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends")
def test_set_backend_reaches_threads_that_already_ran_an_op(restore_backend):
    first, second = BACKENDS[0], BACKENDS[1]
    unidl.set_backend(first)
    go, seen = threading.Event(), {}

    def worker():
        ops.ones((1,))
        seen["before"] = unidl.backend_name()
        go.wait(30)
        seen["after"] = unidl.backend_name()
        seen["tensor"] = unidl.current_backend().is_tensor(ops.ones((1,)))

    thread = threading.Thread(target=worker)
    thread.start()
    while "before" not in seen:
        thread.join(0.01)
    unidl.set_backend(second)
    go.set()
    thread.join()
    assert seen == {"before": first, "after": second, "tensor": True}


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends")
def test_a_use_backend_block_keeps_its_backend_then_follows_the_process(restore_backend):
    first, second = BACKENDS[0], BACKENDS[1]
    unidl.set_backend(first)
    inside, release, seen = threading.Event(), threading.Event(), {}

    def worker():
        with unidl.use_backend(first):
            inside.set()
            release.wait(30)
            seen["inside"] = unidl.backend_name()
        seen["after"] = unidl.backend_name()

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(30)
    unidl.set_backend(second)
    release.set()
    thread.join()
    assert seen == {"inside": first, "after": second}


@pytest.mark.parametrize("name", BACKENDS)
def test_set_backend_inside_grad_is_an_error_and_leaves_the_state_whole(name,
                                                                      restore_backend):
    other = next(b for b in BACKENDS + ["numpy"] if b != name)
    unidl.set_backend(name)

    def loss(x):
        unidl.set_backend(other)
        return ops.sum(x)

    with pytest.raises(unidl.BackendError, match="inside unidl.grad"):
        unidl.grad(loss)(ops.ones((2,)))
    assert unidl.backend_name() == name
    assert unidl.current_backend().is_tensor(ops.ones((2,)))


def test_unknown_unidl_backend_fails_at_import_naming_the_variable():
    from tests.conftest import run_python

    proc = run_python("import unidl", env={"UNIDL_BACKEND": "tensorflw"})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "UNIDL_BACKEND='tensorflw'" in last and "numpy" in last, last


# -- gradient kernels are registered against the spec's declaration -----------------------------
@pytest.mark.parametrize("name, grad_kernels, native, message", [
    ("nosuchop", {"nosuchop": lambda *a: None}, False, "not an op of the spec"),
    ("argmax", {"argmax": lambda *a: None}, False, "declares no gradient rule"),
    ("relu", {"relu": lambda *a: None}, True, "would never run"),
])
def test_gradient_kernels_must_match_a_declared_rule(name, grad_kernels, native, message):
    from unidl.backend.binding import bind
    from unidl_numpy.backend import NumpyBackend

    be = NumpyBackend()
    be.name, be.grad_kernels, be.native_autodiff = "probe", grad_kernels, native
    with pytest.raises(unidl.BackendError, match=message) as err:
        bind(be)
    assert "probe" in str(err.value) and name in str(err.value)


@pytest.mark.parametrize("name", BACKENDS)
def test_seeded_dropout_draws_a_new_mask_per_call_of_a_compiled_step(name):
    """A host-drawn seed would be frozen into a traced step (``is_tracing``): the mask must
    still change from call to call."""
    with unidl.use_backend(name):
        be = unidl.current_backend()
        drop = layers.Dropout(0.5, seed=3)
        step = be.compile_function(lambda x: drop(x, training=True))
        x = ops.ones((8, 16))
        first, second = (ops.to_numpy(step(x)) for _ in range(2))
        assert not np.array_equal(first, second)
        assert not be.is_tracing()  # (outside the trace)
