"""Training parity: the same model, seed and data give the same per-step losses everywhere.

An MLP (the Keras MNIST model on 8x8 digits), a small CNN and an LSTM classifier are trained
for 20 steps in deterministic mode (weights, dropout masks and batch order from unidl's host
RNG) on each backend/device in float32; each loss curve must match the reference backend's (NumPy
unless :mod:`unidl_conformance.reference` says otherwise) within
:data:`unidl.tolerances.TRAINING_RTOL` relative.
"""

from __future__ import annotations

import numpy as np

import unidl
from unidl.tolerances import TRAINING_RTOL
from unidl_conformance.cases import Case, Result
from unidl_conformance.compare import compare
from unidl_conformance.reference import reference_backend, reference_device

__all__ = ["TRAINING_MODELS", "training_cases", "run_training", "loss_curve", "STEPS"]

STEPS = 20
BATCH = 32
SEED = 0


def _mlp():
    from unidl import layers

    return unidl.Sequential([
        layers.Flatten(input_shape=(8, 8)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])


def _cnn():
    from unidl import layers

    return unidl.Sequential([
        layers.Reshape((8, 8, 1), input_shape=(8, 8)),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.Flatten(),
        layers.Dropout(0.1),
        layers.Dense(10, activation="softmax"),
    ])


def _lstm():
    from unidl import layers

    return unidl.Sequential([
        layers.LSTM(16, input_shape=(8, 8)),
        layers.Dense(10, activation="softmax"),
    ])


TRAINING_MODELS = {"mlp": _mlp, "cnn": _cnn, "lstm": _lstm}


def training_cases(backend: str, device: str, dtypes) -> list[Case]:
    if "float32" not in dtypes:
        return []
    return [Case("training", backend, device, "float32", name) for name in TRAINING_MODELS]


def loss_curve(name: str, backend: str, device: str = "cpu", steps: int = STEPS) -> list[float]:
    """Per-step training losses of model ``name`` on ``backend``/``device``."""
    (x, y), _ = unidl.datasets.digits.load_data()
    x = (x[: steps * BATCH] / 16.0).astype("float32")
    y = y[: steps * BATCH]
    was = unidl.random.is_deterministic()
    try:
        with unidl.use_backend(backend), unidl.device(device):
            unidl.random.set_seed(SEED)
            unidl.random.set_deterministic(True)
            model = TRAINING_MODELS[name]()
            model.compile(optimizer=unidl.optimizers.Adam(learning_rate=1e-3),
                          loss="sparse_categorical_crossentropy")
            losses = []
            for step in range(steps):
                sl = slice(step * BATCH, (step + 1) * BATCH)
                losses.append(float(model.train_on_batch(x[sl], y[sl])))
            return losses
    finally:
        unidl.random.set_deterministic(was)


#: (reference backend, device, model) -> its loss curve, computed once per process
_REFERENCE: dict = {}


def reference_curve(name: str) -> list[float]:
    """The loss curve of model ``name`` on the reference backend (cached)."""
    key = (reference_backend(), reference_device(), name)
    if key not in _REFERENCE:
        _REFERENCE[key] = loss_curve(name, key[0], key[1])
    return _REFERENCE[key]


def run_training(case: Case) -> Result:
    """Train the case's model on its backend/device and compare the per-step losses with
    the reference backend's."""
    result = Result(case, "pass", seed=SEED, rtol=TRAINING_RTOL, atol=0.0)
    ref = reference_backend()
    try:
        expected = np.array(reference_curve(case.target))
        got = np.array(loss_curve(case.target, case.backend, case.device))
    except Exception as exc:
        result.status = "fail"
        result.message = f"{case.target}: raised {type(exc).__name__}: {exc}"
        return result
    cmp = compare(got, expected, TRAINING_RTOL, 0.0)
    result.ratio, result.max_abs, result.max_rel = cmp.ratio, cmp.max_abs, cmp.max_rel
    if not (expected[-1] < expected[0]):
        result.status = "fail"
        result.message = (f"{case.target}: the reference ({ref}) loss did not decrease: "
                          f"{expected}")
    elif not cmp.ok:
        result.status = "fail"
        result.message = (f"{case.target}: loss curve differs from {ref}'s at step "
                          f"{cmp.message}")
    return result
