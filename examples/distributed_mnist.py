"""The Keras MNIST MLP on real MNIST images, data-parallel over several processes.

    UNIDL_BACKEND=torch unidl launch --nproc 2 examples/distributed_mnist.py
    UNIDL_BACKEND=tensorflow unidl launch --nproc 2 examples/distributed_mnist.py
    UNIDL_BACKEND=torch python examples/distributed_mnist.py      (one process, to compare)

Every worker runs this same script: the strategy gives each its part of every global batch
(``--batch-size``, split over the workers), averages the gradients, and reduces the metrics;
rank 0 prints the result and writes the weights (``--save``). The data is the 10,000-image
MNIST test set split 8,000 / 2,000, found as in ``mnist_real.py``.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_real import find_data, keras_mlp  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory holding the MNIST test set")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--save", metavar="FILE", help="weights file rank 0 writes "
                        "(.weights.safetensors)")
    args = parser.parse_args()
    path = find_data(args.data)

    import unidl
    from unidl.distribute import DataParallel

    strategy = DataParallel()
    (x_train, y_train), (x_test, y_test) = unidl.datasets.mnist.load_data(path, split=0.2)
    unidl.random.set_seed(0)
    with strategy.scope():  # (the model, and its compile, use the strategy)
        model = keras_mlp()
    model.fit(x_train / 255.0, y_train, epochs=args.epochs, batch_size=args.batch_size,
              verbose=2)
    loss, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=0)
    if strategy.is_chief:
        print(f"backend={unidl.backend_name()} workers={strategy.world_size} MNIST "
              f"(8,000 train / 2,000 test) global batch {args.batch_size}: "
              f"test accuracy={accuracy:.4f} loss={loss:.4f}")
        if args.save:
            model.save_weights(args.save)


if __name__ == "__main__":
    main()
