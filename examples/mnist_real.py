"""The Keras MNIST MLP on real MNIST images: the 10,000-image MNIST test set (IDX files),
split 8,000 / 2,000.

UNIDL_BACKEND=torch python examples/mnist_real.py [--data DIR] [--epochs N] [--out DIR]

The files (t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not) are looked
for in ``--data DIR``, then in ``$UNIDL_DATA_DIR`` (and its ``mnist/`` folder), then in
``../shared/data/mnist`` beside the repository; this example downloads nothing (it needs
only the test files: ``unidl.datasets.mnist.load_data(split=0.2)``; the full set with the
training files, downloaded when missing, is ``unidl.datasets.mnist.load_data()``).
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDED = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def candidates(data_arg):
    """The directories to look in, in order."""
    dirs = [data_arg] if data_arg else []
    env = os.environ.get("UNIDL_DATA_DIR")
    if env:
        dirs += [env, os.path.join(env, "mnist")]
    dirs.append(os.path.normpath(os.path.join(REPO, "..", "shared", "data", "mnist")))
    return dirs


def has_files(directory):
    return all(any(os.path.isfile(os.path.join(directory, name + suffix))
                   for suffix in ("", ".gz")) for name in NEEDED)


def find_data(data_arg):
    """The first directory holding the MNIST test files; exits naming the files and the
    directories tried when none does."""
    dirs = candidates(data_arg)
    for d in dirs:
        if has_files(d):
            return d
    tried = "\n".join(f"  {d}" for d in dirs)
    script = os.path.basename(sys.argv[0]) or "mnist_real.py"  # (the example that asked)
    sys.exit(f"{script}: the MNIST test set was not found. It needs {NEEDED[0]} and "
             f"{NEEDED[1]} (each gzipped, .gz, or not) in one directory; looked in:\n{tried}\n"
             "Pass --data DIR or set UNIDL_DATA_DIR.")


def keras_mlp():
    """The seed's Keras MNIST MLP, compiled (Adam, sparse categorical cross-entropy)."""
    import unidl
    from unidl import layers

    model = unidl.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory holding the MNIST test set")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", metavar="DIR", help="where to save the training curves "
                        "(default: $UNIDL_EXAMPLES_OUT, else the current directory)")
    args = parser.parse_args()
    path = find_data(args.data)

    import unidl
    from unidl.utils import save_training_pictures

    (x_train, y_train), (x_test, y_test) = unidl.datasets.mnist.load_data(path, split=0.2)
    unidl.random.set_seed(0)
    model = keras_mlp()
    history = model.fit(x_train / 255.0, y_train, epochs=args.epochs, batch_size=32, verbose=2)
    loss, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=0)
    print(f"backend={unidl.backend_name()} MNIST (8,000 train / 2,000 test from {path}) "
          f"test accuracy={accuracy:.4f}")
    save_training_pictures("mnist_real", history, out=args.out)


if __name__ == "__main__":
    main()
