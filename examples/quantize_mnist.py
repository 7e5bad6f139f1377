"""int8 post-training quantization of the Keras MNIST MLP and a small CNN on real MNIST.

UNIDL_BACKEND=torch python examples/quantize_mnist.py [--data DIR] [--epochs N] [--cnn-epochs N]

Trains each model in float32 on the first 8,000 images of the 10,000-image MNIST test set
(IDX files t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not, looked for in
``--data``, ``$UNIDL_DATA_DIR`` (and its ``mnist/``), then ``../shared/data/mnist``; nothing is
downloaded), quantizes it with static int8 quantization calibrated on 1,000 training images,
and prints the accuracy on the last 2,000 images before and after, and the sizes of the two
``.unidl`` files (each saved for inference: weights and architecture, no optimizer state).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_real import NEEDED, find_data  # noqa: E402  (the same lookup of the data)


def load(directory):
    """``(x_train, y_train), (x_test, y_test)``: first 8,000 / last 2,000, scaled to [0, 1]."""
    from unidl.datasets.download import find_file
    from unidl.datasets.idx import load_image_label_pair

    paths = [find_file(directory, (n, n + ".gz")) for n in NEEDED]
    x, y = load_image_label_pair(*paths)
    x = (np.asarray(x, np.float32) / 255.0).reshape(-1, 28, 28, 1)
    y = np.asarray(y).astype(np.int64)
    return (x[:8000], y[:8000]), (x[-2000:], y[-2000:])


def mlp():
    """The seed's MLP."""
    import unidl
    from unidl import layers

    return unidl.Sequential([layers.Flatten(input_shape=(28, 28, 1)),
                             layers.Dense(128, activation="relu"), layers.Dropout(0.2),
                             layers.Dense(10, activation="softmax")], name="mlp")


def cnn():
    """A small CNN: two 3x3 convolutions with max pooling, then a dense classifier."""
    import unidl
    from unidl import layers

    return unidl.Sequential([layers.Conv2D(16, 3, activation="relu", input_shape=(28, 28, 1)),
                             layers.MaxPooling2D(2), layers.Conv2D(32, 3, activation="relu"),
                             layers.MaxPooling2D(2), layers.Flatten(),
                             layers.Dense(64, activation="relu"),
                             layers.Dense(10, activation="softmax")], name="cnn")


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=256), -1) == y))


def file_size(model, directory, name):
    """Bytes of ``model`` saved for inference (an uncompiled copy: no optimizer state)."""
    import unidl

    path = os.path.join(directory, name + ".unidl")
    copy = unidl.models.clone_model(model)
    copy.save(path)
    return os.path.getsize(path)


def run(build, epochs, data, directory):
    """Train, quantize, measure: a dict of the numbers printed."""
    import unidl

    (x, y), (xt, yt) = data
    unidl.random.set_seed(0)
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    from unidl.quantization import quantize

    qmodel = quantize(model, "int8", calibration_data=x[:1000])
    out = {"model": model.name, "float_accuracy": accuracy(model, xt, yt),
           "int8_accuracy": accuracy(qmodel, xt, yt),
           "float_bytes": file_size(model, directory, model.name + "_float32"),
           "int8_bytes": file_size(qmodel, directory, model.name + "_int8")}
    out["size_ratio"] = out["float_bytes"] / out["int8_bytes"]
    out["accuracy_drop_points"] = 100 * (out["float_accuracy"] - out["int8_accuracy"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory holding the MNIST test set")
    parser.add_argument("--epochs", type=int, default=5, help="MLP epochs (default 5)")
    parser.add_argument("--cnn-epochs", type=int, default=3, help="CNN epochs (default 3)")
    parser.add_argument("--out", metavar="DIR", help="where to write the .unidl files "
                        "(default: a temporary directory)")
    args = parser.parse_args(argv)
    data = load(find_data(args.data))

    import unidl

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.out or tmp
        for build, epochs in ((mlp, args.epochs), (cnn, args.cnn_epochs)):
            r = run(build, epochs, data, directory)
            results.append(r)
            print(f"{r['model']} on {unidl.current_backend().name}: accuracy float32 "
                  f"{r['float_accuracy']:.4f}, int8 {r['int8_accuracy']:.4f} (drop "
                  f"{r['accuracy_drop_points']:+.2f} points); file {r['float_bytes']:,} -> "
                  f"{r['int8_bytes']:,} bytes ({r['size_ratio']:.2f}x smaller)", flush=True)
    return results


if __name__ == "__main__":
    main()
