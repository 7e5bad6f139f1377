"""A small CNN on the 8x8 digits; runs unchanged on every backend:
UNIDL_BACKEND=numpy|torch|tensorflow python examples/cnn_digits.py [epochs] [--out DIR]

It saves its training curves as cnn_digits_history.png in --out DIR, else
$UNIDL_EXAMPLES_OUT, else the current directory (skipped when matplotlib is missing).
"""

import argparse

import unidl
from unidl import layers
from unidl.utils import save_training_pictures

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("epochs", type=int, nargs="?", default=10)
parser.add_argument("--out", metavar="DIR", help="where to save the pictures")
args = parser.parse_args()
epochs = args.epochs
unidl.random.set_seed(0)
(x_train, y_train), (x_test, y_test) = unidl.datasets.digits.load_data()
x_train = (x_train / 16.0).reshape(-1, 8, 8, 1)
x_test = (x_test / 16.0).reshape(-1, 8, 8, 1)

model = unidl.Sequential([
    layers.Conv2D(16, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
    layers.MaxPooling2D(2),
    layers.Conv2D(32, 3, activation="relu"),
    layers.GlobalAveragePooling2D(),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.1,
                    verbose=2)
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"backend={unidl.backend_name()} CNN test accuracy={accuracy:.4f}")
save_training_pictures("cnn_digits", history, out=args.out)
