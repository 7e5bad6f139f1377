"""The loop suite: what the user calls, against what the user would write instead.

For each model of ``models.py``, four calls are timed:

* ``fit``: one epoch of ``model.fit(x, y, batch_size=128, epochs=1, verbose=0,
  shuffle=False)`` over 7,680 samples (60 batches), the model compiled with
  ``metrics=["accuracy"]``;
* ``train_on_batch``: ``model.train_on_batch(x, y)`` on one NumPy batch of 128 (a model
  compiled without metrics: the loss is returned);
* ``evaluate``: ``model.evaluate(x, y, batch_size=128, verbose=0)`` over 10,000 samples
  (79 batches, the last of 16), loss and accuracy;
* ``predict``: ``model.predict(x, batch_size=128, verbose=0)`` over the same 10,000.

The hand-written side (``native_*.loops``) runs the same work over the same pre-made NumPy
batches, converting each batch from NumPy every step as ``fit`` must (``torch.from_numpy``,
``tf.constant``), reading the loss and the number of correct predictions every step in
``fit`` and ``evaluate`` (as a progress display does), ``no_grad`` / ``tf.function`` as a
user writes them, and concatenating ``predict``'s outputs into one NumPy array. Keras 3 runs
its own ``fit``/``train_on_batch``/``evaluate``/``predict`` (in a process of its own per
``KERAS_BACKEND``). Every side starts from the same weights; predictions are checked to
agree before anything is timed.
"""

from __future__ import annotations

import numpy as np
from common import BATCH, check_close, make_data
from models import build_keras, build_unidl

FIT_SAMPLES = 7680
EVAL_SAMPLES = 10_000
CALLS = ("fit", "train_on_batch", "evaluate", "predict")
METRICS = ["accuracy"]


def loop_data(name: str) -> dict:
    """The arrays of one case: ``fit`` data, ``evaluate``/``predict`` data, one batch."""
    x, y = make_data(name, FIT_SAMPLES, seed=1)
    xe, ye = make_data(name, EVAL_SAMPLES, seed=2)
    return {"x": x, "y": y, "x_eval": xe, "y_eval": ye, "x_batch": x[:BATCH],
            "y_batch": y[:BATCH]}


def batches(x: np.ndarray, y: np.ndarray, batch: int = BATCH) -> list:
    """``[(x[i:i+batch], y[i:i+batch]), ...]``: contiguous NumPy views, made once."""
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]


def native_batches(data: dict, layout=None) -> tuple:
    """The hand-written side's pre-made batches ``(fit, train_on_batch, eval)``, in the
    framework's layout (``layout(x)``, applied once, outside any timing)."""
    def lay(x):
        return x if layout is None else layout(x)

    return (batches(lay(data["x"]), data["y"]), (lay(data["x_batch"]), data["y_batch"]),
            batches(lay(data["x_eval"]), data["y_eval"]))


def unidl_calls(name: str, data: dict, **compile_args) -> tuple:
    """``({call: callable}, initial weights)`` of unidl on the active backend."""
    model = build_unidl(name, metrics=METRICS, **compile_args)
    tob = build_unidl(name, **compile_args)
    model.predict(data["x_batch"], batch_size=BATCH, verbose=0)  # (builds the weights)
    tob.predict(data["x_batch"][:2], verbose=0)
    weights = model.get_weights()
    tob.set_weights(weights)
    x, y, xe, ye = data["x"], data["y"], data["x_eval"], data["y_eval"]
    xb, yb = data["x_batch"], data["y_batch"]

    calls = {
        "fit": lambda: model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False),
        "train_on_batch": lambda: tob.train_on_batch(xb, yb),
        "evaluate": lambda: model.evaluate(xe, ye, batch_size=BATCH, verbose=0),
        "predict": lambda: model.predict(xe, batch_size=BATCH, verbose=0),
    }
    return calls, weights


def keras_calls(name: str, data: dict, weights) -> dict:
    """``{call: callable}`` of Keras 3 (``KERAS_BACKEND`` set) from ``weights``."""
    model = build_keras(name, metrics=METRICS)
    model.set_weights(weights)
    tob = build_keras(name)
    tob.set_weights(weights)
    x, y, xe, ye = data["x"], data["y"], data["x_eval"], data["y_eval"]
    xb, yb = data["x_batch"], data["y_batch"]
    return {
        "fit": lambda: model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False),
        "train_on_batch": lambda: tob.train_on_batch(xb, yb),
        "evaluate": lambda: model.evaluate(xe, ye, batch_size=BATCH, verbose=0),
        "predict": lambda: np.asarray(model.predict(xe, batch_size=BATCH, verbose=0)),
    }


def native_calls(native, name: str, data: dict, weights, **placement) -> dict:
    """``{call: callable}`` of the hand-written module ``native`` (``native_torch``...);
    ``placement``: ``device=`` for the references that take one."""
    layout = getattr(native, "host_layout", None)
    fit_b, tob_b, eval_b = native_batches(
        data, None if layout is None else (lambda x: layout(name, x)))
    return native.loops(name, weights, fit_b, tob_b, eval_b, **placement)


def check(tag: str, unidl_side: dict, other_side: dict, device: str | None = None) -> float:
    """Both sides predict the same outputs (before any training)."""
    return check_close(tag, unidl_side["predict"](), other_side["predict"](), device)
