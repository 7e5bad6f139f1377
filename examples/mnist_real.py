"""The Keras MNIST MLP on real MNIST images: the 10,000-image MNIST test set from
``../shared/data/mnist`` (IDX files), split 8,000 / 2,000.

UNIDL_BACKEND=torch python examples/mnist_real.py [path/to/mnist] [epochs]
"""

import os
import sys

import unidl
from unidl import layers

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "shared", "data",
                                                          "mnist")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
(x_train, y_train), (x_test, y_test) = unidl.datasets.mnist.load_data(path, split=0.2)

unidl.random.set_seed(0)
model = unidl.Sequential([
    layers.Flatten(input_shape=(28, 28)),
    layers.Dense(128, activation="relu"),
    layers.Dropout(0.2),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train / 255.0, y_train, epochs=epochs, batch_size=32, verbose=2)
loss, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=0)
print(f"backend={unidl.backend_name()} MNIST (8,000 train / 2,000 test) "
      f"test accuracy={accuracy:.4f}")
