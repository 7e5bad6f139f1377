"""The classic Keras MNIST MLP on the 8x8 digits shipped with unidl. It runs unchanged on
every backend: UNIDL_BACKEND=numpy|torch|tensorflow python examples/mnist_mlp.py
"""

import unidl
from unidl import layers

(x_train, y_train), (x_test, y_test) = unidl.datasets.digits.load_data()
model = unidl.Sequential([
    layers.Flatten(input_shape=(8, 8)),
    layers.Dense(128, activation="relu"),
    layers.Dropout(0.2),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train / 16.0, y_train, epochs=5)
loss, accuracy = model.evaluate(x_test / 16.0, y_test)
print(f"backend={unidl.backend_name()} test loss={loss:.4f} test accuracy={accuracy:.4f}")
