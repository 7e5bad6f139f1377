"""The reference a TensorFlow user writes by hand (no Keras): ``tf.Variable`` weights, a
``tf.GradientTape`` train step inside ``tf.function``, Adam written with ``assign`` ops, and
``tf.nn`` layers. The LSTM is a cell loop (input projected once for all steps), unrolled when
the step is traced, as unidl's.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from common import EPSILON, LEARNING_RATE


def _forward(name, w, x, training):
    if name == "mlp":
        h = tf.nn.relu(tf.matmul(x, w[0]) + w[1])
        if training:
            h = tf.nn.dropout(h, rate=0.2)
        return tf.matmul(h, w[2]) + w[3]
    if name == "cnn":
        h = tf.nn.relu(tf.nn.conv2d(x, w[0], 1, "VALID") + w[1])
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.nn.relu(tf.nn.conv2d(h, w[2], 1, "VALID") + w[3])
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reshape(h, (tf.shape(h)[0], -1))
        return tf.matmul(h, w[4]) + w[5]
    if name == "lstm":
        kernel, recurrent, bias = w[0], w[1], w[2]
        z_all = tf.einsum("btf,fg->btg", x, kernel) + bias
        batch = tf.shape(x)[0]
        h = tf.zeros((batch, 128), x.dtype)
        c = tf.zeros((batch, 128), x.dtype)
        for z_t in tf.unstack(z_all, axis=1):
            z = z_t + tf.matmul(h, recurrent)
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
        return tf.matmul(h, w[3]) + w[4]
    raise ValueError(name)


class Adam:
    """Adam (as torch.optim.Adam / unidl.optimizers.Adam) with tf.Variable slots."""

    def __init__(self, variables, lr=LEARNING_RATE, b1=0.9, b2=0.999, eps=EPSILON):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.t = tf.Variable(0.0)
        self.m = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in variables]

    def apply(self, grads, variables):
        t = self.t.assign_add(1.0)
        step = self.lr / (1.0 - tf.pow(self.b1, t))
        sqrt_bc2 = tf.sqrt(1.0 - tf.pow(self.b2, t))
        for g, p, m, v in zip(grads, variables, self.m, self.v):
            m.assign(self.b1 * m + (1.0 - self.b1) * g)
            v.assign(self.b2 * v + (1.0 - self.b2) * tf.square(g))
            p.assign_sub(step * m / (tf.sqrt(v) / sqrt_bc2 + self.eps))


def _xent(y, logits):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits))


def _correct(y, logits):
    """The number of correct predictions (as a float, like the loss)."""
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=y.dtype), y),
                                 tf.float32))


def build(name: str, weights):
    """``(train_step, infer_step, fit_step, eval_step)``: ``tf.function`` steps on fresh
    ``tf.Variable``s holding ``weights``; ``train_step(x, y)`` returns the loss,
    ``fit_step``/``eval_step`` the loss and the number of correct predictions."""
    w = [tf.Variable(a) for a in weights]
    opt = Adam(w)

    def train(x, y):
        with tf.GradientTape() as tape:
            logits = _forward(name, w, x, True)
            loss = _xent(y, logits)
        grads = tape.gradient(loss, w)
        opt.apply(grads, w)
        return loss, logits

    @tf.function
    def train_step(x, y):
        return train(x, y)[0]

    @tf.function
    def fit_step(x, y):
        loss, logits = train(x, y)
        return loss, _correct(y, logits)

    @tf.function
    def infer_step(x):
        return _forward(name, w, x, False)

    @tf.function
    def eval_step(x, y):
        logits = _forward(name, w, x, False)
        return _xent(y, logits), _correct(y, logits)

    return train_step, infer_step, fit_step, eval_step


def steps(name: str, weights, x: np.ndarray, y: np.ndarray):
    """``(train, infer)`` callables of the hand-written TF model (see ``models.unidl_steps``)."""
    train_step, infer_step, _, _ = build(name, weights)
    xb, yb = tf.constant(x), tf.constant(y)

    def train():
        return float(train_step(xb, yb).numpy())

    def infer():
        return infer_step(xb).numpy()

    return train, infer


def _loss_and_accuracy(step, batches):
    """``step`` (``(x, y) -> (mean loss, number correct)``) over NumPy ``batches``, each
    converted with ``tf.constant`` and read back every step (``float``, as a progress
    display does); returns the mean loss and the accuracy."""
    loss_sum, correct, seen = 0.0, 0.0, 0
    for xb, yb in batches:
        loss, right = step(tf.constant(xb), tf.constant(yb))
        loss_sum += float(loss) * len(yb)
        correct += float(right)
        seen += len(yb)
    return loss_sum / seen, correct / seen


def loops(name: str, weights, fit_batches, train_batch, eval_batches):
    """The loops a TensorFlow user writes (no Keras) for what ``fit``, ``train_on_batch``,
    ``evaluate`` and ``predict`` do (see ``loop.py``): pre-made NumPy batches converted with
    ``tf.constant`` each step, a ``tf.function`` step per batch; ``fit`` and ``evaluate``
    read the loss and the number of correct predictions every step (``float(...)``);
    ``predict`` concatenates the outputs (``tf.concat``) and returns one NumPy array.
    Returns ``{call: zero-argument callable}``."""
    _, infer_step, fit_step, eval_step = build(name, weights)
    tob_step = build(name, weights)[0]

    def fit():
        return _loss_and_accuracy(fit_step, fit_batches)

    def train_on_batch():
        xb, yb = train_batch
        return float(tob_step(tf.constant(xb), tf.constant(yb)))

    def evaluate():
        return _loss_and_accuracy(eval_step, eval_batches)

    def predict():
        return tf.concat([infer_step(tf.constant(xb)) for xb, _ in eval_batches], 0).numpy()

    return {"fit": fit, "train_on_batch": train_on_batch, "evaluate": evaluate,
            "predict": predict}


def dispatch_pair():
    """A tiny op through unidl and straight through TensorFlow (eager, same inputs)."""
    from unidl import ops

    a, b = tf.ones(4), tf.ones(4)
    return (lambda: ops.add(a, b)), (lambda: tf.add(a, b))
