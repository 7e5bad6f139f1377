"""A training loop written only with unidl.ops, unidl.value_and_grad and unidl.optimizers.Adam.

It fits a two-layer MLP to the 8x8 digits on every installed backend (NumPy included: unidl
differentiates NumPy code with its own engine) and prints the loss going down.

Run:  python examples/train_with_ops.py
"""

import numpy as np

import unidl
from unidl import ops


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return [
        unidl.Variable(rng.normal(0, 0.1, (64, 32)).astype("float32"), name="w1"),
        unidl.Variable(np.zeros(32, "float32"), name="b1"),
        unidl.Variable(rng.normal(0, 0.1, (32, 10)).astype("float32"), name="w2"),
        unidl.Variable(np.zeros(10, "float32"), name="b2"),
    ]


def loss_fn(params, x, y):
    w1, b1, w2, b2 = params
    h = ops.relu(ops.add(ops.matmul(x, w1), b1))
    logits = ops.add(ops.matmul(h, w2), b2)
    return ops.mean(ops.sparse_categorical_crossentropy(y, logits, True))


def train(backend, steps=60):
    (x_train, y_train), _ = unidl.datasets.digits.load_data()
    x = (x_train.reshape(len(x_train), -1) / 16.0).astype("float32")
    with unidl.use_backend(backend):
        params = init_params()
        opt = unidl.optimizers.Adam(learning_rate=0.01)
        step = unidl.value_and_grad(loss_fn)
        xb, yb = ops.convert_to_tensor(x[:256]), ops.convert_to_tensor(y_train[:256])
        losses = []
        for _ in range(steps):
            loss, grads = step(params, xb, yb)
            opt.apply(grads, params)
            losses.append(float(ops.to_numpy(loss)))
    return losses


if __name__ == "__main__":
    for row in unidl.list_backends():
        if row.error is None:  # every installed backend, third-party ones included
            losses = train(row.name)
            print(f"{row.name:<11} loss {losses[0]:.4f} -> {losses[-1]:.4f}")
            assert losses[-1] < 0.5 * losses[0], "the loss did not go down"
