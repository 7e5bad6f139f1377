"""The benchmarked models, written with unidl (and the same models written with Keras 3).

* ``mlp``: 784 -> Dense(128, relu) -> Dropout(0.2) -> Dense(10)
* ``cnn``: 28x28x1 -> Conv2D(16, 3, relu) -> MaxPool(2) -> Conv2D(32, 3, relu) -> MaxPool(2)
  -> Flatten -> Dense(10)
* ``lstm``: (50 steps, 32 features) -> LSTM(128) -> Dense(10)

All end in logits; the loss is sparse categorical cross-entropy from logits, the optimizer
Adam(lr=1e-3, epsilon=1e-7), batch 128.
"""

from __future__ import annotations

from common import EPSILON, LEARNING_RATE, SHAPES


def build_unidl(name: str, metrics=None, **compile_args):
    """A compiled unidl model for the active backend (``metrics``, ``jit_compile``... go to
    ``compile``)."""
    import unidl
    from unidl import layers

    shape, classes = SHAPES[name]
    if name == "mlp":
        stack = [layers.Dense(128, activation="relu", input_shape=shape), layers.Dropout(0.2),
                 layers.Dense(classes)]
    elif name == "cnn":
        stack = [layers.Conv2D(16, 3, activation="relu", input_shape=shape),
                 layers.MaxPooling2D(2), layers.Conv2D(32, 3, activation="relu"),
                 layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(classes)]
    elif name == "lstm":
        stack = [layers.LSTM(128, input_shape=shape), layers.Dense(classes)]
    else:
        raise ValueError(name)
    model = unidl.Sequential(stack)
    model.compile(optimizer=unidl.optimizers.Adam(LEARNING_RATE, epsilon=EPSILON),
                  loss=unidl.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=metrics, **compile_args)
    return model


def unidl_steps(model, x, y):
    """``(train, infer)`` callables running unidl's compiled steps on native tensors.

    ``train`` is the step ``fit`` runs per batch (forward, loss, gradients, Adam update, loss
    tracker) and returns the loss as a float; ``infer`` is ``predict``'s step (inference mode)
    and returns a NumPy array.
    """
    from unidl import ops

    xb, yb = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    model._ensure_built(xb)
    train_step, predict_step = model._step("train"), model._step("predict")

    def train():
        return float(ops.to_numpy(train_step(xb, yb, None)))

    def infer():
        return ops.to_numpy(predict_step(xb))

    return train, infer


def build_keras(name: str, metrics=None):
    """The same model in Keras 3 (``KERAS_BACKEND`` must be set before this is called)."""
    import keras
    from keras import layers

    shape, classes = SHAPES[name]
    if name == "mlp":
        stack = [layers.Dense(128, activation="relu"), layers.Dropout(0.2),
                 layers.Dense(classes)]
    elif name == "cnn":
        stack = [layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2),
                 layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                 layers.Flatten(), layers.Dense(classes)]
    elif name == "lstm":
        stack = [layers.LSTM(128), layers.Dense(classes)]
    else:
        raise ValueError(name)
    model = keras.Sequential([keras.Input(shape)] + stack)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE, epsilon=EPSILON),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=metrics)
    return model
