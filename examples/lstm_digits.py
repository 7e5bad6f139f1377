"""An LSTM classifier on the 8x8 digits, reading each image row by row as a sequence of 8
steps; runs unchanged on every backend:
UNIDL_BACKEND=numpy|torch|tensorflow python examples/lstm_digits.py [epochs] [--out DIR]

It saves its training curves as lstm_digits_history.png in --out DIR, else
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

inputs = unidl.Input((8, 8))
h = layers.LSTM(32)(inputs)
outputs = layers.Dense(10, activation="softmax")(h)
model = unidl.Model(inputs, outputs)
model.compile(optimizer=unidl.optimizers.Adam(0.005), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
history = model.fit(x_train / 16.0, y_train, epochs=epochs, batch_size=32, verbose=2)
loss, accuracy = model.evaluate(x_test / 16.0, y_test, verbose=0)
print(f"backend={unidl.backend_name()} LSTM test accuracy={accuracy:.4f}")
save_training_pictures("lstm_digits", history, out=args.out)
