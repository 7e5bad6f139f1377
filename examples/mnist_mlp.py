"""The classic Keras MNIST MLP on the 8x8 digits shipped with unidl. It runs unchanged on
every backend: UNIDL_BACKEND=numpy|torch|tensorflow python examples/mnist_mlp.py [--out DIR]

It saves its training curves and its layer graph as mnist_mlp_history.png and
mnist_mlp_model.png in --out DIR, else $UNIDL_EXAMPLES_OUT, else the current directory
(skipped, with one line, when matplotlib is not installed).
"""

import argparse

import unidl
from unidl import layers
from unidl.utils import save_training_pictures

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", metavar="DIR", help="where to save the pictures")
args = parser.parse_args()

(x_train, y_train), (x_test, y_test) = unidl.datasets.digits.load_data()
model = unidl.Sequential([
    layers.Flatten(input_shape=(8, 8)),
    layers.Dense(128, activation="relu"),
    layers.Dropout(0.2),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train / 16.0, y_train, epochs=5)
loss, accuracy = model.evaluate(x_test / 16.0, y_test)
print(f"backend={unidl.backend_name()} test loss={loss:.4f} test accuracy={accuracy:.4f}")
save_training_pictures("mnist_mlp", history, model, out=args.out)
