"""A CNN on real MNIST images with data augmentation, fed by a unidl.data pipeline.

UNIDL_BACKEND=torch python examples/mnist_augmented.py [--data DIR] [--epochs N] [--limit N]
[--out DIR]

The 10,000-image MNIST test set (IDX files, found as ``mnist_real.py`` finds them: ``--data
DIR``, ``$UNIDL_DATA_DIR`` (and its ``mnist/``), ``../shared/data/mnist``) split 8,000 /
2,000. The training images go through::

    Dataset.from_tensor_slices((x, y)).shuffle(8000).batch(128)
           .map(augment, num_parallel_calls=AUTOTUNE).prefetch(2)

where ``augment`` applies small random rotations, shifts and zooms (no flips: a flipped
digit is another glyph). The augmentation layers draw their parameters per image, so they
run on whole batches (``batch`` before ``map``: one call per 128 images instead of 128
calls), on ``map``'s worker threads while the model trains on the previous batch.
``--limit N`` trains on the first N training images only (a quick run).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_real import find_data  # noqa: E402  (the same lookup of the data)


def build_model():
    import unidl
    from unidl import layers

    return unidl.Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(10, activation="softmax"),
    ])


def training_data(x, y, batch_size=128):
    """The augmented, shuffled training batches as a unidl.data pipeline."""
    import unidl
    from unidl import layers
    from unidl.data import AUTOTUNE, Dataset

    augment = unidl.Sequential([
        layers.RandomRotation(0.03, fill_mode="constant"),     # about +-11 degrees
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),  # up to ~3 pixels
        layers.RandomZoom(0.1, fill_mode="constant"),
    ])
    return (Dataset.from_tensor_slices((x, y))
            .shuffle(len(x))
            .batch(batch_size)
            .map(lambda xb, yb: (augment(xb, training=True), yb),
                 num_parallel_calls=AUTOTUNE)
            .prefetch(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory holding the MNIST test set")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", metavar="DIR", help="where to save the training curves "
                        "(default: $UNIDL_EXAMPLES_OUT, else the current directory)")
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N training images only")
    args = parser.parse_args()
    path = find_data(args.data)

    import numpy as np

    import unidl
    from unidl.utils import save_training_pictures

    (x_train, y_train), (x_test, y_test) = unidl.datasets.mnist.load_data(path, split=0.2)
    x_train = (x_train[:args.limit, :, :, None] / 255.0).astype(np.float32)
    y_train = y_train[:args.limit].astype(np.int64)
    x_test = (x_test[:, :, :, None] / 255.0).astype(np.float32)
    unidl.random.set_seed(0)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(training_data(x_train, y_train), epochs=args.epochs, verbose=2)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"backend={unidl.backend_name()} augmented CNN on MNIST ({len(x_train):,} train / "
          f"{len(x_test):,} test from {path}) test accuracy={accuracy:.4f}")
    save_training_pictures("mnist_augmented", history, out=args.out)


if __name__ == "__main__":
    main()
