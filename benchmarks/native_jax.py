"""The reference a JAX user writes by hand (no Keras, no Flax): a pytree of weights, a
``jax.jit`` train step returning the new weights and Adam moments (``jax.value_and_grad``),
``jax.lax`` convolutions and pooling, dropout from a key split every step. The LSTM projects
its input once and runs its cell with ``jax.lax.scan``.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # (as the unidl backend: same JAX mode both sides)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import EPSILON, LEARNING_RATE  # noqa: E402

B1, B2 = 0.9, 0.999


def _conv(x, kernel, bias):
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y + bias)


def _pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _lstm(x, kernel, recurrent, bias):
    z_all = jnp.einsum("btf,fg->tbg", x, kernel) + bias
    h = jnp.zeros((x.shape[0], recurrent.shape[0]), x.dtype)

    def cell(carry, z_t):
        h, c = carry
        i, f, g, o = jnp.split(z_t + h @ recurrent, 4, axis=1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None

    (h, _), _ = jax.lax.scan(cell, (h, h), z_all)
    return h


def _forward(name, w, x, key):
    if name == "mlp":
        h = jax.nn.relu(x @ w[0] + w[1])
        if key is not None:
            keep = jax.random.bernoulli(key, 0.8, h.shape)
            h = jnp.where(keep, h / 0.8, 0.0)
        return h @ w[2] + w[3]
    if name == "cnn":
        h = _pool(_conv(x, w[0], w[1]))
        h = _pool(_conv(h, w[2], w[3]))
        return h.reshape(h.shape[0], -1) @ w[4] + w[5]
    if name == "lstm":
        return _lstm(x, w[0], w[1], w[2]) @ w[3] + w[4]
    raise ValueError(name)


def _xent(y, logits):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), axis=1))


def _correct(y, logits):
    return jnp.sum((jnp.argmax(logits, axis=1) == y).astype(jnp.float32))


def _adam(w, m, v, t, grads):
    t = t + 1.0
    step = LEARNING_RATE / (1.0 - B1 ** t)
    sqrt_bc2 = jnp.sqrt(1.0 - B2 ** t)
    m = [B1 * mi + (1.0 - B1) * g for mi, g in zip(m, grads)]
    v = [B2 * vi + (1.0 - B2) * g * g for vi, g in zip(v, grads)]
    w = [p - step * mi / (jnp.sqrt(vi) / sqrt_bc2 + EPSILON) for p, mi, vi in zip(w, m, v)]
    return w, m, v, t


def jax_device(device: str = "cpu"):
    """The ``jax.Device`` of a device name (``cpu``, ``cuda:0``)."""
    kind, _, index = device.partition(":")
    return jax.devices("gpu" if kind == "cuda" else kind)[int(index or 0)]


def build(name: str, weights, device: str = "cpu"):
    """``(state, train_step, infer_step, eval_step)``: ``state`` is the mutable dict holding
    weights, Adam moments, step and key, placed on ``device`` (so the steps run there, NumPy
    batches copied to it); ``train_step(state, x, y)`` returns the new state, the loss and the
    number correct."""
    w = [jnp.asarray(a) for a in weights]
    state = {"w": w, "m": [jnp.zeros_like(p) for p in w], "v": [jnp.zeros_like(p) for p in w],
             "t": jnp.zeros((), jnp.float32), "key": jax.random.PRNGKey(0)}
    state = jax.device_put(state, jax_device(device))

    @jax.jit
    def train_step(state, x, y):
        key, sub = jax.random.split(state["key"])

        def loss_fn(w):
            logits = _forward(name, w, x, sub)
            return _xent(y, logits), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["w"])
        w, m, v, t = _adam(state["w"], state["m"], state["v"], state["t"], grads)
        new = {"w": w, "m": m, "v": v, "t": t, "key": key}
        return new, loss, _correct(y, logits)

    @jax.jit
    def infer_step(w, x):
        return _forward(name, w, x, None)

    @jax.jit
    def eval_step(w, x, y):
        logits = _forward(name, w, x, None)
        return _xent(y, logits), _correct(y, logits)

    return state, train_step, infer_step, eval_step


def steps(name: str, weights, x: np.ndarray, y: np.ndarray, device: str = "cpu"):
    """``(train, infer)`` callables of the hand-written JAX model (``models.unidl_steps``),
    the batch already on ``device``."""
    box = {}
    box["state"], train_step, infer_step, _ = build(name, weights, device)
    xb, yb = jax.device_put((x, y), jax_device(device))

    def train():
        box["state"], loss, _ = train_step(box["state"], xb, yb)
        return float(loss)

    def infer():
        return np.asarray(infer_step(box["state"]["w"], xb))

    return train, infer


def loops(name: str, weights, fit_batches, train_batch, eval_batches, device: str = "cpu"):
    """The loops a JAX user writes for what ``fit``, ``train_on_batch``, ``evaluate`` and
    ``predict`` do (``loop.py``): NumPy batches passed to the jitted step, the loss and the
    number correct read every step (``float``); ``predict`` concatenates the outputs."""
    fit_box, tob_box = {}, {}
    fit_box["state"], train_step, infer_step, eval_step = build(name, weights, device)
    tob_box["state"] = build(name, weights, device)[0]

    def fit():
        loss_sum, correct, seen = 0.0, 0.0, 0
        for xb, yb in fit_batches:
            fit_box["state"], loss, right = train_step(fit_box["state"], xb, yb)
            loss_sum += float(loss) * len(yb)
            correct += float(right)
            seen += len(yb)
        return loss_sum / seen, correct / seen

    def train_on_batch():
        xb, yb = train_batch
        tob_box["state"], loss, _ = train_step(tob_box["state"], xb, yb)
        return float(loss)

    def evaluate():
        loss_sum, correct, seen = 0.0, 0.0, 0
        for xb, yb in eval_batches:
            loss, right = eval_step(fit_box["state"]["w"], xb, yb)
            loss_sum += float(loss) * len(yb)
            correct += float(right)
            seen += len(yb)
        return loss_sum / seen, correct / seen

    def predict():
        w = fit_box["state"]["w"]
        return np.asarray(jnp.concatenate([infer_step(w, xb) for xb, _ in eval_batches], 0))

    return {"fit": fit, "train_on_batch": train_on_batch, "evaluate": evaluate,
            "predict": predict}


def dispatch_pair(device: str = "cpu"):
    """A tiny op through unidl and straight through ``jnp`` (eager, same inputs)."""
    from unidl import ops

    a, b = jax.device_put((jnp.ones(4, jnp.float32), jnp.ones(4, jnp.float32)),
                          jax_device(device))
    return (lambda: ops.add(a, b)), (lambda: jnp.add(a, b))
